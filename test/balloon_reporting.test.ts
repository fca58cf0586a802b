// Free page reporting through the virtio balloon (VIRTIO_BALLOON_F_REPORTING):
// only free blocks of at least pageblock order are reported and discarded
// by the host; the guest reuses them and the host backs them again.
import { describe, expect, it } from "vitest";
import { check_balloon_safety, FRAME_BACKED, FRAME_REPORTED } from "../src/host/host.ts";
import {
  balloon_settled,
  boot_balloon_guest,
  run_until,
  shutdown_balloon,
} from "../src/host/rig.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { PageTail } from "../src/kernel/page.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { PAGE_REPORTING_IDLE } from "../src/kernel/page_reporting.ts";
import {
  BalloonConfigError,
  VIRTIO_BALLOON_F_REPORTING,
  virtballoon_probe,
} from "../src/kernel/virtio_balloon.ts";
import { F, MiB } from "./balloon_helpers.ts";

function reporting_guest() {
  return boot_balloon_guest({
    machine: { mem_bytes: 256 * MiB, nr_cpus: 2 },
    features: F(VIRTIO_BALLOON_F_REPORTING),
    latency_ns: 50_000,
  });
}

describe("free page reporting", () => {
  it("reporting: a guest too small for a batch above its low watermark reports nothing (the kernel's check)", () => {
    const g = boot_balloon_guest({
      machine: { mem_bytes: 64 * MiB, nr_cpus: 2 },
      features: F(VIRTIO_BALLOON_F_REPORTING),
    });
    const prdev = g.vb.pr_dev_info!;
    run_until(g.e, () => prdev.passes === 1 && prdev.state === PAGE_REPORTING_IDLE, 100_000);
    expect(g.hg.reported_pages).toBe(0);
  });

  it("reporting: free blocks of order >= 9 are reported and discarded; the guest reuses them and the host backs them again", () => {
    const g = reporting_guest();
    const { m, e, hg, vb } = g;
    const prdev = vb.pr_dev_info!;
    const mem = m.mem;
    // The first pass (requested at registration) runs 2 s after boot.
    run_until(
      e,
      () => prdev.passes === 1 && prdev.state === PAGE_REPORTING_IDLE,
      1_000_000,
      () => check_balloon_safety(hg),
    );
    expect(e.now_ns).toBeGreaterThanOrEqual(2_000_000_000);
    expect(prdev.reported_pages).toBe(hg.reported_pages);
    // Most of a freshly booted guest is free: the host got at least half back.
    expect(hg.reported_pages).toBeGreaterThan(hg.ram_pages / 2);
    expect(hg.backed_pages).toBe(hg.ram_pages - hg.reported_pages);
    // Only free pages were discarded, in whole pageblocks.
    let reported = 0;
    for (let p = 0; p < mem.nr_pages; p++) {
      if (hg.frame[p] !== FRAME_REPORTED) continue;
      reported++;
      expect(mem._refcount[p]).toBe(0);
      expect(PageTail(mem, p)).toBe(false);
      if (p % 512 === 0) for (let q = p; q < p + 512; q++) expect(hg.frame[q]).toBe(FRAME_REPORTED);
    }
    expect(reported).toBe(hg.reported_pages);
    verify_machine(m);
    // The guest allocates 8000 pages; the host notices the reuse at its next sample.
    const got: number[] = [];
    for (let i = 0; i < 8000; i++) got.push(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0));
    expect(got.every((p) => p >= 0)).toBe(true);
    const reused = got.filter((p) => hg.frame[p] === FRAME_REPORTED).length;
    expect(reused).toBeGreaterThan(4000);
    const before = hg.backed_pages;
    hg.sample(e.now_ns);
    for (const p of got) expect(hg.frame[p]).toBe(FRAME_BACKED);
    expect(hg.backed_pages).toBe(before + reused);
    // Freed again, they merge into pageblocks and are reported in a later pass.
    for (const p of got) __free_pages(m, 0, p, 0);
    drain_all_pages(m, null);
    const passes = prdev.passes;
    run_until(e, () => prdev.passes > passes && prdev.state === PAGE_REPORTING_IDLE, 1_000_000);
    hg.sample(e.now_ns);
    expect(hg.reported_pages).toBeGreaterThan(hg.ram_pages / 2);
    check_balloon_safety(hg);
    expect(hg.history.length).toBe(2);
    shutdown_balloon(g);
    verify_machine(m);
  });

  it("reporting: never reports a ballooned frame, and balloon and reporting coexist", () => {
    const g = reporting_guest();
    const { e, hg, vb } = g;
    hg.set_target_pages(4000);
    let n = 0;
    run_until(
      e,
      () => balloon_settled(g) && vb.pr_dev_info!.passes >= 1,
      1_000_000,
      () => {
        if (++n % 16 === 0) check_balloon_safety(hg);
      },
    );
    check_balloon_safety(hg);
    expect(hg.ballooned_pages).toBe(4000);
    expect(hg.reported_pages).toBeGreaterThan(hg.ram_pages / 3);
    expect(hg.rejected).toBe(0);
    expect(hg.backed_pages + hg.ballooned_pages + hg.reported_pages).toBe(hg.ram_pages);
    shutdown_balloon(g);
  });

  it("reporting: a second reporting device is refused with -EBUSY", () => {
    const g = reporting_guest();
    expect(() =>
      virtballoon_probe(g.bc, { name: "second", device_features: F(VIRTIO_BALLOON_F_REPORTING) }),
    ).toThrow(BalloonConfigError);
  });
});
