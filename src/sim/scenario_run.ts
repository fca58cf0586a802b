/**
 * sim/scenario_run.ts: runs a scenario on the virtual clock. It boots the
 * machine the scenario describes, and runs a few simulated threads in one
 * Execution whose scheduler always steps the thread whose next step comes
 * first in simulated time (Execution.earliest: a discrete-event simulation):
 *
 *   thread 0  "workload" (CPU 0): the timeline events and the generators'
 *             events in time order; sleeps (schedule_timeout) until the next.
 *   thread 1  "compact_memory" (CPU 1): a shell writing
 *             /proc/sys/vm/compact_memory; it sleeps in wait_event() until
 *             the workload asks, then runs compact_nodes(), concurrently
 *             with the workload (they share the LRU lock and the zones).
 *   thread 2  "sampler": every sample_interval takes a sample of metrics
 *             (and /proc snapshots when asked); every STAT_INTERVAL_NS runs
 *             the vmstat work (vmstat_update: pcp high decay).
 *
 * A thread's CPU is its id where id < nr_cpus (mm/lru.ts this_cpu()), CPU 0
 * otherwise. Kernel steps cost `step_ns` of simulated time each.
 *
 * Balloons and the host (sim/balloon_sim.ts): after these, each balloon
 * device adds its driver's work queue ("NAME:vballoon"), the host's device
 * thread ("NAME:host") and, with free page reporting, the reporting worker;
 * the first guest adds the host's policy thread ("host:policy"). A
 * `balloon_target` event sets a device's target through the host.
 * Several guests on one host (host.guests > 1) are identical guests, each
 * in its own Execution (so thread ids, and thus CPUs, are the same in every
 * guest) with its own Prng (seed + guest index); run_guests() steps the
 * thread whose next step comes first over all of them. The run ends when
 * every guest's workload, compaction and sampler threads (and the policy)
 * are done; balloon threads are left where they are.
 * The first guest is the result's top level; `guests` summarises each.
 * Eras: every era of the registry runs (kernel/eras/index.ts: 2012, 2014,
 * 2016, 2022, 2025, 2026): MmState gets the era's movable core and the
 * balloon its balloon protocol. unsupported() refuses, before anything
 * runs, what the era's kernel did not have (balloon_sim.ts).
 *
 * Determinism: all randomness of a guest is one Prng seeded from the
 * scenario's seed (plus the guest's index; the workload's draws and the
 * scheduler's rt.choose()); the event queue orders ties by insertion; the
 * host's policy draws nothing. The digest folds every page the workload got
 * or gave back, every event, every balloon target, every sample and, last,
 * the steps taken (so eras that lock differently differ); with several
 * guests it is folded from each guest's digest.
 */

import { Host } from "../host/host.ts";
import type { BalloonCompaction } from "../kernel/balloon_compaction.ts";
import { boot } from "../kernel/boot.ts";
import { compact_nodes } from "../kernel/compaction.ts";
import { install_kcompactd_wakeup, Kcompactd, kcompactd } from "../kernel/compaction_daemon.ts";
import { install_direct_compaction } from "../kernel/compaction_direct.ts";
import { ERAS } from "../kernel/eras/index.ts";
import type { Machine } from "../kernel/machine.ts";
import { MmState } from "../kernel/mm/state.ts";
import { PAGE_SIZE } from "../kernel/page.ts";
import { setup_per_zone_wmarks } from "../kernel/page_alloc/watermark.ts";
import { vmstat_values } from "../kernel/procfs.ts";
import { STAT_INTERVAL_NS, vmstat_update } from "../kernel/vmstat.ts";
import {
  BALLOON_MIGRATE,
  COMPACTFREE_SCANNED,
  COMPACTMIGRATE_SCANNED,
  PGMIGRATE_FAIL,
  PGMIGRATE_SUCCESS,
} from "../kernel/vmstat_items.ts";
import { DeadlockError, Execution } from "../runtime/execution.ts";
import { Prng } from "../runtime/prng.ts";
import type { Runtime, Step } from "../runtime/runtime.ts";
import type { Problem } from "../workload/load.ts";
import type { EventItem, GeneratorItem, Scenario } from "../workload/scenario.ts";
import { format_duration } from "../workload/units.ts";
import {
  attach_balloons,
  type BalloonResult,
  balloon_problems,
  balloon_results,
  balloon_threads,
  type HostResult,
  host_policy_thread,
  host_result,
  sample_balloons,
} from "./balloon_sim.ts";
import { Digest } from "./digest.ts";
import { draw } from "./dist.ts";
import {
  type MemoryMap,
  memory_map,
  type ProcSnapshot,
  type Sample,
  take_proc_snapshot,
  take_sample,
} from "./sample.ts";
import {
  alloc_anon,
  type CompactRun,
  cache_grow,
  cache_shrink,
  free_anon,
  kernel_alloc,
  kernel_free,
  type TraceEvent,
  thp_faults,
  type WorkloadCounts,
  World,
} from "./world.ts";

export interface RunHooks {
  /** Called now and then with the simulated time reached (progress bars). */
  progress?: (t_ns: number, end_ns: number) => void;
  /** Keep /proc snapshots at every sample (for --out). */
  proc_snapshots?: boolean;
  /** Keep trace events (for --out). */
  trace?: boolean;
  /** Called once the machine booted (a bad machine throws before it). */
  on_boot?: () => void;
  /**
   * Called after each sample with the guest's World (tests: to disturb the
   * state between two samples and see the next sample's checks catch it).
   */
  on_sample?: (w: World, t_ns: number) => void;
  /** Called with the final state before the result is built (tests, checks). */
  at_end?: (m: Machine, mm: MmState) => void;
  /** /proc files to keep from the final state, by path. */
  final_proc?: (m: Machine) => Record<string, string>;
  /**
   * Run a lone guest's execution in the runtime's coalesce mode
   * (runtime/execution.ts): the same steps, schedule and state, fewer
   * scheduler round trips. Default true; tests switch it off to compare.
   * Several guests never coalesce: they share one clock across
   * executions, which the coalesce rule cannot see.
   */
  coalesce?: boolean;
}

export interface ZoneBuddy {
  zone: string;
  /** free_area[order].nr_free, as /proc/buddyinfo prints them. */
  free: number[];
}

export interface ScenarioResult {
  scenario: string;
  description: string;
  seed: number;
  era: string;
  machine: Scenario["machine"];
  kernel: Scenario["kernel"];
  duration_ns: number;
  /** Simulated time when the last thread finished. */
  end_ns: number;
  steps: number;
  digest: string;
  managed_pages: number;
  workload: WorkloadCounts;
  thp: { attempts: number; success: number; success_rate: number };
  compaction: {
    runs: number;
    pages_migrated: number;
    migrate_failures: number;
    migrate_scanned: number;
    free_scanned: number;
  };
  buddyinfo_start: ZoneBuddy[];
  buddyinfo: ZoneBuddy[];
  vmstat: Record<string, number>;
  timeline: Sample[];
  memory_maps: MemoryMap[];
  proc_snapshots: ProcSnapshot[];
  trace: TraceEvent[];
  trace_dropped: number;
  /** The files hooks.final_proc asked for, by path. */
  final_proc: Record<string, string>;
  /** Each compact_memory run (start, end, free 2 MiB blocks before and after). */
  compact_runs: CompactRun[];
  /** Lock waits by lock class: how many, and simulated ns spent waiting. */
  lock_waits: Record<string, { count: number; wait_ns: number }>;
  /** The first guest's balloon devices at the end ([] without). */
  balloons: BalloonResult[];
  /** Host memory per guest and in total (null without balloons). */
  host: HostResult | null;
  /** One summary per guest when the host runs several ([] otherwise). */
  guests: GuestSummary[];
}

/** A guest of a several-guest run, in brief. */
export interface GuestSummary {
  name: string;
  seed: number;
  digest: string;
  thp: ScenarioResult["thp"];
  pages_migrated: number;
  balloon_migrate: number;
  fault_failures: number;
  free_2mib_start: number;
  free_2mib_end: number;
  balloons: BalloonResult[];
}

/** What the runner cannot do yet or refuses: problems for `pagesim run` to print (exit 2). */
export function unsupported(sc: Scenario): Problem[] {
  return balloon_problems(sc);
}

/** A time-ordered queue of workload actions; ties keep insertion order. */
export class EventQueue {
  private t: number[] = [];
  private seq: number[] = [];
  private fn: ((rt: Runtime) => Step)[] = [];
  private n = 0;
  get size(): number {
    return this.t.length;
  }
  push(t: number, fn: (rt: Runtime) => Step): void {
    let i = this.t.length;
    this.t.push(t);
    this.seq.push(this.n++);
    this.fn.push(fn);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  peek_t(): number {
    return this.t[0];
  }
  pop(): (rt: Runtime) => Step {
    const top = this.fn[0];
    const last = this.t.length - 1;
    this.swap(0, last);
    this.t.pop();
    this.seq.pop();
    this.fn.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let s = i;
      if (l < this.t.length && this.less(l, s)) s = l;
      if (r < this.t.length && this.less(r, s)) s = r;
      if (s === i) break;
      this.swap(i, s);
      i = s;
    }
    return top;
  }
  private less(a: number, b: number): boolean {
    return this.t[a] < this.t[b] || (this.t[a] === this.t[b] && this.seq[a] < this.seq[b]);
  }
  private swap(a: number, b: number): void {
    [this.t[a], this.t[b]] = [this.t[b], this.t[a]];
    [this.seq[a], this.seq[b]] = [this.seq[b], this.seq[a]];
    [this.fn[a], this.fn[b]] = [this.fn[b], this.fn[a]];
  }
}

/** One simulated thread of the run. */
export interface SimThread {
  name: string;
  body: (rt: Runtime) => Step;
}

const pages_of = (bytes: number) => Math.ceil(bytes / PAGE_SIZE);

/** Run one timeline event (the workload thread's side of it). */
function* run_event(rt: Runtime, w: World, ev: EventItem): Step {
  switch (ev.type) {
    case "alloc_anon":
      return yield* alloc_anon(rt, w, ev.process, pages_of(ev.size), ev.pattern, ev.ways);
    case "free_anon":
      return yield* free_anon(rt, w, ev.process, ev.pattern, ev.percent);
    case "cache_grow":
      return yield* cache_grow(rt, w, ev.file, pages_of(ev.size));
    case "cache_shrink":
      return yield* cache_shrink(rt, w, ev.file, pages_of(ev.size), ev.pattern);
    case "kernel_alloc":
      return yield* kernel_alloc(
        rt,
        w,
        ev.name,
        ev.size,
        { min: ev.order, max: ev.order },
        ev.reclaimable ? 100 : 0,
        ev.keep_percent,
      );
    case "kernel_free":
      return yield* kernel_free(rt, w, ev.name, ev.percent);
    case "thp":
      return yield* thp_faults(rt, w, ev.process, ev.count, ev.fallback);
    case "compact_memory":
      w.compact_requests++;
      w.counts.compact_memory_writes++;
      return;
    case "sysctl":
      set_tunable(w.m, ev.name, ev.value);
      return;
    case "balloon_target": {
      // The host's control (QEMU's `balloon`), which raises the config interrupt.
      const pages = Math.floor(ev.size / PAGE_SIZE);
      w.digest.add(pages);
      w.balloons[ev.device].set_target_pages(pages);
      return;
    }
  }
}

/** A write to /proc/sys/vm/<name>. */
export function set_tunable(m: Machine, name: string, value: number): void {
  switch (name) {
    case "min_free_kbytes":
      m.sysctl.min_free_kbytes = value;
      m.sysctl.user_min_free_kbytes = value;
      setup_per_zone_wmarks(m);
      return;
    case "watermark_scale_factor":
      m.sysctl.watermark_scale_factor = value;
      setup_per_zone_wmarks(m);
      return;
    case "extfrag_threshold":
      m.sysctl.extfrag_threshold = value;
      return;
    case "compaction_proactiveness":
      m.sysctl.compaction_proactiveness = value;
      return;
    case "watermark_boost_factor":
      m.sysctl.watermark_boost_factor = value;
      return;
  }
  throw new RangeError(`unknown tunable ${name}`);
}

/** Schedule a generator's first arrival; each arrival schedules the next. */
function start_generator(w: World, q: EventQueue, g: GeneratorItem, end_ns: number): void {
  const until = Math.min(g.until ?? end_ns, end_ns);
  let k = 0;
  const arrive = (t: number) => {
    if (t >= until) return;
    q.push(t, function* (rt) {
      const id = k++;
      yield* generator_arrival(rt, w, q, g, id, t);
      arrive(t + Math.max(1, draw(w.prng, g.every)));
    });
  };
  arrive(g.from + draw(w.prng, g.every));
}

function* generator_arrival(
  rt: Runtime,
  w: World,
  q: EventQueue,
  g: GeneratorItem,
  id: number,
  t: number,
): Step {
  const pname = `${g.name}/${id}`;
  switch (g.type) {
    case "processes": {
      let live = 0;
      for (const p of w.procs.keys()) if (p.startsWith(`${g.name}/`)) live++;
      if (live >= g.max_live) return;
      w.counts.processes_started++;
      const pages = Math.max(1, pages_of(draw(w.prng, g.size)));
      q.push(t + draw(w.prng, g.lifetime), function* (rt2) {
        w.counts.processes_exited++;
        yield* free_anon(rt2, w, pname, "all", 100);
      });
      return yield* alloc_anon(rt, w, pname, pages, g.pattern, 2);
    }
    case "thp_hungry": {
      q.push(t + draw(w.prng, g.hold), (rt2) => free_anon(rt2, w, pname, "all", 100));
      return yield* thp_faults(rt, w, pname, g.count, g.fallback);
    }
    case "slab_mix": {
      q.push(t + draw(w.prng, g.lifetime), (rt2) => kernel_free(rt2, w, pname, 100));
      return yield* kernel_alloc(
        rt,
        w,
        pname,
        draw(w.prng, g.size),
        { min: 0, max: g.max_order },
        g.reclaimable_percent,
        g.keep_percent,
      );
    }
  }
}

const EVENT_CODES: Record<string, number> = {
  alloc_anon: 1,
  free_anon: 2,
  cache_grow: 3,
  cache_shrink: 4,
  kernel_alloc: 5,
  kernel_free: 6,
  thp: 7,
  compact_memory: 8,
  sysctl: 9,
  balloon_target: 10,
};

/** The workload thread: events in time order until the scenario's end. */
function workload_thread(w: World, q: EventQueue, end_ns: number): SimThread {
  return {
    name: "workload",
    body: function* (rt) {
      while (q.size > 0 && q.peek_t() < end_ns) {
        const t = q.peek_t();
        const ready = w.e.ready_ns(rt.current);
        if (t > ready) yield* rt.schedule_timeout(t - ready);
        const fn = q.pop();
        yield* fn(rt);
      }
      const ready = w.e.ready_ns(rt.current);
      if (end_ns > ready) yield* rt.schedule_timeout(end_ns - ready);
      w.done = true;
    },
  };
}

/** Wrap a timeline event so the trace shows it on the workload's CPU. */
function traced_event(w: World, ev: EventItem): (rt: Runtime) => Step {
  return function* (rt) {
    const t0 = rt.now();
    w.digest.add(EVENT_CODES[ev.type] ?? 0);
    yield* run_event(rt, w, ev);
    const args: Record<string, number | string> = {};
    for (const [k, v] of Object.entries(ev)) {
      if (typeof v === "number" || typeof v === "string") args[k] = v;
    }
    w.emit({
      name: ev.type,
      cat: "workload",
      ph: "X",
      ts: t0 / 1000,
      dur: Math.max(0, rt.now() - t0) / 1000,
      pid: 1,
      tid: cpu_of(w, rt.current),
      args,
    });
  };
}

export function cpu_of(w: World, thread: number): number {
  return thread < w.m.nr_cpus ? thread : 0;
}

/** The shell that writes compact_memory, on its own CPU. */
function compact_thread(w: World): SimThread {
  return {
    name: "compact_memory",
    body: function* (rt) {
      const ev = w.m.vm_events;
      for (;;) {
        yield* rt.wait_event(-1, "compact_memory", () => w.compact_requests > 0 || w.done);
        if (w.compact_requests === 0) return;
        w.compact_requests--;
        const t0 = rt.now();
        const before = [
          ev[PGMIGRATE_SUCCESS],
          ev[PGMIGRATE_FAIL],
          ev[COMPACTMIGRATE_SCANNED],
          ev[COMPACTFREE_SCANNED],
          ev[BALLOON_MIGRATE],
        ];
        const blocks_before = free_2mib_blocks(w.m);
        yield* compact_nodes(rt, w.mm);
        w.compaction_runs++;
        w.compact_log.push({
          t_start_ns: t0,
          t_end_ns: rt.now(),
          free_2mib_before: blocks_before,
          free_2mib_after: free_2mib_blocks(w.m),
          pgmigrate_success: ev[PGMIGRATE_SUCCESS] - before[0],
          balloon_migrate: ev[BALLOON_MIGRATE] - before[4],
        });
        w.digest.add(ev[PGMIGRATE_SUCCESS] - before[0]);
        w.emit({
          name: "compact_memory",
          cat: "compaction",
          ph: "X",
          ts: t0 / 1000,
          dur: Math.max(0, rt.now() - t0) / 1000,
          pid: 1,
          tid: cpu_of(w, rt.current),
          args: {
            pgmigrate_success: ev[PGMIGRATE_SUCCESS] - before[0],
            pgmigrate_fail: ev[PGMIGRATE_FAIL] - before[1],
            compact_migrate_scanned: ev[COMPACTMIGRATE_SCANNED] - before[2],
            compact_free_scanned: ev[COMPACTFREE_SCANNED] - before[3],
            balloon_migrate: ev[BALLOON_MIGRATE] - before[4],
          },
        });
      }
    },
  };
}

/** Free 2 MiB blocks now (an order-10 block counts as two). */
function free_2mib_blocks(m: Machine): number {
  let n = 0;
  for (const z of m.populated)
    for (let o = 9; o < z.nr_free.length; o++) n += z.nr_free[o] << (o - 9);
  return n;
}

/** Samples, /proc snapshots, memory pictures and the vmstat work, on a timer. */
function sampler_thread(
  w: World,
  end_ns: number,
  out: { timeline: Sample[]; procs: ProcSnapshot[]; maps: MemoryMap[] },
  hooks: RunHooks,
): SimThread {
  const interval = w.sc.sample_interval;
  const pictures = picture_times(w.sc, end_ns);
  return {
    name: "sampler",
    body: function* (rt) {
      let next_sample = interval;
      let next_stat = STAT_INTERVAL_NS;
      let p = 0;
      while (pictures[p] === 0) p++;
      for (;;) {
        const next_pic = p < pictures.length ? pictures[p] : Number.POSITIVE_INFINITY;
        const t = Math.min(next_sample, next_stat, next_pic);
        if (t >= end_ns) return;
        const ready = w.e.ready_ns(rt.current);
        if (t > ready) yield* rt.schedule_timeout(t - ready);
        if (t === next_stat) {
          vmstat_update(w.m);
          next_stat += STAT_INTERVAL_NS;
        }
        if (t === next_pic) {
          out.maps.push(memory_map(w.m, t, format_duration(t), w.thp_block));
          p++;
        }
        if (t === next_sample) {
          sample_now(w, t, out, hooks);
          hooks.on_sample?.(w, t);
          hooks.progress?.(t, end_ns);
          next_sample += interval;
        }
      }
    },
  };
}

function sample_now(
  w: World,
  t: number,
  out: { timeline: Sample[]; procs: ProcSnapshot[] },
  hooks: RunHooks,
): void {
  const s = take_sample(w.m, t, w.counts.kernel_pages);
  sample_balloons(w, s);
  w.digest.add(s.vmstat.nr_free_pages);
  w.digest.add(s.free_2mib_blocks);
  w.digest.add(s.balloon_pages);
  out.timeline.push(s);
  if (hooks.proc_snapshots) out.procs.push(take_proc_snapshot(w.m, t));
  /** A counter track of the trace, sampled at t. */
  const counter = (name: string, args: Record<string, number>) =>
    w.emit({ name, cat: "counters", ph: "C", ts: t / 1000, pid: 1, tid: 0, args });
  counter("memory", {
    nr_free_pages: s.vmstat.nr_free_pages,
    nr_anon_pages: s.vmstat.nr_anon_pages,
    nr_file_pages: s.vmstat.nr_file_pages,
    kernel_pages: s.kernel_pages,
  });
  counter("fragmentation", { free_2mib_blocks: s.free_2mib_blocks });
  counter("migration", {
    pgmigrate_success: s.vmstat.pgmigrate_success,
    pgmigrate_fail: s.vmstat.pgmigrate_fail,
  });
  counter("thp", {
    thp_fault_alloc: s.vmstat.thp_fault_alloc,
    thp_fault_fallback: s.vmstat.thp_fault_fallback,
  });
  if (w.balloons.length === 0) return;
  counter("balloon", {
    balloon_target_pages: s.balloon_target_pages,
    balloon_pages: s.balloon_pages,
    balloon_migrate: s.vmstat.balloon_migrate,
    host_backed_pages: s.host_backed_pages,
  });
}

/** Moments for pictures of memory between start and end: the scenario's, or the quarters. */
function picture_times(sc: Scenario, end_ns: number): number[] {
  const ts = sc.snapshots.length ? [...sc.snapshots] : [end_ns / 4, end_ns / 2, (3 * end_ns) / 4];
  return ts
    .map((t) => Math.round(t))
    .filter((t) => t > 0 && t < end_ns)
    .sort((a, b) => a - b);
}

/**
 * The threads of a guest, in spawn order (thread id = position = CPU where
 * it exists): the scenario's three, then each balloon device's (driver
 * work queue, host device thread, page reporting worker).
 */
export function sim_threads(
  w: World,
  q: EventQueue,
  end_ns: number,
  out: { timeline: Sample[]; procs: ProcSnapshot[]; maps: MemoryMap[] },
  hooks: RunHooks,
): SimThread[] {
  return [
    workload_thread(w, q, end_ns),
    compact_thread(w),
    sampler_thread(w, end_ns, out, hooks),
    ...balloon_threads(w),
  ];
}

function buddy(m: Machine): ZoneBuddy[] {
  return m.populated.map((z) => ({ zone: z.name, free: Array.from(z.nr_free) }));
}

function boot_machine(sc: Scenario): Machine {
  return boot({
    mem_bytes: sc.machine.memory,
    nr_cpus: sc.machine.cpus,
    layout: sc.machine.layout,
    movable_bytes: sc.machine.movable || undefined,
    sysctl: {
      ...(sc.kernel.min_free_kbytes !== undefined
        ? { min_free_kbytes: sc.kernel.min_free_kbytes }
        : {}),
      extfrag_threshold: sc.kernel.extfrag_threshold,
      compaction_proactiveness: sc.kernel.compaction_proactiveness,
      watermark_scale_factor: sc.kernel.watermark_scale_factor,
      watermark_boost_factor: sc.kernel.watermark_boost_factor,
      transparent_hugepage: sc.kernel.transparent_hugepage,
    },
  });
}

/** One guest of a run: its world, its execution and what it records. */
interface GuestRun {
  w: World;
  e: Execution;
  bc: BalloonCompaction | null;
  out: { timeline: Sample[]; procs: ProcSnapshot[]; maps: MemoryMap[] };
  buddyinfo_start: ZoneBuddy[];
  /** Threads that must finish for the run to end. */
  main: number[];
}

/** Guest k's seed: the scenario's for the first guest, then seed + k. */
function guest_seed(seed: number, k: number): number {
  return k === 0 ? seed : (seed + k) % Number.MAX_SAFE_INTEGER;
}

/** Boot guest k, attach its balloons to `host`, queue its workload, spawn its threads. */
function start_guest(
  sc: Scenario,
  k: number,
  n_guests: number,
  m: Machine,
  host: Host,
  hooks: RunHooks,
): GuestRun {
  const prng = new Prng(guest_seed(sc.seed, k));
  const e = new Execution({
    choose: (n) => prng.below(n),
    step_ns: sc.step_ns,
    lockdep: false,
    // run_guests() picks by simulated time, ties to the lowest id, which is
    // earliest()'s order; with one guest no other execution shares the clock.
    coalesce: n_guests === 1 && (hooks.coalesce ?? true),
  });
  const mm = new MmState(m, ERAS[sc.era].movable, (c, kind) => e.new_lock(c, kind));
  const w = new World(sc, m, mm, e, prng, k === 0 && (hooks.trace ?? false));
  w.guest_name = n_guests > 1 ? `guest${k}` : "guest";
  const bc = attach_balloons(sc, mm, host, w, w.guest_name);
  e.on_lock_wait = (thread, lock, from_ns, to_ns) =>
    lock_wait(w, thread, lock.lock_class, from_ns, to_ns);
  const end_ns = sc.duration;
  const q = new EventQueue();
  for (const item of sc.workload) {
    if ("at" in item) q.push(item.at, traced_event(w, item));
  }
  for (const item of sc.workload) {
    if (!("at" in item)) start_generator(w, q, item, end_ns);
  }
  const out = { timeline: [] as Sample[], procs: [] as ProcSnapshot[], maps: [] as MemoryMap[] };
  const buddyinfo_start = buddy(m);
  const h = k === 0 ? hooks : {};
  sample_now(w, 0, out, h);
  out.maps.push(memory_map(m, 0, "start", w.thp_block));
  const threads = sim_threads(w, q, end_ns, out, h);
  for (const t of threads) e.spawn(t.name, t.body);
  // The kernel's own compaction: direct compaction inside the allocating
  // thread's step, and kcompactd as a thread of its own that sleeps until
  // woken or until its proactive timeout (not a main thread: the run ends
  // without it).
  const traced = w.trace ? trace_compaction(w) : null;
  if (sc.kernel.direct_compaction) {
    install_direct_compaction(mm, e);
    if (traced) trace_direct_compaction(w, traced);
  }
  if (sc.kernel.kcompactd) {
    const kd = new Kcompactd(m.pgdat[0], () => e.now_ns);
    install_kcompactd_wakeup(mm);
    e.spawn("kcompactd0", (rt) => kcompactd(rt, mm, kd));
  }
  return { w, e, bc, out, buddyinfo_start, main: [0, 1, 2] };
}

/** enum compact_result by value, as the kernel's tracepoints name them. */
const COMPACT_RESULT_NAMES = [
  "not_suitable_zone",
  "skipped",
  "deferred",
  "no_suitable_page",
  "continue",
  "complete",
  "partial_skipped",
  "contended",
  "success",
];
const MIGRATE_MODE_NAMES = ["async", "sync_light", "sync"];

/** What trace_compaction() counts while a direct compaction runs inline. */
interface CompactionTraceState {
  /** Inside a direct compaction: batches go to its instant, not to slices. */
  in_direct: boolean;
  batches: number;
  migrated: number;
}

/**
 * Compaction runs and migration batches on the trace (kernel observers,
 * migrate.ts MmObserver; they change nothing in the model): a
 * "compact_zone" slice per zone a thread compacts (kcompactd, the
 * compact_memory shell, inside its "compact_memory" slice) and a
 * "migrate_pages" slice per batch inside it, on the CPU track of the
 * thread doing them. A direct compaction takes no simulated time (it runs
 * inside the allocating thread's step), so its batches are counted on its
 * instant instead (see trace_direct_compaction).
 */
function trace_compaction(w: World): CompactionTraceState {
  const st: CompactionTraceState = { in_direct: false, batches: 0, migrated: 0 };
  w.mm.observer = {
    migrate_pages: (rt, b) => {
      if (st.in_direct) {
        st.batches++;
        st.migrated += b.nr_succeeded;
        return;
      }
      w.emit({
        name: "migrate_pages",
        cat: "migration",
        ph: "X",
        ts: b.t0_ns / 1000,
        dur: (rt.now() - b.t0_ns) / 1000,
        pid: 1,
        tid: cpu_of(w, rt.current),
        args: {
          nr_pages: b.nr_pages,
          succeeded: b.nr_succeeded,
          failed: b.nr_failed,
          balloon_pages: b.nr_balloon,
        },
      });
    },
    compact_zone: (rt, r) => {
      if (st.in_direct) return;
      w.emit({
        name: "compact_zone",
        cat: "compaction",
        ph: "X",
        ts: r.t0_ns / 1000,
        dur: (rt.now() - r.t0_ns) / 1000,
        pid: 1,
        tid: cpu_of(w, rt.current),
        args: {
          thread: w.e.threads[rt.current]?.name ?? "",
          zone: r.zone,
          order: r.order,
          mode: MIGRATE_MODE_NAMES[r.mode] ?? String(r.mode),
          result: COMPACT_RESULT_NAMES[r.result] ?? String(r.result),
          migrate_scanned: r.migrate_scanned,
          free_scanned: r.free_scanned,
          pgmigrate_success: r.nr_migrated,
        },
      });
    },
  };
  return st;
}

/**
 * Direct compaction stalls on the trace: an instant on the allocating CPU's
 * track per attempt, with its order, priority, result and the migration
 * batches it ran. The run happens inside the allocating thread's step (see
 * compaction_direct.ts), so it takes no simulated time of its own.
 * `balloon_nosleep` counts the balloon pages it left alone because
 * migrating them would sleep (waiting for the host), which an inline run
 * cannot.
 */
function trace_direct_compaction(w: World, st: CompactionTraceState): void {
  const hooks = w.m.hooks;
  const inner = hooks.direct_compact;
  if (!inner) return;
  const nosleep = () => {
    let n = 0;
    for (const hg of w.balloons) n += hg.vb.vb_dev_info.nosleep_refused + hg.vb.migrate_nosleep;
    return n;
  };
  hooks.direct_compact = (m, cpu, gfp, order, alloc_flags, zoneidx, migratetype, prio) => {
    const nosleep_before = nosleep();
    st.in_direct = true;
    st.batches = 0;
    st.migrated = 0;
    let r: ReturnType<typeof inner>;
    try {
      r = inner(m, cpu, gfp, order, alloc_flags, zoneidx, migratetype, prio);
    } finally {
      st.in_direct = false;
    }
    w.emit({
      name: "direct_compaction",
      cat: "compaction",
      ph: "i",
      s: "t",
      ts: w.e.now_ns / 1000,
      pid: 1,
      tid: cpu < m.nr_cpus ? cpu : 0,
      args: {
        order,
        prio,
        result: r.result,
        pfn: r.pfn,
        balloon_nosleep: nosleep() - nosleep_before,
        migrate_batches: st.batches,
        pgmigrate_success: st.migrated,
      },
    });
    return r;
  };
}

/** A lock wait: counted by class, and a slice on the waiting CPU's track. */
function lock_wait(w: World, thread: number, lock_class: string, from_ns: number, to_ns: number) {
  let lw = w.lock_waits[lock_class];
  if (!lw) {
    lw = { count: 0, wait_ns: 0 };
    w.lock_waits[lock_class] = lw;
  }
  lw.count++;
  lw.wait_ns += to_ns - from_ns;
  w.emit({
    name: `wait ${lock_class}`,
    cat: "lock",
    ph: "X",
    ts: from_ns / 1000,
    dur: (to_ns - from_ns) / 1000,
    pid: 1,
    tid: cpu_of(w, thread),
  });
}

/**
 * Trace metadata: one track per simulated CPU (threads beyond the CPUs,
 * the sampler, the balloon's threads and kcompactd on a 2-CPU guest, share
 * CPU 0's track, as they share CPU 0 in the model).
 */
function name_tracks(w: World): void {
  const track = (tid: number, name: string) =>
    w.emit({ name: "thread_name", ph: "M", cat: "", ts: 0, pid: 1, tid, args: { name } });
  for (let cpu = 0; cpu < w.m.nr_cpus; cpu++) track(cpu, `CPU ${cpu}`);
}

/**
 * Step the guests' executions in simulated-time order until every guest's
 * main threads are done: always the thread, over all guests, whose next
 * step comes first (ties to the first guest, then the lowest id). A thread
 * woken from wait_event() by another guest's step (the host's policy)
 * resumes no earlier than that step.
 */
function run_guests(guests: GuestRun[]): void {
  let now_ns = 0;
  // Main threads not finished yet, and which thread ids are main, per guest.
  let remaining = 0;
  const main = guests.map((g) => {
    const is_main = new Uint8Array(g.e.threads.length);
    for (const id of g.main) {
      is_main[id] = 1;
      if (!g.e.threads[id].done) remaining++;
    }
    return is_main;
  });
  while (remaining > 0) {
    let best_g = -1;
    let best_t = -1;
    let best_ns = Number.POSITIVE_INFINITY;
    for (let gi = 0; gi < guests.length; gi++) {
      const e = guests[gi].e;
      const threads = e.threads;
      for (let i = 0; i < threads.length; i++) {
        const ns = e.ready_ns(i);
        // The time test first: enabled() may evaluate a wait condition.
        if (ns >= best_ns || !e.enabled(i)) continue;
        best_ns = ns;
        best_g = gi;
        best_t = i;
      }
    }
    if (best_g < 0) throw new DeadlockError(guests.flatMap((g) => g.e.wait_for()));
    const e = guests[best_g].e;
    const th = e.threads[best_t];
    if (th.cond !== null && th.ready_ns < now_ns) th.ready_ns = now_ns;
    e.step(best_t);
    if (e.now_ns > now_ns) now_ns = e.now_ns;
    if (th.done && main[best_g][best_t]) remaining--;
  }
}

/**
 * Run a scenario to its end. Throws KernelBug (and the runtime's
 * LockBug/DeadlockError) when the model breaks; call unsupported() first.
 */
export function run_scenario(sc: Scenario, hooks: RunHooks = {}): ScenarioResult {
  const problems = unsupported(sc);
  if (problems.length) throw new Error(problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
  const n_guests = sc.host?.guests ?? 1;
  const machines: Machine[] = [];
  for (let k = 0; k < n_guests; k++) machines.push(boot_machine(sc));
  hooks.on_boot?.();
  const host = new Host();
  const guests: GuestRun[] = machines.map((m, k) => start_guest(sc, k, n_guests, m, host, hooks));
  const g0 = guests[0];
  const worlds = guests.map((g) => g.w);
  if (sc.host) {
    const t = host_policy_thread(worlds, sc.host.policy, sc.duration);
    g0.main.push(g0.e.spawn(t.name, t.body));
  }
  name_tracks(g0.w);
  run_guests(guests);
  let t_end = sc.duration;
  for (const g of guests) t_end = Math.max(t_end, g.e.now_ns);
  for (const [k, g] of guests.entries()) {
    sample_now(g.w, t_end, g.out, k === 0 ? hooks : {});
    g.out.maps.push(memory_map(g.w.m, t_end, "end", g.w.thp_block));
  }
  hooks.progress?.(sc.duration, sc.duration);
  hooks.at_end?.(g0.w.m, g0.w.mm);
  // The steps taken fold in last: runs that differ only in their locking
  // (the eras) differ in their digest too.
  for (const g of guests) g.w.digest.add(g.e.steps);
  const res = result(sc, g0.w, g0.e, t_end, g0.buddyinfo_start, g0.out);
  res.final_proc = hooks.final_proc?.(g0.w.m) ?? {};
  res.host = host_result(
    sc,
    worlds,
    guests.map((g) => g.out.timeline),
  );
  if (n_guests > 1) {
    res.guests = guests.map((g, k) => guest_summary(sc, g, k));
    const d = new Digest();
    for (const s of res.guests) d.add(Number.parseInt(s.digest, 16));
    res.digest = d.hex();
    res.steps = guests.reduce((a, g) => a + g.e.steps, 0);
  }
  return res;
}

function guest_summary(sc: Scenario, g: GuestRun, k: number): GuestSummary {
  const w = g.w;
  const c = w.counts;
  const tl = g.out.timeline;
  return {
    name: w.guest_name,
    seed: guest_seed(sc.seed, k),
    digest: w.digest.hex(),
    thp: {
      attempts: c.thp_attempts,
      success: c.thp_success,
      success_rate: c.thp_attempts ? c.thp_success / c.thp_attempts : 0,
    },
    pages_migrated: w.m.vm_events[PGMIGRATE_SUCCESS],
    balloon_migrate: w.m.vm_events[BALLOON_MIGRATE],
    fault_failures: c.anon_fault_failures + c.cache_add_failures + c.kernel_alloc_failures,
    free_2mib_start: tl[0]?.free_2mib_blocks ?? 0,
    free_2mib_end: tl[tl.length - 1]?.free_2mib_blocks ?? 0,
    balloons: balloon_results(sc, w),
  };
}

function result(
  sc: Scenario,
  w: World,
  e: Execution,
  t_end: number,
  buddyinfo_start: ZoneBuddy[],
  out: { timeline: Sample[]; procs: ProcSnapshot[]; maps: MemoryMap[] },
): ScenarioResult {
  const m = w.m;
  const vmstat = Object.fromEntries(vmstat_values(m));
  const c = w.counts;
  let managed = 0;
  for (const z of m.populated) managed += z.managed_pages;
  return {
    scenario: sc.name,
    description: sc.description,
    seed: sc.seed,
    era: sc.era,
    machine: sc.machine,
    kernel: sc.kernel,
    duration_ns: sc.duration,
    end_ns: t_end,
    steps: e.steps,
    digest: w.digest.hex(),
    managed_pages: managed,
    workload: c,
    thp: {
      attempts: c.thp_attempts,
      success: c.thp_success,
      success_rate: c.thp_attempts ? c.thp_success / c.thp_attempts : 0,
    },
    compaction: {
      runs: w.compaction_runs,
      pages_migrated: vmstat.pgmigrate_success ?? 0,
      migrate_failures: vmstat.pgmigrate_fail ?? 0,
      migrate_scanned: vmstat.compact_migrate_scanned ?? 0,
      free_scanned: vmstat.compact_free_scanned ?? 0,
    },
    buddyinfo_start,
    buddyinfo: buddy(m),
    vmstat,
    timeline: out.timeline,
    memory_maps: out.maps,
    proc_snapshots: out.procs,
    trace: w.trace ?? [],
    trace_dropped: w.trace_dropped,
    final_proc: {},
    compact_runs: w.compact_log,
    lock_waits: w.lock_waits,
    balloons: balloon_results(sc, w),
    host: null,
    guests: [],
  };
}
