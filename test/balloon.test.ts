// The balloon compaction interface and the virtio-balloon driver against the
// host model: inflate and deflate to targets with the per-step invariants
// (check_all: safety over every frame, list length, isolated_pages) after
// every step and the rest (check_quiescent) when settled; bad input.
import { describe, expect, it } from "vitest";
import { check_balloon_safety, FRAME_BALLOONED, HostControlError } from "../src/host/host.ts";
import { balloon_settled, run_until, shutdown_balloon } from "../src/host/rig.ts";
import { balloon_page_device, verify_balloon_dev_info } from "../src/kernel/balloon_compaction.ts";
import {
  BalloonConfigError,
  SLOT_HELD,
  VIRTIO_BALLOON_ARRAY_PFNS_MAX,
  VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_FREE_PAGE_HINT,
  VIRTIO_BALLOON_F_MUST_TELL_HOST,
  VIRTIO_BALLOON_F_STATS_VQ,
  VIRTIO_BALLOON_S_MEMFREE,
  VIRTIO_BALLOON_S_MEMTOT,
  VQ_DEFLATE,
  VQ_INFLATE,
  VQ_STATS,
  virtballoon_probe,
  virtballoon_remove,
  virtio_balloon_set_free_page_hint_cmd_id,
  virtio_balloon_set_num_pages,
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

  it("balloon: the host asks for stats by giving the stats buffer back; fresh figures arrive two queue latencies later", () => {
    const g = small_guest(F(VIRTIO_BALLOON_F_STATS_VQ));
    const { hg, vb, e } = g;
    const vq = vb.vqs[VQ_STATS];
    // init_vqs() made one buffer of figures available; the device keeps it.
    run_until(e, () => hg.stats_updates === 1, 100_000);
    expect(hg.stats_slot).toBeGreaterThanOrEqual(0);
    expect(vq.state[hg.stats_slot]).toBe(SLOT_HELD);
    const free0 = hg.stats[VIRTIO_BALLOON_S_MEMFREE];
    hg.set_target_pages(1024);
    run_until(e, () => balloon_settled(g), 1_000_000);
    // Nobody asked: the host still has the old figures.
    expect(hg.stats[VIRTIO_BALLOON_S_MEMFREE]).toBe(free0);
    const t0 = e.now_ns;
    hg.request_stats();
    run_until(e, () => vb.stats_work, 100_000); // the buffer came back used: stats_request()
    expect(e.now_ns - t0).toBeGreaterThanOrEqual(hg.latency_ns);
    run_until(e, () => hg.stats_answers === 1, 100_000);
    expect(e.now_ns - t0).toBeGreaterThanOrEqual(2 * hg.latency_ns);
    expect(hg.buffers[VQ_STATS]).toBe(2);
    expect(hg.stats[VIRTIO_BALLOON_S_MEMFREE]).toBeLessThan(free0 - 1000 * 4096);
    expect(vb.bad_used).toBe(0);
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

  it("balloon: a target while virtballoon_remove() runs, and after it, is refused; the removal empties the balloon", () => {
    const g = small_guest();
    const { e, hg, vb } = g;
    hg.set_target_pages(600);
    run_until(e, () => balloon_settled(g), 1_000_000);
    const r = e.spawn("remove", (rt) => virtballoon_remove(rt, vb));
    run_until(e, () => vb.removing, 1_000);
    expect(vb.removed).toBe(false);
    expect(vb.num_pages).toBeGreaterThan(0);
    expect(() => hg.set_target_pages(10)).toThrow(BalloonConfigError);
    expect(() => hg.set_target_pages(10)).toThrow(/target set while the device is being removed/);
    run_until(
      e,
      () => e.threads[r].done,
      1_000_000,
      () => check_balloon_safety(hg),
    );
    expect(vb.removed).toBe(true);
    expect(vb.num_pages).toBe(0);
    expect(hg.backed_pages).toBe(hg.ram_pages);
    expect(() => hg.set_target_pages(10)).toThrow(/being removed/);
    expect(vb.config_num_pages).toBe(600);
  });

  it("balloon: driver-level errors: a feature mask that is not 32 bits, num_pages outside u32, oom_pages <= 0, a hint command id that is not a u32", () => {
    const g = small_guest(F(VIRTIO_BALLOON_F_FREE_PAGE_HINT));
    const devices = g.bc.devices.length;
    for (const f of [2 ** 32, -1, 1.5, Number.NaN])
      expect(() => virtballoon_probe(g.bc, { name: "bad", device_features: f })).toThrow(
        /device features .* are not a 32-bit mask/,
      );
    for (const n of [0, -5, 2.5])
      expect(() =>
        virtballoon_probe(g.bc, { name: "bad", device_features: 0, oom_pages: n }),
      ).toThrow(/oom_pages must be > 0/);
    // No half-made device was left behind.
    expect(g.bc.devices.length).toBe(devices);
    // The driver checks config.num_pages itself (the host model refuses first).
    for (const n of [2 ** 32, -1, 0.5])
      expect(() => virtio_balloon_set_num_pages(g.vb, n)).toThrow(
        /num_pages .* is not an integer in \[0, 2\^32\)/,
      );
    virtio_balloon_set_num_pages(g.vb, 2 ** 32 - 1); // the largest u32 is a valid target
    expect(g.vb.config_num_pages).toBe(2 ** 32 - 1);
    for (const id of [2 ** 32, -1, 3.5])
      expect(() => virtio_balloon_set_free_page_hint_cmd_id(g.vb, id)).toThrow(
        /hint command id .* is not a u32/,
      );
    const plain = small_guest();
    expect(() => virtio_balloon_set_free_page_hint_cmd_id(plain.vb, 5)).toThrow(
      /FREE_PAGE_HINT was not negotiated/,
    );
  });

  it("balloon: the host rejects an inflate naming a pfn already ballooned; counted, logged, lists intact", () => {
    const g = small_guest();
    const { hg, vb, e } = g;
    hg.set_target_pages(300);
    run_until(e, () => balloon_settled(g), 1_000_000);
    const p = g.m.mem.lru_next[vb.vb_dev_info.pages];
    expect(hg.frame[p]).toBe(FRAME_BALLOONED);
    virtqueue_add_outbuf(vb, vb.vqs[VQ_INFLATE], [p], 1, true);
    run_until(e, () => !hg.has_avail(), 10_000);
    expect(hg.rejected).toBe(1);
    expect(hg.rejections).toEqual([`inflate: pfn ${p} already ballooned`]);
    expect(hg.ballooned_pages).toBe(300);
    check_quiescent(g);
  });

  it("balloon: the host returns a stats buffer id the guest never made available: BAD_RING, the stats queue breaks, nothing else changes", () => {
    const g = small_guest(F(VIRTIO_BALLOON_F_STATS_VQ));
    const { hg, vb, e } = g;
    run_until(e, () => hg.stats_slot >= 0, 100_000); // the device holds the first buffer
    hg.return_used(VQ_STATS, 99);
    run_until(e, () => vb.bad_used === 1, 100_000);
    expect(vb.vqs[VQ_STATS].broken).toBe(true);
    expect(vb.errors).toEqual([
      "virtio_balloon 'guest': stats: used id 99 out of range; queue broken",
    ]);
    // The host asks for stats the proper way now: the broken queue answers nothing.
    hg.request_stats();
    run_until(e, () => hg.stats_outstanding && !vb.stats_work, 100_000);
    expect(hg.stats_updates).toBe(1);
    expect(hg.stats_answers).toBe(0);
    // Resizing does not use the stats queue: it still works.
    hg.set_target_pages(300);
    run_until(
      e,
      () => balloon_settled(g),
      1_000_000,
      () => check_all(g),
    );
    check_quiescent(g);
  });

  it("balloon: the host returns an inflate buffer id the guest never made available: the batch in flight completes, the device stops, the list is intact", () => {
    const g = small_guest();
    const { hg, vb, e } = g;
    hg.return_used(VQ_INFLATE, 2); // slot 2 was never made available
    hg.set_target_pages(600);
    run_until(
      e,
      () => vb.bad_used === 1 && vb.balloon_lock.owner === -1 && !vb.size_work,
      1_000_000,
      () => check_all(g),
    );
    expect(vb.vqs[VQ_INFLATE].broken).toBe(true);
    expect(vb.errors).toEqual([
      "virtio_balloon 'guest': inflate: used id 2 is not a buffer the device had; queue broken",
    ]);
    // The one batch posted before the bad id came back finished; nothing after.
    expect(vb.num_pages).toBe(VIRTIO_BALLOON_ARRAY_PFNS_MAX);
    expect(hg.ballooned_pages).toBe(VIRTIO_BALLOON_ARRAY_PFNS_MAX);
    expect(verify_balloon_dev_info(g.bc, vb.vb_dev_info)).toBe(VIRTIO_BALLOON_ARRAY_PFNS_MAX);
    check_quiescent(g);
    // A broken device moves no page either way.
    hg.set_target_pages(0);
    run_until(e, () => !vb.size_work && vb.balloon_lock.owner === -1, 100_000);
    expect(vb.num_pages).toBe(VIRTIO_BALLOON_ARRAY_PFNS_MAX);
    check_quiescent(g);
  });
});
