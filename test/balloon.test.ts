// The balloon compaction interface and the virtio-balloon driver against the
// host model: inflate and deflate to targets with the per-step invariants
// (check_all: safety over every frame, list length, isolated_pages) after
// every step and the rest (check_quiescent) when settled; bad input.
import { describe, expect, it } from "vitest";
import {
  check_balloon_safety,
  FRAME_BALLOONED,
  HostControlError,
  host_device_thread,
} from "../src/host/host.ts";
import { balloon_settled, run_until, shutdown_balloon } from "../src/host/rig.ts";
import { balloon_page_device } from "../src/kernel/balloon_compaction.ts";
import {
  BalloonConfigError,
  VIRTIO_BALLOON_ARRAY_PFNS_MAX,
  VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_MUST_TELL_HOST,
  VIRTIO_BALLOON_F_STATS_VQ,
  VIRTIO_BALLOON_S_MEMFREE,
  VIRTIO_BALLOON_S_MEMTOT,
  VQ_DEFLATE,
  virtballoon_probe,
  virtballoon_worker,
  virtio_has_feature,
  virtqueue_add_outbuf,
} from "../src/kernel/virtio_balloon.ts";
import { BALLOON_DEFLATE, BALLOON_INFLATE } from "../src/kernel/vmstat_items.ts";
import {
  add_device,
  check_all,
  check_quiescent,
  ERAS,
  F,
  MiB,
  small_guest,
} from "./balloon_helpers.ts";

describe.each(ERAS.map((era) => ({ era, name: era.name })))(
  "virtio_balloon: inflate and deflate, era $name",
  ({ era }) => {
    it("balloon: inflate to 3000 pages and deflate to 0; safety, list length and isolated count after every step, all counts when settled", () => {
      const g = small_guest(F(VIRTIO_BALLOON_F_MUST_TELL_HOST), 32 * MiB, era);
      const { hg, vb, m, e } = g;
      hg.set_target_pages(3000);
      run_until(
        e,
        () => balloon_settled(g),
        1_000_000,
        () => check_all(g),
      );
      expect(vb.num_pages).toBe(3000);
      expect(m.vm_events[BALLOON_INFLATE]).toBe(3000);
      // ceil(3000 / 256) inflate buffers, each at most 256 pfns.
      expect(hg.buffers[0]).toBe(Math.ceil(3000 / VIRTIO_BALLOON_ARRAY_PFNS_MAX));
      check_quiescent(g);
      const backed_full = hg.backed_pages;
      expect(backed_full).toBe(hg.ram_pages - 3000);
      hg.set_target_pages(1000);
      run_until(
        e,
        () => balloon_settled(g),
        1_000_000,
        () => check_all(g),
      );
      expect(vb.num_pages).toBe(1000);
      expect(m.vm_events[BALLOON_DEFLATE]).toBe(2000);
      check_quiescent(g);
      hg.balloon(hg.ram_bytes); // QEMU: give the guest all its RAM back
      run_until(
        e,
        () => balloon_settled(g),
        1_000_000,
        () => check_all(g),
      );
      expect(vb.num_pages).toBe(0);
      expect(hg.backed_pages).toBe(hg.ram_pages);
      check_quiescent(g);
      shutdown_balloon(g);
      expect(e.finished()).toBe(true);
    });
  },
);

describe("virtio_balloon: resizing", () => {
  it("balloon: without DEFLATE_ON_OOM inflation takes pages out of managed_pages; with it, it does not", () => {
    for (const oom of [false, true]) {
      const g = small_guest(oom ? F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) : 0);
      const zone = g.m.zones.find((z) => z.managed_pages > 0)!;
      const before = zone.managed_pages;
      g.hg.set_target_pages(500);
      run_until(g.e, () => balloon_settled(g), 1_000_000);
      expect(zone.managed_pages).toBe(oom ? before : before - 500);
      g.hg.set_target_pages(0);
      run_until(g.e, () => balloon_settled(g), 1_000_000);
      expect(zone.managed_pages).toBe(before);
    }
  });

  it("balloon: a target beyond what the guest can give stops at the watermark, out of puff, and backs off", () => {
    const g = small_guest();
    const { hg, vb, e } = g;
    hg.set_target_pages(hg.ram_pages);
    let n = 0;
    run_until(
      e,
      () => vb.out_of_puff >= 3,
      10_000_000,
      () => {
        if (++n % 64 === 0) check_all(g);
      },
    );
    const got = vb.num_pages;
    expect(got).toBeGreaterThan(hg.ram_pages * 0.8);
    expect(got).toBeLessThan(hg.ram_pages);
    // Each failure sleeps 200 ms of simulated time.
    expect(e.now_ns).toBeGreaterThanOrEqual(2 * 200_000_000);
    hg.set_target_pages(0);
    run_until(
      e,
      () => balloon_settled(g),
      1_000_000,
      () => check_all(g),
    );
    check_quiescent(g);
  });

  it("balloon: stats reach the host with the spec's tags", () => {
    const g = small_guest(F(VIRTIO_BALLOON_F_STATS_VQ));
    const { hg, e } = g;
    hg.set_target_pages(1024);
    run_until(e, () => balloon_settled(g), 1_000_000);
    hg.request_stats();
    run_until(e, () => hg.stats_updates === 1, 100_000);
    const s = hg.read_stats();
    expect(s["stat-free-memory"]).toBe(hg.stats[VIRTIO_BALLOON_S_MEMFREE]);
    expect(hg.stats[VIRTIO_BALLOON_S_MEMTOT]).toBeGreaterThan(0);
    // Without DEFLATE_ON_OOM the balloon is not in MemTotal.
    expect(hg.stats[VIRTIO_BALLOON_S_MEMTOT] / 4096).toBeLessThan(hg.ram_pages - 1024 + 1);
    expect(hg.stats[VIRTIO_BALLOON_S_MEMFREE]).toBeLessThan(hg.stats[VIRTIO_BALLOON_S_MEMTOT]);
  });

  it.each(ERAS.map((era) => ({ era, name: era.name })))(
    "balloon: two devices in one guest keep separate lists and host views, era $name",
    ({ era }) => {
      const g = small_guest(F(VIRTIO_BALLOON_F_MUST_TELL_HOST), 32 * MiB, era);
      const { e, host } = g;
      const g2 = add_device(g, "second");
      const { vb: vb2, hg: hg2 } = g2;
      g.hg.set_target_pages(700);
      hg2.set_target_pages(900);
      run_until(
        e,
        () => balloon_settled(g) && balloon_settled(g2),
        1_000_000,
        () => {
          check_all(g);
          check_all(g2);
        },
      );
      check_quiescent(g);
      check_quiescent(g2);
      expect(vb2.vb_dev_info.id).not.toBe(g.vb.vb_dev_info.id);
      expect(host.total_backed_pages()).toBe(2 * g.hg.ram_pages - 1600);
      // Each page names its own device (2012: through its device's balloon mapping).
      const b1 = g.vb.vb_dev_info;
      const b2 = vb2.vb_dev_info;
      if (era.device_lookup === "mapping") {
        expect(b1.mapping).toBeGreaterThan(0);
        expect(b2.mapping).toBeGreaterThan(0);
        expect(b2.mapping).not.toBe(b1.mapping);
      }
      const mem = g.m.mem;
      let owners = [0, 0];
      for (let p = 0; p < mem.nr_pages; p++) {
        const d = balloon_page_device(g.bc, p);
        if (d === b1) owners = [owners[0] + 1, owners[1]];
        else if (d === b2) owners = [owners[0], owners[1] + 1];
      }
      expect(owners).toEqual([700, 900]);
    },
  );
});

describe("virtio_balloon: bad input", () => {
  it("balloon: negative, fractional and too large targets are refused with the value named", () => {
    const g = small_guest();
    const { hg } = g;
    expect(() => hg.set_target_pages(-1)).toThrow(HostControlError);
    expect(() => hg.set_target_pages(1.5)).toThrow(/1.5 pages is outside/);
    expect(() => hg.set_target_pages(hg.ram_pages + 1)).toThrow(/outside 0\.\./);
    expect(() => hg.balloon(-4096)).toThrow(/must be a positive size/);
    expect(() => hg.balloon(Number.NaN)).toThrow(HostControlError);
    expect(g.vb.config_num_pages).toBe(0);
    // Above the RAM size, as QEMU: an empty balloon.
    hg.balloon(hg.ram_bytes * 2);
    expect(g.vb.config_num_pages).toBe(0);
  });

  it("balloon: unknown feature bits are masked off and counted", () => {
    const g = small_guest(F(VIRTIO_BALLOON_F_STATS_VQ, 17, 30));
    expect(virtio_has_feature(g.vb, VIRTIO_BALLOON_F_STATS_VQ)).toBe(true);
    expect(virtio_has_feature(g.vb, 17)).toBe(false);
    expect(g.vb.features_rejected).toBe((1 << 17) | (1 << 30));
    expect(() => virtio_has_feature(g.vb, 40)).toThrow(/out of range/);
  });

  it("balloon: a deflate naming a pfn never ballooned is a counted rejection; lists stay intact", () => {
    const g = small_guest(F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
    const { hg, vb, e } = g;
    hg.set_target_pages(300);
    run_until(e, () => balloon_settled(g), 1_000_000);
    const free_pfn = g.hg.frame.indexOf(0); // a frame never ballooned
    virtqueue_add_outbuf(vb, vb.vqs[VQ_DEFLATE], [free_pfn, 1 << 30], 2, true);
    run_until(e, () => !hg.has_avail(), 10_000);
    expect(hg.rejected).toBe(2);
    expect(hg.rejections[0]).toBe(`deflate: pfn ${free_pfn} was never ballooned`);
    expect(hg.rejections[1]).toMatch(/outside the guest/);
    expect(hg.frame[free_pfn]).not.toBe(FRAME_BALLOONED);
    check_quiescent(g);
  });

  it("balloon: a target while the device is being removed is refused", () => {
    const g = small_guest();
    g.vb.removing = true;
    expect(() => g.hg.set_target_pages(10)).toThrow(BalloonConfigError);
    expect(() => g.hg.set_target_pages(10)).toThrow(/being removed/);
  });
});
