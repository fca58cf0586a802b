/**
 * workload/default_scenario.ts: the scenario `pagesim run` runs without a
 * file: an 8 GiB q35 guest with 2 CPUs for 60 simulated seconds.
 * Processes come and go, the page cache fills, slab-like kernel memory
 * churns and leaves survivors in many pageblocks, a THP-hungry service asks
 * for huge pages every few seconds, and at 40 s someone writes
 * compact_memory, after which a batch of THP faults shows what compaction
 * won back. (With the balloon model, the host will inflate the guest's
 * balloon here too.) The same text is examples/default.yaml.
 */

export const DEFAULT_SCENARIO_YAML = `# The built-in scenario of \`pagesim run\` (also examples/default.yaml).
name: default
description: >-
  An 8 GiB guest: processes come and go, the page cache fills, slab churn
  leaves unmovable survivors scattered over memory and a THP-hungry service
  keeps asking for huge pages. From 18 s memory is short and THP faults fall
  back; at 40 s someone writes compact_memory, which brings back 2 MiB blocks
  for the THP faults that follow.
seed: 1
duration: 60s
sample_interval: 1s
machine: { memory: 8GiB, layout: q35, cpus: 2 }
workload:
  - { type: cache_grow, at: 0s, file: libs, size: 1GiB }
  - type: processes
    name: app
    every: { dist: exponential, mean: 1s }
    lifetime: { dist: uniform, min: 5s, max: 40s }
    size: { dist: uniform, min: 16MiB, max: 256MiB }
    pattern: random
  - type: slab_mix
    every: 250ms
    size: { dist: uniform, min: 4MiB, max: 32MiB }
    keep_percent: 20
    lifetime: { dist: uniform, min: 10s, max: 120s }
  - { type: kernel_alloc, at: 10s, name: dentries, size: 512MiB, keep_percent: 5 }
  - { type: cache_grow, at: 15s, file: data, size: 4GiB }
  - { type: cache_shrink, at: 30s, file: data, size: 2GiB }
  - { type: thp_hungry, from: 5s, every: 2s, count: 64, hold: 20s }
  - { type: compact_memory, at: 40s }
  - { type: thp, at: 45s, process: late_thp, count: 256 }
`;
