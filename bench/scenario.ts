/**
 * bench/scenario.ts: the default scenario of `pagesim run` (an 8 GiB guest,
 * 28 simulated seconds) as `npm start` runs it: twice, with balloon
 * compaction on and off. Wall time of both runs, simulated seconds per
 * wall second over both, and peak resident memory.
 *
 * The runs happen in a child process (this bundle again, with
 * PAGESIM_BENCH_CHILD=default_scenario in its environment: the child runs
 * the scenario at load time, prints its figures as JSON and exits before
 * the suite starts), so the peak RSS (the child's ru_maxrss at its end) is
 * Node's own baseline plus the scenario, and nothing the other benchmarks
 * of the suite allocated before. `npm run bench -- default_scenario` runs
 * only this one.
 */

import { spawnSync } from "node:child_process";
import { run_scenario } from "../src/sim/scenario_run.ts";
import {
  BALLOON_COMPACTION_VARIANTS,
  DEFAULT_SCENARIO_YAML,
} from "../src/workload/default_scenario.ts";
import { parse_scenario } from "../src/workload/load.ts";
import type { Benchmark, Metrics } from "./types.ts";
import { time_s } from "./types.ts";

const CHILD_ENV = "PAGESIM_BENCH_CHILD";
const CHILD_NAME = "default_scenario";

interface ChildFigures {
  wall_s: number;
  sim_ns: number;
  max_rss_kib: number;
}

/** The child's work: both runs, then its figures on stdout. */
function child_main(): void {
  let sim_ns = 0;
  const wall_s = time_s(() => {
    for (const v of BALLOON_COMPACTION_VARIANTS) {
      const sc = parse_scenario(DEFAULT_SCENARIO_YAML, "default");
      v.apply(sc);
      sim_ns += run_scenario(sc).end_ns;
    }
  });
  const figures: ChildFigures = { wall_s, sim_ns, max_rss_kib: process.resourceUsage().maxRSS };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
  process.exit(0);
}

if (process.env[CHILD_ENV] === CHILD_NAME) child_main();

/** Run the default scenario in a fresh process and read its figures. */
function in_child(): ChildFigures {
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]], {
    env: { ...process.env, [CHILD_ENV]: CHILD_NAME },
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`default_scenario child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as ChildFigures;
}

export const scenario_benchmarks: Benchmark[] = [
  {
    name: "default_scenario",
    run: (): Metrics => {
      const f = in_child();
      return {
        default_scenario_wall_seconds: { value: f.wall_s, unit: "s" },
        default_scenario_sim_seconds_per_wall_second: {
          value: f.sim_ns / 1e9 / f.wall_s,
          unit: "sim s/s",
        },
        default_scenario_peak_rss_mib: { value: f.max_rss_kib / 1024, unit: "MiB" },
      };
    },
  },
];
