/**
 * kernel/virtio_balloon.ts: models drivers/virtio/virtio_balloon.c (the
 * guest driver of the virtio memory balloon, v4.8-v5.19 shape, with the
 * v5.2 balloon_page_alloc/enqueue split) and, in `Virtqueue`, just enough of
 * a virtqueue to carry its messages to a host model (src/host).
 *
 * The host writes config.num_pages (the target) and raises a config
 * interrupt (virtballoon_changed); the driver's worker
 * (update_balloon_size_func) moves towards it in batches of at most
 * VIRTIO_BALLOON_ARRAY_PFNS_MAX pfns: fill_balloon allocates, enqueues and
 * tells the host on the inflate queue; leak_balloon dequeues, tells the
 * host on the deflate queue and only then frees the pages (the order
 * VIRTIO_BALLOON_F_MUST_TELL_HOST demands; the driver always keeps it);
 * then it writes config.actual. tell_host waits for the host's
 * acknowledgement (rt.wait_event); the host is another thread, and its
 * latency is simulated time (schedule_timeout) in the simulator.
 *
 * Features: DEFLATE_ON_OOM (an OOM notifier on m.hooks.oom_notify),
 * STATS_VQ, FREE_PAGE_HINT (report_free_page_func: hint free 4 MiB blocks
 * for a host command id, hold them until DONE) and REPORTING (through
 * page_reporting.ts); MUST_TELL_HOST changes only what the OOM notifier may
 * do, since the driver always tells the host before freeing.
 *
 * Locks: vb->balloon_lock (mutex) around fill, leak and migratepage (which
 * only trylocks it: it runs under two page locks); inside it the balloon
 * pages lock (balloon_compaction.ts). tell_host sleeps with balloon_lock
 * held, as in the kernel.
 * Invariants: vb.num_pages = pages on the device list + isolated pages
 * (+ the one page a migratepage in progress has inserted and not yet
 * deleted); config.actual = num_pages after each worker round; at most one
 * buffer of the driver's own is in flight per queue (balloon_lock
 * serialises them), plus deflate-on-OOM buffers that are not waited for.
 * Bad input: a target that is not an integer in [0, 2^32) or arrives while
 * the device is being removed throws BalloonConfigError; feature bits the
 * driver does not know are masked off and counted (features_rejected), as
 * virtio feature negotiation does; a used buffer id the driver never made
 * available breaks its queue (virtqueue_get_buf's BAD_RING: bad_used,
 * errors, Virtqueue.broken) and the device stops moving pages.
 * Stats: the device keeps the stats buffer and gives it back (used) when it
 * wants figures; stats_request() then queues the stats work.
 */

import type { Lock, Runtime, StepOf } from "../runtime/runtime.ts";
import { OP_READ, OP_WRITE } from "../runtime/runtime.ts";
import {
  __balloon_page_delete,
  type BalloonCompaction,
  type BalloonDevInfo,
  balloon_devinfo_init,
  balloon_devinfo_release,
  balloon_page_alloc,
  balloon_page_dequeue_onto,
  balloon_page_enqueue,
  balloon_page_free,
  balloon_page_insert,
  balloon_page_remove,
} from "./balloon_compaction.ts";
import { assert } from "./bug.ts";
import { EAGAIN, EIO } from "./errno.ts";
import { __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN } from "./gfp.ts";
import { list_add, list_del } from "./list.ts";
import type { Machine } from "./machine.ts";
import { put_page, this_cpu } from "./mm/lru.ts";
import { PageIsolated, PageLocked, type Pfn } from "./page.ts";
import { __free_pages, alloc_pages } from "./page_alloc/alloc.ts";
import {
  PageReportingDevInfo,
  page_reporting_register,
  page_reporting_unregister,
} from "./page_reporting.ts";
import {
  BALLOON_DEFLATE,
  BALLOON_MIGRATE,
  NR_ACTIVE_FILE,
  NR_FREE_PAGES,
  NR_INACTIVE_FILE,
} from "./vmstat_items.ts";

// Feature bits (include/uapi/linux/virtio_balloon.h).
export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
export const VIRTIO_BALLOON_F_PAGE_POISON = 4;
export const VIRTIO_BALLOON_F_REPORTING = 5;
/** The feature bits this driver knows (it negotiates no others). */
export const VIRTIO_BALLOON_DRIVER_FEATURES =
  (1 << VIRTIO_BALLOON_F_MUST_TELL_HOST) |
  (1 << VIRTIO_BALLOON_F_STATS_VQ) |
  (1 << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) |
  (1 << VIRTIO_BALLOON_F_FREE_PAGE_HINT) |
  (1 << VIRTIO_BALLOON_F_PAGE_POISON) |
  (1 << VIRTIO_BALLOON_F_REPORTING);

export const VIRTIO_BALLOON_ARRAY_PFNS_MAX = 256;
/** Guest pages per 4 KiB balloon page (1 on x86-64). */
export const VIRTIO_BALLOON_PAGES_PER_PAGE = 1;
/** Default of the oom_pages module parameter. */
export const OOM_VBALLOON_DEFAULT_PAGES = 256;
/** fill_balloon's back-off after an allocation failure ("out of puff"). */
export const OUT_OF_PUFF_SLEEP_NS = 200_000_000;
/** gfp of a hinted block: no reclaim, no reserves, no warning (unmovable). */
export const FREE_PAGE_ALLOC_FLAG = __GFP_NORETRY | __GFP_NOWARN | __GFP_NOMEMALLOC;
/**
 * Delay before a resize round that moved no page runs again. The kernel
 * requeues the work at once and other CPUs keep running; a scheduler that
 * runs the earliest thread first would let the worker spin, so pagesim
 * charges this much simulated time instead.
 */
export const NO_PROGRESS_DELAY_NS = 1_000_000;

// Statistics tags (the virtio spec's VIRTIO_BALLOON_S_*).
export const VIRTIO_BALLOON_S_SWAP_IN = 0;
export const VIRTIO_BALLOON_S_SWAP_OUT = 1;
export const VIRTIO_BALLOON_S_MAJFLT = 2;
export const VIRTIO_BALLOON_S_MINFLT = 3;
export const VIRTIO_BALLOON_S_MEMFREE = 4;
export const VIRTIO_BALLOON_S_MEMTOT = 5;
export const VIRTIO_BALLOON_S_AVAIL = 6;
export const VIRTIO_BALLOON_S_CACHES = 7;
export const VIRTIO_BALLOON_S_HTLB_PGALLOC = 8;
export const VIRTIO_BALLOON_S_HTLB_PGFAIL = 9;
export const VIRTIO_BALLOON_S_NR = 10;
export const VIRTIO_BALLOON_S_NAMES: readonly string[] = [
  "swap-in",
  "swap-out",
  "major-faults",
  "minor-faults",
  "free-memory",
  "total-memory",
  "available-memory",
  "disk-caches",
  "hugetlb-allocations",
  "hugetlb-failures",
];

// Queue indices.
export const VQ_INFLATE = 0;
export const VQ_DEFLATE = 1;
export const VQ_STATS = 2;
export const VQ_REPORTING = 3;
export const VQ_FREE_PAGE = 4;
export const VQ_NAMES = ["inflate", "deflate", "stats", "reporting", "free_page"];

// Buffer slot states.
export const SLOT_FREE = 0;
/** Posted by the driver, not yet taken by the host. */
export const SLOT_AVAIL = 1;
/** Taken and answered by the host; the driver has not collected it yet. */
export const SLOT_USED = 2;
/** Taken by the host and kept (the stats buffer, until the host wants new figures). */
export const SLOT_HELD = 3;
/** Used-ring entries beyond the slots (room for ids a faulty device returns). */
export const USED_RING_EXTRA = 8;
/** dev_err() lines a VirtioBalloon keeps. */
export const VB_ERRORS_MAX = 16;

/** Buffers per queue and entries per buffer (the free page queue: many small ones). */
export const VQ_SLOTS = 4;
export const VQ_SLOT_ENTRIES = 2 * VIRTIO_BALLOON_ARRAY_PFNS_MAX;
export const FREE_PAGE_VQ_SLOTS = 128;
export const FREE_PAGE_VQ_ENTRIES = 2;

// Free page hinting (VIRTIO_BALLOON_F_FREE_PAGE_HINT).
export const VIRTIO_BALLOON_CMD_ID_STOP = 0;
export const VIRTIO_BALLOON_CMD_ID_DONE = 1;
/** Hints are blocks of this order (MAX_ORDER - 1 of the 5.x kernels: 4 MiB). */
export const VIRTIO_BALLOON_HINT_BLOCK_ORDER = 10;
/** Free page queue entry tags: a command id, or a hinted block's pfn. */
export const FREE_PAGE_TAG_CMD_ID = 0;
export const FREE_PAGE_TAG_HINT = 1;

/**
 * A virtqueue reduced to its buffers: VQ_SLOTS fixed buffers of u32 entries
 * (pfns; pfn/order pairs on the reporting queue; tag/value pairs on the
 * stats queue), allocated once.
 */
export class Virtqueue {
  readonly index: number;
  readonly name: string;
  readonly slots: number;
  readonly entries: number;
  readonly buf: Float64Array;
  readonly len: Int32Array;
  readonly state: Uint8Array;
  /** The driver does not wait for this buffer: the completion frees it. */
  readonly no_wait: Uint8Array;
  /** Posting order (sequence number), for the host to process in order. */
  readonly seq: Float64Array;
  nr_avail = 0;
  /**
   * The used ring: ids of buffers the device has used, in order; the driver
   * consumes them in virtqueue_get_buf(). used_head counts pushes,
   * used_tail pops.
   */
  readonly used_ring: Int32Array;
  used_head = 0;
  used_tail = 0;
  /** BAD_RING() marked the queue broken: it carries nothing any more. */
  broken = false;
  /** Step field names ("inflate.kick", "inflate.used"). */
  readonly kick_field: string;
  readonly used_field: string;
  constructor(index: number, slots = VQ_SLOTS, entries = VQ_SLOT_ENTRIES) {
    this.index = index;
    this.name = VQ_NAMES[index];
    this.slots = slots;
    this.entries = entries;
    this.buf = new Float64Array(slots * entries);
    this.len = new Int32Array(slots);
    this.state = new Uint8Array(slots);
    this.no_wait = new Uint8Array(slots);
    this.seq = new Float64Array(slots);
    this.used_ring = new Int32Array(slots + USED_RING_EXTRA);
    this.kick_field = `${this.name}.kick`;
    this.used_field = `${this.name}.used`;
  }
}

/** Bad input from the host side of the device. */
export class BalloonConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BalloonConfigError";
  }
}

/** struct virtio_balloon, with its config space and queues. */
export class VirtioBalloon {
  readonly name: string;
  /** The object id steps name (the device id). */
  readonly obj: number;
  readonly bc: BalloonCompaction;
  readonly vb_dev_info: BalloonDevInfo;
  readonly balloon_lock: Lock;
  /** Negotiated feature bits. */
  readonly features: number;
  /** Offered feature bits the driver did not know (masked off). */
  readonly features_rejected: number;
  /** config.num_pages: the host's target; config.actual: what the driver reports. */
  config_num_pages = 0;
  config_actual = 0;
  /** Pages in the balloon, as the driver counts them. */
  num_pages = 0;
  readonly pfns = new Uint32Array(VIRTIO_BALLOON_ARRAY_PFNS_MAX);
  num_pfns = 0;
  /** leak_balloon()'s local list of dequeued pages (a list_head slot). */
  readonly leak_list: number;
  readonly vqs: Virtqueue[];
  private seq = 0;
  /** Work items (queue_work): resize, stats; stop_update ends the worker. */
  size_work = false;
  stats_work = false;
  stop_update = false;
  /** virtballoon_remove() has begun: the host may not set targets any more. */
  removing = false;
  removed = false;
  readonly stats = new Float64Array(VIRTIO_BALLOON_S_NR);
  /** The stats queue's tag/value pairs, gathered before posting. */
  readonly stats_buf = new Float64Array(2 * VIRTIO_BALLOON_S_NR);
  /**
   * Used ids the device returned that the driver never made available (or
   * already had back): each broke its queue (virtqueue_get_buf's BAD_RING).
   * `errors` keeps the first dev_err() lines.
   */
  bad_used = 0;
  readonly errors: string[] = [];
  /** Counters of the driver's own events. */
  out_of_puff = 0;
  oom_pages = OOM_VBALLOON_DEFAULT_PAGES;
  oom_freed = 0;
  /** OOM notifications that could free nothing (lock held, MUST_TELL_HOST, no buffer). */
  oom_refused = 0;
  /**
   * migratepage calls refused because the caller could not sleep
   * (rt.can_sleep false: direct compaction, which runs inline) and the
   * driver would have waited for the host; each was answered -EAGAIN.
   */
  migrate_nosleep = 0;
  /** Worker rounds run. */
  rounds = 0;
  /**
   * Model bookkeeping: the old page of a migratepage between the insert of
   * the new page and the delete of the old one (-1 otherwise); in that
   * window the device owns one page more than listed + isolated_pages.
   */
  migrating_pfn = -1;
  /** The OOM notifier installed in m.hooks, so removal can take it out. */
  oom_hook: ((m: Machine, cpu: number) => number) | null = null;
  /** Free page reporting (VIRTIO_BALLOON_F_REPORTING), or null. */
  pr_dev_info: PageReportingDevInfo | null = null;
  /** The reporting queue's pfn/order pairs, gathered before posting. */
  readonly report_buf = new Float64Array(VQ_SLOT_ENTRIES);
  /** config.free_page_hint_cmd_id (written by the host). */
  config_free_page_hint_cmd_id = VIRTIO_BALLOON_CMD_ID_STOP;
  /** The command id the driver is hinting for. */
  cmd_id_active = VIRTIO_BALLOON_CMD_ID_STOP;
  /** report_free_page_work queued. */
  free_page_work = false;
  /** Hinted blocks the driver holds until the host says DONE (a list_head slot). */
  readonly free_page_list: number;
  num_free_page_blocks = 0;
  readonly hint_buf = new Float64Array(FREE_PAGE_VQ_ENTRIES);

  constructor(bc: BalloonCompaction, name: string, device_features: number, obj: number) {
    if (!Number.isInteger(device_features) || device_features < 0 || device_features > 0xffff_ffff)
      throw new BalloonConfigError(
        `virtio_balloon '${name}': device features ${device_features} are not a 32-bit mask`,
      );
    this.name = name;
    this.obj = obj;
    this.bc = bc;
    this.features = (device_features & VIRTIO_BALLOON_DRIVER_FEATURES) >>> 0;
    this.features_rejected = (device_features & ~VIRTIO_BALLOON_DRIVER_FEATURES) >>> 0;
    this.vb_dev_info = balloon_devinfo_init(bc, name);
    this.balloon_lock = bc.mm.new_lock("vb->balloon_lock", "mutex");
    this.vqs = [0, 1, 2, 3].map((i) => new Virtqueue(i));
    this.vqs.push(new Virtqueue(VQ_FREE_PAGE, FREE_PAGE_VQ_SLOTS, FREE_PAGE_VQ_ENTRIES));
    const mm = bc.mm;
    this.leak_list = mm.list_head_pool.pop() ?? mm.m.mem.alloc_list_head();
    this.free_page_list = mm.list_head_pool.pop() ?? mm.m.mem.alloc_list_head();
  }

  next_seq(): number {
    return ++this.seq;
  }
}

/** virtio_has_feature(). */
export function virtio_has_feature(vb: VirtioBalloon, bit: number): boolean {
  if (!(Number.isInteger(bit) && bit >= 0 && bit < 32))
    throw new RangeError(`virtio_has_feature: feature bit ${bit} out of range 0..31`);
  return (vb.features & (1 << bit)) !== 0;
}

export interface VirtballoonProbeOptions {
  name: string;
  /** Feature bits the device offers. */
  device_features: number;
  /** The object id used in steps (defaults to 1000 + device id). */
  obj?: number;
  /** The oom_pages module parameter. */
  oom_pages?: number;
}

/**
 * virtballoon_probe(): negotiate features, set up the balloon device, the
 * migration callback (with CONFIG_BALLOON_COMPACTION) and the OOM notifier
 * (with DEFLATE_ON_OOM). Spawn virtballoon_worker() as a thread to run it.
 */
export function virtballoon_probe(
  bc: BalloonCompaction,
  opts: VirtballoonProbeOptions,
): VirtioBalloon {
  // Bad parameters are refused before the device exists (no half-made device).
  if (opts.oom_pages !== undefined && !(Number.isInteger(opts.oom_pages) && opts.oom_pages > 0))
    throw new BalloonConfigError(`virtio_balloon '${opts.name}': oom_pages must be > 0`);
  const obj = opts.obj ?? 1000 + bc.devices.length;
  const vb = new VirtioBalloon(bc, opts.name, opts.device_features, obj);
  const b = vb.vb_dev_info;
  if (bc.compaction) {
    b.migratepage = (rt, _b, newpage, page, mode) =>
      virtballoon_migratepage(rt, vb, newpage, page, mode);
    // tell_host() sleeps: direct compaction leaves these pages alone.
    b.migratepage_sleeps = true;
  }
  const oom = virtio_has_feature(vb, VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
  // Without deflate-on-OOM ballooned memory leaves the managed count.
  b.adjust_managed_page_count = !oom;
  if (opts.oom_pages !== undefined) vb.oom_pages = opts.oom_pages;
  if (oom) {
    const m = bc.mm.m;
    const prev = m.hooks.oom_notify;
    const mine = (mm: Machine, cpu: number) => virtballoon_oom_notify(vb, mm, cpu);
    vb.oom_hook = mine;
    m.hooks.oom_notify = prev ? (mm, cpu) => prev(mm, cpu) + mine(mm, cpu) : mine;
  }
  // init_vqs(): the stats queue starts with one buffer of figures, which the
  // device keeps until it wants fresh ones.
  if (virtio_has_feature(vb, VIRTIO_BALLOON_F_STATS_VQ)) stats_post(vb);
  if (virtio_has_feature(vb, VIRTIO_BALLOON_F_REPORTING)) {
    const m = bc.mm.m;
    const prdev = new PageReportingDevInfo(
      m,
      (rt, pfns, orders, n) => virtballoon_free_page_report(rt, vb, pfns, orders, n),
      m.mem.pageblock_order,
    );
    if (page_reporting_register(m, prdev) !== 0)
      throw new BalloonConfigError(
        `virtio_balloon '${opts.name}': another device already does free page reporting (-EBUSY)`,
      );
    vb.pr_dev_info = prdev;
  }
  return vb;
}

/**
 * virtballoon_free_page_report(): hand a batch of free blocks to the host
 * on the reporting queue and wait until it has used the buffer.
 */
export function* virtballoon_free_page_report(
  rt: Runtime,
  vb: VirtioBalloon,
  pfns: Int32Array,
  orders: Uint8Array,
  n: number,
): StepOf<number> {
  const vq = vb.vqs[VQ_REPORTING];
  for (let i = 0; i < n; i++) {
    vb.report_buf[2 * i] = pfns[i];
    vb.report_buf[2 * i + 1] = orders[i];
  }
  const slot = virtqueue_add_outbuf(vb, vq, vb.report_buf, 2 * n, false);
  if (slot < 0 && vq.broken) return -EIO;
  assert(slot >= 0, "virtballoon_free_page_report: one report in flight at a time");
  yield* rt.access(OP_WRITE, vb.obj, "reporting.kick");
  yield* wait_for_used(rt, vb, vq, slot);
  return 0;
}

// ---------------------------------------------------------------------------
// Virtqueue operations (driver side)

/**
 * virtqueue_add_outbuf() of `n` entries copied from `src`: the slot, or -1
 * when full or broken (the kernel's -ENOSPC / -EIO).
 */
export function virtqueue_add_outbuf(
  vb: VirtioBalloon,
  vq: Virtqueue,
  src: ArrayLike<number>,
  n: number,
  no_wait: boolean,
): number {
  assert(n > 0 && n <= vq.entries, "virtqueue_add_outbuf: buffer size");
  if (vq.broken) return -1;
  for (let s = 0; s < vq.slots; s++) {
    if (vq.state[s] !== SLOT_FREE) continue;
    const base = s * vq.entries;
    for (let i = 0; i < n; i++) vq.buf[base + i] = src[i];
    vq.len[s] = n;
    vq.no_wait[s] = no_wait ? 1 : 0;
    vq.seq[s] = vb.next_seq();
    vq.state[s] = SLOT_AVAIL;
    vq.nr_avail++;
    return s;
  }
  return -1;
}

/**
 * The device side of "used": push buffer id `id` on the used ring
 * (virtqueue_push() in QEMU); the device marks the slot SLOT_USED first.
 * Nothing checks `id` here: the driver does, in virtqueue_get_buf().
 */
export function virtqueue_push_used(vq: Virtqueue, id: number): void {
  const cap = vq.used_ring.length;
  assert(vq.used_head - vq.used_tail < cap, "virtqueue_push_used: used ring full");
  vq.used_ring[vq.used_head % cap] = id;
  vq.used_head++;
}

/** The driver's dev_err(): count and keep the first lines. */
function vb_err(vb: VirtioBalloon, what: string): void {
  if (vb.errors.length < VB_ERRORS_MAX) vb.errors.push(`virtio_balloon '${vb.name}': ${what}`);
}

/**
 * virtqueue_get_buf(): the next used buffer's slot, freed for reuse, or -1
 * when none is used (or the queue is broken). An id that is out of range or
 * names a buffer the driver did not have with the device is the device's
 * fault: BAD_RING() logs it, counts it (bad_used) and marks the queue
 * broken, after which it carries nothing (add fails, get_buf finds nothing).
 */
export function virtqueue_get_buf(vb: VirtioBalloon, vq: Virtqueue): number {
  if (vq.broken || vq.used_tail === vq.used_head) return -1;
  const id = vq.used_ring[vq.used_tail % vq.used_ring.length];
  vq.used_tail++;
  const bad = !(Number.isInteger(id) && id >= 0 && id < vq.slots) || vq.state[id] !== SLOT_USED;
  if (bad) {
    vq.broken = true;
    vb.bad_used++;
    vb_err(
      vb,
      `${vq.name}: used id ${id} ${id >= 0 && id < vq.slots ? "is not a buffer the device had" : "out of range"}; queue broken`,
    );
    return -1;
  }
  vq.state[id] = SLOT_FREE;
  return id;
}

/**
 * Sleep until the device has used our buffer `slot` (the kernel's
 * wait_event(vb->acked, virtqueue_get_buf(...))): collect used ids as they
 * come. A bad id breaks the queue; the kernel would then wait forever
 * (get_buf finds nothing any more); pagesim lets this one buffer finish
 * once the device has used it, so that no page is left half-moved, and the
 * callers stop using a broken device (virtballoon_broken).
 */
function* wait_for_used(rt: Runtime, vb: VirtioBalloon, vq: Virtqueue, slot: number): StepOf<void> {
  for (let n = 0; ; n++) {
    assert(n <= vq.used_ring.length, "tell_host: used ring walk bounded");
    yield* rt.wait_event(vb.obj, vq.used_field, () =>
      vq.broken ? vq.state[slot] === SLOT_USED : vq.used_head !== vq.used_tail,
    );
    if (vq.broken) {
      vq.state[slot] = SLOT_FREE;
      return;
    }
    if (virtqueue_get_buf(vb, vq) === slot) return;
  }
}

/** Whether a queue the resize, migration or OOM paths need is broken (BAD_RING). */
export function virtballoon_broken(vb: VirtioBalloon): boolean {
  return vb.vqs[VQ_INFLATE].broken || vb.vqs[VQ_DEFLATE].broken;
}

/**
 * tell_host(): post vb.pfns[0..num_pfns) on `vq`, kick, and sleep until the
 * host has used the buffer (the kernel's wait_event on vb->acked).
 */
export function* tell_host(rt: Runtime, vb: VirtioBalloon, vq: Virtqueue): StepOf<void> {
  const slot = virtqueue_add_outbuf(vb, vq, vb.pfns, vb.num_pfns, false);
  assert(slot >= 0, "tell_host: the driver has one buffer in flight per queue");
  yield* rt.access(OP_WRITE, vb.obj, vq.kick_field);
  yield* wait_for_used(rt, vb, vq, slot);
}

/** Whether `pfn` is in a buffer the host has not answered, or being gathered under balloon_lock. */
export function vb_pfn_in_flight(vb: VirtioBalloon, pfn: Pfn): boolean {
  for (let i = 0; i < vb.num_pfns; i++) if (vb.pfns[i] === pfn) return true;
  const mem = vb.bc.mm.m.mem;
  let n = 0;
  for (let p = mem.lru_next[vb.leak_list]; p !== vb.leak_list; p = mem.lru_next[p]) {
    if (p === pfn) return true;
    assert(++n <= VIRTIO_BALLOON_ARRAY_PFNS_MAX, "vb_pfn_in_flight: leak list bounded");
  }
  for (const q of [VQ_INFLATE, VQ_DEFLATE]) {
    const vq = vb.vqs[q];
    for (let s = 0; s < vq.slots; s++) {
      if (vq.state[s] === SLOT_FREE) continue;
      const base = s * vq.entries;
      for (let i = 0; i < vq.len[s]; i++) if (vq.buf[base + i] === pfn) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Resizing

/** towards_target(): pages to add (> 0) or give back (< 0). */
export function towards_target(vb: VirtioBalloon): number {
  return vb.config_num_pages - vb.num_pages;
}

/** update_balloon_size(): write config.actual. */
export function update_balloon_size(vb: VirtioBalloon): void {
  vb.config_actual = vb.num_pages;
}

/** fill_balloon(): inflate by up to `num` pages (one batch); returns pages added. */
export function* fill_balloon(rt: Runtime, vb: VirtioBalloon, num: number): StepOf<number> {
  const bc = vb.bc;
  const mm = bc.mm;
  const mem = mm.m.mem;
  const n_max = Math.min(num, VIRTIO_BALLOON_ARRAY_PFNS_MAX);
  const list = mm.list_head_pool.pop() ?? mem.alloc_list_head();
  for (let i = 0; i < n_max; i += VIRTIO_BALLOON_PAGES_PER_PAGE) {
    const page = balloon_page_alloc(rt, bc);
    if (page < 0) {
      // Out of puff: back off a fifth of a second before the next round.
      vb.out_of_puff++;
      yield* rt.schedule_timeout(OUT_OF_PUFF_SLEEP_NS);
      break;
    }
    list_add(mem, page, list); // balloon_page_push()
  }
  yield* rt.mutex_lock(vb.balloon_lock);
  if (virtballoon_broken(vb)) {
    // A broken queue carries nothing: give the pages back untouched.
    for (let page = mem.lru_next[list]; page !== list; page = mem.lru_next[list]) {
      list_del(mem, page);
      put_page(rt, mm, page);
    }
    mm.list_head_pool.push(list);
    yield* rt.mutex_unlock(vb.balloon_lock);
    return 0;
  }
  vb.num_pfns = 0;
  for (let page = mem.lru_next[list]; page !== list; page = mem.lru_next[list]) {
    list_del(mem, page); // balloon_page_pop()
    // set_page_pfns() first (the kernel does it just after the enqueue), so
    // the page is in flight from the moment it is a balloon page.
    vb.pfns[vb.num_pfns++] = page;
    yield* balloon_page_enqueue(rt, bc, vb.vb_dev_info, page);
    vb.num_pages += VIRTIO_BALLOON_PAGES_PER_PAGE;
  }
  mm.list_head_pool.push(list);
  const num_allocated_pages = vb.num_pfns;
  if (vb.num_pfns !== 0) yield* tell_host(rt, vb, vb.vqs[VQ_INFLATE]);
  vb.num_pfns = 0;
  yield* rt.mutex_unlock(vb.balloon_lock);
  return num_allocated_pages;
}

/** leak_balloon(): deflate by up to `num` pages (one batch); returns pages freed. */
export function* leak_balloon(rt: Runtime, vb: VirtioBalloon, num: number): StepOf<number> {
  const bc = vb.bc;
  const mem = bc.mm.m.mem;
  const list = vb.leak_list;
  yield* rt.mutex_lock(vb.balloon_lock);
  // A broken queue carries nothing: the pages stay in the balloon.
  const n_max = virtballoon_broken(vb)
    ? 0
    : Math.min(num, VIRTIO_BALLOON_ARRAY_PFNS_MAX, vb.num_pages);
  for (vb.num_pfns = 0; vb.num_pfns < n_max; ) {
    // balloon_page_dequeue() and list_add() onto the local list in one.
    const page = yield* balloon_page_dequeue_onto(rt, bc, vb.vb_dev_info, list);
    if (page < 0) break; // the rest are isolated (or locked) for now
    vb.pfns[vb.num_pfns] = page;
    vb.num_pfns += VIRTIO_BALLOON_PAGES_PER_PAGE;
    vb.num_pages -= VIRTIO_BALLOON_PAGES_PER_PAGE;
  }
  const num_freed_pages = vb.num_pfns;
  // Tell the host first, then give the pages back to the allocator.
  if (vb.num_pfns !== 0) yield* tell_host(rt, vb, vb.vqs[VQ_DEFLATE]);
  vb.num_pfns = 0;
  release_pages_balloon(rt, vb, list);
  void mem;
  yield* rt.mutex_unlock(vb.balloon_lock);
  return num_freed_pages;
}

/**
 * release_pages_balloon() (release_pages_by_pfn() before v3.18): give each
 * deflated page back (balloon_page_free(): the balloon's reference, and in
 * 2012 dequeue's extra one).
 */
function release_pages_balloon(rt: Runtime, vb: VirtioBalloon, list: number): void {
  const mm = vb.bc.mm;
  const mem = mm.m.mem;
  for (let page = mem.lru_next[list]; page !== list; page = mem.lru_next[list]) {
    list_del(mem, page);
    balloon_page_free(rt, vb.bc, page);
  }
}

/**
 * update_balloon_size_func(): one round of the resize work: a batch
 * towards the target, report actual, queue another round if not there.
 */
export function* update_balloon_size_func(rt: Runtime, vb: VirtioBalloon): StepOf<void> {
  let diff = towards_target(vb);
  vb.rounds++;
  if (diff === 0) return;
  const moved =
    diff > 0 ? yield* fill_balloon(rt, vb, diff) : -(yield* leak_balloon(rt, vb, -diff));
  diff -= moved;
  update_balloon_size(vb);
  if (diff !== 0 && !vb.stop_update && !virtballoon_broken(vb)) {
    vb.size_work = true; // queue_work()
    if (moved === 0) yield* rt.schedule_timeout(NO_PROGRESS_DELAY_NS);
  }
}

/** Work queued for the worker (or a request to stop). */
function vb_work_pending(vb: VirtioBalloon): boolean {
  return vb.size_work || vb.stats_work || vb.free_page_work || vb.stop_update;
}

/**
 * The driver's work queue as one thread: runs the resize, stats and free
 * page hinting work items as they are queued, until stop_update is set.
 */
export function* virtballoon_worker(rt: Runtime, vb: VirtioBalloon): StepOf<void> {
  for (;;) {
    yield* rt.wait_event(vb.obj, "vb->work", () => vb_work_pending(vb));
    if (vb.stats_work) {
      vb.stats_work = false;
      yield* rt.access(OP_WRITE, vb.obj, "stats.kick");
      stats_handle_request(vb);
    }
    if (vb.free_page_work && !vb.stop_update) {
      vb.free_page_work = false;
      yield* report_free_page_func(rt, vb);
    }
    if (vb.size_work && !vb.stop_update) {
      vb.size_work = false;
      yield* update_balloon_size_func(rt, vb);
    } else if (vb.stop_update) return;
  }
}

/**
 * The host side of the config change: write config.num_pages and raise the
 * config interrupt (virtballoon_changed(), which queues the resize work).
 */
export function virtio_balloon_set_num_pages(vb: VirtioBalloon, num_pages: number): void {
  if (vb.removing || vb.removed)
    throw new BalloonConfigError(
      `virtio_balloon '${vb.name}': target set while the device is being removed`,
    );
  if (!(Number.isInteger(num_pages) && num_pages >= 0 && num_pages <= 0xffff_ffff))
    throw new BalloonConfigError(
      `virtio_balloon '${vb.name}': num_pages ${num_pages} is not an integer in [0, 2^32)`,
    );
  vb.config_num_pages = num_pages;
  virtballoon_changed(vb);
}

/** virtballoon_changed(): the config interrupt: queue the resize (and hinting) work. */
export function virtballoon_changed(vb: VirtioBalloon): void {
  if (vb.stop_update) return;
  vb.size_work = true;
  if (virtio_has_feature(vb, VIRTIO_BALLOON_F_FREE_PAGE_HINT)) vb.free_page_work = true;
}

/**
 * The host side of free page hinting: write config.free_page_hint_cmd_id
 * (a new id >= 2 starts a round, STOP ends it, DONE lets the guest have its
 * hinted pages back) and raise the config interrupt.
 */
export function virtio_balloon_set_free_page_hint_cmd_id(vb: VirtioBalloon, cmd_id: number): void {
  if (!virtio_has_feature(vb, VIRTIO_BALLOON_F_FREE_PAGE_HINT))
    throw new BalloonConfigError(`virtio_balloon '${vb.name}': FREE_PAGE_HINT was not negotiated`);
  if (!(Number.isInteger(cmd_id) && cmd_id >= 0 && cmd_id <= 0xffff_ffff))
    throw new BalloonConfigError(
      `virtio_balloon '${vb.name}': hint command id ${cmd_id} is not a u32`,
    );
  vb.config_free_page_hint_cmd_id = cmd_id;
  virtballoon_changed(vb);
}

// ---------------------------------------------------------------------------
// Free page hinting

/**
 * report_free_page_func(): DONE gives every hinted block back to the
 * allocator; a new command id starts a hinting round.
 */
export function* report_free_page_func(rt: Runtime, vb: VirtioBalloon): StepOf<void> {
  const id = vb.config_free_page_hint_cmd_id;
  if (id === VIRTIO_BALLOON_CMD_ID_DONE) return_free_pages_to_mm(rt, vb, Number.POSITIVE_INFINITY);
  else if (id !== VIRTIO_BALLOON_CMD_ID_STOP && id !== vb.cmd_id_active)
    yield* virtio_balloon_report_free_page(rt, vb);
}

/** send_cmd_id_start() / send_cmd_id_stop(): a command id on the free page queue. */
function send_cmd_id(vb: VirtioBalloon, id: number): void {
  vb.hint_buf[0] = FREE_PAGE_TAG_CMD_ID;
  vb.hint_buf[1] = id;
  virtqueue_add_outbuf(vb, vb.vqs[VQ_FREE_PAGE], vb.hint_buf, 2, true);
}

/**
 * virtio_balloon_report_free_page(): send the command id, then take free
 * blocks of VIRTIO_BALLOON_HINT_BLOCK_ORDER one by one (never reclaiming)
 * and hint each to the host, keeping them, until the allocator has none
 * left or the host changes the command id; then send STOP. A block that
 * finds the queue full is freed again (one entry stays free for the id)
 * and ends the round.
 */
export function* virtio_balloon_report_free_page(rt: Runtime, vb: VirtioBalloon): StepOf<void> {
  const m = vb.bc.mm.m;
  const vq = vb.vqs[VQ_FREE_PAGE];
  vb.cmd_id_active = vb.config_free_page_hint_cmd_id;
  send_cmd_id(vb, vb.cmd_id_active);
  const cpu = this_cpu(rt, m);
  for (let n = 0; n <= m.mem.nr_pages; n++) {
    yield* rt.access(OP_READ, vb.obj, "free_page_hint_cmd_id");
    if (vb.config_free_page_hint_cmd_id !== vb.cmd_id_active) break;
    const pfn = alloc_pages(m, cpu, FREE_PAGE_ALLOC_FLAG, VIRTIO_BALLOON_HINT_BLOCK_ORDER);
    if (pfn < 0) break;
    if (vq.slots - used_slots(vq) <= 1) {
      // Queue full: free the block and end the round (the kernel keeps
      // trying; with a 128-entry queue and a host that keeps up it rarely
      // gets here).
      __free_pages(m, cpu, pfn, VIRTIO_BALLOON_HINT_BLOCK_ORDER);
      break;
    }
    vb.hint_buf[0] = FREE_PAGE_TAG_HINT;
    vb.hint_buf[1] = pfn;
    virtqueue_add_outbuf(vb, vq, vb.hint_buf, 2, true);
    list_add(m.mem, pfn, vb.free_page_list);
    vb.num_free_page_blocks++;
  }
  send_cmd_id(vb, VIRTIO_BALLOON_CMD_ID_STOP);
}

function used_slots(vq: Virtqueue): number {
  let n = 0;
  for (let s = 0; s < vq.slots; s++) if (vq.state[s] !== SLOT_FREE) n++;
  return n;
}

/** return_free_pages_to_mm(): free up to `num` hinted blocks; returns how many. */
export function return_free_pages_to_mm(rt: Runtime, vb: VirtioBalloon, num: number): number {
  const m = vb.bc.mm.m;
  const mem = m.mem;
  const cpu = this_cpu(rt, m);
  let n = 0;
  for (let p = mem.lru_next[vb.free_page_list]; p !== vb.free_page_list && n < num; ) {
    list_del(mem, p);
    __free_pages(m, cpu, p, VIRTIO_BALLOON_HINT_BLOCK_ORDER);
    vb.num_free_page_blocks--;
    n++;
    p = mem.lru_next[vb.free_page_list];
  }
  return n;
}

/** Whether `pfn` lies in a hinted block the driver still holds. */
export function vb_pfn_hinted(vb: VirtioBalloon, pfn: Pfn): boolean {
  const mem = vb.bc.mm.m.mem;
  const size = 1 << VIRTIO_BALLOON_HINT_BLOCK_ORDER;
  for (let p = mem.lru_next[vb.free_page_list]; p !== vb.free_page_list; p = mem.lru_next[p]) {
    if (pfn >= p && pfn < p + size) return true;
  }
  return false;
}

/**
 * virtballoon_remove(): stop the worker, give every page back (waiting for
 * isolated pages to come back from compaction), drop the OOM notifier and
 * release the device. Run as a thread after the worker has been told to
 * stop; bounded by `rounds_max` rounds of leak_balloon.
 */
export function* virtballoon_remove(
  rt: Runtime,
  vb: VirtioBalloon,
  rounds_max = 1 << 20,
): StepOf<void> {
  vb.removing = true;
  vb.stop_update = true;
  const m = vb.bc.mm.m;
  if (vb.oom_hook && m.hooks.oom_notify === vb.oom_hook) m.hooks.oom_notify = null;
  if (vb.pr_dev_info) page_reporting_unregister(m, vb.pr_dev_info);
  return_free_pages_to_mm(rt, vb, Number.POSITIVE_INFINITY);
  vb.oom_pages = 0;
  for (let round = 0; vb.num_pages > 0; round++) {
    assert(round < rounds_max, "virtballoon_remove: balloon never emptied");
    if ((yield* leak_balloon(rt, vb, vb.num_pages)) === 0) yield* rt.schedule_timeout(1_000_000);
  }
  update_balloon_size(vb);
  balloon_devinfo_release(vb.bc, vb.vb_dev_info);
  vb.bc.mm.list_head_pool.push(vb.leak_list, vb.free_page_list);
  vb.removed = true;
}

// ---------------------------------------------------------------------------
// Migration

/**
 * virtballoon_migratepage(): compaction moves balloon page `page` to
 * `newpage` (both locked by the core). Trylock balloon_lock (-EAGAIN if a
 * resize holds it), make newpage a balloon page and tell the host to
 * inflate it, then stop using the old page and tell the host to deflate it;
 * the old page is freed by the core only after this returns.
 *
 * Both tell_host() calls sleep until the host answers. A caller that cannot
 * sleep (rt.can_sleep false: direct compaction runs inline, see
 * compaction_direct.ts) gets -EAGAIN before anything changes, as if a
 * resize held balloon_lock; the kernel's direct compaction would sleep
 * here instead. Counted in vb.migrate_nosleep.
 */
export function* virtballoon_migratepage(
  rt: Runtime,
  vb: VirtioBalloon,
  newpage: Pfn,
  page: Pfn,
  _mode: number,
): StepOf<number> {
  const bc = vb.bc;
  const mm = bc.mm;
  const b = vb.vb_dev_info;
  if (rt.can_sleep === false) {
    vb.migrate_nosleep++;
    return -EAGAIN;
  }
  if (!(yield* rt.mutex_trylock(vb.balloon_lock))) return -EAGAIN;
  if (virtballoon_broken(vb)) {
    // The host cannot be told: the page stays where it is.
    yield* rt.mutex_unlock(vb.balloon_lock);
    return -EAGAIN;
  }
  mm.m.mem._refcount[newpage]++; // get_page(): the balloon's reference
  // set_page_pfns() before the insert (the kernel does it after): the new
  // page is in flight from the moment it is a balloon page.
  vb.num_pfns = VIRTIO_BALLOON_PAGES_PER_PAGE;
  vb.pfns[0] = newpage;
  const flags = yield* rt.spin_lock_irqsave(b.pages_lock);
  balloon_page_insert(rt, bc, b, newpage);
  b.isolated_pages--;
  vb.migrating_pfn = page;
  mm.m.vm_events[BALLOON_MIGRATE]++;
  yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  yield* tell_host(rt, vb, vb.vqs[VQ_INFLATE]);
  vb.num_pfns = VIRTIO_BALLOON_PAGES_PER_PAGE;
  vb.pfns[0] = page;
  const del_flags = bc.era.delete_under_pages_lock ? yield* rt.spin_lock_irqsave(b.pages_lock) : 0;
  balloon_page_remove(rt, bc, page); // 2025 on: balloon_page_finalize()
  vb.migrating_pfn = -1;
  if (bc.era.delete_under_pages_lock) yield* rt.spin_unlock_irqrestore(b.pages_lock, del_flags);
  yield* tell_host(rt, vb, vb.vqs[VQ_DEFLATE]);
  vb.num_pfns = 0;
  yield* rt.mutex_unlock(vb.balloon_lock);
  put_page(rt, mm, page); // the balloon's reference; the core drops the last
  return 0;
}

// ---------------------------------------------------------------------------
// Deflate on OOM

/**
 * virtballoon_oom_notify(): the OOM notifier (DEFLATE_ON_OOM): give back up
 * to oom_pages pages before the OOM killer runs. Returns pages freed.
 *
 * The allocator runs as one atomic step in pagesim, so this cannot sleep on
 * balloon_lock or wait for the host as the kernel's leak_balloon() would:
 * it frees nothing when balloon_lock or pages_lock is held by a thread, or
 * when MUST_TELL_HOST was negotiated (it would have to wait for the ack);
 * otherwise it takes listed, unlocked pages, posts the deflate buffer
 * without waiting (the spec allows reuse before the ack without
 * MUST_TELL_HOST) and frees them at once. The atomic step stands in for
 * balloon_lock, pages_lock and the page locks.
 */
export function virtballoon_oom_notify(vb: VirtioBalloon, m: Machine, cpu: number): number {
  const bc = vb.bc;
  const b = vb.vb_dev_info;
  const mem = m.mem;
  if (vb.removing || vb.oom_pages === 0 || vb.num_pages === 0) return 0;
  if (
    virtio_has_feature(vb, VIRTIO_BALLOON_F_MUST_TELL_HOST) ||
    vb.balloon_lock.owner !== -1 ||
    b.pages_lock.owner !== -1
  ) {
    vb.oom_refused++;
    return 0;
  }
  const n_max = Math.min(vb.oom_pages, VIRTIO_BALLOON_ARRAY_PFNS_MAX, vb.num_pages);
  let n = 0;
  for (let p = mem.lru_next[b.pages]; p !== b.pages && n < n_max; ) {
    const next = mem.lru_next[p];
    if (!PageLocked(mem, p) && !PageIsolated(mem, p)) vb.pfns[n++] = p;
    p = next;
  }
  if (n === 0) {
    vb.oom_refused++;
    return 0;
  }
  const slot = virtqueue_add_outbuf(vb, vb.vqs[VQ_DEFLATE], vb.pfns, n, true);
  if (slot < 0) {
    vb.oom_refused++;
    return 0;
  }
  for (let i = 0; i < n; i++) {
    const p = vb.pfns[i];
    __balloon_page_delete(bc, b, p);
    if (b.adjust_managed_page_count) m.page_zone(p)!.managed_pages++;
    m.vm_events[BALLOON_DEFLATE]++;
    mem.mapping[p] = 0;
    __free_pages(m, cpu, p, 0);
  }
  vb.num_pages -= n;
  update_balloon_size(vb);
  vb.oom_freed += n;
  return n;
}

// ---------------------------------------------------------------------------
// Statistics

/** update_balloon_stats(): the guest's figures, by the spec's tags. */
export function update_balloon_stats(vb: VirtioBalloon): void {
  const m = vb.bc.mm.m;
  let free = 0;
  let total = 0;
  for (const z of m.zones) {
    free += z.vm_stat[NR_FREE_PAGES];
    total += z.managed_pages;
  }
  const caches = m.pgdat[0].vm_stat[NR_INACTIVE_FILE] + m.pgdat[0].vm_stat[NR_ACTIVE_FILE];
  const s = vb.stats;
  s.fill(0);
  s[VIRTIO_BALLOON_S_MEMFREE] = free * 4096;
  s[VIRTIO_BALLOON_S_MEMTOT] = total * 4096;
  s[VIRTIO_BALLOON_S_AVAIL] = (free + caches) * 4096;
  s[VIRTIO_BALLOON_S_CACHES] = caches * 4096;
}

/** Fill the figures and make the stats buffer available to the device. */
function stats_post(vb: VirtioBalloon): number {
  update_balloon_stats(vb);
  const pairs = vb.stats_buf;
  for (let t = 0; t < VIRTIO_BALLOON_S_NR; t++) {
    pairs[2 * t] = t;
    pairs[2 * t + 1] = vb.stats[t];
  }
  return virtqueue_add_outbuf(vb, vb.vqs[VQ_STATS], pairs, pairs.length, false);
}

/**
 * stats_request(): the stats queue's callback. The device returned (used)
 * the stats buffer: it wants fresh figures; queue the stats work unless the
 * device is going away.
 */
export function stats_request(vb: VirtioBalloon): void {
  if (!vb.stop_update) vb.stats_work = true;
}

/**
 * stats_handle_request(): the stats work: take the buffer the device
 * returned (virtqueue_get_buf; nothing if it returned none, or a bad id,
 * which breaks the queue), refill it and make it available again.
 */
export function stats_handle_request(vb: VirtioBalloon): void {
  if (!virtio_has_feature(vb, VIRTIO_BALLOON_F_STATS_VQ)) return;
  if (virtqueue_get_buf(vb, vb.vqs[VQ_STATS]) < 0) return;
  stats_post(vb);
}
