/**
 * report/summary.ts: the terminal summary of a scenario run, at most 80
 * columns wide: free memory by order at the start and the end (as
 * /proc/buddyinfo counts it, summed over zones), THP success, compaction
 * work and success (each compact_memory run with the free 2 MiB blocks
 * before and after), balloon devices (target against actual, pages
 * inflated, deflated and migrated), the host (memory per guest, reclaimed,
 * peak against host memory), lock waits, what the workload did, and the
 * digest; and compare_table(), several runs of one scenario side by side
 * (the default's balloon compaction on and off). Reads only results.
 * Several guests on one host: the detailed sections are the first guest's,
 * each labelled with its name, and every guest has two lines under Host.
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
  // With several guests, say whose sections these are.
  const who = r.guests.length > 1 ? r.guests[0].name : null;
  const of = who ? ` (${who})` : "";
  lines.push("");
  if (who) {
    lines.push(
      `${who}, 1 of ${r.guests.length} guests: sections marked (${who}) are its own; ` +
        "all under Host.",
    );
  }
  lines.push(
    `Free memory by order${who ? `, ${who}` : " (all zones)"}`.padEnd(38) +
      "start                    end",
  );
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
      `free 2 MiB blocks${of}: ${n(first.free_2mib_blocks)} at the start, ${n(last.free_2mib_blocks)} at the end ` +
        `(lowest ${n(Math.min(...r.timeline.map((s) => s.free_2mib_blocks)))})`,
    );
  }
  lines.push("");
  const t = r.thp;
  lines.push(
    `THP faults${of}: ${n(t.attempts)} tried, ${n(t.success)} succeeded (${pct(t.success, t.attempts)}), ` +
      `${n(r.vmstat.thp_fault_fallback ?? 0)} fell back`,
  );
  const c = r.compaction;
  lines.push(
    `Compaction${of}: ${n(c.runs)} compact_memory run(s); ${n(c.pages_migrated)} pages migrated, ` +
      `${n(c.migrate_failures)} failed`,
  );
  lines.push(
    `  scanned ${n(c.migrate_scanned)} pages (migrate scanner), ${n(c.free_scanned)} (free scanner); ` +
      `stalls ${n(r.vmstat.compact_stall ?? 0)}`,
  );
  const daemon = r.vmstat.compact_daemon_migrate_scanned ?? 0;
  if (daemon > 0 || (r.vmstat.compact_daemon_wake ?? 0) > 0) {
    lines.push(
      `  kcompactd: ${n(r.vmstat.compact_daemon_wake ?? 0)} wake-ups, scanned ${n(daemon)} ` +
        `(migrate), ${n(r.vmstat.compact_daemon_free_scanned ?? 0)} (free)`,
    );
  }
  for (const run of r.compact_runs) {
    lines.push(
      `  compact_memory at ${format_duration(run.t_start_ns)}: free 2 MiB blocks ${n(run.free_2mib_before)} -> ` +
        `${n(run.free_2mib_after)}; ${n(run.pgmigrate_success)} pages migrated, ` +
        `${n(run.balloon_migrate)} of them balloon pages`,
    );
  }
  lines.push(...balloon_lines(r));
  lines.push(...lock_lines(r, of));
  const wl = r.workload;
  lines.push(
    `Workload${of}: ${n(wl.anon_faults)} anon faults (${n(wl.anon_fault_failures)} failed), ${n(wl.anon_freed)} freed; ` +
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

const size = (pages: number) => format_size(pages * PAGE);

function balloon_lines(r: ScenarioResult): string[] {
  const lines: string[] = [];
  const v = r.vmstat;
  for (const b of r.balloons) {
    lines.push(
      `Balloon ${b.name} (balloon compaction ${r.kernel.balloon_compaction ? "on" : "off"}): ` +
        `target ${size(b.target_pages)}, actual ${size(b.actual_pages)} ` +
        `(${n(b.balloon_pages)} pages)` +
        (b.features.length ? `; features ${b.features.join(", ")}` : ""),
    );
  }
  if (r.balloons.length) {
    lines.push(
      `  balloon_inflate ${n(v.balloon_inflate ?? 0)}, balloon_deflate ${n(v.balloon_deflate ?? 0)}, ` +
        `balloon_migrate ${n(v.balloon_migrate ?? 0)}`,
    );
    const extra: string[] = [];
    for (const b of r.balloons) {
      if (b.out_of_puff) extra.push(`${b.name} out of puff ${n(b.out_of_puff)} times`);
      if (b.oom_freed || b.oom_refused)
        extra.push(
          `${b.name} deflated ${n(b.oom_freed)} pages on OOM (${n(b.oom_refused)} refused)`,
        );
      if (b.reported_pages) extra.push(`${b.name} reported ${size(b.reported_pages)} free`);
    }
    if (extra.length) lines.push(`  ${extra.join("; ")}`);
  }
  const h = r.host;
  if (h) {
    lines.push(
      `Host: backs ${size(h.total_backed_pages)} of ${size(h.total_ram_pages)} guest RAM ` +
        `(${size(h.reclaimed_pages)} reclaimed); peak ${size(h.peak_backed_pages)} of ` +
        `${format_size(h.memory_bytes)} host memory${h.overcommitted ? " (overcommitted)" : ""}; policy ${h.policy}`,
    );
    if (h.guests.length > 1) {
      for (const [i, g] of h.guests.entries()) {
        const s = r.guests[i];
        lines.push(
          `  ${g.name}: backed ${size(g.backed_pages)}, ballooned ${size(g.ballooned_pages)}` +
            (s ? `; THP ${n(s.thp.success)} of ${n(s.thp.attempts)}` : ""),
        );
        if (!s) continue;
        lines.push(
          `    free 2 MiB blocks ${n(s.free_2mib_start)} -> ${n(s.free_2mib_end)}; ` +
            `migrated ${n(s.pages_migrated)} (${n(s.balloon_migrate)} balloon); ` +
            `${n(s.fault_failures)} failed allocs`,
        );
      }
    }
  }
  return lines;
}

function lock_lines(r: ScenarioResult, of: string): string[] {
  const top = Object.entries(r.lock_waits)
    .sort((a, b) => b[1].wait_ns - a[1].wait_ns)
    .slice(0, 3);
  if (!top.length) return [];
  return [
    `Lock waits${of}: ${top.map(([k, w]) => `${k} ${n(w.count)} (${format_duration(w.wait_ns)})`).join(", ")}`,
  ];
}

/** THP faults after the last compact_memory run ended: [succeeded, tried]. */
export function thp_after_compaction(r: ScenarioResult): [number, number] | null {
  const last = r.compact_runs[r.compact_runs.length - 1];
  const s = last && r.timeline.find((x) => x.t_ns >= last.t_end_ns);
  const end = r.timeline[r.timeline.length - 1];
  if (!s || !end) return null;
  const ok = end.vmstat.thp_fault_alloc - s.vmstat.thp_fault_alloc;
  const failed = end.vmstat.thp_fault_fallback - s.vmstat.thp_fault_fallback;
  return [ok, ok + failed];
}

/** Several runs of one scenario side by side (at most three fit 80 columns). */
export function compare_table(
  runs: { label: string; r: ScenarioResult; wall_s: number | null }[],
): string {
  const rows: [string, (r: ScenarioResult, wall_s: number | null) => string][] = [
    [
      "free 2 MiB blocks, before compact",
      (r) => (r.compact_runs[0] ? n(r.compact_runs[0].free_2mib_before) : "-"),
    ],
    [
      "free 2 MiB blocks, after compact",
      (r) =>
        r.compact_runs[0] ? n(r.compact_runs[r.compact_runs.length - 1].free_2mib_after) : "-",
    ],
    [
      "free 2 MiB blocks, at the end",
      (r) => n(r.timeline[r.timeline.length - 1]?.free_2mib_blocks ?? 0),
    ],
    ["balloon pages migrated", (r) => n(r.vmstat.balloon_migrate ?? 0)],
    ["pgmigrate_success", (r) => n(r.compaction.pages_migrated)],
    [
      "THP faults after compaction",
      (r) => {
        const t = thp_after_compaction(r);
        return t ? `${n(t[0])} of ${n(t[1])}` : "-";
      },
    ],
    ["THP success, whole run", (r) => pct(r.thp.success, r.thp.attempts)],
    ["host memory reclaimed", (r) => (r.host ? size(r.host.reclaimed_pages) : "-")],
    ["digest", (r) => r.digest],
    ["wall", (_r, w) => (w === null ? "-" : `${w.toFixed(1)} s`)],
  ];
  const width = Math.max(12, Math.floor((80 - 34) / Math.max(1, runs.length)));
  const cell = (s: string) => s.slice(0, width - 1).padStart(width);
  // Row labels stay under 34 columns.
  const lines = ["", `${"Side by side".padEnd(34)}${runs.map((x) => cell(x.label)).join("")}`];
  for (const [label, f] of rows)
    lines.push(`${label.padEnd(34)}${runs.map((x) => cell(f(x.r, x.wall_s))).join("")}`);
  return `${lines.join("\n")}\n`;
}

/** A scenario's description as an indented paragraph of at most 80 columns. */
export function describe_run(description: string): string {
  const words = description.split(/\s+/).filter(Boolean);
  if (!words.length) return "";
  const out: string[] = [];
  let line = " ";
  for (const w of words) {
    if (line.length + 1 + w.length > 80) {
      out.push(line);
      line = " ";
    }
    line += ` ${w}`;
  }
  out.push(line);
  return `${out.join("\n")}\n`;
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
