// migrate_pages() on LRU pages: owners keep their data, old pages are freed,
// counters move by exactly what the kernel would count; pins, writeback,
// allocation failure and pages freed under us.
import { describe, expect, it } from "vitest";
import { ENOMEM } from "../src/kernel/errno.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import {
  MIGRATE_ASYNC,
  MIGRATE_FORCE_AFTER_PASS,
  MIGRATE_SYNC,
  MIGRATE_SYNC_LIGHT,
  MR_COMPACTION,
  migrate_pages,
  NR_MIGRATE_PASSES,
  putback_movable_pages,
} from "../src/kernel/migrate.ts";
import {
  isolate_lru_page_to_list,
  LRU_INACTIVE_ANON,
  LRU_UNEVICTABLE,
  lru_list_pfns,
  put_page,
} from "../src/kernel/mm/lru.ts";
import {
  type AddressSpace,
  add_to_page_cache_lru,
  do_anonymous_page,
  end_page_writeback,
  mlock_page,
  mm_new_file,
  pin_user_page,
  set_page_writeback,
  unpin_user_page,
  zap_anon_page,
} from "../src/kernel/mm/owner.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { NR_MLOCK, PGMIGRATE_FAIL, PGMIGRATE_SUCCESS } from "../src/kernel/vmstat_items.ts";
import { DeadlockError } from "../src/runtime/execution.ts";
import { Prng } from "../src/runtime/prng.ts";
import { OP_ATOMIC } from "../src/runtime/runtime.ts";
import { type Env, list_pfns, mm_env, verify_mm } from "./mm_helpers.ts";

/** Fault in `n` pages of a fresh process, vpage v holding tag 1000 + v. */
function populate(env: Env, n: number): AddressSpace {
  const p = env.mm_new("p", n);
  for (let v = 0; v < n; v++) env.run((rt) => do_anonymous_page(rt, env.mm, p, v, 1000 + v));
  return p;
}

/**
 * A target allocator that counts its calls. Like compaction's free scanner
 * it hands out pages taken beforehand, so freed sources are not reused.
 */
function targets(env: Env, nr_pool = 32) {
  const pool: number[] = [];
  for (let i = 0; i < nr_pool; i++) pool.push(alloc_pages(env.m, 0, GFP_HIGHUSER_MOVABLE, 0));
  const t = {
    calls: 0,
    fail: false,
    pool,
    get: (_src: number) => {
      t.calls++;
      return t.fail ? -1 : (pool.pop() ?? -1);
    },
    put: (pfn: number) => {
      pool.push(pfn);
    },
  };
  return t;
}

function isolate_all(env: Env, pfns: number[]): number {
  const l = env.list();
  for (const pfn of pfns)
    expect(env.run((rt) => isolate_lru_page_to_list(rt, env.mm, pfn, l))).toBe(0);
  return l;
}

describe("migrate", () => {
  it("migrate: 16 anon pages move, every owner view keeps its data, old pages are freed", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const p = populate(env, 16);
    const old = Array.from(p.pages);
    const l = isolate_all(env, old);
    verify_mm(env, 16);
    const t = targets(env);
    const ok0 = m.vm_events[PGMIGRATE_SUCCESS];
    const rc = run((rt) => migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_ASYNC, MR_COMPACTION));
    expect(rc).toBe(0);
    expect(t.calls).toBe(16);
    expect(m.vm_events[PGMIGRATE_SUCCESS] - ok0).toBe(16);
    expect(m.vm_events[PGMIGRATE_FAIL]).toBe(0);
    expect(list_pfns(m, l)).toEqual([]);
    for (let v = 0; v < 16; v++) {
      expect(p.pages[v]).not.toBe(old[v]);
      expect(m.mem.content![p.pages[v]]).toBe(1000 + v);
      expect(m.mem._refcount[old[v]]).toBe(0);
      expect(m.mem._refcount[p.pages[v]]).toBe(1);
    }
    expect(lru_list_pfns(mm, 0, LRU_INACTIVE_ANON).sort()).toEqual(Array.from(p.pages).sort());
    verify_mm(env);
  });

  it("migrate: a pinned page answers -EAGAIN on all 10 passes, fails, and is put back", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const p = populate(env, 2);
    const pinned = p.pages[0];
    pin_user_page(mm, pinned);
    const l = isolate_all(env, [p.pages[0], p.pages[1]]);
    const t = targets(env);
    const rc = run((rt) => migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_SYNC, MR_COMPACTION));
    expect(rc).toBe(1);
    expect(t.calls).toBe(1 + NR_MIGRATE_PASSES);
    expect(m.vm_events[PGMIGRATE_SUCCESS]).toBe(1);
    expect(m.vm_events[PGMIGRATE_FAIL]).toBe(1);
    expect(list_pfns(m, l)).toEqual([pinned]);
    verify_mm(env, 1);
    expect(run((rt) => putback_movable_pages(rt, mm, l))).toBe(1);
    expect(p.pages[0]).toBe(pinned);
    expect(m.mem._refcount[pinned]).toBe(2);
    expect(lru_list_pfns(mm, 0, LRU_INACTIVE_ANON)).toContain(pinned);
    verify_mm(env);
    run((rt) => unpin_user_page(rt, mm, pinned));
    expect(m.mem._refcount[pinned]).toBe(1);
    verify_mm(env);
  });

  it("migrate: a page under writeback fails at once in async mode and goes straight back", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const p = populate(env, 1);
    const pfn = p.pages[0];
    set_page_writeback(mm, pfn, true);
    const l = isolate_all(env, [pfn]);
    const t = targets(env);
    expect(run((rt) => migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_ASYNC, MR_COMPACTION))).toBe(
      1,
    );
    expect(t.calls).toBe(1);
    expect(m.vm_events[PGMIGRATE_FAIL]).toBe(1);
    expect(list_pfns(m, l)).toEqual([]);
    expect(p.pages[0]).toBe(pfn);
    verify_mm(env);
    set_page_writeback(mm, pfn, false);
    run((rt) => zap_anon_page(rt, mm, p, 0));
    verify_mm(env);
  });

  it("migrate: writeback fails sync-light at once; MIGRATE_SYNC retries, then waits for end_page_writeback", () => {
    // Sync-light: -EBUSY on the first look, like async.
    {
      const env = mm_env();
      const { m, mm, run } = env;
      const p = populate(env, 1);
      set_page_writeback(mm, p.pages[0], true);
      const l = isolate_all(env, [p.pages[0]]);
      const t = targets(env);
      expect(
        run((rt) => migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_SYNC_LIGHT, MR_COMPACTION)),
      ).toBe(1);
      expect(t.calls).toBe(1);
      expect(m.vm_events[PGMIGRATE_FAIL]).toBe(1);
    }
    // MIGRATE_SYNC: the first passes answer -EAGAIN, the forced one sleeps
    // until the I/O completes on another CPU, then the page moves. Under
    // every schedule the migration succeeds and the data follows.
    const prng = new Prng(11);
    let forced = 0;
    for (let round = 0; round < 40; round++) {
      const env = mm_env();
      const { e, m, mm } = env;
      const p = populate(env, 1);
      const pfn = p.pages[0];
      set_page_writeback(mm, pfn, true);
      const l = isolate_all(env, [pfn]);
      const t = targets(env);
      let rc = -1;
      let ended = false;
      let ended_first = false;
      e.spawn("migrate", function* (rt) {
        rc = yield* migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_SYNC, MR_COMPACTION);
        ended_first = ended;
      });
      e.spawn("bio_endio", function* (rt) {
        for (let i = 0; i < prng.below(60); i++) yield* rt.cond_resched();
        yield* end_page_writeback(rt, mm, pfn);
        ended = true;
      });
      e.run((r) => r[prng.below(r.length)], e.steps + 100_000);
      expect(rc).toBe(0);
      // The page moved only after its I/O completed.
      expect(ended_first).toBe(true);
      expect(p.pages[0]).not.toBe(pfn);
      expect(m.mem.content![p.pages[0]]).toBe(1000);
      expect(m.vm_events[PGMIGRATE_SUCCESS]).toBe(1);
      // Every attempt before the forced pass that found writeback retried.
      expect(t.calls).toBeGreaterThanOrEqual(1);
      expect(t.calls).toBeLessThanOrEqual(MIGRATE_FORCE_AFTER_PASS + 2);
      if (t.calls === MIGRATE_FORCE_AFTER_PASS + 2) forced++;
      verify_mm(env);
    }
    // Some schedules reached the forced pass with the I/O still running.
    expect(forced).toBeGreaterThan(0);
    // Nobody to complete the I/O: the forced pass sleeps forever, which the
    // runtime reports as a deadlock naming what it waits for.
    const env = mm_env();
    const { e, mm } = env;
    const p = populate(env, 1);
    set_page_writeback(mm, p.pages[0], true);
    const l = isolate_all(env, [p.pages[0]]);
    const t = targets(env);
    e.spawn("migrate", (rt) =>
      (function* () {
        yield* migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_SYNC, MR_COMPACTION);
      })(),
    );
    expect(() => e.run((r) => r[0], e.steps + 100_000)).toThrow(DeadlockError);
    expect(() => e.run((r) => r[0], e.steps + 100_000)).toThrow(/waits for PG_writeback/);
  });

  it("migrate: mlocked and page cache pages move with their flags and counters", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const p = populate(env, 1);
    run((rt) => mlock_page(rt, mm, p.pages[0]));
    const f = mm_new_file(mm, "f", 2);
    run((rt) => add_to_page_cache_lru(rt, mm, f, 1, 77));
    const before = [p.pages[0], f.pages[1]];
    const l = isolate_all(env, before);
    verify_mm(env, 1, 1);
    const t = targets(env);
    expect(run((rt) => migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_SYNC, MR_COMPACTION))).toBe(
      0,
    );
    expect(m.vm_events[PGMIGRATE_SUCCESS]).toBe(2);
    expect(lru_list_pfns(mm, 0, LRU_UNEVICTABLE)).toEqual([p.pages[0]]);
    expect(m.zone_by_name("Normal").vm_stat[NR_MLOCK]).toBe(1);
    expect(m.mem.content![f.pages[1]]).toBe(77);
    expect(p.pages[0]).not.toBe(before[0]);
    expect(f.pages[1]).not.toBe(before[1]);
    verify_mm(env);
  });

  it("migrate: no target page gives -ENOMEM and leaves the pages for putback", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const p = populate(env, 3);
    const l = isolate_all(env, Array.from(p.pages));
    const t = targets(env);
    t.fail = true;
    expect(run((rt) => migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_ASYNC, MR_COMPACTION))).toBe(
      -ENOMEM,
    );
    expect(m.vm_events[PGMIGRATE_FAIL]).toBe(1);
    expect(list_pfns(m, l).length).toBe(3);
    run((rt) => putback_movable_pages(rt, mm, l));
    verify_mm(env);
  });

  it("migrate: a page its owner unmapped while isolated counts as migrated and is freed", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const p = populate(env, 1);
    const pfn = p.pages[0];
    const l = isolate_all(env, [pfn]);
    run((rt) => zap_anon_page(rt, mm, p, 0));
    const t = targets(env);
    expect(run((rt) => migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_ASYNC, MR_COMPACTION))).toBe(
      0,
    );
    expect(m.vm_events[PGMIGRATE_SUCCESS]).toBe(1);
    expect(m.mem._refcount[pfn]).toBe(0);
    verify_mm(env);
  });
});

describe("migrate races", () => {
  it("migrate: isolate+migrate racing the owner unmapping (mlocked or not), 2 threads, 300 random schedules", () => {
    const outcomes = { migrated: 0, freed_under_us: 0, not_isolated: 0 };
    for (let seed = 0; seed < 300; seed++) {
      const env = mm_env();
      const { e, m, mm } = env;
      const p = populate(env, 1);
      const pfn = p.pages[0];
      if (seed % 2) env.run((rt) => mlock_page(rt, mm, pfn));
      const t = targets(env, 4);
      const l = env.list();
      const prng = new Prng(seed);
      let rc = -1;
      e.spawn("compact", function* (rt) {
        // A pfn scanner holds no reference: take one unless the page is
        // already being freed (get_page_unless_zero), as isolation requires.
        yield* rt.access(OP_ATOMIC, pfn, "refcount");
        if (m.mem._refcount[pfn] === 0) {
          outcomes.not_isolated++;
          return;
        }
        m.mem._refcount[pfn]++;
        const iso = yield* isolate_lru_page_to_list(rt, mm, pfn, l);
        put_page(rt, mm, pfn);
        if (iso !== 0) {
          outcomes.not_isolated++;
          return;
        }
        rc = yield* migrate_pages(rt, mm, l, t.get, t.put, MIGRATE_SYNC, MR_COMPACTION);
        yield* putback_movable_pages(rt, mm, l);
      });
      e.spawn("munmap", function* (rt) {
        yield* zap_anon_page(rt, mm, p, 0);
      });
      e.run((r) => r[prng.below(r.length)], e.steps + 100_000);
      verify_mm(env);
      expect(p.pages[0]).toBe(-1);
      expect(m.mem._refcount[pfn]).toBe(0);
      expect(m.zone_by_name("Normal").vm_stat[NR_MLOCK]).toBe(0);
      if (rc === 0 && m.vm_events[PGMIGRATE_SUCCESS] === 1) {
        if (t.pool.length === 4) outcomes.freed_under_us++;
        else outcomes.migrated++;
      }
    }
    expect(outcomes.migrated).toBeGreaterThan(0);
    expect(outcomes.freed_under_us).toBeGreaterThan(0);
    expect(outcomes.not_isolated).toBeGreaterThan(0);
  });
});
