// Knuth's estimator of the plain-DFS tree (check/estimate.ts) against the
// exact count where plain DFS can finish, and its determinism.
import { describe, expect, it } from "vitest";
import { estimate_dfs_executions } from "../src/check/estimate.ts";
import { explore } from "../src/check/explore.ts";
import { resolve } from "../src/check/runner.ts";
import type { CheckConfig } from "../src/check/world.ts";

const toy = (threads: string[]): CheckConfig => ({
  era: "2016-toy",
  threads,
  pages: 1,
  drop_rules: [],
  variant: null,
});

describe("estimate: the executions plain DFS would run", () => {
  it("estimate: compaction against deflation (toy, 1 page) agrees with the exact plain-DFS count (1,152 executions)", () => {
    const res = resolve(toy(["compact", "deflate"]));
    const dfs = explore(res, { por: false, preemption_bound: null, max_executions: 100_000 });
    expect(dfs.complete).toBe(true);
    // The estimator is unbiased but heavy-tailed (rare deep subtrees
    // carry much of the count): 10,000 probes over eight seeds gave 0.77x
    // to 1.29x, most a little under, and the sample standard error
    // understates the spread. An order of magnitude is what the benchmark
    // needs (plain DFS against POR differ by 10^4 and more).
    const e = estimate_dfs_executions(res, 10_000, 1);
    expect(e.violations).toBe(0);
    expect(e.std_error).toBeGreaterThan(0);
    expect(e.executions).toBeGreaterThan(dfs.executions / 1.5);
    expect(e.executions).toBeLessThan(dfs.executions * 1.5);
  });

  it.each([
    ["2016", 3000],
    ["2026", 3000],
  ])(
    "estimate: a balloon era (%s: inflation, deflation, the host thread on 1 page) agrees with the exact plain-DFS count",
    (era, probes) => {
      const res = resolve({
        era,
        threads: ["balloon_inflate", "balloon_deflate", "balloon_host"],
        pages: 1,
        drop_rules: [],
        variant: null,
      });
      const dfs = explore(res, { por: false, preemption_bound: null, max_executions: 100_000 });
      expect(dfs.complete).toBe(true);
      const e = estimate_dfs_executions(res, probes, 1);
      expect(e.executions).toBeGreaterThan(dfs.executions / 1.5);
      expect(e.executions).toBeLessThan(dfs.executions * 1.5);
    },
  );

  it("estimate: the same seed gives the same estimate; another seed another", () => {
    const res = resolve(toy(["compact", "deflate"]));
    const a = estimate_dfs_executions(res, 200, 5);
    expect(estimate_dfs_executions(res, 200, 5)).toEqual(a);
    expect(estimate_dfs_executions(res, 200, 6).executions).not.toBe(a.executions);
  });

  it("estimate: a configuration with one schedule has an estimate of exactly 1", () => {
    // One thread alone: one enabled worker at every point, no choices.
    const e = estimate_dfs_executions(resolve(toy(["compact"])), 10, 1);
    expect(e.executions).toBe(1);
    expect(e.std_error).toBe(0);
  });

  it("estimate: probes must be a positive integer", () => {
    expect(() => estimate_dfs_executions(resolve(toy(["compact"])), 0, 1)).toThrow(/probes/);
  });
});
