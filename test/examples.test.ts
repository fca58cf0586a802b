// Every example scenario runs and shows the outcome examples/README.md promises.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { format_table, run_sweep } from "../src/cli/sweep.ts";
import { run_scenario, type ScenarioResult } from "../src/sim/scenario_run.ts";
import { load_sweep, SWEEP_COLUMNS } from "../src/sim/sweep.ts";
import { DEFAULT_SCENARIO_YAML } from "../src/workload/default_scenario.ts";
import { load_scenario } from "../src/workload/load.ts";

const path = (name: string) => new URL(`../examples/${name}`, import.meta.url).pathname;
const at = (r: ScenarioResult, ms: number) => {
  const s = r.timeline.find((x) => x.t_ns === ms * 1e6);
  if (!s) throw new Error(`no sample at ${ms} ms`);
  return s;
};

describe("examples", () => {
  it("examples: default.yaml is the built-in default scenario (its outcome: test/cli.test.ts)", () => {
    expect(readFileSync(path("default.yaml"), "utf8")).toBe(DEFAULT_SCENARIO_YAML);
  });

  it("examples: unmovable pollution leaves memory free but without 2 MiB blocks", () => {
    const r = run_scenario(load_scenario(path("unmovable_pollution.yaml")));
    const s = at(r, 4000);
    // Over 80% of managed memory free, under 2% of it in 2 MiB blocks.
    expect(s.vmstat.nr_free_pages).toBeGreaterThan(0.8 * r.managed_pages);
    expect(s.free_2mib_blocks * 512).toBeLessThan(0.02 * s.vmstat.nr_free_pages);
    // A kernel page in most pageblocks of RAM, and nothing movable for compaction.
    const end = r.memory_maps[r.memory_maps.length - 1].cells;
    const ram = [...end].filter((c) => c !== "h" && c !== "x").length;
    expect([...end].filter((c) => c === "u").length).toBeGreaterThan(0.8 * ram);
    expect(r.compaction.runs).toBe(1);
    expect(r.compaction.pages_migrated).toBe(0);
    expect(r.thp.success_rate).toBeLessThan(0.1);
  });

  it("examples: THP faults fall back until compact_memory, then succeed", () => {
    const r = run_scenario(load_scenario(path("thp_compact_memory.yaml")));
    const before = at(r, 5000);
    expect(before.vmstat.thp_fault_fallback).toBeGreaterThan(before.vmstat.thp_fault_alloc);
    expect(at(r, 5500).free_2mib_blocks).toBeGreaterThan(50 * Math.max(1, before.free_2mib_blocks));
    // After the compaction run every THP fault succeeded.
    expect(r.vmstat.thp_fault_fallback).toBe(before.vmstat.thp_fault_fallback);
    expect(r.vmstat.thp_fault_alloc - before.vmstat.thp_fault_alloc).toBeGreaterThanOrEqual(64);
    expect(r.compaction.pages_migrated).toBeGreaterThan(50_000);
  });

  it("examples: without compact_memory, kcompactd's proactive compaction gets the THP service its huge pages", () => {
    const sc = load_scenario(path("thp_proactive.yaml"));
    const r = run_scenario(sc, { trace: true });
    // kcompactd did the work: its own scanners moved, and pages migrated.
    expect(r.vmstat.compact_daemon_migrate_scanned).toBeGreaterThan(10_000);
    expect(r.vmstat.compact_daemon_free_scanned).toBeGreaterThan(10_000);
    expect(r.vmstat.pgmigrate_success).toBeGreaterThan(10_000);
    // The README's outcome: every huge page the service asked for succeeds.
    expect(r.thp.attempts).toBe(256);
    expect(r.thp.success).toBe(r.thp.attempts);
    expect(r.vmstat.thp_fault_fallback).toBe(0);
    // The same run without kcompactd: nothing compacts and most fall back.
    const off = run_scenario({ ...sc, kernel: { ...sc.kernel, kcompactd: false } });
    expect(off.vmstat.compact_daemon_migrate_scanned).toBe(0);
    expect(off.vmstat.pgmigrate_success).toBe(0);
    expect(off.thp.attempts).toBe(256);
    expect(off.vmstat.thp_fault_fallback).toBeGreaterThan(off.thp.attempts / 2);
    // The trace: kcompactd's compact_zone runs and their migrate_pages
    // batches as slices on its CPU's track (thread 3 of 2 CPUs: CPU 0).
    const runs = r.trace.filter((e) => e.name === "compact_zone");
    expect(runs.length).toBeGreaterThan(0);
    for (const e of runs) {
      expect(e.args?.thread).toBe("kcompactd0");
      expect(e.ph).toBe("X");
      expect(e.tid).toBe(0);
    }
    const batches = r.trace.filter((e) => e.name === "migrate_pages");
    expect(batches.reduce((a, e) => a + Number(e.args?.succeeded), 0)).toBe(
      r.vmstat.pgmigrate_success,
    );
    for (const b of batches) {
      expect(b.tid).toBe(0);
      // Inside one of kcompactd's runs.
      const inside = runs.some((z) => z.ts <= b.ts && b.ts + b.dur! <= z.ts + z.dur! + 1e-6);
      expect(inside, JSON.stringify(b)).toBe(true);
    }
  });

  it("examples: page cache churn keeps free memory high but scattered", () => {
    const r = run_scenario(load_scenario(path("page_cache_churn.yaml")), { trace: true });
    const s = at(r, 10_000);
    expect(s.vmstat.nr_free_pages).toBeGreaterThan(0.3 * r.managed_pages);
    expect(s.free_2mib_blocks * 512).toBeLessThan(0.4 * s.vmstat.nr_free_pages);
    expect(r.workload.cache_dropped).toBeGreaterThan(100_000);
    // Threads contend for the LRU lock: every wait is a
    // slice on the waiting CPU's track (measured: about 1,000).
    const lw = r.lock_waits["lruvec->lru_lock"];
    expect(lw.count).toBeGreaterThan(500);
    const waits = r.trace.filter((e) => e.name === "wait lruvec->lru_lock");
    expect(waits).toHaveLength(lw.count);
    for (const w of waits) {
      expect(w.ph).toBe("X");
      expect(w.cat).toBe("lock");
      expect([0, 1]).toContain(w.tid);
      expect(w.dur).toBeGreaterThan(0);
    }
    expect(waits.reduce((a, w) => a + w.dur!, 0)).toBeCloseTo(lw.wait_ns / 1000, 3);
  });

  it("examples: sweep_pollution, one row per grid point; with no kernel memory surviving the 2 MiB blocks come back", async () => {
    const sw = load_sweep(path("sweep_pollution.yaml"));
    expect(sw.keys).toEqual(["workload.2.keep_percent", "seed"]);
    const rows = await run_sweep(sw, 2);
    // 3 keep_percent values x 2 seeds, in grid order (first key slowest).
    expect(rows).toHaveLength(6);
    expect(rows.map((x) => x.point)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(rows.map((x) => x["workload.2.keep_percent"])).toEqual(["0", "0", "2", "2", "10", "10"]);
    expect(rows.map((x) => x.seed)).toEqual(["1", "2", "1", "2", "1", "2"]);
    for (const x of rows) {
      const clean = x["workload.2.keep_percent"] === "0";
      // None surviving: hundreds of free 2 MiB blocks and every THP fault
      // succeeds; 2% or 10% surviving: a handful, and most faults fail.
      if (clean) {
        expect(x.free_2mib_end).toBeGreaterThan(300);
        expect(x.thp_success_pct).toBe(100);
      } else {
        expect(x.free_2mib_end).toBeLessThan(10);
        expect(x.thp_success_pct).toBeLessThan(50);
      }
    }
    // The terminal table fits 80 columns and still shows the grid and the outcome.
    const text = format_table(["point", ...sw.keys, ...SWEEP_COLUMNS], rows, 80, 3);
    for (const l of text.trimEnd().split("\n")) expect(l.length, l).toBeLessThanOrEqual(80);
    const head = text.split("\n")[0].split(/ +/);
    expect(head).toEqual(expect.arrayContaining(["point", "workload.2.keep_percent", "seed"]));
    expect(head).toEqual(expect.arrayContaining(["thp_success_pct", "free_2mib_end", "digest"]));
    expect(text).toMatch(/not shown: .*pgmigrate_success/);
  }, 120_000);
});
