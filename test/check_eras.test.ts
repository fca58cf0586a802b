// The model checker on every balloon era (src/check/balloon_kinds.ts,
// src/kernel/eras/): the era's standard configuration passes exhaustive
// search, and each rule with a witness yields, when dropped, a
// counterexample that breaks the named invariant and replays.
import { describe, expect, it } from "vitest";
import { run_check, standard_config } from "../src/check/check.ts";
import { replay_schedule } from "../src/check/counterexample.ts";
import { check_era } from "../src/check/eras.ts";
import { resolve } from "../src/check/runner.ts";

const BALLOON_ERAS = ["2012", "2014", "2016", "2022", "2025", "2026"];

describe.each(BALLOON_ERAS)("check: balloon era %s", (name) => {
  const era = check_era(name)!;
  it(`check ${name}: the standard configuration (compaction, deflate, inflate) passes exhaustively`, () => {
    const r = run_check(standard_config(name), { mode: "exhaustive" });
    expect(r.violation).toBeNull();
    expect(r.complete).toBe(true);
    expect(r.executions).toBeGreaterThan(100);
  }, 60_000);
  for (const rule of era.rules) {
    const w = era.witnesses[rule];
    if (!w) continue;
    it(`check ${name}: dropping ${rule} breaks ${w.invariant} and the counterexample replays`, () => {
      const cfg = { era: name, threads: w.threads, pages: w.pages, variant: null };
      const clean = run_check({ ...cfg, drop_rules: [] }, { mode: "exhaustive" });
      expect(clean.violation).toBeNull();
      expect(clean.complete).toBe(true);
      const bad = run_check({ ...cfg, drop_rules: [rule] }, { mode: "exhaustive" });
      expect(bad.violation?.invariant).toBe(w.invariant);
      const cx = bad.counterexample!;
      const again = replay_schedule(resolve({ ...cfg, drop_rules: [rule] }), cx.schedule);
      expect(again.violation).toEqual(cx.violation);
    }, 60_000);
  }
});
