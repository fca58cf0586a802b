/**
 * bench/scenario.ts: the default scenario of `pagesim run` (an 8 GiB guest,
 * 28 simulated seconds) as `npm start` runs it: twice, with balloon
 * compaction on and off, in-process: wall time of both runs, simulated
 * seconds per wall second over both, and the process's peak resident
 * memory (ru_maxrss, which includes everything the benchmark process did
 * before, so run it alone: `npm run bench -- scenario`).
 */

import { run_scenario } from "../src/sim/scenario_run.ts";
import {
  BALLOON_COMPACTION_VARIANTS,
  DEFAULT_SCENARIO_YAML,
} from "../src/workload/default_scenario.ts";
import { parse_scenario } from "../src/workload/load.ts";
import type { Benchmark, Metrics } from "./types.ts";
import { time_s } from "./types.ts";

export const scenario_benchmarks: Benchmark[] = [
  {
    name: "scenario",
    run: (): Metrics => {
      let sim_ns = 0;
      const seconds = time_s(() => {
        for (const v of BALLOON_COMPACTION_VARIANTS) {
          const sc = parse_scenario(DEFAULT_SCENARIO_YAML, "default");
          v.apply(sc);
          sim_ns += run_scenario(sc).end_ns;
        }
      });
      return {
        default_scenario_wall_seconds: { value: seconds, unit: "s" },
        default_scenario_sim_seconds_per_wall_second: {
          value: sim_ns / 1e9 / seconds,
          unit: "sim s/s",
        },
        default_scenario_peak_rss_mib: {
          value: process.resourceUsage().maxRSS / 1024,
          unit: "MiB",
        },
      };
    },
  },
];
