// Every example scenario runs and shows the outcome examples/README.md promises.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { run_scenario, type ScenarioResult } from "../src/sim/scenario_run.ts";
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
    const r = run_scenario(sc);
    // kcompactd did the work: its own scanners moved, and pages migrated.
    expect(r.vmstat.compact_daemon_migrate_scanned).toBeGreaterThan(10_000);
    expect(r.vmstat.compact_daemon_free_scanned).toBeGreaterThan(10_000);
    expect(r.vmstat.pgmigrate_success).toBeGreaterThan(10_000);
    // The same run without kcompactd: nothing compacts and the service falls back.
    const off = run_scenario({ ...sc, kernel: { ...sc.kernel, kcompactd: false } });
    expect(off.vmstat.compact_daemon_migrate_scanned).toBe(0);
    expect(off.vmstat.pgmigrate_success).toBe(0);
    expect(r.thp.success_rate).toBeGreaterThan(off.thp.success_rate + 0.3);
  });

  it("examples: page cache churn keeps free memory high but scattered", () => {
    const r = run_scenario(load_scenario(path("page_cache_churn.yaml")));
    const s = at(r, 10_000);
    expect(s.vmstat.nr_free_pages).toBeGreaterThan(0.3 * r.managed_pages);
    expect(s.free_2mib_blocks * 512).toBeLessThan(0.4 * s.vmstat.nr_free_pages);
    expect(r.workload.cache_dropped).toBeGreaterThan(100_000);
  });
});
