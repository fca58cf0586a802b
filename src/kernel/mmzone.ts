/**
 * kernel/mmzone.ts: models include/linux/mmzone.h: migratetypes, zones,
 * free areas, per-cpu pagesets and the node (struct pglist_data).
 *
 * Free lists and pcp lists are list_heads in the memory map's link arrays
 * (see page.ts); a Zone only records where its heads start.
 *
 * Locking: everything in a zone's free_area and vm_stat is changed under
 * zone->lock; a pcp list is changed only by its own CPU (pcp->lock). The
 * model runs one allocator call at a time, so these are documented rather
 * than taken here; the runtime names them for the checker.
 */

import type { MemMap } from "./page.ts";

export const MAX_PAGE_ORDER = 10;
export const NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1;
export const PAGE_ALLOC_COSTLY_ORDER = 3;

// enum migratetype
export const MIGRATE_UNMOVABLE = 0;
export const MIGRATE_MOVABLE = 1;
export const MIGRATE_RECLAIMABLE = 2;
export const MIGRATE_PCPTYPES = 3;
export const MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES;
export const MIGRATE_CMA = 4;
export const MIGRATE_ISOLATE = 5;
export const MIGRATE_TYPES = 6;

export const migratetype_names: readonly string[] = [
  "Unmovable",
  "Movable",
  "Reclaimable",
  "HighAtomic",
  "CMA",
  "Isolate",
];

export function is_migrate_movable(mt: number): boolean {
  return mt === MIGRATE_MOVABLE || mt === MIGRATE_CMA;
}

/** migratetype_is_mergeable(): blocks of these types merge across pageblocks. */
export function migratetype_is_mergeable(mt: number): boolean {
  return mt < MIGRATE_PCPTYPES;
}

// enum zone_type, x86-64 with CONFIG_ZONE_DMA, DMA32 and ZONE_DEVICE.
export const ZONE_DMA = 0;
export const ZONE_DMA32 = 1;
export const ZONE_NORMAL = 2;
export const ZONE_MOVABLE = 3;
export const ZONE_DEVICE = 4;
export const MAX_NR_ZONES = 5;
export const zone_names: readonly string[] = ["DMA", "DMA32", "Normal", "Movable", "Device"];

// enum zone_watermarks
export const WMARK_MIN = 0;
export const WMARK_LOW = 1;
export const WMARK_HIGH = 2;
export const WMARK_PROMO = 3;
export const NR_WMARK = 4;

/**
 * Per-cpu page lists: one list per (order, migratetype) for the orders up to
 * PAGE_ALLOC_COSTLY_ORDER, and two for pageblock_order (THP): one movable,
 * one for unmovable and reclaimable together (order_to_pindex).
 */
export const NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1);
export const NR_PCP_THP = 2;
export const NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + NR_PCP_THP;

/** enum zone_flags bits */
export const ZONE_BOOSTED_WATERMARK = 1 << 0;
export const ZONE_RECLAIM_ACTIVE = 1 << 1;
export const ZONE_BELOW_HIGH = 1 << 2;

/** pcp->flags bits */
export const PCPF_PREV_FREE_HIGH_ORDER = 1 << 0;
export const PCPF_FREE_HIGH_BATCH = 1 << 1;

/** struct per_cpu_pages */
export class PerCpuPages {
  count = 0;
  high = 0;
  high_min = 0;
  high_max = 0;
  batch = 0;
  flags = 0;
  alloc_factor = 0;
  free_count = 0;
  /** First of NR_PCP_LISTS list heads in the memory map. */
  readonly lists_base: number;
  constructor(lists_base: number) {
    this.lists_base = lists_base;
  }
}

/** struct zone, with the fields pagesim models. */
export class Zone {
  readonly name: string;
  readonly zone_idx: number;
  readonly node_id: number;
  zone_start_pfn = 0;
  spanned_pages = 0;
  present_pages = 0;
  managed_pages = 0;
  cma_pages = 0;

  /** zone->_watermark[NR_WMARK] */
  readonly _watermark = new Float64Array(NR_WMARK);
  watermark_boost = 0;
  nr_reserved_highatomic = 0;
  nr_free_highatomic = 0;
  /** zone->flags: ZONE_BOOSTED_WATERMARK, ZONE_BELOW_HIGH, ... */
  flags = 0;
  /** zone->lowmem_reserve[MAX_NR_ZONES] */
  readonly lowmem_reserve = new Float64Array(MAX_NR_ZONES);

  /** free_area[order].nr_free */
  readonly nr_free = new Float64Array(NR_PAGE_ORDERS);
  /** First of NR_PAGE_ORDERS * MIGRATE_TYPES free-list heads: [order][mt]. */
  free_list_base = -1;

  /** zone->vm_stat[NR_VM_ZONE_STAT_ITEMS] */
  readonly vm_stat: Float64Array;
  /** zone->per_cpu_zonestats' numa_hit .. numa_other, summed over CPUs */
  readonly vm_numa_event = new Float64Array(6);
  /** zone->per_cpu_pageset, one per CPU */
  per_cpu_pageset: PerCpuPages[] = [];
  pageset_high_min = 0;
  pageset_high_max = 0;
  pageset_batch = 0;

  /** Compaction state (mm/compaction.c). */
  compact_cached_free_pfn = 0;
  readonly compact_cached_migrate_pfn = [0, 0];
  compact_init_migrate_pfn = 0;
  compact_init_free_pfn = 0;
  compact_considered = 0;
  compact_defer_shift = 0;
  compact_order_failed = 0;
  compact_blockskip_flush = false;
  contiguous = false;

  constructor(name: string, zone_idx: number, node_id: number, nr_zone_stat_items: number) {
    this.name = name;
    this.zone_idx = zone_idx;
    this.node_id = node_id;
    this.vm_stat = new Float64Array(nr_zone_stat_items);
  }

  get zone_end_pfn(): number {
    return this.zone_start_pfn + this.spanned_pages;
  }

  zone_spans_pfn(pfn: number): boolean {
    return pfn >= this.zone_start_pfn && pfn < this.zone_start_pfn + this.spanned_pages;
  }

  populated_zone(): boolean {
    return this.present_pages !== 0;
  }

  /** The list head of free_area[order].free_list[migratetype]. */
  free_list(order: number, migratetype: number): number {
    return this.free_list_base + order * MIGRATE_TYPES + migratetype;
  }

  min_wmark_pages(): number {
    return this._watermark[WMARK_MIN] + this.watermark_boost;
  }
  low_wmark_pages(): number {
    return this._watermark[WMARK_LOW] + this.watermark_boost;
  }
  high_wmark_pages(): number {
    return this._watermark[WMARK_HIGH] + this.watermark_boost;
  }
  wmark_pages(i: number): number {
    return this._watermark[i] + this.watermark_boost;
  }
}

/** struct pglist_data: one NUMA node. */
export class PgData {
  readonly node_id: number;
  readonly node_zones: Zone[];
  node_start_pfn = 0;
  node_spanned_pages = 0;
  node_present_pages = 0;
  /** node->vm_stat[NR_VM_NODE_STAT_ITEMS] */
  readonly vm_stat: Float64Array;
  /** kcompactd state (mm/compaction.c) */
  kcompactd_max_order = 0;
  kcompactd_highest_zoneidx = 0;
  proactive_compact_trigger = false;
  /** kcompactd_wait: whether kcompactd sleeps on it (wq_has_sleeper()). */
  kcompactd_sleeping = false;
  /** A wake_up_interruptible() on kcompactd_wait not yet seen by the sleeper. */
  kcompactd_woken = false;
  constructor(node_id: number, zones: Zone[], nr_node_stat_items: number) {
    this.node_id = node_id;
    this.node_zones = zones;
    this.vm_stat = new Float64Array(nr_node_stat_items);
  }
}

export function pageblock_start_pfn(mem: MemMap, pfn: number): number {
  return pfn & ~((1 << mem.pageblock_order) - 1);
}

export function pageblock_end_pfn(mem: MemMap, pfn: number): number {
  return pageblock_start_pfn(mem, pfn) + (1 << mem.pageblock_order);
}
