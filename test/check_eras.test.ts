// The model checker on every balloon era (src/check/balloon_kinds.ts,
// src/kernel/eras/): the era's standard configuration passes exhaustive
// search, and each rule with a witness yields, when dropped, a
// counterexample that breaks the named invariant and replays.
import { describe, expect, it } from "vitest";
import { DISCARDED, HOST_REQ_DISCARD } from "../src/check/balloon_kinds.ts";
import { run_check, standard_config } from "../src/check/check.ts";
import { replay_schedule } from "../src/check/counterexample.ts";
import { check_era } from "../src/check/eras.ts";
import { explore } from "../src/check/explore.ts";
import { Runner, resolve, type Violation } from "../src/check/runner.ts";
import type { World } from "../src/check/world.ts";

const BALLOON_ERAS = ["2012", "2014", "2016", "2022", "2025", "2026"];

describe.each(BALLOON_ERAS)("check: balloon era %s", (name) => {
  const era = check_era(name)!;
  it(`check ${name}: the standard configuration (${standard_config(name).threads.join(", ")}) passes exhaustively`, () => {
    const r = run_check(standard_config(name), { mode: "exhaustive" });
    expect(r.violation).toBeNull();
    expect(r.complete).toBe(true);
    expect(r.executions).toBeGreaterThan(100);
  }, 120_000);
  for (const rule of era.rules) {
    const w = era.witnesses[rule];
    // Rules without an exhaustive witness: test/eras.test.ts DROPS covers
    // every rule (random witness, or null with the README's evidence).
    if (!w) continue;
    const within =
      w.preemption_bound === undefined ? "" : ` within ${w.preemption_bound} preemptions`;
    it(`check ${name}: dropping ${rule} breaks ${w.invariant}${within} and the counterexample replays`, () => {
      const cfg = { era: name, threads: w.threads, pages: w.pages, variant: null };
      // A bounded witness explores the schedules with at most that many preemptions.
      const opts = { mode: "exhaustive" as const, preemption_bound: w.preemption_bound ?? null };
      const clean = run_check({ ...cfg, drop_rules: [] }, opts);
      expect(clean.violation).toBeNull();
      expect(clean.complete).toBe(w.preemption_bound === undefined);
      const bad = run_check({ ...cfg, drop_rules: [rule] }, opts);
      expect(bad.violation?.invariant).toBe(w.invariant);
      const cx = bad.counterexample!;
      const again = replay_schedule(resolve({ ...cfg, drop_rules: [rule] }), cx.schedule);
      expect(again.violation).toEqual(cx.violation);
    }, 60_000);
  }
});

describe("check: 2012's own dequeue race", () => {
  it("check 2012: compaction against deflation on one page breaks with every rule in force, exhaustively; from 2014 the same configuration is clean", () => {
    const cfg = {
      threads: ["balloon_compact", "balloon_deflate"],
      pages: 1,
      drop_rules: [],
      variant: null,
    };
    const old = run_check({ era: "2012", ...cfg }, { mode: "exhaustive" });
    // balloon_page_dequeue() read the page off the list before compaction
    // isolated it, and deletes it again from the migration list it is on now.
    expect(old.violation?.invariant).toBe("list-links-intact");
    const again = replay_schedule(resolve({ era: "2012", ...cfg }), old.counterexample!.schedule);
    expect(again.violation).toEqual(old.counterexample!.violation);
    const fixed = run_check({ era: "2014", ...cfg }, { mode: "exhaustive" });
    expect(fixed.violation).toBeNull();
    expect(fixed.complete).toBe(true);
  }, 60_000);
});

describe("check: recorded writes equal compared writes", () => {
  // check/reads.ts records a step's writes in the array proxies; the runner
  // used to compare every array after every step. Same footprints, same
  // exploration, execution for execution.
  it.each(BALLOON_ERAS)(
    "check %s: DPOR explores the same tree either way",
    (era) => {
      const res = resolve({
        era,
        threads: ["balloon_compact", "balloon_deflate"],
        pages: 1,
        drop_rules: [],
        variant: null,
      });
      const a = explore(res, { por: true, preemption_bound: null, max_executions: 400 });
      const b = explore(res, {
        por: true,
        preemption_bound: null,
        max_executions: 400,
        diff_writes: true,
      });
      expect(b.executions).toBe(a.executions);
      expect(b.steps).toBe(a.steps);
      expect(b.sleep_blocked).toBe(a.sleep_blocked);
      expect(b.schedule).toEqual(a.schedule);
    },
    60_000,
  );
});

describe("check: DPOR against plain DFS on balloon eras", () => {
  // Configurations plain DFS finishes (or breaks) within a few hundred
  // executions; the reduced search must reach the same verdict.
  const cases: [string, string[], string[]][] = [
    ["2012", ["balloon_deflate", "balloon_putback"], []],
    ["2012", ["balloon_compact", "balloon_putback"], ["recheck-count-under-page-lock"]],
    ["2014", ["balloon_deflate", "balloon_putback"], ["dequeue-skips-isolated"]],
    ["2014", ["balloon_deflate", "balloon_putback"], ["clear-private-flag-with-list-removal"]],
    ["2014", ["balloon_deflate", "balloon_inflate"], []],
    ["2016", ["balloon_deflate", "balloon_inflate"], []],
    ["2016", ["balloon_putback", "balloon_putback"], ["recheck-movable-under-page-lock"]],
    ["2025", ["balloon_compact", "balloon_compact"], ["recheck-isolated-under-page-lock"]],
    ["2026", ["balloon_inflate", "balloon_inflate"], []],
    ["2026", ["balloon_deflate", "balloon_inflate"], ["pages-lock-held"]],
  ];
  it.each(cases)(
    "check %s: %j without %j: DPOR and plain DFS agree",
    (era, threads, drop) => {
      const res = resolve({ era, threads, pages: 1, drop_rules: drop, variant: null });
      const dfs = explore(res, { por: false, preemption_bound: null, max_executions: 3000 });
      const por = explore(res, { por: true, preemption_bound: null, max_executions: 100_000 });
      // The verdict of a finished plain search is the truth.
      expect(dfs.violation !== null || dfs.complete).toBe(true);
      expect(por.violation !== null).toBe(dfs.violation !== null);
      if (dfs.violation === null) {
        expect(por.complete).toBe(true);
        expect(por.executions).toBeLessThanOrEqual(dfs.executions);
      }
    },
    60_000,
  );
});

describe("check: dequeue-trylock-page, the deadlock the trylock prevents", () => {
  const D = ["balloon_compact", "balloon_deflate"];
  const cfg = (era: string, debug_atomic_sleep?: boolean) => ({
    era,
    threads: D,
    pages: 1,
    drop_rules: ["dequeue-trylock-page"],
    variant: null,
    ...(debug_atomic_sleep === undefined ? {} : { debug_atomic_sleep }),
  });

  it.each(["2016", "2022", "2025"])(
    "check %s: without the trylock, dequeue's lock_page under pages_lock sleeps with interrupts disabled; with that report off, compaction against deflation deadlocks, with the wait-for cycle, and the counterexample replays",
    (era) => {
      const splat = run_check(cfg(era), { mode: "exhaustive" });
      expect(splat.violation?.invariant).toBe("lock-bug");
      expect(splat.violation?.message).toBe(
        "BUG: sleeping function called from invalid context: balloon_deflate0 calls mutex_lock(page lock) with interrupts disabled (holding vb->balloon_lock, b_dev_info->pages_lock)",
      );
      const r = run_check(cfg(era, false), { mode: "exhaustive" });
      expect(r.violation?.invariant).toBe("deadlock");
      // Compaction holds the page lock (isolate_movable_page's trylock) and
      // spins on pages_lock; deflation holds pages_lock and sleeps on the page.
      expect(r.violation?.message).toBe(
        "deadlock: balloon_compact0 waits for b_dev_info->pages_lock held by balloon_deflate0; balloon_deflate0 waits for page lock held by balloon_compact0 (interrupts disabled)",
      );
      const cx = r.counterexample!;
      expect(replay_schedule(resolve(cfg(era, false)), cx.schedule).violation).toEqual(
        cx.violation,
      );
      // With the rule the same configuration is clean, report on or off.
      const ok = run_check({ ...cfg(era, false), drop_rules: [] }, { mode: "exhaustive" });
      expect(ok.violation).toBeNull();
      expect(ok.complete).toBe(true);
    },
    60_000,
  );

  it("check 2016: without the trylock, a schedule that does not deadlock (compaction first, then deflation) is a lockdep inversion", () => {
    const runner = new Runner(resolve(cfg("2016", false)), { choose: () => 0 });
    const [compact, deflate] = runner.w.workers();
    let end: Violation | null = null;
    for (let i = 0; i < 1000; i++) {
      const ready = runner.ready();
      if (!Array.isArray(ready)) {
        end = ready.violation;
        break;
      }
      const r = runner.step(ready.includes(compact) ? compact : deflate);
      if (r.violation) {
        end = r.violation;
        break;
      }
    }
    expect(end?.invariant).toBe("lockdep");
    expect(end?.message).toMatch(
      /^lockdep: possible circular locking dependency: balloon_deflate0 takes page lock while holding b_dev_info->pages_lock, but page lock -> b_dev_info->pages_lock was recorded before$/,
    );
  });
});

describe("check: page freeing (balloon_free) against compaction and inflation", () => {
  it.each(BALLOON_ERAS)(
    "check %s: a process page freed while compaction scans its pfn and the balloon inflates: exhaustively clean",
    (era) => {
      const cfg = {
        era,
        threads: ["balloon_free", "balloon_compact", "balloon_inflate"],
        pages: 1,
        drop_rules: [],
        variant: null,
      };
      const r = run_check(cfg, { mode: "exhaustive" });
      expect(r.violation).toBeNull();
      expect(r.complete).toBe(true);
      expect(r.executions).toBeGreaterThan(100);
      // One schedule by hand: the free first, then compaction scans the freed pfn.
      const runner = new Runner(resolve(cfg), { choose: () => 0 });
      const freed = runner.w.processes[0].pages[0];
      expect(runner.w.scan_pfns).toContain(freed);
      const [free, compact, inflate] = runner.w.workers();
      let end: Violation | null = null;
      for (let i = 0; i < 2000; i++) {
        const ready = runner.ready();
        if (!Array.isArray(ready)) {
          end = ready.violation;
          break;
        }
        const pick = [free, compact, inflate].find((t) => ready.includes(t))!;
        const s = runner.step(pick);
        if (s.violation) {
          end = s.violation;
          break;
        }
      }
      expect(end).toBeNull();
      const mem = runner.w.m.mem;
      expect(mem._refcount[freed]).toBe(0);
      expect(runner.w.processes[0].pages[0]).toBe(-1);
    },
    60_000,
  );
});

describe("check: the host acknowledging as a thread (balloon_host)", () => {
  it("check 2016: an inflation posts its request and sleeps until the host thread acknowledges it", () => {
    const cfg = {
      era: "2016",
      threads: ["balloon_inflate", "balloon_host"],
      pages: 1,
      drop_rules: [],
      variant: null,
    };
    const runner = new Runner(resolve(cfg), { choose: () => 0 });
    const [inflate, host] = runner.w.workers();
    const content = runner.w.m.mem.content!;
    const before = Array.from(content);
    // The inflation runs alone until it waits for the ack.
    for (let i = 0; i < 50 && runner.w.e.enabled(inflate); i++)
      expect(runner.step(inflate).violation).toBeNull();
    expect(runner.w.e.enabled(inflate)).toBe(false);
    const asked = content.findIndex((c, p) => c !== before[p]);
    expect(content[asked]).toBe(HOST_REQ_DISCARD);
    // The host starts, wakes for the request and discards the frame (three
    // steps: start, the wait, the write); the inflation resumes.
    for (let i = 0; i < 3; i++) expect(runner.step(host).violation).toBeNull();
    expect(content[asked]).toBe(DISCARDED);
    expect(runner.w.e.enabled(inflate)).toBe(true);
    let end: Violation | null = null;
    for (let i = 0; i < 100; i++) {
      const ready = runner.ready();
      if (!Array.isArray(ready)) {
        end = ready.violation;
        break;
      }
      expect(runner.step(ready[0]).violation).toBeNull();
    }
    expect(end).toBeNull();
    expect(runner.finished()).toBe(true);
  });

  it.each(BALLOON_ERAS)(
    "check %s: inflation, deflation and the host thread on one page: DPOR and plain DFS exhaust clean",
    (era) => {
      const res = resolve({
        era,
        threads: ["balloon_inflate", "balloon_deflate", "balloon_host"],
        pages: 1,
        drop_rules: [],
        variant: null,
      });
      const r = explore(res, { por: false, preemption_bound: null, max_executions: 5000 });
      expect(r.violation).toBeNull();
      expect(r.complete).toBe(true);
      expect(r.executions).toBeGreaterThan(100);
      const por = explore(res, { por: true, preemption_bound: null, max_executions: 5000 });
      expect(por.violation).toBeNull();
      expect(por.complete).toBe(true);
      expect(por.executions).toBeLessThan(r.executions);
    },
    60_000,
  );

  // With the host thread, DPOR once reached 1 of the 2 final states of plain
  // DFS: the deflater's acquisition of balloon_lock raced only with the
  // host's ack its step read (inflate held the lock across its wait), not
  // with inflate's acquisition. explore.ts now races an acquisition on its
  // own as well.
  it("check 2012: with the host thread DPOR reaches every final state plain DFS reaches", () => {
    const finals = (por: boolean) => {
      const seen = new Set<string>();
      const res = resolve({
        era: "2012",
        threads: ["balloon_inflate", "balloon_deflate", "balloon_host"],
        pages: 1,
        drop_rules: [],
        variant: null,
      });
      const record = {
        name: "record-final-state",
        text: "records the final state",
        when: "end" as const,
        check: (w: World) => {
          const m = w.m.mem;
          seen.add(
            [m.content!, m._refcount, m.lru_next, m.page_private]
              .map((a) => Array.from(a.slice(0, 8)).join(","))
              .join("|"),
          );
          return null;
        },
      };
      const r = explore(
        { ...res, invariants: [...res.invariants, record] },
        { por, preemption_bound: null, max_executions: 5000 },
      );
      expect(r.complete).toBe(true);
      return seen;
    };
    const dfs = finals(false);
    expect(dfs.size).toBe(2);
    expect(finals(true)).toEqual(dfs);
  });
});
