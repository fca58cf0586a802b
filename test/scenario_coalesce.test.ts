// The scenario runner in coalesce mode (runtime/execution.ts): a lone
// guest's execution takes a thread's uncontended steps without scheduler
// round trips. The run must be the same run: digest, steps, counters,
// timeline and balloons equal with and without it (RunHooks.coalesce), for
// small scenarios with a balloon, compaction, THP faults and processes, in
// every era; several guests never coalesce, and give the same result too.
import { describe, expect, it } from "vitest";
import { run_scenario, type ScenarioResult } from "../src/sim/scenario_run.ts";
import { parse_scenario } from "../src/workload/load.ts";
import { ERAS } from "../src/workload/scenario.ts";

/** Everything a run reports that the schedule could change. */
function observable(r: ScenarioResult) {
  return {
    digest: r.digest,
    steps: r.steps,
    end_ns: r.end_ns,
    vmstat: r.vmstat,
    thp: r.thp,
    compaction: r.compaction,
    balloons: r.balloons,
    timeline: r.timeline,
    buddyinfo: r.buddyinfo,
    lock_waits: r.lock_waits,
    compact_runs: r.compact_runs,
    guests: r.guests,
  };
}

const BALLOON = `
name: coalesce_balloon
duration: 3s
sample_interval: 250ms
machine: { memory: 64MiB, cpus: 2, layout: normal }
kernel: { watermark_boost_factor: 0, compaction_proactiveness: 20, thp_defrag: always }
balloons: [{ name: b0, features: [stats_vq] }]
workload:
  - { type: cache_grow, at: 0s, file: libs, size: 4MiB }
  - { type: alloc_anon, at: 0s, process: db, size: 32MiB, pattern: random, ways: 2 }
  - { type: thp, at: 100ms, process: jvm, count: 64, fallback: false }
  - { type: free_anon, at: 200ms, process: db/0 }
  - { type: balloon_target, at: 300ms, size: 8MiB }
  - { type: free_anon, at: 2200ms, process: db/1 }
  - type: processes
    every: 150ms
    lifetime: { dist: uniform, min: 100ms, max: 600ms }
    size: { dist: uniform, min: 256KiB, max: 2MiB }
  - { type: thp, at: 1s, process: heap, count: 6, fallback: true }
  - { type: compact_memory, at: 1500ms }
  - { type: balloon_target, at: 2s, size: 2MiB }
  - { type: thp, at: 2500ms, process: late, count: 4, fallback: true }
`;

const GUESTS = `
name: coalesce_guests
duration: 2s
sample_interval: 500ms
machine: { memory: 64MiB, cpus: 2, layout: normal }
kernel: { watermark_boost_factor: 0 }
balloons: [{ name: b0 }]
host: { memory: 96MiB, guests: 2, policy: { kind: static, target: 16MiB, at: 1s } }
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 12MiB, pattern: random }
  - { type: compact_memory, at: 1500ms }
`;

describe("scenario runner in coalesce mode", () => {
  it("scenario run: coalesce on and off give the same run (balloon, compaction, THP faults), in every era", () => {
    for (const era of ERAS) {
      for (const balloon_compaction of [true, false]) {
        const text = `${BALLOON}\nera: "${era}"\n`;
        const run = (coalesce: boolean) => {
          const sc = parse_scenario(text);
          sc.kernel.balloon_compaction = balloon_compaction;
          return run_scenario(sc, { coalesce });
        };
        const off = run(false);
        const on = run(true);
        expect(observable(on), `era ${era}, balloon compaction ${balloon_compaction}`).toEqual(
          observable(off),
        );
        // Not a trivial run: the story moved (THP faults compact directly
        // when balloon pages can move; without, compaction is not suitable).
        if (balloon_compaction) expect(on.vmstat.compact_stall).toBeGreaterThan(0);
        expect(on.vmstat.thp_fault_fallback).toBeGreaterThan(0);
        expect(on.vmstat.balloon_inflate).toBeGreaterThan(0);
        expect(on.steps).toBeGreaterThan(10_000);
      }
    }
  });

  it("scenario run: several guests (one clock, no coalescing) give the same run either way", () => {
    const on = run_scenario(parse_scenario(GUESTS), { coalesce: true });
    const off = run_scenario(parse_scenario(GUESTS), { coalesce: false });
    expect(observable(on)).toEqual(observable(off));
    expect(on.guests).toHaveLength(2);
  });
});
