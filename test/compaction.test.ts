// Memory compaction (src/kernel/compaction.ts) on small machines: a full
// compaction through /proc/sys/vm/compact_memory rebuilds order-9 blocks
// from a fragmented zone, keeps every owner's data, leaves unmovable and
// pinned pages in place, honours async compaction's source-block rule, moves
// movable_ops pages, and moves the vmstat counters by hand-predicted amounts.
import { describe, expect, it } from "vitest";
import {
  __reset_isolation_suitable,
  COMPACT_COMPLETE,
  COMPACT_CONTINUE,
  COMPACT_SKIPPED,
  COMPACT_SUCCESS,
  compact_control,
  compact_control_release,
  compact_nodes,
  compact_zone,
  compaction_suit_allocation_order,
} from "../src/kernel/compaction.ts";
import { ToyMovable } from "../src/kernel/drivers/toy_movable.ts";
import { GFP_HIGHUSER_MOVABLE, GFP_KERNEL } from "../src/kernel/gfp.ts";
import { MIGRATE_ASYNC, MIGRATE_SYNC } from "../src/kernel/migrate.ts";
import {
  type AddressSpace,
  add_to_page_cache_lru,
  do_anonymous_page,
  mm_new_file,
  pin_user_page,
  zap_anon_page,
} from "../src/kernel/mm/owner.ts";
import { MIGRATE_UNMOVABLE, type Zone } from "../src/kernel/mmzone.ts";
import {
  get_pageblock_migratetype,
  get_pageblock_skip,
  PageLRU,
  set_pageblock_migratetype,
} from "../src/kernel/page.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  COMPACTFREE_SCANNED,
  COMPACTISOLATED,
  COMPACTMIGRATE_SCANNED,
  NR_FREE_PAGES,
  PGMIGRATE_FAIL,
  PGMIGRATE_SUCCESS,
} from "../src/kernel/vmstat_items.ts";
import { type Env, mm_env, verify_mm } from "./mm_helpers.ts";

// mm_env(): 16 MiB, layout "normal": one Normal zone of pfns 0..4095, no
// reserved pages, eight pageblocks of 512 pages, all MOVABLE after boot.
const NR_PAGES = 4096;
const PB = 512;

function zone_of(env: Env): Zone {
  return env.m.zones.find((z) => z.populated_zone())!;
}

/** Free pages in blocks of order >= 9, in pageblocks. */
function free_pageblocks(z: Zone): number {
  let n = 0;
  for (let o = 9; o < z.nr_free.length; o++) n += z.nr_free[o] << (o - 9);
  return n;
}

/** Pages with a reference in [start, start + PB). */
function used_in_block(env: Env, start: number): number {
  let n = 0;
  for (let p = start; p < start + PB; p++) if (env.m.mem._refcount[p] > 0) n++;
  return n;
}

/** The free block containing `pfn`, as its order, or -1 if pfn is not free. */
function free_order_at(env: Env, pfn: number): number {
  const z = zone_of(env);
  const mem = env.m.mem;
  for (let o = 0; o < z.nr_free.length; o++) {
    const head = pfn & ~((1 << o) - 1);
    if (mem.page_type[head] === 0xf0 && mem.page_private[head] === o) return o;
  }
  return -1;
}

/** Fault in anon pages for all free memory (normal watermarks), unmap every second. */
function fragmented(env: Env): { p: AddressSpace; n: number } {
  const p = env.mm_new("p", NR_PAGES);
  let n = 0;
  for (; n < NR_PAGES; n++)
    if (env.run((rt) => do_anonymous_page(rt, env.mm, p, n, 1000 + n)) < 0) break;
  for (let v = 0; v < n; v += 2) env.run((rt) => zap_anon_page(rt, env.mm, p, v));
  drain_all_pages(env.m, null);
  return { p, n };
}

/**
 * Every pfn of the zone an anon page: watermarks are zeroed so faults can
 * take the last free page (pcp pages are not counted free, so drain and
 * fault again until nothing is left). vpage v holds tag 1000 + v.
 */
function full(env: Env): AddressSpace {
  const z = zone_of(env);
  z._watermark.fill(0);
  const p = env.mm_new("p", NR_PAGES);
  let n = 0;
  for (let round = 0; round < 64 && (round === 0 || z.vm_stat[NR_FREE_PAGES] > 0); round++) {
    for (; n < NR_PAGES; n++)
      if (env.run((rt) => do_anonymous_page(rt, env.mm, p, n, 1000 + n)) < 0) break;
    drain_all_pages(env.m, null);
  }
  expect(n).toBe(NR_PAGES);
  return p;
}

/** Unmap the anon page at `pfn`. */
function zap_pfn(env: Env, p: AddressSpace, pfn: number): void {
  const v = env.m.mem.index[pfn];
  expect(p.pages[v]).toBe(pfn);
  env.run((rt) => zap_anon_page(rt, env.mm, p, v));
}

function events(env: Env) {
  const ev = env.m.vm_events;
  return {
    migrate_scanned: ev[COMPACTMIGRATE_SCANNED],
    free_scanned: ev[COMPACTFREE_SCANNED],
    isolated: ev[COMPACTISOLATED],
    success: ev[PGMIGRATE_SUCCESS],
    fail: ev[PGMIGRATE_FAIL],
  };
}

function delta(a: ReturnType<typeof events>, b: ReturnType<typeof events>) {
  return {
    migrate_scanned: b.migrate_scanned - a.migrate_scanned,
    free_scanned: b.free_scanned - a.free_scanned,
    isolated: b.isolated - a.isolated,
    success: b.success - a.success,
    fail: b.fail - a.fail,
  };
}

describe("compaction", () => {
  it("compaction: compact_memory on a zone with every second page unmapped rebuilds order-9 blocks, data intact", () => {
    const env = mm_env();
    const { m, mm } = env;
    const z = zone_of(env);
    const { p, n } = fragmented(env);
    // The faults took pages in pfn order until the watermark stopped them:
    // 3873 pages, so blocks 0..6 hold 256 anon pages each (every second pfn)
    // and block 7 holds 144; no free block of order >= 9 anywhere.
    expect(n).toBe(3873);
    const used: number[] = [];
    for (let b = 0; b < NR_PAGES; b += PB) used.push(used_in_block(env, b));
    expect(used).toEqual([256, 256, 256, 256, 256, 256, 256, 144]);
    expect(free_pageblocks(z)).toBe(0);
    // How many blocks can be emptied: the migration scanner empties blocks
    // 0..k-1 from the bottom into free pages of the blocks above them, so
    // k is the largest with sum(used[0..k-1]) <= sum(free[k..7]):
    // 256k <= 256(7-k) + 368, k <= 4.2, k = 4. The scanners stop when they
    // meet at pageblock granularity, so the block where they meet may stay
    // partly used: at least k - 1 = 3 free order-9 blocks.
    let k = 0;
    for (let j = 0; j <= 8; j++) {
      let below = 0;
      let above = 0;
      for (let b = 0; b < 8; b++) {
        if (b < j) below += used[b];
        else above += PB - used[b];
      }
      if (below <= above) k = j;
    }
    expect(k).toBe(4);
    env.run((rt) => compact_nodes(rt, mm));
    expect(free_pageblocks(z)).toBeGreaterThanOrEqual(k - 1);
    // Every remaining vpage (the odd ones) still holds its data.
    for (let v = 1; v < n; v += 2) expect(m.mem.content![p.pages[v]], `vpage ${v}`).toBe(1000 + v);
    verify_mm(env);
  });

  it("compaction: an unmovable kernel page keeps its pageblock from becoming a free order-9 block", () => {
    const env = mm_env();
    const { m, mm } = env;
    const { p, n } = fragmented(env);
    const u = alloc_pages(m, 0, GFP_KERNEL, 0);
    expect(u).toBeGreaterThanOrEqual(0);
    const ublock = u & ~(PB - 1);
    env.run((rt) => compact_nodes(rt, mm));
    // The kernel page cannot move: it is where it was, still allocated, and
    // no free block covers its pageblock; the block's movable pages were
    // migrated away but the block is not free as a whole.
    expect(m.mem._refcount[u]).toBe(1);
    expect(free_order_at(env, u)).toBe(-1);
    expect(free_order_at(env, ublock)).toBeLessThan(9);
    expect(used_in_block(env, ublock)).toBeGreaterThanOrEqual(1);
    for (let v = 1; v < n; v += 2) expect(m.mem.content![p.pages[v]]).toBe(1000 + v);
    verify_mm(env);
  });

  it("compaction: a pinned page cache page fails migration and is put back; a pinned anon page is not isolated", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = full(env);
    const f = mm_new_file(mm, "f", 1);
    // Block 0: keep anon pages at pfns 0 and 1, free 2..511; pfn 1 gets pinned.
    // Then free pfn 0 too and put a page cache page there, pinned as well.
    for (let pfn = 2; pfn < PB; pfn++) zap_pfn(env, p, pfn);
    zap_pfn(env, p, 0);
    // Top block: two free pages as targets.
    zap_pfn(env, p, NR_PAGES - 2);
    zap_pfn(env, p, NR_PAGES - 1);
    drain_all_pages(m, null);
    // The lowest free page, pfn 0, is the one the allocator hands out.
    const fp = env.run((rt) => add_to_page_cache_lru(rt, mm, f, 0, 77));
    expect(fp).toBe(0);
    pin_user_page(mm, fp);
    pin_user_page(mm, 1);
    const before = events(env);
    env.run((rt) => compact_nodes(rt, mm));
    const d = delta(before, events(env));
    // The file page: isolated (the anon pin pre-check does not apply to
    // mapped-by-cache pages), then migration answers -EAGAIN on all ten
    // passes (refcount 3 = cache + pin + isolation, expected 2): failed
    // once, put back on the LRU at the same pfn with its data.
    expect(d.fail).toBeGreaterThanOrEqual(1);
    expect(f.pages[0]).toBe(fp);
    expect(PageLRU(m.mem, fp)).toBe(true);
    expect(m.mem.content![fp]).toBe(77);
    expect(m.mem._refcount[fp]).toBe(2);
    // The pinned anon page at pfn 1 never left its place either.
    expect(p.pages[m.mem.index[1]]).toBe(1);
    expect(PageLRU(m.mem, 1)).toBe(true);
    // Round 1 isolates only the file page from block 0 (pfn 1 is skipped
    // by the pin check): 1 failure. Round 2 isolates 32 pages of block 1;
    // two move into the two free top pages, the third meets -ENOMEM (1
    // more failure) and the rest go back. Isolated: 1 + 2 free + 32.
    expect(d.success).toBe(2);
    expect(d.fail).toBe(2);
    expect(d.isolated).toBe(1 + 2 + 32);
    verify_mm(env);
  });

  it("compaction: async compaction for a movable request skips an UNMOVABLE source pageblock", () => {
    const run_case = (mode: number) => {
      const env = mm_env();
      const { m, mm } = env;
      const p = full(env);
      // Block 0 becomes UNMOVABLE while every page in it is allocated (so no
      // free page sits on the wrong list); then all but pfns 0 and 1 are freed.
      set_pageblock_migratetype(m.mem, 0, MIGRATE_UNMOVABLE);
      for (let pfn = 2; pfn < PB; pfn++) zap_pfn(env, p, pfn);
      // Targets: the 32 highest pfns.
      for (let pfn = NR_PAGES - 32; pfn < NR_PAGES; pfn++) zap_pfn(env, p, pfn);
      drain_all_pages(m, null);
      const cc = compact_control(mm, zone_of(env), {
        order: -1,
        mode,
        direct_compaction: true,
        whole_zone: true,
        gfp_mask: GFP_HIGHUSER_MOVABLE,
      });
      const ret = env.run((rt) => compact_zone(rt, mm, cc));
      compact_control_release(mm, cc);
      drain_all_pages(m, null);
      verify_mm(env);
      expect(get_pageblock_migratetype(m.mem, 0)).toBe(MIGRATE_UNMOVABLE);
      const still_there = [0, 1].filter(
        (pfn) => PageLRU(m.mem, pfn) && p.pages[m.mem.index[pfn]] === pfn,
      );
      return { ret, stayed: still_there.length };
    };
    // Async direct compaction: block 0's migratetype does not suit a movable
    // request, so its two anon pages stay; the run ends when the scanners meet.
    const a = run_case(MIGRATE_ASYNC);
    expect(a.ret).toBe(COMPACT_COMPLETE);
    expect(a.stayed).toBe(2);
    // Sync compaction takes any block: both pages leave block 0.
    const s = run_case(MIGRATE_SYNC);
    expect(s.stayed).toBe(0);
  });

  it("compaction: counters move by the predicted amounts for a crafted two-page case", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = full(env);
    // Block 0: anon pages at pfns 0 and 1, pfns 2..511 free (buddies of
    // orders 1..8). Block 7: only pfns 4094 and 4095 free (one order-1
    // buddy). Blocks 1..6: every page anon.
    for (let pfn = 2; pfn < PB; pfn++) zap_pfn(env, p, pfn);
    zap_pfn(env, p, NR_PAGES - 2);
    zap_pfn(env, p, NR_PAGES - 1);
    drain_all_pages(m, null);
    const before = events(env);
    env.run((rt) => compact_nodes(rt, mm));
    const d = delta(before, events(env));
    // Round 1: the migration scanner walks block 0: pfns 0 and 1 isolated
    // (2 scanned), then the free buddies of orders 1..8 are stepped over and
    // counted (510): 512 scanned, 2 isolated. The free scanner starts at
    // block 7 (its first page is allocated, so it is a target), visits 510
    // allocated pfns and the order-1 buddy at 4094 (1 + 1 counted): 512
    // scanned, 2 isolated, enough; the block is done, so free_pfn drops to
    // block 6. Both pages migrate: pgmigrate_success 2.
    // Round 2: block 1 yields 32 isolated pages after 32 pfns. The free
    // scanner walks blocks 6..2, every pfn allocated, nothing isolated;
    // after each empty block its stride doubles (1, 2, 4, 8, 16), so it
    // visits 512 + 256 + 128 + 64 + 32 = 992 pfns, and stops above block
    // 1: no target, so
    // migrate_pages fails the first page with -ENOMEM (pgmigrate_fail 1)
    // and the 32 go back. The scanners have met: COMPACT_COMPLETE.
    expect(d).toEqual({
      migrate_scanned: 512 + 32,
      free_scanned: 512 + 992,
      isolated: 2 + 2 + 32,
      success: 2,
      fail: 1,
    });
    // Block 0 is now one free order-9 block; the pages live at 4094/4095.
    expect(free_order_at(env, 0)).toBe(9);
    expect(m.mem.content![4094] + m.mem.content![4095]).toBe(
      1000 + m.mem.index[4094] + 1000 + m.mem.index[4095],
    );
    verify_mm(env);
  });

  it("compaction: movable_ops driver pages are migrated by compaction", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = full(env);
    const toy = new ToyMovable(mm, "toy", 4);
    // Free pfns 0..3 (the only free pages) and let the driver allocate two
    // of them (an allocation needs free pages above the zeroed watermark).
    for (let pfn = 0; pfn < 4; pfn++) zap_pfn(env, p, pfn);
    drain_all_pages(m, null);
    for (let slot = 0; slot < 2; slot++) {
      const pfn = env.run((rt) => toy.add_page(rt, mm, slot, 500 + slot));
      expect(pfn >= 0 && pfn < 4, `driver page ${pfn} in pfns 0..3`).toBe(true);
    }
    // Then: the rest of block 0 free, two free pages at the top.
    for (let pfn = 4; pfn < PB; pfn++) zap_pfn(env, p, pfn);
    zap_pfn(env, p, NR_PAGES - 2);
    zap_pfn(env, p, NR_PAGES - 1);
    drain_all_pages(m, null);
    env.run((rt) => compact_nodes(rt, mm));
    // Both driver pages moved into the two free pages of block 7, with
    // their data and bookkeeping; block 0 is free as one order-9 block.
    expect(toy.calls.migrate).toBe(2);
    expect(Array.from(toy.slots.slice(0, 2)).sort()).toEqual([NR_PAGES - 2, NR_PAGES - 1]);
    expect(m.mem.content![toy.slots[0]]).toBe(500);
    expect(m.mem.content![toy.slots[1]]).toBe(501);
    expect(toy.isolated_pages).toBe(0);
    expect(free_order_at(env, 0)).toBe(9);
    verify_mm(env);
  });

  it("compaction: compaction_suitable weighs the watermark plus compact_gap and the fragmentation index", () => {
    const env = mm_env();
    const { m, mm } = env;
    const z = zone_of(env);
    const suit = () => {
      const cc = compact_control(mm, z, { order: 9, gfp_mask: GFP_HIGHUSER_MOVABLE });
      const r = compaction_suit_allocation_order(m, cc);
      compact_control_release(mm, cc);
      return r;
    };
    // After boot the zone is four free order-10 blocks: an order-9
    // allocation would already succeed.
    expect(suit()).toBe(COMPACT_SUCCESS);
    fragmented(env);
    // Now 2160 free pages in 1936 order-0 blocks and one each of orders
    // 5, 6, 7 (1939 blocks). Watermark: low (243) + compact_gap(9) (1024)
    // = 1267 <= 2160, passes. Fragmentation index for order 9:
    // 1000 - (1000 + 2160 * 1000 / 512) / 1939 = 1000 - (1000 + 4218) / 1939
    // = 1000 - 2 = 998 > extfrag_threshold (500): compaction can help.
    expect(z.low_wmark_pages()).toBe(243);
    expect(Array.from(z.nr_free)).toEqual([1936, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
    expect(suit()).toBe(COMPACT_CONTINUE);
    // With the threshold at 1000 an index of 998 counts as "out of memory,
    // not fragmented".
    m.sysctl.extfrag_threshold = 1000;
    expect(suit()).toBe(COMPACT_SKIPPED);
  });

  it("compaction: a zone with almost no free memory is skipped (watermark plus compact_gap)", () => {
    const env = mm_env();
    const { m, mm } = env;
    const z = zone_of(env);
    const p = full(env);
    zap_pfn(env, p, 0);
    zap_pfn(env, p, 1);
    drain_all_pages(m, null);
    // 2 free pages; watermarks are zero here, so the order-9 allocation
    // fails its watermark check and compaction needs 0 + 2 << 9 = 1024
    // free pages as targets: skipped.
    const cc = compact_control(mm, z, { order: 9, gfp_mask: GFP_HIGHUSER_MOVABLE });
    expect(env.run((rt) => compact_zone(rt, mm, cc))).toBe(COMPACT_SKIPPED);
    compact_control_release(mm, cc);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(2);
  });

  it("compaction: skip bits mark claimed and scanned-out blocks, later runs honour them, __reset_isolation_suitable clears them where a sample finds work", () => {
    const env = mm_env();
    const { m, mm } = env;
    const z = zone_of(env);
    const p = full(env);
    // The counter case's layout: block 0 holds anon pages at pfns 0 and 1,
    // block 7 has pfns 4094 and 4095 free, blocks 1..6 are full.
    for (let pfn = 2; pfn < PB; pfn++) zap_pfn(env, p, pfn);
    zap_pfn(env, p, NR_PAGES - 2);
    zap_pfn(env, p, NR_PAGES - 1);
    drain_all_pages(m, null);
    const sync_run = (whole_zone: boolean, direct_compaction: boolean) => {
      const cc = compact_control(mm, z, {
        order: -1,
        mode: MIGRATE_SYNC,
        whole_zone,
        direct_compaction,
      });
      const ret = env.run((rt) => compact_zone(rt, mm, cc));
      compact_control_release(mm, cc);
      drain_all_pages(m, null);
      return ret;
    };
    const skips = () => Array.from({ length: 8 }, (_, b) => get_pageblock_skip(m.mem, b * PB));
    // Run 1 (as in the counter case, flagged as direct compaction): the
    // migration scanner claims blocks 0 and 1 with their skip bits when it
    // first isolates from them (test_and_set_skip); the free scanner scanned
    // blocks 7 (to its end after taking 4094/4095) and 6..2 (each to its
    // end, with a growing stride) and marks them all.
    expect(sync_run(true, true)).toBe(COMPACT_COMPLETE);
    expect(skips()).toEqual([true, true, true, true, true, true, true, true]);
    // The scanners met: both cached positions are back at the zone edges,
    // and a direct compaction that met asks for the hints to be flushed.
    expect(z.compact_cached_migrate_pfn).toEqual([0, 0]);
    expect(z.compact_cached_free_pfn).toBe(NR_PAGES - PB);
    expect(z.compact_blockskip_flush).toBe(true);
    // Run 2 honours the hints: every block is skipped, nothing is scanned.
    const before = events(env);
    sync_run(false, false);
    const d = delta(before, events(env));
    expect(d).toEqual({ migrate_scanned: 0, free_scanned: 0, isolated: 0, success: 0, fail: 0 });
    // __reset_isolation_suitable() walks the blocks pairwise from both
    // ends, sampling every 8th page: (0, 7): block 0 is now one free block
    // and the source side looks for LRU pages only: kept; block 7 has no
    // free page: kept. (1, 6): block 1 holds LRU pages: cleared, and the
    // migration scanner restarts there (compact_init_migrate_pfn); block 6
    // has no free page: kept. (2, 5), (3, 4): blocks 2 and 3 cleared (LRU),
    // 5 and 4 kept. No target block was reset, so the cached positions are
    // left where the walk met (2048 and 2047), the scanners as good as met.
    __reset_isolation_suitable(m, z);
    expect(skips()).toEqual([true, false, false, false, true, true, true, true]);
    expect(z.compact_init_migrate_pfn).toBe(PB);
    expect(z.compact_cached_migrate_pfn).toEqual([2048, 2048]);
    expect(z.compact_cached_free_pfn).toBe(2047);
    expect(z.compact_blockskip_flush).toBe(false);
    // Only once per flush request.
    __reset_isolation_suitable(m, z);
    expect(skips()).toEqual([true, false, false, false, true, true, true, true]);
    verify_mm(env);
  });
});
