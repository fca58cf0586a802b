// A second balloon driver on the same interface: the pseries CMM, with
// synchronous hcalls, a polled loan request and a mutex-free migratepage.
import { describe, expect, it } from "vitest";
import { CmmHost, check_cmm_safety, H_PARAMETER } from "../src/host/cmm_host.ts";
import { run_until } from "../src/host/rig.ts";
import { BalloonCompaction, verify_balloon_dev_info } from "../src/kernel/balloon_compaction.ts";
import { boot } from "../src/kernel/boot.ts";
import { type Cmm, cmm_init, cmm_thread } from "../src/kernel/cmm.ts";
import { compact_nodes } from "../src/kernel/compaction.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { era2016 } from "../src/kernel/eras/era2016.ts";
import { do_anonymous_page, mm_new_process, zap_anon_page } from "../src/kernel/mm/owner.ts";
import { MmState } from "../src/kernel/mm/state.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { BALLOON_MIGRATE, PGMIGRATE_FAIL } from "../src/kernel/vmstat_items.ts";
import { Execution } from "../src/runtime/execution.ts";
import { MiB } from "./balloon_helpers.ts";

/** A hypervisor that holds at most `cap` pages and grants at most `budget` more loans. */
class CappedHost extends CmmHost {
  cap = Number.POSITIVE_INFINITY;
  budget = Number.POSITIVE_INFINITY;
  override plpar_page_set_loaned(pfn: number): number {
    if (this.nr_loaned >= this.cap || this.budget <= 0) return H_PARAMETER;
    this.budget--;
    return super.plpar_page_set_loaned(pfn);
  }
}

function cmm_guest(mem = 64 * MiB) {
  const m = boot({
    mem_bytes: mem,
    layout: "normal",
    nr_cpus: 2,
    sysctl: { watermark_boost_factor: 0, min_free_kbytes: 1024 },
  });
  const e = new Execution({ choose: () => 0 });
  const mm = new MmState(m, era2016, (c, k) => e.new_lock(c, k));
  const bc = new BalloonCompaction(mm);
  const host = new CappedHost(m.mem.nr_pages);
  const cmm = cmm_init(bc, host, 1024);
  const t = e.spawn("cmm", (rt) => cmm_thread(rt, cmm));
  return { m, mm, e, bc, host, cmm, t };
}

function quiescent(cmm: Cmm, host: CmmHost): void {
  expect(verify_balloon_dev_info(cmm.bc, cmm.b) + cmm.b.isolated_pages).toBe(cmm.loaned_pages);
  expect(host.nr_loaned).toBe(cmm.loaned_pages);
  check_cmm_safety(host, cmm);
}

describe("pseries CMM on the balloon interface", () => {
  it("cmm: loans 3000 pages and gives 2500 back, hypervisor and guest agreeing every third step", () => {
    const { m, e, host, cmm } = cmm_guest();
    const zone = m.zones.find((z) => z.managed_pages > 0)!;
    const managed = zone.managed_pages;
    host.set_loan_target(3000, cmm);
    let k = 0;
    const every3 = () => {
      if (++k % 3 === 0) check_cmm_safety(host, cmm);
    };
    run_until(e, () => cmm.loaned_pages === 3000, 1_000_000, every3);
    quiescent(cmm, host);
    expect(zone.managed_pages).toBe(managed - 3000);
    // Polled once a second: a few seconds of simulated time at most.
    expect(e.now_ns).toBeLessThan(5_000_000_000);
    host.set_loan_target(500, cmm);
    run_until(e, () => cmm.loaned_pages === 500, 1_000_000, every3);
    quiescent(cmm, host);
    expect(zone.managed_pages).toBe(managed - 500);
    expect(host.rejected).toBe(0);
    cmm.stop = true;
    run_until(e, () => e.finished(), 100);
    verify_machine(m);
  });

  it("cmm: a hypervisor refusing the loan stops the batch and lowers the target; nothing leaks", () => {
    const { e, host, cmm } = cmm_guest();
    host.cap = 700;
    host.set_loan_target(2000, cmm);
    run_until(e, () => cmm.hcall_failures > 0 && cmm.loaned_pages_target === 700, 1_000_000);
    expect(cmm.loaned_pages).toBe(700);
    quiescent(cmm, host);
  });

  it("cmm: compaction migrates CMM pages (loan new, swap, activate old); a refused loan fails the migration and keeps the page", () => {
    const { m, mm, e, host, cmm } = cmm_guest(128 * MiB);
    const n = m.mem.nr_pages;
    const p = mm_new_process(mm, "w", n);
    let faulted = 0;
    const f = e.spawn("fault", function* (rt) {
      for (let v = 0; v < n; v++) {
        if ((yield* do_anonymous_page(rt, mm, p, v, v)) < 0) break;
        faulted++;
      }
      for (let v = 0; v < faulted; v += 4) yield* zap_anon_page(rt, mm, p, v);
    });
    run_until(e, () => e.threads[f].done, 10_000_000);
    drain_all_pages(m, null);
    host.set_loan_target(6000, cmm);
    run_until(e, () => cmm.loaned_pages === 6000, 10_000_000);
    quiescent(cmm, host);
    const u = e.spawn("unmap", function* (rt) {
      for (let v = 2; v < faulted; v += 4) yield* zap_anon_page(rt, mm, p, v);
    });
    run_until(e, () => e.threads[u].done, 10_000_000);
    drain_all_pages(m, null);
    // The hypervisor grants only 200 more loans: later migrations fail.
    host.budget = 200;
    const c = e.spawn("compact", (rt) => compact_nodes(rt, mm));
    let k = 0;
    run_until(
      e,
      () => e.threads[c].done,
      50_000_000,
      () => {
        if (++k % 2048 === 0) check_cmm_safety(host, cmm);
      },
    );
    expect(m.vm_events[BALLOON_MIGRATE]).toBe(200);
    expect(m.vm_events[PGMIGRATE_FAIL]).toBeGreaterThan(0);
    expect(cmm.hcall_failures).toBeGreaterThan(0);
    expect(cmm.loaned_pages).toBe(6000);
    // Every migration loaned a new page and activated the old one.
    expect(host.nr_loaned).toBe(6000);
    quiescent(cmm, host);
    verify_machine(m);
  });
});
