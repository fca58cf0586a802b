/**
 * Property: random faults, unmaps, pins, mlocks, driver pages and migrations
 * (fast-check, pinned seed) keep the whole machine consistent (buddy, LRU
 * lists and counters, owners' reverse map) and every owner's data intact.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ToyMovable } from "../src/kernel/drivers/toy_movable.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { list_add } from "../src/kernel/list.ts";
import {
  MIGRATE_ASYNC,
  MIGRATE_SYNC,
  MR_COMPACTION,
  migrate_pages,
  putback_movable_pages,
} from "../src/kernel/migrate.ts";
import { isolate_lru_page_to_list } from "../src/kernel/mm/lru.ts";
import {
  do_anonymous_page,
  mlock_page,
  pin_user_page,
  unpin_user_page,
  zap_anon_page,
} from "../src/kernel/mm/owner.ts";
import { isolate_movable_page } from "../src/kernel/movable_ops.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { PGMIGRATE_FAIL, PGMIGRATE_SUCCESS } from "../src/kernel/vmstat_items.ts";
import { list_pfns, mm_env, verify_mm } from "./mm_helpers.ts";

const NR_PROCS = 2;
const NR_VPAGES = 12;
const NR_SLOTS = 6;

/** Pages migrated and failed over all runs (seed 42: 100 and 1), to show both outcomes happen. */
const totals = { ok: 0, fail: 0 };

type Op =
  | { k: "fault"; p: number; v: number }
  | { k: "zap"; p: number; v: number }
  | { k: "pin"; p: number; v: number }
  | { k: "unpin" }
  | { k: "mlock"; p: number; v: number }
  | { k: "drv_add"; s: number }
  | { k: "drv_del"; s: number }
  | { k: "migrate"; mask: number; slots: number; sync: boolean };

const pv = {
  p: fc.integer({ min: 0, max: NR_PROCS - 1 }),
  v: fc.integer({ min: 0, max: NR_VPAGES - 1 }),
};
const op_arb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant("fault" as const), ...pv }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("zap" as const), ...pv }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("pin" as const), ...pv }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("unpin" as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("mlock" as const), ...pv }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("drv_add" as const),
      s: fc.integer({ min: 0, max: NR_SLOTS - 1 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("drv_del" as const),
      s: fc.integer({ min: 0, max: NR_SLOTS - 1 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("migrate" as const),
      mask: fc.integer({ min: 0, max: (1 << NR_VPAGES) - 1 }),
      slots: fc.integer({ min: 0, max: (1 << NR_SLOTS) - 1 }),
      sync: fc.boolean(),
    }),
  },
);

function run_ops(ops: Op[]): void {
  const env = mm_env();
  const { m, mm, run } = env;
  const procs = [env.mm_new("p0", NR_VPAGES), env.mm_new("p1", NR_VPAGES)];
  const drv = new ToyMovable(mm, "toy", NR_SLOTS);
  const tags = new Map<string, number>();
  const pins: number[] = [];
  let next_tag = 1;
  for (const op of ops) {
    switch (op.k) {
      case "fault": {
        const tag = next_tag++;
        if (run((rt) => do_anonymous_page(rt, mm, procs[op.p], op.v, tag)) >= 0)
          tags.set(`${op.p}:${op.v}`, tag);
        break;
      }
      case "zap":
        if (run((rt) => zap_anon_page(rt, mm, procs[op.p], op.v)) === 0)
          tags.delete(`${op.p}:${op.v}`);
        break;
      case "pin": {
        const pfn = procs[op.p].pages[op.v];
        if (pfn >= 0) {
          pin_user_page(mm, pfn);
          pins.push(pfn);
        }
        break;
      }
      case "unpin": {
        const pfn = pins.pop();
        if (pfn !== undefined) run((rt) => unpin_user_page(rt, mm, pfn));
        break;
      }
      case "mlock": {
        const pfn = procs[op.p].pages[op.v];
        if (pfn >= 0) run((rt) => mlock_page(rt, mm, pfn));
        break;
      }
      case "drv_add": {
        const tag = next_tag++;
        if (drv.slots[op.s] < 0 && run((rt) => drv.add_page(rt, mm, op.s, tag)) >= 0)
          tags.set(`d:${op.s}`, tag);
        break;
      }
      case "drv_del":
        if (run((rt) => drv.remove_page(rt, mm, op.s)) === 0) tags.delete(`d:${op.s}`);
        break;
      case "migrate":
        migrate_some(env, procs, drv, op);
        break;
    }
    verify_mm(env);
    for (const [key, tag] of tags) {
      const [a, b] = key.split(":");
      const pfn = a === "d" ? drv.slots[Number(b)] : procs[Number(a)].pages[Number(b)];
      expect(m.mem.content![pfn], `data of ${key} at pfn ${pfn}`).toBe(tag);
    }
  }
}

function migrate_some(
  env: ReturnType<typeof mm_env>,
  procs: ReturnType<ReturnType<typeof mm_env>["mm_new"]>[],
  drv: ToyMovable,
  op: { mask: number; slots: number; sync: boolean },
): void {
  const { m, mm, run } = env;
  const l = env.list();
  let isolated = 0;
  for (const as of procs) {
    for (let v = 0; v < NR_VPAGES; v++) {
      const pfn = as.pages[v];
      if (pfn < 0 || !(op.mask & (1 << v))) continue;
      if (run((rt) => isolate_lru_page_to_list(rt, mm, pfn, l)) === 0) isolated++;
    }
  }
  for (let s = 0; s < NR_SLOTS; s++) {
    const pfn = drv.slots[s];
    if (pfn < 0 || !(op.slots & (1 << s))) continue;
    if (run((rt) => isolate_movable_page(rt, mm, pfn, 0)) === 0) {
      list_add(m.mem, pfn, l);
      isolated++;
    }
  }
  const ok0 = m.vm_events[PGMIGRATE_SUCCESS];
  const fail0 = m.vm_events[PGMIGRATE_FAIL];
  const get = (_src: number) => alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
  const mode = op.sync ? MIGRATE_SYNC : MIGRATE_ASYNC;
  const rc = run((rt) => migrate_pages(rt, mm, l, get, null, mode, MR_COMPACTION));
  expect(rc).toBeGreaterThanOrEqual(0);
  // Every isolated page is counted once, as migrated or failed.
  expect(m.vm_events[PGMIGRATE_SUCCESS] - ok0 + (m.vm_events[PGMIGRATE_FAIL] - fail0)).toBe(
    isolated,
  );
  expect(m.vm_events[PGMIGRATE_FAIL] - fail0).toBe(rc);
  totals.ok += m.vm_events[PGMIGRATE_SUCCESS] - ok0;
  totals.fail += m.vm_events[PGMIGRATE_FAIL] - fail0;
  run((rt) => putback_movable_pages(rt, mm, l));
  expect(list_pfns(m, l)).toEqual([]);
  expect(drv.isolated_pages).toBe(0);
}

describe("migrate property", () => {
  it("migrate property: random faults, unmaps, pins, driver pages and migrations keep the machine and every owner's data intact", () => {
    fc.assert(
      fc.property(fc.array(op_arb, { minLength: 1, maxLength: 60 }), (ops) => {
        run_ops(ops);
      }),
      { seed: 42, numRuns: 150 },
    );
    expect(totals.ok).toBeGreaterThan(50);
    expect(totals.fail).toBeGreaterThan(0);
  });
});
