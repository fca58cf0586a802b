/**
 * sim/balloon_sim.ts: the balloon devices and the host of a scenario run
 * (scenario_run.ts calls these). It maps the scenario's `era`, `balloons`
 * and `host` onto the kernel model and the host model, reusing the wiring
 * of src/host/rig.ts (attach_virtio_balloon, virtio_balloon_threads):
 *
 *  - eras: every era of the registry (kernel/eras/index.ts) runs, each
 *    with its own balloon protocol (ERAS[era].balloon) on its own movable
 *    core (scenario_run.ts: ERAS[era].movable). A feature the era's driver
 *    did not have yet (FEATURE_SINCE: deflate_on_oom before v3.19,
 *    free_page_hint before v4.20, free_page_reporting before v5.7) is
 *    refused before anything runs
 *    (balloon_problems, exit 2 from the command);
 *  - each balloons[i] is a virtio-balloon device probed on the guest's one
 *    BalloonCompaction (CONFIG_BALLOON_COMPACTION = kernel.balloon_compaction)
 *    with a view on the Host; its threads (driver work queue, host device,
 *    free page reporting) are spawned after the scenario's own threads;
 *  - the host policy is one thread (host_policy_thread): `static` sets every
 *    guest's first device to its target at `at`; `auto` asks every guest for
 *    statistics each `interval` and calls Host.rebalance() so each keeps
 *    `free_percent` of its RAM free (reclaiming from the guest with most
 *    free memory first);
 *  - balloon_target events set a device's target through the host's
 *    control (HostGuest.set_target_pages), as QEMU's `balloon` command does
 *    (QEMU names the RAM the guest keeps; the scenario names the balloon).
 *
 * Safety: every sample runs check_balloon_safety() on each device (a
 * HostSafetyError ends the run), and the host's page_use observer checks
 * every allocation and migration target (host/host.ts).
 *
 * Host memory per guest is the guest's RAM minus the frames its devices
 * ballooned and the frames free page reporting handed over (the host's
 * per-device views, summed so a second device does not count RAM twice).
 * Nothing here is kernel behaviour; all randomness stays in the workload's
 * Prng (the host policy draws nothing).
 */

import { check_balloon_safety, type Host, type HostGuest, HostSafetyError } from "../host/host.ts";
import { attach_virtio_balloon, virtio_balloon_threads } from "../host/rig.ts";
import { BalloonCompaction } from "../kernel/balloon_compaction.ts";
import { MEM_BYTES_MAX } from "../kernel/boot.ts";
import { ERAS } from "../kernel/eras/index.ts";
import type { MmState } from "../kernel/mm/state.ts";
import { PAGE_SIZE } from "../kernel/page.ts";
import {
  VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_FREE_PAGE_HINT,
  VIRTIO_BALLOON_F_REPORTING,
  VIRTIO_BALLOON_F_STATS_VQ,
  VQ_DEFLATE,
  VQ_INFLATE,
} from "../kernel/virtio_balloon.ts";
import type { Runtime, Step } from "../runtime/runtime.ts";
import type { Problem } from "../workload/load.ts";
import type { Scenario } from "../workload/scenario.ts";
import { format_size } from "../workload/units.ts";
import type { Sample } from "./sample.ts";
import type { World } from "./world.ts";

const FEATURE_BITS: Record<Scenario["balloons"][number]["features"][number], number> = {
  deflate_on_oom: VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  free_page_reporting: VIRTIO_BALLOON_F_REPORTING,
  free_page_hint: VIRTIO_BALLOON_F_FREE_PAGE_HINT,
  stats_vq: VIRTIO_BALLOON_F_STATS_VQ,
};

/**
 * When each virtio-balloon feature reached the driver (mainline release)
 * and the first era whose last release has it. STATS_VQ (v2.6.34) is in
 * every era.
 */
export const FEATURE_SINCE: Record<
  Scenario["balloons"][number]["features"][number],
  { bit: string; kernel: string; first_era: string }
> = {
  // "virtio_balloon: free some memory from balloon on OOM" (5a10b7dbf904).
  deflate_on_oom: { bit: "VIRTIO_BALLOON_F_DEFLATE_ON_OOM", kernel: "v3.19", first_era: "2014" },
  // "virtio-balloon: VIRTIO_BALLOON_F_FREE_PAGE_HINT" (86a559787e6f).
  free_page_hint: { bit: "VIRTIO_BALLOON_F_FREE_PAGE_HINT", kernel: "v4.20", first_era: "2016" },
  // Free page reporting (mm/page_reporting.c and its virtio-balloon user).
  free_page_reporting: { bit: "VIRTIO_BALLOON_F_REPORTING", kernel: "v5.7", first_era: "2016" },
  stats_vq: { bit: "VIRTIO_BALLOON_F_STATS_VQ", kernel: "v2.6.34", first_era: "2012" },
};

/** What the era's driver could not do: a feature it did not have yet. */
function era_problems(sc: Scenario, p: (path: string, message: string) => void): void {
  const era = ERAS[sc.era];
  if (!era) {
    p("era", `unknown era '${sc.era}' (eras: ${Object.keys(ERAS).join(", ")})`);
    return;
  }
  sc.balloons.forEach((b, i) => {
    b.features.forEach((f, j) => {
      const since = FEATURE_SINCE[f];
      if (Number(sc.era) >= Number(since.first_era)) return;
      p(
        `balloons[${i}].features[${j}]`,
        `${f} (${since.bit}) came with Linux ${since.kernel}; era ${sc.era} models ${era.kernels}, whose virtio_balloon driver lacks it`,
      );
    });
  });
}

/** What the runner refuses before anything runs (exit 2 from `pagesim run`). */
export function balloon_problems(sc: Scenario): Problem[] {
  const out: Problem[] = [];
  const p = (path: string, message: string) => out.push({ path, message, line: 0 });
  era_problems(sc, p);
  const mem = sc.machine.memory;
  sc.balloons.forEach((b, i) => {
    if (b.initial > mem) p(`balloons[${i}].initial`, "is larger than machine.memory");
  });
  if (sc.balloons.filter((b) => b.features.includes("free_page_reporting")).length > 1)
    p("balloons", "free_page_reporting on more than one device (the kernel allows one, -EBUSY)");
  sc.workload.forEach((w, i) => {
    if (w.type === "balloon_target" && w.size > mem)
      p(`workload[${i}].size`, "is larger than machine.memory");
  });
  const host = sc.host;
  if (host && host.guests * mem > MEM_BYTES_MAX)
    p(
      "host.guests",
      `${host.guests} guests of ${format_size(mem)} are more than ${format_size(MEM_BYTES_MAX)} of guest RAM to simulate`,
    );
  if (host && sc.balloons.length === 0)
    p("host", "a host needs a balloon device in the guest (balloons)");
  if (host?.policy.kind === "static" && host.policy.target > mem)
    p("host.policy.target", "is larger than machine.memory");
  if (host?.policy.kind === "auto") {
    if (sc.balloons.length > 1)
      p("host.policy", "the auto policy drives one balloon device per guest");
    else if (sc.balloons.length === 1 && !sc.balloons[0].features.includes("stats_vq"))
      p("host.policy", "the auto policy reads guest statistics: give balloons[0] stats_vq");
  }
  return out;
}

/** Probe the scenario's balloon devices on a guest; returns the interface (null without). */
export function attach_balloons(
  sc: Scenario,
  mm: MmState,
  host: Host,
  w: World,
  guest_name: string,
): BalloonCompaction | null {
  if (sc.balloons.length === 0) return null;
  const bc = new BalloonCompaction(mm, {
    era: ERAS[sc.era].balloon,
    compaction: sc.kernel.balloon_compaction,
  });
  sc.balloons.forEach((b) => {
    let features = 0;
    for (const f of b.features) features |= 1 << FEATURE_BITS[f];
    const name = (sc.host?.guests ?? 1) > 1 ? `${guest_name}:${b.name}` : b.name;
    const { hg } = attach_virtio_balloon(bc, host, { name, features });
    w.balloons.push(hg);
    if (b.initial > 0) hg.set_target_pages(Math.floor(b.initial / PAGE_SIZE));
    if (w.trace) trace_buffers(w, hg);
  });
  w.host = host;
  return bc;
}

/** The balloon devices' threads of a guest, spawned after the scenario's own. */
export function balloon_threads(w: World): { name: string; body: (rt: Runtime) => Step }[] {
  return w.balloons.flatMap((hg) => virtio_balloon_threads(hg.vb, hg));
}

/**
 * Inflate and deflate batches on the trace, on the CPU track of the
 * driver's worker that ran them: every buffer the
 * host answers on the inflate or deflate queue while the driver's worker
 * holds balloon_lock (a resize batch; compaction's one-page migration
 * messages and deflate-on-OOM are counted in vmstat instead), drawn as the
 * round trip it waited for.
 */
function trace_buffers(w: World, hg: HostGuest): void {
  const vb = hg.vb;
  hg.on_buffer = (q, _buf, _start, n) => {
    if (q !== VQ_INFLATE && q !== VQ_DEFLATE) return;
    const owner = vb.balloon_lock.owner;
    if (owner < 0 || !w.e.threads[owner]?.name.endsWith(":vballoon")) return;
    const t = w.e.now_ns;
    w.emit({
      name: q === VQ_INFLATE ? "balloon_inflate" : "balloon_deflate",
      cat: "balloon",
      ph: "X",
      ts: Math.max(0, t - hg.latency_ns) / 1000,
      dur: hg.latency_ns / 1000,
      pid: 1,
      tid: owner < w.m.nr_cpus ? owner : 0,
      args: { pages: n, balloon_pages: vb.num_pages, target_pages: vb.config_num_pages },
    });
  };
}

/**
 * Fill a sample's balloon and host fields (and the host's own history).
 * Each sample also checks the safety property over every frame of each
 * device (check_balloon_safety, O(guest pages)): the host's ballooned set is
 * the guest's balloon pages plus those in flight. The point-of-use half
 * (no allocation or migration into a ballooned frame) is checked on every
 * allocation by the host's page_use observer (host.ts).
 */
export function sample_balloons(w: World, s: Sample): void {
  if (w.balloons.length === 0) return;
  let target = 0;
  let size = 0;
  let away = 0;
  for (const hg of w.balloons) {
    check_balloon_safety(hg);
    hg.sample(s.t_ns);
    target += hg.vb.config_num_pages;
    size += hg.vb.num_pages;
    away += hg.ballooned_pages + hg.reported_pages;
  }
  s.balloon_target_pages = target;
  s.balloon_pages = size;
  s.host_backed_pages = w.m.ram_pages - away;
}

/** The host's policy as a thread (in the first guest's execution). */
export function host_policy_thread(
  worlds: World[],
  policy: NonNullable<Scenario["host"]>["policy"],
  end_ns: number,
): { name: string; body: (rt: Runtime) => Step } {
  return {
    name: "host:policy",
    body: function* (rt) {
      if (policy.kind === "none") return;
      if (policy.kind === "static") {
        if (policy.at >= end_ns) return;
        yield* sleep_until(rt, policy.at);
        const pages = Math.floor(policy.target / PAGE_SIZE);
        for (const w of worlds) w.balloons[0]?.set_target_pages(pages);
        return;
      }
      yield* auto_policy(rt, worlds, policy.interval, policy.free_percent, end_ns);
    },
  };
}

function* sleep_until(rt: Runtime, t_ns: number): Step {
  const now = rt.now();
  yield* rt.schedule_timeout(Math.max(0, t_ns - now));
}

/** The auto policy: statistics from every guest, then Host.rebalance(), each interval. */
function* auto_policy(
  rt: Runtime,
  worlds: World[],
  interval: number,
  free_percent: number,
  end_ns: number,
): Step {
  const host = worlds[0].host;
  if (!host) return;
  const views = worlds.map((w) => w.balloons[0]).filter((hg) => hg !== undefined);
  const goal = (free_percent / 100) * (worlds[0].m.ram_pages * PAGE_SIZE);
  for (let t = interval, round = 0; t < end_ns; t += interval, round++) {
    if (round > 1_000_000) throw new HostSafetyError("host", -1, "auto policy: too many rounds");
    yield* sleep_until(rt, t);
    const seen = views.map((hg) => hg.stats_answers);
    for (const hg of views) hg.request_stats();
    yield* rt.wait_event(
      -1,
      "host:stats",
      () => views.every((hg, i) => hg.stats_answers > seen[i]) || worlds.every((w) => w.done),
    );
    if (worlds.every((w) => w.done)) return;
    host.rebalance(goal);
  }
}

/** A balloon device at the end of a run. */
export interface BalloonResult {
  name: string;
  driver: string;
  features: string[];
  /** The host's target and the driver's balloon (pages). */
  target_pages: number;
  balloon_pages: number;
  /** config.actual as the driver last reported it. */
  actual_pages: number;
  out_of_puff: number;
  oom_freed: number;
  oom_refused: number;
  /** Pages free page reporting handed to the host, and the host's rejections. */
  reported_pages: number;
  host_rejected: number;
}

export function balloon_results(sc: Scenario, w: World): BalloonResult[] {
  return w.balloons.map((hg, i) => ({
    name: hg.name,
    driver: sc.balloons[i].driver,
    features: [...sc.balloons[i].features],
    target_pages: hg.vb.config_num_pages,
    balloon_pages: hg.vb.num_pages,
    actual_pages: hg.vb.config_actual,
    out_of_puff: hg.vb.out_of_puff,
    oom_freed: hg.vb.oom_freed,
    oom_refused: hg.vb.oom_refused,
    reported_pages: hg.vb.pr_dev_info?.reported_pages ?? 0,
    host_rejected: hg.rejected,
  }));
}

/** One guest as the host sees it at the end. */
export interface HostGuestResult {
  name: string;
  ram_pages: number;
  backed_pages: number;
  ballooned_pages: number;
  reported_pages: number;
  /** Fewest backed pages at any sample. */
  min_backed_pages: number;
}

/** The host at the end of a run: memory per guest and in total, over time. */
export interface HostResult {
  memory_bytes: number;
  policy: string;
  guests: HostGuestResult[];
  total_ram_pages: number;
  total_backed_pages: number;
  /** Guest RAM the host does not back at the end (ballooned or reported). */
  reclaimed_pages: number;
  /** Most host pages the guests used at any sample, and whether that exceeded host memory. */
  peak_backed_pages: number;
  overcommitted: boolean;
  /** At each sample: host pages backing each guest (guest order), and their sum. */
  timeline: { t_ns: number; backed_pages: number[]; total_pages: number }[];
}

export function host_result(
  sc: Scenario,
  worlds: World[],
  timelines: Sample[][],
): HostResult | null {
  if (worlds[0].balloons.length === 0) return null;
  const guests = worlds.map((w, g) => {
    let ballooned = 0;
    let reported = 0;
    for (const hg of w.balloons) {
      ballooned += hg.ballooned_pages;
      reported += hg.reported_pages;
    }
    return {
      name: w.guest_name,
      ram_pages: w.m.ram_pages,
      backed_pages: w.m.ram_pages - ballooned - reported,
      ballooned_pages: ballooned,
      reported_pages: reported,
      min_backed_pages: Math.min(...timelines[g].map((s) => s.host_backed_pages)),
    };
  });
  const n = Math.min(...timelines.map((tl) => tl.length));
  const timeline = [];
  let peak = 0;
  for (let i = 0; i < n; i++) {
    const backed = timelines.map((tl) => tl[i].host_backed_pages);
    const total = backed.reduce((a, b) => a + b, 0);
    peak = Math.max(peak, total);
    timeline.push({ t_ns: timelines[0][i].t_ns, backed_pages: backed, total_pages: total });
  }
  const total_ram = guests.reduce((a, g) => a + g.ram_pages, 0);
  const total_backed = guests.reduce((a, g) => a + g.backed_pages, 0);
  const memory = sc.host?.memory ?? total_ram * PAGE_SIZE;
  return {
    memory_bytes: memory,
    policy: sc.host?.policy.kind ?? "none",
    guests,
    total_ram_pages: total_ram,
    total_backed_pages: total_backed,
    reclaimed_pages: total_ram - total_backed,
    peak_backed_pages: peak,
    overcommitted: peak * PAGE_SIZE > memory,
    timeline,
  };
}
