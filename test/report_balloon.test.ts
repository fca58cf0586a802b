// Reports of a run with a balloon and a host: the summary's balloon and host
// rows (80 columns), the side-by-side table, metrics.csv's balloon columns,
// the HTML report's balloon and host charts (parsed, not eyeballed), and the
// trace's inflate batches on the balloon worker's CPU track. One small guest.
import { parse } from "parse5";
import { describe, expect, it } from "vitest";
import { metrics_csv } from "../src/report/files.ts";
import { charts, report_html } from "../src/report/html.ts";
import { compare_table, summary } from "../src/report/summary.ts";
import { trace_json } from "../src/report/trace.ts";
import { run_scenario } from "../src/sim/scenario_run.ts";
import { parse_scenario } from "../src/workload/load.ts";

const YAML = `
name: report_balloon
duration: 3s
sample_interval: 250ms
machine: { memory: 128MiB, cpus: 2, layout: normal }
kernel: { watermark_boost_factor: 0 }
balloons: [{ name: b0, features: [stats_vq] }]
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 48MiB, pattern: random }
  - { type: free_anon, at: 500ms, process: db/0 }
  - { type: balloon_target, at: 1s, size: 16MiB }
  - { type: balloon_target, at: 2s, size: 8MiB }
  - { type: compact_memory, at: 2500ms }
`;

describe("reports with balloons", () => {
  const sc = parse_scenario(YAML, "report_balloon");
  const r = run_scenario(sc, { trace: true });

  it("report: the summary shows the balloon's target and size, balloon counters and the host, within 80 columns", () => {
    const text = summary(r, 1.5);
    expect(text).toMatch(/Balloon b0 \(balloon compaction on\): target 8 MiB, actual 8 MiB/);
    expect(text).toMatch(/balloon_inflate 4,096, balloon_deflate 2,048, balloon_migrate/);
    expect(text).toMatch(/Host: backs 120 MiB of 128 MiB guest RAM \(8 MiB reclaimed\)/);
    expect(text).toMatch(/compact_memory at 2.50 s: free 2 MiB blocks \d+ -> \d+/);
    for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    // Two different runs side by side: each column is its own run's.
    const off = run_scenario({ ...sc, kernel: { ...sc.kernel, balloon_compaction: false } });
    // (Measured: compact_memory migrates 1,858 pages on, 2,761 off.)
    expect(off.compaction.pages_migrated).not.toBe(r.compaction.pages_migrated);
    expect(off.digest).not.toBe(r.digest);
    const table = compare_table([
      { label: "balloon_compaction=on", r, wall_s: 1 },
      { label: "balloon_compaction=off", r: off, wall_s: null },
    ]);
    // Labels take 34 columns, then a right-aligned cell of (80 - 34) / 2 per run.
    const row = (label: string) => {
      const l = table.split("\n").find((x) => x.startsWith(label))!;
      return [l.slice(34, 57).trim(), l.slice(57, 80).trim()];
    };
    expect(row("Side by side")).toEqual(["balloon_compaction=on", "balloon_compaction=off"]);
    const n = (v: number) => v.toLocaleString("en-US");
    expect(row("pgmigrate_success")).toEqual([
      n(r.compaction.pages_migrated),
      n(off.compaction.pages_migrated),
    ]);
    expect(row("free 2 MiB blocks, before compact")).toEqual([
      n(r.compact_runs[0].free_2mib_before),
      n(off.compact_runs[0].free_2mib_before),
    ]);
    expect(row("digest")).toEqual([r.digest, off.digest]);
    expect(row("wall")).toEqual(["1.0 s", "-"]);
    expect(row("host memory reclaimed")).toEqual(["8 MiB", "8 MiB"]);
    for (const line of table.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
  });

  it("report: samples and metrics.csv carry the balloon target, its size and host-backed pages", () => {
    const at = (ms: number) => r.timeline.find((s) => s.t_ns === ms * 1e6)!;
    expect(at(1500).balloon_target_pages).toBe(4096);
    expect(at(1500).balloon_pages).toBe(4096);
    expect(at(2500).balloon_pages).toBe(2048);
    expect(at(2500).host_backed_pages).toBe(r.host!.guests[0].ram_pages - 2048);
    const [head, ...rows] = metrics_csv(r).trim().split("\n");
    const cols = head.split(",");
    for (const c of [
      "balloon_target_pages",
      "balloon_pages",
      "host_backed_pages",
      "balloon_migrate",
    ])
      expect(cols).toContain(c);
    expect(rows).toHaveLength(r.timeline.length);
  });

  it("report: the HTML report has the balloon and host charts, one value per sample", () => {
    const ids = charts(r).map((c) => c.id);
    expect(ids).toContain("chart-balloon");
    expect(ids).toContain("chart-host");
    const doc = parse(report_html(r));
    const html = JSON.stringify(doc, (k, v) => (k === "parentNode" ? undefined : v));
    expect(html).toContain('"value":"chart-balloon"');
    const data = charts(r).find((c) => c.id === "chart-host")!;
    expect(data.series.map((s) => s.label)).toEqual(["guest", "host memory"]);
    for (const s of data.series) expect(s.values).toHaveLength(r.timeline.length);
    expect(data.series[0].values.at(-1)).toBe(120);
  });

  it("report: the trace has the balloon's inflate and deflate batches on its worker's CPU track", () => {
    const t = trace_json(r);
    const names = t.traceEvents
      .filter((e) => e.name === "thread_name")
      .map((e) => [e.tid, e.args?.name]);
    // One track per CPU and no other: the balloon's worker (thread 3 of a
    // 2-CPU guest) runs on CPU 0.
    expect(names).toEqual([
      [0, "CPU 0"],
      [1, "CPU 1"],
    ]);
    const batches = t.traceEvents.filter((e) => e.cat === "balloon" && e.ph === "X");
    const pages = (name: string) =>
      batches.filter((e) => e.name === name).reduce((a, e) => a + Number(e.args?.pages), 0);
    expect(pages("balloon_inflate")).toBe(4096);
    expect(pages("balloon_deflate")).toBe(2048);
    for (const e of batches) {
      expect(e.tid).toBe(0);
      expect(e.dur).toBeGreaterThan(0);
      expect(Number(e.args?.pages)).toBeLessThanOrEqual(256);
    }
    expect(t.traceEvents.some((e) => e.name === "balloon" && e.ph === "C")).toBe(true);
    // compact_memory's migration batches on CPU 1, with the balloon pages they moved.
    const mig = t.traceEvents.filter((e) => e.name === "migrate_pages");
    expect(mig.length).toBeGreaterThan(0);
    for (const e of mig) expect(e.tid).toBe(1);
    const sum = (k: string) => mig.reduce((a, e) => a + Number(e.args?.[k]), 0);
    expect(sum("succeeded")).toBe(r.vmstat.pgmigrate_success);
    expect(sum("balloon_pages")).toBe(r.vmstat.balloon_migrate);
  });
});

describe("reports of several guests", () => {
  it("report: the HTML report says which guest its charts and pictures show and has a row per guest", () => {
    const r = run_scenario(
      parse_scenario(`
name: two_guests
duration: 2s
sample_interval: 500ms
machine: { memory: 64MiB, cpus: 2, layout: normal }
balloons: [{ name: b0 }]
host: { memory: 96MiB, guests: 3, policy: { kind: static, target: 8MiB, at: 500ms } }
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 12MiB, pattern: random }
`),
    );
    expect(r.guests.map((g) => g.name)).toEqual(["guest0", "guest1", "guest2"]);
    type Node = {
      nodeName: string;
      attrs?: { name: string; value: string }[];
      childNodes?: Node[];
      value?: string;
    };
    const all: Node[] = [];
    const walk = (n: Node) => {
      all.push(n);
      for (const c of n.childNodes ?? []) walk(c);
    };
    walk(parse(report_html(r)) as unknown as Node);
    const text = (n: Node): string =>
      n.nodeName === "#text" ? (n.value ?? "") : (n.childNodes ?? []).map(text).join("");
    const table = all.find((n) => n.attrs?.some((a) => a.name === "id" && a.value === "guests"));
    expect(table).toBeDefined();
    const rows: Node[] = [];
    const collect = (n: Node) => {
      if (n.nodeName === "tr") rows.push(n);
      for (const c of n.childNodes ?? []) collect(c);
    };
    collect(table!);
    expect(rows).toHaveLength(1 + 3);
    for (const [k, g] of r.guests.entries()) {
      const cells = text(rows[k + 1]);
      expect(cells).toContain(g.name);
      expect(cells).toContain(g.digest);
    }
    const h2 = all.filter((n) => n.nodeName === "h2").map(text);
    expect(h2).toContain("Over simulated time (guest0)");
    expect(h2).toContain("Physical memory (guest0)");
  });
});
