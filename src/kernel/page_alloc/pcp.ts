/**
 * kernel/page_alloc/pcp.ts: the per-cpu page lists of mm/page_alloc.c
 * (v6.16, with pcp->high auto-tuned between high_min and high_max): zone_batchsize, zone_highsize,
 * zone_set_pageset_high_and_batch, nr_pcp_alloc, rmqueue_bulk,
 * rmqueue_pcplist, nr_pcp_high, nr_pcp_free, free_pcppages_bulk,
 * free_unref_page_commit, decay_pcp_high, drain_pages_zone, drain_all_pages.
 *
 * Locking: a pcp is touched only by its own CPU (pcp->lock, a trylock in the
 * kernel); moving pages between a pcp list and the buddy lists takes
 * zone->lock. Pages on pcp lists are not counted in NR_FREE_PAGES and do not
 * appear in /proc/buddyinfo; they are not merged with their buddies until
 * drained.
 *
 * Invariant: pcp->count equals the pages on the pcp's lists (debug_vm.ts).
 */

import { VM_BUG_ON } from "../bug.ts";
import {
  list_add,
  list_add_tail,
  list_del,
  list_empty,
  list_first_entry_or_null,
} from "../list.ts";
import type { Machine } from "../machine.ts";
import {
  MIGRATE_MOVABLE,
  MIGRATE_PCPTYPES,
  NR_LOWORDER_PCP_LISTS,
  NR_PCP_LISTS,
  PAGE_ALLOC_COSTLY_ORDER,
  PCPF_FREE_HIGH_BATCH,
  PCPF_PREV_FREE_HIGH_ORDER,
  type PerCpuPages,
  WMARK_HIGH,
  ZONE_BELOW_HIGH,
  ZONE_MOVABLE,
  ZONE_RECLAIM_ACTIVE,
  type Zone,
} from "../mmzone.ts";
import { get_pageblock_migratetype, type Pfn } from "../page.ts";
import { __rmqueue, RMQUEUE_NORMAL } from "./fallback.ts";
import { __free_one_page, FPI_NONE } from "./free_area.ts";
import { zone_watermark_ok } from "./watermark.ts";

/** CONFIG_PCP_BATCH_SCALE_MAX */
export const PCP_BATCH_SCALE_MAX = 5;
/** MIN_PERCPU_PAGELIST_HIGH_FRACTION */
export const MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8;

/** pcp_allowed_order(): orders cached on pcp lists (THP's order included). */
export function pcp_allowed_order(m: Machine, order: number): boolean {
  if (order <= PAGE_ALLOC_COSTLY_ORDER) return true;
  return order === m.mem.pageblock_order && m.sysctl.transparent_hugepage !== "never";
}

/** order_to_pindex() */
export function order_to_pindex(m: Machine, migratetype: number, order: number): number {
  if (order > PAGE_ALLOC_COSTLY_ORDER) {
    VM_BUG_ON(order !== m.mem.pageblock_order, "pcp: order not cacheable");
    return NR_LOWORDER_PCP_LISTS + (migratetype === MIGRATE_MOVABLE ? 1 : 0);
  }
  return MIGRATE_PCPTYPES * order + migratetype;
}

/** pindex_to_order() */
export function pindex_to_order(m: Machine, pindex: number): number {
  return pindex >= NR_LOWORDER_PCP_LISTS
    ? m.mem.pageblock_order
    : Math.floor(pindex / MIGRATE_PCPTYPES);
}

function rounddown_pow_of_two(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

/** zone_batchsize(): ~0.1% of the zone, at most 256 KiB a quarter, as 2^n - 1. */
export function zone_batchsize(zone: Zone): number {
  const b = Math.min(Math.floor(zone.managed_pages / 4096), 64);
  if (b <= 1) return 1;
  return rounddown_pow_of_two(b + Math.floor(b / 2)) - 1;
}

/** zone_highsize(): a CPU's share of the low watermark (or of a fraction of the zone). */
export function zone_highsize(
  m: Machine,
  zone: Zone,
  batch: number,
  high_fraction: number,
): number {
  const total_pages = high_fraction
    ? Math.floor(zone.managed_pages / high_fraction)
    : zone.low_wmark_pages();
  const nr_split_cpus = m.nr_cpus;
  const high = Math.floor(total_pages / nr_split_cpus);
  return Math.max(high, batch << 2);
}

/** zone_set_pageset_high_and_batch() / pageset_update() for every CPU. */
export function zone_set_pageset_high_and_batch(m: Machine, zone: Zone): void {
  let high_min: number;
  let high_max: number;
  let batch: number;
  if (!zone.populated_zone()) {
    // Boot pagesets: nothing is kept on the lists.
    high_min = 0;
    high_max = 0;
    batch = 1;
  } else {
    batch = zone_batchsize(zone);
    const fraction = m.sysctl.percpu_pagelist_high_fraction;
    if (fraction) {
      high_min = zone_highsize(m, zone, batch, fraction);
      high_max = high_min;
    } else {
      high_min = zone_highsize(m, zone, batch, 0);
      high_max = zone_highsize(m, zone, batch, MIN_PERCPU_PAGELIST_HIGH_FRACTION);
    }
  }
  zone.pageset_high_min = high_min;
  zone.pageset_high_max = high_max;
  zone.pageset_batch = batch;
  // pcp->high itself is left alone: it starts at 0 and is clamped into
  // [high_min, high_max] the first time the pcp is used.
  for (const pcp of zone.per_cpu_pageset) {
    pcp.batch = batch;
    pcp.high_min = high_min;
    pcp.high_max = high_max;
  }
}

/**
 * nr_pcp_alloc(): how many pages to pull from the buddy lists when a pcp list
 * is empty. Repeated order-0 allocations without frees double the batch
 * (alloc_factor), up to what fits under pcp->high.
 */
function nr_pcp_alloc(pcp: PerCpuPages, zone: Zone, order: number): number {
  const base_batch = pcp.batch;
  const high_min = pcp.high_min;
  const high_max = pcp.high_max;
  let high = (pcp.high = Math.min(Math.max(pcp.high, high_min), high_max));
  if (high < base_batch) return 1;
  let batch = order ? base_batch : base_batch << pcp.alloc_factor;
  if (high_min !== high_max && !(zone.flags & ZONE_BELOW_HIGH)) {
    high = pcp.high = Math.min(high + batch, high_max);
  }
  if (!order) {
    const max_nr_alloc = Math.max(high - pcp.count - base_batch, base_batch);
    if (batch <= max_nr_alloc && pcp.alloc_factor < PCP_BATCH_SCALE_MAX) pcp.alloc_factor++;
    batch = Math.min(batch, max_nr_alloc);
  }
  if (batch > 1) batch = Math.max(batch >> order, 2);
  return batch;
}

/**
 * rmqueue_bulk(): take `count` blocks of `order` from the buddy lists (under
 * zone->lock) onto a pcp list, in physical order at the tail.
 */
function rmqueue_bulk(
  m: Machine,
  zone: Zone,
  order: number,
  count: number,
  list: number,
  migratetype: number,
  alloc_flags: number,
): number {
  let i = 0;
  m.rmqueue_mode = RMQUEUE_NORMAL;
  for (; i < count; i++) {
    const pfn = __rmqueue(m, zone, order, migratetype, alloc_flags);
    if (pfn < 0) break;
    list_add_tail(m.mem, pfn, list);
  }
  return i;
}

/**
 * rmqueue_pcplist(): take a block from this CPU's pcp list, refilling the
 * list from the buddy lists when it is empty. Returns the pfn or -1.
 */
export function rmqueue_pcplist(
  m: Machine,
  cpu: number,
  zone: Zone,
  order: number,
  migratetype: number,
  alloc_flags: number,
): Pfn {
  const pcp = zone.per_cpu_pageset[cpu];
  // Allocating halves the batch that the next frees will return.
  pcp.free_count >>= 1;
  const list = pcp.lists_base + order_to_pindex(m, migratetype, order);
  const mem = m.mem;
  if (list_empty(mem, list)) {
    const batch = nr_pcp_alloc(pcp, zone, order);
    const alloced = rmqueue_bulk(m, zone, order, batch, list, migratetype, alloc_flags);
    pcp.count += alloced << order;
    if (list_empty(mem, list)) return -1;
  }
  const pfn = list_first_entry_or_null(mem, list);
  list_del(mem, pfn);
  pcp.count -= 1 << order;
  return pfn;
}

/**
 * nr_pcp_high(): the pcp's high mark for this free, auto-tuned: it grows
 * while the CPU frees in bursts (up to high_max) and shrinks when the zone is
 * below its high watermark or under reclaim.
 */
function nr_pcp_high(pcp: PerCpuPages, zone: Zone, batch: number, free_high: boolean): number {
  const high_min = pcp.high_min;
  const high_max = pcp.high_max;
  let high = (pcp.high = Math.min(Math.max(pcp.high, high_min), high_max));
  if (!high) return 0;
  if (free_high) {
    pcp.high = Math.max(high - (batch << PCP_BATCH_SCALE_MAX), high_min);
    return 0;
  }
  if (zone.flags & ZONE_RECLAIM_ACTIVE) {
    const free_count = Math.max(pcp.free_count, batch);
    pcp.high = Math.max(high - free_count, high_min);
    return Math.min(batch << 2, pcp.high);
  }
  if (high_min === high_max) return high;
  if (zone.flags & ZONE_BELOW_HIGH) {
    const free_count = Math.max(pcp.free_count, batch);
    pcp.high = Math.max(high - free_count, high_min);
    high = Math.max(pcp.count, high_min);
  } else if (pcp.count >= high) {
    const need_high = pcp.free_count + batch;
    if (pcp.high < need_high) pcp.high = Math.min(Math.max(need_high, high_min), high_max);
  }
  return high;
}

/** nr_pcp_free(): how many pages a free over the high mark returns to the buddy. */
function nr_pcp_free(pcp: PerCpuPages, batch: number, high: number, free_high: boolean): number {
  if (free_high) return Math.min(pcp.count, batch << PCP_BATCH_SCALE_MAX);
  if (high < batch) return 1;
  const min_nr_free = batch;
  const max_nr_free = high - batch;
  return Math.min(Math.max(pcp.free_count, min_nr_free), max_nr_free);
}

/**
 * free_pcppages_bulk(): return `count` pages from a pcp's lists to the buddy
 * lists, round-robin over the lists starting with `pindex`, oldest pages
 * (the list tail) first. Takes zone->lock.
 */
export function free_pcppages_bulk(
  m: Machine,
  zone: Zone,
  count: number,
  pcp: PerCpuPages,
  pindex: number,
): void {
  const mem = m.mem;
  count = Math.min(pcp.count, count);
  pindex = pindex - 1;
  while (count > 0) {
    let list: number;
    do {
      if (++pindex > NR_PCP_LISTS - 1) pindex = 0;
      list = pcp.lists_base + pindex;
    } while (list_empty(mem, list));
    const order = pindex_to_order(m, pindex);
    const nr_pages = 1 << order;
    do {
      const pfn = mem.lru_prev[list];
      list_del(mem, pfn);
      count -= nr_pages;
      pcp.count -= nr_pages;
      __free_one_page(
        mem,
        zone,
        pfn,
        order,
        get_pageblock_migratetype(mem, pfn),
        FPI_NONE,
        m.free_area_hooks,
      );
    } while (count > 0 && !list_empty(mem, list));
  }
}

/**
 * free_unref_page_commit(): put a freed block (already prepared) on this
 * CPU's pcp list, and return a batch to the buddy lists when the list is
 * over its high mark.
 */
export function free_unref_page_commit(
  m: Machine,
  zone: Zone,
  pcp: PerCpuPages,
  pfn: Pfn,
  migratetype: number,
  order: number,
): void {
  pcp.alloc_factor >>= 1;
  const pindex = order_to_pindex(m, migratetype, order);
  list_add(m.mem, pfn, pcp.lists_base + pindex);
  pcp.count += 1 << order;
  const batch = pcp.batch;
  let free_high = false;
  if (order && order <= PAGE_ALLOC_COSTLY_ORDER) {
    free_high =
      pcp.free_count >= batch + (pcp.high_min >> 1) &&
      (pcp.flags & PCPF_PREV_FREE_HIGH_ORDER) !== 0 &&
      (!(pcp.flags & PCPF_FREE_HIGH_BATCH) || pcp.count >= batch);
    pcp.flags |= PCPF_PREV_FREE_HIGH_ORDER;
  } else if (pcp.flags & PCPF_PREV_FREE_HIGH_ORDER) {
    pcp.flags &= ~PCPF_PREV_FREE_HIGH_ORDER;
  }
  if (pcp.free_count < batch << PCP_BATCH_SCALE_MAX) pcp.free_count += 1 << order;
  const high = nr_pcp_high(pcp, zone, batch, free_high);
  if (pcp.count >= high) {
    // Returned a batch at a time (the kernel drops and retakes the pcp lock
    // between batches).
    let to_free = nr_pcp_free(pcp, batch, high, free_high);
    while (to_free > 0 && pcp.count > 0) {
      const chunk = Math.min(to_free, batch);
      free_pcppages_bulk(m, zone, chunk, pcp, pindex);
      to_free -= chunk;
    }
    if (
      zone.flags & ZONE_BELOW_HIGH &&
      zone_watermark_ok(m, zone, 0, zone.wmark_pages(WMARK_HIGH), ZONE_MOVABLE, 0)
    ) {
      zone.flags &= ~ZONE_BELOW_HIGH;
    }
  }
}

/**
 * decay_pcp_high(): called every stat interval (vmstat's
 * refresh_cpu_vm_stats): lower pcp->high by 1/8 towards high_min and drain
 * what is above it. Returns whether more decay work remains.
 */
export function decay_pcp_high(m: Machine, zone: Zone, pcp: PerCpuPages): boolean {
  let todo = false;
  const high_min = pcp.high_min;
  const batch = pcp.batch;
  if (pcp.high > high_min) {
    pcp.high = Math.max(
      pcp.count - (batch << PCP_BATCH_SCALE_MAX),
      pcp.high - (pcp.high >> 3),
      high_min,
    );
    if (pcp.high > high_min) todo = true;
  }
  const to_drain = pcp.count - pcp.high;
  if (to_drain > 0) {
    free_pcppages_bulk(m, zone, to_drain, pcp, 0);
    todo = true;
  }
  return todo;
}

/** drain_pages_zone(): return all of one CPU's pcp pages in a zone to the buddy. */
export function drain_pages_zone(m: Machine, cpu: number, zone: Zone): void {
  const pcp = zone.per_cpu_pageset[cpu];
  if (pcp?.count) free_pcppages_bulk(m, zone, pcp.count, pcp, 0);
}

/** drain_all_pages(): drain every CPU's pcp lists, in one zone or in all. */
export function drain_all_pages(m: Machine, zone: Zone | null): void {
  for (const z of zone ? [zone] : m.zones) {
    for (let cpu = 0; cpu < z.per_cpu_pageset.length; cpu++) drain_pages_zone(m, cpu, z);
  }
}

/** Free pages held on pcp lists in a zone, over all CPUs. */
export function zone_pcp_pages(zone: Zone): number {
  let n = 0;
  for (const pcp of zone.per_cpu_pageset) n += pcp.count;
  return n;
}
