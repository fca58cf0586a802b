// The host side: several guests on one host, QEMU-like control, host memory
// over time, and the automatic policy (keep free memory near a goal,
// reclaim first from the guest with most free memory).
import { describe, expect, it } from "vitest";
import { check_balloon_safety, FRAME_BALLOONED, Host, HostControlError } from "../src/host/host.ts";
import { balloon_settled, boot_balloon_guest, run_until } from "../src/host/rig.ts";
import { __balloon_page_delete } from "../src/kernel/balloon_compaction.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { list_add } from "../src/kernel/list.ts";
import { MIGRATE_SYNC, MR_COMPACTION, migrate_pages } from "../src/kernel/migrate.ts";
import { isolate_movable_page } from "../src/kernel/movable_ops.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import {
  VIRTIO_BALLOON_F_FREE_PAGE_HINT,
  VIRTIO_BALLOON_F_STATS_VQ,
} from "../src/kernel/virtio_balloon.ts";
import { Execution } from "../src/runtime/execution.ts";
import type { Runtime } from "../src/runtime/runtime.ts";
import { check_quiescent, F, MiB, small_guest } from "./balloon_helpers.ts";

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
    run_until(e, () => busy.hg.stats_answers > 0 && idle.hg.stats_answers > 0, 10_000);
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
    run_until(e, () => idle.hg.stats_answers > 1, 10_000);
    expect(host.rebalance(16 * MiB, 0)).toEqual({ idle: (32 * MiB) / 4096, busy: 0 });
    // A goal above its free memory gives memory back.
    const back = host.rebalance(48 * MiB, 0);
    expect(back.idle).toBeLessThan((32 * MiB) / 4096);
    expect(() => host.rebalance(-1)).toThrow(HostControlError);
  });
});

describe("host: the safety property at the point of use", () => {
  /** A buggy driver: take listed balloon page `p` back and free it without telling the host. */
  function leak_silently(g: ReturnType<typeof small_guest>, p: number): void {
    __balloon_page_delete(g.bc, g.vb.vb_dev_info, p);
    g.vb.num_pages--;
    g.m.mem.mapping[p] = 0;
    __free_pages(g.m, 0, p, 0);
  }

  it("host: the guest allocating a frame the host discarded as ballooned is caught in the allocator", () => {
    const g = small_guest();
    g.hg.set_target_pages(200);
    run_until(g.e, () => balloon_settled(g), 1_000_000);
    const p = g.m.mem.lru_next[g.vb.vb_dev_info.pages];
    expect(g.hg.frame[p]).toBe(FRAME_BALLOONED);
    leak_silently(g, p);
    const held: number[] = [];
    expect(() => {
      for (let i = 0; i < 10_000; i++) held.push(alloc_pages(g.m, 0, GFP_HIGHUSER_MOVABLE, 0));
    }).toThrow(new RegExp(`at pfn ${p}: the guest allocates a frame the host discarded`));
    expect(held).not.toContain(p);
  });

  it("host: compaction migrating data into a frame the host discarded as ballooned is caught", () => {
    const g = small_guest();
    const { m, mm, e } = g;
    g.hg.set_target_pages(200);
    run_until(e, () => balloon_settled(g), 1_000_000);
    const b = g.vb.vb_dev_info;
    const bad = m.mem.lru_next[b.pages];
    leak_silently(g, bad);
    // Take the frame off the free lists without the observer (as compaction's
    // free scanner does: it never goes through the allocator).
    const hook = m.hooks.page_use;
    m.hooks.page_use = null;
    let got = -1;
    const held: number[] = [];
    for (let i = 0; i < 10_000 && got < 0; i++) {
      const p = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
      if (p === bad) got = p;
      else held.push(p);
    }
    m.hooks.page_use = hook;
    expect(got).toBe(bad);
    const victim = m.mem.lru_next[b.pages];
    const l = m.mem.alloc_list_head();
    e.spawn("compact", function* (rt: Runtime) {
      expect(yield* isolate_movable_page(rt, mm, victim, 0)).toBe(0);
      list_add(m.mem, victim, l);
      yield* migrate_pages(rt, mm, l, () => bad, null, MIGRATE_SYNC, MR_COMPACTION);
    });
    expect(() => run_until(e, () => false, 100_000)).toThrow(
      new RegExp(`at pfn ${bad}: the guest migrates data into a frame the host discarded`),
    );
  });

  it("host: frames free page hinting discarded may be reused without a violation", () => {
    const g = small_guest(F(VIRTIO_BALLOON_F_FREE_PAGE_HINT));
    g.hg.start_free_page_hint(7);
    run_until(g.e, () => g.hg.hinted_blocks > 0 && !g.hg.has_avail(), 1_000_000);
    g.hg.free_page_hint_done();
    run_until(g.e, () => g.vb.num_free_page_blocks === 0, 1_000_000);
    const reported = g.hg.reported_pages;
    expect(reported).toBeGreaterThan(0);
    // The guest takes its memory back, the hinted frames among it.
    while (alloc_pages(g.m, 0, GFP_HIGHUSER_MOVABLE, 0) >= 0);
    g.hg.sample(g.e.now_ns);
    expect(g.hg.reported_pages).toBeLessThan(reported / 2);
  });
});
