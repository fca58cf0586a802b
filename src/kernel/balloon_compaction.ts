/**
 * kernel/balloon_compaction.ts: models mm/balloon_compaction.c and
 * include/linux/balloon_compaction.h: struct balloon_dev_info, the
 * enqueue/dequeue interface balloon drivers use, and the isolate / migrate /
 * putback callbacks through which compaction moves balloon pages (seeds 000,
 * 002, 003, 004). What differs between kernel eras comes from a BalloonEra
 * (eras/era.ts); the 2016 era (v4.8-v5.19) is implemented.
 *
 * A BalloonCompaction is the interface for one machine: it is registered
 * once as the "balloon" movable_ops driver (the kernel's balloon_aops /
 * balloon_mops) and keeps every balloon device of the machine; a page finds
 * its device through page->private (device id, 0 for none). Several devices
 * can exist at once, each with its own list and pages_lock.
 *
 * CONFIG_BALLOON_COMPACTION: `compaction: false` builds the interface
 * without it: pages are not marked movable, compaction steps around them,
 * dequeue does not look at PG_isolated.
 *
 * Lock order (2016): page lock, then b_dev_info->pages_lock. Enqueue and
 * dequeue hold pages_lock and only *try* the page lock, which is why they
 * do not invert the order. virtio's balloon_lock (a mutex) comes before
 * pages_lock; migratepage only tries it (it runs under two page locks).
 * Rules (named assertions; each can be switched off through drop_rules so
 * the model checker can show what it prevents):
 *   pages_lock_held:        a page joins or leaves a device list, and its
 *                           page->private changes, only under pages_lock
 *                           (an isolated page is on no list: deleting it
 *                           needs only the page lock in 2016);
 *   page_lock_held:         insert and delete run under the page lock
 *                           (rule i of seed 000; not in the 2026 era);
 *   dequeue_skips_isolated: dequeue never takes a page compaction has
 *                           isolated (dropping it also drops the check);
 *   private_names_device:   a page the core hands to isolate / putback /
 *                           migrate names a live device in page->private.
 * Invariants (verify_balloon_dev_info): every page on a device list has the
 * balloon page type, page->private = the device id, no PG_isolated, one
 * reference (the balloon's) or more; list length = nr_listed; list length +
 * isolated_pages = the pages the device owns (balloon_pages_owned) at every
 * point where no migration is half done.
 */

import type { Lock, Runtime, Step, StepOf } from "../runtime/runtime.ts";
import { OP_READ } from "../runtime/runtime.ts";
import { BUG, KernelBug, VM_BUG_ON_PAGE } from "./bug.ts";
import type { BalloonEra } from "./eras/era.ts";
import { balloon_era2016 } from "./eras/era2016.ts";
import { EAGAIN } from "./errno.ts";
import {
  __GFP_NOMEMALLOC,
  __GFP_NORETRY,
  __GFP_NOWARN,
  GFP_HIGHUSER,
  GFP_HIGHUSER_MOVABLE,
} from "./gfp.ts";
import { list_add, list_count_nodes, list_del, list_empty } from "./list.ts";
import type { Machine } from "./machine.ts";
import { this_cpu } from "./mm/lru.ts";
import { page_locked_by_me, trylock_page, unlock_page } from "./mm/pagemap.ts";
import type { MmState } from "./mm/state.ts";
import {
  __ClearPageMovable,
  __SetPageMovable,
  type MovableOperations,
  register_movable_ops,
} from "./movable_ops.ts";
import { PageIsolated, PageLocked, type Pfn, PGTY_none } from "./page.ts";
import { alloc_pages } from "./page_alloc/alloc.ts";
import { BALLOON_DEFLATE, BALLOON_INFLATE } from "./vmstat_items.ts";

export const RULE_PAGES_LOCK_HELD = "pages_lock_held";
export const RULE_PAGE_LOCK_HELD = "page_lock_held";
export const RULE_DEQUEUE_SKIPS_ISOLATED = "dequeue_skips_isolated";
export const RULE_PRIVATE_NAMES_DEVICE = "private_names_device";
export const BALLOON_RULES: readonly string[] = [
  RULE_PAGES_LOCK_HELD,
  RULE_PAGE_LOCK_HELD,
  RULE_DEQUEUE_SKIPS_ISOLATED,
  RULE_PRIVATE_NAMES_DEVICE,
];

/** A broken named rule (see the header). */
export class BalloonRuleError extends KernelBug {
  readonly rule: string;
  constructor(rule: string, where: string, pfn: Pfn) {
    super(`balloon rule '${rule}' broken in ${where} (pfn ${pfn})`, pfn);
    this.name = "BalloonRuleError";
    this.rule = rule;
  }
}

/** The driver's migratepage callback (b_dev_info->migratepage). */
export type BalloonMigratepage = (
  rt: Runtime,
  b: BalloonDevInfo,
  newpage: Pfn,
  page: Pfn,
  mode: number,
) => StepOf<number>;

/** struct balloon_dev_info. */
export class BalloonDevInfo {
  /** What page->private holds for this device's pages (>= 1). */
  readonly id: number;
  readonly name: string;
  /** # of pages compaction has isolated from this device. */
  isolated_pages = 0;
  /** Guards `pages` and page->private (the global balloon_pages_lock in 2026). */
  readonly pages_lock: Lock;
  /** list_head slot of the device's pages. */
  readonly pages: number;
  migratepage: BalloonMigratepage | null = null;
  /** Inflation takes pages out of the managed count (v6.x field; the 2016 driver did it itself). */
  adjust_managed_page_count = false;
  /** Model bookkeeping: pages on `pages`, kept so invariants are O(1). */
  nr_listed = 0;
  /** Set once balloon_devinfo_release() ran: the device is gone. */
  released = false;
  constructor(id: number, name: string, pages_lock: Lock, pages: number) {
    this.id = id;
    this.name = name;
    this.pages_lock = pages_lock;
    this.pages = pages;
  }
}

export interface BalloonCompactionOptions {
  era?: BalloonEra;
  /** CONFIG_BALLOON_COMPACTION (default on). */
  compaction?: boolean;
  /** Named rules to switch off (model checking). */
  drop_rules?: Iterable<string>;
}

/**
 * The balloon compaction interface of one machine: the registered movable_ops
 * driver (balloon_aops in 2016) and the devices. Holds no module-level state,
 * so a checker can build one per execution.
 */
export class BalloonCompaction implements MovableOperations {
  readonly name = "balloon";
  readonly mm: MmState;
  readonly era: BalloonEra;
  readonly compaction: boolean;
  readonly drop_rules: Set<string>;
  /** movable_ops handle; 0 when CONFIG_BALLOON_COMPACTION is off. */
  readonly handle: number;
  /** device id -> device; slot 0 unused. */
  readonly devices: (BalloonDevInfo | null)[] = [null];
  /** balloon_pages_lock of the 2026 era, null in eras with a lock per device. */
  readonly balloon_pages_lock: Lock | null;
  /**
   * Coverage marks: how often each racy branch ran, so tests can show they
   * reach it ("raced with isolation" and friends).
   */
  readonly coverage = {
    /** isolate found page->private clear (deflated meanwhile; 2025 on). */
    isolate_no_device: 0,
    /** dequeue skipped a page whose lock someone held. */
    dequeue_page_locked: 0,
    /** dequeue skipped a page compaction had isolated. */
    dequeue_isolated: 0,
  };

  constructor(mm: MmState, opts: BalloonCompactionOptions = {}) {
    this.mm = mm;
    this.era = opts.era ?? balloon_era2016;
    if (this.era.device_lookup !== "private")
      throw new RangeError(
        `balloon era ${this.era.name}: device lookup through page->mapping is not modelled`,
      );
    this.compaction = opts.compaction ?? true;
    this.drop_rules = new Set(opts.drop_rules ?? []);
    for (const r of this.drop_rules) {
      if (!BALLOON_RULES.includes(r))
        throw new RangeError(`balloon: unknown rule '${r}' (rules: ${BALLOON_RULES.join(", ")})`);
    }
    this.balloon_pages_lock = this.era.global_pages_lock
      ? mm.new_lock("balloon_pages_lock", "spinlock")
      : null;
    this.handle = this.compaction ? register_movable_ops(mm, this) : 0;
  }

  isolate_page(rt: Runtime, _mm: MmState, pfn: Pfn, mode: number): StepOf<boolean> {
    return balloon_page_isolate(rt, this, pfn, mode);
  }
  migrate_page(rt: Runtime, _mm: MmState, dst: Pfn, src: Pfn, mode: number): StepOf<number> {
    return balloon_page_migrate(rt, this, dst, src, mode);
  }
  putback_page(rt: Runtime, _mm: MmState, pfn: Pfn): Step {
    return balloon_page_putback(rt, this, pfn);
  }
}

/** A named rule: fires when `ok` is false unless the rule was dropped. */
export function rule(bc: BalloonCompaction, name: string, ok: boolean, where: string, pfn: Pfn) {
  if (!ok && !bc.drop_rules.has(name)) throw new BalloonRuleError(name, where, pfn);
}

/** balloon_devinfo_init(): a new, empty device. */
export function balloon_devinfo_init(bc: BalloonCompaction, name: string): BalloonDevInfo {
  const mm = bc.mm;
  const lock = bc.balloon_pages_lock ?? mm.new_lock("b_dev_info->pages_lock", "spinlock");
  const head = mm.list_head_pool.pop() ?? mm.m.mem.alloc_list_head();
  const b = new BalloonDevInfo(bc.devices.length, name, lock, head);
  bc.devices.push(b);
  return b;
}

/** The end of a device (driver removal): it must own no page any more. */
export function balloon_devinfo_release(bc: BalloonCompaction, b: BalloonDevInfo): void {
  if (b.nr_listed !== 0 || b.isolated_pages !== 0 || !list_empty(bc.mm.m.mem, b.pages)) {
    throw new KernelBug(
      `balloon device '${b.name}' released with ${b.nr_listed} listed and ${b.isolated_pages} isolated pages`,
    );
  }
  b.released = true;
  bc.devices[b.id] = null;
  bc.mm.list_head_pool.push(b.pages);
}

/** balloon_page_device(): the device a balloon page belongs to, or null. */
export function balloon_page_device(bc: BalloonCompaction, pfn: Pfn): BalloonDevInfo | null {
  const id = bc.mm.m.mem.page_private[pfn];
  return id === 0 ? null : (bc.devices[id] ?? null);
}

/** Whether the page carries the balloon page type of the era (PageBalloon / PageOffline). */
export function PageBalloon(bc: BalloonCompaction, pfn: Pfn): boolean {
  return bc.mm.m.mem.page_type[pfn] === bc.era.page_type;
}

/**
 * balloon_mapping_gfp_mask(): balloon pages are movable only when compaction
 * can move them; without CONFIG_BALLOON_COMPACTION they come from
 * unmovable memory (GFP_HIGHUSER).
 */
export function balloon_mapping_gfp_mask(bc: BalloonCompaction): number {
  return bc.compaction ? GFP_HIGHUSER_MOVABLE : GFP_HIGHUSER;
}

/** balloon_page_alloc(): a page for the balloon, or -1 (never retries hard, never OOMs). */
export function balloon_page_alloc(rt: Runtime, bc: BalloonCompaction): Pfn {
  const m = bc.mm.m;
  const gfp = balloon_mapping_gfp_mask(bc) | __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN;
  return alloc_pages(m, this_cpu(rt, m), gfp, 0);
}

/** adjust_managed_page_count(): ballooned pages leave (or rejoin) the zone's managed pages. */
export function adjust_managed_page_count(m: Machine, pfn: Pfn, count: number): void {
  const zone = m.page_zone(pfn);
  if (zone) zone.managed_pages += count;
}

/**
 * balloon_page_insert(): make `pfn` a balloon page of `b` and put it on the
 * list. Caller holds the page lock (2016) and the pages lock.
 */
export function balloon_page_insert(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  pfn: Pfn,
): void {
  const mem = bc.mm.m.mem;
  rule(bc, RULE_PAGES_LOCK_HELD, b.pages_lock.owner === rt.current, "balloon_page_insert", pfn);
  if (bc.era.uses_page_lock)
    rule(bc, RULE_PAGE_LOCK_HELD, page_locked_by_me(rt, bc.mm, pfn), "balloon_page_insert", pfn);
  VM_BUG_ON_PAGE(mem.page_type[pfn] !== PGTY_none, mem, pfn, "balloon_page_insert: typed page");
  VM_BUG_ON_PAGE(mem._refcount[pfn] < 1, mem, pfn, "balloon_page_insert: page without reference");
  mem.page_type[pfn] = bc.era.page_type;
  if (bc.compaction) __SetPageMovable(bc.mm, pfn, bc.handle);
  mem.page_private[pfn] = b.id;
  list_add(mem, pfn, b.pages);
  b.nr_listed++;
}

/**
 * __balloon_page_delete(): the state change of balloon_page_delete() without
 * the lock rules, for callers whose atomicity stands in for the locks (the
 * OOM notifier, which runs inside one allocator step).
 */
export function __balloon_page_delete(bc: BalloonCompaction, b: BalloonDevInfo, pfn: Pfn): void {
  const mem = bc.mm.m.mem;
  VM_BUG_ON_PAGE(!PageBalloon(bc, pfn), mem, pfn, "balloon_page_delete: not a balloon page");
  mem.page_type[pfn] = PGTY_none;
  if (bc.compaction) __ClearPageMovable(bc.mm, pfn);
  mem.page_private[pfn] = 0;
  // An isolated page's links belong to the migration core.
  if (!PageIsolated(mem, pfn)) {
    list_del(mem, pfn);
    b.nr_listed--;
  }
}

/**
 * balloon_page_delete(): the page stops being a balloon page and leaves the
 * list (unless isolated). Caller holds the page lock (2016) and, for a
 * listed page, the pages lock.
 */
export function balloon_page_delete(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): void {
  const mem = bc.mm.m.mem;
  const b = balloon_page_device(bc, pfn);
  rule(bc, RULE_PRIVATE_NAMES_DEVICE, b !== null, "balloon_page_delete", pfn);
  if (b === null) return;
  const locked = b.pages_lock.owner === rt.current;
  rule(bc, RULE_PAGES_LOCK_HELD, locked || PageIsolated(mem, pfn), "balloon_page_delete", pfn);
  if (bc.era.uses_page_lock)
    rule(bc, RULE_PAGE_LOCK_HELD, page_locked_by_me(rt, bc.mm, pfn), "balloon_page_delete", pfn);
  __balloon_page_delete(bc, b, pfn);
}

/**
 * balloon_page_finalize() (v6.17 on): clear page->private of a page already
 * taken off the list; the page type stays until the page is freed in those
 * eras, but pagesim's 2016 era clears it too so the page can be freed.
 */
export function balloon_page_finalize(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): void {
  balloon_page_delete(rt, bc, pfn);
}

/** balloon_page_enqueue_one(): pages lock held; a fresh page nobody else can lock. */
function* balloon_page_enqueue_one(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  pfn: Pfn,
): Step {
  const m = bc.mm.m;
  if (bc.era.uses_page_lock) {
    // Only we know this page: failing to lock it means memory corruption.
    if (!(yield* trylock_page(rt, bc.mm, pfn))) BUG(`balloon_page_enqueue: pfn ${pfn} locked`);
  }
  balloon_page_insert(rt, bc, b, pfn);
  if (bc.era.uses_page_lock) yield* unlock_page(rt, bc.mm, pfn);
  if (b.adjust_managed_page_count) adjust_managed_page_count(m, pfn, -1);
  m.vm_events[BALLOON_INFLATE]++;
}

/** balloon_page_enqueue(): add one page the driver allocated to the device. */
export function* balloon_page_enqueue(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  pfn: Pfn,
): Step {
  yield* rt.spin_lock(b.pages_lock);
  yield* balloon_page_enqueue_one(rt, bc, b, pfn);
  yield* rt.spin_unlock(b.pages_lock);
}

/** balloon_page_list_enqueue(): move every page of `list` into the device; returns how many. */
export function* balloon_page_list_enqueue(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  list: number,
): StepOf<number> {
  const mem = bc.mm.m.mem;
  let n = 0;
  yield* rt.spin_lock(b.pages_lock);
  for (let p = mem.lru_next[list]; p !== list; p = mem.lru_next[list]) {
    if (n > mem.nr_pages) BUG("balloon_page_list_enqueue: list walk unbounded");
    list_del(mem, p);
    yield* balloon_page_enqueue_one(rt, bc, b, p);
    n++;
  }
  yield* rt.spin_unlock(b.pages_lock);
  return n;
}

/**
 * balloon_page_list_dequeue(): take up to n_req_pages listed pages off the
 * device onto `list` (as plain pages holding the balloon's reference).
 * Pages whose lock someone holds are skipped: compaction may be isolating
 * or migrating them. Returns how many.
 */
export function* balloon_page_list_dequeue(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  list: number,
  n_req_pages: number,
): StepOf<number> {
  const m = bc.mm.m;
  const mem = m.mem;
  let n = 0;
  let walked = 0;
  yield* rt.spin_lock(b.pages_lock);
  for (let p = mem.lru_next[b.pages]; p !== b.pages && n < n_req_pages; ) {
    if (++walked > mem.nr_pages) BUG("balloon_page_list_dequeue: list walk unbounded");
    // Safe to read ahead: only pages_lock holders unlink pages from the list.
    const next = mem.lru_next[p];
    if (bc.era.uses_page_lock && !(yield* trylock_page(rt, bc.mm, p))) {
      bc.coverage.dequeue_page_locked++;
      p = next;
      continue;
    }
    if (bc.compaction && PageIsolated(mem, p) && !bc.drop_rules.has(RULE_DEQUEUE_SKIPS_ISOLATED)) {
      // Raced with isolation: compaction owns the page now.
      bc.coverage.dequeue_isolated++;
      if (bc.era.uses_page_lock) yield* unlock_page(rt, bc.mm, p);
      p = next;
      continue;
    }
    balloon_page_delete(rt, bc, p);
    if (b.adjust_managed_page_count) adjust_managed_page_count(m, p, 1);
    m.vm_events[BALLOON_DEFLATE]++;
    list_add(mem, p, list);
    if (bc.era.uses_page_lock) yield* unlock_page(rt, bc.mm, p);
    n++;
    p = next;
  }
  yield* rt.spin_unlock(b.pages_lock);
  return n;
}

/**
 * balloon_page_dequeue(): one page off the device, or -1. An empty list
 * with no page isolated while the driver still counts pages means pages
 * were lost: BUG(), as the kernel does rather than loop forever.
 */
export function* balloon_page_dequeue(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
): StepOf<Pfn> {
  const mm = bc.mm;
  const mem = mm.m.mem;
  const list = mm.list_head_pool.pop() ?? mem.alloc_list_head();
  const pfn = yield* balloon_page_dequeue_onto(rt, bc, b, list);
  if (pfn >= 0) list_del(mem, pfn);
  mm.list_head_pool.push(list);
  return pfn;
}

/**
 * balloon_page_dequeue() leaving the page linked on the caller's `list`
 * (what the caller does next in the kernel), so that a page is never
 * unaccounted between two steps; returns it, or -1.
 */
export function* balloon_page_dequeue_onto(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  list: number,
): StepOf<Pfn> {
  const mem = bc.mm.m.mem;
  const n = yield* balloon_page_list_dequeue(rt, bc, b, list, 1);
  if (n === 1) return mem.lru_next[list];
  yield* rt.spin_lock(b.pages_lock);
  const lost = list_empty(mem, b.pages) && b.isolated_pages === 0;
  yield* rt.spin_unlock(b.pages_lock);
  if (lost) BUG(`balloon_page_dequeue: device '${b.name}' has lost its pages`);
  return -1;
}

/**
 * balloon_page_isolate(): the movable_ops isolate_page callback. The core
 * holds the page lock and a reference; take the page off its list.
 */
export function* balloon_page_isolate(
  rt: Runtime,
  bc: BalloonCompaction,
  pfn: Pfn,
  _mode: number,
): StepOf<boolean> {
  const mem = bc.mm.m.mem;
  const global = bc.balloon_pages_lock;
  // 2026: page->private is only stable under the global lock; take it first.
  if (global) yield* rt.spin_lock(global);
  else yield* rt.access(OP_READ, pfn, "private");
  const b = balloon_page_device(bc, pfn);
  if (b === null) {
    // Already deflated (2025 on); before that the page lock rules it out.
    bc.coverage.isolate_no_device++;
    rule(bc, RULE_PRIVATE_NAMES_DEVICE, bc.era.isolate_checks_device, "balloon_page_isolate", pfn);
    if (global) yield* rt.spin_unlock(global);
    return false;
  }
  if (!global) yield* rt.spin_lock(b.pages_lock);
  list_del(mem, pfn);
  b.nr_listed--;
  b.isolated_pages++;
  yield* rt.spin_unlock(b.pages_lock);
  return true;
}

/** balloon_page_putback(): the movable_ops putback_page callback: back on the list. */
export function* balloon_page_putback(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): Step {
  const b = balloon_page_device(bc, pfn);
  rule(bc, RULE_PRIVATE_NAMES_DEVICE, b !== null, "balloon_page_putback", pfn);
  if (b === null) return;
  const mem = bc.mm.m.mem;
  yield* rt.spin_lock(b.pages_lock);
  list_add(mem, pfn, b.pages);
  b.nr_listed++;
  b.isolated_pages--;
  yield* rt.spin_unlock(b.pages_lock);
}

/**
 * balloon_page_migrate(): the movable_ops migrate_page callback: both pages
 * are locked by the core; the device's driver does the move.
 */
export function* balloon_page_migrate(
  rt: Runtime,
  bc: BalloonCompaction,
  newpage: Pfn,
  page: Pfn,
  mode: number,
): StepOf<number> {
  const mem = bc.mm.m.mem;
  VM_BUG_ON_PAGE(!PageLocked(mem, page), mem, page, "balloon_page_migrate: page not locked");
  VM_BUG_ON_PAGE(!PageLocked(mem, newpage), mem, newpage, "balloon_page_migrate: newpage unlocked");
  const b = balloon_page_device(bc, page);
  rule(bc, RULE_PRIVATE_NAMES_DEVICE, b !== null, "balloon_page_migrate", page);
  if (b === null || b.migratepage === null) return -EAGAIN;
  return yield* b.migratepage(rt, b, newpage, page, mode);
}

/**
 * The device's pages on its list, checking every link and page (debug, and
 * the invariants in the header). Returns the list length.
 */
export function verify_balloon_dev_info(bc: BalloonCompaction, b: BalloonDevInfo): number {
  const mem = bc.mm.m.mem;
  const n = list_count_nodes(mem, b.pages, mem.nr_pages);
  if (n !== b.nr_listed)
    throw new KernelBug(`balloon '${b.name}': list has ${n} pages, nr_listed says ${b.nr_listed}`);
  if (b.isolated_pages < 0)
    throw new KernelBug(`balloon '${b.name}': isolated_pages ${b.isolated_pages} < 0`);
  for (let p = mem.lru_next[b.pages]; p !== b.pages; p = mem.lru_next[p]) {
    VM_BUG_ON_PAGE(!PageBalloon(bc, p), mem, p, "balloon list: page without the balloon type");
    VM_BUG_ON_PAGE(mem.page_private[p] !== b.id, mem, p, "balloon list: private names another");
    VM_BUG_ON_PAGE(PageIsolated(mem, p), mem, p, "balloon list: isolated page on the list");
    VM_BUG_ON_PAGE(mem._refcount[p] < 1, mem, p, "balloon list: page without reference");
  }
  return n;
}

/** Pages whose page->private names `b` and that carry the balloon type (O(nr_pages)). */
export function balloon_pages_owned(bc: BalloonCompaction, b: BalloonDevInfo): number {
  const mem = bc.mm.m.mem;
  const t = bc.era.page_type;
  let n = 0;
  for (let p = 0; p < mem.nr_pages; p++)
    if (mem.page_private[p] === b.id && mem.page_type[p] === t) n++;
  return n;
}
