/**
 * kernel/page_alloc/free_area.ts: the buddy free lists of mm/page_alloc.c:
 * add_to_free_list, del_page_from_free_list, move_to_free_list,
 * __free_one_page (merging), expand (splitting) and __rmqueue_smallest, as
 * in v6.16 (which these files take as the reference kernel).
 *
 * Locking: every function here runs with zone->lock held (the caller takes
 * it). Nothing here yields.
 *
 * Invariants kept here and verified by debug_vm.ts:
 *  - a free block is one head page with PageBuddy, buddy_order() == its order,
 *    refcount 0, linked on exactly one free_list[order][mt];
 *  - a block below pageblock order sits on the free list of its pageblock's
 *    migratetype (the 6.10+ "freelist hygiene" rule);
 *  - NR_FREE_PAGES counts the pages on the free lists, except MIGRATE_ISOLATE
 *    ones, and pages on pcp lists are not free in this sense;
 *  - no two free buddies of the same order are left unmerged, except across
 *    pageblocks whose migratetypes may not merge.
 */

import { VM_BUG_ON_PAGE } from "../bug.ts";
import {
  list_add,
  list_add_tail,
  list_del,
  list_first_entry_or_null,
  list_move_tail,
} from "../list.ts";
import {
  MAX_PAGE_ORDER,
  MIGRATE_CMA,
  MIGRATE_HIGHATOMIC,
  MIGRATE_ISOLATE,
  migratetype_is_mergeable,
  type Zone,
} from "../mmzone.ts";
import {
  get_pageblock_migratetype,
  type MemMap,
  type Pfn,
  PGTY_buddy,
  PGTY_none,
  set_pageblock_migratetype,
} from "../page.ts";
import { NR_FREE_CMA_PAGES, NR_FREE_PAGES, NR_FREE_PAGES_BLOCKS } from "../vmstat_items.ts";

/** fpi_t: flags for freeing pages into the buddy lists. */
export const FPI_NONE = 0;
/** Put the block at the tail of its free list (it will be used last). */
export const FPI_TO_TAIL = 1 << 1;
/** Do not tell free page reporting about this block. */
export const FPI_SKIP_REPORT_NOTIFY = 1 << 0;

/** Callbacks the buddy core makes into other subsystems, set at boot. */
export interface FreeAreaHooks {
  /** page_reporting_notify_free(): a block of this order was freed. */
  page_reporting_notify_free: ((zone: Zone, order: number) => void) | null;
  /**
   * task_capc() + compaction_capture(): while a direct compaction runs, may
   * it take this block of `order` (about to be listed or merged further)?
   * If so the block leaves the free lists' accounting and is not listed.
   */
  compaction_capture:
    | ((zone: Zone, pfn: Pfn, order: number, migratetype: number) => boolean)
    | null;
}

/** __find_buddy_pfn(): the buddy of a block differs in bit `order`. */
export function __find_buddy_pfn(pfn: Pfn, order: number): Pfn {
  return pfn ^ (1 << order);
}

/**
 * page_is_buddy(): may `buddy` merge with the block at `pfn` at `order`? It
 * must be a free block of the same order in the same zone.
 */
export function page_is_buddy(mem: MemMap, zone: Zone, buddy: Pfn, order: number): boolean {
  if (buddy >= zone.zone_start_pfn + zone.spanned_pages || buddy < zone.zone_start_pfn)
    return false;
  if (mem.page_type[buddy] !== PGTY_buddy) return false;
  if (mem.page_private[buddy] !== order) return false;
  VM_BUG_ON_PAGE(mem._refcount[buddy] !== 0, mem, buddy, "free buddy with a reference");
  return true;
}

/** account_freepages(): NR_FREE_PAGES and friends follow the free lists. */
export function account_freepages(zone: Zone, nr_pages: number, migratetype: number): void {
  if (migratetype === MIGRATE_ISOLATE) return;
  zone.vm_stat[NR_FREE_PAGES] += nr_pages;
  if (migratetype === MIGRATE_CMA) zone.vm_stat[NR_FREE_CMA_PAGES] += nr_pages;
  else if (migratetype === MIGRATE_HIGHATOMIC) zone.nr_free_highatomic += nr_pages;
}

/** __add_to_free_list(): link a block (already marked buddy) on its list. */
export function __add_to_free_list(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  order: number,
  migratetype: number,
  tail: boolean,
): void {
  const head = zone.free_list(order, migratetype);
  if (tail) list_add_tail(mem, pfn, head);
  else list_add(mem, pfn, head);
  zone.nr_free[order]++;
  if (order >= mem.pageblock_order && migratetype !== MIGRATE_ISOLATE) {
    zone.vm_stat[NR_FREE_PAGES_BLOCKS] += 1 << order;
  }
}

/** set_buddy_order + __add_to_free_list + account_freepages. */
export function add_to_free_list(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  order: number,
  migratetype: number,
  tail: boolean,
): void {
  mem.page_private[pfn] = order;
  mem.page_type[pfn] = PGTY_buddy;
  __add_to_free_list(mem, zone, pfn, order, migratetype, tail);
  account_freepages(zone, 1 << order, migratetype);
}

/** __del_page_from_free_list(): unlink a free block and clear its buddy mark. */
export function __del_page_from_free_list(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  order: number,
  migratetype: number,
): void {
  VM_BUG_ON_PAGE(
    mem.page_type[pfn] !== PGTY_buddy,
    mem,
    pfn,
    "removing a non-buddy page from a free list",
  );
  VM_BUG_ON_PAGE(mem.page_private[pfn] !== order, mem, pfn, "free block order mismatch");
  list_del(mem, pfn);
  mem.page_type[pfn] = PGTY_none;
  mem.page_private[pfn] = 0;
  zone.nr_free[order]--;
  if (order >= mem.pageblock_order && migratetype !== MIGRATE_ISOLATE) {
    zone.vm_stat[NR_FREE_PAGES_BLOCKS] -= 1 << order;
  }
}

export function del_page_from_free_list(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  order: number,
  migratetype: number,
): void {
  __del_page_from_free_list(mem, zone, pfn, order, migratetype);
  account_freepages(zone, -(1 << order), migratetype);
}

/** move_to_free_list(): move a free block to another migratetype's list (at the tail). */
export function move_to_free_list(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  order: number,
  old_mt: number,
  new_mt: number,
): void {
  list_move_tail(mem, pfn, zone.free_list(order, new_mt));
  if (
    order >= mem.pageblock_order &&
    (old_mt === MIGRATE_ISOLATE) !== (new_mt === MIGRATE_ISOLATE)
  ) {
    zone.vm_stat[NR_FREE_PAGES_BLOCKS] += new_mt === MIGRATE_ISOLATE ? -(1 << order) : 1 << order;
  }
  account_freepages(zone, -(1 << order), old_mt);
  account_freepages(zone, 1 << order, new_mt);
}

/**
 * buddy_merge_likely(): when the block just freed could merge one order
 * higher once its own buddy is freed, put it at the tail of its list so that
 * it is not handed out again too soon.
 */
function buddy_merge_likely(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  buddy_pfn: Pfn,
  order: number,
): boolean {
  if (order >= MAX_PAGE_ORDER - 1) return false;
  const higher = buddy_pfn & pfn;
  return page_is_buddy(mem, zone, __find_buddy_pfn(higher, order + 1), order + 1);
}

/**
 * __free_one_page(): return a block to the free lists, merging it with its
 * buddy for as long as the buddy is free, and place it at the head or tail.
 * Models mm/page_alloc.c of v6.12 (without guard pages); compaction capture
 * goes through hooks.compaction_capture.
 */
export function __free_one_page(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  order: number,
  migratetype: number,
  fpi_flags: number,
  hooks: FreeAreaHooks | null,
): void {
  VM_BUG_ON_PAGE(mem.page_type[pfn] !== PGTY_none, mem, pfn, "freeing a page that has a page type");
  VM_BUG_ON_PAGE((pfn & ((1 << order) - 1)) !== 0, mem, pfn, "freeing a misaligned block");
  VM_BUG_ON_PAGE(!zone.zone_spans_pfn(pfn), mem, pfn, "freeing a page outside its zone");

  account_freepages(zone, 1 << order, migratetype);
  const capture = hooks?.compaction_capture ?? null;
  let buddy_pfn = pfn;
  while (order < MAX_PAGE_ORDER) {
    if (capture?.(zone, pfn, order, migratetype)) {
      account_freepages(zone, -(1 << order), migratetype);
      return;
    }
    buddy_pfn = __find_buddy_pfn(pfn, order);
    if (!page_is_buddy(mem, zone, buddy_pfn, order)) break;
    // Blocks of pageblock size or more merge only when their migratetypes
    // may share a free list (no merging of an isolated or CMA block into a
    // movable one).
    const buddy_mt =
      order >= mem.pageblock_order ? get_pageblock_migratetype(mem, buddy_pfn) : migratetype;
    if (
      buddy_mt !== migratetype &&
      (!migratetype_is_mergeable(migratetype) || !migratetype_is_mergeable(buddy_mt))
    ) {
      break;
    }
    __del_page_from_free_list(mem, zone, buddy_pfn, order, buddy_mt);
    if (buddy_mt !== migratetype) {
      // The merged block takes the freed block's type; so that a later split
      // puts the parts on the right lists, the buddy's pageblock follows.
      account_freepages(zone, -(1 << order), buddy_mt);
      account_freepages(zone, 1 << order, migratetype);
      set_pageblock_migratetype(mem, buddy_pfn, migratetype);
    }
    pfn = pfn & buddy_pfn;
    order++;
  }

  mem.page_private[pfn] = order;
  mem.page_type[pfn] = PGTY_buddy;
  let to_tail: boolean;
  if (fpi_flags & FPI_TO_TAIL) to_tail = true;
  else to_tail = buddy_merge_likely(mem, zone, pfn, buddy_pfn, order);
  __add_to_free_list(mem, zone, pfn, order, migratetype, to_tail);

  if (!(fpi_flags & FPI_SKIP_REPORT_NOTIFY) && hooks?.page_reporting_notify_free) {
    hooks.page_reporting_notify_free(zone, order);
  }
}

/**
 * expand(): split a block of order `high` taken from the free lists down to
 * order `low`, returning the upper halves to the free list heads. The caller
 * keeps the lowest `1 << low` pages at `pfn`. Returns the pages given back.
 */
export function expand(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  low: number,
  high: number,
  migratetype: number,
): number {
  let size = 1 << high;
  let nr_added = 0;
  while (high > low) {
    high--;
    size >>= 1;
    const half = pfn + size;
    mem.page_private[half] = high;
    mem.page_type[half] = PGTY_buddy;
    __add_to_free_list(mem, zone, half, high, migratetype, false);
    nr_added += size;
  }
  return nr_added;
}

/** page_del_and_expand(): take a block off its list and split it to `low`. */
export function page_del_and_expand(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  low: number,
  high: number,
  migratetype: number,
): void {
  __del_page_from_free_list(mem, zone, pfn, high, migratetype);
  const nr_added = expand(mem, zone, pfn, low, high, migratetype);
  account_freepages(zone, -(1 << high) + nr_added, migratetype);
}

/**
 * __rmqueue_smallest(): the smallest free block of at least `order` on the
 * free lists of exactly `migratetype`, split down to `order`. -1 if none.
 */
export function __rmqueue_smallest(
  mem: MemMap,
  zone: Zone,
  order: number,
  migratetype: number,
): Pfn {
  for (let current_order = order; current_order <= MAX_PAGE_ORDER; current_order++) {
    if (zone.nr_free[current_order] === 0) continue;
    const pfn = list_first_entry_or_null(mem, zone.free_list(current_order, migratetype));
    if (pfn < 0) continue;
    page_del_and_expand(mem, zone, pfn, order, current_order, migratetype);
    return pfn;
  }
  return -1;
}

/**
 * split_large_buddy() + free_one_page(): free a block straight to the buddy
 * lists, a pageblock at a time so that each part takes its own pageblock's
 * migratetype. The caller has cleared the pages' state (free_pages_prepare).
 * Takes zone->lock in the kernel.
 */
export function free_one_page(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  order: number,
  fpi_flags: number,
  hooks: FreeAreaHooks | null,
): void {
  const end = pfn + (1 << order);
  const step_order = Math.min(order, mem.pageblock_order);
  for (let p = pfn; p < end; p += 1 << step_order) {
    __free_one_page(mem, zone, p, step_order, get_pageblock_migratetype(mem, p), fpi_flags, hooks);
  }
}
