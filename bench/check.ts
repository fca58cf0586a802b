/**
 * bench/check.ts: the model checker on each era's standard configuration
 * (exhausted with and without partial-order reduction) and on each droppable
 * rule's witness configuration (time to the first counterexample).
 *
 * Metrics, per era E:
 *   check_E_executions               executions to exhaust the standard configuration (DPOR + sleep sets)
 *   check_E_executions_without_por   executions of the same search without POR (plain DFS).
 *                                    Plain DFS runs ~10^7 to 10^13 executions here, hours to
 *                                    centuries, so the value is estimated: Knuth's estimator
 *                                    over PROBES random probes (check/estimate.ts; the unit
 *                                    gives the standard error). A DFS that finishes within
 *                                    NO_POR_CAP executions gives the exact count instead.
 *   check_E_pair_executions, check_E_pair_executions_without_por   the same two counts on
 *                                    the first two kinds (compaction against deflation) on 1 page
 *   check_E_seconds                  wall time of the POR search (best of three)
 *   check_E_executions_per_sec, check_E_steps_per_sec   of that search
 *   check_first_counterexample_seconds_E_R   for each rule R: wall time until the exhaustive
 *                                    search (POR) of R's witness configuration with R dropped
 *                                    finds its first violation (before shrinking); for a
 *                                    rule found only by randomized search
 *                                    (BALLOON_RANDOM_WITNESSES), the time of that search
 */

import { BALLOON_RANDOM_WITNESSES } from "../src/check/balloon_kinds.ts";
import { standard_config } from "../src/check/check.ts";
import { check_eras } from "../src/check/eras.ts";
import { estimate_dfs_executions } from "../src/check/estimate.ts";
import { explore } from "../src/check/explore.ts";
import { pct } from "../src/check/pct.ts";
import { resolve } from "../src/check/runner.ts";
import type { Benchmark, Metrics } from "./types.ts";
import { best_of, time_s } from "./types.ts";

const NO_POR_CAP = Number(process.env.PAGESIM_BENCH_NO_POR_CAP ?? 5_000);
const PROBES = Number(process.env.PAGESIM_BENCH_PROBES ?? 10_000);

/** Executions of plain DFS on `res`: exact if it finishes within the cap, else estimated. */
function without_por(res: ReturnType<typeof resolve>, what: string) {
  const dfs = explore(res, { por: false, preemption_bound: null, max_executions: NO_POR_CAP });
  if (dfs.complete) return { value: dfs.executions, unit: `executions${what} (exact)` };
  const e = estimate_dfs_executions(res, PROBES, 1);
  const pct = Math.round((100 * e.std_error) / e.executions);
  return {
    value: e.executions,
    unit:
      `executions${what} (estimated, Knuth's estimator over ${PROBES} random probes, ` +
      `standard error ${pct}%, good for the order of magnitude; plain DFS did not finish within ${NO_POR_CAP})`,
  };
}

function era_metrics(era: string): Metrics {
  const res = resolve(standard_config(era));
  const out: Metrics = {};
  let executions = 0;
  let steps = 0;
  const seconds = best_of(3, () =>
    time_s(() => {
      const r = explore(res, { por: true, preemption_bound: null, max_executions: 1e9 });
      if (!r.complete || r.violation)
        throw new Error(`era ${era}: the standard configuration did not pass`);
      executions = r.executions;
      steps = r.steps;
    }),
  );
  out[`check_${era}_executions`] = { value: executions, unit: "executions" };
  out[`check_${era}_seconds`] = { value: seconds, unit: "s" };
  out[`check_${era}_executions_per_sec`] = { value: executions / seconds, unit: "executions/s" };
  out[`check_${era}_steps_per_sec`] = { value: steps / seconds, unit: "steps/s" };
  out[`check_${era}_executions_without_por`] = without_por(res, "");
  // The first two kinds of the standard configuration (compaction against
  // deflation), on one page.
  const PAIR = standard_config(era).threads.slice(0, 2);
  const pair = resolve({ ...standard_config(era), threads: PAIR, pages: 1 });
  const p_por = explore(pair, { por: true, preemption_bound: null, max_executions: 1e9 });
  const what = ` (${PAIR.join(",")}, 1 page)`;
  out[`check_${era}_pair_executions`] = { value: p_por.executions, unit: `executions${what}` };
  out[`check_${era}_pair_executions_without_por`] = without_por(pair, what);
  return out;
}

/** A witness configuration with its rule dropped. */
function witness_resolved(era: string, w: { threads: string[]; pages: number }, rule: string) {
  return resolve({ era, threads: w.threads, pages: w.pages, drop_rules: [rule], variant: null });
}

function rule_metrics(era_name: string): Metrics {
  const out: Metrics = {};
  const era = check_eras().find((e) => e.name === era_name)!;
  for (const rule of era.rules) {
    const w = era.witnesses[rule];
    // A rule without an exhaustive witness (README "Eras") has no time to first counterexample.
    if (!w) continue;
    const res = witness_resolved(era_name, w, rule);
    const bound = w.preemption_bound ?? null;
    const s = best_of(3, () =>
      time_s(() => {
        const r = explore(res, { por: true, preemption_bound: bound, max_executions: 1e9 });
        if (!r.violation) throw new Error(`${era_name}/${rule}: no counterexample`);
      }),
    );
    out[`check_first_counterexample_seconds_${era_name}_${rule}`] = {
      value: s,
      unit:
        bound === null
          ? "s"
          : `s (exhaustive within ${bound} preemptions, ${w.threads.join(",")} on ${w.pages} pages)`,
    };
  }
  // Rules found only by randomized search: PCT as test/eras.test.ts runs it.
  for (const [rule, w] of Object.entries(BALLOON_RANDOM_WITNESSES[era_name] ?? {})) {
    const res = witness_resolved(era_name, w, rule);
    let how = "";
    const s = best_of(3, () =>
      time_s(() => {
        for (let seed = 1; seed <= 6; seed++) {
          for (const depth of [3, 2, 1]) {
            const r = pct(res, { seed, budget: 300, depth });
            if (r.violation) {
              how = `seed ${seed}, depth ${depth}`;
              return;
            }
          }
        }
        throw new Error(`${era_name}/${rule}: no counterexample`);
      }),
    );
    out[`check_first_counterexample_seconds_${era_name}_${rule}`] = {
      value: s,
      unit: `s (random search, PCT ${how}, ${w.threads.join(",")} on ${w.pages} pages)`,
    };
  }
  return out;
}

export const check_benchmarks: Benchmark[] = check_eras()
  .filter((e) => !e.name.startsWith("test-"))
  .map((e) => ({
    name: `check_${e.name}`,
    run: (): Metrics => ({ ...era_metrics(e.name), ...rule_metrics(e.name) }),
  }));
