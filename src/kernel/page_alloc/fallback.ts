/**
 * kernel/page_alloc/fallback.ts: what the buddy allocator does when the free
 * lists of the wanted migratetype are empty (mm/page_alloc.c, v6.16: the claim/steal split of v6.15):
 * the fallbacks[] table, __rmqueue with its modes, __rmqueue_claim,
 * try_to_claim_block, __rmqueue_steal, find_suitable_fallback,
 * should_try_claim_block, move_freepages_block, and the MIGRATE_HIGHATOMIC
 * reserve
 * (reserve_highatomic_pageblock, unreserve_highatomic_pageblock).
 *
 * Locking: runs under zone->lock. Reads PageLRU and the movable mark of
 * allocated pages in the pageblock being claimed without their locks, as the
 * kernel does; at worst a page is miscounted and a block is claimed (or not)
 * by a heuristic that was slightly off.
 */

import { assert } from "../bug.ts";
import { list_first_entry_or_null } from "../list.ts";
import type { Machine } from "../machine.ts";
import {
  MAX_PAGE_ORDER,
  MIGRATE_CMA,
  MIGRATE_HIGHATOMIC,
  MIGRATE_MOVABLE,
  MIGRATE_PCPTYPES,
  MIGRATE_RECLAIMABLE,
  MIGRATE_UNMOVABLE,
  NR_PAGE_ORDERS,
  ZONE_BOOSTED_WATERMARK,
  type Zone,
} from "../mmzone.ts";
import {
  get_pageblock_migratetype,
  type MemMap,
  PAGE_MAPPING_MOVABLE,
  type Pfn,
  PG_lru,
  PGTY_buddy,
  set_pageblock_migratetype,
} from "../page.ts";
import { NR_FREE_CMA_PAGES, NR_FREE_PAGES } from "../vmstat_items.ts";
import {
  __rmqueue_smallest,
  account_freepages,
  del_page_from_free_list,
  expand,
  move_to_free_list,
  page_del_and_expand,
} from "./free_area.ts";
import { ALLOC_CMA, ALLOC_KSWAPD, ALLOC_NOFRAGMENT, boost_watermark } from "./watermark.ts";

/** fallbacks[]: where each pcp migratetype looks when its own lists are empty. */
export const fallbacks: readonly (readonly number[])[] = [
  /* UNMOVABLE */ [MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE],
  /* MOVABLE */ [MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE],
  /* RECLAIMABLE */ [MIGRATE_UNMOVABLE, MIGRATE_MOVABLE],
];

/**
 * should_try_claim_block(): may an allocation of start_mt, scanning free
 * blocks of `order`, try to take over the whole pageblock? Always for big
 * orders; for unmovable and reclaimable allocations always (they would
 * pollute the block anyway). (can_steal_fallback before v6.15.)
 */
export function should_try_claim_block(m: Machine, order: number, start_mt: number): boolean {
  const pageblock_order = m.mem.pageblock_order;
  if (order >= pageblock_order) return true;
  return (
    // pageblock_order / 2 is C integer division: 9 / 2 = 4, so order 4
    // qualifies (a JS division gave 4.5 and left order 4 out).
    order >= pageblock_order >> 1 ||
    start_mt === MIGRATE_RECLAIMABLE ||
    start_mt === MIGRATE_UNMOVABLE ||
    m.sysctl.page_group_by_mobility_disabled
  );
}

/**
 * find_suitable_fallback(): the first fallback migratetype with a free block
 * of this order; -1 if none; -2 when `claimable` and the order is too low to
 * claim a block at all.
 */
export function find_suitable_fallback(
  m: Machine,
  zone: Zone,
  order: number,
  migratetype: number,
  claimable: boolean,
): number {
  if (claimable && !should_try_claim_block(m, order, migratetype)) return -2;
  if (zone.nr_free[order] === 0) return -1;
  const mem = m.mem;
  for (const fallback_mt of fallbacks[migratetype]) {
    if (list_first_entry_or_null(mem, zone.free_list(order, fallback_mt)) >= 0) return fallback_mt;
  }
  return -1;
}

/**
 * prep_move_freepages_block(): bounds of the pageblock holding `pfn`, and how
 * many of its pages are free and how many look movable. Null if the block
 * straddles the zone's edge.
 */
export function prep_move_freepages_block(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
): { start_pfn: Pfn; free_pages: number; movable_pages: number } | null {
  const nr = 1 << mem.pageblock_order;
  const start = pfn & ~(nr - 1);
  const end = start + nr - 1;
  if (!zone.zone_spans_pfn(start) || !zone.zone_spans_pfn(end)) return null;
  let free_pages = 0;
  let movable_pages = 0;
  for (let p = start; p <= end; ) {
    if (mem.page_type[p] === PGTY_buddy) {
      const n = 1 << mem.page_private[p];
      free_pages += n;
      p += n;
      continue;
    }
    // Pages that could be isolated for migration are assumed movable.
    if (mem.flags[p] & (1 << PG_lru) || (mem.mapping[p] & PAGE_MAPPING_MOVABLE) !== 0)
      movable_pages++;
    p++;
  }
  return { start_pfn: start, free_pages, movable_pages };
}

/** __move_freepages_block(): move every free block in a pageblock to new_mt's lists. */
export function __move_freepages_block(
  mem: MemMap,
  zone: Zone,
  start_pfn: Pfn,
  old_mt: number,
  new_mt: number,
): number {
  const end = start_pfn + (1 << mem.pageblock_order);
  let pages_moved = 0;
  for (let p = start_pfn; p < end; ) {
    if (mem.page_type[p] !== PGTY_buddy) {
      p++;
      continue;
    }
    const order = mem.page_private[p];
    move_to_free_list(mem, zone, p, order, old_mt, new_mt);
    p += 1 << order;
    pages_moved += 1 << order;
  }
  return pages_moved;
}

/**
 * move_freepages_block(): change a whole pageblock's type, moving its free
 * blocks to the new lists. Returns the pages moved, or -1 if the block
 * straddles the zone's edge.
 */
export function move_freepages_block(
  mem: MemMap,
  zone: Zone,
  pfn: Pfn,
  old_mt: number,
  new_mt: number,
): number {
  const prep = prep_move_freepages_block(mem, zone, pfn);
  if (!prep) return -1;
  const moved = __move_freepages_block(mem, zone, prep.start_pfn, old_mt, new_mt);
  set_pageblock_migratetype(mem, prep.start_pfn, new_mt);
  return moved;
}

/** change_pageblock_range(): set the type of every pageblock in a big block. */
function change_pageblock_range(mem: MemMap, pfn: Pfn, order: number, migratetype: number): void {
  const nr_pageblocks = order > mem.pageblock_order ? 1 << (order - mem.pageblock_order) : 1;
  for (let i = 0; i < nr_pageblocks; i++) {
    set_pageblock_migratetype(mem, pfn + (i << mem.pageblock_order), migratetype);
  }
}

/**
 * try_to_claim_block(): take over the pageblock of a free block found on
 * another migratetype's list. A block of pageblock order or more changes type
 * whole. A smaller one claims its pageblock when at least half of the block
 * is free or already holds pages compatible with the allocation; otherwise
 * nothing changes (but the watermark boost stays). Returns a pfn or -1.
 */
function try_to_claim_block(
  m: Machine,
  zone: Zone,
  pfn: Pfn,
  current_order: number,
  order: number,
  start_type: number,
  block_type: number,
  alloc_flags: number,
): Pfn {
  const mem = m.mem;
  if (current_order >= mem.pageblock_order) {
    del_page_from_free_list(mem, zone, pfn, current_order, block_type);
    change_pageblock_range(mem, pfn, current_order, start_type);
    const nr_added = expand(mem, zone, pfn, order, current_order, start_type);
    account_freepages(zone, nr_added, start_type);
    return pfn;
  }
  // Boost the watermarks so that kswapd works against further fallbacks.
  if (boost_watermark(m, zone) && alloc_flags & ALLOC_KSWAPD) zone.flags |= ZONE_BOOSTED_WATERMARK;
  const prep = prep_move_freepages_block(mem, zone, pfn);
  if (!prep) return -1;
  const pageblock_nr_pages = 1 << mem.pageblock_order;
  let alike_pages: number;
  if (start_type === MIGRATE_MOVABLE) {
    alike_pages = prep.movable_pages;
  } else if (block_type === MIGRATE_MOVABLE) {
    // Unmovable and reclaimable allocations count each other's pages as alike.
    alike_pages = pageblock_nr_pages - (prep.free_pages + prep.movable_pages);
  } else {
    alike_pages = 0;
  }
  if (
    prep.free_pages + alike_pages >= 1 << (mem.pageblock_order - 1) ||
    m.sysctl.page_group_by_mobility_disabled
  ) {
    __move_freepages_block(mem, zone, prep.start_pfn, block_type, start_type);
    set_pageblock_migratetype(mem, prep.start_pfn, start_type);
    const got = __rmqueue_smallest(mem, zone, order, start_type);
    assert(got >= 0, "try_to_claim_block: claimed block yields no page");
    return got;
  }
  return -1;
}

/**
 * __rmqueue_claim(): look for a pageblock of another type to take over,
 * largest free blocks first (a cheap guess at the block with most free
 * pages). ALLOC_NOFRAGMENT allows only whole pageblocks.
 */
function __rmqueue_claim(
  m: Machine,
  zone: Zone,
  order: number,
  start_migratetype: number,
  alloc_flags: number,
): Pfn {
  const mem = m.mem;
  let min_order = order;
  if (order < mem.pageblock_order && alloc_flags & ALLOC_NOFRAGMENT)
    min_order = mem.pageblock_order;
  for (let current_order = MAX_PAGE_ORDER; current_order >= min_order; current_order--) {
    const fallback_mt = find_suitable_fallback(m, zone, current_order, start_migratetype, true);
    if (fallback_mt === -1) continue;
    if (fallback_mt === -2) break; // orders too low to claim from here on
    const pfn = list_first_entry_or_null(mem, zone.free_list(current_order, fallback_mt));
    const got = try_to_claim_block(
      m,
      zone,
      pfn,
      current_order,
      order,
      start_migratetype,
      fallback_mt,
      alloc_flags,
    );
    if (got >= 0) return got;
  }
  return -1;
}

/**
 * __rmqueue_steal(): take the smallest free block of another type, leaving
 * its pageblock's type (and the rest of the block, on the old lists) alone.
 */
function __rmqueue_steal(m: Machine, zone: Zone, order: number, start_migratetype: number): Pfn {
  const mem = m.mem;
  for (let current_order = order; current_order < NR_PAGE_ORDERS; current_order++) {
    const fallback_mt = find_suitable_fallback(m, zone, current_order, start_migratetype, false);
    if (fallback_mt < 0) continue;
    const pfn = list_first_entry_or_null(mem, zone.free_list(current_order, fallback_mt));
    page_del_and_expand(mem, zone, pfn, order, current_order, fallback_mt);
    return pfn;
  }
  return -1;
}

/** enum rmqueue_mode: where the last allocation of an rmqueue_bulk() succeeded. */
export const RMQUEUE_NORMAL = 0;
export const RMQUEUE_CMA = 1;
export const RMQUEUE_CLAIM = 2;
export const RMQUEUE_STEAL = 3;

/**
 * __rmqueue(): the wanted migratetype's lists, then CMA (movable only), then
 * claiming another type's pageblock, then stealing a single block (not under
 * ALLOC_NOFRAGMENT). `mode` (in and out, through m.rmqueue_mode) lets a bulk
 * refill skip the steps that already failed.
 */
export function __rmqueue(
  m: Machine,
  zone: Zone,
  order: number,
  migratetype: number,
  alloc_flags: number,
): Pfn {
  const mem = m.mem;
  let pfn: Pfn;
  // Balance movable allocations between CMA and the rest of the zone.
  if (
    alloc_flags & ALLOC_CMA &&
    zone.vm_stat[NR_FREE_CMA_PAGES] > zone.vm_stat[NR_FREE_PAGES] / 2
  ) {
    pfn = __rmqueue_smallest(mem, zone, order, MIGRATE_CMA);
    if (pfn >= 0) return pfn;
  }
  // The steps run in order, starting at the one the mode names.
  const mode = m.rmqueue_mode;
  if (mode <= RMQUEUE_NORMAL) {
    pfn = __rmqueue_smallest(mem, zone, order, migratetype);
    if (pfn >= 0) return pfn;
  }
  if (mode <= RMQUEUE_CMA && alloc_flags & ALLOC_CMA) {
    pfn = __rmqueue_smallest(mem, zone, order, MIGRATE_CMA);
    if (pfn >= 0) {
      m.rmqueue_mode = RMQUEUE_CMA;
      return pfn;
    }
  }
  if (mode <= RMQUEUE_CLAIM) {
    pfn = __rmqueue_claim(m, zone, order, migratetype, alloc_flags);
    if (pfn >= 0) {
      // Claiming refilled this type's lists: go back to them next time.
      m.rmqueue_mode = RMQUEUE_NORMAL;
      return pfn;
    }
  }
  if (!(alloc_flags & ALLOC_NOFRAGMENT)) {
    pfn = __rmqueue_steal(m, zone, order, migratetype);
    if (pfn >= 0) {
      m.rmqueue_mode = RMQUEUE_STEAL;
      return pfn;
    }
  }
  return -1;
}

/**
 * reserve_highatomic_pageblock(): after a high-order atomic allocation of
 * `order` at `pfn`, set aside its pageblock(s) as MIGRATE_HIGHATOMIC, up to
 * about 1% of the zone (rounded up to whole pageblocks); none at all when 1%
 * of the zone is less than a pageblock.
 *
 * Fixed to match v6.16: the size rules are those of v6.8 ("mm: page_alloc:
 * fixes for high atomic reserve calculations"; the model had the older
 * "1% + one pageblock" cap and reserved on zones of any size), and a block of
 * pageblock order or more has its whole range retyped and counted (v6.10's
 * multi-block fix; the model retyped only the first pageblock of it).
 */
export function reserve_highatomic_pageblock(
  m: Machine,
  zone: Zone,
  pfn: Pfn,
  order: number,
): void {
  const mem = m.mem;
  const pageblock_nr_pages = 1 << mem.pageblock_order;
  const one_percent = Math.floor(zone.managed_pages / 100);
  if (one_percent < pageblock_nr_pages) return;
  const max_managed = Math.ceil(one_percent / pageblock_nr_pages) * pageblock_nr_pages;
  if (zone.nr_reserved_highatomic >= max_managed) return;
  const mt = get_pageblock_migratetype(mem, pfn);
  if (mt >= MIGRATE_PCPTYPES) return; // already highatomic, CMA or isolated
  if (order < mem.pageblock_order) {
    if (move_freepages_block(mem, zone, pfn, mt, MIGRATE_HIGHATOMIC) === -1) return;
    zone.nr_reserved_highatomic += pageblock_nr_pages;
  } else {
    // An allocated block of pageblock order or more holds no free pages.
    change_pageblock_range(mem, pfn, order, MIGRATE_HIGHATOMIC);
    zone.nr_reserved_highatomic += 1 << order;
  }
}

/**
 * unreserve_highatomic_pageblock(): under memory pressure, give a highatomic
 * pageblock back to the allocation's migratetype. With `force` the last
 * reserved block goes too. Returns whether a block was released.
 */
export function unreserve_highatomic_pageblock(
  m: Machine,
  migratetype: number,
  force: boolean,
): boolean {
  const mem = m.mem;
  const pageblock_nr_pages = 1 << mem.pageblock_order;
  for (const zone of m.populated) {
    if (!force && zone.nr_reserved_highatomic <= pageblock_nr_pages) continue;
    for (let order = 0; order < NR_PAGE_ORDERS; order++) {
      const pfn = list_first_entry_or_null(mem, zone.free_list(order, MIGRATE_HIGHATOMIC));
      if (pfn < 0) continue;
      // A free block of more than a pageblock gives back all of its
      // pageblocks (kept in step with reserve_highatomic_pageblock's
      // multi-block case, which counts 1 << order).
      const size = Math.min(zone.nr_reserved_highatomic, Math.max(pageblock_nr_pages, 1 << order));
      zone.nr_reserved_highatomic -= size;
      if (order >= mem.pageblock_order) {
        // A free block of a pageblock or more changes type in one go.
        move_to_free_list(mem, zone, pfn, order, MIGRATE_HIGHATOMIC, migratetype);
        change_pageblock_range(mem, pfn, order, migratetype);
        return true;
      }
      if (move_freepages_block(mem, zone, pfn, MIGRATE_HIGHATOMIC, migratetype) !== -1) return true;
      zone.nr_reserved_highatomic += size;
    }
  }
  return false;
}
