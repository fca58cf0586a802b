/**
 * bench/run.ts: `npm run bench`. Runs every benchmark, prints the figures
 * and writes bench/results/latest.json: { metric: { value, unit } }.
 * Benchmarks are measurements, not tests: nothing here asserts on time.
 *
 *   npm run bench                 all benchmarks
 *   npm run bench -- buddy        only those whose name contains "buddy"
 */

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { balloon_benchmarks } from "./balloon.ts";
import { buddy_benchmarks } from "./buddy.ts";
import { check_benchmarks } from "./check.ts";
import { compaction_benchmarks } from "./compaction.ts";
import { scenario_benchmarks } from "./scenario.ts";
import type { Benchmark, Metrics } from "./types.ts";

const all: Benchmark[] = [
  ...buddy_benchmarks,
  ...compaction_benchmarks,
  ...balloon_benchmarks,
  ...scenario_benchmarks,
  ...check_benchmarks,
];
const filter = process.argv[2] ?? "";
const out = join(dirname(fileURLToPath(import.meta.url)), "results", "latest.json");

// A filtered run updates its metrics in the last results; a full run
// starts afresh, so metrics no benchmark produces any more disappear.
let results: Metrics = {};
if (filter) {
  try {
    results = JSON.parse(readFileSync(out, "utf8")) as Metrics;
  } catch {
    results = {};
  }
}

for (const b of all) {
  if (filter && !b.name.includes(filter)) continue;
  process.stdout.write(`${b.name} ...\n`);
  const metrics = b.run();
  for (const [name, { value, unit }] of Object.entries(metrics)) {
    process.stdout.write(`  ${name.padEnd(40)} ${format(value).padStart(14)} ${unit}\n`);
    results[name] = { value, unit };
  }
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`wrote ${out}\n`);

function format(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return v.toPrecision(4);
}
