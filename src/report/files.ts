/**
 * report/files.ts: the report directory of a run (--out DIR):
 *   result.json          the whole result (as --json, plus the scenario)
 *   metrics.csv          one row per sample: simulated time, free blocks per
 *                        order, free 2 MiB blocks, kernel pages, balloon
 *                        target and size, host-backed pages, and the
 *                        sampled /proc/vmstat counters by kernel name
 *   samples/NNNN/        /proc snapshots at each sample, named as the kernel
 *                        names them: buddyinfo, pagetypeinfo, vmstat (and
 *                        samples/index.csv: sample number -> simulated time)
 *   report.html          the self-contained report (html.ts)
 *   trace.json           Chrome trace-event JSON for Perfetto (trace.ts)
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SAMPLED_VMSTAT } from "../sim/sample.ts";
import type { ScenarioResult } from "../sim/scenario_run.ts";
import type { Scenario } from "../workload/scenario.ts";
import { report_html } from "./html.ts";
import { trace_json } from "./trace.ts";

export function metrics_csv(r: ScenarioResult): string {
  const orders = r.timeline[0]?.free_blocks.length ?? 0;
  const head = [
    "t_s",
    ...Array.from({ length: orders }, (_, o) => `free_blocks_order_${o}`),
    "free_2mib_blocks",
    "kernel_pages",
    "balloon_target_pages",
    "balloon_pages",
    "host_backed_pages",
    ...SAMPLED_VMSTAT,
  ];
  const rows = r.timeline.map((s) =>
    [
      s.t_ns / 1e9,
      ...s.free_blocks,
      s.free_2mib_blocks,
      s.kernel_pages,
      s.balloon_target_pages,
      s.balloon_pages,
      s.host_backed_pages,
      ...SAMPLED_VMSTAT.map((k) => s.vmstat[k]),
    ].join(","),
  );
  return `${head.join(",")}\n${rows.join("\n")}\n`;
}

export function write_report(dir: string, r: ScenarioResult, sc: Scenario): void {
  mkdirSync(dir, { recursive: true });
  const { proc_snapshots, trace, ...rest } = r;
  writeFileSync(
    join(dir, "result.json"),
    `${JSON.stringify({ ...rest, scenario_config: sc }, null, 1)}\n`,
  );
  writeFileSync(join(dir, "metrics.csv"), metrics_csv(r));
  const samples = join(dir, "samples");
  mkdirSync(samples, { recursive: true });
  let index = "sample,t_s\n";
  proc_snapshots.forEach((p, i) => {
    const d = join(samples, String(i).padStart(4, "0"));
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "buddyinfo"), p.buddyinfo);
    writeFileSync(join(d, "pagetypeinfo"), p.pagetypeinfo);
    writeFileSync(join(d, "vmstat"), p.vmstat);
    index += `${String(i).padStart(4, "0")},${p.t_ns / 1e9}\n`;
  });
  writeFileSync(join(samples, "index.csv"), index);
  writeFileSync(join(dir, "report.html"), report_html(r));
  writeFileSync(join(dir, "trace.json"), JSON.stringify(trace_json({ ...r, trace })));
}
