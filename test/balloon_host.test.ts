// The host side: several guests on one host, QEMU-like control, host memory
// over time, and the automatic policy (keep free memory near a goal,
// reclaim first from the guest with most free memory).
import { describe, expect, it } from "vitest";
import { check_balloon_safety, Host, HostControlError } from "../src/host/host.ts";
import { balloon_settled, boot_balloon_guest, run_until } from "../src/host/rig.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { VIRTIO_BALLOON_F_STATS_VQ } from "../src/kernel/virtio_balloon.ts";
import { Execution } from "../src/runtime/execution.ts";
import { check_quiescent, F, MiB } from "./balloon_helpers.ts";

function two_guests() {
  const host = new Host();
  const e = new Execution({ choose: () => 0 });
  const mk = (name: string) =>
    boot_balloon_guest({
      machine: { mem_bytes: 64 * MiB, nr_cpus: 2 },
      features: F(VIRTIO_BALLOON_F_STATS_VQ),
      host,
      execution: e,
      name,
    });
  return { host, e, busy: mk("busy"), idle: mk("idle") };
}

describe("host", () => {
  it("host: the policy takes 32 MiB from the guest with most free memory first and keeps the busy one whole", () => {
    const { host, e, busy, idle } = two_guests();
    // The busy guest's workload uses 40 MiB.
    for (let i = 0; i < (40 * MiB) / 4096; i++)
      expect(alloc_pages(busy.m, 0, GFP_HIGHUSER_MOVABLE, 0)).toBeGreaterThanOrEqual(0);
    busy.hg.request_stats();
    idle.hg.request_stats();
    run_until(e, () => busy.hg.stats_updates > 0 && idle.hg.stats_updates > 0, 10_000);
    const total0 = host.sample(e.now_ns);
    const targets = host.rebalance(16 * MiB, 32 * MiB);
    expect(targets).toEqual({ idle: (32 * MiB) / 4096, busy: 0 });
    let n = 0;
    run_until(
      e,
      () => balloon_settled(busy) && balloon_settled(idle),
      1_000_000,
      () => {
        if (++n % 97 !== 0) return;
        check_balloon_safety(busy.hg);
        check_balloon_safety(idle.hg);
      },
    );
    check_quiescent(idle);
    check_quiescent(busy);
    const total1 = host.sample(e.now_ns);
    expect(total0 - total1).toBe((32 * MiB) / 4096);
    expect(idle.hg.query_balloon().actual).toBe(idle.hg.ram_bytes - 32 * MiB);
    expect(busy.hg.history.map((s) => s.backed_pages)).toEqual([
      busy.hg.ram_pages,
      busy.hg.ram_pages,
    ]);
    // The idle guest has about 30 MiB free, above the 16 MiB goal: a round
    // with nothing to reclaim leaves both as they are.
    idle.hg.request_stats();
    run_until(e, () => idle.hg.stats_updates > 1, 10_000);
    expect(host.rebalance(16 * MiB, 0)).toEqual({ idle: (32 * MiB) / 4096, busy: 0 });
    // A goal above its free memory gives memory back.
    const back = host.rebalance(48 * MiB, 0);
    expect(back.idle).toBeLessThan((32 * MiB) / 4096);
    expect(() => host.rebalance(-1)).toThrow(HostControlError);
  });
});
