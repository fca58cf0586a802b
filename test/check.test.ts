// The model checker on the 2016 movable_ops protocol: the standard
// configuration passes; each named rule, dropped, yields a replayable
// counterexample breaking the expected invariant; a broken driver is caught;
// POR agrees with plain DFS on fewer executions; PCT is deterministic.
import { types } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { list_info, run_check, standard_config } from "../src/check/check.ts";
import {
  counterexample,
  format_timeline,
  parse_trace,
  replay_schedule,
  shrink,
  trace_json,
} from "../src/check/counterexample.ts";
import { check_era, register_check_era } from "../src/check/eras.ts";
import { explore } from "../src/check/explore.ts";
import { census } from "../src/check/invariants.ts";
import { ConfigError, Runner, resolve } from "../src/check/runner.ts";
import { register_thread_kind, toy_driver } from "../src/check/threads.ts";
import type { CheckConfig, World } from "../src/check/world.ts";
import { list_del } from "../src/kernel/list.ts";
import { put_page } from "../src/kernel/mm/lru.ts";
import { lock_page, unlock_page } from "../src/kernel/mm/pagemap.ts";
import { __ClearPageMovable } from "../src/kernel/movable_ops.ts";
import { type Lock, OP_ATOMIC, OP_READ, OP_WRITE } from "../src/runtime/runtime.ts";

const cfg = (threads: string[], pages: number, drop_rules: string[] = []): CheckConfig => ({
  era: "2016-toy",
  threads,
  pages,
  drop_rules,
  variant: null,
});

// A driver that forgets its lock: it takes its page back without pages_lock
// and without the page lock, racing compaction's isolation.
register_thread_kind({
  name: "test_deflate_nolock",
  text: "test only: deflate without pages_lock or the page lock",
  prepare: (w) => void toy_driver(w),
  body: (w) =>
    function* (rt) {
      const drv = toy_driver(w);
      const mem = w.m.mem;
      // It announces its lockless look (the harness rule), but takes no lock.
      yield* rt.access(OP_READ, drv.slots[0], "PG_isolated");
      const pfn = drv.slots[0];
      if (pfn < 0 || w.mm.era.PageIsolated(mem, pfn)) return;
      list_del(mem, pfn);
      drv.slots[0] = -1;
      mem.page_private[pfn] = 0;
      __ClearPageMovable(w.mm, pfn);
      yield* rt.access(OP_ATOMIC, pfn, "refcount");
      put_page(rt, w.mm, pfn);
    },
});
// Takes the driver's pages_lock, then a page lock: the reverse of the order
// enqueue records (page lock, then pages_lock).
register_thread_kind({
  name: "test_inverted",
  text: "test only: pages_lock, then the page lock",
  prepare: (w) => void toy_driver(w),
  body: (w) =>
    function* (rt) {
      const drv = toy_driver(w);
      yield* rt.spin_lock(drv.pages_lock);
      yield* lock_page(rt, w.mm, drv.slots[0]);
      yield* unlock_page(rt, w.mm, drv.slots[0]);
      yield* rt.spin_unlock(drv.pages_lock);
    },
});
// Returns with the page locked.
register_thread_kind({
  name: "test_leaks_lock",
  text: "test only: locks a page and never unlocks it",
  prepare: (w) => void toy_driver(w),
  body: (w) =>
    function* (rt) {
      yield* lock_page(rt, w.mm, toy_driver(w).slots[0]);
    },
});
// Yields a step that names nothing, then reads the driver's first page in
// the plain code after it: the read is its footprint all the same.
register_thread_kind({
  name: "test_peek",
  text: "test only: an unannounced read of a page",
  prepare: (w) => void toy_driver(w),
  body: (w) =>
    function* (rt) {
      yield* rt.cond_resched();
      const pfn = toy_driver(w).slots[0];
      w.ext.set("peeked", w.m.mem.flags[pfn]);
      yield* rt.cond_resched();
    },
});
// Forgets a page in the driver's JavaScript table without touching the
// page: bookkeeping the footprints cannot see.
register_thread_kind({
  name: "test_hide_slot",
  text: "test only: changes the driver's slot table and no page",
  prepare: (w) => void toy_driver(w),
  body: (w) =>
    function* (rt) {
      yield* rt.cond_resched();
      toy_driver(w).slots[0] = -1;
      yield* rt.cond_resched();
    },
});
// Three threads for the reduction's handling of a blocking acquisition
// whose step also reads (test/check.test.ts "a blocking acquisition"): the
// holder takes a mutex and, holding it, posts a request in a free frame's
// content, waits for the acker's answer and marks the frame done; the
// taker takes the mutex and reads the frame in the plain code of that step
// (0 if it came first, 3 if after the holder).
const FRAME = 15;
const test_mutex = (w: World) => {
  let l = w.ext.get("test_mutex") as Lock | undefined;
  if (!l) {
    l = w.e.new_lock("test_mutex", "mutex");
    w.ext.set("test_mutex", l);
  }
  return l;
};
register_thread_kind({
  name: "test_holder",
  text: "test only: holds a mutex while it waits for the acker",
  prepare: (w) => void test_mutex(w),
  body: (w) =>
    function* (rt) {
      yield* rt.mutex_lock(test_mutex(w));
      yield* rt.access(OP_WRITE, FRAME, "content");
      w.m.mem.content![FRAME] = 1;
      yield* rt.wait_event(FRAME, "content", () => w.m.mem.content![FRAME] === 2);
      yield* rt.access(OP_WRITE, FRAME, "content");
      w.m.mem.content![FRAME] = 3;
      yield* rt.mutex_unlock(test_mutex(w));
    },
});
register_thread_kind({
  name: "test_acker",
  text: "test only: answers the holder's request",
  body: (w) =>
    function* (rt) {
      yield* rt.wait_event(FRAME, "content", () => w.m.mem.content![FRAME] === 1);
      yield* rt.access(OP_WRITE, FRAME, "content");
      w.m.mem.content![FRAME] = 2;
    },
});
register_thread_kind({
  name: "test_taker",
  text: "test only: takes the mutex and reads the frame under it",
  prepare: (w) => void test_mutex(w),
  body: (w) =>
    function* (rt) {
      yield* rt.mutex_lock(test_mutex(w));
      w.ext.set("taker_saw", w.m.mem.content![FRAME]);
      yield* rt.mutex_unlock(test_mutex(w));
    },
});
const base = check_era("2016-toy")!;
register_check_era({
  ...base,
  name: "test-2016-nolock",
  rules: [],
  witnesses: {},
  threads: [
    ...base.threads,
    "test_deflate_nolock",
    "test_inverted",
    "test_leaks_lock",
    "test_peek",
    "test_hide_slot",
    "test_holder",
    "test_acker",
    "test_taker",
  ],
});

describe("check: exhaustive", () => {
  it("check: the 2016 standard configuration (compact, deflate, inflate on 2 pages) has no violation", () => {
    const c = standard_config("2016-toy");
    expect(c.threads).toEqual(["compact", "deflate", "inflate"]);
    expect(c.pages).toBe(2);
    const r = run_check(c, { mode: "exhaustive" });
    expect(r.violation).toBeNull();
    expect(r.complete).toBe(true);
    expect(r.executions).toBeGreaterThan(100);
    expect(r.steps).toBeGreaterThan(r.executions * 10);
  });

  it("check: LRU isolation against munmap of the page, 2 threads, no violation", () => {
    const r = run_check(cfg(["isolate_lru", "free"], 1), { mode: "exhaustive" });
    expect(r.violation).toBeNull();
    expect(r.complete).toBe(true);
  });

  it("check: rt.choose() is enumerated: putback alone runs once per choice", () => {
    const r = run_check(cfg(["putback"], 1), { mode: "exhaustive" });
    expect(r.executions).toBe(2);
    expect(r.complete).toBe(true);
  });

  for (const rule of base.rules) {
    const wit = base.witnesses[rule];
    it(`check: dropping ${rule} yields a counterexample breaking ${wit.invariant}, and it replays`, () => {
      // With the rule the witness configuration is clean ...
      expect(run_check(cfg(wit.threads, wit.pages), { mode: "exhaustive" }).violation).toBeNull();
      // ... without it the checker finds the race.
      const c = cfg(wit.threads, wit.pages, [rule]);
      const r = run_check(c, { mode: "exhaustive" });
      expect(r.violation?.invariant).toBe(wit.invariant);
      const cx = r.counterexample!;
      expect(cx.violation.invariant).toBe(wit.invariant);
      expect(cx.steps.length).toBeGreaterThan(0);
      expect(cx.context_switches).toBeGreaterThanOrEqual(1);
      // The saved trace replays step by step to the same failure.
      const t = parse_trace(JSON.stringify(trace_json(cx)));
      const again = replay_schedule(resolve(t.config), t.schedule);
      expect(again.violation).toEqual(cx.violation);
      expect(again.threads.length).toBe(cx.steps.length);
    });
  }

  it("check: a counterexample through an rt.choose() decision replays with its choice", () => {
    const c = cfg(["putback", "deflate"], 1, ["dequeue-skips-isolated"]);
    const r = run_check(c, { mode: "exhaustive" });
    expect(r.violation).not.toBeNull();
    const cx = r.counterexample!;
    const res = resolve(c);
    const again = replay_schedule(res, cx.schedule);
    expect(again.violation).toEqual(cx.violation);
    // The putback thread made its choice: one decision more than thread steps.
    expect(again.choices.length).toBe(1);
    expect(cx.schedule.length).toBe(again.threads.length + 1);
  });

  it("check: the rule witnesses cover every droppable rule", () => {
    expect(Object.keys(base.witnesses).sort()).toEqual([...base.rules].sort());
  });

  it("check: a driver that forgets its locks is caught against compaction", () => {
    const c: CheckConfig = {
      ...cfg(["compact", "test_deflate_nolock"], 1),
      era: "test-2016-nolock",
    };
    const r = run_check(c, { mode: "exhaustive" });
    const dfs = run_check(c, { mode: "exhaustive", por: false });
    expect(dfs.violation?.invariant).toBe(r.violation?.invariant);
    expect(r.violation).not.toBeNull();
    expect(["kernel-bug", "owned-page-placed", "isolated-once", "balanced-at-end"]).toContain(
      r.violation!.invariant,
    );
    const timeline = r.counterexample!.steps.map((s) => s.thread);
    expect(new Set(timeline)).toEqual(new Set(["compact0", "test_deflate_nolock0"]));
  });

  it("check: a lock-order inversion is reported by lockdep even in a run that does not deadlock", () => {
    const c: CheckConfig = { ...cfg(["test_inverted"], 1), era: "test-2016-nolock" };
    const r = run_check(c, { mode: "exhaustive" });
    expect(r.violation?.invariant).toBe("lockdep");
    expect(r.violation?.message).toMatch(/takes page lock while holding toy->pages_lock/);
  });

  it("check: a thread finishing with a page lock held is a lock bug, whatever runs beside it", () => {
    const alone: CheckConfig = { ...cfg(["test_leaks_lock"], 1), era: "test-2016-nolock" };
    expect(run_check(alone, { mode: "exhaustive" }).violation?.invariant).toBe("lock-bug");
    const c: CheckConfig = {
      ...cfg(["test_leaks_lock", "inflate", "putback"], 1),
      era: "test-2016-nolock",
    };
    const r = run_check(c, { mode: "exhaustive" });
    expect(r.violation?.invariant).toBe("lock-bug");
  });

  it("check: shrinking removes a retry loop: 2014 without dequeue-skips-isolated goes from 42 steps to the 12 the race needs", () => {
    // The search finds the race after compaction has retried its migration
    // six times against the deflating thread's balloon_lock. The race itself
    // needs compaction's isolation (8 steps) and deflation's start, lock,
    // trylock and pages_lock (4 steps), nothing more.
    const c: CheckConfig = {
      era: "2014",
      threads: ["balloon_compact", "balloon_deflate", "balloon_inflate"],
      pages: 1,
      drop_rules: ["dequeue-skips-isolated"],
      variant: null,
    };
    const res = resolve(c);
    const raw = run_check(c, { mode: "exhaustive", shrink: false }).counterexample!;
    const small = counterexample(res, shrink(res, raw.schedule));
    expect(raw.steps.length).toBeGreaterThan(30);
    expect(small.violation.invariant).toBe(raw.violation.invariant);
    expect(small.steps.length).toBeLessThanOrEqual(12);
    // The shrunk schedule replays strictly to the same failure.
    expect(replay_schedule(res, small.schedule).violation?.invariant).toBe("list-links-intact");
    // The timeline names what each step touches in full.
    const text = format_timeline(small);
    expect(text).toContain("lock b_dev_info->pages_lock");
    expect(text).toContain("trylock page lock of pfn 0");
    expect(text).not.toContain("~\n");
  });

  it("check: a blocking acquisition whose step also reads is raced on its own: POR reaches every final state plain DFS reaches", () => {
    // The taker's acquisition races the holder's (who goes first decides
    // what the taker reads); its step's read of the frame races the
    // acker's write, while the holder holds the mutex, so it cannot run
    // there. Racing only the latest dependent step missed the first race.
    const finals = (por: boolean) => {
      const seen = new Set<string>();
      const res = resolve({
        ...cfg(["test_holder", "test_taker", "test_acker"], 1),
        era: "test-2016-nolock",
      });
      const record = {
        name: "record-final-state",
        text: "test only: records what the taker saw",
        when: "end" as const,
        check: (w: World) => {
          seen.add(String(w.ext.get("taker_saw")));
          return null;
        },
      };
      const r = explore(
        { ...res, invariants: [...res.invariants, record] },
        { por, preemption_bound: null, max_executions: 10_000 },
      );
      expect(r.violation).toBeNull();
      expect(r.complete).toBe(true);
      return seen;
    };
    const dfs = finals(false);
    expect(dfs).toEqual(new Set(["0", "3"]));
    expect(finals(true)).toEqual(dfs);
  });

  it("check: a preemption bound of 0 explores fewer schedules and misses a race that needs a preemption", () => {
    const c = cfg(["compact", "deflate"], 1, ["recheck-movable-under-page-lock"]);
    const bounded = run_check(c, { mode: "exhaustive", por: false, preemption_bound: 0 });
    expect(bounded.violation).toBeNull();
    expect(bounded.complete).toBe(false);
    const two = run_check(c, { mode: "exhaustive", por: false, preemption_bound: 2 });
    expect(two.violation?.invariant).toBe("kernel-bug");
  });

  it("check: configuration errors name what is wrong", () => {
    expect(() => resolve(cfg(["nope"], 1))).toThrow(ConfigError);
    expect(() => resolve(cfg(["compact"], 1, ["no-such-rule"]))).toThrow(
      /unknown rule 'no-such-rule'/,
    );
    expect(() => resolve({ ...cfg(["compact"], 1), era: "1999" })).toThrow(/unknown era/);
    expect(() => resolve({ ...cfg(["compact"], 1), variant: "v" })).toThrow(/unknown variant/);
  });
});

describe("check: partial-order reduction", () => {
  it("check: a step that changes a driver's bookkeeping but writes no page is reported (the footprints' assumption)", () => {
    const res = resolve({ ...cfg(["test_hide_slot"], 1), era: "test-2016-nolock" });
    const r = new Runner(res, { choose: () => 0, footprints: true });
    const [t] = r.enabled();
    expect(r.step(t).violation).toBeNull(); // start
    expect(r.step(t).violation).toMatchObject({ invariant: "checker-footprint" });
  });

  it("check: a step's footprint holds the pages its plain code read, announced or not (check/reads.ts)", () => {
    const res = resolve({ ...cfg(["test_peek"], 1), era: "test-2016-nolock" });
    const r = new Runner(res, { choose: () => 0, footprints: true });
    const pfn = toy_driver(r.w).slots[0];
    const [t] = r.enabled();
    const fps = [];
    while (!r.finished()) fps.push(r.step(t).fp);
    // start, cond_resched (then the read), cond_resched
    expect(fps.map((f) => f.r.includes(pfn))).toEqual([false, true, false]);
    expect(fps.every((f) => !f.w.includes(pfn))).toBe(true);
    expect(r.w.ext.get("peeked")).toBe(r.w.m.mem.flags[pfn]);
    // Between steps (invariants, setup) the arrays are the raw ones.
    expect(types.isProxy(r.w.m.mem.flags)).toBe(false);
    // Without footprints nothing is recorded.
    const plain = new Runner(res, { choose: () => 0 });
    expect(plain.step(plain.enabled()[0]).fp.r).toEqual([]);
  });

  const configs: CheckConfig[] = [
    cfg(["compact", "deflate"], 1),
    cfg(["compact", "deflate"], 1, ["recheck-movable-under-page-lock"]),
    cfg(["compact", "deflate"], 1, ["dequeue-skips-isolated"]),
    cfg(["putback", "deflate"], 1),
    cfg(["putback", "deflate"], 1, ["dequeue-skips-isolated"]),
    cfg(["isolate_lru", "free"], 1),
    cfg(["deflate", "inflate"], 1),
    cfg(["inflate", "inflate"], 1),
  ];
  for (const c of configs) {
    it(`check: POR and plain DFS agree on ${c.threads.join("+")}${c.drop_rules.length ? ` without ${c.drop_rules}` : ""}, POR with fewer executions`, () => {
      const res = resolve(c);
      const por = explore(res, { por: true, preemption_bound: null, max_executions: 1e6 });
      const dfs = explore(res, { por: false, preemption_bound: null, max_executions: 1e6 });
      expect(por.violation?.invariant ?? null).toBe(dfs.violation?.invariant ?? null);
      if (!dfs.violation) {
        expect(por.complete && dfs.complete).toBe(true);
        expect(por.executions).toBeLessThan(dfs.executions);
      }
    });
  }

  it("check: property: POR finds a violation exactly when plain DFS does (2 threads, 1 page, any rules dropped)", () => {
    const kinds = ["compact", "putback", "deflate", "inflate"];
    fc.assert(
      fc.property(
        fc.constantFrom(...kinds),
        fc.constantFrom(...kinds),
        fc.subarray(base.rules as string[]),
        (a, b, drop) => {
          const scanners = ["compact", "putback"];
          if (scanners.includes(a) && scanners.includes(b)) return; // too large for plain DFS here
          const res = resolve(cfg([a, b], 1, drop));
          const por = explore(res, { por: true, preemption_bound: null, max_executions: 1e6 });
          const dfs = explore(res, { por: false, preemption_bound: null, max_executions: 5000 });
          if (!dfs.violation && !dfs.complete) return; // inconclusive within the budget
          expect(por.violation !== null).toBe(dfs.violation !== null);
        },
      ),
      { numRuns: 10, seed: 5 },
    );
  });
});

describe("check: random (PCT)", () => {
  it("check: the same seed gives the same exploration; PCT finds a dropped rule", () => {
    const c = cfg(["compact", "deflate", "inflate"], 1, ["recheck-movable-under-page-lock"]);
    const a = run_check(c, { mode: "random", seed: 11, budget: 3000 });
    const b = run_check(c, { mode: "random", seed: 11, budget: 3000 });
    expect(a.violation?.invariant).toBe("kernel-bug");
    expect(b.executions).toBe(a.executions);
    expect(b.steps).toBe(a.steps);
    expect(b.schedule).toEqual(a.schedule);
    expect(b.counterexample!.schedule).toEqual(a.counterexample!.schedule);
    const others = [12, 13, 14].map((seed) => run_check(c, { mode: "random", seed, budget: 3000 }));
    expect(others.some((o) => o.executions !== a.executions || o.steps !== a.steps)).toBe(true);
  });

  it("check: PCT on the intact standard configuration stays within its budget and finds nothing", () => {
    const r = run_check(standard_config("2016-toy"), { mode: "random", seed: 1, budget: 200 });
    expect(r.violation).toBeNull();
    expect(r.executions).toBe(200);
    expect(r.complete).toBe(false);
  });
});

describe("check: invariants", () => {
  it("check: the census reports a broken list link, and the step invariant names it", () => {
    const res = resolve(cfg(["deflate"], 2));
    const runner = new Runner(res, { choose: () => 0 });
    const w = runner.w;
    expect(census(w).links).toBeNull();
    const pfn = w.drivers[0].slots[0];
    w.m.mem.lru_prev[pfn] = 15; // corrupt the driver list
    expect(census(w).links).toMatch(/list at slot \d+/);
  });

  it("check: --list data names the eras, kinds and rules", () => {
    const info = list_info();
    expect(info.eras).toContain("2016");
    expect(info.threads).toEqual(
      expect.arrayContaining(["compact", "putback", "deflate", "inflate", "isolate_lru", "free"]),
    );
    expect(info.rules["2016-toy"]).toEqual([
      "recheck-movable-under-page-lock",
      "recheck-isolated-under-page-lock",
      "dequeue-skips-isolated",
    ]);
    expect(info.variants["2016-toy"]).toEqual([]);
    expect(info.eras).toEqual(
      expect.arrayContaining(["2012", "2014", "2016", "2022", "2025", "2026"]),
    );
    expect(info.variants["2016"]).toEqual(["E19-double-list-del"]);
  });
});
