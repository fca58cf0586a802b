/**
 * sim/dist.ts: drawing the scenario's random quantities (sizes, lifetimes,
 * inter-arrival times) from the seeded PRNG. Exponential draws use
 * -mean * ln(U); V8's Math.log is the same fdlibm code on every machine, so
 * a seed gives the same numbers everywhere (results are rounded to integers).
 */

import type { Prng } from "../runtime/prng.ts";
import type { Dist } from "../workload/scenario.ts";

/** One draw, a non-negative integer (bytes or ns). */
export function draw(prng: Prng, d: Dist): number {
  switch (d.dist) {
    case "fixed":
      return d.value;
    case "uniform": {
      const lo = Math.min(d.min, d.max);
      const hi = Math.max(d.min, d.max);
      // Two 32-bit draws cover spans up to 2^53.
      const span = hi - lo + 1;
      if (span <= 0x1_0000_0000) return lo + prng.below(span);
      const r = prng.nextU32() * 0x1_0000_0000 + prng.nextU32();
      return lo + (r % span);
    }
    case "exponential": {
      // U in (0, 1]: never ln(0).
      const u = (prng.nextU32() + 1) / 0x1_0000_0000;
      return Math.round(-d.mean * Math.log(u));
    }
  }
}
