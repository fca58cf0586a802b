/**
 * host/host.ts: the hypervisor side of the virtio balloon (what QEMU's
 * virtio-balloon device and the host kernel do), for one or more guests.
 *
 * Per guest frame the host keeps one byte: BACKED (host memory behind it),
 * BALLOONED (the guest gave it away on the inflate queue; the host
 * discarded it and the guest must not touch it until it deflates it), or
 * REPORTED (free page reporting or a free page hint: discarded, but the
 * guest may reuse it at any time, which backs it again). Counts of each are kept as it changes,
 * and sample() records host memory used per guest over time.
 *
 * The device is a thread per guest (host_device_thread): it waits for a
 * posted buffer, sleeps the queue latency (simulated time), processes the
 * oldest buffer and marks it used, which wakes the driver's tell_host().
 * Messages are checked: a pfn outside the guest, inflated twice, or
 * deflated without having been inflated is a counted, logged rejection
 * (QEMU ignores such pfns too); the frame state never goes wrong because of
 * one.
 *
 * Control, as QEMU's monitor offers it: balloon(target_bytes) (the guest
 * should have this much RAM), query_balloon() (actual), request_stats() /
 * stats (through the stats queue: the device keeps the guest's stats
 * buffer and gives it back when it wants figures); and one automatic
 * policy (rebalance()). return_used() plays a faulty device that returns
 * a buffer id the guest never made available.
 *
 * The safety property, at the point of use (check_use(), on every
 * allocation and migration target through m.hooks.page_use) and as a
 * census (check_balloon_safety): for every frame not named in
 * a buffer still in flight (posted, or being gathered under balloon_lock),
 * the host has it BALLOONED exactly when the guest has it as a balloon page
 * of this device (listed or isolated); and a frame the host has BALLOONED
 * is never in use by the guest for anything else; with MUST_TELL_HOST not
 * even while its deflate is in flight.
 */

import type { Machine } from "../kernel/machine.ts";
import { PAGE_MAPPING_MOVABLE, PAGE_SIZE, PageTail } from "../kernel/page.ts";
import {
  FREE_PAGE_TAG_CMD_ID,
  SLOT_AVAIL,
  SLOT_FREE,
  SLOT_HELD,
  SLOT_USED,
  stats_request,
  VIRTIO_BALLOON_CMD_ID_DONE,
  VIRTIO_BALLOON_CMD_ID_STOP,
  VIRTIO_BALLOON_F_MUST_TELL_HOST,
  VIRTIO_BALLOON_HINT_BLOCK_ORDER,
  VIRTIO_BALLOON_S_MEMFREE,
  VIRTIO_BALLOON_S_NAMES,
  VIRTIO_BALLOON_S_NR,
  type VirtioBalloon,
  type Virtqueue,
  VQ_DEFLATE,
  VQ_FREE_PAGE,
  VQ_INFLATE,
  VQ_REPORTING,
  VQ_STATS,
  vb_pfn_hinted,
  vb_pfn_in_flight,
  virtio_balloon_set_free_page_hint_cmd_id,
  virtio_balloon_set_num_pages,
  virtio_has_feature,
  virtqueue_push_used,
} from "../kernel/virtio_balloon.ts";
import type { Runtime, StepOf } from "../runtime/runtime.ts";
import { OP_WRITE } from "../runtime/runtime.ts";

export const FRAME_BACKED = 0;
export const FRAME_BALLOONED = 1;
export const FRAME_REPORTED = 2;

/** Step field names, built once (no string per step). */
const USED_FIELD = ["inflate.used", "deflate.used", "stats.used", "reporting.used"];

/** Default one-way latency of a virtqueue round trip, in simulated ns. */
export const DEFAULT_VQ_LATENCY_NS = 20_000;

/** A broken safety property: the guest and the host disagree. */
export class HostSafetyError extends Error {
  readonly pfn: number;
  constructor(guest: string, pfn: number, what: string) {
    super(`balloon safety broken in guest '${guest}' at pfn ${pfn}: ${what}`);
    this.name = "HostSafetyError";
    this.pfn = pfn;
  }
}

/** Bad input to the host's control interface. */
export class HostControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostControlError";
  }
}

export interface HostGuestOptions {
  name?: string;
  /** Virtqueue latency in simulated ns. */
  latency_ns?: number;
}

/** One sample of host memory used by a guest. */
export interface HostSample {
  t_ns: number;
  backed_pages: number;
  ballooned_pages: number;
  reported_pages: number;
}

/** The host's view of one guest (one balloon device). */
export class HostGuest {
  readonly name: string;
  readonly vb: VirtioBalloon;
  /** Per guest pfn: FRAME_*. */
  readonly frame: Uint8Array;
  readonly ram_pages: number;
  backed_pages: number;
  ballooned_pages = 0;
  reported_pages = 0;
  latency_ns: number;
  /** Buffers processed per queue. */
  readonly buffers = new Float64Array(4);
  /** Rejected pfns (bad messages) and the first few reasons. */
  rejected = 0;
  readonly rejections: string[] = [];
  /** Last statistics received (VIRTIO_BALLOON_S_* order), and how many times. */
  readonly stats = new Float64Array(VIRTIO_BALLOON_S_NR);
  stats_updates = 0;
  /** Statistics received in answer to a request (request_stats()). */
  stats_answers = 0;
  /** The stats buffer the device holds (-1: none yet, or given back). */
  stats_slot = -1;
  /** A request waits for the device to hold a buffer to give back. */
  stats_request_pending = false;
  /** The buffer was given back; the next one answers the request. */
  stats_outstanding = false;
  readonly history: HostSample[] = [];
  /** Set to let host_device_thread() end once no buffer is pending. */
  stopped = false;
  /** Free page hinting: the last command id the device saw, blocks hinted. */
  hint_cmd_id_seen = -1;
  hinted_blocks = 0;
  /** find_oldest_avail()'s answer. */
  next_q = -1;
  next_slot = -1;
  /** Optional observer of each processed buffer (tests, traces). */
  on_buffer: ((queue: number, entries: Float64Array, start: number, n: number) => void) | null =
    null;

  constructor(vb: VirtioBalloon, opts: HostGuestOptions = {}) {
    this.vb = vb;
    this.name = opts.name ?? vb.name;
    const m = vb.bc.mm.m;
    this.frame = new Uint8Array(m.mem.nr_pages);
    this.ram_pages = m.ram_pages;
    this.backed_pages = m.ram_pages;
    const lat = opts.latency_ns ?? DEFAULT_VQ_LATENCY_NS;
    if (!(Number.isFinite(lat) && lat >= 0))
      throw new HostControlError(`guest '${this.name}': latency_ns ${lat} must be >= 0`);
    this.latency_ns = lat;
    // The point-of-use check: every allocation and migration target of the
    // guest passes the host's frame states (chained: several devices).
    const prev = m.hooks.page_use;
    const mine = (_m: Machine, pfn: number, order: number, gfp: number) =>
      this.check_use(pfn, order, gfp);
    m.hooks.page_use = prev
      ? (mm, pfn, order, gfp) => {
          prev(mm, pfn, order, gfp);
          mine(mm, pfn, order, gfp);
        }
      : mine;
  }

  /**
   * The safety property at the point of use: the guest starts using frames
   * pfn..pfn+2^order-1 (an allocation; gfp 0: a migration copies data into
   * pfn). None may be a frame the host discarded as ballooned, unless its
   * deflate is posted and MUST_TELL_HOST was not negotiated (the guest may
   * then reuse it before the host has read the message). Frames discarded
   * by free page reporting or hinting may be reused: the host refaults
   * them. One byte read per frame; the in-flight search only on a hit.
   */
  check_use(pfn: number, order: number, gfp: number): void {
    const f = this.frame;
    const end = Math.min(pfn + (1 << order), f.length);
    for (let p = pfn; p < end; p++) {
      if (f[p] !== FRAME_BALLOONED) continue;
      const vb = this.vb;
      if (!virtio_has_feature(vb, VIRTIO_BALLOON_F_MUST_TELL_HOST) && vb_pfn_in_flight(vb, p))
        continue;
      throw new HostSafetyError(
        this.name,
        p,
        gfp === 0
          ? "the guest migrates data into a frame the host discarded as ballooned"
          : `the guest allocates a frame the host discarded as ballooned (order ${order} block at ${pfn})`,
      );
    }
  }

  get ram_bytes(): number {
    return this.ram_pages * PAGE_SIZE;
  }

  /** QEMU `balloon <bytes>`: the guest should be left with this much RAM. */
  balloon(target_bytes: number): void {
    if (!(Number.isFinite(target_bytes) && target_bytes > 0))
      throw new HostControlError(
        `guest '${this.name}': balloon target ${target_bytes} bytes must be a positive size`,
      );
    // As QEMU: a target above the guest's RAM means an empty balloon.
    const t = Math.min(target_bytes, this.ram_bytes);
    this.set_target_pages(Math.floor((this.ram_bytes - t) / PAGE_SIZE));
  }

  /** Set config.num_pages directly (pages to take from the guest). */
  set_target_pages(num_pages: number): void {
    if (!(Number.isInteger(num_pages) && num_pages >= 0 && num_pages <= this.ram_pages))
      throw new HostControlError(
        `guest '${this.name}': balloon target ${num_pages} pages is outside 0..${this.ram_pages} (the guest's RAM)`,
      );
    virtio_balloon_set_num_pages(this.vb, num_pages);
  }

  /** QEMU `query-balloon`: the guest's RAM minus what the driver reports ballooned. */
  query_balloon(): { actual: number } {
    return { actual: this.ram_bytes - this.vb.config_actual * PAGE_SIZE };
  }

  /**
   * Free page hinting as QEMU drives it around a live migration: start a
   * round with a new command id (>= 2), stop it, and later say DONE so the
   * guest frees the hinted blocks.
   */
  start_free_page_hint(cmd_id: number): void {
    if (!(Number.isInteger(cmd_id) && cmd_id >= 2))
      throw new HostControlError(`guest '${this.name}': hint command id ${cmd_id} must be >= 2`);
    virtio_balloon_set_free_page_hint_cmd_id(this.vb, cmd_id);
  }
  stop_free_page_hint(): void {
    virtio_balloon_set_free_page_hint_cmd_id(this.vb, VIRTIO_BALLOON_CMD_ID_STOP);
  }
  free_page_hint_done(): void {
    virtio_balloon_set_free_page_hint_cmd_id(this.vb, VIRTIO_BALLOON_CMD_ID_DONE);
  }

  /**
   * Ask the guest for fresh statistics (QEMU's stats polling timer): the
   * device thread gives the held stats buffer back (marks it used) after
   * the queue latency; the guest's stats_request() callback queues its
   * stats work, which refills the buffer and makes it available again; the
   * device reads it after another latency (stats_answers counts these).
   */
  request_stats(): void {
    this.stats_request_pending = true;
  }

  /** A stats request can be served: the device holds the buffer. */
  stats_return_ready(): boolean {
    return this.stats_request_pending && this.stats_slot >= 0;
  }

  /** Give the held stats buffer back (used), raising the guest's stats_request(). */
  return_stats_buffer(): void {
    const vq = this.vb.vqs[VQ_STATS];
    vq.state[this.stats_slot] = SLOT_USED;
    virtqueue_push_used(vq, this.stats_slot);
    this.stats_slot = -1;
    this.stats_request_pending = false;
    this.stats_outstanding = true;
    stats_request(this.vb);
  }

  /**
   * A faulty device: push `id` on queue `q`'s used ring as if it had used
   * that buffer, and raise the queue's interrupt. The driver's
   * virtqueue_get_buf() finds out whether the driver ever made it available.
   */
  return_used(q: number, id: number): void {
    virtqueue_push_used(this.vb.vqs[q], id);
    if (q === VQ_STATS) stats_request(this.vb);
  }

  /** The last statistics, by the names QEMU's guest-stats property uses. */
  read_stats(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let t = 0; t < VIRTIO_BALLOON_S_NR; t++)
      out[`stat-${VIRTIO_BALLOON_S_NAMES[t]}`] = this.stats[t];
    return out;
  }

  /**
   * Note the guest's reuse of reported frames (it touched them, the host
   * backs them again) and record host memory used at `t_ns`. Reuse shows
   * as the page being in use (a reference, or part of a compound page) at
   * sample time.
   */
  sample(t_ns: number): HostSample {
    if (this.reported_pages > 0) {
      const mem = this.vb.bc.mm.m.mem;
      const f = this.frame;
      for (let p = 0; p < f.length; p++) {
        if (f[p] !== FRAME_REPORTED) continue;
        if ((mem._refcount[p] > 0 || PageTail(mem, p)) && !vb_pfn_hinted(this.vb, p)) {
          f[p] = FRAME_BACKED;
          this.reported_pages--;
          this.backed_pages++;
        }
      }
    }
    const s = {
      t_ns,
      backed_pages: this.backed_pages,
      ballooned_pages: this.ballooned_pages,
      reported_pages: this.reported_pages,
    };
    this.history.push(s);
    return s;
  }

  private reject(what: string): void {
    this.rejected++;
    if (this.rejections.length < 100) this.rejections.push(what);
  }

  private set_frame(p: number, to: number): void {
    const from = this.frame[p];
    if (from === to) return;
    if (from === FRAME_BACKED) this.backed_pages--;
    else if (from === FRAME_BALLOONED) this.ballooned_pages--;
    else this.reported_pages--;
    if (to === FRAME_BACKED) this.backed_pages++;
    else if (to === FRAME_BALLOONED) this.ballooned_pages++;
    else this.reported_pages++;
    this.frame[p] = to;
  }

  /** Process one buffer of queue `q` (slot `s`): the device's side of the message. */
  process_buffer(vq: Virtqueue, s: number): void {
    const base = s * vq.entries;
    const n = vq.len[s];
    const buf = vq.buf;
    const nr = this.frame.length;
    const q = vq.index;
    this.on_buffer?.(q, buf, base, n);
    if (q === VQ_INFLATE || q === VQ_DEFLATE) {
      for (let i = 0; i < n; i++) {
        const p = buf[base + i];
        if (!(Number.isInteger(p) && p >= 0 && p < nr)) {
          this.reject(`${vq.name}: pfn ${p} is outside the guest (0..${nr - 1})`);
          continue;
        }
        if (q === VQ_INFLATE) {
          if (this.frame[p] === FRAME_BALLOONED) this.reject(`inflate: pfn ${p} already ballooned`);
          else this.set_frame(p, FRAME_BALLOONED);
        } else if (this.frame[p] !== FRAME_BALLOONED) {
          this.reject(`deflate: pfn ${p} was never ballooned`);
        } else this.set_frame(p, FRAME_BACKED);
      }
    } else if (q === VQ_STATS) {
      for (let i = 0; i + 1 < n; i += 2) {
        const tag = buf[base + i];
        if (tag >= 0 && tag < VIRTIO_BALLOON_S_NR) this.stats[tag] = buf[base + i + 1];
      }
      this.stats_updates++;
      if (this.stats_outstanding) this.stats_answers++;
      this.stats_outstanding = false;
    } else if (q === VQ_FREE_PAGE) {
      const tag = buf[base];
      const v = buf[base + 1];
      if (tag === FREE_PAGE_TAG_CMD_ID) this.hint_cmd_id_seen = v;
      else {
        // A hinted block: its contents are of no use to the host, which may
        // drop it (QEMU skips it in migration).
        const end = v + (1 << VIRTIO_BALLOON_HINT_BLOCK_ORDER);
        if (!(Number.isInteger(v) && v >= 0 && end <= nr))
          this.reject(`free_page: block ${v} is outside the guest`);
        else {
          for (let f = v; f < end; f++) {
            if (this.frame[f] === FRAME_BALLOONED) this.reject(`free_page: pfn ${f} is ballooned`);
            else this.set_frame(f, FRAME_REPORTED);
          }
          this.hinted_blocks++;
        }
      }
    } else if (q === VQ_REPORTING) {
      for (let i = 0; i + 1 < n; i += 2) {
        const p = buf[base + i];
        const order = buf[base + i + 1];
        const end = p + 2 ** order;
        if (!(Number.isInteger(p) && p >= 0 && end <= nr)) {
          this.reject(`reporting: block ${p}+2^${order} is outside the guest`);
          continue;
        }
        for (let f = p; f < end; f++) {
          if (this.frame[f] === FRAME_BALLOONED) this.reject(`reporting: pfn ${f} is ballooned`);
          else this.set_frame(f, FRAME_REPORTED);
        }
      }
    }
    this.buffers[q]++;
    vq.nr_avail--;
    if (q === VQ_STATS) {
      // QEMU keeps the stats buffer until it wants new figures.
      vq.state[s] = SLOT_HELD;
      this.stats_slot = s;
    } else if (vq.no_wait[s]) vq.state[s] = SLOT_FREE;
    else {
      vq.state[s] = SLOT_USED;
      virtqueue_push_used(vq, s);
    }
  }

  /** Whether the driver has posted a buffer the host has not taken yet. */
  has_avail(): boolean {
    const vqs = this.vb.vqs;
    for (let q = 0; q < vqs.length; q++) if (vqs[q].nr_avail > 0) return true;
    return false;
  }

  /**
   * Find the oldest posted buffer over all queues; its queue and slot are
   * left in `next_q` / `next_slot`. False when there is none.
   */
  find_oldest_avail(): boolean {
    let best_seq = Number.POSITIVE_INFINITY;
    this.next_q = -1;
    this.next_slot = -1;
    for (const vq of this.vb.vqs) {
      if (vq.nr_avail === 0) continue;
      for (let s = 0; s < vq.slots; s++) {
        if (vq.state[s] === SLOT_AVAIL && vq.seq[s] < best_seq) {
          best_seq = vq.seq[s];
          this.next_q = vq.index;
          this.next_slot = s;
        }
      }
    }
    return this.next_q >= 0;
  }
}

/**
 * The device side of one guest's balloon as a thread: wait for a buffer,
 * spend the queue latency, answer it. Ends once `stopped` is set and no
 * buffer is pending.
 */
export function* host_device_thread(rt: Runtime, hg: HostGuest): StepOf<void> {
  const vb = hg.vb;
  const wake = () => hg.stopped || hg.has_avail() || hg.stats_return_ready();
  for (;;) {
    yield* rt.wait_event(vb.obj, "host:avail", wake);
    if (hg.stats_return_ready()) {
      yield* rt.schedule_timeout(hg.latency_ns);
      yield* rt.access(OP_WRITE, vb.obj, USED_FIELD[VQ_STATS]);
      hg.return_stats_buffer();
      continue;
    }
    if (!hg.has_avail()) return;
    yield* rt.schedule_timeout(hg.latency_ns);
    hg.find_oldest_avail();
    const vq = vb.vqs[hg.next_q];
    yield* rt.access(OP_WRITE, vb.obj, USED_FIELD[vq.index]);
    hg.process_buffer(vq, hg.next_slot);
  }
}

/**
 * check_balloon_safety(): the safety property of the header, over every
 * frame (O(guest pages); scenario runs call it at every sample, the tests
 * after every step). Throws HostSafetyError naming the first bad frame;
 * returns the number of frames the guest holds as this device's balloon
 * pages (listed or isolated), which the census needs anyway.
 */
export function check_balloon_safety(hg: HostGuest): number {
  const vb = hg.vb;
  const bc = vb.bc;
  const mem = bc.mm.m.mem;
  const id = vb.vb_dev_info.id;
  const type = bc.era.page_type;
  // 2012: page->mapping is the device's own balloon mapping (balloon_page_device(),
  // inlined: this loop runs over every frame); without compaction, the ghosts.
  const by_mapping = bc.era.device_lookup === "mapping" && bc.compaction;
  const mapping = ((vb.vb_dev_info.mapping << 2) | PAGE_MAPPING_MOVABLE) >>> 0;
  const must_tell = virtio_has_feature(vb, VIRTIO_BALLOON_F_MUST_TELL_HOST);
  let ballooned = 0;
  let owned = 0;
  for (let p = 0; p < hg.frame.length; p++) {
    const st = hg.frame[p];
    const mine = by_mapping
      ? mem.mapping[p] === mapping
      : mem.page_type[p] === type && mem.page_private[p] === id;
    if (st === FRAME_BALLOONED) ballooned++;
    if (mine) owned++;
    if ((st === FRAME_BALLOONED) === mine) continue;
    if (!vb_pfn_in_flight(vb, p)) {
      throw new HostSafetyError(
        hg.name,
        p,
        st === FRAME_BALLOONED
          ? `the host discarded it but the guest uses it (refcount ${mem._refcount[p]}, not a balloon page)`
          : "the guest holds it as a balloon page but the host never got (or already processed the deflate of) it",
      );
    }
    if (st === FRAME_BALLOONED && must_tell && mem._refcount[p] === 0) {
      throw new HostSafetyError(
        hg.name,
        p,
        "freed by the guest before the host acknowledged its deflate",
      );
    }
  }
  if (ballooned !== hg.ballooned_pages)
    throw new HostSafetyError(
      hg.name,
      -1,
      `host counts ${hg.ballooned_pages} ballooned, frames say ${ballooned}`,
    );
  return owned;
}

/** Several guests on one host. */
export class Host {
  readonly guests: HostGuest[] = [];

  add_guest(vb: VirtioBalloon, opts: HostGuestOptions = {}): HostGuest {
    const hg = new HostGuest(vb, opts);
    this.guests.push(hg);
    return hg;
  }

  /** Host pages backing all guests. */
  total_backed_pages(): number {
    let n = 0;
    for (const g of this.guests) n += g.backed_pages;
    return n;
  }

  sample(t_ns: number): number {
    let n = 0;
    for (const g of this.guests) n += g.sample(t_ns).backed_pages;
    return n;
  }

  /**
   * The automatic policy: keep every guest's free memory near
   * `goal_free_bytes` (from its last statistics). Guests above the goal
   * give back their excess, the one with most free memory first, until
   * `reclaim_bytes` are found (Infinity: all the excess); guests below the
   * goal get memory back. Returns the new targets (pages) per guest name.
   */
  rebalance(
    goal_free_bytes: number,
    reclaim_bytes = Number.POSITIVE_INFINITY,
  ): Record<string, number> {
    if (!(Number.isFinite(goal_free_bytes) && goal_free_bytes >= 0))
      throw new HostControlError(`rebalance: goal ${goal_free_bytes} bytes must be >= 0`);
    if (!(reclaim_bytes >= 0))
      throw new HostControlError(`rebalance: reclaim ${reclaim_bytes} must be >= 0`);
    const goal = Math.floor(goal_free_bytes / PAGE_SIZE);
    let need = reclaim_bytes / PAGE_SIZE;
    const order = this.guests
      .filter((g) => g.stats_updates > 0 && !g.vb.removing)
      .sort((a, b) => b.stats[VIRTIO_BALLOON_S_MEMFREE] - a.stats[VIRTIO_BALLOON_S_MEMFREE]);
    const out: Record<string, number> = {};
    for (const g of order) {
      const free = Math.floor(g.stats[VIRTIO_BALLOON_S_MEMFREE] / PAGE_SIZE);
      const cur = g.vb.config_num_pages;
      let target = cur;
      if (free > goal && need > 0) {
        const take = Math.min(free - goal, need);
        need -= take;
        target = cur + Math.floor(take);
      } else if (free < goal) target = Math.max(0, cur - (goal - free));
      target = Math.min(target, g.ram_pages);
      if (target !== cur) g.set_target_pages(target);
      out[g.name] = target;
    }
    return out;
  }
}
