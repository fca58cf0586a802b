/**
 * Golden tests of the /proc and debugfs text, written by hand from the
 * kernel's format strings (mm/vmstat.c, v6.16) for crafted machine states.
 *
 * The main state: a flat 32 MiB machine, 1 CPU, THP on. DMA is pfn
 * 0..4095, DMA32 4096..8191, 4096 managed pages each, both booted as four
 * order-10 movable blocks.
 *
 * Watermarks: lowmem 8192 pages = 32768 KiB, int_sqrt(32768 * 16) = 724;
 * khugepaged: 2 zones -> 512*2*2 + 512*2*9 = 11264 pages, capped at 5% of
 * the pages above the high marks at 724 KiB ((4096 - 134) * 2 / 20 = 396),
 * 396 * 4 = 1584 KiB > 724: min_free_kbytes = 1584, pages_min 396, per zone
 * 198; gap max(49, 4) = 49: min 198, low 247, high 296, promo 345.
 * Protection: DMA 4096 / 256 = 16 against every higher zone.
 * pcp: batch 1 (4096 >> 12 = 1), high_min 247 (low / 1 cpu), high_max 512.
 * vm stats threshold: 2 * fls(1 cpu) * (1 + fls(4096 >> 15 = 0)) = 2.
 *
 * Then, on CPU 0:
 *  1. GFP_KERNEL order 0: DMA32 first (no Normal zone, no NOFRAGMENT); no
 *     unmovable blocks, so the pcp refill (1 page) claims 4096/o10 whole:
 *     pageblocks 4096 and 4608 become unmovable, expand leaves 4097/o0 ...
 *     4352/o8 and 4608/o9 on the unmovable lists. pcp high 247 -> 248.
 *  2. GFP_HIGHUSER_MOVABLE order 9 (THP, via the pcp: 1 block): the
 *     movable 5120/o10 splits, 5632/o9 stays free. pcp high -> 249.
 *  3. GFP_DMA order 3 (via the DMA pcp: 1 block): claims DMA's 0/o10
 *     whole; 8/o3 ... 512/o9 free on the unmovable lists. DMA pcp high 248.
 *  4. The page from step 1 is freed: it waits on DMA32's pcp list.
 */

import { describe, expect, it } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { GFP_DMA, GFP_HIGHUSER_MOVABLE, GFP_KERNEL } from "../src/kernel/gfp.ts";
import type { Machine } from "../src/kernel/machine.ts";
import { ZONE_NORMAL } from "../src/kernel/mmzone.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  __fragmentation_index,
  debugfs_extfrag_index,
  debugfs_unusable_index,
  fill_contig_page_info,
  proc_buddyinfo,
  proc_lowmem_reserve_ratio,
  proc_pagetypeinfo,
  proc_vmstat,
  proc_zoneinfo,
  unusable_free_index,
} from "../src/kernel/procfs.ts";
import { alloc_drained, MiB, parse_kv, small } from "./helpers.ts";

function crafted(): Machine {
  const m = boot({ mem_bytes: 32 * MiB, layout: "flat", nr_cpus: 1, debug_vm: true });
  m.verify = verify_machine;
  expect(alloc_pages(m, 0, GFP_KERNEL, 0)).toBe(4096);
  expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 9)).toBe(5120);
  expect(alloc_pages(m, 0, GFP_DMA, 3)).toBe(0);
  __free_pages(m, 0, 4096, 0);
  return m;
}

// Cells of the per-order tables: "%6lu " of 0, 1, 2 and 3.
const _0 = "     0 ";
const _1 = "     1 ";
const _2 = "     2 ";
const _3 = "     3 ";

describe("procfs: /proc/buddyinfo", () => {
  it("buddyinfo: one line per populated zone, %6lu blocks per order, a space before the newline", () => {
    const m = crafted();
    expect(proc_buddyinfo(m)).toBe(
      "Node 0, zone      DMA      0      0      0      1      1      1      1      1      1      1      3 \n" +
        "Node 0, zone    DMA32      1      1      1      1      1      1      1      1      1      2      2 \n",
    );
  });
});

describe("procfs: /proc/pagetypeinfo", () => {
  it("pagetypeinfo: header, free counts for all six migratetypes, and pageblock counts", () => {
    const m = crafted();
    const zeros = _0.repeat(11);
    const expected =
      "Page block order: 9\n" +
      "Pages per block:  512\n" +
      "\n" +
      "Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10 \n" +
      `Node    0, zone      DMA, type    Unmovable ${_0}${_0}${_0}${_1}${_1}${_1}${_1}${_1}${_1}${_1}${_0}\n` +
      `Node    0, zone      DMA, type      Movable ${_0.repeat(10)}${_3}\n` +
      `Node    0, zone      DMA, type  Reclaimable ${zeros}\n` +
      `Node    0, zone      DMA, type   HighAtomic ${zeros}\n` +
      `Node    0, zone      DMA, type          CMA ${zeros}\n` +
      `Node    0, zone      DMA, type      Isolate ${zeros}\n` +
      `Node    0, zone    DMA32, type    Unmovable ${_1.repeat(10)}${_0}\n` +
      `Node    0, zone    DMA32, type      Movable ${_0.repeat(9)}${_1}${_2}\n` +
      `Node    0, zone    DMA32, type  Reclaimable ${zeros}\n` +
      `Node    0, zone    DMA32, type   HighAtomic ${zeros}\n` +
      `Node    0, zone    DMA32, type          CMA ${zeros}\n` +
      `Node    0, zone    DMA32, type      Isolate ${zeros}\n` +
      "\n" +
      "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n" +
      "Node 0, zone      DMA            2            6            0            0            0            0 \n" +
      "Node 0, zone    DMA32            2            6            0            0            0            0 \n";
    expect(proc_pagetypeinfo(m)).toBe(expected);
  });
});

// The counters zoneinfo and vmstat print, in the kernel's enum order, for
// the configuration pagesim models (ZSMALLOC on, UNACCEPTED_MEMORY off;
// NUMA, IOMMU, SWAP, NUMA_BALANCING, HUGETLB on; no shadow call stack).
const ZONE_ITEMS = [
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
const NUMA_ITEMS = [
  "numa_hit",
  "numa_miss",
  "numa_foreign",
  "numa_interleave",
  "numa_local",
  "numa_other",
];
const NODE_ITEMS = [
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

/** "\n      %-12s %lu" */
const stat = (name: string, v: number) => `\n      ${name.padEnd(12)} ${v}`;

describe("procfs: /proc/zoneinfo", () => {
  it("zoneinfo: every zone; per-node stats under the first populated one; empty zones stop after protection", () => {
    const m = crafted();
    const zone_stats = (vals: Record<string, number>) =>
      ZONE_ITEMS.map((n) => stat(n, vals[n] ?? 0)).join("") +
      NUMA_ITEMS.map((n) => stat(n, vals[n] ?? 0)).join("");
    const pageset = (count: number, high: number) =>
      "\n  pagesets" +
      "\n    cpu: 0" +
      `\n              count:    ${count}` +
      `\n              high:     ${high}` +
      "\n              batch:    1" +
      "\n              high_min: 247" +
      "\n              high_max: 512" +
      "\n  vm stats threshold: 2";
    const marks = (min: number, low: number, high: number, promo: number) =>
      "\n        boost    0" +
      `\n        min      ${min}` +
      `\n        low      ${low}` +
      `\n        high     ${high}` +
      `\n        promo    ${promo}`;
    const expected =
      "Node 0, zone      DMA" +
      "\n  per-node stats" +
      NODE_ITEMS.map((n) => stat(n, 0)).join("") +
      "\n  pages free     4088" +
      marks(198, 247, 296, 345) +
      "\n        spanned  4096" +
      "\n        present  4096" +
      "\n        managed  4096" +
      "\n        cma      0" +
      "\n        protection: (0, 16, 16, 16, 16)" +
      // 3 * 1024 + 512 free in blocks of pageblock order or more
      zone_stats({ nr_free_pages: 4088, nr_free_pages_blocks: 3584, numa_hit: 1, numa_local: 1 }) +
      pageset(0, 248) +
      "\n  node_unreclaimable:  0" +
      "\n  start_pfn:           0" +
      "\n" +
      "Node 0, zone    DMA32" +
      "\n  pages free     3583" +
      marks(198, 247, 296, 345) +
      "\n        spanned  4096" +
      "\n        present  4096" +
      "\n        managed  4096" +
      "\n        cma      0" +
      "\n        protection: (0, 0, 0, 0, 0)" +
      // 4608/o9 + 5632/o9 + 6144/o10 + 7168/o10
      zone_stats({ nr_free_pages: 3583, nr_free_pages_blocks: 3072, numa_hit: 2, numa_local: 2 }) +
      pageset(1, 249) +
      "\n  node_unreclaimable:  0" +
      "\n  start_pfn:           4096" +
      "\n" +
      "Node 0, zone   Normal" +
      "\n  pages free     0" +
      marks(0, 0, 0, 0) +
      "\n        spanned  0" +
      "\n        present  0" +
      "\n        managed  0" +
      "\n        cma      0" +
      "\n        protection: (0, 0, 0, 0, 0)" +
      "\n" +
      "Node 0, zone  Movable" +
      "\n  pages free     0" +
      // clamp(0 / 1024, 32, 128) = 32, and no gap
      marks(32, 32, 32, 32) +
      "\n        spanned  0" +
      "\n        present  0" +
      "\n        managed  0" +
      "\n        cma      0" +
      "\n        protection: (0, 0, 0, 0, 0)" +
      "\n" +
      "Node 0, zone   Device" +
      "\n  pages free     0" +
      marks(0, 0, 0, 0) +
      "\n        spanned  0" +
      "\n        present  0" +
      "\n        managed  0" +
      "\n        cma      0" +
      "\n        protection: (0, 0, 0, 0, 0)" +
      "\n";
    expect(proc_zoneinfo(m)).toBe(expected);
  });

  it("zoneinfo: a watermark boost shows in the boost line and in every printed mark", () => {
    const m = crafted();
    const dma = m.zone(0, 0);
    dma.watermark_boost = 100;
    const text = proc_zoneinfo(m);
    expect(text).toContain(
      "\n        boost    100\n        min      298\n        low      347\n        high     396\n        promo    445\n",
    );
  });
});

describe("procfs: /proc/vmstat", () => {
  it("vmstat: zone, numa, node and global items in enum order, then events, then nr_unstable 0", () => {
    const m = crafted();
    const text = proc_vmstat(m);
    expect(text.endsWith("\nnr_unstable 0\n")).toBe(true);
    const lines = text.trimEnd().split("\n");
    const names = lines.map((l) => l.split(" ")[0]);
    const head = [
      ...ZONE_ITEMS,
      ...NUMA_ITEMS,
      ...NODE_ITEMS,
      "nr_dirty_threshold",
      "nr_dirty_background_threshold",
      "nr_memmap_pages",
      "nr_memmap_boot_pages",
      "pgpgin",
      "pgpgout",
      "pswpin",
      "pswpout",
      "pgalloc_dma",
      "pgalloc_dma32",
      "pgalloc_normal",
      "pgalloc_movable",
      "pgalloc_device",
      "allocstall_dma",
    ];
    expect(names.slice(0, head.length)).toEqual(head);
    // Every line is "name value".
    for (const l of lines) expect(l).toMatch(/^[a-z0-9_]+ \d+$/);
    expect(new Set(names).size).toBe(names.length);
    const v = parse_kv(text);
    expect(v.get("nr_free_pages")).toBe(4088 + 3583);
    expect(v.get("nr_free_pages_blocks")).toBe(3584 + 3072);
    expect(v.get("numa_hit")).toBe(3);
    expect(v.get("numa_local")).toBe(3);
    // pgalloc counts pages: 8 from DMA, 1 + 512 from DMA32.
    expect(v.get("pgalloc_dma")).toBe(8);
    expect(v.get("pgalloc_dma32")).toBe(513);
    expect(v.get("pgalloc_normal")).toBe(0);
    expect(v.get("pgfree")).toBe(1);
    // The boot memmap: 8192 struct pages of 64 bytes = 128 pages.
    expect(v.get("nr_memmap_boot_pages")).toBe(128);
    expect(lines.at(-2)).toBe("direct_map_level3_collapses 0");
  });

  it("lowmem_reserve_ratio: tab-separated, one per zone", () => {
    const m = crafted();
    expect(proc_lowmem_reserve_ratio(m)).toBe("256\t256\t32\t0\t0\n");
  });
});

describe("procfs: debugfs extfrag", () => {
  it("extfrag: every order can be served on the crafted machine: -1.000 throughout; unusable_index by hand", () => {
    const m = crafted();
    const minus = "-1.000 ".repeat(11);
    expect(debugfs_extfrag_index(m)).toBe(
      `Node 0, zone      DMA ${minus}\nNode 0, zone    DMA32 ${minus}\n`,
    );
    // DMA: 4088 free, one block each of orders 3..9, three of order 10.
    // unusable(o) = pages in blocks below o * 1000 / 4088: o4 8 -> 1,
    // o5 24 -> 5, o6 56 -> 13, o7 120 -> 29, o8 248 -> 60, o9 504 -> 123,
    // o10 1016 -> 248.
    // DMA32: 3583 free, one block each of orders 0..8, two of 9 and 10:
    // o1 1 -> 0, o2 3 -> 0, o3 7 -> 1, o4 15 -> 4, o5 31 -> 8, o6 63 -> 17,
    // o7 127 -> 35, o8 255 -> 71, o9 511 -> 142, o10 1535 -> 428.
    expect(debugfs_unusable_index(m)).toBe(
      "Node 0, zone      DMA 0.000 0.000 0.000 0.000 0.001 0.005 0.013 0.029 0.060 0.123 0.248 \n" +
        "Node 0, zone    DMA32 0.000 0.000 0.000 0.001 0.004 0.008 0.017 0.035 0.071 0.142 0.428 \n",
    );
  });

  it("extfrag: a fragmented 2 MiB zone: hand-computed indexes for the orders it cannot serve", () => {
    // 2 MiB "normal", THP off: 512 pages, one order-9 block; watermarks min
    // 45, low 56. Pages 0..447 taken one at a time, then 0, 2 and 4 given
    // back: free = three order-0 blocks and 448/o6, 67 pages in 4 blocks.
    const m = small(2 * MiB, { sysctl: { transparent_hugepage: "never" } });
    const pfns = alloc_drained(m, 448, () => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0));
    expect(pfns.at(-1)).toBe(447);
    for (const p of [0, 2, 4]) __free_pages(m, 0, p, 0);
    drain_all_pages(m, null);
    expect(proc_buddyinfo(m)).toBe(
      "Node 0, zone   Normal      3      0      0      0      0      0      1      0      0      0      0 \n",
    );
    // Orders 7..10 have no suitable block:
    //   1000 - (1000 + 67000 / 2^o) / 4 with integer divisions:
    //   o7: 67000/128 = 523 -> 1523/4 = 380 -> 620
    //   o8: 261 -> 315 -> 685;  o9: 130 -> 282 -> 718;  o10: 65 -> 266 -> 734
    expect(debugfs_extfrag_index(m)).toBe(
      `Node 0, zone   Normal ${"-1.000 ".repeat(7)} 0.620  0.685  0.718  0.734 \n`,
    );
    // unusable: 3 of 67 pages are below order 1..6 (3000 / 67 = 44); none
    // usable from order 7.
    expect(debugfs_unusable_index(m)).toBe(
      `Node 0, zone   Normal 0.000 ${"0.044 ".repeat(6)}${"1.000 ".repeat(4)}\n`,
    );
    const info = fill_contig_page_info(m.zone(0, ZONE_NORMAL), 7);
    expect(info).toEqual({ free_pages: 67, free_blocks_total: 4, free_blocks_suitable: 0 });
    expect(fill_contig_page_info(m.zone(0, ZONE_NORMAL), 0).free_blocks_suitable).toBe(67);
    expect(fill_contig_page_info(m.zone(0, ZONE_NORMAL), 6).free_blocks_suitable).toBe(1);
  });

  it("extfrag: a zone whose only free block is too small prints the kernel's odd negative remainders ( 0.-500)", () => {
    // The smallest machine: 16 pages, one free order-4 block. For order
    // o > 4: 1000 - (1000 + 16000 / 2^o) / 1 = -(16000 >> o), printed with
    // "%2d.%03d" of (index / 1000 = 0, index % 1000 < 0).
    const m = small(64 * 1024);
    expect(debugfs_extfrag_index(m)).toBe(
      `Node 0, zone   Normal ${"-1.000 ".repeat(5)} 0.-500  0.-250  0.-125  0.-62  0.-31  0.-15 \n`,
    );
    expect(debugfs_unusable_index(m)).toBe(
      `Node 0, zone   Normal ${"0.000 ".repeat(5)}${"1.000 ".repeat(6)}\n`,
    );
  });

  it("extfrag: __fragmentation_index and unusable_free_index on hand-made counts", () => {
    const info = (free_pages: number, free_blocks_total: number, free_blocks_suitable: number) => ({
      free_pages,
      free_blocks_total,
      free_blocks_suitable,
    });
    // A suitable block exists: the allocation would succeed.
    expect(__fragmentation_index(3, info(100, 5, 1))).toBe(-1000);
    // No free memory at all, or an order beyond MAX_PAGE_ORDER: 0.
    expect(__fragmentation_index(3, info(0, 0, 0))).toBe(0);
    expect(__fragmentation_index(11, info(100, 5, 0))).toBe(0);
    // Three single pages, order 2: 1000 - (1000 + 3000/4) / 3 = 1000 - 583.
    expect(__fragmentation_index(2, info(3, 3, 0))).toBe(417);
    // Two single pages, order 1: 1000 - (1000 + 1000) / 2 = 0 (lack of memory).
    expect(__fragmentation_index(1, info(2, 2, 0))).toBe(0);
    // One page, order 1: 1000 - 1500 = -500.
    expect(__fragmentation_index(1, info(1, 1, 0))).toBe(-500);
    // One order-2 block, order 10: 4000/1024 = 3: -3 (printed " 0.-03").
    expect(__fragmentation_index(10, info(4, 1, 0))).toBe(-3);
    // Many small blocks, high order: close to 1000 (fragmentation).
    // 1000 single pages, order 9: 1000 - (1000 + 1953) / 1000 = 998.
    expect(__fragmentation_index(9, info(1000, 1000, 0))).toBe(998);
    expect(unusable_free_index(3, info(0, 0, 0))).toBe(1000);
    expect(unusable_free_index(3, info(100, 10, 10))).toBe(200); // (100 - 80) * 1000 / 100
  });
});
