/**
 * Helpers for the balloon tests: a small ballooned guest and the invariants
 * of the balloon, the driver and the host (every step / quiescent points).
 */
import { expect } from "vitest";
import { check_balloon_safety, host_device_thread } from "../src/host/host.ts";
import { type BalloonGuest, boot_balloon_guest } from "../src/host/rig.ts";
import { balloon_pages_owned, verify_balloon_dev_info } from "../src/kernel/balloon_compaction.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import type { BalloonEra } from "../src/kernel/eras/era.ts";
import { balloon_era2016 } from "../src/kernel/eras/era2016.ts";
import { ERAS as ERA_REGISTRY } from "../src/kernel/eras/index.ts";
import { list_count_nodes } from "../src/kernel/list.ts";
import {
  VIRTIO_BALLOON_F_MUST_TELL_HOST,
  virtballoon_probe,
  virtballoon_worker,
} from "../src/kernel/virtio_balloon.ts";

export const MiB = 1024 ** 2;
export const F = (...bits: number[]) => bits.reduce((a, b) => a | (1 << b), 0);

/** The balloon eras the tests run under: every era of the registry. */
export const ERAS: readonly BalloonEra[] = Object.values(ERA_REGISTRY).map((e) => e.balloon);

/**
 * Whether the era's balloon_page_dequeue() walks the list under pages_lock
 * (2016 on). In 2012 and 2014 the walk is unlocked and can follow a link
 * that a concurrent isolation poisoned, or delete a page compaction has
 * just isolated (2012): a hole of those kernels that the random tests find
 * (test/eras.test.ts shows it), so they do not claim safety there.
 */
export function dequeue_walk_locked(era: BalloonEra): boolean {
  return era.isolation === "core";
}

export function small_guest(
  features = F(VIRTIO_BALLOON_F_MUST_TELL_HOST),
  mem = 32 * MiB,
  era: BalloonEra = balloon_era2016,
) {
  return boot_balloon_guest({
    machine: { mem_bytes: mem, nr_cpus: 2, track_content: true },
    features,
    latency_ns: 50_000,
    balloon: { era },
  });
}

/**
 * A second virtio-balloon device on the guest's balloon interface, with its
 * own host view and threads; returned as a BalloonGuest sharing the rest.
 */
export function add_device(g: BalloonGuest, name: string, features = 0): BalloonGuest {
  const vb = virtballoon_probe(g.bc, { name, device_features: features });
  const hg = g.host.add_guest(vb, { latency_ns: 10_000 });
  const worker = g.e.spawn(`${name}:vballoon`, (rt) => virtballoon_worker(rt, vb));
  const device = g.e.spawn(`${name}:host`, (rt) => host_device_thread(rt, hg));
  return { ...g, vb, hg, worker, device, reporting: -1 };
}

/**
 * The invariants that hold between any two steps (O(guest pages); the
 * tests call it after every step of small guests):
 *  - the safety property (check_balloon_safety): the host's ballooned set
 *    is the device's balloon pages plus the pfns in flight, and no frame
 *    the host discarded is in use;
 *  - the list: its length is nr_listed (the per-page checks of
 *    verify_balloon_dev_info(..., mid_step) run every 64th call: a listed
 *    page is a balloon page of this device with a reference, not isolated
 *    unless its page lock is held, the core being between putback and
 *    clearing the flag);
 *  - isolated_pages: the device's pages off its list (by the era's
 *    identity) are isolated_pages, plus the old page of a migratepage
 *    between its two messages.
 * What needs quiescence is in check_quiescent().
 */
let calls = 0;
export function check_all(g: BalloonGuest): void {
  const { bc, vb } = g;
  const b = vb.vb_dev_info;
  const owned = check_balloon_safety(g.hg);
  const mem = g.m.mem;
  const listed = list_count_nodes(mem, b.pages, mem.nr_pages);
  if (listed !== b.nr_listed)
    expect.fail(`balloon '${b.name}': list has ${listed} pages, nr_listed ${b.nr_listed}`);
  if (b.isolated_pages < 0) expect.fail(`balloon '${b.name}': isolated_pages < 0`);
  const off_list = owned - listed;
  if ((++calls & 63) === 0) verify_balloon_dev_info(bc, b, true);
  if (off_list !== b.isolated_pages + (vb.migrating_pfn >= 0 ? 1 : 0))
    expect.fail(
      `balloon '${b.name}': ${off_list} pages off the list, isolated_pages ${b.isolated_pages}, migrating ${vb.migrating_pfn}`,
    );
}

/**
 * The invariants that hold only when nothing is in progress: the driver's
 * num_pages is listed + isolated (fill and leak count a page a step or more
 * after enqueue / dequeue in 2012 and 2014), the host has processed every
 * message (its count is the driver's), config.actual (written after each
 * worker round), and the whole machine's free lists (verify_machine).
 */
export function check_quiescent(g: BalloonGuest): void {
  const { bc, vb, hg, m } = g;
  const b = vb.vb_dev_info;
  const listed = verify_balloon_dev_info(bc, b);
  expect(listed + b.isolated_pages).toBe(vb.num_pages);
  expect(balloon_pages_owned(bc, b)).toBe(vb.num_pages);
  expect(hg.ballooned_pages).toBe(vb.num_pages);
  expect(vb.config_actual).toBe(vb.num_pages);
  expect(hg.query_balloon().actual).toBe(hg.ram_bytes - vb.num_pages * 4096);
  check_balloon_safety(hg);
  verify_machine(m);
}
