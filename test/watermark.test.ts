/**
 * Watermarks, lowmem reserves and pcp sizing against the kernel's formulas,
 * and the watermark checks refusing allocations.
 */

import { describe, expect, it } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import {
  GFP_ATOMIC,
  GFP_DMA,
  GFP_DMA32,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  GFP_NOWAIT,
} from "../src/kernel/gfp.ts";
import type { Machine } from "../src/kernel/machine.ts";
import {
  WMARK_HIGH,
  WMARK_LOW,
  WMARK_MIN,
  WMARK_PROMO,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
  type Zone,
} from "../src/kernel/mmzone.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { int_sqrt, zone_watermark_ok } from "../src/kernel/page_alloc/watermark.ts";
import { NR_FREE_PAGES } from "../src/kernel/vmstat_items.ts";
import { alloc_drained, GiB, MiB, small } from "./helpers.ts";

const wmarks = (z: Zone) => [
  z._watermark[WMARK_MIN],
  z._watermark[WMARK_LOW],
  z._watermark[WMARK_HIGH],
  z._watermark[WMARK_PROMO],
];
const pcp = (z: Zone) => {
  const p = z.per_cpu_pageset[0];
  return [p.batch, p.high_min, p.high_max];
};
const free = (z: Zone) => z.vm_stat[NR_FREE_PAGES];

/**
 * q35, 8 GiB, 4 CPUs. RAM: [0, 0x9f) and [0x100, 2 GiB) below 4 GiB, then
 * 6 GiB from 4 GiB: max_pfn = 0x280000. Reserved: the first 1 MiB, the
 * kernel image at 16 MiB (40 MiB = 10240 pages), the swiotlb below 2 GiB
 * (64 MiB = 16384 pages) and the memmap at the top (64 bytes a page for
 * every 128 MiB section with RAM: 64 sections * 512 pages = 32768 pages;
 * the hole below 4 GiB has no memmap). Managed:
 *   DMA    [0x100, 0x1000)                       = 3840
 *   DMA32  [0x1000 + 10240, 0x80000 - 16384)     = 507904 - 14336 = 493568
 *   Normal [0x100000, 0x280000 - 32768)          = 2588672 - 1048576 = 1540096
 * lowmem = 2037504 pages.
 */
describe("watermarks: q35 8 GiB, 4 CPUs", () => {
  const q35 = (thp: "always" | "never") =>
    boot({ mem_bytes: 8 * GiB, layout: "q35", nr_cpus: 4, sysctl: { transparent_hugepage: thp } });

  it("boot: zone spans, present and managed pages follow the e820 map and the reservations", () => {
    const m = q35("always");
    const [dma, dma32, normal] = [ZONE_DMA, ZONE_DMA32, ZONE_NORMAL].map((i) => m.zone(0, i));
    // DMA spans pfn 1..4095 (pfn 0 is never RAM); present: 1..0x9e and 0x100..0xfff.
    expect([dma.zone_start_pfn, dma.spanned_pages, dma.present_pages]).toEqual([
      1,
      4095,
      158 + 3840,
    ]);
    expect([dma32.zone_start_pfn, dma32.spanned_pages, dma32.present_pages]).toEqual([
      4096,
      0x100000 - 4096,
      0x80000 - 4096,
    ]);
    expect([normal.zone_start_pfn, normal.spanned_pages, normal.present_pages]).toEqual([
      0x100000, 0x180000, 0x180000,
    ]);
    expect([dma.managed_pages, dma32.managed_pages, normal.managed_pages]).toEqual([
      3840, 493568, 1540096,
    ]);
    expect(m.reserved_pages).toBe(158 + 10240 + 16384 + 32768);
  });

  it("watermarks: with THP on, khugepaged raises min_free_kbytes to 67584", () => {
    const m = q35("always");
    // int_sqrt(2037504 * 4 * 16) = 11419 first; then the recommendation:
    // 512 * 3 zones * 2 + 512 * 3 * 3 * 3 = 16896 pages (well under 5% of
    // lowmem) = 67584 KiB.
    expect(m.sysctl.min_free_kbytes).toBe(67584);
    // pages_min = 16896; per zone tmp = 16896 * managed / 2037504:
    //   DMA    64880640    / 2037504 = 31,    gap max(7, 3)       = 7
    //   DMA32  8339324928  / 2037504 = 4092,  gap max(1023, 493)  = 1023
    //   Normal 26021462016 / 2037504 = 12771, gap max(3192, 1540) = 3192
    const [dma, dma32, normal] = [ZONE_DMA, ZONE_DMA32, ZONE_NORMAL].map((i) => m.zone(0, i));
    expect(wmarks(dma)).toEqual([31, 38, 45, 52]);
    expect(wmarks(dma32)).toEqual([4092, 5115, 6138, 7161]);
    expect(wmarks(normal)).toEqual([12771, 15963, 19155, 22347]);
    // Empty zones: Movable keeps clamp(0 / 1024, 32, 128) = 32 and a zero
    // gap; Device gets nothing.
    expect(wmarks(m.zone(0, ZONE_MOVABLE))).toEqual([32, 32, 32, 32]);
    expect(wmarks(m.zone(0, 4))).toEqual([0, 0, 0, 0]);
    for (const z of m.zones) expect(z.watermark_boost).toBe(0);
  });

  it("watermarks: with THP off, min_free_kbytes is int_sqrt(lowmem_kbytes * 16) = 11419", () => {
    const m = q35("never");
    expect(int_sqrt(2037504 * 4 * 16)).toBe(11419); // 11419^2 <= 130400256 < 11420^2
    expect(m.sysctl.min_free_kbytes).toBe(11419);
    // pages_min = 2854: DMA 5 (gap max(1, 3) = 3), DMA32 691 (gap max(172,
    // 493) = 493), Normal 2157 (gap max(539, 1540) = 1540).
    const [dma, dma32, normal] = [ZONE_DMA, ZONE_DMA32, ZONE_NORMAL].map((i) => m.zone(0, i));
    expect(wmarks(dma)).toEqual([5, 8, 11, 14]);
    expect(wmarks(dma32)).toEqual([691, 1184, 1677, 2170]);
    expect(wmarks(normal)).toEqual([2157, 3697, 5237, 6777]);
  });

  it("watermarks: a min_free_kbytes set by the user is kept and split by managed pages", () => {
    const m = boot({
      mem_bytes: 8 * GiB,
      layout: "q35",
      nr_cpus: 4,
      sysctl: { min_free_kbytes: 20000 },
    });
    expect(m.sysctl.min_free_kbytes).toBe(20000);
    // pages_min 5000: DMA 5000 * 3840 / 2037504 = 9, gap max(2, 3) = 3.
    expect(wmarks(m.zone(0, ZONE_DMA))).toEqual([9, 12, 15, 18]);
    // Normal 5000 * 1540096 / 2037504 = 3779, gap max(944, 1540) = 1540.
    expect(wmarks(m.zone(0, ZONE_NORMAL))).toEqual([3779, 5319, 6859, 8399]);
  });

  it("lowmem_reserve: each zone protects itself by the managed pages above it over its ratio", () => {
    const m = q35("always");
    // DMA (256): DMA32 493568 / 256 = 1928; + Normal 1540096 = 2033664 / 256 = 7944.
    expect(Array.from(m.zone(0, ZONE_DMA).lowmem_reserve)).toEqual([0, 1928, 7944, 7944, 7944]);
    // DMA32 (256): 1540096 / 256 = 6016.
    expect(Array.from(m.zone(0, ZONE_DMA32).lowmem_reserve)).toEqual([0, 0, 6016, 6016, 6016]);
    // Normal (32): nothing is managed above it.
    expect(Array.from(m.zone(0, ZONE_NORMAL).lowmem_reserve)).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(m.zone(0, ZONE_MOVABLE).lowmem_reserve)).toEqual([0, 0, 0, 0, 0]);
  });

  it("pcp: batch, high_min and high_max per zone follow zone_batchsize and zone_highsize", () => {
    const on = q35("always");
    const off = q35("never");
    // batch: DMA 3840 >> 12 = 0 -> 1; DMA32 and Normal min(>> 12, 64) = 64 ->
    // rounddown_pow_of_two(96) - 1 = 63.
    // high_max = max(managed / 8 / 4 cpus, 4 * batch): DMA 480 / 4 = 120,
    // DMA32 61696 / 4 = 15424, Normal 192512 / 4 = 48128.
    // high_min = max(low / 4, 4 * batch): THP on: 38/4 -> 9, 5115/4 -> 1278,
    // 15963/4 -> 3990; THP off: 8/4 = 2 -> 4, 1184/4 = 296, 3697/4 -> 924.
    const z = (m: Machine, i: number) => m.zone(0, i);
    expect(pcp(z(on, ZONE_DMA))).toEqual([1, 9, 120]);
    expect(pcp(z(on, ZONE_DMA32))).toEqual([63, 1278, 15424]);
    expect(pcp(z(on, ZONE_NORMAL))).toEqual([63, 3990, 48128]);
    expect(pcp(z(off, ZONE_DMA))).toEqual([1, 4, 120]);
    expect(pcp(z(off, ZONE_DMA32))).toEqual([63, 296, 15424]);
    expect(pcp(z(off, ZONE_NORMAL))).toEqual([63, 924, 48128]);
    // Every CPU gets the same values; pcp->high starts at 0.
    for (const p of z(on, ZONE_NORMAL).per_cpu_pageset) {
      expect([p.batch, p.high_min, p.high_max, p.high, p.count]).toEqual([63, 3990, 48128, 0, 0]);
    }
    expect(z(on, ZONE_NORMAL).per_cpu_pageset).toHaveLength(4);
  });
});

describe("watermarks: refusals", () => {
  // 16 MiB "normal", THP off: min 128, low 160, high 192, no lowmem reserve.
  it("watermarks: the fast path stops at the low mark, GFP_KERNEL at the min mark, GFP_ATOMIC dips to 3/8 of it", () => {
    const m = small(16 * MiB, { sysctl: { transparent_hugepage: "never" } });
    const z = m.zone(0, ZONE_NORMAL);
    expect(wmarks(z)).toEqual([128, 160, 192, 224]);
    expect(Array.from(z.lowmem_reserve)).toEqual([0, 0, 0, 0, 0]);
    // The slow path wakes kswapd first thing: count those wakeups with the
    // free count at the time.
    const woken: number[] = [];
    m.hooks.wakeup_kswapd = (_m, zone) => {
      woken.push(free(zone));
    };
    for (const o of [10, 10, 10, 9, 8])
      expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, o)).toBeGreaterThanOrEqual(0);
    expect(free(z)).toBe(256);
    expect(woken).toEqual([]);
    // One page at a time: the fast path needs free > low (160); below that
    // the slow path needs free > min (128). So 128 pages can go.
    let n = 0;
    for (;;) {
      const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
      drain_all_pages(m, null);
      if (pfn < 0) break;
      n++;
    }
    expect(n).toBe(128);
    expect(free(z)).toBe(128);
    // The slow path (which wakes kswapd) was first needed for the page taken
    // at free = 160, then for every page after it; the failed attempt woke
    // kswapd on entry and again on its retry.
    const expected: number[] = [];
    for (let f = 160; f > 128; f--) expected.push(f);
    expect(woken).toEqual([...expected, 128, 128]);
    // At free == min: GFP_KERNEL and GFP_NOWAIT are refused...
    expect(alloc_pages(m, 0, GFP_KERNEL, 0)).toBe(-1);
    expect(alloc_pages(m, 0, GFP_NOWAIT, 0)).toBe(-1);
    expect(zone_watermark_ok(m, z, 0, z.min_wmark_pages(), ZONE_NORMAL, 0)).toBe(false);
    // ...but GFP_ATOMIC (__GFP_HIGH, cannot block) has min - min/2 = 64,
    // less 64/4 = 48: it may go on while free > 48, i.e. 80 more pages.
    let a = 0;
    for (;;) {
      const pfn = alloc_pages(m, 0, GFP_ATOMIC, 0);
      drain_all_pages(m, null);
      if (pfn < 0) break;
      a++;
    }
    expect(a).toBe(80);
    expect(free(z)).toBe(48);
    // The first atomic (unmovable) page claimed the last, partly free
    // pageblock and so boosted the watermarks by a pageblock (min 128 + 512);
    // an order-0 __GFP_HIGH request checked at the min mark ignores the
    // boost, which is why the 80 pages could still go.
    expect(z.watermark_boost).toBe(512);
    expect(z.min_wmark_pages()).toBe(640);
    verify_machine(m);
  });

  it("watermarks: a lower zone keeps its lowmem reserve from requests that could have used a higher zone", () => {
    // flat 32 MiB, THP off: DMA 0..4095 and DMA32 4096..8191, 4096 managed
    // each. min_free_kbytes = int_sqrt(32768 * 16) = 724, pages_min 181,
    // per zone 181 * 4096 / 8192 = 90, gap max(22, 4) = 22: min 90, low 112.
    // DMA's reserve against DMA32/Normal requests: 4096 / 256 = 16.
    const m = boot({
      mem_bytes: 32 * MiB,
      layout: "flat",
      nr_cpus: 1,
      debug_vm: true,
      sysctl: { transparent_hugepage: "never" },
    });
    const dma = m.zone(0, ZONE_DMA);
    const dma32 = m.zone(0, ZONE_DMA32);
    expect(wmarks(dma)).toEqual([90, 112, 134, 156]);
    expect(wmarks(dma32)).toEqual([90, 112, 134, 156]);
    expect(Array.from(dma.lowmem_reserve)).toEqual([0, 16, 16, 16, 16]);
    expect(Array.from(dma32.lowmem_reserve)).toEqual([0, 0, 0, 0, 0]);
    // GFP_KERNEL (zonelist DMA32, DMA) until refused, big blocks first.
    while (alloc_pages(m, 0, GFP_KERNEL, 4) >= 0);
    let n = 0;
    for (;;) {
      const pfn = alloc_pages(m, 0, GFP_KERNEL, 0);
      drain_all_pages(m, null);
      if (pfn < 0) break;
      n++;
    }
    expect(n).toBeGreaterThan(0);
    // Each zone was used down to its min mark plus its reserve for a
    // Normal-zone request: DMA32 to 90 + 0, DMA to 90 + 16.
    expect(free(dma32)).toBe(90);
    expect(free(dma)).toBe(106);
    // A GFP_DMA32 request is also held off DMA by the reserve (16 against
    // DMA32), but a GFP_DMA request only needs free > min: it gets a page.
    expect(alloc_pages(m, 0, GFP_DMA32, 0)).toBe(-1);
    const pfn = alloc_pages(m, 0, GFP_DMA, 0);
    expect(pfn).toBeGreaterThanOrEqual(0);
    expect(pfn).toBeLessThan(4096);
    drain_all_pages(m, null);
    expect(free(dma)).toBe(105);
    // Only whole free blocks were claimed on the way: no boost.
    expect(dma.watermark_boost + dma32.watermark_boost).toBe(0);
    verify_machine(m);
  });

  it("watermarks: an order-n request needs a free block of order n or more, whatever the free page count", () => {
    const m = small(16 * MiB, { sysctl: { transparent_hugepage: "never" } });
    const z = m.zone(0, ZONE_NORMAL);
    for (const o of [10, 10, 10]) alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, o);
    // Block 3072: pages 3072..3967 one by one (free > min 128 throughout),
    // leaving 3968/o7; then every even one of them back: 448 order-0 blocks
    // whose buddies are all in use.
    m.verify = null;
    const pfns = alloc_drained(m, 896, () => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0));
    m.verify = verify_machine;
    expect(pfns[0]).toBe(3072);
    expect(pfns[895]).toBe(3967);
    for (const p of pfns) if (p % 2 === 0) __free_pages(m, 0, p, 0);
    drain_all_pages(m, null);
    expect(Array.from(z.nr_free)).toEqual([448, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(free(z)).toBe(576);
    const low = z.low_wmark_pages();
    // Order 8: 576 - 255 = 321 > low 160, but no block of order >= 8.
    expect(zone_watermark_ok(m, z, 8, low, ZONE_MOVABLE, 0)).toBe(false);
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 8)).toBe(-1);
    // Order 7 has its block.
    expect(zone_watermark_ok(m, z, 7, low, ZONE_MOVABLE, 0)).toBe(true);
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 7)).toBe(3968);
    // Now 448 free pages, all single: order 1 is refused, order 0 is not.
    expect(free(z)).toBe(448);
    expect(zone_watermark_ok(m, z, 1, low, ZONE_MOVABLE, 0)).toBe(false);
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 1)).toBe(-1);
    expect(alloc_pages(m, 0, GFP_ATOMIC, 1)).toBe(-1);
    expect(zone_watermark_ok(m, z, 0, low, ZONE_MOVABLE, 0)).toBe(true);
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0)).toBeGreaterThanOrEqual(3072);
  });
});
