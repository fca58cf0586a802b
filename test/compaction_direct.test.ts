// Direct compaction (src/kernel/compaction_direct.ts) wired into the
// allocator's slow path: an order-9 allocation that fails without it
// succeeds with it by capturing the block its own migration frees; the
// counters compact_stall/success/fail move by the predicted amounts; a zone
// whose sync compaction failed is deferred for 1 << compact_defer_shift
// attempts; too_many_isolated() aborts a run; a contended lru_lock backs
// off; and a property test keeps every invariant under random workloads.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  COMPACT_COMPLETE,
  COMPACT_CONTENDED,
  COMPACT_DEFERRED,
  COMPACT_MAX_DEFER_SHIFT,
  COMPACT_SKIPPED,
  COMPACT_SUCCESS,
  compaction_deferred,
  compaction_restarting,
  defer_compaction,
} from "../src/kernel/compaction.ts";
import {
  type CaptureResult,
  compact_zone_order,
  install_direct_compaction,
  MIN_COMPACT_PRIORITY,
} from "../src/kernel/compaction_direct.ts";
import { __GFP_COMP, GFP_HIGHUSER_MOVABLE, GFP_NOIO } from "../src/kernel/gfp.ts";
import { putback_movable_pages } from "../src/kernel/migrate.ts";
import { isolate_lru_page_to_list } from "../src/kernel/mm/lru.ts";
import {
  type AddressSpace,
  do_anonymous_page,
  pin_user_page,
  zap_anon_page,
} from "../src/kernel/mm/owner.ts";
import { MIGRATE_UNMOVABLE } from "../src/kernel/mmzone.ts";
import { PageBuddy, PageLRU, set_pageblock_migratetype } from "../src/kernel/page.ts";
import {
  __free_pages,
  alloc_pages,
  COMPACT_PRIO_ASYNC,
  COMPACT_PRIO_SYNC_LIGHT,
} from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { ALLOC_CMA, ALLOC_WMARK_MIN } from "../src/kernel/page_alloc/watermark.ts";
import { proc_vmstat } from "../src/kernel/procfs.ts";
import {
  COMPACTFAIL,
  COMPACTMIGRATE_SCANNED,
  COMPACTSTALL,
  COMPACTSUCCESS,
  NR_FREE_PAGES,
  PGMIGRATE_SUCCESS,
} from "../src/kernel/vmstat_items.ts";
import { parse_kv } from "./helpers.ts";
import {
  type Env,
  full_zone,
  mm_env,
  NR_PAGES,
  PB,
  verify_mm,
  zap_pfn,
  zone_of,
} from "./mm_helpers.ts";

const THP = GFP_HIGHUSER_MOVABLE | __GFP_COMP;

/**
 * The layout of the capture cases: block 0 UNMOVABLE (so async direct
 * compaction for a movable request skips it), block 1 holding only the
 * eight anon pages at offsets 0, 64, ..., 448, block 2 full, blocks 3..7
 * with every even pfn free. Free: 504 + 5 * 256 = 1784 pages, no free
 * block of order 9.
 */
function capture_layout(env: Env): AddressSpace {
  const { m } = env;
  const p = full_zone(env);
  set_pageblock_migratetype(m.mem, 0, MIGRATE_UNMOVABLE);
  for (let pfn = PB; pfn < 2 * PB; pfn++) if (pfn % 64 !== 0) zap_pfn(env, p, pfn);
  for (let pfn = 3 * PB; pfn < NR_PAGES; pfn += 2) zap_pfn(env, p, pfn);
  drain_all_pages(m, null);
  const z = zone_of(env);
  expect(z.vm_stat[NR_FREE_PAGES]).toBe(1784);
  expect(z.nr_free[9] + z.nr_free[10]).toBe(0);
  return p;
}

function counters(env: Env) {
  const ev = env.m.vm_events;
  return {
    stall: ev[COMPACTSTALL],
    success: ev[COMPACTSUCCESS],
    fail: ev[COMPACTFAIL],
    migrated: ev[PGMIGRATE_SUCCESS],
    scanned: ev[COMPACTMIGRATE_SCANNED],
  };
}

function delta(a: ReturnType<typeof counters>, b: ReturnType<typeof counters>) {
  return {
    stall: b.stall - a.stall,
    success: b.success - a.success,
    fail: b.fail - a.fail,
    migrated: b.migrated - a.migrated,
  };
}

/** Every remaining anon page still holds its tag. */
function data_intact(env: Env, p: AddressSpace): void {
  for (let v = 0; v < p.pages.length; v++) {
    const pfn = p.pages[v];
    if (pfn >= 0) expect(env.m.mem.content![pfn], `vpage ${v}`).toBe(1000 + v);
  }
}

describe("direct compaction", () => {
  it("direct compaction: an order-9 allocation that fails without it succeeds with it, by capture", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = capture_layout(env);
    // No hook: the free lists cannot serve order 9 and nothing else helps.
    expect(alloc_pages(m, 0, THP, 9)).toBe(-1);
    install_direct_compaction(mm, env.e);
    const before = counters(env);
    const pfn = alloc_pages(m, 0, THP, 9);
    // The first (async) direct compaction: block 0 is UNMOVABLE and not a
    // source for a movable request; block 1's eight pages are isolated (its
    // whole block scanned, 8 < 32) and migrated into free pages of block 7.
    // The migration scanner is now at pfn 1024, past the order-9 block it
    // migrated from, so this CPU's pcp list is drained: block 1's pages
    // merge, and the merge reaching order 9 is captured. The loop checks
    // for a capture only after the next migration, so block 2 gives its
    // first 32 pages too: 8 + 32 pages migrated. One stall, one success.
    expect(pfn).toBe(PB);
    expect(delta(before, counters(env))).toEqual({ stall: 1, success: 1, fail: 0, migrated: 40 });
    // /proc/vmstat shows the same.
    const vmstat = parse_kv(proc_vmstat(m));
    expect([vmstat.get("compact_stall"), vmstat.get("compact_success")]).toEqual([1, 1]);
    expect(vmstat.get("compact_fail")).toBe(0);
    // The captured block is a compound order-9 page with one reference, on
    // no free list; the zone's deferral is reset by the success.
    expect(m.mem._refcount[PB]).toBe(1);
    expect(PageBuddy(m.mem, PB)).toBe(false);
    expect(zone_of(env).compact_defer_shift).toBe(0);
    expect(zone_of(env).compact_order_failed).toBe(10);
    data_intact(env, p);
    verify_mm(env);
    __free_pages(m, 0, pfn, 9);
    verify_mm(env);
  });

  it("direct compaction: inside a runtime thread its locks go through the runtime and are all released", () => {
    const env = mm_env();
    const { m, mm, e } = env;
    const p = capture_layout(env);
    install_direct_compaction(mm, e);
    const before = counters(env);
    // The allocation runs in a thread: the inline run hands its lock
    // operations to the Execution (ownership, lockdep), resuming them at once.
    const pfn = env.run(function* (rt) {
      yield* rt.cond_resched();
      return alloc_pages(m, 0, THP, 9);
    });
    expect(pfn).toBe(PB);
    expect(delta(before, counters(env))).toEqual({ stall: 1, success: 1, fail: 0, migrated: 40 });
    expect(e.locks.every((l) => l.owner === -1)).toBe(true);
    expect(mm.pf_memalloc).toBe(false);
    data_intact(env, p);
    verify_mm(env);
  });

  it("direct compaction: without capture the same run stops one round earlier and the block comes from the free list", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = capture_layout(env);
    install_direct_compaction(mm, env.e);
    m.free_area_hooks.compaction_capture = null;
    const before = counters(env);
    const pfn = alloc_pages(m, 0, THP, 9);
    // Block 1 merges on the free list; compact_finished() sees the order-9
    // block at the start of the next round: only block 1's 8 pages moved,
    // and get_page_from_freelist() hands out the same block.
    expect(pfn).toBe(PB);
    expect(delta(before, counters(env))).toEqual({ stall: 1, success: 1, fail: 0, migrated: 8 });
    data_intact(env, p);
    verify_mm(env);
  });

  it("direct compaction: compact_zone_order returns the captured page and COMPACT_SUCCESS", () => {
    const env = mm_env();
    const { m, mm } = env;
    capture_layout(env);
    install_direct_compaction(mm, env.e);
    const capture: CaptureResult = { page: -1 };
    const z = zone_of(env);
    const ret = env.run((rt) =>
      compact_zone_order(
        rt,
        mm,
        z,
        9,
        THP,
        COMPACT_PRIO_ASYNC,
        ALLOC_WMARK_MIN | ALLOC_CMA,
        z.zone_idx,
        capture,
      ),
    );
    expect(ret).toBe(COMPACT_SUCCESS);
    expect(capture.page).toBe(PB);
    // Held as an allocated order-9 block until the allocator takes it.
    expect(m.mem._refcount[PB]).toBe(1);
    expect(mm.capture_control).toBe(null);
    verify_mm(env);
  });

  it("direct compaction: async direct compaction gives up an order-9 chunk at its first failure and puts back what it took", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = full_zone(env);
    set_pageblock_migratetype(m.mem, 0, MIGRATE_UNMOVABLE);
    // Block 1: anon pages at offsets 0..7, a pinned one at 8, the rest free.
    // Blocks 5..7: every even pfn free (768 targets). Blocks 2..4 full.
    for (let pfn = PB + 9; pfn < 2 * PB; pfn++) zap_pfn(env, p, pfn);
    for (let pfn = 5 * PB; pfn < NR_PAGES; pfn += 2) zap_pfn(env, p, pfn);
    drain_all_pages(m, null);
    pin_user_page(mm, PB + 8);
    install_direct_compaction(mm, env.e);
    const z = zone_of(env);
    const capture: CaptureResult = { page: -1 };
    const ret = env.run((rt) =>
      compact_zone_order(
        rt,
        mm,
        z,
        9,
        THP,
        COMPACT_PRIO_ASYNC,
        ALLOC_WMARK_MIN | ALLOC_CMA,
        2,
        capture,
      ),
    );
    // Block 1: offsets 0..7 are isolated, the pinned page at 8 fails, so the
    // eight go back and the scanner jumps to the end of the order-9 chunk
    // (the block). Block 2 has no failure: it is emptied and captured.
    expect(ret).toBe(COMPACT_SUCCESS);
    expect(capture.page).toBe(2 * PB);
    for (let pfn = PB; pfn <= PB + 8; pfn++) {
      expect(p.pages[m.mem.index[pfn]], `pfn ${pfn} kept its page`).toBe(pfn);
      expect(PageLRU(m.mem, pfn)).toBe(true);
    }
    data_intact(env, p);
    verify_mm(env);
  });

  it("direct compaction: a failing order-9 allocation stalls twice at async priority and async failures never defer", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = capture_layout(env);
    // Every anon page pinned: the scanner's pin check isolates nothing, so
    // no block can become free.
    for (const pfn of p.pages) if (pfn >= 0) pin_user_page(mm, pfn);
    install_direct_compaction(mm, env.e);
    const before = counters(env);
    expect(alloc_pages(m, 0, THP, 9)).toBe(-1);
    // The slow path compacts before its retry loop and once in it (still
    // COMPACT_PRIO_ASYNC), then gives up on a costly order without
    // __GFP_RETRY_MAYFAIL: two stalls, two failures.
    const d = delta(before, counters(env));
    expect([d.stall, d.success, d.fail]).toEqual([2, 0, 2]);
    expect(zone_of(env).compact_defer_shift).toBe(0);
    data_intact(env, p);
    verify_mm(env);
  });

  it("direct compaction: a zone whose sync compaction failed is skipped for 1 << compact_defer_shift attempts", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = capture_layout(env);
    // Every anon page pinned: the scanner's pin check isolates nothing, so
    // each sync run walks the zone and ends COMPACT_COMPLETE.
    for (const pfn of p.pages) if (pfn >= 0) pin_user_page(mm, pfn);
    install_direct_compaction(mm, env.e);
    const z = zone_of(env);
    const hook = m.hooks.direct_compact!;
    const attempt = (prio: number) =>
      hook(m, 0, THP, 9, ALLOC_WMARK_MIN | ALLOC_CMA, z.zone_idx, 1, prio).result;
    // Each sync failure doubles the deferral: after the k-th failure the
    // next (1 << k) - 1 attempts are DEFERRED and the one after runs.
    const results: number[] = [];
    const before = counters(env);
    for (let i = 0; i < 1 + 2 + 4 + 8; i++) results.push(attempt(COMPACT_PRIO_SYNC_LIGHT));
    const D = COMPACT_DEFERRED;
    const C = COMPACT_COMPLETE;
    expect(results).toEqual([C, D, C, D, D, D, C, D, D, D, D, D, D, D, C]);
    expect(z.compact_defer_shift).toBe(4);
    expect(z.compact_considered).toBe(0);
    expect(z.compact_order_failed).toBe(0);
    // Deferred attempts count as stalls (and failures) too.
    const d = delta(before, counters(env));
    expect([d.stall, d.success, d.fail]).toEqual([15, 0, 15]);
    // The hardest priority ignores deferral.
    expect(attempt(MIN_COMPACT_PRIORITY)).toBe(C);
    verify_mm(env);
  });

  it("direct compaction: deferral saturates at COMPACT_MAX_DEFER_SHIFT and compaction_restarting follows it", () => {
    const env = mm_env();
    const z = zone_of(env);
    for (let k = 0; k < 10; k++) defer_compaction(z, 9);
    expect(z.compact_defer_shift).toBe(COMPACT_MAX_DEFER_SHIFT);
    expect(z.compact_order_failed).toBe(0);
    let skipped = 0;
    while (compaction_deferred(z, 9)) skipped++;
    expect(skipped).toBe((1 << COMPACT_MAX_DEFER_SHIFT) - 1);
    expect(compaction_restarting(z, 9)).toBe(true);
    // An order below the lowest failed one is never deferred.
    z.compact_order_failed = 5;
    defer_compaction(z, 9);
    expect(compaction_deferred(z, 4)).toBe(false);
    expect(compaction_deferred(z, 9)).toBe(true);
  });

  it("direct compaction: a request that may not do I/O is skipped without a stall", () => {
    const env = mm_env();
    const { m, mm } = env;
    capture_layout(env);
    install_direct_compaction(mm, env.e);
    const before = counters(env);
    const r = m.hooks.direct_compact!(m, 0, GFP_NOIO, 9, ALLOC_WMARK_MIN, 2, 0, COMPACT_PRIO_ASYNC);
    expect(r).toEqual({ pfn: -1, result: COMPACT_SKIPPED });
    expect(delta(before, counters(env))).toEqual({ stall: 0, success: 0, fail: 0, migrated: 0 });
  });

  it("direct compaction: too many isolated pages abort the run as COMPACT_CONTENDED", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = capture_layout(env);
    install_direct_compaction(mm, env.e);
    // Another task holds 200 pages of block 2 isolated. LRU: 8 + 512 + 1280
    // = 1800 anon pages, 1600 left on the lists; __GFP_FS divides that by
    // 8: 200 > 200 / 2, so isolate_migratepages_block() refuses at once.
    const list = env.list();
    for (let pfn = 2 * PB; pfn < 2 * PB + 200; pfn++)
      expect(env.run((rt) => isolate_lru_page_to_list(rt, mm, pfn, list))).toBe(0);
    const z = zone_of(env);
    const hook = m.hooks.direct_compact!;
    const before = counters(env);
    const r = hook(m, 0, THP, 9, ALLOC_WMARK_MIN | ALLOC_CMA, z.zone_idx, 1, COMPACT_PRIO_ASYNC);
    expect(r).toEqual({ pfn: -1, result: COMPACT_CONTENDED });
    const after = counters(env);
    expect(delta(before, after)).toEqual({ stall: 1, success: 0, fail: 1, migrated: 0 });
    // Nothing scanned: the zone starts at pfn 0, so with last_migrated_pfn
    // still 0 the first round counts as a second round in block 0 and
    // finishes the pageblock (finish_pageblock), which skips the fast
    // search; block 0 is passed over as an unsuitable source and block 1
    // refuses before its first pfn.
    expect(after.scanned - before.scanned).toBe(0);
    env.run((rt) => putback_movable_pages(rt, mm, list));
    data_intact(env, p);
    verify_mm(env);
  });

  it("direct compaction: an lru_lock held by another thread makes the zone's run back off as contended", () => {
    const env = mm_env();
    const { m, mm, e } = env;
    capture_layout(env);
    install_direct_compaction(mm, e);
    const lock = mm.lruvecs[0].lru_lock;
    const holder = e.spawn("holder", function* (rt) {
      yield* rt.spin_lock(lock);
      yield* rt.spin_unlock(lock);
    });
    e.step(holder);
    e.step(holder);
    expect(lock.owner).toBe(holder);
    const z = zone_of(env);
    const r = m.hooks.direct_compact!(m, 0, THP, 9, ALLOC_WMARK_MIN | ALLOC_CMA, z.zone_idx, 1, 2);
    expect(r.result).toBe(COMPACT_CONTENDED);
    e.step(holder);
    expect(lock.owner).toBe(-1);
    verify_mm(env);
  });

  it("direct compaction: random faults, unmaps and high-order allocations keep every invariant and every owner's data", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("fault" as const), n: fc.integer({ min: 1, max: 400 }) }),
            fc.record({
              op: fc.constant("unmap" as const),
              stride: fc.integer({ min: 2, max: 5 }),
            }),
            fc.record({ op: fc.constant("alloc" as const), order: fc.integer({ min: 1, max: 9 }) }),
            fc.record({ op: fc.constant("free" as const) }),
          ),
          { minLength: 1, maxLength: 12 },
        ),
        (ops) => {
          const env = mm_env();
          const { m, mm } = env;
          install_direct_compaction(mm, env.e);
          const p = env.mm_new("p", NR_PAGES);
          let next = 0;
          const held: [number, number][] = [];
          for (const o of ops) {
            if (o.op === "fault") {
              for (let i = 0; i < o.n && next < NR_PAGES; i++, next++)
                if (env.run((rt) => do_anonymous_page(rt, mm, p, next, 1000 + next)) < 0) break;
            } else if (o.op === "unmap") {
              for (let v = 0; v < next; v += o.stride)
                if (p.pages[v] >= 0) env.run((rt) => zap_anon_page(rt, mm, p, v));
            } else if (o.op === "alloc") {
              const pfn = alloc_pages(m, 0, THP, o.order);
              if (pfn >= 0) {
                expect(pfn % (1 << o.order)).toBe(0);
                held.push([pfn, o.order]);
              }
            } else if (held.length) {
              const [pfn, order] = held.pop()!;
              __free_pages(m, 0, pfn, order);
            }
            verify_mm(env);
            data_intact(env, p);
          }
          // Every page is accounted for: allocated blocks, owned pages and
          // free pages (after draining the pcp lists) cover the zone.
          drain_all_pages(m, null);
          let owned = 0;
          for (let v = 0; v < NR_PAGES; v++) if (p.pages[v] >= 0) owned++;
          const blocks = held.reduce((s, [, o]) => s + (1 << o), 0);
          expect(zone_of(env).vm_stat[NR_FREE_PAGES] + owned + blocks).toBe(NR_PAGES);
        },
      ),
      { seed: 3, numRuns: 25 },
    );
  });
});
