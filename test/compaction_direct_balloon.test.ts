// Direct compaction that reaches a balloon page (compaction_direct.ts,
// "Sleeping"): the virtio-balloon driver's migratepage waits for the host,
// and direct compaction runs inline and cannot sleep. A context that cannot
// sleep (Runtime.can_sleep false) leaves such pages with their driver at
// isolation, and the driver's migratepage refuses it before changing
// anything; a thread (compact_memory) still migrates them. In scenarios,
// thp_defrag=always with a balloon runs to completion in every era.
import { describe, expect, it } from "vitest";
import { CmmHost, check_cmm_safety } from "../src/host/cmm_host.ts";
import { balloon_settled, boot_balloon_guest, run_until } from "../src/host/rig.ts";
import { BalloonCompaction, balloon_page_device } from "../src/kernel/balloon_compaction.ts";
import { boot } from "../src/kernel/boot.ts";
import { cmm_init, cmm_thread } from "../src/kernel/cmm.ts";
import { InlineRuntime, run_inline } from "../src/kernel/compaction_direct.ts";
import { era2016 } from "../src/kernel/eras/era2016.ts";
import { EAGAIN, EBUSY } from "../src/kernel/errno.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { list_add } from "../src/kernel/list.ts";
import { MIGRATE_ASYNC, MR_COMPACTION, migrate_pages } from "../src/kernel/migrate.ts";
import { MmState } from "../src/kernel/mm/state.ts";
import {
  ISOLATE_ASYNC_MIGRATE,
  isolate_movable_page,
  putback_movable_page,
} from "../src/kernel/movable_ops.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { virtballoon_migratepage } from "../src/kernel/virtio_balloon.ts";
import { Execution } from "../src/runtime/execution.ts";
import { run_scenario } from "../src/sim/scenario_run.ts";
import { load_scenario, parse_scenario } from "../src/workload/load.ts";
import { ERAS } from "../src/workload/scenario.ts";

/** A 32 MiB guest with 4 MiB in its balloon, settled. */
function inflated_guest() {
  const g = boot_balloon_guest({ machine: { mem_bytes: 32 << 20 }, features: 0 });
  g.hg.balloon((32 - 4) << 20);
  run_until(g.e, () => balloon_settled(g), 1e7);
  expect(g.vb.num_pages).toBe(1024);
  const mem = g.m.mem;
  const b = g.vb.vb_dev_info;
  const page = mem.lru_next[b.pages];
  expect(page).not.toBe(b.pages);
  expect(balloon_page_device(g.bc, page)).toBe(b);
  return { g, page, b };
}

describe("direct compaction and balloon pages", () => {
  it("isolation: a context that cannot sleep leaves a virtio balloon page alone; a thread isolates it", () => {
    const { g, page, b } = inflated_guest();
    const mem = g.m.mem;
    const ref = mem._refcount[page];
    const inline = new InlineRuntime(g.e);
    expect(inline.can_sleep).toBe(false);
    const rc = run_inline(
      isolate_movable_page(inline, g.mm, page, ISOLATE_ASYNC_MIGRATE),
      1000,
      "isolate",
    );
    expect(rc).toBe(-EBUSY);
    expect(b.nosleep_refused).toBe(1);
    expect(b.isolated_pages).toBe(0);
    expect(mem._refcount[page]).toBe(ref);
    expect(mem.lru_next[page]).not.toBe(page); // still on the device's list
    // The same page from a thread, which may sleep: isolated, then put back.
    let got = 1;
    g.e.spawn("compact", function* (rt) {
      got = yield* isolate_movable_page(rt, g.mm, page, ISOLATE_ASYNC_MIGRATE);
      if (got === 0) yield* putback_movable_page(rt, g.mm, page);
    });
    run_until(g.e, () => got !== 1, 1e6);
    expect(got).toBe(0);
    expect(b.nosleep_refused).toBe(1);
  });

  it("migratepage: a caller that cannot sleep gets -EAGAIN before anything changes", () => {
    const { g, page, b } = inflated_guest();
    const mem = g.m.mem;
    const newpage = alloc_pages(g.m, 0, GFP_HIGHUSER_MOVABLE, 0);
    expect(newpage).toBeGreaterThanOrEqual(0);
    const before = {
      new_ref: mem._refcount[newpage],
      old_ref: mem._refcount[page],
      listed: b.nr_listed,
      num_pfns: g.vb.num_pfns,
      inflate: g.vb.vqs[0].state.slice(),
    };
    const rc = run_inline(
      virtballoon_migratepage(new InlineRuntime(g.e), g.vb, newpage, page, MIGRATE_ASYNC),
      1000,
      "migratepage",
    );
    expect(rc).toBe(-EAGAIN);
    expect(g.vb.migrate_nosleep).toBe(1);
    expect(g.vb.balloon_lock.owner).toBe(-1);
    expect({
      new_ref: mem._refcount[newpage],
      old_ref: mem._refcount[page],
      listed: b.nr_listed,
      num_pfns: g.vb.num_pfns,
      inflate: g.vb.vqs[0].state.slice(),
    }).toEqual(before);
  });
});

describe("other movable_ops drivers under the same rule", () => {
  it("cmm: its migratepage does not sleep, so an inline run isolates and migrates its page", () => {
    const m = boot({ mem_bytes: 32 << 20, layout: "normal", nr_cpus: 2 });
    const e = new Execution({ choose: () => 0 });
    const mm = new MmState(m, era2016, (c, k) => e.new_lock(c, k));
    const bc = new BalloonCompaction(mm);
    const host = new CmmHost(m.mem.nr_pages);
    const cmm = cmm_init(bc, host, 1024);
    e.spawn("cmm", (rt) => cmm_thread(rt, cmm));
    host.set_loan_target(64, cmm);
    run_until(e, () => cmm.loaned_pages === 64, 1_000_000);
    const mem = m.mem;
    const page = mem.lru_next[cmm.b.pages];
    expect(cmm.b.migratepage_sleeps).toBe(false);
    const inline = new InlineRuntime(e);
    const list = mem.alloc_list_head();
    expect(
      run_inline(isolate_movable_page(inline, mm, page, ISOLATE_ASYNC_MIGRATE), 1000, "iso"),
    ).toBe(0);
    list_add(mem, page, list);
    const target = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
    const failed = run_inline(
      migrate_pages(inline, mm, list, () => target, null, MIGRATE_ASYNC, MR_COMPACTION),
      10_000,
      "migrate",
    );
    expect(failed).toBe(0);
    expect(cmm.b.nosleep_refused).toBe(0);
    expect(balloon_page_device(bc, target)).toBe(cmm.b);
    expect(cmm.loaned_pages).toBe(64);
    check_cmm_safety(host, cmm);
  });
});

/** Balloon pages in the holes a process left, then THP faults that compact directly. */
const DIRECT = `
name: direct_balloon
duration: 3s
sample_interval: 500ms
machine: { memory: 64MiB, cpus: 2, layout: normal }
kernel: { watermark_boost_factor: 0, compaction_proactiveness: 0, thp_defrag: always }
balloons: [{ name: b0 }]
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 40MiB, pattern: random, ways: 2 }
  - { type: free_anon, at: 200ms, process: db/0 }
  - { type: balloon_target, at: 300ms, size: 12MiB }
  - { type: free_anon, at: 800ms, process: db/1 }
  - { type: thp, at: 1s, process: heap, count: 12, fallback: true }
  - { type: compact_memory, at: 2s }
  - { type: thp, at: 2500ms, process: late, count: 4, fallback: true }
`;

describe("scenarios with thp_defrag always and a balloon", () => {
  it("scenario run: THP faults compact directly past balloon pages, in every era, deterministically", () => {
    for (const era of ERAS) {
      const sc = `${DIRECT}\nera: "${era}"\n`;
      const r = run_scenario(parse_scenario(sc), { trace: true });
      const again = run_scenario(parse_scenario(sc));
      expect(again.digest).toBe(r.digest);
      expect(r.era).toBe(era);
      expect(r.vmstat.compact_stall).toBeGreaterThan(0);
      expect(r.vmstat.compact_stall).toBe(r.vmstat.compact_success + r.vmstat.compact_fail);
      expect(r.vmstat.thp_fault_alloc + r.vmstat.thp_fault_fallback).toBe(16);
      // Direct compaction left balloon pages alone; compact_memory (a thread) moved some.
      const stalls = r.trace.filter((e) => e.name === "direct_compaction");
      const nosleep = stalls.reduce((a, e) => a + Number(e.args?.balloon_nosleep), 0);
      expect(nosleep).toBeGreaterThan(0);
      expect(r.vmstat.balloon_migrate).toBeGreaterThan(0);
      expect(r.balloons[0].balloon_pages).toBe(3072);
    }
  });
});

describe("examples/thp_defrag_balloon.yaml", () => {
  it("examples: THP faults compact directly past balloon pages; only compact_memory moves them", () => {
    const file = new URL("../examples/thp_defrag_balloon.yaml", import.meta.url).pathname;
    const r = run_scenario(load_scenario(file), { trace: true });
    const dc = r.trace.filter((e) => e.name === "direct_compaction");
    const nosleep = dc.reduce((a, e) => a + Number(e.args?.balloon_nosleep), 0);
    // Measured: 4 stalls (3 successes), 87 balloon pages left alone by direct
    // compaction, 5,932 balloon pages migrated by compact_memory (1 -> 61
    // free 2 MiB blocks), 169 of 320 THP faults succeed.
    expect(r.vmstat.compact_stall).toBeGreaterThan(0);
    expect(nosleep).toBeGreaterThan(0);
    expect(r.compact_runs).toHaveLength(1);
    expect(r.compact_runs[0].balloon_migrate).toBeGreaterThan(4000);
    // Every balloon migration was compact_memory's.
    expect(r.vmstat.balloon_migrate).toBe(r.compact_runs[0].balloon_migrate);
    expect(r.compact_runs[0].free_2mib_after).toBeGreaterThanOrEqual(60);
    expect(r.balloons[0].balloon_pages).toBe(64 * 256);
  });
});
