/**
 * report/html.ts: one self-contained HTML report of a run: charts over
 * simulated time (uPlot, inlined from node_modules with its stylesheet) of
 * free memory by order, memory use, free 2 MiB blocks, THP faults and
 * compaction work, and with balloons the balloon size (target against
 * actual, and balloon pages migrated) and host memory per guest, and
 * pictures of physical memory (one cell per pageblock, or per page on a
 * machine of up to 256 MiB, coloured by what it holds; see sim/sample.ts)
 * at the start, chosen
 * moments and the end. The run's data sits in one JSON script element
 * (id "pagesim-data"); the page draws from it, so the file works offline.
 */

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { SAMPLED_VMSTAT } from "../sim/sample.ts";
import type { ScenarioResult } from "../sim/scenario_run.ts";
import { format_duration, format_size } from "../workload/units.ts";

const MiB_PAGES = 256;

export interface ChartSpec {
  id: string;
  title: string;
  unit: string;
  series: { label: string; values: number[] }[];
}

/** The charts of a run: x is simulated seconds. */
export function charts(r: ScenarioResult): ChartSpec[] {
  const tl = r.timeline;
  const v = (k: (typeof SAMPLED_VMSTAT)[number]) => tl.map((s) => s.vmstat[k]);
  const order_mib = (lo: number, hi: number) =>
    tl.map((s) => {
      let pages = 0;
      for (let o = lo; o <= hi && o < s.free_blocks.length; o++) pages += s.free_blocks[o] * 2 ** o;
      return pages / MiB_PAGES;
    });
  return [
    {
      id: "chart-free-orders",
      title: "Free memory by block order",
      unit: "MiB",
      series: [
        { label: "order 0", values: order_mib(0, 0) },
        { label: "orders 1-3", values: order_mib(1, 3) },
        { label: "orders 4-8", values: order_mib(4, 8) },
        { label: "order 9 (2 MiB)", values: order_mib(9, 9) },
        { label: "order 10 (4 MiB)", values: order_mib(10, 10) },
      ],
    },
    {
      id: "chart-memory",
      title: "Memory use",
      unit: "MiB",
      series: [
        { label: "free", values: v("nr_free_pages").map((p) => p / MiB_PAGES) },
        { label: "anon", values: v("nr_anon_pages").map((p) => p / MiB_PAGES) },
        { label: "THP", values: v("nr_anon_transparent_hugepages").map((n) => n * 2) },
        { label: "page cache", values: v("nr_file_pages").map((p) => p / MiB_PAGES) },
        { label: "kernel", values: tl.map((s) => s.kernel_pages / MiB_PAGES) },
      ],
    },
    {
      id: "chart-2mib",
      title: "Free 2 MiB blocks",
      unit: "blocks",
      series: [{ label: "free 2 MiB blocks", values: tl.map((s) => s.free_2mib_blocks) }],
    },
    {
      id: "chart-thp",
      title: "THP faults (cumulative)",
      unit: "faults",
      series: [
        { label: "thp_fault_alloc", values: v("thp_fault_alloc") },
        { label: "thp_fault_fallback", values: v("thp_fault_fallback") },
      ],
    },
    {
      id: "chart-compaction",
      title: "Compaction (cumulative)",
      unit: "pages",
      series: [
        { label: "pgmigrate_success", values: v("pgmigrate_success") },
        { label: "pgmigrate_fail", values: v("pgmigrate_fail") },
        { label: "compact_migrate_scanned", values: v("compact_migrate_scanned") },
        { label: "compact_free_scanned", values: v("compact_free_scanned") },
      ],
    },
    ...balloon_charts(r),
  ];
}

/** Balloon size target against actual, and host memory per guest (runs with balloons). */
function balloon_charts(r: ScenarioResult): ChartSpec[] {
  if (!r.balloons.length || !r.host) return [];
  const tl = r.timeline;
  const ht = r.host.timeline;
  // One value per sample of the first guest (the guests sample together).
  const per_sample = (f: (i: number) => number) => tl.map((_, i) => (i < ht.length ? f(i) : 0));
  return [
    {
      id: "chart-balloon",
      title: "Balloon size: the host's target and the balloon",
      unit: "MiB",
      series: [
        { label: "target", values: tl.map((s) => s.balloon_target_pages / MiB_PAGES) },
        { label: "actual", values: tl.map((s) => s.balloon_pages / MiB_PAGES) },
        {
          label: "balloon pages migrated (cumulative, MiB)",
          values: tl.map((s) => s.vmstat.balloon_migrate / MiB_PAGES),
        },
      ],
    },
    {
      id: "chart-host",
      title: "Host memory backing each guest",
      unit: "MiB",
      series: [
        ...r.host.guests.map((g, k) => ({
          label: g.name,
          values: per_sample((i) => ht[i].backed_pages[k] / MiB_PAGES),
        })),
        ...(r.host.guests.length > 1
          ? [{ label: "total", values: per_sample((i) => ht[i].total_pages / MiB_PAGES) }]
          : []),
        {
          label: "host memory",
          values: tl.map(() => (r.host?.memory_bytes ?? 0) / (MiB_PAGES * 4096)),
        },
      ],
    },
  ];
}

function uplot_assets(): { js: string; css: string } {
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve("uplot/package.json"));
  return {
    js: readFileSync(join(dir, "dist", "uPlot.iife.min.js"), "utf8"),
    css: readFileSync(join(dir, "dist", "uPlot.min.css"), "utf8"),
  };
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Data as a JSON script element that cannot close itself early. */
function json_script(id: string, data: unknown): string {
  const text = JSON.stringify(data).replace(/</g, "\\u003c");
  return `<script type="application/json" id="${id}">${text}</script>`;
}

export const MAP_COLOURS: Record<string, [string, string]> = {
  f: ["#f4f4f4", "free"],
  a: ["#3b75af", "anonymous"],
  c: ["#5aa05a", "page cache"],
  u: ["#c8423b", "unmovable / kernel"],
  b: ["#8d6cb8", "balloon"],
  i: ["#ef8a17", "isolated"],
  x: ["#6b6b6b", "reserved"],
  h: ["#ffffff", "no RAM"],
};

const PAGE_SCRIPT = `
const D = JSON.parse(document.getElementById("pagesim-data").textContent);
const C = ${JSON.stringify(Object.fromEntries(Object.entries(MAP_COLOURS).map(([k, [c]]) => [k, c])))};
const PALETTE = ["#3b75af", "#ef8a17", "#5aa05a", "#c8423b", "#8d6cb8", "#8c564b"];
for (const ch of D.charts) {
  const el = document.getElementById(ch.id);
  const opts = {
    title: ch.title + " (" + ch.unit + ")",
    width: Math.min(900, window.innerWidth - 40), height: 260,
    scales: { x: { time: false } },
    axes: [{ label: "simulated seconds" }, { size: 70 }],
    series: [{ label: "t (s)" }].concat(ch.series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5 }))),
  };
  new uPlot(opts, [D.t].concat(ch.series.map((s) => s.values)), el);
}
function shade(hex, free) {
  // Mix a cell's colour with white by its free share (tenths).
  const k = free / 12;
  const n = parseInt(hex.slice(1), 16);
  const mix = (c) => Math.round(c + (255 - c) * k);
  return "rgb(" + mix(n >> 16) + "," + mix((n >> 8) & 255) + "," + mix(n & 255) + ")";
}
for (const cv of document.querySelectorAll("canvas.memmap")) {
  const m = D.maps[Number(cv.dataset.map)];
  const per_row = m.cells_per_row;
  const px = m.cells.length <= 1024 ? 7 : m.cells.length <= 8192 ? 5 : per_row >= 512 ? 2 : 3;
  const rows = Math.ceil(m.cells.length / per_row);
  cv.width = per_row * px; cv.height = rows * px;
  const g = cv.getContext("2d");
  for (let i = 0; i < m.cells.length; i++) {
    const c = m.cells[i];
    g.fillStyle = c === "f" || c === "h" || c === "x" ? C[c] : shade(C[c], Number(m.free[i]));
    g.fillRect((i % per_row) * px, Math.floor(i / per_row) * px, px - (px > 2 ? 1 : 0), px - (px > 2 ? 1 : 0));
  }
}
`;

function balloon_rows(r: ScenarioResult): string {
  const mib = (pages: number) => `${(pages / MiB_PAGES).toFixed(1)} MiB`;
  const rows = r.balloons.map(
    (b) =>
      `<tr><td>balloon ${esc(b.name)}</td><td>target ${mib(b.target_pages)}, actual ${mib(b.actual_pages)}; ` +
      `${r.vmstat.balloon_migrate ?? 0} pages migrated (balloon compaction ${r.kernel.balloon_compaction ? "on" : "off"})</td></tr>`,
  );
  if (r.host)
    rows.push(
      `<tr><td>host</td><td>backs ${mib(r.host.total_backed_pages)} of ${mib(r.host.total_ram_pages)} guest RAM ` +
        `(${mib(r.host.reclaimed_pages)} reclaimed), peak ${mib(r.host.peak_backed_pages)} of ${esc(format_size(r.host.memory_bytes))}</td></tr>`,
    );
  return rows.join("\n");
}

export function report_html(r: ScenarioResult): string {
  const { js, css } = uplot_assets();
  const cs = charts(r);
  const m0 = r.memory_maps[0];
  const per_cell = m0?.pages_per_cell ?? 512;
  const per_row = m0?.cells_per_row ?? 128;
  const cell_text =
    per_cell === 1
      ? `One cell per page (a small machine), ${per_row} to a row (one ${format_size(per_row * 4096)} pageblock per row)`
      : `One cell per pageblock (${format_size(per_cell * 4096)}), ${per_row} to a row (${format_size(per_cell * 4096 * per_row)})`;
  const data = {
    scenario: r.scenario,
    seed: r.seed,
    era: r.era,
    digest: r.digest,
    t: r.timeline.map((s) => s.t_ns / 1e9),
    charts: cs,
    maps: r.memory_maps,
  };
  const legend = Object.entries(MAP_COLOURS)
    .map(
      ([, [c, label]]) => `<span class="key"><i style="background:${c}"></i>${esc(label)}</span>`,
    )
    .join(" ");
  const maps = r.memory_maps
    .map(
      (m, i) =>
        `<figure><figcaption>${esc(m.label === "start" || m.label === "end" ? `${m.label} (${m.t_ns ? format_duration(m.t_ns) : "0 s"})` : m.label)}</figcaption><canvas class="memmap" data-map="${i}"></canvas></figure>`,
    )
    .join("\n");
  const thp = r.thp.attempts ? `${((100 * r.thp.success) / r.thp.attempts).toFixed(1)}%` : "-";
  const shown = r.guests.length > 1 ? ` (${esc(r.guests[0].name)})` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>pagesim: ${esc(r.scenario)} (seed ${r.seed})</title>
<style>${css}
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222}
h1{font-size:20px} .chart{margin:12px 0}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}
figcaption{font-weight:600;margin-bottom:4px}
.key{margin-right:12px;white-space:nowrap} .key i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle;border:1px solid #ccc}
table{border-collapse:collapse} td{padding:2px 10px 2px 0}
</style>
<script>${js}</script>
</head><body>
<h1>pagesim: ${esc(r.scenario)}</h1>
<p>${esc(r.description)}</p>
<table>
<tr><td>machine</td><td>${esc(format_size(r.machine.memory))} ${esc(r.machine.layout)}, ${r.machine.cpus} CPUs</td></tr>
<tr><td>seed, era</td><td>${r.seed}, ${esc(r.era)}</td></tr>
<tr><td>simulated</td><td>${esc(format_duration(r.end_ns))}</td></tr>
<tr><td>THP success</td><td>${r.thp.success} of ${r.thp.attempts} (${thp})</td></tr>
<tr><td>compaction</td><td>${r.compaction.runs} run(s), ${r.compaction.pages_migrated} pages migrated, ${r.compaction.migrate_failures} failed</td></tr>
${balloon_rows(r)}<tr><td>digest</td><td><code>${esc(r.digest)}</code></td></tr>
</table>
${guests_html(r)}<h2>Over simulated time${shown}</h2>
${cs.map((c) => `<div class="chart" id="${c.id}"></div>`).join("\n")}
<h2>Physical memory${shown}</h2>
<p>${cell_text}, lowest address top left; paler cells are partly free. ${legend}</p>
${maps}
${json_script("pagesim-data", data)}
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}

/**
 * With several guests: which guest the charts and pictures show (the
 * first; the host chart has them all), and one row per guest.
 */
function guests_html(r: ScenarioResult): string {
  if (r.guests.length <= 1) return "";
  const rows = r.guests
    .map(
      (g) =>
        `<tr><td>${esc(g.name)}</td><td>${g.seed}</td><td><code>${esc(g.digest)}</code></td>` +
        `<td>${g.thp.success} of ${g.thp.attempts}</td><td>${g.pages_migrated} (${g.balloon_migrate} balloon)</td>` +
        `<td>${g.free_2mib_start} &rarr; ${g.free_2mib_end}</td><td>${g.fault_failures}</td></tr>`,
    )
    .join("\n");
  return `<h2>Guests</h2>
<p>${r.guests.length} guests on one host. The charts over time (but for the host's memory per guest) and the pictures of physical memory below show ${esc(r.guests[0].name)}; metrics.csv and samples/ are ${esc(r.guests[0].name)}'s too.</p>
<table id="guests">
<tr><th>guest</th><th>seed</th><th>digest</th><th>THP</th><th>pages migrated</th><th>free 2 MiB blocks</th><th>failed faults</th></tr>
${rows}
</table>
`;
}
