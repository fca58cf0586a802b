/**
 * kernel/migrate.ts: page migration as in v4.8 mm/migrate.c (the era of the
 * movable_ops framework): migrate_pages(), unmap_and_move(),
 * __unmap_and_move(), move_to_new_page(), putback_movable_pages().
 *
 * migrate_pages() makes up to NR_MIGRATE_PASSES (10) passes over the list
 * while some page asked to be retried (-EAGAIN); from the fourth pass on
 * (`force`) a sync caller may sleep on a page lock. Any other error is
 * permanent: the page is put back at once. Pages still asking for a retry
 * after the last pass count as failed and stay on the list; the caller puts
 * them back with putback_movable_pages(). pgmigrate_success/pgmigrate_fail
 * move once per call by the pages migrated/failed.
 *
 * LRU pages (anon and page cache): the copy moves the owner's view to the
 * new page (its page table or page cache entry, mapping, index, mapcount,
 * the LRU-related flags, mlock, the content tag), puts the new page on the
 * LRU, and frees the old page to the buddy allocator by dropping the
 * isolation reference, the last one. A page with references the owner does
 * not account for (a pin) answers -EAGAIN on every pass and ends failed.
 * movable_ops pages: the driver's migrate_page does the move. The core
 * recognises an isolated driver page by the era's predicate
 * (MovableEra.isolated_movable_page: 2012 the balloon mapping, 2014
 * PageBalloon, later __PageMovable / page_has_movable_ops), so the 2012 and
 * 2014 hooks (balloon_page_migrate called from unmap_and_move) and the
 * movable_ops framework share one path.
 *
 * Locks: old page lock (trylock; sleeping only for sync callers once
 * forced), then new page lock (trylock), then the driver's locks inside its
 * callback (for movable pages only if the era's core locks pages: rule
 * core-page-lock of 2026); lruvec->lru_lock to put pages back on the LRU, with no page
 * lock held by the time it matters.
 * Invariants: every page on `from` is isolated (LRU pages: PG_lru clear, one
 * isolation reference, counted in NR_ISOLATED_*; movable pages: PG_isolated);
 * on return every page that left the list is either migrated (old freed) or
 * back with its owner.
 */

import type { Runtime, StepOf } from "../runtime/runtime.ts";
import { assert, VM_BUG_ON_PAGE } from "./bug.ts";
import { EAGAIN, EBUSY, ENOMEM } from "./errno.ts";
import { list_count_nodes, list_del } from "./list.ts";
import {
  lru_cache_add,
  nr_isolated_item,
  put_page,
  put_page_lru,
  putback_lru_page,
} from "./mm/lru.ts";
import { owner_refs, page_address_space } from "./mm/owner.ts";
import { lock_page, trylock_page, unlock_page } from "./mm/pagemap.ts";
import type { MmState } from "./mm/state.ts";
import {
  core_page_lock,
  era_lock,
  era_unlock,
  MovableOpsError,
  page_movable_ops,
  putback_movable_page,
} from "./movable_ops.ts";
import {
  PageWriteback,
  type Pfn,
  PG_active,
  PG_dirty,
  PG_mlocked,
  PG_referenced,
  PG_swapbacked,
  PG_unevictable,
  PG_uptodate,
  PG_workingset,
} from "./page.ts";
import {
  RULE_MIGRATE_ROUTES_BY_IDENTITY,
  RULE_NEWPAGE_FATE_BEFORE_UNLOCK,
  rule_holds,
} from "./rules.ts";
import { BALLOON_MIGRATE, NR_MLOCK, PGMIGRATE_FAIL, PGMIGRATE_SUCCESS } from "./vmstat_items.ts";

/**
 * Observers of migration and compaction, for trace export
 * (sim/scenario_run.ts). Each is called once the work is done, with what
 * it did; an observer only reads, so a run with observers takes the same
 * steps and ends in the same state as one without. The checker sets none.
 * They hang off MmState.observer.
 */
export interface MmObserver {
  /** A migrate_pages() call (one batch: compaction's up to 32 pages). */
  migrate_pages?: (rt: Runtime, b: MigrateBatch) => void;
  /** A compact_zone() run that got past its start (not an early return). */
  compact_zone?: (rt: Runtime, r: CompactZoneRun) => void;
}

export interface MigrateBatch {
  /** Simulated time when the call began. */
  t0_ns: number;
  /** Pages on the list at the start. */
  nr_pages: number;
  nr_succeeded: number;
  nr_failed: number;
  /** balloon_migrate events during the call: balloon pages moved. */
  nr_balloon: number;
  /** MR_* reason. */
  reason: number;
}

export interface CompactZoneRun {
  t0_ns: number;
  zone: string;
  /** -1 for a full compaction (compact_memory). */
  order: number;
  /** MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT or MIGRATE_SYNC. */
  mode: number;
  /** The compact_result it returned. */
  result: number;
  migrate_scanned: number;
  free_scanned: number;
  /** pgmigrate_success during the run. */
  nr_migrated: number;
}

// enum migrate_mode
export const MIGRATE_ASYNC = 0;
export const MIGRATE_SYNC_LIGHT = 1;
export const MIGRATE_SYNC = 2;

// enum migrate_reason (the ones pagesim callers use)
export const MR_COMPACTION = 0;
export const MR_MEMORY_FAILURE = 1;
export const MR_MEMORY_HOTPLUG = 2;
export const MR_SYSCALL = 3;

/** The kernel's pass count in migrate_pages() (v4.8). */
export const NR_MIGRATE_PASSES = 10;
/** Passes after which a sync caller may sleep on the old page's lock. */
export const MIGRATE_FORCE_AFTER_PASS = 2;

/** new_page_t: a target page for `src` (refcount 1), or -1. */
export type NewPage = (src: Pfn) => Pfn;
/** free_page_t: give back an unused target. */
export type FreePage = (pfn: Pfn) => void;

/** The LRU-related flags that follow the data (migrate_page_copy). */
const MIGRATE_FLAGS =
  (1 << PG_swapbacked) |
  (1 << PG_active) |
  (1 << PG_unevictable) |
  (1 << PG_mlocked) |
  (1 << PG_referenced) |
  (1 << PG_dirty) |
  (1 << PG_uptodate) |
  (1 << PG_workingset);

/**
 * migrate_pages(): migrate every page on `from` (a list_head slot). Returns
 * the number of pages not migrated, or -ENOMEM if a target could not be
 * allocated. Pages that failed for good are already back with their
 * owners; pages still on `from` are for the caller to put back.
 */
export function* migrate_pages(
  rt: Runtime,
  mm: MmState,
  from: number,
  get_new_page: NewPage,
  put_new_page: FreePage | null,
  mode: number,
  reason: number,
): StepOf<number> {
  const mem = mm.m.mem;
  const obs = mm.observer?.migrate_pages;
  const t0_ns = obs ? rt.now() : 0;
  const nr_pages = obs ? list_count_nodes(mem, from, mem.nr_pages) : 0;
  const balloon0 = obs ? mm.m.vm_events[BALLOON_MIGRATE] : 0;
  let nr_succeeded = 0;
  let nr_failed = 0;
  let retry = 1;
  let rc = 0;
  outer: for (let pass = 0; pass < NR_MIGRATE_PASSES && retry; pass++) {
    retry = 0;
    const bound = mem.nr_pages;
    let n = 0;
    for (let page = mem.lru_next[from]; page !== from; ) {
      assert(++n <= bound, "migrate_pages: list walk bounded by the memory size");
      const next = mem.lru_next[page];
      const force = pass > MIGRATE_FORCE_AFTER_PASS;
      rc = yield* unmap_and_move(rt, mm, get_new_page, put_new_page, page, force, mode);
      if (rc === -ENOMEM) {
        nr_failed++;
        break outer;
      } else if (rc === -EAGAIN) retry++;
      else if (rc === 0) nr_succeeded++;
      else nr_failed++;
      page = next;
    }
  }
  if (rc !== -ENOMEM) {
    nr_failed += retry;
    rc = nr_failed;
  }
  mm.m.vm_events[PGMIGRATE_SUCCESS] += nr_succeeded;
  mm.m.vm_events[PGMIGRATE_FAIL] += nr_failed;
  obs?.(rt, {
    t0_ns,
    nr_pages,
    nr_succeeded,
    nr_failed,
    nr_balloon: mm.m.vm_events[BALLOON_MIGRATE] - balloon0,
    reason,
  });
  return rc;
}

/**
 * unmap_and_move(): one attempt at one page. On anything but -EAGAIN the
 * page leaves `from`: migrated (the old page is freed) or put back.
 */
function* unmap_and_move(
  rt: Runtime,
  mm: MmState,
  get_new_page: NewPage,
  put_new_page: FreePage | null,
  page: Pfn,
  force: boolean,
  mode: number,
): StepOf<number> {
  const m = mm.m;
  const mem = m.mem;
  const newpage = get_new_page(page);
  if (newpage < 0) return -ENOMEM;
  // The data will be copied into newpage (compaction's targets come off its
  // own free list, not through the allocator): tell the observer.
  if (m.hooks.page_use !== null) m.hooks.page_use(m, newpage, 0, 0);
  const movable = mm.era.isolated_movable_page(mem, page);
  const iso_item = movable ? -1 : nr_isolated_item(mem, page);
  let rc: number;
  let moved = false;
  let broken: MovableOpsError | null = null;
  if (mem._refcount[page] === 1) {
    // Its owner let go while it was isolated: nothing to move.
    if (movable) yield* release_orphan_movable(rt, mm, page);
    rc = 0;
  } else {
    const r = yield* __unmap_and_move(rt, mm, page, newpage, force, mode);
    if (typeof r === "number") rc = r;
    else {
      broken = r;
      rc = -EBUSY;
    }
    moved = rc === 0;
  }
  if (rc !== -EAGAIN) {
    list_del(mem, page);
    if (!movable) mm.page_lruvec(page).pgdat.vm_stat[iso_item] -= 1;
    if (rc === 0) put_page(rt, mm, page);
    else if (movable) yield* putback_movable_page(rt, mm, page);
    else yield* putback_lru_page(rt, mm, page);
  }
  if (!moved) {
    if (put_new_page) put_new_page(newpage);
    else put_page(rt, mm, newpage);
  } else if (movable && !newpage_goes_to_lru(mm, newpage)) put_page(rt, mm, newpage);
  else {
    // putback_lru_page(newpage): the owner may already have let go of it.
    yield* lru_cache_add(rt, mm, newpage);
    yield* put_page_lru(rt, mm, newpage);
  }
  if (broken) throw broken;
  return rc;
}

/**
 * Whether a migrated movable page's target is put back on the LRU. Never:
 * the fate follows the old page's kind, known before unlocking. Before the
 * 2019 fix (rule newpage-fate-before-unlock dropped; 2014 era) the code
 * looked at the new page after unlocking it: a deflate in between cleared
 * PageBalloon, and the page went to the LRU.
 */
function newpage_goes_to_lru(mm: MmState, newpage: Pfn): boolean {
  if (rule_holds(mm, RULE_NEWPAGE_FATE_BEFORE_UNLOCK)) return false;
  return !mm.era.isolated_movable_page(mm.m.mem, newpage);
}

/** A freed-under-us movable page: clear PG_isolated if its driver let go. */
function* release_orphan_movable(rt: Runtime, mm: MmState, page: Pfn): StepOf<void> {
  yield* era_lock(rt, mm, page);
  if (page_movable_ops(mm, page) === null) mm.era.ClearPageIsolated(mm.m.mem, page);
  yield* era_unlock(rt, mm, page);
}

/**
 * __unmap_and_move(): lock both pages and move. Returns an errno, or a
 * MovableOpsError (after undoing the locks) when the driver broke its
 * contract.
 */
function* __unmap_and_move(
  rt: Runtime,
  mm: MmState,
  page: Pfn,
  newpage: Pfn,
  force: boolean,
  mode: number,
): StepOf<number | MovableOpsError> {
  const mem = mm.m.mem;
  const movable = mm.era.isolated_movable_page(mem, page);
  if (movable && !core_page_lock(mm)) {
    // 2026 without the core's page lock: nothing serialises but the flag.
    return yield* move_to_new_movable_page(rt, mm, newpage, page, mode);
  }
  if (!(yield* trylock_page(rt, mm, page))) {
    if (!force || mode === MIGRATE_ASYNC) return -EAGAIN;
    // Direct compaction (PF_MEMALLOC) never sleeps on a page lock: the
    // holder may be waiting for the very allocation that compacts. Nor
    // does any caller that cannot sleep (rt.can_sleep false, an inline run).
    if (mm.pf_memalloc || rt.can_sleep === false) return -EAGAIN;
    yield* lock_page(rt, mm, page);
  }
  let rc: number | MovableOpsError = -EBUSY;
  // Writeback: only a full MIGRATE_SYNC migration waits for it, and only
  // once forced (the first passes retry with -EAGAIN); async and
  // sync-light give up at once with -EBUSY, a permanent failure.
  let can_move = !PageWriteback(mem, page);
  if (!can_move && mode === MIGRATE_SYNC) {
    if (!force) rc = -EAGAIN;
    else {
      // wait_on_page_writeback(): sleeps (page lock held) until
      // end_page_writeback() clears PG_writeback. Only MIGRATE_SYNC gets
      // here, which direct compaction (an inline run that cannot sleep)
      // never uses; the inline runtime's wait_event() is a KernelBug.
      assert(
        rt.can_sleep !== false,
        "MIGRATE_SYNC wait_on_page_writeback in a context that cannot sleep",
      );
      yield* rt.wait_event(page, "PG_writeback", () => !PageWriteback(mem, page));
      can_move = true;
    }
  }
  if (can_move) {
    if (!(yield* trylock_page(rt, mm, newpage))) rc = -EAGAIN;
    else {
      rc = !movable
        ? migrate_lru_page(mm, newpage, page)
        : rule_holds(mm, RULE_MIGRATE_ROUTES_BY_IDENTITY)
          ? yield* move_to_new_movable_page(rt, mm, newpage, page, mode)
          : yield* move_to_new_page_generic(rt, mm, newpage, page, mode);
      yield* unlock_page(rt, mm, newpage);
    }
  }
  yield* unlock_page(rt, mm, page);
  return rc;
}

/**
 * move_to_new_page() for a movable_ops page: call the driver unless it
 * released the page; PG_isolated is cleared on success.
 */
function* move_to_new_movable_page(
  rt: Runtime,
  mm: MmState,
  newpage: Pfn,
  page: Pfn,
  mode: number,
): StepOf<number | MovableOpsError> {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(!mm.era.PageIsolated(mem, page), mem, page, "migrating a non-isolated page");
  const ops = page_movable_ops(mm, page);
  if (ops === null) {
    mm.era.ClearPageIsolated(mem, page);
    return 0;
  }
  const rc: unknown = yield* ops.migrate_page(rt, mm, newpage, page, mode);
  if (!(Number.isInteger(rc) && (rc as number) <= 0)) {
    return new MovableOpsError(
      ops.name,
      page,
      `migrate_page returned ${String(rc)}: expected 0, -EAGAIN or a negative errno`,
    );
  }
  if (rc === 0) mm.era.ClearPageIsolated(mem, page);
  return rc as number;
}

/**
 * The v3.8-v3.17 route of an isolated balloon page (rule
 * migrate-routes-by-identity dropped): __unmap_and_move() asked the
 * lockless scan predicate, which wants refcount == 1 and so is false for
 * an isolated page; move_to_new_page() then called the mapping's
 * migratepage (the balloon driver, which returned its special success
 * code) and, the code not being MIGRATEPAGE_SUCCESS, cleared the new
 * page's mapping: the new balloon page loses its identity.
 */
function* move_to_new_page_generic(
  rt: Runtime,
  mm: MmState,
  newpage: Pfn,
  page: Pfn,
  mode: number,
): StepOf<number | MovableOpsError> {
  if (mm.era.__PageMovable(mm.m.mem, page))
    return yield* move_to_new_movable_page(rt, mm, newpage, page, mode);
  const rc = yield* move_to_new_movable_page(rt, mm, newpage, page, mode);
  if (rc === 0) mm.m.mem.mapping[newpage] = 0;
  return rc;
}

/**
 * migrate_page() for an LRU page: check that only the owner and the
 * isolation hold references (migrate_page_move_mapping's refcount test),
 * then copy the data and move the owner's view to `newpage`.
 */
function migrate_lru_page(mm: MmState, newpage: Pfn, page: Pfn): number {
  const m = mm.m;
  const mem = m.mem;
  const as = page_address_space(mm, page);
  VM_BUG_ON_PAGE(as === null, mem, page, "migrating an LRU page with no owner");
  const refs = owner_refs(mm, page);
  // The owner let go after unmap_and_move() looked (a racing munmap): retry;
  // the next pass finds only the isolation reference and frees the page.
  if (refs === 0) return -EAGAIN;
  if (mem._refcount[page] !== refs + 1) return -EAGAIN;
  const index = mem.index[page];
  VM_BUG_ON_PAGE(as!.pages[index] !== page, mem, page, "owner does not map the page");
  // The owner's references move to the new page, which keeps its allocation
  // reference until unmap_and_move() has put it on the LRU.
  mem._refcount[newpage] = refs + 1;
  mem._refcount[page] = 1;
  mem.mapping[newpage] = mem.mapping[page];
  mem.index[newpage] = index;
  mem._mapcount[newpage] = mem._mapcount[page];
  mem._mapcount[page] = -1;
  mem.flags[newpage] |= mem.flags[page] & MIGRATE_FLAGS;
  if (mem.flags[page] & (1 << PG_mlocked)) {
    m.page_zone(page)!.vm_stat[NR_MLOCK] -= 1;
    m.page_zone(newpage)!.vm_stat[NR_MLOCK] += 1;
  }
  mem.flags[page] &= ~MIGRATE_FLAGS | (1 << PG_swapbacked);
  if (mem.content) mem.content[newpage] = mem.content[page];
  as!.pages[index] = newpage;
  mem.mapping[page] = 0;
  return 0;
}

/**
 * putback_movable_pages(): give every page left on `list` back to its
 * owner: movable pages to their driver, LRU pages to the LRU.
 */
export function* putback_movable_pages(rt: Runtime, mm: MmState, list: number): StepOf<number> {
  const mem = mm.m.mem;
  let n = 0;
  for (let page = mem.lru_next[list]; page !== list; page = mem.lru_next[list]) {
    assert(++n <= mem.nr_pages, "putback_movable_pages: list walk bounded");
    list_del(mem, page);
    if (mm.era.isolated_movable_page(mem, page)) {
      yield* putback_movable_page(rt, mm, page);
    } else {
      mm.page_lruvec(page).pgdat.vm_stat[nr_isolated_item(mem, page)] -= 1;
      yield* putback_lru_page(rt, mm, page);
    }
  }
  return n;
}
