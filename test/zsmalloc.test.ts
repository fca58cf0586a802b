// zsmalloc (src/kernel/zsmalloc.ts), the movable_ops framework's second
// client: size-class geometry, objects that read back through their handles
// after compaction moved the pages under them, deferred freeing of a zspage
// whose page is locked, and random interleavings of compaction with
// zs_malloc and zs_free that never lose an object or a page.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compact_nodes } from "../src/kernel/compaction.ts";
import { EINVAL } from "../src/kernel/errno.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { do_anonymous_page, zap_anon_page } from "../src/kernel/mm/owner.ts";
import { lock_page, unlock_page } from "../src/kernel/mm/pagemap.ts";
import { __PageMovable } from "../src/kernel/movable_ops.ts";
import { PAGE_SIZE } from "../src/kernel/page.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { NR_FREE_PAGES, PGMIGRATE_SUCCESS } from "../src/kernel/vmstat_items.ts";
import {
  calculate_zspage_chain_size,
  get_size_class_index,
  ZS_MAX_PAGES_PER_ZSPAGE,
  ZS_SIZE_CLASSES,
  ZsPool,
} from "../src/kernel/zsmalloc.ts";
import { Prng } from "../src/runtime/prng.ts";
import { type Env, mm_env, verify_mm } from "./mm_helpers.ts";

const PB = 512;

/** Free memory in whole pageblocks (order >= 9 free blocks) of the machine. */
function free_pageblocks(env: Env): number {
  let n = 0;
  for (const z of env.m.zones)
    for (let o = 9; o < z.nr_free.length; o++) n += z.nr_free[o] << (o - 9);
  return n;
}

/** Free pages of the machine (NR_FREE_PAGES over the zones). */
function free_pages_total(env: Env): number {
  return env.m.zones.reduce((s, z) => s + z.vm_stat[NR_FREE_PAGES], 0);
}

/** Check that every live handle reads back its tag and points into its zspage. */
function check_handles(env: Env, pool: ZsPool, live: Map<number, number>): void {
  for (const [h, tag] of live) expect(pool.obj_read(env.mm, h), `handle ${h}`).toBe(tag);
  for (const pfn of pool.pool_pages()) {
    expect(__PageMovable(env.mm, pfn), `pool page ${pfn} movable`).toBe(true);
    expect(env.m.mem._refcount[pfn]).toBeGreaterThanOrEqual(1);
  }
}

describe("zsmalloc", () => {
  it("zsmalloc: size classes pick the chain length that wastes least", () => {
    expect(ZS_SIZE_CLASSES).toBe(255);
    expect(get_size_class_index(1)).toBe(0);
    expect(get_size_class_index(33)).toBe(1);
    expect(get_size_class_index(4096)).toBe(254);
    // 48 bytes: one page wastes 16 bytes, three pages waste none.
    expect(calculate_zspage_chain_size(48)).toBe(3);
    // 32 bytes and 4096 bytes divide a page exactly.
    expect(calculate_zspage_chain_size(32)).toBe(1);
    expect(calculate_zspage_chain_size(4096)).toBe(1);
    fc.assert(
      fc.property(fc.integer({ min: 32, max: 4096 }), (size) => {
        const n = calculate_zspage_chain_size(size);
        const objs = Math.floor((n * PAGE_SIZE) / size);
        // A chain wastes less than one object, and a longer chain is chosen
        // only when it wastes a smaller share than a single page does.
        expect(n * PAGE_SIZE - objs * size).toBeLessThan(size);
        if (n > 1) expect(((n * PAGE_SIZE) % size) / n).toBeLessThan(PAGE_SIZE % size);
        return n >= 1 && n <= ZS_MAX_PAGES_PER_ZSPAGE;
      }),
    );
  });

  it("zsmalloc: objects read back; a bad size is -EINVAL; an emptied zspage returns its pages", () => {
    const env = mm_env();
    const pool = new ZsPool(env.mm, "zram0");
    const free0 = free_pages_total(env);
    expect(env.run((rt) => pool.zs_malloc(rt, env.mm, 0, GFP_HIGHUSER_MOVABLE))).toBe(-EINVAL);
    expect(env.run((rt) => pool.zs_malloc(rt, env.mm, 4097, GFP_HIGHUSER_MOVABLE))).toBe(-EINVAL);
    const live = new Map<number, number>();
    // 48-byte objects: 256 to a three-page zspage, some straddling pages.
    for (let i = 0; i < 300; i++) {
      const h = env.run((rt) => pool.zs_malloc(rt, env.mm, 48, GFP_HIGHUSER_MOVABLE));
      expect(h).toBeGreaterThan(0);
      pool.obj_write(env.mm, h, 7000 + i);
      live.set(h, 7000 + i);
    }
    expect(pool.stats.pages_allocated).toBe(6);
    check_handles(env, pool, live);
    for (const h of [...live.keys()]) {
      env.run((rt) => pool.zs_free(rt, env.mm, h));
      live.delete(h);
    }
    expect(pool.stats.pages_allocated).toBe(0);
    expect(pool.pool_pages()).toEqual([]);
    drain_all_pages(env.m, null);
    expect(free_pages_total(env)).toBe(free0);
    verify_mm(env);
  });

  it("zsmalloc: compaction moves pool pages and every object follows its handle", () => {
    const env = mm_env();
    const { m, mm } = env;
    const pool = new ZsPool(mm, "zram0");
    const prng = new Prng(3);
    const p = env.mm_new("p", 4096);
    const live = new Map<number, number>();
    // Interleave anonymous faults with 512-byte objects (one-page zspages
    // of 8), so that pool pages end up scattered through every pageblock.
    let v = 0;
    for (let i = 0; i < 3000; i++) {
      if (i % 4 === 3) {
        const h = env.run((rt) => pool.zs_malloc(rt, mm, 512, GFP_HIGHUSER_MOVABLE));
        if (h < 0) break;
        pool.obj_write(mm, h, 90_000 + i);
        live.set(h, 90_000 + i);
      } else if (env.run((rt) => do_anonymous_page(rt, mm, p, v, 1000 + v)) >= 0) v++;
      else break;
    }
    // Free all anon pages and most objects, keeping one object in most
    // zspages: the pool pages stay behind, scattered.
    for (let u = 0; u < v; u++) env.run((rt) => zap_anon_page(rt, mm, p, u));
    for (const h of [...live.keys()]) {
      if (prng.chance(3, 4)) {
        env.run((rt) => pool.zs_free(rt, mm, h));
        live.delete(h);
      }
    }
    drain_all_pages(m, null);
    const pages_before = pool.pool_pages();
    expect(pages_before.length).toBeGreaterThan(8);
    const blocks_with_pool = new Set(pages_before.map((pfn) => pfn & ~(PB - 1))).size;
    expect(blocks_with_pool).toBeGreaterThan(2);
    const before_blocks = free_pageblocks(env);
    const migrated_before = m.vm_events[PGMIGRATE_SUCCESS];

    env.run((rt) => compact_nodes(rt, mm));

    expect(pool.stats.pages_migrated).toBeGreaterThan(0);
    expect(m.vm_events[PGMIGRATE_SUCCESS] - migrated_before).toBeGreaterThanOrEqual(
      pool.stats.pages_migrated,
    );
    const pages_after = pool.pool_pages();
    expect(pages_after.length).toBe(pages_before.length);
    expect(pages_after).not.toEqual(pages_before);
    // The pool now sits in fewer pageblocks and more whole blocks are free.
    expect(new Set(pages_after.map((pfn) => pfn & ~(PB - 1))).size).toBeLessThan(blocks_with_pool);
    expect(free_pageblocks(env)).toBeGreaterThan(before_blocks);
    check_handles(env, pool, live);
    verify_mm(env);
  });

  it("zsmalloc: a zspage emptied while one of its pages is locked is freed later by free_work", () => {
    const env = mm_env();
    const { e, mm } = env;
    const pool = new ZsPool(mm, "zram0");
    const h = env.run((rt) => pool.zs_malloc(rt, mm, 2048, GFP_HIGHUSER_MOVABLE));
    const [pfn] = pool.location(h);
    let freed_at = -1;
    const holder = e.spawn("migrator", function* (rt) {
      yield* lock_page(rt, mm, pfn);
      yield* rt.cond_resched();
      yield* rt.cond_resched();
      yield* unlock_page(rt, mm, pfn);
    });
    const freer = e.spawn("zs_free", function* (rt) {
      yield* rt.cond_resched();
      yield* pool.zs_free(rt, mm, h);
      freed_at = pool.stats.pages_allocated;
      return;
    });
    // The holder takes the page lock, then zs_free runs to its end while
    // the lock is held, then the holder finishes.
    e.step(holder);
    e.step(holder);
    while (!e.threads[freer].done) e.step(freer);
    e.run((r) => r[0], 1000);
    expect(freed_at).toBe(pool.stats.pages_allocated);
    expect(pool.stats.zspages_deferred).toBe(1);
    expect(pool.deferred.length).toBe(1);
    expect(pool.stats.pages_allocated).toBeGreaterThan(0);
    env.run((rt) => pool.async_free_zspage(rt, mm));
    expect(pool.stats.pages_allocated).toBe(0);
    expect(mm.m.mem._refcount[pfn]).toBe(0);
    verify_mm(env);
  });

  it("zsmalloc: random interleavings of compaction, zs_malloc and zs_free keep every object", () => {
    let migrated = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1 << 30 }), (seed) => {
        const env = mm_env();
        const { e, m, mm } = env;
        const pool = new ZsPool(mm, "zram0");
        const prng = new Prng(seed);
        const live = new Map<number, number>();
        // A scattered pool: objects of mixed sizes allocated between anon
        // faults (unmapped afterwards), then three in four objects freed.
        const sizes = [48, 208, 512, 1024, 3000];
        const p = env.mm_new("p", 4096);
        // One setup thread, without the per-operation whole-state checks
        // (verify_mm checks everything at the end).
        m.debug_vm = false;
        env.run(function* (rt) {
          let v = 0;
          for (let i = 0; i < 400; i++) {
            const size = sizes[prng.below(sizes.length)];
            const h = yield* pool.zs_malloc(rt, mm, size, GFP_HIGHUSER_MOVABLE);
            pool.obj_write(mm, h, 5000 + i);
            live.set(h, 5000 + i);
            for (let k = 0; k < 6; k++) if ((yield* do_anonymous_page(rt, mm, p, v, v)) >= 0) v++;
          }
          for (let u = 0; u < v; u++) yield* zap_anon_page(rt, mm, p, u);
          for (const h of [...live.keys()]) {
            if (prng.chance(3, 4)) {
              yield* pool.zs_free(rt, mm, h);
              live.delete(h);
            }
          }
        });
        m.debug_vm = true;
        const victims = [...live.keys()].filter(() => prng.chance(1, 2));
        e.spawn("kcompactd", (rt) => compact_nodes(rt, mm));
        e.spawn("zs_free", function* (rt) {
          for (const h of victims) {
            yield* pool.zs_free(rt, mm, h);
            live.delete(h);
          }
        });
        e.spawn("zs_malloc", function* (rt) {
          for (let i = 0; i < 20; i++) {
            const h = yield* pool.zs_malloc(rt, mm, sizes[i % sizes.length], GFP_HIGHUSER_MOVABLE);
            if (h > 0) {
              pool.obj_write(mm, h, 8000 + i);
              live.set(h, 8000 + i);
            }
          }
        });
        e.run((r) => r[prng.below(r.length)], e.steps + 5_000_000);
        env.run((rt) => pool.async_free_zspage(rt, mm));
        check_handles(env, pool, live);
        // Nothing lost: the pool's pages plus free pages account for the zone.
        drain_all_pages(m, null);
        const free = free_pages_total(env);
        let used = 0;
        for (let pfn = 0; pfn < m.mem.nr_pages; pfn++) if (m.mem._refcount[pfn] > 0) used++;
        expect(used).toBe(pool.pool_pages().length);
        expect(free + used).toBe(m.ram_pages);
        verify_mm(env);
        migrated += pool.stats.pages_migrated;
      }),
      { numRuns: 12 },
    );
    // The runs did move pool pages under the other threads.
    expect(migrated).toBeGreaterThan(0);
  });
});
