// The movable_ops framework (2016 era) with a test driver: isolation,
// migration with driver bookkeeping, -EAGAIN retries, putback, and drivers
// that break their contract.
import { describe, expect, it } from "vitest";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { ToyMovable } from "../src/kernel/drivers/toy_movable.ts";
import { EAGAIN, EBUSY } from "../src/kernel/errno.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { list_add } from "../src/kernel/list.ts";
import {
  MIGRATE_ASYNC,
  MIGRATE_SYNC,
  MR_COMPACTION,
  migrate_pages,
  NR_MIGRATE_PASSES,
  putback_movable_pages,
} from "../src/kernel/migrate.ts";
import { lock_page, unlock_page } from "../src/kernel/mm/pagemap.ts";
import {
  __PageMovable,
  isolate_movable_page,
  MovableOpsError,
  PageMovable,
} from "../src/kernel/movable_ops.ts";
import { PAGE_MAPPING_MOVABLE, PageIsolated } from "../src/kernel/page.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { PGMIGRATE_FAIL, PGMIGRATE_SUCCESS } from "../src/kernel/vmstat_items.ts";
import { Prng } from "../src/runtime/prng.ts";
import { type Env, list_pfns, mm_env } from "./mm_helpers.ts";

function setup(nr: number): { env: Env; drv: ToyMovable; pfns: number[] } {
  const env = mm_env();
  const drv = new ToyMovable(env.mm, "toy", 64);
  const pfns: number[] = [];
  for (let s = 0; s < nr; s++) pfns.push(env.run((rt) => drv.add_page(rt, env.mm, s, 500 + s)));
  return { env, drv, pfns };
}

function isolate(env: Env, pfn: number, l: number): number {
  const rc = env.run((rt) => isolate_movable_page(rt, env.mm, pfn, 0));
  if (rc === 0) list_add(env.m.mem, pfn, l);
  return rc;
}

const pool_get = (env: Env) => (_src: number) => alloc_pages(env.m, 0, GFP_HIGHUSER_MOVABLE, 0);

describe("movable_ops", () => {
  it("movable_ops: a driver page is movable; isolation takes a reference and sets PG_isolated", () => {
    const { env, drv, pfns } = setup(2);
    const { m, mm } = env;
    const pfn = pfns[0];
    expect(__PageMovable(mm, pfn)).toBe(true);
    expect(PageMovable(env.e, mm, pfn)).toBe(true);
    expect(m.mem.mapping[pfn]).toBe(((drv.handle << 2) | PAGE_MAPPING_MOVABLE) >>> 0);
    const l = env.list();
    expect(isolate(env, pfn, l)).toBe(0);
    expect(PageIsolated(m.mem, pfn)).toBe(true);
    expect(m.mem._refcount[pfn]).toBe(2);
    expect(drv.isolated_pages).toBe(1);
    expect(list_pfns(m, drv.pages)).toEqual([pfns[1]]);
    verify_machine(m);
  });

  it("movable_ops: PG_isolated prevents a second isolation without asking the driver", () => {
    const { env, drv, pfns } = setup(1);
    const l = env.list();
    expect(isolate(env, pfns[0], l)).toBe(0);
    expect(env.run((rt) => isolate_movable_page(rt, env.mm, pfns[0], 0))).toBe(-EBUSY);
    expect(drv.calls.isolate).toBe(1);
    expect(env.m.mem._refcount[pfns[0]]).toBe(2);
    verify_machine(env.m);
  });

  it("movable_ops: isolation fails while another thread holds the page lock", () => {
    const { env, drv, pfns } = setup(1);
    const { e, mm } = env;
    const results: number[] = [];
    e.spawn("holder", function* (rt) {
      yield* lock_page(rt, mm, pfns[0]);
      yield* rt.cond_resched();
      yield* rt.cond_resched();
      yield* unlock_page(rt, mm, pfns[0]);
    });
    e.spawn("isolator", function* (rt) {
      results.push(yield* isolate_movable_page(rt, mm, pfns[0], 0));
    });
    // holder takes the lock first, then the isolator runs to completion.
    let n = 0;
    e.run((r) => (n++ < 2 ? r[0] : r[r.length - 1]), e.steps + 1000);
    expect(results).toEqual([-EBUSY]);
    expect(drv.calls.isolate).toBe(0);
    expect(env.m.mem._refcount[pfns[0]]).toBe(1);
    verify_machine(env.m);
  });

  it("movable_ops: migration moves the driver's bookkeeping and data, frees the old page", () => {
    const { env, drv, pfns } = setup(4);
    const { m, mm, run } = env;
    const l = env.list();
    for (const p of pfns) expect(isolate(env, p, l)).toBe(0);
    const rc = run((rt) =>
      migrate_pages(rt, mm, l, pool_get(env), null, MIGRATE_SYNC, MR_COMPACTION),
    );
    expect(rc).toBe(0);
    expect(m.vm_events[PGMIGRATE_SUCCESS]).toBe(4);
    expect(drv.isolated_pages).toBe(0);
    for (let s = 0; s < 4; s++) {
      const now = drv.slots[s];
      expect(now).not.toBe(pfns[s]);
      expect(m.mem.page_private[now]).toBe(s);
      expect(m.mem.content![now]).toBe(500 + s);
      expect(m.mem._refcount[now]).toBe(1);
      expect(PageIsolated(m.mem, now)).toBe(false);
      expect(PageMovable(env.e, mm, now)).toBe(true);
    }
    expect(list_pfns(m, drv.pages).sort()).toEqual(Array.from(drv.slots.slice(0, 4)).sort());
    verify_machine(m);
    for (let s = 0; s < 4; s++) expect(run((rt) => drv.remove_page(rt, mm, s))).toBe(0);
    verify_machine(m);
  });

  it("movable_ops: a driver answering -EAGAIN is retried once per pass, then fails and is put back", () => {
    const { env, drv, pfns } = setup(1);
    const { m, mm, run } = env;
    const l = env.list();
    isolate(env, pfns[0], l);
    drv.migrate_answer = -EAGAIN;
    const rc = run((rt) =>
      migrate_pages(rt, mm, l, pool_get(env), null, MIGRATE_ASYNC, MR_COMPACTION),
    );
    expect(rc).toBe(1);
    expect(drv.calls.migrate).toBe(NR_MIGRATE_PASSES);
    expect(m.vm_events[PGMIGRATE_FAIL]).toBe(1);
    expect(m.vm_events[PGMIGRATE_SUCCESS]).toBe(0);
    expect(list_pfns(m, l)).toEqual([pfns[0]]);
    verify_machine(m);
    expect(run((rt) => putback_movable_pages(rt, mm, l))).toBe(1);
    expect(drv.calls.putback).toBe(1);
    expect(PageIsolated(m.mem, pfns[0])).toBe(false);
    expect(m.mem._refcount[pfns[0]]).toBe(1);
    expect(list_pfns(m, drv.pages)).toEqual([pfns[0]]);
    verify_machine(m);
  });

  it("movable_ops: a permanent driver error puts the page back at once", () => {
    const { env, drv, pfns } = setup(1);
    const { m, mm, run } = env;
    const l = env.list();
    isolate(env, pfns[0], l);
    drv.migrate_answer = -EBUSY;
    const rc = run((rt) =>
      migrate_pages(rt, mm, l, pool_get(env), null, MIGRATE_ASYNC, MR_COMPACTION),
    );
    expect(rc).toBe(1);
    expect(drv.calls.migrate).toBe(1);
    expect(drv.calls.putback).toBe(1);
    expect(list_pfns(m, l)).toEqual([]);
    expect(PageIsolated(m.mem, pfns[0])).toBe(false);
    verify_machine(m);
  });

  it("movable_ops: migrate_page returning 5 is reported naming driver and pfn; the machine stays consistent", () => {
    const { env, drv, pfns } = setup(1);
    const { m, mm, run } = env;
    const l = env.list();
    isolate(env, pfns[0], l);
    drv.migrate_answer = 5;
    let err: unknown = null;
    try {
      run((rt) => migrate_pages(rt, mm, l, pool_get(env), null, MIGRATE_ASYNC, MR_COMPACTION));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MovableOpsError);
    expect((err as MovableOpsError).driver).toBe("toy");
    expect((err as MovableOpsError).pfn).toBe(pfns[0]);
    expect(String((err as Error).message)).toMatch(/'toy' on pfn \d+: migrate_page returned 5/);
    expect(PageIsolated(m.mem, pfns[0])).toBe(false);
    expect(list_pfns(m, drv.pages)).toEqual([pfns[0]]);
    expect(m.mem._refcount[pfns[0]]).toBe(1);
    verify_machine(m);
  });

  it("movable_ops: a driver isolating a page it does not own is reported; nothing is isolated", () => {
    const { env, pfns } = setup(1);
    const { m, mm } = env;
    const rogue = new ToyMovable(mm, "rogue", 1);
    rogue.rogue_isolate = true;
    // The rogue driver claims the toy driver's page.
    m.mem.mapping[pfns[0]] = ((rogue.handle << 2) | PAGE_MAPPING_MOVABLE) >>> 0;
    let err: unknown = null;
    try {
      env.run((rt) => isolate_movable_page(rt, mm, pfns[0], 0));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MovableOpsError);
    expect((err as MovableOpsError).driver).toBe("rogue");
    expect((err as MovableOpsError).pfn).toBe(pfns[0]);
    expect(PageIsolated(m.mem, pfns[0])).toBe(false);
    expect(m.mem._refcount[pfns[0]]).toBe(1);
    verify_machine(m);
  });
});

describe("movable_ops races", () => {
  it("movable_ops: isolate+migrate racing the driver freeing the page, 2 threads, 300 random schedules", () => {
    let migrated = 0;
    let removed = 0;
    for (let seed = 0; seed < 300; seed++) {
      const { env, drv, pfns } = setup(1);
      const { e, m, mm } = env;
      const prng = new Prng(seed);
      const l = env.list();
      let remove_rc = 1;
      e.spawn("compact", function* (rt) {
        if ((yield* isolate_movable_page(rt, mm, pfns[0], 0)) !== 0) return;
        list_add(m.mem, pfns[0], l);
        yield* migrate_pages(rt, mm, l, pool_get(env), null, MIGRATE_SYNC, MR_COMPACTION);
        yield* putback_movable_pages(rt, mm, l);
      });
      e.spawn("deflate", function* (rt) {
        remove_rc = yield* drv.remove_page(rt, mm, 0);
      });
      e.run((r) => r[prng.below(r.length)], e.steps + 100_000);
      verify_machine(m);
      expect(drv.isolated_pages).toBe(0);
      expect(list_pfns(m, l)).toEqual([]);
      if (remove_rc === 0) {
        removed++;
        expect(drv.slots[0]).toBe(-1);
        expect(list_pfns(m, drv.pages)).toEqual([]);
      } else {
        expect([-EAGAIN, -EBUSY]).toContain(remove_rc);
        const now = drv.slots[0];
        expect(m.mem.content![now]).toBe(500);
        expect(list_pfns(m, drv.pages)).toEqual([now]);
        expect(m.mem._refcount[now]).toBe(1);
        if (now !== pfns[0]) migrated++;
      }
    }
    expect(removed).toBeGreaterThan(0);
    expect(migrated).toBeGreaterThan(0);
  });
});
