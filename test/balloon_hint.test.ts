// Free page hinting (VIRTIO_BALLOON_F_FREE_PAGE_HINT): a round started by
// the host hints free 4 MiB blocks that the guest holds until DONE.
import { describe, expect, it } from "vitest";
import { check_balloon_safety, FRAME_REPORTED, HostControlError } from "../src/host/host.ts";
import { boot_balloon_guest, run_until, shutdown_balloon } from "../src/host/rig.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import {
  BalloonConfigError,
  VIRTIO_BALLOON_CMD_ID_STOP,
  VIRTIO_BALLOON_F_FREE_PAGE_HINT,
  VIRTIO_BALLOON_HINT_BLOCK_ORDER,
} from "../src/kernel/virtio_balloon.ts";
import { NR_FREE_PAGES } from "../src/kernel/vmstat_items.ts";
import { F, MiB, small_guest } from "./balloon_helpers.ts";

describe("free page hinting", () => {
  it("hint: a round hints the guest's free 4 MiB blocks, held until DONE, then given back", () => {
    const g = boot_balloon_guest({
      machine: { mem_bytes: 256 * MiB, nr_cpus: 2 },
      features: F(VIRTIO_BALLOON_F_FREE_PAGE_HINT),
    });
    const { m, e, vb, hg } = g;
    const free = () => m.zones.reduce((a, z) => a + z.vm_stat[NR_FREE_PAGES], 0);
    const free0 = free();
    hg.start_free_page_hint(2);
    run_until(
      e,
      () =>
        vb.cmd_id_active === 2 &&
        hg.hint_cmd_id_seen === VIRTIO_BALLOON_CMD_ID_STOP &&
        !hg.has_avail(),
      1_000_000,
      () => check_balloon_safety(hg),
    );
    const blocks = vb.num_free_page_blocks;
    const size = 1 << VIRTIO_BALLOON_HINT_BLOCK_ORDER;
    // Most of a fresh guest's free memory is in such blocks.
    expect(blocks * size).toBeGreaterThan(free0 / 2);
    expect(hg.hinted_blocks).toBe(blocks);
    expect(hg.reported_pages).toBe(blocks * size);
    expect(free()).toBe(free0 - blocks * size);
    // Held by the driver: not counted as reused by the host.
    hg.sample(e.now_ns);
    expect(hg.reported_pages).toBe(blocks * size);
    // The same id again does not start a new round.
    hg.start_free_page_hint(2);
    run_until(e, () => !vb.free_page_work && !hg.has_avail(), 10_000);
    expect(hg.hinted_blocks).toBe(blocks);
    hg.free_page_hint_done();
    run_until(e, () => vb.num_free_page_blocks === 0, 100_000);
    expect(free()).toBe(free0);
    let reported = 0;
    for (let p = 0; p < hg.frame.length; p++) if (hg.frame[p] === FRAME_REPORTED) reported++;
    expect(reported).toBe(hg.reported_pages);
    check_balloon_safety(hg);
    shutdown_balloon(g);
    verify_machine(m);
  });

  it("hint: bad command ids and an unnegotiated feature are refused", () => {
    const g = boot_balloon_guest({
      machine: { mem_bytes: 32 * MiB },
      features: F(VIRTIO_BALLOON_F_FREE_PAGE_HINT),
    });
    expect(() => g.hg.start_free_page_hint(1)).toThrow(HostControlError);
    expect(() => g.hg.start_free_page_hint(2.5)).toThrow(/must be >= 2/);
    const plain = small_guest(0);
    expect(() => plain.hg.start_free_page_hint(7)).toThrow(BalloonConfigError);
  });
});
