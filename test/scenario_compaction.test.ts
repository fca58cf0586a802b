// The kernel's own compaction inside scenarios: THP faults with
// defrag=always stall in direct compaction (compact_stall, an instant per
// attempt on the allocating CPU's track in the trace) and succeed more often
// than with direct compaction switched off.
import { describe, expect, it } from "vitest";
import { trace_json } from "../src/report/trace.ts";
import { run_scenario } from "../src/sim/scenario_run.ts";
import { parse_scenario } from "../src/workload/load.ts";

const YAML = `
name: direct_compaction
duration: 4s
sample_interval: 500ms
machine: { memory: 256MiB, cpus: 2, layout: normal }
kernel: { thp_defrag: always, kcompactd: false, watermark_boost_factor: 0 }
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 200MiB, pattern: random, ways: 2 }
  - { type: free_anon, at: 500ms, process: db/1 }
  - type: thp_hungry
    name: service
    from: 1s
    every: 250ms
    count: 4
    hold: 10s
    fallback: true
`;

describe("scenarios: direct compaction", () => {
  it("scenario: THP faults with defrag=always stall in direct compaction, which the trace shows, and succeed more often", () => {
    const sc = parse_scenario(YAML, "direct_compaction");
    const on = run_scenario(sc, { trace: true });
    const off = run_scenario({ ...sc, kernel: { ...sc.kernel, direct_compaction: false } });
    expect(on.vmstat.compact_stall).toBeGreaterThan(0);
    expect(on.vmstat.compact_success).toBeGreaterThan(0);
    expect(off.vmstat.compact_stall).toBe(0);
    expect(on.thp.success).toBeGreaterThan(off.thp.success);
    const stalls = trace_json(on).traceEvents.filter((e) => e.name === "direct_compaction");
    expect(stalls.length).toBe(on.vmstat.compact_stall);
    for (const s of stalls) {
      expect(s.ph).toBe("i");
      expect(s.args?.order).toBe(9);
    }
  });
});
