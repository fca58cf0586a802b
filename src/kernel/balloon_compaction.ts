/**
 * kernel/balloon_compaction.ts: models mm/balloon_compaction.c and
 * include/linux/balloon_compaction.h: struct balloon_dev_info, the
 * enqueue/dequeue interface balloon drivers use, and the isolate / migrate /
 * putback callbacks through which compaction moves balloon pages (seeds 000,
 * 002, 003, 004). What differs between kernel eras comes from a BalloonEra
 * (eras/era.ts; registry eras/index.ts): 2012 (device in page->mapping,
 * isolation by refcount, done here with the page lock), 2014 (PageBalloon,
 * PagePrivate = on the list), 2016 and 2022 (the movable_ops core isolates,
 * PG_isolated), 2025 (PG_movable_ops + PageOffline, isolation fails on
 * page->private == 0), 2026 (no page lock here, one global lock).
 *
 * A BalloonCompaction is the interface for one machine: it is registered
 * once as the "balloon" movable_ops driver (the kernel's balloon_aops /
 * balloon_mops) and keeps every balloon device of the machine; a page finds
 * its device through page->private (device id, 0 for none), in 2012 through
 * page->mapping, the device's own balloon mapping (balloon_mapping_alloc()
 * per device; pagesim registers one movable_ops handle per device). Several
 * devices can exist at once in every era, each with its own list and
 * pages_lock.
 *
 * CONFIG_BALLOON_COMPACTION: `compaction: false` builds the interface
 * without it: pages are not marked movable, compaction steps around them,
 * dequeue does not look at PG_isolated. In 2012 the header's stubs then
 * only link and unlink the page (no balloon mapping: nothing says "balloon
 * page"); pagesim marks such a page with the PGTY_balloon page type and
 * its device id in page->private as ghosts, so that the invariants and the
 * host can still tell whose it is.
 *
 * Lock order (2012-2025): page lock, then b_dev_info->pages_lock. From
 * 2016 on enqueue and dequeue hold pages_lock and only *try* the page lock,
 * which is why they do not invert the order (2012/2014: page lock first,
 * and dequeue walks the list without pages_lock). 2026: the global
 * balloon_pages_lock and no page lock. virtio's balloon_lock (a mutex)
 * comes before pages_lock; migratepage only tries it. pages_lock (and the
 * 2026 global lock) is taken with spin_lock_irqsave() everywhere, as in the
 * kernel: nothing under it may sleep (the runtime reports it).
 * Rules (kernel/rules.ts: named assertions and the steps they stand for;
 * each can be switched off through MmState.dropped_rules, or the
 * drop_rules option here, and a broken one throws RuleError):
 *   pages-lock-held:   the list, isolated_pages and page->private change
 *                      only under the pages lock (dropped: isolation and
 *                      putback do not take it);
 *   page-lock-held:    insert and delete run under the page lock (seed 000
 *                      i, seed 004 i; not in 2026; dropped: enqueue and
 *                      dequeue do not trylock the page);
 *   dequeue-skips-isolated: dequeue never takes a page compaction has
 *                      isolated (2014: PagePrivate clear; 2016, 2022);
 *   dequeue-trylock-page: 2016-2025: the dequeue walk holds pages_lock and
 *                      only trylocks each page (dropped: lock_page, which
 *                      sleeps with interrupts disabled and inverts the
 *                      lock order);
 *   private-names-device: a page the core hands to isolate / putback /
 *                      migrate names a live device (2025 on: isolation
 *                      fails on page->private == 0);
 *   2012: recheck-count-under-page-lock, dequeue-extra-ref;
 *   2014: recheck-balloon-under-page-lock, clear-private-flag-with-list-removal;
 *   2026: isolate-reads-private-under-lock.
 * Invariants (verify_balloon_dev_info): every page on a device list has the
 * balloon page type, page->private = the device id, no PG_isolated, one
 * reference (the balloon's) or more; list length = nr_listed; list length +
 * isolated_pages = the pages the device owns (balloon_pages_owned) at every
 * point where no migration is half done.
 */

import type { Lock, Runtime, Step, StepOf } from "../runtime/runtime.ts";
import { OP_ATOMIC, OP_READ, OP_WRITE } from "../runtime/runtime.ts";
import { BUG, KernelBug, VM_BUG_ON_PAGE } from "./bug.ts";
import type { BalloonEra } from "./eras/era.ts";
import { era2012 } from "./eras/era2012.ts";
import { balloon_era2016 } from "./eras/era2016.ts";
import { EAGAIN } from "./errno.ts";
import {
  __GFP_NOMEMALLOC,
  __GFP_NORETRY,
  __GFP_NOWARN,
  GFP_HIGHUSER,
  GFP_HIGHUSER_MOVABLE,
} from "./gfp.ts";
import {
  LIST_POISON1,
  LIST_POISON2,
  list_add,
  list_count_nodes,
  list_del,
  list_empty,
  list_entry_linked,
} from "./list.ts";
import type { Machine } from "./machine.ts";
import { put_page, this_cpu } from "./mm/lru.ts";
import { lock_page, page_locked_by_me, trylock_page, unlock_page } from "./mm/pagemap.ts";
import type { MmState } from "./mm/state.ts";
import {
  __ClearPageMovable,
  __SetPageMovable,
  type MovableOperations,
  register_movable_ops,
} from "./movable_ops.ts";
import {
  ClearPageFlag,
  type MemMap,
  PageFlag,
  PageIsolated,
  PageLocked,
  type Pfn,
  PG_private,
  PGTY_none,
  SetPageFlag,
} from "./page.ts";
import { alloc_pages } from "./page_alloc/alloc.ts";
import {
  RULE_CLEAR_PRIVATE_FLAG,
  RULE_CORE_PAGE_LOCK,
  RULE_DEQUEUE_EXTRA_REF,
  RULE_DEQUEUE_SKIPS_ISOLATED,
  RULE_DEQUEUE_TRYLOCK_PAGE,
  RULE_ENQUEUE_DETACHED,
  RULE_PAGE_LOCK_HELD,
  RULE_PAGES_LOCK_HELD,
  RULE_PRIVATE_NAMES_DEVICE,
  RULE_PRIVATE_UNDER_LOCK,
  RULE_RECHECK_BALLOON,
  RULE_RECHECK_COUNT,
  RuleError,
  rule_assert,
  rule_holds,
  rule_names,
} from "./rules.ts";
import { BALLOON_DEFLATE, BALLOON_INFLATE } from "./vmstat_items.ts";

export {
  RULE_DEQUEUE_SKIPS_ISOLATED,
  RULE_PAGE_LOCK_HELD,
  RULE_PAGES_LOCK_HELD,
  RULE_PRIVATE_NAMES_DEVICE,
};
/** The balloon's broken-rule error is the one of every era (kernel/rules.ts). */
export const BalloonRuleError = RuleError;

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
  /**
   * Whether `migratepage` sleeps (virtio-balloon waits for the host; cmm's
   * hcalls do not), and how often that made a caller that cannot sleep
   * leave one of this device's pages alone (movable_ops.ts, nosleep_refuses).
   */
  migratepage_sleeps = false;
  nosleep_refused = 0;
  /** Inflation takes pages out of the managed count (v6.x field; the 2016 driver did it itself). */
  adjust_managed_page_count = false;
  /**
   * 2012: the movable_ops handle of the device's own balloon mapping
   * (balloon_mapping_alloc() gave each device one; page->mapping names it
   * and mapping->private_data is the device). 0 in other eras and without
   * CONFIG_BALLOON_COMPACTION.
   */
  mapping = 0;
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
  /** The page type whose movable_ops these are (2014, 2025 on: ops found by type). */
  readonly page_type: number;
  /** movable_ops handle; 0 when CONFIG_BALLOON_COMPACTION is off. */
  readonly handle: number;
  /** device id -> device; slot 0 unused. */
  readonly devices: (BalloonDevInfo | null)[] = [null];
  /** 2012: balloon mapping (movable_ops handle) -> its device (mapping->private_data). */
  readonly mapping_devices: (BalloonDevInfo | null)[] = [];
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
    /** balloon_page_finalize() ran (2025 on, where it replaced delete). */
    finalize: 0,
  };

  constructor(mm: MmState, opts: BalloonCompactionOptions = {}) {
    this.mm = mm;
    this.era = opts.era ?? balloon_era2016;
    this.page_type = this.era.page_type;
    this.compaction = opts.compaction ?? true;
    for (const r of opts.drop_rules ?? []) {
      if (!rule_names().includes(r))
        throw new RangeError(`balloon: unknown rule '${r}' (rules: ${rule_names().join(", ")})`);
      mm.dropped_rules.add(r);
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
  /** The page's device sleeps in its migratepage: count the refusal. */
  migrate_page_may_sleep(_mm: MmState, pfn: Pfn): boolean {
    const b = balloon_page_device(this, pfn);
    if (b === null || !b.migratepage_sleeps) return false;
    b.nosleep_refused++;
    return true;
  }
  putback_page(rt: Runtime, _mm: MmState, pfn: Pfn): Step {
    return balloon_page_putback(rt, this, pfn);
  }
}

/** A named rule of the balloon's era: fires when `ok` is false unless the rule was dropped. */
export function rule(bc: BalloonCompaction, name: string, ok: boolean, where: string, pfn: Pfn) {
  rule_assert(bc.mm, bc.era.name, name, ok, where, pfn);
}

/** Whether the balloon's era rule `name` is in force. */
function holds(bc: BalloonCompaction, name: string): boolean {
  return rule_holds(bc.mm, name);
}

/** Whether the movable_ops core locks pages (every era; 2026 unless core-page-lock is dropped). */
export function core_locks_pages(bc: BalloonCompaction): boolean {
  return bc.mm.era.uses_page_lock && holds(bc, RULE_CORE_PAGE_LOCK);
}

/**
 * balloon_devinfo_init(): a new, empty device. 2012 with
 * CONFIG_BALLOON_COMPACTION: also balloon_mapping_alloc(), the device's own
 * balloon mapping (its a_ops the shared balloon_aops), so several devices
 * coexist: pagesim registers the interface once more as a movable_ops
 * driver and the new handle is that mapping.
 */
export function balloon_devinfo_init(bc: BalloonCompaction, name: string): BalloonDevInfo {
  const mm = bc.mm;
  const lock = bc.balloon_pages_lock ?? mm.new_lock("b_dev_info->pages_lock", "spinlock");
  const head = mm.list_head_pool.pop() ?? mm.m.mem.alloc_list_head();
  const b = new BalloonDevInfo(bc.devices.length, name, lock, head);
  if (bc.era.device_lookup === "mapping" && bc.compaction) {
    b.mapping = register_movable_ops(mm, bc);
    bc.mapping_devices[b.mapping] = b;
  }
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
  // balloon_mapping_free(): no page names the mapping any more.
  if (b.mapping !== 0) bc.mapping_devices[b.mapping] = null;
  bc.mm.list_head_pool.push(b.pages);
}

/**
 * balloon_page_device(): the device a balloon page belongs to, or null.
 * 2012: page->mapping is the device's own balloon mapping, whose
 * private_data is the device; later: page->private.
 */
export function balloon_page_device(bc: BalloonCompaction, pfn: Pfn): BalloonDevInfo | null {
  const mem = bc.mm.m.mem;
  if (bc.era.device_lookup === "mapping") {
    if (bc.compaction) {
      const h = era2012.page_movable_ops_handle(mem, pfn);
      return h === 0 ? null : (bc.mapping_devices[h] ?? null);
    }
    // Without CONFIG_BALLOON_COMPACTION there is no mapping: the ghost
    // page type, and the ghost device id in page->private (pagesim's own).
    if (mem.page_type[pfn] !== bc.era.page_type) return null;
  }
  const id = mem.page_private[pfn];
  return id === 0 ? null : (bc.devices[id] ?? null);
}

/**
 * Whether the page is a balloon page of the era: the balloon mapping
 * (2012; without CONFIG_BALLOON_COMPACTION the ghost page type), else the
 * page type (PageBalloon / PageOffline).
 */
export function PageBalloon(bc: BalloonCompaction, pfn: Pfn): boolean {
  if (bc.era.device_lookup === "mapping") return balloon_page_device(bc, pfn) !== null;
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

/**
 * The gfp of a balloon page: balloon_mapping_gfp_mask() with
 * __GFP_NOMEMALLOC (no reserves) and __GFP_NORETRY (no hard reclaim, no
 * OOM). 2012 and 2014 (balloon_page_enqueue() allocated then) stop there;
 * from the v5.2 balloon_page_alloc(), the shape of the 2016 era and later,
 * __GFP_NOWARN too (a failure is expected: the driver backs off).
 */
export function balloon_page_alloc_gfp(bc: BalloonCompaction): number {
  const gfp = balloon_mapping_gfp_mask(bc) | __GFP_NOMEMALLOC | __GFP_NORETRY;
  return bc.era.isolation === "core" ? gfp | __GFP_NOWARN : gfp;
}

/** balloon_page_alloc(): a page for the balloon, or -1 (never retries hard, never OOMs). */
export function balloon_page_alloc(rt: Runtime, bc: BalloonCompaction): Pfn {
  const m = bc.mm.m;
  return alloc_pages(m, this_cpu(rt, m), balloon_page_alloc_gfp(bc), 0);
}

/** adjust_managed_page_count(): ballooned pages leave (or rejoin) the zone's managed pages. */
export function adjust_managed_page_count(m: Machine, pfn: Pfn, count: number): void {
  const zone = m.page_zone(pfn);
  if (zone) zone.managed_pages += count;
}

/**
 * Whether balloon pages carry the era's page type: from 2014 on (PageBalloon,
 * PageOffline); in 2012 only as the ghost of a build without
 * CONFIG_BALLOON_COMPACTION (the stubs set no balloon mapping).
 */
function typed_balloon(bc: BalloonCompaction): boolean {
  return bc.era.device_lookup === "private" || !bc.compaction;
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
  const by_private = bc.era.device_lookup === "private";
  if (typed_balloon(bc)) mem.page_type[pfn] = bc.era.page_type;
  // 2012: page->mapping = the balloon mapping; 2014: SetPagePrivate (on the
  // list; the !CONFIG_BALLOON_COMPACTION stub did not set it); 2016:
  // PAGE_MAPPING_MOVABLE; 2025 on: PG_movable_ops.
  if (bc.compaction) __SetPageMovable(bc.mm, pfn, b.mapping !== 0 ? b.mapping : bc.handle);
  // 2012 without compaction: the ghost device id (no mapping to name it).
  if (by_private || !bc.compaction) mem.page_private[pfn] = b.id;
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
  // Whether the page is on the device list: 2014 says so with PagePrivate;
  // the other eras by the isolated flag (2012: pagesim's ghost; the kernel's
  // 2012 driver unlinked the isolated old page from the migration list
  // itself, pagesim lets the migration core do it).
  const listed =
    bc.era.isolation === "private_flag"
      ? !bc.compaction || PageFlag(mem, pfn, PG_private)
      : !PageIsolated(mem, pfn);
  if (typed_balloon(bc)) mem.page_type[pfn] = PGTY_none;
  if (bc.era.isolation === "private_flag") ClearPageFlag(mem, pfn, PG_private);
  else if (bc.compaction) __ClearPageMovable(bc.mm, pfn);
  mem.page_private[pfn] = 0;
  // An isolated page's links belong to the migration core.
  if (listed) {
    list_del(mem, pfn);
    b.nr_listed--;
  }
}

/**
 * The device a page leaving the balloon belongs to (delete, finalize), with
 * the rules both check: it names a live device (private-names-device; null
 * when the rule is dropped and it does not), and the caller holds that
 * device's pages lock unless the page is isolated (pages-lock-held).
 */
function leaving_device(
  rt: Runtime,
  bc: BalloonCompaction,
  pfn: Pfn,
  fn: string,
): BalloonDevInfo | null {
  const b = balloon_page_device(bc, pfn);
  rule(bc, RULE_PRIVATE_NAMES_DEVICE, b !== null, fn, pfn);
  if (b === null) return null;
  const locked = b.pages_lock.owner === rt.current;
  rule(bc, RULE_PAGES_LOCK_HELD, locked || PageIsolated(bc.mm.m.mem, pfn), fn, pfn);
  return b;
}

/**
 * balloon_page_delete(): the page stops being a balloon page and leaves the
 * list (unless isolated). Caller holds the page lock (2016) and, for a
 * listed page, the pages lock.
 */
export function balloon_page_delete(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): void {
  const b = leaving_device(rt, bc, pfn, "balloon_page_delete");
  if (b === null) return;
  if (bc.era.uses_page_lock)
    rule(bc, RULE_PAGE_LOCK_HELD, page_locked_by_me(rt, bc.mm, pfn), "balloon_page_delete", pfn);
  __balloon_page_delete(bc, b, pfn);
}

/**
 * balloon_page_finalize() (v6.17 on, the 2025 and 2026 eras, where it
 * replaced balloon_page_delete()): the caller has already taken the page
 * off the list (dequeue) or it is isolated (the old page of a migration);
 * the page stops naming its device: page->private = 0 (under the pages
 * lock, or isolated). The kernel leaves PageOffline and PG_movable_ops
 * until the page is freed; pagesim clears them here so the allocator
 * accepts the free (README, Fidelity).
 */
export function balloon_page_finalize(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): void {
  const mem = bc.mm.m.mem;
  if (leaving_device(rt, bc, pfn, "balloon_page_finalize") === null) return;
  VM_BUG_ON_PAGE(
    !PageIsolated(mem, pfn) && list_entry_linked(mem, pfn),
    mem,
    pfn,
    "balloon_page_finalize: page still on the balloon list",
  );
  if (typed_balloon(bc)) mem.page_type[pfn] = PGTY_none;
  if (bc.compaction) __ClearPageMovable(bc.mm, pfn);
  mem.page_private[pfn] = 0;
  bc.coverage.finalize++;
}

/**
 * The page leaves the balloon as the era's code writes it: 2025 on the
 * caller unlinks a listed page and calls balloon_page_finalize(); before,
 * balloon_page_delete() does both.
 */
export function balloon_page_remove(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): void {
  if (!bc.era.isolate_checks_device) {
    balloon_page_delete(rt, bc, pfn);
    return;
  }
  const mem = bc.mm.m.mem;
  if (!PageIsolated(mem, pfn)) {
    const b = balloon_page_device(bc, pfn);
    if (b !== null) {
      list_del(mem, pfn);
      b.nr_listed--;
    }
  }
  balloon_page_finalize(rt, bc, pfn);
}

/** Whether enqueue and dequeue take the page lock (era, and rule page-lock-held). */
function takes_page_lock(bc: BalloonCompaction): boolean {
  return bc.era.uses_page_lock && holds(bc, RULE_PAGE_LOCK_HELD);
}

/** 2012 and 2014 lock the page before pages_lock; 2016 on trylock it under pages_lock. */
function page_lock_first(bc: BalloonCompaction): boolean {
  return bc.era.isolation !== "core";
}

/**
 * balloon_page_enqueue_one(): pages lock held (2016 on; 2012/2014: the
 * page lock is taken first); a fresh page nobody else can lock.
 */
function* balloon_page_enqueue_one(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  pfn: Pfn,
): Step {
  const lock = enqueue_one_begin(rt, bc, pfn);
  // Only we know this page: failing to lock it means memory corruption.
  if (lock && !(yield* trylock_page(rt, bc.mm, pfn)))
    BUG(`balloon_page_enqueue: pfn ${pfn} locked`);
  balloon_page_insert(rt, bc, b, pfn);
  if (lock) yield* unlock_page(rt, bc.mm, pfn);
  enqueue_one_end(bc, b, pfn);
}

/** balloon_page_enqueue_one() up to the page lock: whether to take it. */
function enqueue_one_begin(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): boolean {
  // Before the 2019 fix the single-page path unlinked a page that was on no list.
  if (!holds(bc, RULE_ENQUEUE_DETACHED)) list_del(bc.mm.m.mem, pfn);
  // The single-page path of 2012/2014 locked the page before pages_lock.
  return takes_page_lock(bc) && !page_locked_by_me(rt, bc.mm, pfn);
}

/** balloon_page_enqueue_one() after the page lock: the counts. */
function enqueue_one_end(bc: BalloonCompaction, b: BalloonDevInfo, pfn: Pfn): void {
  const m = bc.mm.m;
  if (b.adjust_managed_page_count) adjust_managed_page_count(m, pfn, -1);
  m.vm_events[BALLOON_INFLATE]++;
}

/**
 * balloon_page_enqueue(): add one page the driver allocated to the device.
 * balloon_page_enqueue_one() is written out inline (the same steps): the
 * driver calls this once per page, and one generator fewer per page is a
 * tenth of an inflation's cost.
 */
export function* balloon_page_enqueue(
  rt: Runtime,
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  pfn: Pfn,
): Step {
  const first = takes_page_lock(bc) && page_lock_first(bc);
  if (first && !(yield* trylock_page(rt, bc.mm, pfn)))
    BUG(`balloon_page_enqueue: pfn ${pfn} locked`);
  const flags = yield* rt.spin_lock_irqsave(b.pages_lock);
  const lock = enqueue_one_begin(rt, bc, pfn);
  if (lock && !(yield* trylock_page(rt, bc.mm, pfn)))
    BUG(`balloon_page_enqueue: pfn ${pfn} locked`);
  balloon_page_insert(rt, bc, b, pfn);
  if (lock) yield* unlock_page(rt, bc.mm, pfn);
  enqueue_one_end(bc, b, pfn);
  yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  if (first) yield* unlock_page(rt, bc.mm, pfn);
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
  const flags = yield* rt.spin_lock_irqsave(b.pages_lock);
  for (let p = mem.lru_next[list]; p !== list; p = mem.lru_next[list]) {
    if (n > mem.nr_pages) BUG("balloon_page_list_enqueue: list walk unbounded");
    if (holds(bc, RULE_ENQUEUE_DETACHED)) list_del(mem, p);
    yield* balloon_page_enqueue_one(rt, bc, b, p);
    n++;
  }
  yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  return n;
}

/**
 * balloon_page_list_dequeue(): take up to n_req_pages listed pages off the
 * device onto `list` (as plain pages holding the balloon's reference).
 * Pages whose lock someone holds are skipped: compaction may be isolating
 * or migrating them. Returns how many.
 * 2016 on: the whole walk under pages_lock, which is what makes reading
 * ahead safe. 2012 and 2014: the walk itself runs without pages_lock
 * (list_for_each_entry_safe), pages_lock is taken around each delete; a
 * link read ahead may go stale while the page trylock is a step. 2012 takes
 * an extra reference before the delete (rule dequeue-extra-ref), which the
 * page keeps until the driver hands it back with balloon_page_free().
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
  const locked_walk = bc.era.isolation === "core";
  const page_lock = takes_page_lock(bc);
  let n = 0;
  let walked = 0;
  const walk_flags = locked_walk ? yield* rt.spin_lock_irqsave(b.pages_lock) : 0;
  for (let p = mem.lru_next[b.pages]; p !== b.pages && n < n_req_pages; ) {
    if (++walked > mem.nr_pages) BUG("balloon_page_list_dequeue: list walk unbounded");
    if (p < 0 || p >= mem.nr_pages)
      BUG(`balloon_page_list_dequeue: walked off device '${b.name}' list onto ${p}`);
    // Safe to read ahead only if pages_lock is held for the walk (2016 on).
    const next = mem.lru_next[p];
    if (page_lock && locked_walk && !holds(bc, RULE_DEQUEUE_TRYLOCK_PAGE)) {
      // Rule dropped: wait for the page lock with pages_lock held and
      // interrupts disabled, against the order page lock -> pages_lock.
      yield* lock_page(rt, bc.mm, p);
    } else if (page_lock && !(yield* trylock_page(rt, bc.mm, p))) {
      bc.coverage.dequeue_page_locked++;
      p = next;
      continue;
    }
    if (bc.compaction && dequeue_sees_isolated(bc, p)) {
      // Raced with isolation: compaction owns the page now.
      bc.coverage.dequeue_isolated++;
      if (page_lock) yield* unlock_page(rt, bc.mm, p);
      p = next;
      continue;
    }
    const flags = locked_walk ? 0 : yield* rt.spin_lock_irqsave(b.pages_lock);
    if (dequeue_takes_extra_ref(bc)) mem._refcount[p]++;
    balloon_page_remove(rt, bc, p);
    if (b.adjust_managed_page_count) adjust_managed_page_count(m, p, 1);
    m.vm_events[BALLOON_DEFLATE]++;
    list_add(mem, p, list);
    if (!locked_walk) yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
    if (page_lock) yield* unlock_page(rt, bc.mm, p);
    // 2012: the extra reference stays until the driver's balloon_page_free().
    n++;
    p = next;
  }
  if (locked_walk) yield* rt.spin_unlock_irqrestore(b.pages_lock, walk_flags);
  return n;
}

/**
 * balloon_page_free() (v3.8-v3.17): a driver gives a deflated page back to
 * the allocator. In 2012 the page still holds dequeue's extra reference
 * (rule dequeue-extra-ref) besides the balloon's: both go, the extra one
 * first. Later eras have no such function; their drivers put_page() the
 * balloon's reference, which is what this does for them.
 */
export function balloon_page_free(rt: Runtime, bc: BalloonCompaction, page: Pfn): void {
  if (dequeue_takes_extra_ref(bc)) put_page(rt, bc.mm, page);
  put_page(rt, bc.mm, page);
}

/** 2012 (rule dequeue-extra-ref): dequeue pins the page once more, balloon_page_free() unpins it. */
function dequeue_takes_extra_ref(bc: BalloonCompaction): boolean {
  return bc.era.isolation === "refcount" && holds(bc, RULE_DEQUEUE_EXTRA_REF);
}

/**
 * Whether dequeue must skip page `p` (its lock held when the era locks):
 * 2014 a page without PagePrivate (rule dequeue-skips-isolated; only with
 * compaction, the 2014 fix of 4d88e6f7d5ff); 2016 and 2022 PG_isolated;
 * 2012 has no test (the page lock and the refcount stand in); 2025 on
 * isolated pages are never on the list.
 */
function dequeue_sees_isolated(bc: BalloonCompaction, p: Pfn): boolean {
  const mem = bc.mm.m.mem;
  if (!holds(bc, RULE_DEQUEUE_SKIPS_ISOLATED)) return false;
  if (bc.era.isolation === "private_flag") return !PageFlag(mem, p, PG_private);
  if (bc.era.isolation === "core" && !bc.era.isolate_checks_device) return PageIsolated(mem, p);
  return false;
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
  const flags = yield* rt.spin_lock_irqsave(b.pages_lock);
  const lost = list_empty(mem, b.pages) && b.isolated_pages === 0;
  yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  if (lost) BUG(`balloon_page_dequeue: device '${b.name}' has lost its pages`);
  return -1;
}

/**
 * The announced field of every store of an unlocked list update (below):
 * while a thread's next step is one of them, the list is legitimately half
 * updated, and the checker's link invariants wait for the last store.
 */
export const UNLOCKED_LIST_STORE = "unlocked lru";
const STORE_PREV = `${UNLOCKED_LIST_STORE}.prev`;
const STORE_NEXT = `${UNLOCKED_LIST_STORE}.next`;
const STORE_POISON = `${UNLOCKED_LIST_STORE} poison`;

/**
 * list_del() where a dropped pages-lock rule leaves the device list
 * unprotected: what the kernel's list_del() is without the lock's
 * exclusion, separate pointer stores, each a step another CPU may run
 * between: read the entry's links (the CONFIG_DEBUG_LIST check runs on
 * what is read; list.ts's list_del() reports a bad entry), then
 * next->prev = prev, then prev->next = next, then poison the entry. A
 * neighbour unlinked or linked concurrently can leave the list torn (a
 * lost store); the checker sees it when the stores are done.
 */
function* lockless_list_del(rt: Runtime, mem: MemMap, entry: Pfn): Step {
  yield* rt.access(OP_READ, entry, "lru");
  const next = mem.lru_next[entry];
  const prev = mem.lru_prev[entry];
  if (next < 0 || prev < 0 || mem.lru_prev[next] !== entry || mem.lru_next[prev] !== entry) {
    list_del(mem, entry); // throws the list corruption report
    BUG(`lockless_list_del: pfn ${entry} passed list_del's check`);
  }
  yield* rt.access(OP_WRITE, next, STORE_PREV);
  mem.lru_prev[next] = prev;
  yield* rt.access(OP_WRITE, prev, STORE_NEXT);
  mem.lru_next[prev] = next;
  yield* rt.access(OP_WRITE, entry, STORE_POISON);
  mem.lru_next[entry] = LIST_POISON1;
  mem.lru_prev[entry] = LIST_POISON2;
}

/**
 * list_add() of `entry` after `head` without the lock, as lockless_list_del():
 * read head->next (and check the pair), then next->prev = entry together
 * with the entry's own links (nobody else reaches the entry yet), then
 * head->next = entry.
 */
function* lockless_list_add(rt: Runtime, mem: MemMap, entry: Pfn, head: number): Step {
  yield* rt.access(OP_READ, head, "lru");
  const next = mem.lru_next[head];
  if (next < 0 || mem.lru_prev[next] !== head || entry === head || entry === next) {
    list_add(mem, entry, head); // throws the list corruption report
    BUG(`lockless_list_add: pfn ${entry} passed list_add's check`);
  }
  yield* rt.access(OP_WRITE, next, STORE_PREV);
  mem.lru_prev[next] = entry;
  mem.lru_next[entry] = next;
  mem.lru_prev[entry] = head;
  yield* rt.access(OP_WRITE, head, STORE_NEXT);
  mem.lru_next[head] = entry;
}

/**
 * balloon_page_isolate(): the isolate_page callback. 2012 and 2014: called
 * by compaction after its lockless test, it pins and locks the page itself
 * (balloon_page_isolate of v3.8 / v3.18); later the movable_ops core holds
 * the page lock and a reference and this only takes the page off its list.
 */
export function* balloon_page_isolate(
  rt: Runtime,
  bc: BalloonCompaction,
  pfn: Pfn,
  _mode: number,
): StepOf<boolean> {
  if (bc.era.isolation !== "core") return yield* balloon_page_isolate_locked(rt, bc, pfn);
  const mem = bc.mm.m.mem;
  const global = bc.balloon_pages_lock;
  const pages_lock = holds(bc, RULE_PAGES_LOCK_HELD);
  // 2026: page->private is only stable under the global lock; take it first.
  const early = global !== null && pages_lock && holds(bc, RULE_PRIVATE_UNDER_LOCK);
  let flags = 0;
  if (early) flags = yield* rt.spin_lock_irqsave(global);
  else yield* rt.access(OP_READ, pfn, "private");
  let b = balloon_page_device(bc, pfn);
  if (b === null && !holds(bc, RULE_PRIVATE_NAMES_DEVICE) && bc.era.isolate_checks_device) {
    // Rule dropped: trust the lockless look that found a movable page.
    b = bc.devices.find((d) => d !== null) ?? null;
  }
  if (b === null) {
    // Already deflated (2025 on); before that the page lock rules it out.
    bc.coverage.isolate_no_device++;
    rule(bc, RULE_PRIVATE_NAMES_DEVICE, bc.era.isolate_checks_device, "balloon_page_isolate", pfn);
    if (early) yield* rt.spin_unlock_irqrestore(global, flags);
    return false;
  }
  if (pages_lock && !early) flags = yield* rt.spin_lock_irqsave(b.pages_lock);
  if (pages_lock) list_del(mem, pfn);
  else yield* lockless_list_del(rt, mem, pfn);
  b.nr_listed--;
  b.isolated_pages++;
  if (pages_lock) yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  return true;
}

/**
 * balloon_page_isolate() of 2012 and 2014: pin the page unless it is being
 * freed, trylock it, recheck under the lock (2012: the balloon mapping and
 * refcount == 2, rule recheck-count-under-page-lock; 2014: PageBalloon &&
 * PagePrivate, rule recheck-balloon-under-page-lock), then under pages_lock
 * unlink it and count it (2014: and clear PagePrivate, rule
 * clear-private-flag-with-list-removal). Keeps the pin on success. Sets the
 * PG_isolated ghost with the list removal (era.ts).
 */
function* balloon_page_isolate_locked(
  rt: Runtime,
  bc: BalloonCompaction,
  pfn: Pfn,
): StepOf<boolean> {
  const mm = bc.mm;
  const mem = mm.m.mem;
  yield* rt.access(OP_ATOMIC, pfn, "refcount");
  if (mem._refcount[pfn] === 0) return false; // get_page_unless_zero failed
  mem._refcount[pfn]++;
  if (!(yield* trylock_page(rt, mm, pfn))) {
    put_page(rt, mm, pfn);
    return false;
  }
  const b = balloon_page_device(bc, pfn);
  let ok = b !== null && PageBalloon(bc, pfn);
  if (bc.era.isolation === "refcount" && holds(bc, RULE_RECHECK_COUNT))
    ok &&= mem._refcount[pfn] === 2;
  if (bc.era.isolation === "private_flag" && holds(bc, RULE_RECHECK_BALLOON))
    ok &&= PageFlag(mem, pfn, PG_private);
  if (ok && b !== null) {
    const pages_lock = holds(bc, RULE_PAGES_LOCK_HELD);
    const flags = pages_lock ? yield* rt.spin_lock_irqsave(b.pages_lock) : 0;
    if (bc.era.isolation === "private_flag" && holds(bc, RULE_CLEAR_PRIVATE_FLAG))
      ClearPageFlag(mem, pfn, PG_private);
    if (pages_lock) list_del(mem, pfn);
    else yield* lockless_list_del(rt, mem, pfn);
    b.nr_listed--;
    b.isolated_pages++;
    mm.era.SetPageIsolated(mem, pfn);
    if (pages_lock) yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  }
  yield* unlock_page(rt, mm, pfn);
  if (!ok) put_page(rt, mm, pfn);
  return ok;
}

/**
 * balloon_page_putback(): the putback_page callback: back on the list.
 * 2012 and 2014 take the page lock here (lock_page; the core does not) and
 * clear the PG_isolated ghost; 2014 sets PagePrivate again. The caller (the
 * core) drops the isolation reference.
 */
export function* balloon_page_putback(rt: Runtime, bc: BalloonCompaction, pfn: Pfn): Step {
  const own_lock = bc.era.isolation !== "core";
  const mem = bc.mm.m.mem;
  if (own_lock) yield* lock_page(rt, bc.mm, pfn);
  const b = balloon_page_device(bc, pfn);
  rule(bc, RULE_PRIVATE_NAMES_DEVICE, b !== null, "balloon_page_putback", pfn);
  if (b !== null) {
    const pages_lock = holds(bc, RULE_PAGES_LOCK_HELD);
    const flags = pages_lock ? yield* rt.spin_lock_irqsave(b.pages_lock) : 0;
    // Unlocked (rule dropped), the flags change with the last store.
    if (pages_lock) list_add(mem, pfn, b.pages);
    else yield* lockless_list_add(rt, mem, pfn, b.pages);
    if (bc.era.isolation === "private_flag") SetPageFlag(mem, pfn, PG_private);
    if (own_lock) bc.mm.era.ClearPageIsolated(mem, pfn);
    b.nr_listed++;
    b.isolated_pages--;
    if (pages_lock) yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  }
  if (own_lock) yield* unlock_page(rt, bc.mm, pfn);
}

/**
 * balloon_page_migrate(): the migrate_page callback: both pages are locked
 * by the core (unless the 2026 core's page lock rule is dropped); the
 * device's driver does the move.
 */
export function* balloon_page_migrate(
  rt: Runtime,
  bc: BalloonCompaction,
  newpage: Pfn,
  page: Pfn,
  mode: number,
): StepOf<number> {
  const mem = bc.mm.m.mem;
  if (core_locks_pages(bc)) {
    VM_BUG_ON_PAGE(!PageLocked(mem, page), mem, page, "balloon_page_migrate: page not locked");
    VM_BUG_ON_PAGE(
      !PageLocked(mem, newpage),
      mem,
      newpage,
      "balloon_page_migrate: newpage unlocked",
    );
  }
  const b = balloon_page_device(bc, page);
  rule(bc, RULE_PRIVATE_NAMES_DEVICE, b !== null, "balloon_page_migrate", page);
  if (b === null || b.migratepage === null) return -EAGAIN;
  return yield* b.migratepage(rt, b, newpage, page, mode);
}

/**
 * The device's pages on its list, checking every link and page (debug, and
 * the invariants in the header). Returns the list length. `mid_step`: the
 * check runs between any two steps, where a listed page may still carry
 * PG_isolated while its page lock is held (the core clears the flag after
 * the putback callback relinked the page, both under that lock).
 */
export function verify_balloon_dev_info(
  bc: BalloonCompaction,
  b: BalloonDevInfo,
  mid_step = false,
): number {
  const mem = bc.mm.m.mem;
  const n = list_count_nodes(mem, b.pages, mem.nr_pages);
  if (n !== b.nr_listed)
    throw new KernelBug(`balloon '${b.name}': list has ${n} pages, nr_listed says ${b.nr_listed}`);
  if (b.isolated_pages < 0)
    throw new KernelBug(`balloon '${b.name}': isolated_pages ${b.isolated_pages} < 0`);
  for (let p = mem.lru_next[b.pages]; p !== b.pages; p = mem.lru_next[p]) {
    VM_BUG_ON_PAGE(!PageBalloon(bc, p), mem, p, "balloon list: page without the balloon type");
    VM_BUG_ON_PAGE(balloon_page_device(bc, p) !== b, mem, p, "balloon list: names another device");
    VM_BUG_ON_PAGE(
      PageIsolated(mem, p) && !(mid_step && PageLocked(mem, p)),
      mem,
      p,
      "balloon list: isolated page on the list",
    );
    VM_BUG_ON_PAGE(mem._refcount[p] < 1, mem, p, "balloon list: page without reference");
  }
  return n;
}

/** Pages that belong to `b` by the era's identity (balloon_page_device; O(nr_pages)). */
export function balloon_pages_owned(bc: BalloonCompaction, b: BalloonDevInfo): number {
  const mem = bc.mm.m.mem;
  let n = 0;
  for (let p = 0; p < mem.nr_pages; p++)
    if (PageBalloon(bc, p) && balloon_page_device(bc, p) === b) n++;
  return n;
}
