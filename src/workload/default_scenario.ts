/**
 * workload/default_scenario.ts: the scenario `pagesim run` runs without a
 * file: the seeds' story on an 8 GiB q35 guest with 2 CPUs, 28 simulated
 * seconds. A database's memory is interleaved page by page between two
 * processes; a JVM takes every 2 MiB block left for its THP heap; one
 * database process exits and leaves holes in every pageblock; the host
 * inflates the balloon, which can only take those holes; the other process
 * exits; compact_memory; late THP faults show what compaction won back.
 * `pagesim run` runs it with balloon compaction on (as written) and off
 * (BALLOON_COMPACTION_VARIANTS) and shows both. The same text is examples/default.yaml.
 */

import type { Scenario } from "./scenario.ts";

export const DEFAULT_SCENARIO_YAML = `# The built-in scenario of \`pagesim run\` (also examples/default.yaml).
# \`pagesim run\` without a file runs it twice, with balloon compaction on
# (as written) and off, and shows the two side by side.
name: default
description: >-
  The seeds' story on an 8 GiB guest. A database faults in 2 GiB page by
  page, interleaved between two processes, and a JVM takes every 2 MiB block
  left for its THP heap. At 5 s one database process exits, leaving holes in
  every pageblock of the database's memory; at 6 s the host inflates the
  balloon by 768 MiB, and the balloon can only take those holes. At 10 s the
  other process exits: 1.25 GiB are free, but a balloon page sits in nearly
  every 2 MiB block, and THP faults at 12 s fail. At 15 s someone writes
  compact_memory. With balloon compaction the balloon pages migrate and the
  THP faults at 22 s succeed; without it they stay put and most fail.
seed: 1
duration: 28s
sample_interval: 1s
machine: { memory: 8GiB, layout: q35, cpus: 2 }
# No watermark boosting: pagesim has no kswapd to take a boost back.
kernel: { balloon_compaction: true, watermark_boost_factor: 0 }
balloons: [{ name: balloon0, features: [stats_vq] }]
workload:
  - { type: cache_grow, at: 0s, file: libs, size: 512MiB }
  - { type: alloc_anon, at: 1s, process: db, size: 2GiB, pattern: random, ways: 2 }
  - { type: thp, at: 3s, process: jvm, count: 4096, fallback: false }
  - { type: free_anon, at: 5s, process: db/0 }
  - { type: balloon_target, at: 6s, size: 768MiB }
  - { type: free_anon, at: 10s, process: db/1 }
  - { type: thp, at: 12s, process: early_thp, count: 128, fallback: false }
  - { type: compact_memory, at: 15s }
  - { type: thp, at: 22s, process: late_thp, count: 512, fallback: false }
`;

/** A variant of a scenario run side by side with it: a label and a change. */
export interface ScenarioVariant {
  label: string;
  apply: (sc: Scenario) => void;
}

/** The default's two runs: balloon compaction on (as written) and off. */
export const BALLOON_COMPACTION_VARIANTS: readonly ScenarioVariant[] = [
  {
    label: "balloon_compaction=on",
    apply: (sc) => {
      sc.kernel.balloon_compaction = true;
    },
  },
  {
    label: "balloon_compaction=off",
    apply: (sc) => {
      sc.kernel.balloon_compaction = false;
    },
  },
];
