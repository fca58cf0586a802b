/**
 * check/pct.ts: randomized exploration for configurations too large to
 * exhaust: PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010).
 * Each execution gives the workers random distinct priorities (d and up)
 * and picks d-1 change points among the first k steps; the highest-priority
 * enabled worker always runs, and at the i-th change point the running
 * worker drops to priority i (below every initial one). A bug of depth d
 * is found with probability at least 1/(n k^(d-1)) per execution.
 * rt.choose() values are drawn uniformly.
 *
 * Determinism: all randomness comes from one Prng seeded with --seed; the
 * same seed, configuration and budget explore the same executions in the
 * same order. k starts at 64 and grows to the longest execution seen.
 */

import { Prng } from "../runtime/prng.ts";
import type { SearchResult } from "./explore.ts";
import { type Resolved, Runner } from "./runner.ts";

export interface PctOptions {
  seed: number;
  /** Executions to run. */
  budget: number;
  /** Bug depth d (priority change points + 1). */
  depth: number;
  steps_max?: number;
}

export function pct(res: Resolved, opts: PctOptions): SearchResult {
  const prng = new Prng(opts.seed);
  const out: SearchResult = {
    mode: "random",
    por: false,
    executions: 0,
    sleep_blocked: 0,
    steps: 0,
    complete: false,
    violation: null,
    schedule: null,
  };
  let k = 64;
  for (let n = 0; n < opts.budget; n++) {
    const schedule: number[] = [];
    const runner = new Runner(res, {
      choose: (c) => {
        const v = prng.below(c);
        schedule.push(v);
        return v;
      },
      steps_max: opts.steps_max,
    });
    const workers = runner.w.workers();
    // Random distinct priorities depth .. depth + n - 1 (Fisher-Yates).
    const prio = new Map<number, number>();
    const order = workers.slice();
    for (let i = order.length - 1; i > 0; i--) {
      const j = prng.below(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    order.forEach((t, i) => {
      prio.set(t, opts.depth + i);
    });
    const change = new Map<number, number>();
    for (let i = 1; i < opts.depth; i++) change.set(prng.range(1, k), opts.depth - i);
    let step = 0;
    let violation = null;
    for (;;) {
      const enabled = runner.ready();
      if (!Array.isArray(enabled)) {
        violation = enabled.violation;
        break;
      }
      let t = enabled[0];
      for (const x of enabled) if ((prio.get(x) ?? 0) > (prio.get(t) ?? 0)) t = x;
      schedule.push(t);
      step++;
      const r = runner.step(t);
      const low = change.get(step);
      if (low !== undefined) prio.set(t, low);
      if (r.violation) {
        violation = r.violation;
        break;
      }
    }
    k = Math.max(k, step);
    out.executions++;
    out.steps += runner.steps;
    if (violation) {
      out.violation = violation;
      out.schedule = schedule;
      return out;
    }
  }
  return out;
}
