/**
 * The buddy allocator block by block: expand() on allocation, merging and
 * list placement on free, compound pages, the free counters, the per-cpu
 * lists and split_large_buddy().
 *
 * Most scenarios use a 16 MiB "normal" machine: 4096 pages, pfn 0..4095, one
 * ZONE_NORMAL. Boot frees it as four order-10 blocks, in ascending order to
 * the tail of free_list[10][Movable]: [0, 1024, 2048, 3072]. (16 MiB rather
 * than 4 MiB: below 3072 pages above the high watermark the kernel turns off
 * grouping by mobility, so a smaller machine would not be a faithful one.)
 *
 * With transparent_hugepage "never" its watermarks are: lowmem = 4096 pages
 * = 16384 KiB, min_free_kbytes = int_sqrt(16384 * 16) = 512, pages_min = 128;
 * min 128, gap max(128/4, 4096*10/10000) = 32, low 160, high 192. Its pcp
 * batch is 1 (4096 >> 12 = 1, and a batch of at most 1 is 1).
 */

import { describe, expect, it } from "vitest";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { __GFP_COMP, GFP_HIGHUSER_MOVABLE, GFP_KERNEL } from "../src/kernel/gfp.ts";
import {
  MIGRATE_HIGHATOMIC,
  MIGRATE_MOVABLE,
  MIGRATE_UNMOVABLE,
  NR_PAGE_ORDERS,
  ZONE_NORMAL,
} from "../src/kernel/mmzone.ts";
import {
  compound_head,
  compound_order,
  get_pageblock_migratetype,
  PageBuddy,
  PageFlag,
  PageHead,
  PageTail,
  PG_head,
  PG_tail,
  page_order,
  set_pageblock_migratetype,
} from "../src/kernel/page.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { proc_buddyinfo } from "../src/kernel/procfs.ts";
import { NR_FREE_PAGES, NR_FREE_PAGES_BLOCKS, PGFREE } from "../src/kernel/vmstat_items.ts";
import { alloc_drained, free_list, MiB, pcp_list, small } from "./helpers.ts";

const NEVER = { sysctl: { transparent_hugepage: "never" as const } };
const MOV = MIGRATE_MOVABLE;

function normal(m: ReturnType<typeof small>) {
  return m.zone(0, ZONE_NORMAL);
}

/** nr_free[] as a plain array. */
function nr_free(m: ReturnType<typeof small>): number[] {
  return Array.from(normal(m).nr_free);
}

describe("buddy: splitting", () => {
  it("buddy: boot leaves four order-10 movable blocks, in address order", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    expect(free_list(m, z, 10, MOV)).toEqual([0, 1024, 2048, 3072]);
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(z.managed_pages).toBe(4096);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4096);
    expect(z.vm_stat[NR_FREE_PAGES_BLOCKS]).toBe(4096);
    for (const pb of [0, 512, 1024, 1536, 2048, 2560, 3072, 3584]) {
      expect(get_pageblock_migratetype(m.mem, pb)).toBe(MOV);
    }
  });

  it("buddy: an order-0 allocation splits an order-10 block into one free block at each order 0..9", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    // The pcp refill for the first order-0 request is one page (batch 1,
    // alloc_factor 0), so exactly one page leaves the buddy lists.
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
    // __rmqueue_smallest takes the head of free_list[10] (pfn 0) and expand()
    // gives back the upper half at each step: 512/o9, 256/o8, ..., 1/o0.
    expect(pfn).toBe(0);
    for (let o = 0; o <= 9; o++) {
      expect(free_list(m, z, o, MOV), `order ${o}`).toEqual([1 << o]);
      expect(PageBuddy(m.mem, 1 << o)).toBe(true);
      expect(m.mem.page_private[1 << o]).toBe(o);
    }
    expect(free_list(m, z, 10, MOV)).toEqual([1024, 2048, 3072]);
    expect(nr_free(m)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3]);
    // Nothing landed on another migratetype's lists.
    expect(free_list(m, z, 0, MIGRATE_UNMOVABLE)).toEqual([]);
    // Counters: 4096 - 1 free; the free pages in blocks of pageblock order or
    // more are 3 * 1024 + 512.
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4095);
    expect(z.vm_stat[NR_FREE_PAGES_BLOCKS]).toBe(3584);
    expect(z.per_cpu_pageset[0].count).toBe(0);
    // The page itself: one reference, not a buddy, order 0.
    expect(m.mem._refcount[0]).toBe(1);
    expect(PageBuddy(m.mem, 0)).toBe(false);
    expect(proc_buddyinfo(m)).toBe(
      "Node 0, zone   Normal      1      1      1      1      1      1      1      1      1      1      3 \n",
    );
  });

  it("buddy: an order-4 allocation bypasses the pcp and leaves the halves from order 4 up", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 4)).toBe(0);
    // 16/o4, 32/o5, 64/o6, 128/o7, 256/o8, 512/o9.
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 3]);
    for (let o = 4; o <= 9; o++) expect(free_list(m, z, o, MOV)).toEqual([1 << o]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4096 - 16);
    expect(z.per_cpu_pageset[0].count).toBe(0);
    expect(page_order(m.mem, 0)).toBe(4);
    // A second one takes the order-4 half at the head of its list.
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 4)).toBe(16);
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 3]);
  });
});

describe("buddy: freeing and merging", () => {
  it("buddy: freeing both halves merges into an order-1 block", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    const [a, b] = alloc_drained(m, 2, () => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0));
    // The first two pages of block 0; the rest is 2/o1, 4/o2, ..., 512/o9.
    expect([a, b]).toEqual([0, 1]);
    expect(nr_free(m)).toEqual([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3]);
    __free_pages(m, 0, a, 0);
    drain_all_pages(m, null);
    // 0's buddy 1 is allocated: it stays an order-0 block.
    expect(free_list(m, z, 0, MOV)).toEqual([0]);
    __free_pages(m, 0, b, 0);
    drain_all_pages(m, null);
    // 1 merges with 0, then with 2/o1, 4/o2, ... all the way to order 10.
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(free_list(m, z, 10, MOV)).toEqual([0, 1024, 2048, 3072]);
  });

  it("buddy: blocks freed in any order coalesce back to order 10, and a block whose parent's buddy is free goes to the list tail", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    const alloc4 = () => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 4);
    // a: splits block 0 (free: 16/o4 32/o5 64/o6 128/o7 256/o8 512/o9)
    // b: 16; c: splits 32/o5 -> 32, frees 48/o4; d: 48
    // e: splits 64/o6 -> 64, frees 96/o5 and 80/o4
    const [a, b, c, d, e] = [alloc4(), alloc4(), alloc4(), alloc4(), alloc4()];
    expect([a, b, c, d, e]).toEqual([0, 16, 32, 48, 64]);
    expect(free_list(m, z, 4, MOV)).toEqual([80]);
    expect(free_list(m, z, 5, MOV)).toEqual([96]);

    // c (32): buddy 48 in use. Its parent 32/o5 has buddy 0/o5, not free:
    // merging is not likely, so it goes to the head.
    __free_pages(m, 0, c, 4);
    expect(free_list(m, z, 4, MOV)).toEqual([32, 80]);

    // d (48): merges with 32 into 32/o5; 0/o5 is in use. Its parent 0/o6 has
    // buddy 64/o6 (e, in use): head of the order-5 list.
    __free_pages(m, 0, d, 4);
    expect(free_list(m, z, 4, MOV)).toEqual([80]);
    expect(free_list(m, z, 5, MOV)).toEqual([32, 96]);

    // b (16): buddy 0 (a) in use. Its parent 0/o5 has buddy 32/o5, which is
    // free: buddy_merge_likely() puts 16 at the TAIL, behind 80.
    __free_pages(m, 0, b, 4);
    expect(free_list(m, z, 4, MOV)).toEqual([80, 16]);

    // a (0): merges with 16 (o4) and 32 (o5) into 0/o6; 64 is in use.
    __free_pages(m, 0, a, 4);
    expect(free_list(m, z, 4, MOV)).toEqual([80]);
    expect(free_list(m, z, 5, MOV)).toEqual([96]);
    expect(free_list(m, z, 6, MOV)).toEqual([0]);

    // e (64): 80/o4, 96/o5, 0/o6, 128/o7, 256/o8, 512/o9: back to order 10,
    // at the head of the order-10 list (no tail placement at MAX_ORDER - 1+).
    __free_pages(m, 0, e, 4);
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(free_list(m, z, 10, MOV)).toEqual([0, 1024, 2048, 3072]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4096);
    expect(m.vm_events[PGFREE]).toBe(5 * 16);
  });

  it("buddy: nr_free and NR_FREE_PAGES follow every split and merge", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    const sizes = [4, 7, 5, 8, 4, 6];
    const pfns = sizes.map((o) => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, o));
    let used = 0;
    for (const o of sizes) used += 1 << o;
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4096 - used);
    // nr_free[] counts blocks; the pages they hold are what is free.
    const pages = nr_free(m).reduce((s, n, o) => s + n * 2 ** o, 0);
    expect(pages).toBe(4096 - used);
    pfns.forEach((p, i) => {
      __free_pages(m, 0, p, sizes[i]);
    });
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4096);
  });
});

describe("buddy: compound pages", () => {
  it("buddy: __GFP_COMP makes a head page and tails that carry the order", () => {
    const m = small(16 * MiB, NEVER);
    const mem = m.mem;
    const head = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE | __GFP_COMP, 4);
    expect(head).toBe(0);
    expect(PageHead(mem, 0)).toBe(true);
    expect(PageTail(mem, 0)).toBe(false);
    expect(compound_order(mem, 0)).toBe(4);
    expect(mem._refcount[0]).toBe(1);
    for (let p = 1; p < 16; p++) {
      expect(PageTail(mem, p), `pfn ${p}`).toBe(true);
      expect(PageHead(mem, p)).toBe(false);
      expect(page_order(mem, p)).toBe(4);
      expect(mem._refcount[p]).toBe(0);
      expect(compound_head(mem, p)).toBe(0);
    }
    // The page after the block belongs to the free 16/o4 block.
    expect(PageTail(mem, 16)).toBe(false);
    expect(PageBuddy(mem, 16)).toBe(true);

    __free_pages(m, 0, head, 4);
    for (let p = 0; p < 16; p++) {
      expect(PageFlag(mem, p, PG_head) || PageFlag(mem, p, PG_tail)).toBe(false);
      expect(page_order(mem, p)).toBe(0);
    }
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
  });

  it("buddy: without __GFP_COMP a high-order block has no head or tail marks", () => {
    const m = small(16 * MiB, NEVER);
    const mem = m.mem;
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 4);
    for (let p = pfn; p < pfn + 16; p++) {
      expect(PageHead(mem, p) || PageTail(mem, p)).toBe(false);
      expect(compound_head(mem, p)).toBe(p);
    }
    expect(compound_order(mem, pfn)).toBe(0);
    // The allocation order is still recorded on the first page.
    expect(page_order(mem, pfn)).toBe(4);
  });

  it("buddy: a compound page on a pcp list has already lost its compound state", () => {
    const m = small(16 * MiB, NEVER);
    const mem = m.mem;
    const z = normal(m);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE | __GFP_COMP, 2);
    expect(PageHead(mem, pfn)).toBe(true);
    expect(PageTail(mem, pfn + 3)).toBe(true);
    __free_pages(m, 0, pfn, 2);
    // order 2, movable: pindex 3 * 2 + 1 = 7
    expect(pcp_list(m, z, 0, 7)).toContain(pfn);
    for (let p = pfn; p < pfn + 4; p++) expect(PageHead(mem, p) || PageTail(mem, p)).toBe(false);
  });
});

describe("buddy: per-cpu lists", () => {
  // 128 MiB "normal", THP on: 32768 pages. int_sqrt(131072 * 16) = 1448 KiB,
  // then khugepaged's recommendation: high mark at 1448 KiB is 362 + 2 * 90 =
  // 542, (32768 - 542) / 20 = 1611 pages < 5632, so min_free_kbytes =
  // 1611 * 4 = 6444. pages_min 1611, gap max(402, 32) = 402: low 2013.
  // batch: 32768 >> 12 = 8 -> rounddown_pow_of_two(8 + 4) - 1 = 7;
  // high_min = low / 1 cpu = 2013, high_max = 32768 / 8 = 4096.
  const big = () => small(128 * MiB);

  it("pcp: the zone's pagesets get batch 7, high_min 2013, high_max 4096", () => {
    const m = big();
    const z = normal(m);
    expect(m.sysctl.min_free_kbytes).toBe(6444);
    expect(z.low_wmark_pages()).toBe(2013);
    const pcp = z.per_cpu_pageset[0];
    expect([pcp.batch, pcp.high_min, pcp.high_max, pcp.high, pcp.count]).toEqual([
      7, 2013, 4096, 0, 0,
    ]);
  });

  it("pcp: the first order-0 allocation pulls a batch of 7 pages, the next refill twice that", () => {
    const m = big();
    const z = normal(m);
    const pcp = z.per_cpu_pageset[0];
    // nr_pcp_alloc: high = clamp(0, 2013, 4096) = 2013, grows by the batch
    // to 2020; batch 7 << alloc_factor 0 = 7, alloc_factor becomes 1.
    // rmqueue_bulk takes pfns 0..6 in turn (each the smallest block left),
    // appending each at the tail; the allocation takes the head.
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0)).toBe(0);
    expect(pcp.count).toBe(6);
    expect(pcp.high).toBe(2020);
    expect(pcp_list(m, z, 0, MOV)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(32768 - 7);
    // Left in block 0: 7/o0, 8/o3, 16/o4, ..., 512/o9; 31 more order-10 blocks.
    expect(nr_free(m)).toEqual([1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 31]);
    // The next six come from the pcp list without touching the buddy lists.
    for (let i = 1; i <= 6; i++) expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0)).toBe(i);
    expect(pcp.count).toBe(0);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(32768 - 7);
    // Empty again: batch 7 << 1 = 14 pages (7..20), high 2020 + 14 = 2034.
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0)).toBe(7);
    expect(pcp.count).toBe(13);
    expect(pcp.high).toBe(2034);
    expect(pcp_list(m, z, 0, MOV)).toEqual([8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(32768 - 21);
  });

  it("pcp: a freed page waits on the pcp list, invisible to nr_free, NR_FREE_PAGES and buddyinfo, until drained", () => {
    const m = big();
    const z = normal(m);
    const pcp = z.per_cpu_pageset[0];
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
    const buddyinfo = proc_buddyinfo(m);
    const before = nr_free(m);
    __free_pages(m, 0, pfn, 0);
    // Freed pages go to the head of the list; the 6 left from the refill stay.
    expect(pcp_list(m, z, 0, MOV)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(pcp.count).toBe(7);
    expect(m.mem._refcount[0]).toBe(0);
    expect(PageBuddy(m.mem, 0)).toBe(false);
    expect(nr_free(m)).toEqual(before);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(32768 - 7);
    expect(proc_buddyinfo(m)).toBe(buddyinfo);
    drain_all_pages(m, null);
    expect(pcp.count).toBe(0);
    expect(pcp_list(m, z, 0, MOV)).toEqual([]);
    // Everything merged back: 32 order-10 blocks.
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(32768);
  });

  it("pcp: an order-3 refill takes max(batch >> 3, 2) = 2 blocks, an order-9 (THP) refill 2 pageblocks", () => {
    const m = big();
    const z = normal(m);
    const pcp = z.per_cpu_pageset[0];
    // order 3: 0 (splitting block 0) and 8, on list pindex 3 * 3 + 1 = 10.
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 3)).toBe(0);
    expect(pcp_list(m, z, 0, 10)).toEqual([8]);
    expect(pcp.count).toBe(8);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(32768 - 16);
    // order 9, movable: pindex 12 + 1 = 13. Block 0's upper half 512 and then
    // block 1024 split (its half 1536 stays free).
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 9)).toBe(512);
    expect(pcp_list(m, z, 0, 13)).toEqual([1024]);
    expect(pcp.count).toBe(8 + 512);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(32768 - 16 - 1024);
    expect(free_list(m, z, 9, MOV)).toEqual([1536]);
  });

  it("pcp: with a fixed pcp->high of 512, reaching it returns free_count = 32 of the oldest pages", () => {
    // percpu_pagelist_high_fraction 8: high_min = high_max = 4096 / 8 = 512
    // (no auto-tuning) on the 16 MiB machine, batch 1.
    const m = small(16 * MiB, {
      sysctl: { transparent_hugepage: "never", percpu_pagelist_high_fraction: 8 },
    });
    const z = normal(m);
    const pcp = z.per_cpu_pageset[0];
    expect([pcp.batch, pcp.high_min, pcp.high_max]).toEqual([1, 512, 512]);
    const pfns = alloc_drained(m, 600, () => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0));
    // Allocated one by one from the bottom of block 0 up.
    expect(pfns.slice(0, 3)).toEqual([0, 1, 2]);
    expect(pfns[599]).toBe(599);
    for (let i = 0; i < 600; i++) {
      __free_pages(m, 0, pfns[i], 0);
      // free_count grows by one a free up to batch << 5 = 32; each time
      // count reaches high, min(max(free_count, batch), high - batch) = 32
      // pages go back: at frees 512, 544 and 576.
      if (i === 510) expect(pcp.count).toBe(511);
      if (i === 511) expect(pcp.count).toBe(480);
    }
    expect(pcp.free_count).toBe(32);
    expect(pcp.count).toBe(600 - 3 * 32);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4096 - 600 + 96);
    // The oldest (first freed) pages went back first: 0..95 are in the buddy
    // lists again, as 0/o6 and 64/o5.
    expect(free_list(m, z, 6, MOV)).toContain(0);
    expect(free_list(m, z, 5, MOV)).toContain(64);
    expect(pcp_list(m, z, 0, MOV)[0]).toBe(599);
    expect(pcp_list(m, z, 0, MOV).at(-1)).toBe(96);
  });
});

describe("buddy: split_large_buddy", () => {
  it("split_large_buddy: an order-10 free across a movable and a highatomic pageblock stays two order-9 blocks", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 10);
    expect(pfn).toBe(0);
    // Craft: the second pageblock was reserved for high-order atomics.
    set_pageblock_migratetype(m.mem, 512, MIGRATE_HIGHATOMIC);
    z.nr_reserved_highatomic = 512;
    __free_pages(m, 0, pfn, 10);
    // Freed a pageblock at a time, each with its own pageblock's type; a
    // highatomic block never merges with a movable one.
    expect(free_list(m, z, 9, MOV)).toEqual([0]);
    expect(free_list(m, z, 9, MIGRATE_HIGHATOMIC)).toEqual([512]);
    expect(free_list(m, z, 10, MOV)).toEqual([1024, 2048, 3072]);
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4096);
    expect(z.nr_free_highatomic).toBe(512);
  });

  it("split_large_buddy: an order-10 free across a movable and an unmovable pageblock merges, retyping the first", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 10);
    set_pageblock_migratetype(m.mem, 512, MIGRATE_UNMOVABLE);
    __free_pages(m, 0, pfn, 10);
    // 0/o9 goes to the movable list; then 512/o9 (unmovable) finds it free:
    // both types are mergeable, so they merge and the buddy's pageblock takes
    // the type of the block being freed.
    expect(free_list(m, z, 10, MIGRATE_UNMOVABLE)).toEqual([0]);
    expect(free_list(m, z, 9, MOV)).toEqual([]);
    expect(get_pageblock_migratetype(m.mem, 0)).toBe(MIGRATE_UNMOVABLE);
    expect(get_pageblock_migratetype(m.mem, 512)).toBe(MIGRATE_UNMOVABLE);
    expect(nr_free(m)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
  });

  it("buddy: every order 0..10 can be allocated and freed on an empty machine", () => {
    const m = small(16 * MiB, NEVER);
    for (let order = 0; order < NR_PAGE_ORDERS; order++) {
      const pfn = alloc_pages(m, 0, GFP_KERNEL, order);
      expect(pfn, `order ${order}`).toBeGreaterThanOrEqual(0);
      expect(pfn % (1 << order)).toBe(0);
      __free_pages(m, 0, pfn, order);
    }
    drain_all_pages(m, null);
    verify_machine(m);
    expect(normal(m).vm_stat[NR_FREE_PAGES]).toBe(4096);
  });
});
