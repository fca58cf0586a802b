/** bench/types.ts: the shape of a benchmark and of its results. */
export type Metrics = Record<string, { value: number; unit: string }>;

export interface Benchmark {
  name: string;
  run: () => Metrics;
}

/** Wall time of `fn` in seconds (benchmarks only; the model never reads a clock). */
export function time_s(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** The best of `rounds` runs: the least disturbed by the rest of the machine. */
export function best_of(rounds: number, fn: () => number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < rounds; i++) best = Math.min(best, fn());
  return best;
}
