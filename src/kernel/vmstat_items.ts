/**
 * kernel/vmstat_items.ts: the counter enums of include/linux/mmzone.h and
 * include/linux/vm_event_item.h, with their /proc/vmstat names, as printed
 * by a v6.16 x86-64 kernel built with a distribution's configuration (NUMA,
 * ZONE_DMA, ZONE_DMA32, ZONE_DEVICE, CMA, MEMORY_ISOLATION, COMPACTION,
 * MIGRATION, TRANSPARENT_HUGEPAGE, HUGETLB_PAGE, SWAP, ZSMALLOC, KSM, ZSWAP,
 * NUMA_BALANCING, IOMMU_SUPPORT, MEMORY_BALLOON, BALLOON_COMPACTION; no debug
 * options, no UNACCEPTED_MEMORY).
 *
 * Zone items live in zone.vm_stat, node items in pgdat.vm_stat, events in the
 * machine's vm_events (the kernel keeps events per CPU and sums them when the
 * file is read; pagesim keeps the sum). Most counters stay 0 because pagesim
 * does not model what they count (swap, page faults, reclaim scans); they are
 * printed so that tools parsing the files find every line they expect.
 */

/** enum zone_stat_item */
export const zone_stat_names: readonly string[] = [
  "nr_free_pages",
  "nr_free_pages_blocks",
  "nr_zone_inactive_anon",
  "nr_zone_active_anon",
  "nr_zone_inactive_file",
  "nr_zone_active_file",
  "nr_zone_unevictable",
  "nr_zone_write_pending",
  "nr_mlock",
  "nr_zspages",
  "nr_free_cma",
];
export const NR_FREE_PAGES = 0;
/** Free pages in blocks of pageblock order or more (v6.15+). */
export const NR_FREE_PAGES_BLOCKS = 1;
export const NR_ZONE_INACTIVE_ANON = 2;
export const NR_ZONE_ACTIVE_ANON = 3;
export const NR_ZONE_INACTIVE_FILE = 4;
export const NR_ZONE_ACTIVE_FILE = 5;
export const NR_ZONE_UNEVICTABLE = 6;
export const NR_ZONE_WRITE_PENDING = 7;
export const NR_MLOCK = 8;
export const NR_ZSPAGES = 9;
export const NR_FREE_CMA_PAGES = 10;
export const NR_VM_ZONE_STAT_ITEMS = zone_stat_names.length;

/** enum numa_stat_item, kept per zone. */
export const numa_stat_names: readonly string[] = [
  "numa_hit",
  "numa_miss",
  "numa_foreign",
  "numa_interleave",
  "numa_local",
  "numa_other",
];
export const NUMA_HIT = 0;
export const NUMA_LOCAL = 4;
export const NR_VM_NUMA_EVENT_ITEMS = numa_stat_names.length;

/** enum node_stat_item */
export const node_stat_names: readonly string[] = [
  "nr_inactive_anon",
  "nr_active_anon",
  "nr_inactive_file",
  "nr_active_file",
  "nr_unevictable",
  "nr_slab_reclaimable",
  "nr_slab_unreclaimable",
  "nr_isolated_anon",
  "nr_isolated_file",
  "workingset_nodes",
  "workingset_refault_anon",
  "workingset_refault_file",
  "workingset_activate_anon",
  "workingset_activate_file",
  "workingset_restore_anon",
  "workingset_restore_file",
  "workingset_nodereclaim",
  "nr_anon_pages",
  "nr_mapped",
  "nr_file_pages",
  "nr_dirty",
  "nr_writeback",
  "nr_writeback_temp",
  "nr_shmem",
  "nr_shmem_hugepages",
  "nr_shmem_pmdmapped",
  "nr_file_hugepages",
  "nr_file_pmdmapped",
  "nr_anon_transparent_hugepages",
  "nr_vmscan_write",
  "nr_vmscan_immediate_reclaim",
  "nr_dirtied",
  "nr_written",
  "nr_throttled_written",
  "nr_kernel_misc_reclaimable",
  "nr_foll_pin_acquired",
  "nr_foll_pin_released",
  "nr_kernel_stack",
  "nr_page_table_pages",
  "nr_sec_page_table_pages",
  "nr_iommu_pages",
  "nr_swapcached",
  "pgpromote_success",
  "pgpromote_candidate",
  "pgdemote_kswapd",
  "pgdemote_direct",
  "pgdemote_khugepaged",
  "pgdemote_proactive",
  "nr_hugetlb",
  "nr_balloon_pages",
];
export const NR_VM_NODE_STAT_ITEMS = node_stat_names.length;

function node_item(name: string): number {
  const i = node_stat_names.indexOf(name);
  if (i < 0) throw new Error(`no node stat item ${name}`);
  return i;
}
export const NR_INACTIVE_ANON = node_item("nr_inactive_anon");
export const NR_ACTIVE_ANON = node_item("nr_active_anon");
export const NR_INACTIVE_FILE = node_item("nr_inactive_file");
export const NR_ACTIVE_FILE = node_item("nr_active_file");
export const NR_UNEVICTABLE = node_item("nr_unevictable");
export const NR_SLAB_RECLAIMABLE_B = node_item("nr_slab_reclaimable");
export const NR_SLAB_UNRECLAIMABLE_B = node_item("nr_slab_unreclaimable");
export const NR_ISOLATED_ANON = node_item("nr_isolated_anon");
export const NR_ISOLATED_FILE = node_item("nr_isolated_file");
export const NR_ANON_MAPPED = node_item("nr_anon_pages");
export const NR_FILE_MAPPED = node_item("nr_mapped");
export const NR_FILE_PAGES = node_item("nr_file_pages");
export const NR_WRITEBACK = node_item("nr_writeback");
export const NR_ANON_THPS = node_item("nr_anon_transparent_hugepages");
export const NR_KERNEL_STACK_KB = node_item("nr_kernel_stack");
export const NR_PAGETABLE = node_item("nr_page_table_pages");
export const NR_BALLOON_PAGES = node_item("nr_balloon_pages");

/** The THP node items that /proc prints divided by HPAGE_PMD_NR. */
export const NODE_ITEMS_IN_HPAGES: readonly string[] = [
  "nr_shmem_hugepages",
  "nr_shmem_pmdmapped",
  "nr_file_hugepages",
  "nr_file_pmdmapped",
  "nr_anon_transparent_hugepages",
];

/** The system-wide vm_stat items printed between node items and events. */
export const vm_stat_names: readonly string[] = [
  "nr_dirty_threshold",
  "nr_dirty_background_threshold",
  "nr_memmap_pages",
  "nr_memmap_boot_pages",
];

const ZONE_SUFFIXES = ["dma", "dma32", "normal", "movable", "device"];
const per_zone = (prefix: string) => ZONE_SUFFIXES.map((z) => `${prefix}_${z}`);

/** enum vm_event_item */
export const vm_event_names: readonly string[] = [
  "pgpgin",
  "pgpgout",
  "pswpin",
  "pswpout",
  ...per_zone("pgalloc"),
  ...per_zone("allocstall"),
  ...per_zone("pgskip"),
  "pgfree",
  "pgactivate",
  "pgdeactivate",
  "pglazyfree",
  "pgfault",
  "pgmajfault",
  "pglazyfreed",
  "pgrefill",
  "pgreuse",
  "pgsteal_kswapd",
  "pgsteal_direct",
  "pgsteal_khugepaged",
  "pgsteal_proactive",
  "pgscan_kswapd",
  "pgscan_direct",
  "pgscan_khugepaged",
  "pgscan_proactive",
  "pgscan_direct_throttle",
  "pgscan_anon",
  "pgscan_file",
  "pgsteal_anon",
  "pgsteal_file",
  "zone_reclaim_success",
  "zone_reclaim_failed",
  "pginodesteal",
  "slabs_scanned",
  "kswapd_inodesteal",
  "kswapd_low_wmark_hit_quickly",
  "kswapd_high_wmark_hit_quickly",
  "pageoutrun",
  "pgrotated",
  "drop_pagecache",
  "drop_slab",
  "oom_kill",
  "numa_pte_updates",
  "numa_huge_pte_updates",
  "numa_hint_faults",
  "numa_hint_faults_local",
  "numa_pages_migrated",
  "pgmigrate_success",
  "pgmigrate_fail",
  "thp_migration_success",
  "thp_migration_fail",
  "thp_migration_split",
  "compact_migrate_scanned",
  "compact_free_scanned",
  "compact_isolated",
  "compact_stall",
  "compact_fail",
  "compact_success",
  "compact_daemon_wake",
  "compact_daemon_migrate_scanned",
  "compact_daemon_free_scanned",
  "htlb_buddy_alloc_success",
  "htlb_buddy_alloc_fail",
  "cma_alloc_success",
  "cma_alloc_fail",
  "unevictable_pgs_culled",
  "unevictable_pgs_scanned",
  "unevictable_pgs_rescued",
  "unevictable_pgs_mlocked",
  "unevictable_pgs_munlocked",
  "unevictable_pgs_cleared",
  "unevictable_pgs_stranded",
  "thp_fault_alloc",
  "thp_fault_fallback",
  "thp_fault_fallback_charge",
  "thp_collapse_alloc",
  "thp_collapse_alloc_failed",
  "thp_file_alloc",
  "thp_file_fallback",
  "thp_file_fallback_charge",
  "thp_file_mapped",
  "thp_split_page",
  "thp_split_page_failed",
  "thp_deferred_split_page",
  "thp_underused_split_page",
  "thp_split_pmd",
  "thp_scan_exceed_none_pte",
  "thp_scan_exceed_swap_pte",
  "thp_scan_exceed_share_pte",
  "thp_split_pud",
  "thp_zero_page_alloc",
  "thp_zero_page_alloc_failed",
  "thp_swpout",
  "thp_swpout_fallback",
  "balloon_inflate",
  "balloon_deflate",
  "balloon_migrate",
  "swap_ra",
  "swap_ra_hit",
  "swpin_zero",
  "swpout_zero",
  "ksm_swpin_copy",
  "cow_ksm",
  "zswpin",
  "zswpout",
  "zswpwb",
  "direct_map_level2_splits",
  "direct_map_level3_splits",
  "direct_map_level2_collapses",
  "direct_map_level3_collapses",
];
export const NR_VM_EVENT_ITEMS = vm_event_names.length;

function ev(name: string): number {
  const i = vm_event_names.indexOf(name);
  if (i < 0) throw new Error(`no vm event ${name}`);
  return i;
}
/** PGALLOC_DMA + zone_idx gives the zone's pgalloc counter. */
export const PGALLOC_DMA = ev("pgalloc_dma");
export const ALLOCSTALL_DMA = ev("allocstall_dma");
export const PGFREE = ev("pgfree");
export const PGFAULT = ev("pgfault");
export const OOM_KILL = ev("oom_kill");
export const PGMIGRATE_SUCCESS = ev("pgmigrate_success");
export const PGMIGRATE_FAIL = ev("pgmigrate_fail");
export const THP_MIGRATION_SUCCESS = ev("thp_migration_success");
export const THP_MIGRATION_FAIL = ev("thp_migration_fail");
export const COMPACTMIGRATE_SCANNED = ev("compact_migrate_scanned");
export const COMPACTFREE_SCANNED = ev("compact_free_scanned");
export const COMPACTISOLATED = ev("compact_isolated");
export const COMPACTSTALL = ev("compact_stall");
export const COMPACTFAIL = ev("compact_fail");
export const COMPACTSUCCESS = ev("compact_success");
export const KCOMPACTD_WAKE = ev("compact_daemon_wake");
export const KCOMPACTD_MIGRATE_SCANNED = ev("compact_daemon_migrate_scanned");
export const KCOMPACTD_FREE_SCANNED = ev("compact_daemon_free_scanned");
export const THP_FAULT_ALLOC = ev("thp_fault_alloc");
export const THP_FAULT_FALLBACK = ev("thp_fault_fallback");
export const BALLOON_INFLATE = ev("balloon_inflate");
export const BALLOON_DEFLATE = ev("balloon_deflate");
export const BALLOON_MIGRATE = ev("balloon_migrate");
