/**
 * kernel/page_alloc/watermark.ts: zone watermarks and the checks against them,
 * from mm/page_alloc.c (v6.16): calculate_min_free_kbytes,
 * __setup_per_zone_wmarks, setup_per_zone_lowmem_reserve,
 * __zone_watermark_unusable_free, __zone_watermark_ok, zone_watermark_ok,
 * zone_watermark_fast, boost_watermark; and khugepaged's
 * set_recommended_min_free_kbytes (mm/khugepaged.c), which raises
 * min_free_kbytes on every machine with transparent huge pages enabled.
 *
 * Locking: the setup functions run with no allocation in flight (boot or a
 * sysctl write); the checks read zone counters without zone->lock, as the
 * kernel does. At worst a check passes on a stale count and the allocation
 * fails later under the lock.
 */

import { list_empty } from "../list.ts";
import type { Machine } from "../machine.ts";
import {
  MAX_NR_ZONES,
  MIGRATE_CMA,
  MIGRATE_HIGHATOMIC,
  MIGRATE_PCPTYPES,
  NR_PAGE_ORDERS,
  WMARK_HIGH,
  WMARK_LOW,
  WMARK_MIN,
  WMARK_PROMO,
  ZONE_MOVABLE,
  ZONE_NORMAL,
  type Zone,
} from "../mmzone.ts";
import { PAGE_SHIFT } from "../page.ts";
import { NR_FREE_CMA_PAGES, NR_FREE_PAGES } from "../vmstat_items.ts";

// Allocation flags (mm/internal.h). The low bits index zone->_watermark.
export const ALLOC_WMARK_MIN = WMARK_MIN;
export const ALLOC_WMARK_LOW = WMARK_LOW;
export const ALLOC_WMARK_HIGH = WMARK_HIGH;
export const ALLOC_NO_WATERMARKS = 0x04;
export const ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1;
export const ALLOC_OOM = 0x08;
export const ALLOC_NON_BLOCK = 0x10;
/** Same value as __GFP_HIGH, so the slow path can copy the bit. */
export const ALLOC_MIN_RESERVE = 0x20;
export const ALLOC_CPUSET = 0x40;
export const ALLOC_CMA = 0x80;
export const ALLOC_NOFRAGMENT = 0x100;
export const ALLOC_HIGHATOMIC = 0x200;
/** Same value as __GFP_KSWAPD_RECLAIM. */
export const ALLOC_KSWAPD = 0x800;
export const ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM;

/** int_sqrt(): integer square root, rounding down. */
export function int_sqrt(x: number): number {
  let r = Math.floor(Math.sqrt(x));
  while (r * r > x) r--;
  while ((r + 1) * (r + 1) <= x) r++;
  return r;
}

/**
 * nr_free_buffer_pages(): pages above the high watermark in the zones that
 * GFP_USER may use (all but ZONE_MOVABLE).
 */
export function nr_free_buffer_pages(m: Machine): number {
  let sum = 0;
  for (const zone of m.zones) {
    if (zone.zone_idx > ZONE_NORMAL) continue;
    const size = zone.managed_pages;
    const high = zone.high_wmark_pages();
    if (size > high) sum += size - high;
  }
  return sum;
}

/** calculate_min_free_kbytes(): sqrt(lowmem_kbytes * 16), clamped to [128, 262144]. */
export function calculate_min_free_kbytes(m: Machine): number {
  const lowmem_kbytes = nr_free_buffer_pages(m) * ((1 << PAGE_SHIFT) >> 10);
  const new_min_free_kbytes = int_sqrt(lowmem_kbytes * 16);
  return Math.min(262144, Math.max(128, new_min_free_kbytes));
}

/**
 * set_recommended_min_free_kbytes() from mm/khugepaged.c: with THP enabled,
 * keep two free pageblocks per populated zone plus room for every fallback
 * combination to steal a pageblock, capped at 5% of lowmem. Returns the
 * recommended value in kbytes (0 when THP is off).
 */
export function recommended_min_free_kbytes(m: Machine): number {
  if (m.sysctl.transparent_hugepage === "never") return 0;
  let nr_zones = 0;
  for (const zone of m.zones) {
    if (!zone.populated_zone() || zone.zone_idx > ZONE_NORMAL) continue;
    nr_zones++;
  }
  const pageblock_nr_pages = 1 << m.mem.pageblock_order;
  let recommended_min = pageblock_nr_pages * nr_zones * 2;
  recommended_min += pageblock_nr_pages * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES;
  recommended_min = Math.min(recommended_min, Math.floor(nr_free_buffer_pages(m) / 20));
  return recommended_min << (PAGE_SHIFT - 10);
}

/**
 * init_per_zone_wmark_min() plus khugepaged's adjustment: choose
 * min_free_kbytes (unless the user set it) and derive every zone's
 * watermarks, lowmem reserves and pcp high/batch from it.
 */
export function init_per_zone_wmark_min(m: Machine): void {
  if (m.sysctl.user_min_free_kbytes < 0) {
    m.sysctl.min_free_kbytes = calculate_min_free_kbytes(m);
  } else {
    m.sysctl.min_free_kbytes = m.sysctl.user_min_free_kbytes;
  }
  setup_per_zone_wmarks(m);
  setup_per_zone_lowmem_reserve(m);
  if (m.sysctl.user_min_free_kbytes < 0) {
    const recommended = recommended_min_free_kbytes(m);
    if (recommended > m.sysctl.min_free_kbytes) {
      m.sysctl.min_free_kbytes = recommended;
      setup_per_zone_wmarks(m);
    }
  }
}

/**
 * __setup_per_zone_wmarks(): split min_free_kbytes across the lowmem zones in
 * proportion to their managed pages; low and high sit a step above min, the
 * step being the larger of min/4 and watermark_scale_factor/10000 of the zone.
 */
export function setup_per_zone_wmarks(m: Machine): void {
  const pages_min = m.sysctl.min_free_kbytes >> (PAGE_SHIFT - 10);
  let lowmem_pages = 0;
  for (const zone of m.zones) {
    if (zone.zone_idx !== ZONE_MOVABLE) lowmem_pages += zone.managed_pages;
  }
  for (const zone of m.zones) {
    let tmp = lowmem_pages > 0 ? Math.floor((pages_min * zone.managed_pages) / lowmem_pages) : 0;
    if (zone.zone_idx === ZONE_MOVABLE) {
      // Movable (like highmem) keeps a small fixed minimum of its own.
      const min_pages = Math.min(128, Math.max(32, Math.floor(zone.managed_pages / 1024)));
      zone._watermark[WMARK_MIN] = min_pages;
    } else {
      zone._watermark[WMARK_MIN] = tmp;
    }
    tmp = Math.max(
      Math.floor(tmp / 4),
      Math.floor((zone.managed_pages * m.sysctl.watermark_scale_factor) / 10000),
    );
    zone.watermark_boost = 0;
    zone._watermark[WMARK_LOW] = zone._watermark[WMARK_MIN] + tmp;
    zone._watermark[WMARK_HIGH] = zone._watermark[WMARK_LOW] + tmp;
    zone._watermark[WMARK_PROMO] = zone._watermark[WMARK_HIGH] + tmp;
  }
}

/**
 * setup_per_zone_lowmem_reserve(): a zone keeps back, from allocations that
 * could have used a higher zone j, the managed pages of the zones above it up
 * to j divided by its lowmem_reserve_ratio.
 */
export function setup_per_zone_lowmem_reserve(m: Machine): void {
  for (const pgdat of m.pgdat) {
    for (let i = 0; i < MAX_NR_ZONES; i++) {
      const zone = pgdat.node_zones[i];
      const ratio = m.sysctl.lowmem_reserve_ratio[i];
      const clear = !ratio || !zone.managed_pages;
      let managed_pages = 0;
      for (let j = 0; j < MAX_NR_ZONES; j++) zone.lowmem_reserve[j] = 0;
      for (let j = i + 1; j < MAX_NR_ZONES; j++) {
        managed_pages += pgdat.node_zones[j].managed_pages;
        zone.lowmem_reserve[j] = clear ? 0 : Math.floor(managed_pages / ratio);
      }
    }
  }
}

/** __zone_watermark_unusable_free(): free pages this caller may not count. */
export function __zone_watermark_unusable_free(
  z: Zone,
  order: number,
  alloc_flags: number,
): number {
  let unusable_free = (1 << order) - 1;
  if (!(alloc_flags & ALLOC_RESERVES)) unusable_free += z.nr_free_highatomic;
  if (!(alloc_flags & ALLOC_CMA)) unusable_free += z.vm_stat[NR_FREE_CMA_PAGES];
  return unusable_free;
}

/**
 * __zone_watermark_ok(): would `free_pages` stay above `mark` (plus the
 * lowmem reserve against highest_zoneidx) after this allocation, and for
 * order > 0, is there a free block big enough on a list this caller may use?
 */
export function __zone_watermark_ok(
  m: Machine,
  z: Zone,
  order: number,
  mark: number,
  highest_zoneidx: number,
  alloc_flags: number,
  free_pages: number,
): boolean {
  let min = mark;
  free_pages -= __zone_watermark_unusable_free(z, order, alloc_flags);
  if (alloc_flags & ALLOC_RESERVES) {
    if (alloc_flags & ALLOC_MIN_RESERVE) {
      min -= Math.floor(min / 2);
      if (alloc_flags & ALLOC_NON_BLOCK) min -= Math.floor(min / 4);
    }
    if (alloc_flags & ALLOC_OOM) min -= Math.floor(min / 2);
  }
  if (free_pages <= min + z.lowmem_reserve[highest_zoneidx]) return false;
  if (order === 0) return true;
  const mem = m.mem;
  for (let o = order; o < NR_PAGE_ORDERS; o++) {
    if (z.nr_free[o] === 0) continue;
    for (let mt = 0; mt < MIGRATE_PCPTYPES; mt++) {
      if (!list_empty(mem, z.free_list(o, mt))) return true;
    }
    if (alloc_flags & ALLOC_CMA && !list_empty(mem, z.free_list(o, MIGRATE_CMA))) return true;
    if (
      alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM) &&
      !list_empty(mem, z.free_list(o, MIGRATE_HIGHATOMIC))
    ) {
      return true;
    }
  }
  return false;
}

/** zone_watermark_ok() */
export function zone_watermark_ok(
  m: Machine,
  z: Zone,
  order: number,
  mark: number,
  highest_zoneidx: number,
  alloc_flags: number,
): boolean {
  return __zone_watermark_ok(
    m,
    z,
    order,
    mark,
    highest_zoneidx,
    alloc_flags,
    z.vm_stat[NR_FREE_PAGES],
  );
}

/** zone_watermark_fast(): the order-0 shortcut, then the full check. */
export function zone_watermark_fast(
  m: Machine,
  z: Zone,
  order: number,
  mark: number,
  highest_zoneidx: number,
  alloc_flags: number,
): boolean {
  const free_pages = z.vm_stat[NR_FREE_PAGES];
  if (order === 0) {
    let usable_free = free_pages;
    const reserved = __zone_watermark_unusable_free(z, 0, alloc_flags);
    usable_free -= Math.min(usable_free, reserved);
    if (usable_free > mark + z.lowmem_reserve[highest_zoneidx]) return true;
  }
  if (__zone_watermark_ok(m, z, order, mark, highest_zoneidx, alloc_flags, free_pages)) return true;
  // A __GFP_HIGH order-0 request checked against the min mark ignores boost.
  if (
    order === 0 &&
    alloc_flags & ALLOC_MIN_RESERVE &&
    z.watermark_boost &&
    (alloc_flags & ALLOC_WMARK_MASK) === WMARK_MIN
  ) {
    return __zone_watermark_ok(
      m,
      z,
      order,
      z._watermark[WMARK_MIN],
      highest_zoneidx,
      alloc_flags,
      free_pages,
    );
  }
  return false;
}

/**
 * boost_watermark(): after a fallback steals from another migratetype, raise
 * the zone's watermarks by a pageblock (up to watermark_boost_factor/10000 of
 * the high mark) so that kswapd reclaims and compacts ahead of need.
 */
export function boost_watermark(m: Machine, zone: Zone): boolean {
  const factor = m.sysctl.watermark_boost_factor;
  if (!factor) return false;
  const pageblock_nr_pages = 1 << m.mem.pageblock_order;
  if (pageblock_nr_pages * 4 > zone.managed_pages) return false;
  let max_boost = Math.floor((zone._watermark[WMARK_HIGH] * factor) / 10000);
  if (!max_boost) return false;
  max_boost = Math.max(pageblock_nr_pages, max_boost);
  zone.watermark_boost = Math.min(zone.watermark_boost + pageblock_nr_pages, max_boost);
  return true;
}
