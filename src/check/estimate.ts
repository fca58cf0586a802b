/**
 * check/estimate.ts: how many executions a plain depth-first search
 * (no partial-order reduction, no bound) would run, estimated without
 * running it: Knuth's estimator of the size of a backtrack tree (D. E.
 * Knuth, "Estimating the efficiency of backtrack programs", Math. Comp.
 * 1975).
 *
 * A probe is one execution with uniformly random decisions. Along it, the
 * product of the branching factors (enabled workers at each scheduling
 * point, n at each rt.choose(n)) is an unbiased estimate of the number of
 * leaves of the tree, that is of the executions plain DFS explores; the
 * mean over probes converges to it. For the standard configurations the
 * real number is far beyond what DFS can run (two threads of 30 steps
 * interleave in about 10^17 ways), which is the point of the reduction;
 * the estimate says by how much.
 *
 * The estimate is unbiased but heavy-tailed: rare deep paths carry much of
 * the count, so a few thousand probes usually come out somewhat low and
 * the sample standard error understates the spread. It is good for the
 * order of magnitude, which is what comparing with POR needs.
 *
 * Deterministic: the probes draw from a Prng seeded by the caller.
 */

import { Prng } from "../runtime/prng.ts";
import { type Resolved, Runner } from "./runner.ts";

export interface TreeEstimate {
  /** Mean of the probes' products: the estimated executions of plain DFS. */
  executions: number;
  /** Standard error of that mean (the spread of the estimate). */
  std_error: number;
  probes: number;
  /** Probes that ended in a violation (they are leaves too). */
  violations: number;
}

export function estimate_dfs_executions(
  res: Resolved,
  probes: number,
  seed: number,
  steps_max?: number,
): TreeEstimate {
  if (!(Number.isInteger(probes) && probes >= 1)) {
    throw new RangeError(`estimate: probes must be a positive integer, got ${probes}`);
  }
  const prng = new Prng(seed);
  let sum = 0;
  let sum_sq = 0;
  let violations = 0;
  for (let i = 0; i < probes; i++) {
    let product = 1;
    const runner = new Runner(res, {
      choose: (n) => {
        product *= n;
        return prng.below(n);
      },
      steps_max,
    });
    for (;;) {
      const enabled = runner.ready();
      if (!Array.isArray(enabled)) {
        if (enabled.violation) violations++;
        break;
      }
      product *= enabled.length;
      const r = runner.step(enabled[prng.below(enabled.length)]);
      if (r.violation) {
        violations++;
        break;
      }
    }
    sum += product;
    sum_sq += product * product;
  }
  const mean = sum / probes;
  const variance = probes > 1 ? Math.max(0, (sum_sq - probes * mean * mean) / (probes - 1)) : 0;
  return { executions: mean, std_error: Math.sqrt(variance / probes), probes, violations };
}
