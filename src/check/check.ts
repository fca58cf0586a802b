/**
 * check/check.ts: the model checker's front door: resolve a configuration,
 * search it (exhaustive with or without partial-order reduction, or PCT),
 * and turn the first violation into a shrunk, labelled counterexample.
 * The CLI (cli/check.ts), the tests and the benchmarks call only this.
 *
 * Determinism: the exhaustive search has no randomness; PCT draws from one
 * Prng seeded by `seed`. The same configuration and options give the same
 * executions, the same counts and the same counterexample.
 */

import { type Counterexample, counterexample, shrink } from "./counterexample.ts";
import { check_era, check_eras } from "./eras.ts";
import { explore, type SearchResult } from "./explore.ts";
import { pct } from "./pct.ts";
import { resolve } from "./runner.ts";
import { thread_kinds } from "./threads.ts";
import type { CheckConfig } from "./world.ts";

export interface CheckOptions {
  mode: "exhaustive" | "random";
  /** Partial-order reduction (exhaustive mode); default on. */
  por?: boolean;
  preemption_bound?: number | null;
  /** Executions at most: exhaustive default 1,000,000, random default 1,000. */
  budget?: number;
  /** PCT seed (random mode). */
  seed?: number;
  /** PCT bug depth (random mode); default 3. */
  depth?: number;
  /** Shrink the counterexample (default on). */
  shrink?: boolean;
}

export interface CheckReport extends SearchResult {
  config: CheckConfig;
  counterexample: Counterexample | null;
}

/** The era's standard configuration (what the tests exhaust). */
export function standard_config(era_name: string): CheckConfig {
  const era = check_era(era_name);
  if (!era) throw new Error(`unknown era '${era_name}'`);
  return {
    era: era.name,
    threads: [...era.standard.threads],
    pages: era.standard.pages,
    drop_rules: [],
    variant: null,
  };
}

export function run_check(cfg: CheckConfig, opts: CheckOptions): CheckReport {
  const res = resolve(cfg);
  const result =
    opts.mode === "random"
      ? pct(res, { seed: opts.seed ?? 1, budget: opts.budget ?? 1000, depth: opts.depth ?? 3 })
      : explore(res, {
          por: opts.por ?? true,
          preemption_bound: opts.preemption_bound ?? null,
          max_executions: opts.budget ?? 1_000_000,
        });
  let cx: Counterexample | null = null;
  if (result.schedule) {
    const schedule = (opts.shrink ?? true) ? shrink(res, result.schedule) : result.schedule;
    cx = counterexample(res, schedule);
  }
  return { ...result, config: cfg, counterexample: cx };
}

/** What `pagesim check --list` prints. */
export function list_info(): {
  eras: string[];
  threads: string[];
  rules: Record<string, string[]>;
  variants: Record<string, string[]>;
} {
  const eras = check_eras();
  return {
    eras: eras.map((e) => e.name),
    threads: thread_kinds().map((k) => k.name),
    rules: Object.fromEntries(eras.map((e) => [e.name, [...e.rules]])),
    variants: Object.fromEntries(eras.map((e) => [e.name, e.variants.map((v) => v.name)])),
  };
}
