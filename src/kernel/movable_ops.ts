/**
 * kernel/movable_ops.ts: the non-LRU movable page framework of v4.8
 * (mm/migrate.c, mm/compaction.c; seed 002): a driver registers callbacks
 * {isolate_page, migrate_page, putback_page}, marks its pages with
 * __SetPageMovable(), and compaction can then isolate and migrate them.
 * How a movable page is encoded, which flag marks isolation, who pins and
 * locks the page and whether the page lock is taken come from the era
 * (eras/era.ts): in 2012 and 2014 the balloon hooks of compaction did the
 * pinning, locking and rechecking themselves (driver_isolates), and the
 * driver is found through the page type in 2014 and from 2025 on.
 *
 * Lock order: page lock (trylock in isolation, sleeping in putback), then
 * whatever lock the driver takes inside its callback (its list lock).
 * References: isolation takes one (get_page_unless_zero) and keeps it on
 * success; putback and migration drop it.
 * Invariants:
 *  - PG_isolated is set and cleared only here and in migrate.ts, with the
 *    page lock held; an isolated page is on no driver list;
 *  - the driver handle in page->mapping names a registered driver.
 * Rules (kernel/rules.ts; each can be switched off by name):
 *   recheck-movable-under-page-lock, recheck-isolated-under-page-lock,
 *   core-page-lock (2026: the core's page lock serialises the isolated flag).
 * Contract checks: a callback whose answer is outside its contract (not a
 * boolean from isolate_page, a positive number from migrate_page, a page
 * still linked on a list after isolate_page said yes) raises MovableOpsError
 * naming the driver and the pfn, after the core has undone its own steps, so
 * the machine stays consistent.
 */

import type { Runtime, Step, StepOf } from "../runtime/runtime.ts";
import { OP_ATOMIC, OP_READ } from "../runtime/runtime.ts";
import { VM_BUG_ON_PAGE } from "./bug.ts";
import { EBUSY } from "./errno.ts";
import { list_entry_linked } from "./list.ts";
import { put_page } from "./mm/lru.ts";
import { lock_page, trylock_page, unlock_page } from "./mm/pagemap.ts";
import type { MmState } from "./mm/state.ts";
import type { Pfn } from "./page.ts";
import {
  RULE_CORE_PAGE_LOCK,
  RULE_RECHECK_ISOLATED,
  RULE_RECHECK_MOVABLE,
  rule_holds,
} from "./rules.ts";

/** isolate_mode_t bits (only what callers pass along). */
export const ISOLATE_ASYNC_MIGRATE = 0x4;
export const ISOLATE_UNEVICTABLE = 0x8;

/** The callbacks a driver registers (address_space_operations in 2016). */
export interface MovableOperations {
  /** The driver's name, for reports. */
  readonly name: string;
  /** The page type its pages carry, for eras that find the driver by type (MovableEra.ops_by_type). */
  readonly page_type?: number;
  /** Take the page off the driver's lists; page lock held. */
  isolate_page(rt: Runtime, mm: MmState, pfn: Pfn, mode: number): StepOf<boolean>;
  /** Move the driver's page from src to dst; both locked. 0, -EAGAIN or another -errno. */
  migrate_page(rt: Runtime, mm: MmState, dst: Pfn, src: Pfn, mode: number): StepOf<number>;
  /** Take back an isolated page whose migration failed; page lock held. */
  putback_page(rt: Runtime, mm: MmState, pfn: Pfn): Step;
  /**
   * Whether migrate_page() of this page may sleep (wait for another thread,
   * not just take a spinlock); absent means never. Asked under the page
   * lock, only by a caller that cannot sleep; true also counts the refusal
   * it causes (the driver's counter). See nosleep_refuses().
   */
  migrate_page_may_sleep?(mm: MmState, pfn: Pfn): boolean;
}

/**
 * A caller that cannot sleep (rt.can_sleep false: direct compaction, which
 * runs inline, see compaction_direct.ts) does not isolate a page whose
 * driver would sleep to migrate it: the page stays with its driver and the
 * scanner counts an isolation failure. This is the ISOLATE_ASYNC_MIGRATE
 * idea of the LRU side (async compaction does not isolate pages that only a
 * sleeping migration could move) applied to movable_ops pages. The kernel's
 * direct compaction would isolate the page and sleep in the driver instead.
 * Isolating it and failing in migrate_page would leave the page on the
 * driver's list and its pageblock never marked skip (movable_ops pages do
 * not claim blocks), so fast_find_migrateblock() would offer the block
 * again and again.
 */
function nosleep_refuses(rt: Runtime, mm: MmState, ops: MovableOperations, pfn: Pfn): boolean {
  if (rt.can_sleep !== false || ops.migrate_page_may_sleep === undefined) return false;
  return ops.migrate_page_may_sleep(mm, pfn);
}

/** A movable_ops driver broke its contract. */
export class MovableOpsError extends Error {
  readonly driver: string;
  readonly pfn: Pfn;
  constructor(driver: string, pfn: Pfn, what: string) {
    super(`movable_ops driver '${driver}' on pfn ${pfn}: ${what}`);
    this.name = "MovableOpsError";
    this.driver = driver;
    this.pfn = pfn;
  }
}

/** Register a driver; returns the handle its pages carry. */
export function register_movable_ops(mm: MmState, ops: MovableOperations): number {
  mm.movable_ops.push(ops);
  return mm.movable_ops.length - 1;
}

/**
 * page_movable_ops(): the driver of a movable page, or null if released.
 * Eras that find it by page type (2014 PageBalloon, 2025 on PageOffline
 * with PG_movable_ops) look for the driver registered for that type.
 */
export function page_movable_ops(mm: MmState, pfn: Pfn): MovableOperations | null {
  const mem = mm.m.mem;
  const t = mm.era.ops_by_type;
  if (t !== 0) {
    if (mem.page_type[pfn] !== t || !mm.era.isolated_movable_page(mem, pfn)) return null;
    for (const ops of mm.movable_ops) if (ops !== null && ops.page_type === t) return ops;
    return null;
  }
  const h = mm.era.page_movable_ops_handle(mem, pfn);
  return h === 0 ? null : (mm.movable_ops[h] ?? null);
}

/**
 * The lockless test of compaction's scanner (isolate_migratepages_block)
 * for a non-LRU page: might be a movable page not yet isolated. 2012 and
 * 2014 have no isolated flag to peek at: the balloon's own predicate
 * (__PageMovable of those eras) says it all.
 */
export function movable_page_candidate(mm: MmState, pfn: Pfn): boolean {
  const mem = mm.m.mem;
  return (
    mm.era.__PageMovable(mem, pfn) && (mm.era.driver_isolates || !mm.era.PageIsolated(mem, pfn))
  );
}

/** Whether the core takes the page lock for movable pages (era; 2026 rule core-page-lock). */
export function core_page_lock(mm: MmState): boolean {
  return mm.era.uses_page_lock && rule_holds(mm, RULE_CORE_PAGE_LOCK);
}

/** __PageMovable(): lockless, may be a false positive. */
export function __PageMovable(mm: MmState, pfn: Pfn): boolean {
  return mm.era.__PageMovable(mm.m.mem, pfn);
}

/** PageMovable(): page lock held; movable and still owned by a driver. */
export function PageMovable(rt: Runtime, mm: MmState, pfn: Pfn): boolean {
  void rt;
  return mm.era.__PageMovable(mm.m.mem, pfn) && page_movable_ops(mm, pfn) !== null;
}

/** __SetPageMovable(): the driver marks its page (page lock held). */
export function __SetPageMovable(mm: MmState, pfn: Pfn, handle: number): void {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(!mm.movable_ops[handle], mem, pfn, "__SetPageMovable: unregistered driver");
  mm.era.__SetPageMovable(mem, pfn, handle);
}

/** __ClearPageMovable(): the driver releases its page (page lock held). */
export function __ClearPageMovable(mm: MmState, pfn: Pfn): void {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(
    !mm.era.isolated_movable_page(mem, pfn),
    mem,
    pfn,
    "__ClearPageMovable: not movable",
  );
  mm.era.__ClearPageMovable(mem, pfn);
}

function* era_trylock(rt: Runtime, mm: MmState, pfn: Pfn): StepOf<boolean> {
  return core_page_lock(mm) ? yield* trylock_page(rt, mm, pfn) : true;
}
function* era_lock(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  if (core_page_lock(mm)) yield* lock_page(rt, mm, pfn);
}
function* era_unlock(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  if (core_page_lock(mm)) yield* unlock_page(rt, mm, pfn);
}

/**
 * 2012 and 2014: compaction calls the balloon's isolation directly after
 * its lockless test (balloon_page_isolate() pins, locks and rechecks).
 */
function* isolate_by_driver(rt: Runtime, mm: MmState, pfn: Pfn, mode: number): StepOf<number> {
  const mem = mm.m.mem;
  yield* rt.access(OP_READ, pfn, "mapping");
  const ops = mm.era.__PageMovable(mem, pfn) ? page_movable_ops(mm, pfn) : null;
  if (ops === null || nosleep_refuses(rt, mm, ops, pfn)) return -EBUSY;
  const ok: unknown = yield* ops.isolate_page(rt, mm, pfn, mode);
  if (typeof ok !== "boolean")
    throw new MovableOpsError(ops.name, pfn, `isolate_page returned ${String(ok)}, not a boolean`);
  return ok ? 0 : -EBUSY;
}

/**
 * isolate_movable_page(): 0 with the page isolated and an extra reference,
 * -EBUSY otherwise. Steps: pin the page unless it is being freed, lockless
 * movable check (a fresh page's owner may still be setting it up with
 * non-atomic ops, so look before locking), trylock, recheck under the lock
 * (still owned, not already isolated), ask the driver, mark isolated.
 */
export function* isolate_movable_page(
  rt: Runtime,
  mm: MmState,
  pfn: Pfn,
  mode: number,
): StepOf<number> {
  if (mm.era.driver_isolates) return yield* isolate_by_driver(rt, mm, pfn, mode);
  const mem = mm.m.mem;
  yield* rt.access(OP_ATOMIC, pfn, "refcount");
  if (mem._refcount[pfn] === 0) return -EBUSY; // being freed
  mem._refcount[pfn]++;
  yield* rt.access(OP_READ, pfn, "mapping");
  if (!__PageMovable(mm, pfn)) {
    put_page(rt, mm, pfn);
    return -EBUSY;
  }
  // The driver as the lockless look saw it; trusted only if the recheck
  // rule is dropped (kernel/rules.ts).
  const ops_seen = page_movable_ops(mm, pfn);
  if (!(yield* era_trylock(rt, mm, pfn))) {
    put_page(rt, mm, pfn);
    return -EBUSY;
  }
  // Rechecks under the page lock: the driver may have released the page, or
  // another CPU isolated it, since the lockless look.
  const ops = rule_holds(mm, RULE_RECHECK_MOVABLE) ? page_movable_ops(mm, pfn) : ops_seen;
  const isolated = rule_holds(mm, RULE_RECHECK_ISOLATED) && mm.era.PageIsolated(mem, pfn);
  if (ops === null || isolated || nosleep_refuses(rt, mm, ops, pfn)) {
    yield* era_unlock(rt, mm, pfn);
    put_page(rt, mm, pfn);
    return -EBUSY;
  }
  const ok: unknown = yield* ops.isolate_page(rt, mm, pfn, mode);
  const broken =
    typeof ok !== "boolean"
      ? `isolate_page returned ${String(ok)}, not a boolean`
      : ok && list_entry_linked(mem, pfn)
        ? "isolate_page said yes but the page is still on a list (not the driver's page, or not unlinked)"
        : null;
  if (broken !== null || !ok) {
    yield* era_unlock(rt, mm, pfn);
    put_page(rt, mm, pfn);
    if (broken !== null) throw new MovableOpsError(ops.name, pfn, broken);
    return -EBUSY;
  }
  VM_BUG_ON_PAGE(mm.era.PageIsolated(mem, pfn), mem, pfn, "isolate_movable_page: isolated twice");
  mm.era.SetPageIsolated(mem, pfn);
  yield* era_unlock(rt, mm, pfn);
  return 0;
}

/**
 * putback_movable_page() and the movable half of putback_movable_pages():
 * give an isolated page back to its driver (or just clear PG_isolated if the
 * driver released it meanwhile), then drop the isolation reference. The page
 * is already off the caller's list.
 */
export function* putback_movable_page(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(!mm.era.PageIsolated(mem, pfn), mem, pfn, "putback: movable page not isolated");
  if (mm.era.driver_isolates) {
    // 2012/2014: balloon_page_putback() locks the page and clears the state.
    const ops = page_movable_ops(mm, pfn);
    if (ops !== null) yield* ops.putback_page(rt, mm, pfn);
    else mm.era.ClearPageIsolated(mem, pfn);
    put_page(rt, mm, pfn);
    return;
  }
  yield* era_lock(rt, mm, pfn);
  const ops = page_movable_ops(mm, pfn);
  if (ops !== null) yield* ops.putback_page(rt, mm, pfn);
  mm.era.ClearPageIsolated(mem, pfn);
  yield* era_unlock(rt, mm, pfn);
  put_page(rt, mm, pfn);
}

export { era_lock, era_trylock, era_unlock };
