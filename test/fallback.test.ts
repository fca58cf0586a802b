/**
 * Fallback between migratetypes on crafted pageblock layouts: whole-block
 * claims, partial claims, single steals, ALLOC_NOFRAGMENT, watermark boost
 * and the MIGRATE_HIGHATOMIC reserve.
 *
 * Unless said otherwise the machine is the 16 MiB "normal" one of
 * buddy.test.ts with THP off: 4096 pages, pageblocks P0..P7 at 0, 512, ...,
 * 3584, boot blocks 0/1024/2048/3072 of order 10, all movable; watermarks
 * min 128, low 160, high 192; pcp batch 1.
 */

import { describe, expect, it } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import {
  __GFP_RECLAIMABLE,
  GFP_ATOMIC,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  GFP_NOWAIT,
} from "../src/kernel/gfp.ts";
import {
  MIGRATE_HIGHATOMIC,
  MIGRATE_MOVABLE,
  MIGRATE_RECLAIMABLE,
  MIGRATE_UNMOVABLE,
  ZONE_BOOSTED_WATERMARK,
  ZONE_DMA32,
  ZONE_NORMAL,
} from "../src/kernel/mmzone.ts";
import {
  ClearPageFlag,
  get_pageblock_migratetype,
  PG_lru,
  SetPageFlag,
} from "../src/kernel/page.ts";
import { __free_pages, alloc_pages, gfp_to_alloc_flags } from "../src/kernel/page_alloc/alloc.ts";
import {
  find_suitable_fallback,
  move_freepages_block,
  should_try_claim_block,
} from "../src/kernel/page_alloc/fallback.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  ALLOC_HIGHATOMIC,
  ALLOC_MIN_RESERVE,
  ALLOC_NON_BLOCK,
  zone_watermark_ok,
} from "../src/kernel/page_alloc/watermark.ts";
import { pageblock_counts, proc_pagetypeinfo } from "../src/kernel/procfs.ts";
import { NR_FREE_PAGES } from "../src/kernel/vmstat_items.ts";
import { alloc_drained, free_list, GiB, MiB, pcp_list, small } from "./helpers.ts";

const NEVER = { sysctl: { transparent_hugepage: "never" as const } };
const UNMOV = MIGRATE_UNMOVABLE;
const MOV = MIGRATE_MOVABLE;

type M = ReturnType<typeof small>;
const normal = (m: M) => m.zone(0, ZONE_NORMAL);
const mts = (m: M, pfns: number[]) => pfns.map((p) => get_pageblock_migratetype(m.mem, p));
const PB16 = [0, 512, 1024, 1536, 2048, 2560, 3072, 3584];

/** Allocate movable blocks of the given orders, checking each pfn. */
function take(m: M, orders: number[], pfns: number[]): void {
  orders.forEach((o, i) => {
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, o), `order ${o}`).toBe(pfns[i]);
  });
}

function set_lru(m: M, from: number, to: number, on: boolean): void {
  for (let p = from; p < to; p++) {
    if (on) SetPageFlag(m.mem, p, PG_lru);
    else ClearPageFlag(m.mem, p, PG_lru);
  }
}

describe("fallback: claiming pageblocks", () => {
  it("fallback: with no unmovable free blocks, an unmovable request claims a whole free pageblock", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    // Three order-10 blocks and then the lower half of the last one go to
    // movable users; the only free memory is 3584/o9, a whole pageblock.
    take(m, [10, 10, 10, 9], [0, 1024, 2048, 3072]);
    expect(free_list(m, z, 9, MOV)).toEqual([3584]);
    // __rmqueue_claim scans from order 10 down, finds 3584/o9 on the movable
    // list: a block of pageblock order changes type whole and is split for
    // the request (the pcp refill is one page: batch 1).
    expect(alloc_pages(m, 0, GFP_KERNEL, 0)).toBe(3584);
    expect(mts(m, PB16)).toEqual([MOV, MOV, MOV, MOV, MOV, MOV, MOV, UNMOV]);
    for (let o = 0; o <= 8; o++) expect(free_list(m, z, o, UNMOV)).toEqual([3584 + (1 << o)]);
    expect(free_list(m, z, 9, MOV)).toEqual([]);
    // No watermark boost: nothing was claimed below pageblock order.
    expect(z.watermark_boost).toBe(0);
    expect(pageblock_counts(m, z)).toEqual([1, 7, 0, 0, 0, 0]);
    expect(proc_pagetypeinfo(m).split("\n").at(-2)).toBe(
      "Node 0, zone   Normal            1            7            0            0            0            0 ",
    );
  });

  it("fallback: a half-free pageblock is claimed whole and its free blocks move lists; the claim attempt boosts the watermarks", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    // P7 = 3584..4095: its lower half goes to movable users (on the LRU),
    // its upper half 3840/o8 stays free.
    take(m, [10, 10, 10, 9, 8], [0, 1024, 2048, 3072, 3584]);
    set_lru(m, 3584, 3840, true);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(256);
    // Unmovable order 4 (straight to the buddy lists). The largest fallback
    // block is 3840/o8, below pageblock order: boost_watermark() raises the
    // boost by a pageblock (max(512, 192 * 15000 / 10000 = 288) = 512 cap),
    // then the block has 256 free + 0 alike (the in-use pages are movable)
    // = 256 >= 512 / 2: claimed.
    expect(alloc_pages(m, 0, GFP_KERNEL, 4)).toBe(3840);
    expect(get_pageblock_migratetype(m.mem, 3584)).toBe(UNMOV);
    expect(free_list(m, z, 8, MOV)).toEqual([]);
    // __rmqueue_smallest(UNMOVABLE) split 3840/o8: 3856/o4 ... 3968/o7.
    expect(free_list(m, z, 4, UNMOV)).toEqual([3856]);
    expect(free_list(m, z, 5, UNMOV)).toEqual([3872]);
    expect(free_list(m, z, 6, UNMOV)).toEqual([3904]);
    expect(free_list(m, z, 7, UNMOV)).toEqual([3968]);
    expect(z.watermark_boost).toBe(512);
    // rmqueue() cleared ZONE_BOOSTED_WATERMARK when it woke kswapd.
    expect(z.flags & ZONE_BOOSTED_WATERMARK).toBe(0);
    // The boost lifts every watermark: min 128 + 512.
    expect(z.min_wmark_pages()).toBe(640);
    expect(z.high_wmark_pages()).toBe(704);
    set_lru(m, 3584, 3840, false);
    verify_machine(m);
  });

  it("fallback: a pageblock whose in-use pages are unmovable counts them as alike and is claimed with less than half free", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    // P7: 3584/o8 and 3840/o4 in use but not on the LRU, so the claim
    // heuristic takes them for unmovable; free: 3856/o4 3872/o5 3904/o6
    // 3968/o7 = 240 pages.
    take(m, [10, 10, 10, 9, 8, 4], [0, 1024, 2048, 3072, 3584, 3840]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(240);
    // At the first (largest) fallback order, 7: 240 free + (512 - 240 - 0
    // movable) alike = 512 >= 256, claimed; every free block of P7 moves to
    // the unmovable lists and __rmqueue_smallest(UNMOVABLE, 4) takes the
    // smallest, 3856/o4.
    expect(alloc_pages(m, 0, GFP_KERNEL, 4)).toBe(3856);
    expect(get_pageblock_migratetype(m.mem, 3584)).toBe(UNMOV);
    expect(free_list(m, z, 7, UNMOV)).toEqual([3968]);
    expect(free_list(m, z, 7, MOV)).toEqual([]);
  });

  it("fallback: a pageblock less than half free or alike is not claimed; the request steals the smallest block and the type stays", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    take(m, [10, 10, 10, 9, 8, 4], [0, 1024, 2048, 3072, 3584, 3840]);
    // Now the 272 in-use pages of P7 are movable LRU pages: 240 free + 0
    // alike < 256, so every claim attempt (orders 7, 6, 5, 4) fails, each
    // one boosting (capped at 512); __rmqueue_steal then takes the smallest
    // movable block that fits, 3856/o4, leaving P7 movable.
    set_lru(m, 3584, 3856, true);
    expect(alloc_pages(m, 0, GFP_KERNEL, 4)).toBe(3856);
    expect(get_pageblock_migratetype(m.mem, 3584)).toBe(MOV);
    expect(free_list(m, z, 5, MOV)).toEqual([3872]);
    expect(free_list(m, z, 6, MOV)).toEqual([3904]);
    expect(free_list(m, z, 7, MOV)).toEqual([3968]);
    for (let o = 0; o <= 10; o++) expect(free_list(m, z, o, UNMOV), `order ${o}`).toEqual([]);
    expect(z.watermark_boost).toBe(512);
    expect(pageblock_counts(m, z)).toEqual([0, 8, 0, 0, 0, 0]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(224);
    set_lru(m, 3584, 3856, false);
    verify_machine(m);
  });

  it("fallback: a reclaimable request prefers unmovable blocks within an order, but scans the largest order first", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    // An unmovable claim of block 0 leaves its upper halves on the
    // unmovable lists (0 itself is the allocation).
    expect(alloc_pages(m, 0, GFP_KERNEL, 4)).toBe(0);
    expect(mts(m, [0, 512])).toEqual([UNMOV, UNMOV]);
    // fallbacks[RECLAIMABLE] = {UNMOVABLE, MOVABLE}, tried in that order at
    // each order: at order 9 the unmovable 512/o9 is found, at order 10 only
    // movable blocks exist.
    expect(find_suitable_fallback(m, z, 9, MIGRATE_RECLAIMABLE, true)).toBe(UNMOV);
    expect(find_suitable_fallback(m, z, 10, MIGRATE_RECLAIMABLE, true)).toBe(MOV);
    // __rmqueue_claim scans from order 10 down, so the movable 1024/o10 is
    // claimed (whole, both pageblocks) before 512/o9 is looked at.
    const pfn = alloc_pages(m, 0, GFP_KERNEL | __GFP_RECLAIMABLE, 4);
    expect(pfn).toBe(1024);
    expect(mts(m, [1024, 1536])).toEqual([MIGRATE_RECLAIMABLE, MIGRATE_RECLAIMABLE]);
  });
});

describe("fallback: should_try_claim_block", () => {
  it("fallback: movable requests may claim from order pageblock_order / 2 = 4 (C integer division) up", () => {
    const m = small(16 * MiB, NEVER);
    expect(should_try_claim_block(m, 3, MOV)).toBe(false);
    expect(should_try_claim_block(m, 4, MOV)).toBe(true);
    expect(should_try_claim_block(m, 9, MOV)).toBe(true);
    // Unmovable and reclaimable requests may always try.
    expect(should_try_claim_block(m, 0, UNMOV)).toBe(true);
    expect(should_try_claim_block(m, 0, MIGRATE_RECLAIMABLE)).toBe(true);
    // find_suitable_fallback says -2 ("too low to claim") before it looks.
    expect(find_suitable_fallback(m, normal(m), 3, MOV, true)).toBe(-2);
  });

  it("fallback: a movable request claims an unmovable pageblock through its order-4 block when the block is mostly movable", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    take(m, [10, 10, 10], [0, 1024, 2048]);
    // P6 (3072..3583): every other page free, as 256 order-0 blocks.
    const p6 = alloc_drained(m, 512, () => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0));
    expect(p6[0]).toBe(3072);
    expect(p6[511]).toBe(3583);
    for (const p of p6) if (p % 2 === 0) __free_pages(m, 0, p, 0);
    drain_all_pages(m, null);
    // P7 (3584..4095): all in use by movable LRU pages except 4080/o4.
    take(m, [8, 7, 6, 5, 4], [3584, 3840, 3968, 4032, 4064]);
    set_lru(m, 3584, 4080, true);
    // Both blocks became unmovable earlier (as a claim would leave them).
    expect(move_freepages_block(m.mem, z, 3072, MOV, UNMOV)).toBe(256);
    expect(move_freepages_block(m.mem, z, 3584, MOV, UNMOV)).toBe(16);
    verify_machine(m);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(272);
    expect(Array.from(z.nr_free)).toEqual([256, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    // A movable page: no movable free blocks. __rmqueue_claim scans down to
    // order 4 (4 >= 9 / 2): 4080/o4 in P7, 16 free + 496 movable >= 256:
    // P7 becomes movable again and the request splits 4080.
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0)).toBe(4080);
    expect(get_pageblock_migratetype(m.mem, 3584)).toBe(MOV);
    expect(get_pageblock_migratetype(m.mem, 3072)).toBe(UNMOV);
    drain_all_pages(m, null);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(271);
    // P6's order-0 blocks were not touched.
    expect(free_list(m, z, 0, UNMOV)).toHaveLength(256);
    set_lru(m, 3584, 4080, false);
    verify_machine(m);
  });
});

describe("fallback: ALLOC_NOFRAGMENT", () => {
  it("nofragment: with DMA32 below Normal, an unmovable request takes a whole DMA32 pageblock before fragmenting Normal", () => {
    // flat, 4 GiB + 8 MiB: DMA 0..4095, DMA32 4096..1048575, Normal
    // 1048576..1050623 (2048 pages, two order-10 blocks). Checked once at
    // the end rather than after every call (a million pages).
    const m = boot({
      mem_bytes: 4 * GiB + 8 * MiB,
      layout: "flat",
      nr_cpus: 1,
      debug_vm: true,
      ...NEVER,
    });
    const nz = m.zone(0, ZONE_NORMAL);
    const dz = m.zone(0, ZONE_DMA32);
    const N = 1048576;
    // Movable users take Normal down to one free block, N+768/o8.
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 10)).toBe(N);
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 9)).toBe(N + 1024);
    expect(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 8)).toBe(N + 1536);
    expect(free_list(m, nz, 8, MOV)).toEqual([N + 1792]);
    // GFP_KERNEL prefers Normal, whose node has DMA32, so the first zonelist
    // pass runs with ALLOC_NOFRAGMENT: in Normal only free blocks of order
    // >= 9 may be claimed (there are none) and nothing may be stolen. DMA32
    // passes its watermark and has a whole free movable block at 4096 (its
    // first order-10 block): claimed whole, both pageblocks.
    const pfn = alloc_pages(m, 0, GFP_KERNEL, 4);
    expect(pfn).toBe(4096);
    expect(m.page_zone(pfn)).toBe(dz);
    expect(mts(m, [4096, 4608, 5120])).toEqual([UNMOV, UNMOV, MOV]);
    // Normal is untouched: no claim attempt, no boost, its block still free.
    expect(mts(m, [N, N + 512, N + 1024, N + 1536])).toEqual([MOV, MOV, MOV, MOV]);
    expect(free_list(m, nz, 8, MOV)).toEqual([N + 1792]);
    expect(nz.watermark_boost).toBe(0);
    expect(dz.watermark_boost).toBe(0);
    // Normal is still first in the zonelist and still has no unmovable
    // block, so the next unmovable request again lands in DMA32, on the
    // claimed block's upper halves: 4112/o4.
    expect(alloc_pages(m, 0, GFP_KERNEL, 4)).toBe(4112);
    verify_machine(m);
  });
});

describe("fallback: the highatomic reserve", () => {
  it("gfp_to_alloc_flags: only __GFP_HIGH non-blocking high-order requests may use the highatomic reserve", () => {
    // GFP_ATOMIC carries __GFP_HIGH (ALLOC_MIN_RESERVE): highatomic from order 1.
    expect(gfp_to_alloc_flags(GFP_ATOMIC, 1) & ALLOC_HIGHATOMIC).toBe(ALLOC_HIGHATOMIC);
    expect(gfp_to_alloc_flags(GFP_ATOMIC, 0) & ALLOC_HIGHATOMIC).toBe(0);
    // GFP_NOWAIT does not block either, but without __GFP_HIGH it gets
    // ALLOC_NON_BLOCK only (the stable fix of 2025).
    const nowait = gfp_to_alloc_flags(GFP_NOWAIT, 3);
    expect(nowait & ALLOC_NON_BLOCK).toBe(ALLOC_NON_BLOCK);
    expect(nowait & (ALLOC_HIGHATOMIC | ALLOC_MIN_RESERVE)).toBe(0);
    // A request that may reclaim never does.
    expect(gfp_to_alloc_flags(GFP_KERNEL, 3) & ALLOC_HIGHATOMIC).toBe(0);
  });

  // 256 MiB "normal", THP off: 65536 pages, 128 pageblocks. lowmem 262144
  // KiB, min_free_kbytes = int_sqrt(262144 * 16) = 2048, pages_min 512;
  // gap max(128, 65) = 128: min 512, low 640, high 768. One percent of the
  // zone is 655 pages >= a pageblock, so reserves are allowed, up to
  // ALIGN(655, 512) = 1024 pages. pcp batch: 65536 >> 12 = 16 -> 15.
  const big = () => small(256 * MiB, NEVER);

  it("highatomic: a high-order GFP_ATOMIC allocation that needed the slow path reserves its pageblock", () => {
    const m = big();
    const z = normal(m);
    const o10 = Array.from({ length: 63 }, () => 10);
    take(
      m,
      o10,
      o10.map((_, i) => i * 1024),
    );
    // The last block: 64512/o8 and 64768/o7 in use, 64896/o7 and 65024/o9 free.
    take(m, [8, 7], [64512, 64768]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(640);
    // Fast path: 640 - 3 <= low 640, refused. Slow path: min 512 halved
    // (__GFP_HIGH) to 256, less a quarter (cannot block) = 192 < 637. The
    // pcp refill (order 2: max(15 >> 2, 2) = 3 blocks) claims 65024/o9 whole
    // for unmovable and takes 65024, 65028, 65032 (splitting 65032/o3).
    expect(alloc_pages(m, 0, GFP_ATOMIC, 2)).toBe(65024);
    expect(pcp_list(m, z, 0, 6)).toEqual([65028, 65032]);
    // ALLOC_HIGHATOMIC: the pageblock and its free blocks move to HighAtomic:
    // 65036/o2 65040/o4 65056/o5 65088/o6 65152/o7 65280/o8 = 500 pages.
    expect(get_pageblock_migratetype(m.mem, 65024)).toBe(MIGRATE_HIGHATOMIC);
    expect(z.nr_reserved_highatomic).toBe(512);
    expect(z.nr_free_highatomic).toBe(500);
    expect(free_list(m, z, 8, MIGRATE_HIGHATOMIC)).toEqual([65280]);
    expect(free_list(m, z, 2, MIGRATE_HIGHATOMIC)).toEqual([65036]);
    expect(pageblock_counts(m, z)).toEqual([0, 127, 0, 1, 0, 0]);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(640 - 12);
    // Those 500 pages are free but not for ordinary requests: a caller
    // without reserve flags sees 628 - 500 = 128 <= min 512.
    expect(zone_watermark_ok(m, z, 0, z.min_wmark_pages(), ZONE_NORMAL, 0)).toBe(false);
    expect(alloc_pages(m, 0, GFP_KERNEL, 0)).toBe(-1);
    const atomic_flags = ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK | ALLOC_HIGHATOMIC;
    expect(zone_watermark_ok(m, z, 2, z.min_wmark_pages(), ZONE_NORMAL, atomic_flags)).toBe(true);
  });

  it("highatomic: an order-10 reservation retypes both pageblocks, and reserves stop at ALIGN(1%, pageblock) = 1024 pages", () => {
    const m = big();
    const z = normal(m);
    const o10 = Array.from({ length: 62 }, () => 10);
    take(
      m,
      o10,
      o10.map((_, i) => i * 1024),
    );
    take(m, [9], [63488]);
    // Free: 64000/o9 and 64512/o10 = 1536 pages; 1536 - 1023 <= low 640.
    expect(alloc_pages(m, 0, GFP_ATOMIC, 10)).toBe(64512);
    expect(mts(m, [64512, 65024])).toEqual([MIGRATE_HIGHATOMIC, MIGRATE_HIGHATOMIC]);
    expect(z.nr_reserved_highatomic).toBe(1024);
    // At the cap: the next high-order atomic allocation (claiming 64000/o9
    // for unmovable) leaves its pageblock alone.
    expect(alloc_pages(m, 0, GFP_ATOMIC, 2)).toBe(64000);
    expect(get_pageblock_migratetype(m.mem, 64000)).toBe(UNMOV);
    expect(z.nr_reserved_highatomic).toBe(1024);
    // Freed, the two highatomic pageblocks merge with each other (same type).
    __free_pages(m, 0, 64512, 10);
    expect(free_list(m, z, 10, MIGRATE_HIGHATOMIC)).toEqual([64512]);
    expect(z.nr_free_highatomic).toBe(1024);
  });

  it("highatomic: a zone where 1% is less than a pageblock never reserves", () => {
    const m = small(16 * MiB, NEVER);
    const z = normal(m);
    take(m, [10, 10, 10, 9, 8, 6, 5], [0, 1024, 2048, 3072, 3584, 3840, 3904]);
    // Free: 3936/o5, 3968/o7 = 160 <= low 160 + 1: only the slow path can.
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(160);
    // The pcp refill claims P7 for unmovable (160 free + 352 alike) and
    // splits the smallest unmovable block, 3936/o5.
    expect(alloc_pages(m, 0, GFP_ATOMIC, 1)).toBe(3936);
    expect(get_pageblock_migratetype(m.mem, 3584)).toBe(UNMOV);
    // 4096 / 100 = 40 < 512: no reserve.
    expect(z.nr_reserved_highatomic).toBe(0);
    expect(pageblock_counts(m, z)[MIGRATE_HIGHATOMIC]).toBe(0);
    expect(z.watermark_boost).toBe(512);
  });
});
