/**
 * bench/scenario.ts: the default scenario of `pagesim run` (an 8 GiB guest,
 * 60 simulated seconds), run in-process once: wall time, simulated seconds
 * per wall second, and the process's peak resident memory (ru_maxrss, which
 * includes everything the benchmark process did before, so run it alone:
 * `npm run bench -- scenario`).
 */

import { run_scenario } from "../src/sim/scenario_run.ts";
import { DEFAULT_SCENARIO_YAML } from "../src/workload/default_scenario.ts";
import { parse_scenario } from "../src/workload/load.ts";
import type { Benchmark, Metrics } from "./types.ts";
import { time_s } from "./types.ts";

export const scenario_benchmarks: Benchmark[] = [
  {
    name: "scenario",
    run: (): Metrics => {
      const sc = parse_scenario(DEFAULT_SCENARIO_YAML, "default");
      let end_ns = 0;
      const seconds = time_s(() => {
        end_ns = run_scenario(sc).end_ns;
      });
      return {
        default_scenario_wall_seconds: { value: seconds, unit: "s" },
        default_scenario_sim_seconds_per_wall_second: {
          value: end_ns / 1e9 / seconds,
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
