/**
 * runtime/prng.ts: the one source of randomness in pagesim.
 *
 * xoshiro128** (Blackman and Vigna), seeded through splitmix32. It is written
 * here rather than taken from a package because the simulator draws from it on
 * hot paths and it must not allocate: four 32-bit words of state, plain
 * integer arithmetic. Every random choice in the model goes through a `Prng`
 * that the caller passes in; nothing reads Math.random or a clock.
 *
 * Probabilities are integer ratios (`chance(num, den)`), so a scenario gives
 * the same result on every machine.
 */

export class Prng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  readonly seed: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
    }
    this.seed = seed;
    // splitmix32 over the low and high halves of the seed fills the state.
    let x = (seed >>> 0) ^ Math.floor(seed / 0x1_0000_0000);
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A uniform unsigned 32-bit integer. */
  nextU32(): number {
    const s0 = this.s0;
    const s1 = this.s1;
    const s2 = this.s2;
    const s3 = this.s3;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 = s2 ^ s0;
    this.s3 = s3 ^ s1;
    this.s1 = s1 ^ this.s2;
    this.s0 = s0 ^ this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform integer in [0, n), n at most 2^32, without modulo bias. */
  below(n: number): number {
    if (!(n >= 1 && n <= 0x1_0000_0000) || !Number.isInteger(n)) {
      throw new RangeError(`Prng.below: n must be an integer in [1, 2^32], got ${n}`);
    }
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % n);
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % n;
    }
  }

  /** A uniform integer in [lo, hi], both inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability num/den, both integers. */
  chance(num: number, den: number): boolean {
    return this.below(den) < num;
  }

  /** The generator's state, so a run can be resumed or compared. */
  state(): [number, number, number, number] {
    return [this.s0, this.s1, this.s2, this.s3];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
