/**
 * report/summary.ts: the terminal summary of a scenario run, at most 80
 * columns wide: free memory by order at the start and the end (as
 * /proc/buddyinfo counts it, summed over zones), THP success, compaction
 * work and success, what the workload did, and the digest. Balloon and host
 * rows join when a run has them. Reads only the result.
 */

import type { ScenarioResult } from "../sim/scenario_run.ts";
import { format_duration, format_size } from "../workload/units.ts";

const PAGE = 4096;

function n(v: number): string {
  return Math.round(v).toLocaleString("en-US");
}

function pct(num: number, den: number): string {
  return den ? `${((100 * num) / den).toFixed(1)}%` : "-";
}

function sum_orders(zones: { free: number[] }[]): number[] {
  const out = new Array<number>(zones[0]?.free.length ?? 0).fill(0);
  for (const z of zones) for (let o = 0; o < z.free.length; o++) out[o] += z.free[o];
  return out;
}

/** The one-line header printed before a run. */
export function run_header(r: {
  scenario: string;
  seed: number;
  era: string;
  machine: ScenarioResult["machine"];
  duration_ns: number;
}): string {
  const mc = r.machine;
  return (
    `pagesim run: scenario ${r.scenario}, seed ${r.seed}, era ${r.era}\n` +
    `  ${format_size(mc.memory)} ${mc.layout} guest, ${mc.cpus} CPUs, ${format_duration(r.duration_ns)} simulated\n`
  );
}

/** The summary after a run; `wall_s` is how long it took (reports may read clocks). */
export function summary(r: ScenarioResult, wall_s: number | null): string {
  const lines: string[] = [];
  const start = sum_orders(r.buddyinfo_start);
  const end = sum_orders(r.buddyinfo);
  lines.push("");
  lines.push("Free memory by order (all zones)      start                    end");
  lines.push("order  block        blocks          MiB       blocks          MiB");
  let tot0 = 0;
  let tot1 = 0;
  for (let o = 0; o < start.length; o++) {
    const mib0 = (start[o] * 2 ** o * PAGE) / 2 ** 20;
    const mib1 = (end[o] * 2 ** o * PAGE) / 2 ** 20;
    tot0 += mib0;
    tot1 += mib1;
    lines.push(
      `${String(o).padStart(5)}  ${format_size(2 ** o * PAGE).padEnd(8)} ${n(start[o]).padStart(10)} ${mib0.toFixed(1).padStart(12)} ` +
        `${n(end[o]).padStart(12)} ${mib1.toFixed(1).padStart(12)}`,
    );
  }
  lines.push(
    `total${" ".repeat(28)}${tot0.toFixed(1).padStart(12)}${" ".repeat(13)}${tot1.toFixed(1).padStart(12)}`,
  );
  const first = r.timeline[0];
  const last = r.timeline[r.timeline.length - 1];
  if (first && last) {
    lines.push(
      `free 2 MiB blocks: ${n(first.free_2mib_blocks)} at the start, ${n(last.free_2mib_blocks)} at the end ` +
        `(lowest ${n(Math.min(...r.timeline.map((s) => s.free_2mib_blocks)))})`,
    );
  }
  lines.push("");
  const t = r.thp;
  lines.push(
    `THP faults: ${n(t.attempts)} tried, ${n(t.success)} succeeded (${pct(t.success, t.attempts)}), ` +
      `${n(r.vmstat.thp_fault_fallback ?? 0)} fell back`,
  );
  const c = r.compaction;
  lines.push(
    `Compaction: ${n(c.runs)} compact_memory run(s); ${n(c.pages_migrated)} pages migrated, ` +
      `${n(c.migrate_failures)} failed`,
  );
  lines.push(
    `  scanned ${n(c.migrate_scanned)} pages (migrate scanner), ${n(c.free_scanned)} (free scanner); ` +
      `stalls ${n(r.vmstat.compact_stall ?? 0)}`,
  );
  const wl = r.workload;
  lines.push(
    `Workload: ${n(wl.anon_faults)} anon faults (${n(wl.anon_fault_failures)} failed), ${n(wl.anon_freed)} freed; ` +
      `page cache +${n(wl.cache_added)} -${n(wl.cache_dropped)} pages`,
  );
  lines.push(
    `  kernel memory held at the end ${format_size(wl.kernel_pages * PAGE)} ` +
      `(${n(wl.kernel_alloc_failures)} failed); processes ${n(wl.processes_started)} started, ` +
      `${n(wl.processes_exited)} exited`,
  );
  lines.push("");
  const rate = wall_s ? ` (${(r.end_ns / 1e9 / wall_s).toFixed(1)} simulated s per s)` : "";
  lines.push(
    `digest ${r.digest}; ${n(r.steps)} steps to ${format_duration(r.end_ns)}` +
      (wall_s !== null ? `; wall ${wall_s.toFixed(1)} s${rate}` : ""),
  );
  return `${lines.map(wrap80).join("\n")}\n`;
}

/** Break a line longer than 80 columns at a space, indenting the rest. */
function wrap80(line: string): string {
  const out: string[] = [];
  let rest = line;
  while (rest.length > 80) {
    let cut = rest.lastIndexOf(" ", 80);
    if (cut <= 2) cut = 80;
    out.push(rest.slice(0, cut));
    rest = `  ${rest.slice(cut).trimStart()}`;
  }
  out.push(rest);
  return out.join("\n");
}
