/**
 * report/trace.ts: a run's trace in the Chrome trace-event JSON format
 * (the "JSON Object Format" Perfetto and chrome://tracing open): one track
 * per simulated CPU (thread_name metadata "CPU n") with the workload's
 * events and compact_memory runs as complete ("X") events carrying their
 * counters (pages migrated, scanned), THP fault fallbacks and failed
 * allocations as instant ("i") events, and counters ("C": memory use, free
 * 2 MiB blocks, pages migrated, THP faults) at every sample. Times are
 * microseconds of simulated time. Lock waits are "wait <lock class>"
 * slices on the waiting CPU's track. With balloons, each device has its own
 * track ("balloon NAME") with its inflate and deflate batches (the
 * virtqueue round trip the driver waited for, with the pages in the batch),
 * and a "balloon" counter (target, size, pages migrated, host-backed pages)
 * at every sample. Direct compaction stalls do not appear: the model has no
 * direct compaction yet (the allocator's seam is empty).
 */

import type { ScenarioResult } from "../sim/scenario_run.ts";

export interface TraceFile {
  traceEvents: ScenarioResult["trace"];
  displayTimeUnit: "ms" | "ns";
  otherData: Record<string, string | number>;
}

export function trace_json(r: ScenarioResult): TraceFile {
  const events = [
    {
      name: "process_name",
      ph: "M" as const,
      cat: "",
      ts: 0,
      pid: 1,
      tid: 0,
      args: { name: `pagesim ${r.scenario}` },
    },
    ...r.trace,
  ];
  return {
    traceEvents: events,
    displayTimeUnit: "ms",
    otherData: {
      scenario: r.scenario,
      seed: r.seed,
      era: r.era,
      digest: r.digest,
      dropped_events: r.trace_dropped,
    },
  };
}
