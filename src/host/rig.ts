/**
 * host/rig.ts: wiring for one ballooned guest, for scenario runners, tests
 * and benchmarks: boot a machine with its MmState, the balloon compaction
 * interface and a virtio-balloon device; attach it to a Host; spawn the
 * driver's worker and the host's device thread on an Execution; run the
 * execution in simulated-time order until a condition holds; shut down.
 * The scenario runner (sim/balloon_sim.ts) builds its own machines and uses
 * the two pieces underneath: attach_virtio_balloon() (probe a device on a
 * guest's balloon interface, give the host a view of it) and
 * virtio_balloon_threads() (the driver's work queue, the host's device
 * thread, the free page reporting worker).
 *
 * Nothing here is kernel behaviour; it only builds and drives. The model
 * checker can use the same pieces with its own scheduling policy instead of
 * run_until().
 */

import { BalloonCompaction, type BalloonCompactionOptions } from "../kernel/balloon_compaction.ts";
import { boot, type MachineConfig } from "../kernel/boot.ts";
import { balloon_era2016 } from "../kernel/eras/era2016.ts";
import { era_of_balloon } from "../kernel/eras/index.ts";
import type { Machine } from "../kernel/machine.ts";
import { MmState } from "../kernel/mm/state.ts";
import { page_reporting_worker } from "../kernel/page_reporting.ts";
import {
  type VirtioBalloon,
  virtballoon_probe,
  virtballoon_worker,
} from "../kernel/virtio_balloon.ts";
import { DeadlockError, Execution, LockBug } from "../runtime/execution.ts";
import type { Runtime, Step } from "../runtime/runtime.ts";
import { Host, type HostGuest, host_device_thread } from "./host.ts";

export interface BalloonGuest {
  m: Machine;
  mm: MmState;
  e: Execution;
  bc: BalloonCompaction;
  vb: VirtioBalloon;
  hg: HostGuest;
  host: Host;
  /** Thread ids of the driver's worker and the host's device thread. */
  worker: number;
  device: number;
  /** Thread id of the free page reporting worker, or -1 without REPORTING. */
  reporting: number;
}

export interface BalloonGuestOptions {
  machine: MachineConfig;
  /** Feature bits the device offers. */
  features: number;
  balloon?: BalloonCompactionOptions;
  latency_ns?: number;
  host?: Host;
  name?: string;
  /** Simulated ns per step (0: only sleeps and latencies take time). */
  step_ns?: number;
  oom_pages?: number;
  /** Run on this execution (several guests on one host, one scheduler). */
  execution?: Execution;
  /**
   * Build the execution in coalesce mode (runtime/execution.ts): run_until()
   * without `each` or `pick` then takes a thread's uncontended steps
   * without scheduler round trips; the same schedule, state and step
   * count. Ignored with `execution`.
   */
  coalesce?: boolean;
}

export interface VirtioBalloonAttachOptions {
  name: string;
  /** Feature bits the device offers. */
  features: number;
  latency_ns?: number;
  oom_pages?: number;
}

/**
 * Probe a virtio-balloon device on a guest's balloon interface and give it
 * a view on `host` (QEMU's side of the device). Spawns nothing: the
 * threads come from virtio_balloon_threads().
 */
export function attach_virtio_balloon(
  bc: BalloonCompaction,
  host: Host,
  opts: VirtioBalloonAttachOptions,
): { vb: VirtioBalloon; hg: HostGuest } {
  const vb = virtballoon_probe(bc, {
    name: opts.name,
    device_features: opts.features,
    oom_pages: opts.oom_pages,
  });
  const hg = host.add_guest(vb, { name: opts.name, latency_ns: opts.latency_ns });
  return { vb, hg };
}

/**
 * The threads a virtio-balloon device needs, in spawn order: the driver's
 * work queue, the host's device thread, and the free page reporting worker
 * when REPORTING was negotiated.
 */
export function virtio_balloon_threads(
  vb: VirtioBalloon,
  hg: HostGuest,
): { name: string; role: "worker" | "device" | "reporting"; body: (rt: Runtime) => Step }[] {
  const out: {
    name: string;
    role: "worker" | "device" | "reporting";
    body: (rt: Runtime) => Step;
  }[] = [
    { name: `${vb.name}:vballoon`, role: "worker", body: (rt) => virtballoon_worker(rt, vb) },
    { name: `${vb.name}:host`, role: "device", body: (rt) => host_device_thread(rt, hg) },
  ];
  const prdev = vb.pr_dev_info;
  if (prdev) {
    const m = vb.bc.mm.m;
    out.push({
      name: `${vb.name}:page_reporting`,
      role: "reporting",
      body: (rt) => page_reporting_worker(rt, m, prdev),
    });
  }
  return out;
}

/** Boot a guest with a virtio balloon, wired to a host, threads spawned. */
export function boot_balloon_guest(opts: BalloonGuestOptions): BalloonGuest {
  const m = boot({ layout: "normal", ...opts.machine });
  const e =
    opts.execution ??
    new Execution({ choose: () => 0, step_ns: opts.step_ns ?? 0, coalesce: opts.coalesce });
  // The movable core of the balloon's era (eras/index.ts).
  const era = era_of_balloon(opts.balloon?.era ?? balloon_era2016).movable;
  const mm = new MmState(m, era, (c, k) => e.new_lock(c, k));
  const bc = new BalloonCompaction(mm, opts.balloon ?? {});
  const name = opts.name ?? "guest";
  const host = opts.host ?? new Host();
  const { vb, hg } = attach_virtio_balloon(bc, host, {
    name,
    features: opts.features,
    latency_ns: opts.latency_ns,
    oom_pages: opts.oom_pages,
  });
  let worker = -1;
  let device = -1;
  let reporting = -1;
  for (const t of virtio_balloon_threads(vb, hg)) {
    const id = e.spawn(t.name, t.body);
    if (t.role === "worker") worker = id;
    else if (t.role === "device") device = id;
    else reporting = id;
  }
  return { m, mm, e, bc, vb, hg, host, worker, device, reporting };
}

/**
 * Step `e` until `done()` holds, calling `each` after every step when
 * given. The next thread is the one `pick` chooses among the runnable ones
 * (default: simulated-time order, Execution.earliest). An execution in
 * coalesce mode coalesces only under the default order and without
 * `each` (which wants every step); `done()` is then tested after each
 * step() call, which may have taken several steps of one thread: a
 * condition that holds only between two of them goes unseen.
 */
export function run_until(
  e: Execution,
  done: () => boolean,
  steps_max: number,
  each?: () => void,
  pick?: (runnable: number[]) => number,
): void {
  const coalesce = e.coalesce;
  if (each || pick) e.coalesce = false;
  try {
    run_until_inner(e, done, steps_max, each, pick);
  } finally {
    e.coalesce = coalesce;
  }
}

function run_until_inner(
  e: Execution,
  done: () => boolean,
  steps_max: number,
  each?: () => void,
  pick?: (runnable: number[]) => number,
): void {
  const limit = e.steps + steps_max;
  const threads = e.threads;
  while (!done()) {
    let next = -1;
    if (pick) {
      const r = e.runnable();
      if (r.length > 0) next = pick(r);
    } else {
      // Execution.earliest() over the runnable threads, without building
      // the array (this loop runs once per step).
      let best_ns = Number.POSITIVE_INFINITY;
      for (let i = 0; i < threads.length; i++) {
        if (!e.enabled(i)) continue;
        const ns = e.ready_ns(i);
        if (ns < best_ns) {
          best_ns = ns;
          next = i;
        }
      }
    }
    if (next < 0) {
      if (e.finished())
        throw new LockBug("run_until: every thread finished before the condition held");
      throw new DeadlockError(e.wait_for());
    }
    if (e.steps >= limit)
      throw new LockBug(`run_until: condition not reached in ${steps_max} steps`);
    e.step(next);
    each?.();
  }
}

/** The balloon has reached its target and nothing is queued or in flight. */
export function balloon_settled(g: BalloonGuest): boolean {
  const { vb, hg } = g;
  return (
    vb.num_pages === vb.config_num_pages &&
    !vb.size_work &&
    vb.balloon_lock.owner === -1 &&
    !hg.has_avail()
  );
}

/** Stop the worker, then the host thread, and run both to their end. */
export function shutdown_balloon(g: BalloonGuest, steps_max = 1 << 24): void {
  const { e, vb, hg } = g;
  vb.stop_update = true;
  run_until(e, () => e.threads[g.worker].done, steps_max);
  if (vb.pr_dev_info) {
    const prdev = vb.pr_dev_info;
    prdev.stop = true;
    run_until(e, () => e.threads[g.reporting].done, steps_max);
  }
  hg.stopped = true;
  run_until(e, () => e.threads[g.device].done, steps_max);
}
