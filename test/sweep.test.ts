// pagesim sweep: a grid of scenario variations on worker threads, one table row per point.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { run_sweep } from "../src/cli/sweep.ts";
import { run_scenario } from "../src/sim/scenario_run.ts";
import { load_sweep } from "../src/sim/sweep.ts";
import { ScenarioError } from "../src/workload/load.ts";

const BIN = fileURLToPath(new URL("../bin/pagesim.mjs", import.meta.url));

function pagesim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const BASE = `name: tiny
duration: 1s
sample_interval: 250ms
machine: { memory: 64MiB, layout: normal, cpus: 2 }
workload:
  - { type: alloc_anon, at: 0s, process: p, size: 32MiB, pattern: random }
  - { type: free_anon, at: 300ms, process: p, pattern: random, percent: 50 }
  - { type: thp, at: 600ms, count: 4, fallback: false }
`;

function sweep_dir(grid: string): string {
  const dir = mkdtempSync(join(tmpdir(), "pagesim-sweep-"));
  writeFileSync(join(dir, "base.yaml"), BASE);
  writeFileSync(join(dir, "sweep.yaml"), `name: t\nscenario: base.yaml\ngrid:\n${grid}`);
  return dir;
}

describe("pagesim sweep", () => {
  it("sweep: the grid is the cartesian product, first key slowest, each point validated", () => {
    const dir = sweep_dir("  machine.memory: [64MiB, 96MiB]\n  seed: [1, 2, 3]\n");
    const sw = load_sweep(join(dir, "sweep.yaml"));
    expect(sw.keys).toEqual(["machine.memory", "seed"]);
    expect(sw.points.map((p) => [p.scenario.machine.memory / 2 ** 20, p.scenario.seed])).toEqual([
      [64, 1],
      [64, 2],
      [64, 3],
      [96, 1],
      [96, 2],
      [96, 3],
    ]);
    // A list item by index.
    const dir2 = sweep_dir("  workload.1.percent: [10, 90]\n");
    const sw2 = load_sweep(join(dir2, "sweep.yaml"));
    expect(sw2.points.map((p) => (p.scenario.workload[1] as { percent: number }).percent)).toEqual([
      10, 90,
    ]);
  });

  it("sweep: a bad grid value is reported with the grid key's line before anything runs", () => {
    const dir = sweep_dir("  seed: [1]\n  machine.memory: [64MiB, lots]\n");
    expect(() => load_sweep(join(dir, "sweep.yaml"))).toThrow(ScenarioError);
    const r = pagesim("sweep", join(dir, "sweep.yaml"));
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      `grid.machine.memory: "lots": machine.memory: expected a size like '512MiB', got 'lots' (line 5)`,
    );
    expect(r.out).toBe("");
    // A list item's path is named both ways: as the grid writes it and as the scenario does.
    const dir2 = sweep_dir("  workload.1.percent: [50, 500]\n");
    expect(() => load_sweep(join(dir2, "sweep.yaml"))).toThrow(
      /grid\.workload\.1\.percent: 500: workload\[1\]\.percent: expected an integer from 0 to 100, got 500 \(line 4\)$/,
    );
  });

  it("sweep: one row per grid point, in grid order, matching single runs", () => {
    const dir = sweep_dir("  seed: [1, 2]\n  machine.memory: [64MiB, 96MiB]\n");
    const csv = join(dir, "table.csv");
    const r = pagesim("sweep", join(dir, "sweep.yaml"), "--workers", "2", "--out", csv);
    expect(r.code, r.err).toBe(0);
    const lines = readFileSync(csv, "utf8").trim().split("\n");
    expect(lines).toHaveLength(5);
    const head = lines[0].split(",");
    expect(head.slice(0, 3)).toEqual(["point", "seed", "machine.memory"]);
    const rows = lines
      .slice(1)
      .map((l) => Object.fromEntries(l.split(",").map((v, i) => [head[i], v])));
    expect(rows.map((x) => x.point)).toEqual(["0", "1", "2", "3"]);
    // The worker's digest is the digest of the same scenario run here.
    const sw = load_sweep(join(dir, "sweep.yaml"));
    for (const p of sw.points) expect(rows[p.index].digest).toBe(run_scenario(p.scenario).digest);
    // The printed table has the same rows, within 80 columns.
    for (const l of r.out.split("\n")) expect(l.length, l).toBeLessThanOrEqual(80);
    expect(r.out).toContain(`table written to:\n  ${csv}\n`);
    const printed = r.out.split("\n").filter((l) => /^ +\d+ /.test(l));
    expect(printed.map((l) => l.trim().split(/ +/).at(-1))).toEqual(rows.map((x) => x.digest));
    const j = JSON.parse(pagesim("sweep", join(dir, "sweep.yaml"), "--json", "--workers", "1").out);
    expect(j.rows).toHaveLength(4);
    expect(j.rows.map((x: { digest: string }) => x.digest)).toEqual(rows.map((x) => x.digest));
  });

  it("sweep: run_sweep reports each finished grid point (the progress bar's feed); --quiet is accepted", async () => {
    const dir = sweep_dir("  seed: [1, 2, 3]\n");
    const seen: number[] = [];
    const rows = await run_sweep(load_sweep(join(dir, "sweep.yaml")), 2, (n) => seen.push(n));
    expect(rows).toHaveLength(3);
    expect(seen).toEqual([1, 2, 3]);
    const r = pagesim("sweep", join(dir, "sweep.yaml"), "--quiet", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).rows.map((x: { digest: string }) => x.digest)).toEqual(
      rows.map((x) => x.digest),
    );
  }, 60_000);
});
