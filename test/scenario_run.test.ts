// The scenario runner on the virtual clock: determinism, whole-state checks at the end,
// the samples and memory maps it records, and what it refuses to run yet.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import type { Machine } from "../src/kernel/machine.ts";
import type { MmState } from "../src/kernel/mm/state.ts";
import { NR_ANON_MAPPED, NR_FILE_PAGES } from "../src/kernel/vmstat_items.ts";
import { run_scenario, unsupported } from "../src/sim/scenario_run.ts";
import { load_scenario, parse_scenario } from "../src/workload/load.ts";

const SMALL = new URL("./scenarios/small.yaml", import.meta.url).pathname;

/** Owned pages counted from the owners' page tables and caches. */
function owned(mm: MmState): { anon: number; file: number } {
  let anon = 0;
  let file = 0;
  for (const as of mm.owners) {
    if (!as) continue;
    let n = 0;
    for (let i = 0; i < as.pages.length; i++) if (as.pages[i] >= 0) n++;
    if (as.kind === "anon") anon += n;
    else file += n;
  }
  return { anon, file };
}

describe("scenario runner", () => {
  it("scenario run: small scenario ends with a consistent machine and counters that match the owners", () => {
    const sc = load_scenario(SMALL);
    let final: { m: Machine; mm: MmState } | null = null;
    const r = run_scenario(sc, { at_end: (m, mm) => (final = { m, mm }) });
    expect(final).not.toBeNull();
    const { m, mm } = final!;
    verify_machine(m);
    const o = owned(mm);
    expect(m.pgdat[0].vm_stat[NR_ANON_MAPPED]).toBe(o.anon);
    expect(m.pgdat[0].vm_stat[NR_FILE_PAGES]).toBe(o.file);
    // Every kind of event happened.
    expect(r.workload.anon_faults).toBeGreaterThan(16384);
    expect(r.workload.anon_freed).toBeGreaterThan(8000);
    expect(r.workload.cache_dropped).toBe(2048);
    expect(r.workload.processes_started).toBeGreaterThan(5);
    expect(r.compaction.runs).toBe(1);
    expect(r.compaction.pages_migrated).toBeGreaterThan(0);
    expect(r.thp.attempts).toBeGreaterThanOrEqual(32);
    expect(r.vmstat.thp_fault_alloc + r.vmstat.thp_fault_fallback).toBe(r.thp.attempts);
    // Samples every 500 ms from 0 to 4 s, then the final state.
    expect(r.timeline.map((s) => s.t_ns / 1e6)).toEqual([
      0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000,
    ]);
    const last = r.timeline[r.timeline.length - 1];
    expect(last.vmstat.nr_free_pages).toBe(r.vmstat.nr_free_pages);
    // Memory maps at the start, the chosen moment and the end; a 256 MiB
    // guest (65,536 pages) gets one cell per page, a pageblock to a row.
    expect(r.memory_maps.map((mm) => mm.label)).toEqual(["start", "2.50 s", "end"]);
    for (const map of r.memory_maps) {
      expect(map.pages_per_cell).toBe(1);
      expect(map.cells_per_row).toBe(512);
      expect(map.cells).toHaveLength(m.mem.nr_pages);
      expect(map.cells).toMatch(/^[facubixh]+$/);
      expect(map.free).toMatch(/^[09]+$/);
    }
    expect(r.memory_maps[0].cells).not.toMatch(/[acu]/);
    // The end picture counts what the counters count, page by page.
    const end = r.memory_maps[2];
    const count = (c: string) => end.cells.split(c).length - 1;
    expect(count("u")).toBe(r.workload.kernel_pages);
    expect(count("c")).toBe(r.vmstat.nr_file_pages);
    expect(count("a")).toBe(r.vmstat.nr_anon_pages + 512 * r.vmstat.nr_anon_transparent_hugepages);
    expect(count("u")).toBeGreaterThan(0);
    expect(count("f")).toBeGreaterThanOrEqual(r.vmstat.nr_free_pages); // and the pcp lists'
    expect(end.free.split("9").length - 1).toBe(count("f"));
  });

  it("scenario run: the same seed gives the same digest and result; other seeds other digests (property)", () => {
    const base = load_scenario(SMALL);
    base.duration = 2e9;
    base.workload = base.workload.filter((w) => !("at" in w) || w.at < 2e9);
    const a = run_scenario({ ...base, seed: 11 });
    const b = run_scenario({ ...base, seed: 11 });
    expect(b.digest).toBe(a.digest);
    expect(b.vmstat).toEqual(a.vmstat);
    expect(b.timeline).toEqual(a.timeline);
    const seen = new Set([a.digest]);
    fc.assert(
      fc.property(fc.integer({ min: 12, max: 1_000_000 }), (seed) => {
        const r = run_scenario({ ...base, seed });
        expect(seen.has(r.digest), `seed ${seed} repeats a digest`).toBe(false);
        seen.add(r.digest);
      }),
      { numRuns: 4, seed: 7 },
    );
  });

  it("scenario run: keeping a trace (the kernel's migration and compaction observers) changes nothing in the run", () => {
    // With thp_defrag always, direct compaction runs too (its batches go to its instants).
    for (const thp_defrag of ["madvise", "always"] as const) {
      const sc = load_scenario(SMALL);
      sc.kernel.thp_defrag = thp_defrag;
      const traced = run_scenario(structuredClone(sc), { trace: true });
      const plain = run_scenario(structuredClone(sc));
      expect(traced.trace.some((e) => e.name === "migrate_pages")).toBe(true);
      expect(traced.digest).toBe(plain.digest);
      expect(traced.steps).toBe(plain.steps);
      expect(traced.vmstat).toEqual(plain.vmstat);
      expect(traced.timeline).toEqual(plain.timeline);
      // Slices and direct compaction instants together account for every page migrated.
      let migrated = 0;
      for (const e of traced.trace) {
        if (e.name === "migrate_pages") migrated += Number(e.args?.succeeded);
        if (e.name === "direct_compaction") migrated += Number(e.args?.pgmigrate_success);
      }
      expect(migrated).toBe(traced.vmstat.pgmigrate_success);
    }
  });

  it("scenario run: compact_memory brings back 2 MiB blocks that THP faults then get", () => {
    const sc = parse_scenario(`
duration: 3s
machine: { memory: 128MiB, layout: normal, cpus: 2 }
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 128MiB, pattern: interleaved, ways: 2 }
  - { type: free_anon, at: 500ms, process: db/1 }
  - { type: thp, at: 1s, process: before, count: 8, fallback: false }
  - { type: compact_memory, at: 1500ms }
  - { type: thp, at: 2500ms, process: after, count: 8, fallback: false }
`);
    const r = run_scenario(sc);
    const at = (ms: number) => r.timeline.find((s) => s.t_ns === ms * 1e6)!;
    // Every second page is free after 500 ms: no 2 MiB block until compaction.
    expect(at(1000).free_2mib_blocks).toBeLessThan(at(2000).free_2mib_blocks);
    const before = at(2000).vmstat.thp_fault_alloc;
    expect(before).toBeLessThan(4);
    expect(r.vmstat.thp_fault_fallback).toBe(8 - before);
    expect(r.vmstat.thp_fault_alloc - before).toBe(8);
    expect(r.compaction.pages_migrated).toBeGreaterThan(1000);
  });

  it("scenario run: balloon setups that cannot run are refused with their paths", () => {
    const sc = parse_scenario(`
era: "2025"
machine: { memory: 256MiB }
host: { memory: 32GiB, policy: { kind: auto } }
balloons:
  - { features: [free_page_reporting] }
  - { features: [free_page_reporting], initial: 1GiB }
workload:
  - { type: balloon_target, at: 1s, size: 1GiB }
`);
    expect(unsupported(sc).map((p) => `${p.path}: ${p.message}`)).toEqual([
      "balloons[1].initial: is larger than machine.memory",
      "balloons: free_page_reporting on more than one device (the kernel allows one, -EBUSY)",
      "workload[0].size: is larger than machine.memory",
      "host.policy: the auto policy drives one balloon device per guest",
    ]);
    expect(() => run_scenario(sc)).toThrow(/is larger than machine\.memory/);
    const many = parse_scenario(
      "machine: { memory: 64GiB }\nballoons: [{}]\nhost: { memory: 1TiB, guests: 64 }\n",
    );
    expect(unsupported(many).map((p) => `${p.path}: ${p.message}`)).toEqual([
      "host.guests: 64 guests of 64 GiB are more than 2 TiB of guest RAM to simulate",
    ]);
    const lonely = parse_scenario("host: { memory: 8GiB }\n");
    expect(unsupported(lonely).map((p) => p.message)).toEqual([
      "a host needs a balloon device in the guest (balloons)",
    ]);
  });

  it("scenario run: a balloon feature the era's driver did not have yet is refused, naming the kernel that brought it", () => {
    const all = (era: string) =>
      parse_scenario(`
era: "${era}"
machine: { memory: 256MiB }
balloons:
  - { features: [stats_vq, deflate_on_oom, free_page_hint, free_page_reporting] }
`);
    const refused = (era: string) => unsupported(all(era)).map((p) => `${p.path}: ${p.message}`);
    expect(refused("2012")).toEqual([
      "balloons[0].features[1]: deflate_on_oom (VIRTIO_BALLOON_F_DEFLATE_ON_OOM) came with Linux v3.19; era 2012 models v3.8-v3.17, whose virtio_balloon driver lacks it",
      "balloons[0].features[2]: free_page_hint (VIRTIO_BALLOON_F_FREE_PAGE_HINT) came with Linux v4.20; era 2012 models v3.8-v3.17, whose virtio_balloon driver lacks it",
      "balloons[0].features[3]: free_page_reporting (VIRTIO_BALLOON_F_REPORTING) came with Linux v5.7; era 2012 models v3.8-v3.17, whose virtio_balloon driver lacks it",
    ]);
    // 2014's last release (v4.7) has deflate-on-OOM but neither kind of free page hinting.
    expect(refused("2014")).toEqual([
      "balloons[0].features[2]: free_page_hint (VIRTIO_BALLOON_F_FREE_PAGE_HINT) came with Linux v4.20; era 2014 models v3.18-v4.7, whose virtio_balloon driver lacks it",
      "balloons[0].features[3]: free_page_reporting (VIRTIO_BALLOON_F_REPORTING) came with Linux v5.7; era 2014 models v3.18-v4.7, whose virtio_balloon driver lacks it",
    ]);
    for (const era of ["2016", "2022", "2025", "2026"]) expect(refused(era)).toEqual([]);
    expect(() => run_scenario(all("2014"))).toThrow(/free_page_hint .* came with Linux v4\.20/);
    // 2012 gives each device its own balloon mapping: two devices are fine.
    const two = parse_scenario('era: "2012"\nballoons: [{ name: a }, { name: b }]\n');
    expect(unsupported(two)).toEqual([]);
    expect(unsupported(parse_scenario('era: "2014"\nballoons: [{}, {}]\n'))).toEqual([]);
  });
});

describe("scenario runner, random workloads", () => {
  const size = fc.integer({ min: 1, max: 12 }).map((n) => `${n}MiB`);
  const at = fc.integer({ min: 0, max: 900 }).map((ms) => `${ms}ms`);
  const proc = fc.constantFrom("p", "q", "p/0", "q/1");
  const event = fc.oneof(
    fc.record({
      type: fc.constant("alloc_anon"),
      at,
      process: fc.constantFrom("p", "q"),
      size,
      pattern: fc.constantFrom("contiguous", "interleaved", "random"),
    }),
    fc.record({
      type: fc.constant("free_anon"),
      at,
      process: proc,
      pattern: fc.constantFrom("all", "alternate", "random"),
      percent: fc.integer({ min: 0, max: 100 }),
    }),
    fc.record({ type: fc.constant("cache_grow"), at, file: fc.constantFrom("f", "g"), size }),
    fc.record({
      type: fc.constant("cache_shrink"),
      at,
      file: fc.constantFrom("f", "g"),
      size,
      pattern: fc.constantFrom("oldest", "random"),
    }),
    fc.record({
      type: fc.constant("kernel_alloc"),
      at,
      name: fc.constantFrom("k", "l"),
      size,
      order: fc.integer({ min: 0, max: 3 }),
      reclaimable: fc.boolean(),
      keep_percent: fc.integer({ min: 0, max: 100 }),
    }),
    fc.record({
      type: fc.constant("kernel_free"),
      at,
      name: fc.constantFrom("k", "l"),
      percent: fc.integer({ min: 0, max: 100 }),
    }),
    fc.record({
      type: fc.constant("thp"),
      at,
      process: proc,
      count: fc.integer({ min: 1, max: 8 }),
      fallback: fc.boolean(),
    }),
    fc.record({ type: fc.constant("compact_memory"), at }),
  );

  it("scenario run: any workload leaves a consistent machine whose counters match the owners (property)", () => {
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 12 }),
        fc.integer({ min: 0, max: 1000 }),
        (workload, seed) => {
          const sc = parse_scenario(
            JSON.stringify({
              seed,
              duration: "1s",
              sample_interval: "250ms",
              machine: { memory: "48MiB", layout: "normal", cpus: 2 },
              workload,
            }),
          );
          let anon = -1;
          let file = -1;
          const r = run_scenario(sc, {
            at_end: (m, mm) => {
              verify_machine(m);
              const o = owned(mm);
              expect(m.pgdat[0].vm_stat[NR_ANON_MAPPED]).toBe(o.anon);
              expect(m.pgdat[0].vm_stat[NR_FILE_PAGES]).toBe(o.file);
              anon = o.anon;
              file = o.file;
            },
          });
          expect(anon).toBeGreaterThanOrEqual(0);
          expect(file).toBe(r.workload.cache_added - r.workload.cache_dropped);
          expect(r.vmstat.thp_fault_alloc).toBe(r.thp.success);
          expect(r.vmstat.thp_fault_alloc + r.vmstat.thp_fault_fallback).toBe(r.thp.attempts);
          expect(r.compaction.runs).toBe(
            workload.filter((w) => w.type === "compact_memory").length,
          );
          expect(run_scenario(sc).digest).toBe(r.digest);
        },
      ),
      { numRuns: 25, seed: 20261130 },
    );
  });
});
