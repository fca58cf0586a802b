/**
 * kernel/page_alloc/alloc.ts: the allocator's front door, from
 * mm/page_alloc.c (v6.16): alloc_pages, __alloc_pages,
 * prepare_alloc_pages, alloc_flags_nofragment, get_page_from_freelist,
 * rmqueue, rmqueue_buddy, prep_new_page, prep_compound_page,
 * __alloc_pages_slowpath, gfp_to_alloc_flags; and the free side:
 * __free_pages, free_pages_prepare, free_frozen_pages (free_unref_page).
 *
 * Locking: rmqueue_buddy and the direct free path take zone->lock; the pcp
 * path takes this CPU's pcp lock. An allocation runs to completion without
 * yielding: the runtime treats it as one step under zone->lock.
 *
 * Bad input (freeing a free page, a tail page, with the wrong order, or a
 * page still mapped or on a list) throws a BadPageError before any state
 * changes, in the spirit of the kernel's bad_page() report.
 *
 * The slow path's seams: m.hooks.direct_compact, direct_reclaim,
 * oom_notify (balloon deflate-on-OOM) and oom_kill, each null until a
 * subsystem attaches it. Without them a request that the free lists cannot
 * satisfy fails, as __GFP_NORETRY would.
 */

import { bad_page, KernelBug, VM_BUG_ON_PAGE } from "../bug.ts";
import {
  __GFP_COMP,
  __GFP_DIRECT_RECLAIM,
  __GFP_HIGH,
  __GFP_KSWAPD_RECLAIM,
  __GFP_MOVABLE,
  __GFP_NOFAIL,
  __GFP_NOMEMALLOC,
  __GFP_NORETRY,
  __GFP_RETRY_MAYFAIL,
  __GFP_ZERO,
  type Gfp,
  gfp_migratetype,
  gfp_zone,
} from "../gfp.ts";
import type { Machine } from "../machine.ts";
import {
  MAX_PAGE_ORDER,
  MIGRATE_HIGHATOMIC,
  MIGRATE_ISOLATE,
  MIGRATE_MOVABLE,
  MIGRATE_PCPTYPES,
  PAGE_ALLOC_COSTLY_ORDER,
  WMARK_HIGH,
  ZONE_BELOW_HIGH,
  ZONE_BOOSTED_WATERMARK,
  ZONE_DMA32,
  ZONE_NORMAL,
  type Zone,
} from "../mmzone.ts";
import {
  get_pageblock_migratetype,
  PAGE_FLAGS_CHECK_AT_FREE,
  PAGE_ORDER_MASK,
  PAGE_ORDER_SHIFT,
  type Pfn,
  PG_head,
  PG_tail,
  PGTY_buddy,
  PGTY_none,
  page_order,
} from "../page.ts";
import { ALLOCSTALL_DMA, NUMA_HIT, NUMA_LOCAL, PGALLOC_DMA, PGFREE } from "../vmstat_items.ts";
import {
  __rmqueue,
  RMQUEUE_NORMAL,
  reserve_highatomic_pageblock,
  unreserve_highatomic_pageblock,
} from "./fallback.ts";
import { __rmqueue_smallest, FPI_NONE, free_one_page } from "./free_area.ts";
import { free_unref_page_commit, pcp_allowed_order, rmqueue_pcplist } from "./pcp.ts";
import {
  ALLOC_CMA,
  ALLOC_CPUSET,
  ALLOC_HIGHATOMIC,
  ALLOC_KSWAPD,
  ALLOC_MIN_RESERVE,
  ALLOC_NO_WATERMARKS,
  ALLOC_NOFRAGMENT,
  ALLOC_NON_BLOCK,
  ALLOC_OOM,
  ALLOC_WMARK_HIGH,
  ALLOC_WMARK_LOW,
  ALLOC_WMARK_MASK,
  ALLOC_WMARK_MIN,
  zone_watermark_fast,
} from "./watermark.ts";

/** MAX_RECLAIM_RETRIES: no-progress rounds before the slow path gives up. */
export const MAX_RECLAIM_RETRIES = 16;

/** enum compact_priority: what direct compaction is asked to try first. */
export const COMPACT_PRIO_SYNC_FULL = 0;
export const COMPACT_PRIO_SYNC_LIGHT = 1;
export const COMPACT_PRIO_ASYNC = 2;
export const INIT_COMPACT_PRIORITY = COMPACT_PRIO_ASYNC;

/** enum compact_result values the slow path looks at. */
export const COMPACT_NOT_SUITABLE_ZONE = 0;
export const COMPACT_SKIPPED = 1;
export const COMPACT_DEFERRED = 2;

/** Why the last allocation on this machine failed, for error messages. */
export type AllocFailure = "watermark" | "nomem";

// ---- allocation ------------------------------------------------------------

/**
 * alloc_pages(): allocate 2^order contiguous pages. Returns the first pfn, or
 * -1 when the request cannot be met. An order above MAX_PAGE_ORDER is a
 * caller error (the kernel warns and returns NULL; pagesim throws).
 */
export function alloc_pages(m: Machine, cpu: number, gfp: Gfp, order: number): Pfn {
  if (!(order >>> 0 === order && order <= MAX_PAGE_ORDER)) {
    throw new RangeError(`alloc_pages: order ${order} is out of range 0..${MAX_PAGE_ORDER}`);
  }
  if (!(cpu >= 0 && cpu < m.nr_cpus))
    throw new RangeError(`alloc_pages: no CPU ${cpu} (machine has ${m.nr_cpus})`);
  return __alloc_pages(m, cpu, gfp, order);
}

/**
 * alloc_flags_nofragment(): on the first pass, avoid splitting other types'
 * pageblocks when the preferred zone is Normal and DMA32 exists below it.
 */
export function alloc_flags_nofragment(m: Machine, zone: Zone | undefined, gfp: Gfp): number {
  let alloc_flags = gfp & __GFP_KSWAPD_RECLAIM; // same bit as ALLOC_KSWAPD
  if (!zone || zone.zone_idx !== ZONE_NORMAL) return alloc_flags;
  if (!m.pgdat[zone.node_id].node_zones[ZONE_DMA32].populated_zone()) return alloc_flags;
  alloc_flags |= ALLOC_NOFRAGMENT;
  return alloc_flags;
}

/** __alloc_pages(): the fast path with the low watermark, then the slow path. */
export function __alloc_pages(m: Machine, cpu: number, gfp: Gfp, order: number): Pfn {
  const highest_zoneidx = gfp_zone(gfp);
  const migratetype = m.sysctl.page_group_by_mobility_disabled ? 0 : gfp_migratetype(gfp);
  let alloc_flags = ALLOC_WMARK_LOW | (gfp & __GFP_KSWAPD_RECLAIM) | m.nofragment[highest_zoneidx];
  if (migratetype === MIGRATE_MOVABLE) alloc_flags |= ALLOC_CMA;

  let pfn = get_page_from_freelist(m, cpu, gfp, order, alloc_flags, highest_zoneidx, migratetype);
  if (pfn < 0) pfn = __alloc_pages_slowpath(m, cpu, gfp, order, highest_zoneidx, migratetype);
  if (m.debug_vm && m.verify) m.verify(m);
  if (pfn >= 0 && m.hooks.page_use !== null) m.hooks.page_use(m, pfn, order, gfp);
  return pfn;
}

/**
 * get_page_from_freelist(): walk the zonelist and take a block from the
 * first zone that passes its watermark check.
 */
export function get_page_from_freelist(
  m: Machine,
  cpu: number,
  gfp: Gfp,
  order: number,
  alloc_flags: number,
  highest_zoneidx: number,
  migratetype: number,
): Pfn {
  const zonelist = m.zonelists[highest_zoneidx];
  for (;;) {
    const no_fallback = alloc_flags & ALLOC_NOFRAGMENT;
    for (let i = 0; i < zonelist.length; i++) {
      const zone = zonelist[i];
      // Note when the zone is below its high mark: the pcp free path then
      // shrinks pcp->high instead of growing it.
      let ok = false;
      if (!(zone.flags & ZONE_BELOW_HIGH)) {
        const high = zone.wmark_pages(WMARK_HIGH);
        if (zone_watermark_fast(m, zone, order, high, highest_zoneidx, alloc_flags)) ok = true;
        else zone.flags |= ZONE_BELOW_HIGH;
      }
      if (!ok) {
        const mark = zone.wmark_pages(alloc_flags & ALLOC_WMARK_MASK);
        // ALLOC_NO_WATERMARKS is checked only after the check fails, to keep
        // the fast path fast.
        if (
          !zone_watermark_fast(m, zone, order, mark, highest_zoneidx, alloc_flags) &&
          !(alloc_flags & ALLOC_NO_WATERMARKS)
        ) {
          continue;
        }
      }
      const pfn = rmqueue(m, cpu, zone, order, alloc_flags, migratetype);
      if (pfn >= 0) {
        prep_new_page(m, pfn, order, gfp);
        if (alloc_flags & ALLOC_HIGHATOMIC) reserve_highatomic_pageblock(m, zone, pfn, order);
        return pfn;
      }
    }
    // Every zone was fragmented for this type: try again allowing fallback.
    if (!no_fallback) return -1;
    alloc_flags &= ~ALLOC_NOFRAGMENT;
  }
}

/** rmqueue(): from the pcp lists for small orders, else from the buddy lists. */
function rmqueue(
  m: Machine,
  cpu: number,
  zone: Zone,
  order: number,
  alloc_flags: number,
  migratetype: number,
): Pfn {
  let pfn = -1;
  if (pcp_allowed_order(m, order))
    pfn = rmqueue_pcplist(m, cpu, zone, order, migratetype, alloc_flags);
  if (pfn < 0) pfn = rmqueue_buddy(m, zone, order, alloc_flags, migratetype);
  if (pfn >= 0) {
    m.vm_events[PGALLOC_DMA + zone.zone_idx] += 1 << order;
    // zone_statistics(): one node, so every allocation is a local hit.
    zone.vm_numa_event[NUMA_HIT]++;
    zone.vm_numa_event[NUMA_LOCAL]++;
  }
  if (alloc_flags & ALLOC_KSWAPD && zone.flags & ZONE_BOOSTED_WATERMARK) {
    zone.flags &= ~ZONE_BOOSTED_WATERMARK;
    m.hooks.wakeup_kswapd?.(m, zone, 0, zone.zone_idx);
  }
  return pfn;
}

/** rmqueue_buddy(): take a block straight from the buddy lists (zone->lock). */
function rmqueue_buddy(
  m: Machine,
  zone: Zone,
  order: number,
  alloc_flags: number,
  migratetype: number,
): Pfn {
  let pfn = -1;
  if (alloc_flags & ALLOC_HIGHATOMIC)
    pfn = __rmqueue_smallest(m.mem, zone, order, MIGRATE_HIGHATOMIC);
  if (pfn < 0) {
    m.rmqueue_mode = RMQUEUE_NORMAL;
    pfn = __rmqueue(m, zone, order, migratetype, alloc_flags);
    // Failing now is worse than failing a high-order atomic allocation later.
    if (pfn < 0 && alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK)) {
      pfn = __rmqueue_smallest(m.mem, zone, order, MIGRATE_HIGHATOMIC);
    }
  }
  return pfn;
}

/** check_new_page(): a page coming off the free lists must be clean. */
function check_new_pages(m: Machine, pfn: Pfn, order: number): void {
  const mem = m.mem;
  const end = pfn + (1 << order);
  for (let p = pfn; p < end; p++) {
    if (
      mem._refcount[p] !== 0 ||
      mem._mapcount[p] !== -1 ||
      mem.mapping[p] !== 0 ||
      mem.page_type[p] !== PGTY_none ||
      (mem.flags[p] &
        (PAGE_FLAGS_CHECK_AT_FREE | PAGE_ORDER_MASK | (1 << PG_head) | (1 << PG_tail))) !==
        0
    ) {
      throw new KernelBug(`check_new_pages: page in the free block at pfn ${pfn} is not clean`, p);
    }
  }
}

/**
 * prep_new_page(): the block leaves the allocator with one reference on its
 * head; with __GFP_COMP it becomes a compound page. The allocation order is
 * recorded on the head page (page_owner keeps it in the kernel), so that a
 * free with the wrong order is caught.
 */
export function prep_new_page(m: Machine, pfn: Pfn, order: number, gfp: Gfp): void {
  const mem = m.mem;
  if (m.debug_vm) check_new_pages(m, pfn, order);
  mem._refcount[pfn] = 1;
  mem.page_private[pfn] = 0;
  mem.flags[pfn] = (mem.flags[pfn] & ~PAGE_ORDER_MASK) | (order << PAGE_ORDER_SHIFT);
  if (order && gfp & __GFP_COMP) prep_compound_page(m, pfn, order);
  if (gfp & __GFP_ZERO && mem.content) mem.content.fill(0, pfn, pfn + (1 << order));
}

/** prep_compound_page(): mark the head and tie every tail to it. */
export function prep_compound_page(m: Machine, pfn: Pfn, order: number): void {
  const mem = m.mem;
  mem.flags[pfn] =
    (mem.flags[pfn] & ~PAGE_ORDER_MASK) | (1 << PG_head) | (order << PAGE_ORDER_SHIFT);
  const end = pfn + (1 << order);
  for (let p = pfn + 1; p < end; p++) {
    mem.flags[p] = (mem.flags[p] & ~PAGE_ORDER_MASK) | (1 << PG_tail) | (order << PAGE_ORDER_SHIFT);
  }
}

/** gfp_to_alloc_flags(): the slow path's allocation flags. */
export function gfp_to_alloc_flags(gfp: Gfp, order: number): number {
  let alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET;
  alloc_flags |= gfp & (__GFP_HIGH | __GFP_KSWAPD_RECLAIM); // ALLOC_MIN_RESERVE, ALLOC_KSWAPD
  if (!(gfp & __GFP_DIRECT_RECLAIM)) {
    if (!(gfp & __GFP_NOMEMALLOC)) {
      alloc_flags |= ALLOC_NON_BLOCK;
      // Highatomic reserves only for __GFP_HIGH (GFP_ATOMIC) requests: the
      // 2025 stable fix; before it any non-blocking order > 0 request
      // without __GFP_NOMEMALLOC could reserve a pageblock.
      if (order > 0 && alloc_flags & ALLOC_MIN_RESERVE) alloc_flags |= ALLOC_HIGHATOMIC;
    }
    if (alloc_flags & ALLOC_MIN_RESERVE) alloc_flags &= ~ALLOC_CPUSET;
  }
  if (gfp & __GFP_MOVABLE) alloc_flags |= ALLOC_CMA;
  return alloc_flags;
}

function wake_all_kswapds(m: Machine, order: number, highest_zoneidx: number): void {
  const wake = m.hooks.wakeup_kswapd;
  if (!wake) return;
  for (const zone of m.zonelists[highest_zoneidx]) wake(m, zone, order, highest_zoneidx);
}

/**
 * __alloc_pages_slowpath(): wake kswapd, retry at the min watermark, then
 * (through the hooks) direct compaction for costly or unmovable high-order
 * requests, direct reclaim, compaction again, the OOM notifiers and the OOM
 * killer, with the kernel's retry rules for __GFP_NORETRY, costly orders and
 * __GFP_RETRY_MAYFAIL. Every retry loop is bounded.
 */
function __alloc_pages_slowpath(
  m: Machine,
  cpu: number,
  gfp: Gfp,
  order: number,
  highest_zoneidx: number,
  migratetype: number,
): Pfn {
  const can_direct_reclaim = (gfp & __GFP_DIRECT_RECLAIM) !== 0;
  const costly_order = order > PAGE_ALLOC_COSTLY_ORDER;
  const alloc_flags = gfp_to_alloc_flags(gfp, order);
  const hooks = m.hooks;
  const try_freelist = () =>
    get_page_from_freelist(m, cpu, gfp, order, alloc_flags, highest_zoneidx, migratetype);
  const direct_compact = (prio: number) =>
    hooks.direct_compact!(m, cpu, gfp, order, alloc_flags, highest_zoneidx, migratetype, prio);

  if (alloc_flags & ALLOC_KSWAPD) wake_all_kswapds(m, order, highest_zoneidx);
  let pfn = try_freelist();
  if (pfn >= 0) return pfn;

  let compact_priority = INIT_COMPACT_PRIORITY;
  if (
    can_direct_reclaim &&
    hooks.direct_compact &&
    (costly_order || (order > 0 && migratetype !== MIGRATE_MOVABLE))
  ) {
    const r = direct_compact(compact_priority);
    if (r.pfn >= 0) return r.pfn;
    if (costly_order && gfp & __GFP_NORETRY) {
      if (r.result === COMPACT_SKIPPED || r.result === COMPACT_DEFERRED) return -1;
      compact_priority = INIT_COMPACT_PRIORITY;
    }
  }

  let no_progress_loops = 0;
  for (let round = 0; ; round++) {
    if (round > 4 * MAX_RECLAIM_RETRIES) {
      throw new KernelBug(
        `__alloc_pages_slowpath: order-${order} allocation retried ${round} times without end`,
      );
    }
    if (alloc_flags & ALLOC_KSWAPD) wake_all_kswapds(m, order, highest_zoneidx);
    pfn = try_freelist();
    if (pfn >= 0) return pfn;
    if (!can_direct_reclaim) return nofail_or_fail(m, gfp, order);

    // Direct reclaim, then try again.
    let progress = 0;
    if (hooks.direct_reclaim) {
      for (const zone of m.zonelists[highest_zoneidx])
        m.vm_events[ALLOCSTALL_DMA + zone.zone_idx]++;
      progress = hooks.direct_reclaim(m, cpu, gfp, order);
      pfn = try_freelist();
      if (pfn >= 0) return pfn;
      if (!progress && unreserve_highatomic_pageblock(m, migratetype, false)) {
        pfn = try_freelist();
        if (pfn >= 0) return pfn;
      }
    }
    // Direct compaction, then try again.
    if (hooks.direct_compact && order > 0) {
      const r = direct_compact(compact_priority);
      if (r.pfn >= 0) return r.pfn;
      // should_compact_retry(), reduced: one priority harder each round, no
      // harder than SYNC_LIGHT for costly orders (MIN_COMPACT_COSTLY_PRIORITY).
      if (compact_priority > (costly_order ? COMPACT_PRIO_SYNC_LIGHT : COMPACT_PRIO_SYNC_FULL))
        compact_priority--;
    }
    if (gfp & __GFP_NORETRY) return -1;
    if (costly_order && !(gfp & __GFP_RETRY_MAYFAIL)) return -1;
    if (progress > 0 && ++no_progress_loops <= MAX_RECLAIM_RETRIES) continue;

    // Out of memory: the notifier chain (balloon deflate-on-OOM) first.
    if (hooks.oom_notify) {
      const freed = hooks.oom_notify(m, cpu);
      if (freed > 0) {
        no_progress_loops = 0;
        continue;
      }
    }
    // One last try at the high watermark before killing anything.
    pfn = get_page_from_freelist(
      m,
      cpu,
      gfp & ~__GFP_DIRECT_RECLAIM,
      order,
      ALLOC_WMARK_HIGH | ALLOC_CPUSET,
      highest_zoneidx,
      migratetype,
    );
    if (pfn >= 0) return pfn;
    if (order > PAGE_ALLOC_COSTLY_ORDER || gfp & __GFP_RETRY_MAYFAIL) return -1;
    if (hooks.oom_kill?.(m, cpu, order)) {
      no_progress_loops = 0;
      continue;
    }
    return nofail_or_fail(m, gfp, order);
  }
}

function nofail_or_fail(_m: Machine, gfp: Gfp, order: number): Pfn {
  if (gfp & __GFP_NOFAIL) {
    throw new KernelBug(
      `__GFP_NOFAIL order-${order} allocation cannot be satisfied and nothing can free memory`,
    );
  }
  return -1;
}

// ---- freeing ---------------------------------------------------------------

/**
 * The checks of free_page_is_bad() and free_tail_page_prepare(), done before
 * anything changes. Throws BadPageError naming the pfn, its state and the
 * operation.
 */
function check_free_slow(m: Machine, pfn: Pfn, order: number, op: string): Zone {
  const mem = m.mem;
  if (!(pfn >>> 0 === pfn && pfn < mem.nr_pages)) {
    throw new RangeError(`${op}: pfn ${pfn} is outside the memory map (0..${mem.nr_pages - 1})`);
  }
  if (!(order >>> 0 === order && order <= MAX_PAGE_ORDER)) {
    throw new RangeError(`${op}: order ${order} is out of range 0..${MAX_PAGE_ORDER} (pfn ${pfn})`);
  }
  const zone = m.page_zone(pfn);
  if (!zone) bad_page(mem, pfn, op, "pfn is in a memory hole");
  if (mem.page_type[pfn] === PGTY_buddy) bad_page(mem, pfn, op, "page is already free (PageBuddy)");
  if (mem.flags[pfn] & (1 << PG_tail))
    bad_page(mem, pfn, op, "freeing a tail page of a compound page");
  if (mem._refcount[pfn] <= 0)
    bad_page(mem, pfn, op, "page is not allocated (refcount 0): double free?");
  if (page_order(mem, pfn) !== order) {
    bad_page(
      mem,
      pfn,
      op,
      `freed with order ${order} but allocated with order ${page_order(mem, pfn)}`,
    );
  }
  return zone;
}

function check_free_state_slow(m: Machine, pfn: Pfn, order: number, op: string): void {
  const mem = m.mem;
  const end = pfn + (1 << order);
  for (let p = pfn; p < end; p++) {
    if (mem._mapcount[p] !== -1) bad_page(mem, p, op, "nonzero mapcount");
    if (mem.mapping[p] !== 0) bad_page(mem, p, op, "non-NULL mapping");
    if (mem.flags[p] & PAGE_FLAGS_CHECK_AT_FREE)
      bad_page(mem, p, op, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
    if (mem.page_type[p] !== PGTY_none) bad_page(mem, p, op, "page still has a page type");
    if (p !== pfn && mem._refcount[p] !== 0) bad_page(mem, p, op, "tail page has a reference");
  }
}

/**
 * __free_pages(): drop a reference; the last one frees the block. Pages in
 * pcp-sized orders go to this CPU's pcp list, bigger blocks straight to the
 * buddy lists.
 */
/**
 * The checks of check_free_slow() folded into one test, so the hot path stays
 * small enough to inline; any failure reruns the detailed checks for the
 * report.
 */
function check_free(m: Machine, pfn: Pfn, order: number, op: string): Zone {
  const mem = m.mem;
  const zone = pfn >>> 0 === pfn && pfn < mem.nr_pages ? m.page_zone(pfn) : null;
  if (
    zone === null ||
    order >>> 0 !== order ||
    order > MAX_PAGE_ORDER ||
    mem.page_type[pfn] === PGTY_buddy ||
    (mem.flags[pfn] & ((1 << PG_tail) | PAGE_ORDER_MASK)) !== order << PAGE_ORDER_SHIFT ||
    mem._refcount[pfn] <= 0
  ) {
    return check_free_slow(m, pfn, order, op);
  }
  return zone;
}

/** check_free_state_slow() folded likewise, for the last reference's free. */
function check_free_state(m: Machine, pfn: Pfn, order: number, op: string): void {
  const mem = m.mem;
  const end = pfn + (1 << order);
  let bad =
    (mem._mapcount[pfn] + 1) |
    mem.mapping[pfn] |
    (mem.flags[pfn] & PAGE_FLAGS_CHECK_AT_FREE) |
    mem.page_type[pfn];
  for (let p = pfn + 1; p < end; p++) {
    bad |=
      (mem._mapcount[p] + 1) |
      mem.mapping[p] |
      (mem.flags[p] & PAGE_FLAGS_CHECK_AT_FREE) |
      mem.page_type[p] |
      mem._refcount[p];
  }
  if (bad) check_free_state_slow(m, pfn, order, op);
}

export function __free_pages(m: Machine, cpu: number, pfn: Pfn, order: number): void {
  const op = "__free_pages";
  const zone = check_free(m, pfn, order, op);
  const mem = m.mem;
  if (mem._refcount[pfn] > 1) {
    mem._refcount[pfn]--;
    return;
  }
  check_free_state(m, pfn, order, op);
  mem._refcount[pfn] = 0;
  free_frozen_pages(m, cpu, zone, pfn, order);
  if (m.debug_vm && m.verify) m.verify(m);
}

/** free_pages_prepare(): clear what the allocation set up. */
function free_pages_prepare(m: Machine, pfn: Pfn, order: number): void {
  const mem = m.mem;
  if (mem.flags[pfn] & (1 << PG_head)) {
    const end = pfn + (1 << order);
    for (let p = pfn + 1; p < end; p++) mem.flags[p] &= ~((1 << PG_tail) | PAGE_ORDER_MASK);
  }
  mem.flags[pfn] = 0;
  mem.page_private[pfn] = 0;
  mem.index[pfn] = 0;
}

/**
 * free_frozen_pages() / free_unref_page(): the refcount is already zero.
 * Isolated pageblocks bypass the pcp; highatomic and CMA pages go on the
 * movable pcp list.
 */
export function free_frozen_pages(
  m: Machine,
  cpu: number,
  zone: Zone,
  pfn: Pfn,
  order: number,
): void {
  const mem = m.mem;
  VM_BUG_ON_PAGE(mem._refcount[pfn] !== 0, mem, pfn, "free_frozen_pages with a reference");
  free_pages_prepare(m, pfn, order);
  m.vm_events[PGFREE] += 1 << order;
  if (!pcp_allowed_order(m, order)) {
    free_one_page(mem, zone, pfn, order, FPI_NONE, m.free_area_hooks);
    return;
  }
  let migratetype = get_pageblock_migratetype(mem, pfn);
  if (migratetype >= MIGRATE_PCPTYPES) {
    if (migratetype === MIGRATE_ISOLATE) {
      free_one_page(mem, zone, pfn, order, FPI_NONE, m.free_area_hooks);
      return;
    }
    migratetype = MIGRATE_MOVABLE;
  }
  free_unref_page_commit(m, zone, zone.per_cpu_pageset[cpu], pfn, migratetype, order);
}
