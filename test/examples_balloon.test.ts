// The balloon examples run and show the outcome examples/README.md promises:
// balloon compaction on against off, a host overcommitting three guests under
// the automatic policy, deflate-on-OOM saving a guest, free page reporting,
// and the eras side by side. Small guests, so the whole file stays quick.
import { describe, expect, it } from "vitest";
import { thp_after_compaction } from "../src/report/summary.ts";
import { run_scenario, type ScenarioResult } from "../src/sim/scenario_run.ts";
import { load_sweep } from "../src/sim/sweep.ts";
import { load_scenario } from "../src/workload/load.ts";
import type { Scenario } from "../src/workload/scenario.ts";

const path = (name: string) => new URL(`../examples/${name}`, import.meta.url).pathname;
const MiB_PAGES = 256;

function run(name: string, change?: (sc: Scenario) => void): ScenarioResult {
  const sc = load_scenario(path(name));
  change?.(sc);
  return run_scenario(sc);
}

describe("balloon examples", () => {
  it("examples: balloon compaction on rebuilds at least twice the 2 MiB blocks of off, and every late THP fault succeeds", () => {
    const on = run("balloon_compaction.yaml");
    const off = run("balloon_compaction.yaml", (sc) => {
      sc.kernel.balloon_compaction = false;
    });
    for (const r of [on, off]) {
      // The balloon took its 64 MiB and the host stopped backing it.
      expect(r.balloons[0].balloon_pages).toBe(64 * MiB_PAGES);
      expect(r.host?.reclaimed_pages).toBe(64 * MiB_PAGES);
      // Before compaction a balloon page sits in nearly every block.
      expect(r.compact_runs[0].free_2mib_before).toBeLessThanOrEqual(2);
    }
    expect(on.vmstat.balloon_migrate).toBeGreaterThan(4000);
    expect(off.vmstat.balloon_migrate).toBe(0);
    expect(on.compact_runs[0].free_2mib_after).toBeGreaterThanOrEqual(
      2 * off.compact_runs[0].free_2mib_after,
    );
    // Measured: on 1 -> 65 blocks, off 1 -> 28; of the 48 late THP faults 48 and 27 succeed.
    expect(thp_after_compaction(on)).toEqual([48, 48]);
    expect(thp_after_compaction(off)?.[0]).toBeLessThan(40);
  });

  it("examples: three overcommitted guests fit the host's 512 MiB after the first policy round", () => {
    const r = run("host_overcommit.yaml");
    const h = r.host!;
    expect(h.guests).toHaveLength(3);
    expect(r.guests.map((g) => g.name)).toEqual(["guest0", "guest1", "guest2"]);
    // Each guest has its own seed, so they differ.
    expect(new Set(r.guests.map((g) => g.digest)).size).toBe(3);
    const host_pages = h.memory_bytes / 4096;
    expect(h.timeline[0].total_pages).toBe(3 * 256 * MiB_PAGES);
    expect(h.overcommitted).toBe(true);
    // From 1.5 s on, within 10% of what the host has; every guest gave some.
    for (const s of h.timeline.filter((x) => x.t_ns >= 1.5e9))
      expect(s.total_pages).toBeLessThan(1.1 * host_pages);
    for (const g of h.guests) expect(g.min_backed_pages).toBeLessThan(0.8 * g.ram_pages);
    for (const g of r.guests) {
      expect(g.balloons[0].balloon_pages).toBeGreaterThan(0);
      expect(g.fault_failures).toBe(0);
    }
  });

  it("examples: deflate-on-OOM gives balloon pages back and every fault succeeds; without it faults fail", () => {
    const saved = run("deflate_on_oom.yaml");
    expect(saved.workload.anon_fault_failures).toBe(0);
    expect(saved.workload.anon_faults).toBe(40 * MiB_PAGES);
    expect(saved.balloons[0].oom_freed).toBeGreaterThan(1000);
    expect(saved.vmstat.balloon_deflate).toBe(saved.balloons[0].oom_freed);
    // The target stays; the balloon is smaller by what OOM took.
    expect(saved.balloons[0].balloon_pages).toBe(40 * MiB_PAGES - saved.balloons[0].oom_freed);
    const lost = run("deflate_on_oom.yaml", (sc) => {
      sc.balloons[0].features = [];
    });
    expect(lost.workload.anon_fault_failures).toBe(1);
    expect(lost.workload.anon_faults).toBeLessThan(30 * MiB_PAGES);
    expect(lost.balloons[0].balloon_pages).toBe(40 * MiB_PAGES);
  });

  it("examples: free page reporting hands free memory to the host, which backs it again when the guest reuses it", () => {
    const r = run("free_page_reporting.yaml");
    const backed = (ms: number) => r.timeline.find((s) => s.t_ns === ms * 1e6)!.host_backed_pages;
    const ram = r.host!.guests[0].ram_pages;
    expect(r.balloons[0].balloon_pages).toBe(0);
    expect(r.balloons[0].reported_pages).toBeGreaterThan(300 * MiB_PAGES);
    // Before the batch job exits the host backs most of RAM; 2 s after, a
    // sixth of it; once the next job runs, 192 MiB more.
    expect(backed(4500)).toBeGreaterThan(0.7 * ram);
    expect(backed(6000)).toBeLessThan(ram / 6);
    expect(backed(9000) - backed(6000)).toBeGreaterThanOrEqual(150 * MiB_PAGES);
    expect(r.host!.guests[0].min_backed_pages).toBe(backed(6000));
    expect(r.workload.anon_fault_failures).toBe(0);
    expect(r.host?.reclaimed_pages).toBe(ram - backed(10000));
  });

  it("examples: the eras side by side (sweep_eras.yaml) move the same balloon pages with different locking", () => {
    const sw = load_sweep(path("sweep_eras.yaml"));
    expect(sw.points).toHaveLength(6);
    const on = sw.points.filter((p) => p.scenario.kernel.balloon_compaction);
    const rs = on.map((p) => run_scenario(p.scenario));
    expect(rs.map((r) => r.era)).toEqual(["2016", "2022", "2026"]);
    for (const r of rs) {
      expect(r.vmstat.balloon_migrate).toBeGreaterThan(4000);
      expect(r.compact_runs[0].free_2mib_after).toBeGreaterThanOrEqual(60);
    }
    // The eras take different locks (2026 no page lock, 2022 the pages
    // lock around delete): different step counts, so different digests.
    expect(new Set(rs.map((r) => r.steps)).size).toBe(3);
    expect(new Set(rs.map((r) => r.digest)).size).toBe(3);
  });
});
