/**
 * report/trace.ts: a run's trace in the Chrome trace-event JSON format
 * (the "JSON Object Format" Perfetto and chrome://tracing open): one track
 * per simulated CPU (thread_name metadata "CPU n"; threads beyond the CPUs
 * share CPU 0's, as in the model). On a CPU's track, as complete ("X")
 * events: the workload's events; compact_memory runs with their counters;
 * a "compact_zone" slice per zone compacted by kcompactd or compact_memory
 * (zone, order, mode, result, pages scanned and migrated) and inside it a
 * "migrate_pages" slice per migration batch (nr_pages, succeeded, failed,
 * balloon_pages); balloon inflate and deflate batches on the driver
 * worker's CPU (the virtqueue round trip it waited for, with the pages in
 * the batch); and lock waits ("wait <lock class>"). As instant ("i")
 * events: THP fault fallbacks, failed allocations and direct compaction
 * stalls. Direct compaction runs inline inside the allocating thread's
 * step, in no simulated time (a documented simplification), so a stall is
 * an instant with its order, priority, result and the batches it migrated,
 * not a slice. Counters ("C": memory use, free 2 MiB blocks, pages
 * migrated, THP faults, and with balloons target, size, balloon_migrate
 * and host-backed pages) at every sample. Times are microseconds of
 * simulated time.
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
