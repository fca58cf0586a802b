/**
 * kernel/compaction_daemon.ts: kcompactd and proactive compaction, from
 * mm/compaction.c (v6.16): the per-node kcompactd thread (kcompactd(),
 * kcompactd_do_work(), kcompactd_work_requested(), kcompactd_node_suitable(),
 * wakeup_kcompactd()), proactive compaction (should_proactive_compact_node(),
 * compact_node() with proactive = true) and the write side of
 * /proc/sys/vm/compaction_proactiveness.
 *
 * kcompactd is a generator a simulator runs as a thread (one per node).
 * Sleeping on pgdat->kcompactd_wait is modelled with two flags on the node
 * (kcompactd_sleeping, kcompactd_woken) and a loop of cond_resched() steps
 * that ends when someone wakes the node, kcompactd_stop() is called, or the
 * timeout passes on the clock the runner supplies (simulated nanoseconds;
 * without a clock timeouts never fire). As with wait_event_timeout(), the
 * wake-up condition is evaluated only when the sleep ends, not while it
 * lasts.
 *
 * Waking: kswapd is not modelled. install_kcompactd_wakeup() attaches the
 * allocator's wakeup_kswapd seam (if nothing else has) to
 * kswapd_wakeup_kcompactd(), which does what wakeup_kswapd() and kswapd's
 * sleep path would end in for a high-order request: wake kcompactd for
 * the order when the node is balanced at order 0 (the high watermark of a
 * zone is met), regardless of the request's gfp flags.
 *
 * Locks: kcompactd takes what compact_zone() takes (see compaction.ts). The
 * node's kcompactd fields are read and written without a lock, as in the
 * kernel (a racing wake-up is at worst seen at the next timeout).
 * Invariants: kcompactd_max_order is 0 whenever no work is pending;
 * compact_daemon_migrate_scanned / compact_daemon_free_scanned never exceed
 * compact_migrate_scanned / compact_free_scanned.
 */

import type { Runtime, Step, StepOf } from "../runtime/runtime.ts";
import { assert } from "./bug.ts";
import {
  COMPACT_COMPLETE,
  COMPACT_CONTINUE,
  COMPACT_MAX_DEFER_SHIFT,
  COMPACT_PARTIAL_SKIPPED,
  COMPACT_SUCCESS,
  compact_control,
  compact_control_release,
  compact_zone,
  compaction_defer_reset,
  compaction_deferred,
  compaction_suit_allocation_order,
  defer_compaction,
  fragmentation_score_node,
  fragmentation_score_wmark,
} from "./compaction.ts";
import { GFP_KERNEL } from "./gfp.ts";
import type { Machine } from "./machine.ts";
import { MIGRATE_SYNC, MIGRATE_SYNC_LIGHT } from "./migrate.ts";
import type { MmState } from "./mm/state.ts";
import type { PgData, Zone } from "./mmzone.ts";
import { drain_all_pages } from "./page_alloc/pcp.ts";
import { ALLOC_WMARK_MIN, zone_watermark_ok } from "./page_alloc/watermark.ts";
import {
  KCOMPACTD_FREE_SCANNED,
  KCOMPACTD_MIGRATE_SCANNED,
  KCOMPACTD_WAKE,
} from "./vmstat_items.ts";

/** HPAGE_FRAG_CHECK_INTERVAL_MSEC: kcompactd looks at the fragmentation score this often. */
export const HPAGE_FRAG_CHECK_INTERVAL_MSEC = 500;
const NSEC_PER_MSEC = 1_000_000;

/** The kcompactd task of one node: what the kthread itself keeps. */
export class Kcompactd {
  readonly pgdat: PgData;
  /** The runner's clock in simulated nanoseconds, or null (timeouts never fire). */
  readonly clock: (() => number) | null;
  /** kthread_should_stop() */
  should_stop = false;
  /** Bound on the cond_resched() steps of one sleep (the loop's bound). */
  readonly sleep_steps_max: number;
  /** Sleeps ended by a timeout, by a wake-up (observability for runners and tests). */
  timeouts = 0;
  wakeups = 0;
  /** While asleep: the clock time the sleep times out (Infinity: never). */
  sleep_deadline_ns = Number.POSITIVE_INFINITY;
  constructor(pgdat: PgData, clock: (() => number) | null, sleep_steps_max = 1e9) {
    this.pgdat = pgdat;
    this.clock = clock;
    this.sleep_steps_max = sleep_steps_max;
  }
}

/** pgdat->nr_zones: one past the highest populated zone index. */
function pgdat_nr_zones(pgdat: PgData): number {
  let n = 0;
  for (const zone of pgdat.node_zones) if (zone.populated_zone()) n = zone.zone_idx + 1;
  return n;
}

/** kcompactd_work_requested(): an order to compact, a stop, or a proactive trigger. */
export function kcompactd_work_requested(kd: Kcompactd): boolean {
  const pgdat = kd.pgdat;
  return pgdat.kcompactd_max_order > 0 || kd.should_stop || pgdat.proactive_compact_trigger;
}

/**
 * kcompactd_node_suitable(): some populated zone up to the requested index
 * where compaction for kcompactd_max_order could run and is needed.
 */
export function kcompactd_node_suitable(mm: MmState, pgdat: PgData): boolean {
  const highest_zoneidx = pgdat.kcompactd_highest_zoneidx;
  for (const zone of pgdat.node_zones) {
    if (zone.zone_idx > highest_zoneidx) break;
    if (!zone.populated_zone()) continue;
    if (suit(mm, zone, pgdat.kcompactd_max_order, highest_zoneidx) === COMPACT_CONTINUE)
      return true;
  }
  return false;
}

/** compaction_suit_allocation_order() with kcompactd's allocation flags. */
function suit(mm: MmState, zone: Zone, order: number, highest_zoneidx: number): number {
  const cc = compact_control(mm, zone, {
    order,
    highest_zoneidx,
    alloc_flags: ALLOC_WMARK_MIN,
    gfp_mask: GFP_KERNEL,
  });
  const r = compaction_suit_allocation_order(mm.m, cc);
  compact_control_release(mm, cc);
  return r;
}

/**
 * wakeup_kcompactd(): remember the highest order and the lowest zone index
 * asked for, and wake kcompactd if it sleeps and compaction would help.
 * Order 0 is never a reason to compact.
 */
export function wakeup_kcompactd(
  mm: MmState,
  pgdat: PgData,
  order: number,
  highest_zoneidx: number,
): void {
  if (!order) return;
  if (pgdat.kcompactd_max_order < order) pgdat.kcompactd_max_order = order;
  if (pgdat.kcompactd_highest_zoneidx > highest_zoneidx)
    pgdat.kcompactd_highest_zoneidx = highest_zoneidx;
  if (!pgdat.kcompactd_sleeping) return;
  if (!kcompactd_node_suitable(mm, pgdat)) return;
  pgdat.kcompactd_woken = true;
}

/**
 * kcompactd_do_work(): one wake-up's work: compact each populated zone up to
 * the requested index for kcompactd_max_order (MIGRATE_SYNC_LIGHT, skip
 * hints honoured), skipping deferred zones and zones where compaction
 * cannot or need not help; a run that walked its zone without success
 * drains the pcp lists and defers the zone. Counts compact_daemon_wake and
 * the daemon's scan counters.
 */
export function* kcompactd_do_work(rt: Runtime, mm: MmState, kd: Kcompactd): Step {
  const m = mm.m;
  const pgdat = kd.pgdat;
  const order = pgdat.kcompactd_max_order;
  const highest_zoneidx = pgdat.kcompactd_highest_zoneidx;
  m.vm_events[KCOMPACTD_WAKE]++;
  for (const zone of pgdat.node_zones) {
    if (zone.zone_idx > highest_zoneidx) break;
    if (!zone.populated_zone()) continue;
    if (compaction_deferred(zone, order)) continue;
    if (suit(mm, zone, order, zone.zone_idx) !== COMPACT_CONTINUE) continue;
    if (kd.should_stop) return;
    const cc = compact_control(mm, zone, {
      order,
      search_order: order,
      highest_zoneidx,
      mode: MIGRATE_SYNC_LIGHT,
      gfp_mask: GFP_KERNEL,
      alloc_flags: ALLOC_WMARK_MIN,
    });
    const status = yield* compact_zone(rt, mm, cc, null);
    if (status === COMPACT_SUCCESS) {
      compaction_defer_reset(zone, order, false);
    } else if (status === COMPACT_PARTIAL_SKIPPED || status === COMPACT_COMPLETE) {
      // Free pages left on pcp lists could merge into the block wanted.
      drain_all_pages(m, zone);
      defer_compaction(zone, order);
    }
    m.vm_events[KCOMPACTD_MIGRATE_SCANNED] += cc.total_migrate_scanned;
    m.vm_events[KCOMPACTD_FREE_SCANNED] += cc.total_free_scanned;
    compact_control_release(mm, cc);
  }
  // Done until woken again, unless a higher order or a lower zone index
  // was asked for meanwhile.
  if (pgdat.kcompactd_max_order <= order) pgdat.kcompactd_max_order = 0;
  if (pgdat.kcompactd_highest_zoneidx >= highest_zoneidx)
    pgdat.kcompactd_highest_zoneidx = pgdat_nr_zones(pgdat) - 1;
}

/**
 * should_proactive_compact_node(): proactiveness is on (kswapd, not
 * modelled, never runs) and the node's score is above the high mark.
 */
export function should_proactive_compact_node(m: Machine, pgdat: PgData): boolean {
  if (!m.sysctl.compaction_proactiveness) return false;
  return fragmentation_score_node(m, pgdat) > fragmentation_score_wmark(m, false);
}

/**
 * compact_node(): compact every populated zone of the node from edge to
 * edge, skip hints ignored (order -1). Proactive runs (kcompactd) use
 * MIGRATE_SYNC_LIGHT, stop each zone at the low fragmentation score, and
 * count the daemon's scan counters; otherwise MIGRATE_SYNC to the end.
 * Unlike compact_nodes() (compact_memory) nothing is drained.
 */
export function* compact_node(rt: Runtime, mm: MmState, pgdat: PgData, proactive: boolean): Step {
  const m = mm.m;
  for (const zone of pgdat.node_zones) {
    if (!zone.populated_zone()) continue;
    const cc = compact_control(mm, zone, {
      order: -1,
      mode: proactive ? MIGRATE_SYNC_LIGHT : MIGRATE_SYNC,
      ignore_skip_hint: true,
      whole_zone: true,
      gfp_mask: GFP_KERNEL,
      proactive_compaction: proactive,
    });
    yield* compact_zone(rt, mm, cc, null);
    if (proactive) {
      m.vm_events[KCOMPACTD_MIGRATE_SCANNED] += cc.total_migrate_scanned;
      m.vm_events[KCOMPACTD_FREE_SCANNED] += cc.total_free_scanned;
    }
    compact_control_release(mm, cc);
  }
}

/**
 * wait_event_freezable_timeout(kcompactd_wait, kcompactd_work_requested(),
 * timeout): sleep until woken, stopped or timed out; returns whether work
 * is requested when the sleep ends. The condition is checked first, as the
 * kernel's wait_event does.
 */
function* kcompactd_wait(rt: Runtime, kd: Kcompactd, timeout_ns: number): StepOf<boolean> {
  const pgdat = kd.pgdat;
  if (kcompactd_work_requested(kd)) return true;
  const start = kd.clock ? kd.clock() : 0;
  kd.sleep_deadline_ns = kd.clock ? start + timeout_ns : Number.POSITIVE_INFINITY;
  pgdat.kcompactd_sleeping = true;
  pgdat.kcompactd_woken = false;
  const woken = () => pgdat.kcompactd_woken || kd.should_stop;
  for (let steps = 0; ; steps++) {
    assert(steps < kd.sleep_steps_max, "kcompactd_wait: sleep bounded by sleep_steps_max");
    if (woken()) {
      kd.wakeups++;
      break;
    }
    const elapsed = kd.clock ? kd.clock() - start : 0;
    if (kd.clock && elapsed >= timeout_ns) {
      kd.timeouts++;
      break;
    }
    // Sleep until woken or until the rest of the timeout has passed on the
    // runtime's clock; a timeout that fires early by kd.clock's reckoning
    // (a checker may fire it at any point) is a spurious wakeup: look again.
    const left = kd.clock ? timeout_ns - elapsed : Number.POSITIVE_INFINITY;
    if (left === Number.POSITIVE_INFINITY)
      yield* rt.wait_event(pgdat.node_id, "kcompactd_wait", woken);
    else yield* rt.wait_event_timeout(pgdat.node_id, "kcompactd_wait", woken, left);
  }
  pgdat.kcompactd_sleeping = false;
  pgdat.kcompactd_woken = false;
  return kcompactd_work_requested(kd);
}

/**
 * kcompactd(): the per-node compaction thread. Sleeps for
 * HPAGE_FRAG_CHECK_INTERVAL_MSEC (forever when proactiveness is 0); woken
 * with work it runs kcompactd_do_work(); on a timeout or a proactive
 * trigger it compacts the node proactively if the score is above the high
 * mark, and if that did not lower the score it waits 64 times longer
 * before looking again. Ends when kcompactd_stop() is called.
 */
export function* kcompactd(rt: Runtime, mm: MmState, kd: Kcompactd): Step {
  const m = mm.m;
  const pgdat = kd.pgdat;
  const default_timeout = HPAGE_FRAG_CHECK_INTERVAL_MSEC * NSEC_PER_MSEC;
  let timeout = default_timeout;
  pgdat.kcompactd_max_order = 0;
  pgdat.kcompactd_highest_zoneidx = pgdat_nr_zones(pgdat) - 1;
  while (!kd.should_stop) {
    if (!m.sysctl.compaction_proactiveness) timeout = Number.POSITIVE_INFINITY;
    const work = yield* kcompactd_wait(rt, kd, timeout);
    if (kd.should_stop) break;
    if (work && !pgdat.proactive_compact_trigger) {
      yield* kcompactd_do_work(rt, mm, kd);
      timeout = default_timeout;
      continue;
    }
    timeout = default_timeout;
    if (should_proactive_compact_node(m, pgdat)) {
      const prev_score = fragmentation_score_node(m, pgdat);
      yield* compact_node(rt, mm, pgdat, true);
      if (fragmentation_score_node(m, pgdat) >= prev_score)
        timeout = default_timeout * 2 ** COMPACT_MAX_DEFER_SHIFT;
    }
    pgdat.proactive_compact_trigger = false;
  }
}

/**
 * For runners: does the kcompactd thread have anything to do if stepped
 * now? False only while it sleeps, unwoken, before its deadline; a
 * simulator can leave it off the CPU meanwhile instead of stepping its
 * polling loop.
 */
export function kcompactd_should_run(kd: Kcompactd): boolean {
  const pgdat = kd.pgdat;
  if (!pgdat.kcompactd_sleeping || pgdat.kcompactd_woken || kd.should_stop) return true;
  return kd.clock !== null && kd.clock() >= kd.sleep_deadline_ns;
}

/** kthread_stop() for kcompactd: it leaves at its next look at the flag. */
export function kcompactd_stop(kd: Kcompactd): void {
  kd.should_stop = true;
  kd.pgdat.kcompactd_woken = true;
}

/**
 * compaction_proactiveness_sysctl_handler(), write side: set the sysctl
 * (0..100) and, when it is non-zero, trigger a proactive look on every
 * node that has none pending and wake its kcompactd.
 */
export function compaction_proactiveness_write(m: Machine, value: number): void {
  if (!(Number.isInteger(value) && value >= 0 && value <= 100))
    throw new RangeError(`compaction_proactiveness: ${value} is not an integer in 0..100`);
  m.sysctl.compaction_proactiveness = value;
  if (!value) return;
  for (const pgdat of m.pgdat) {
    if (pgdat.proactive_compact_trigger) continue;
    pgdat.proactive_compact_trigger = true;
    pgdat.kcompactd_woken = true;
  }
}

/**
 * The wakeup_kswapd seam without a kswapd model: what wakeup_kswapd() and
 * kswapd's way to sleep end in for a high-order request, wakeup_kcompactd()
 * when the node is balanced at order 0 (see the file header).
 */
export function kswapd_wakeup_kcompactd(
  mm: MmState,
  zone: Zone,
  order: number,
  highest_zoneidx: number,
): void {
  if (!order) return;
  const m = mm.m;
  const pgdat = m.pgdat[zone.node_id];
  let balanced = false;
  for (const z of pgdat.node_zones) {
    if (z.zone_idx > highest_zoneidx) break;
    if (!z.populated_zone()) continue;
    if (zone_watermark_ok(m, z, 0, z.high_wmark_pages(), highest_zoneidx, 0)) {
      balanced = true;
      break;
    }
  }
  if (balanced) wakeup_kcompactd(mm, pgdat, order, highest_zoneidx);
}

/**
 * Attach kcompactd's wake-ups to the allocator: m.hooks.wakeup_kswapd, if
 * no kswapd model has claimed it. Returns whether the hook was attached.
 */
export function install_kcompactd_wakeup(mm: MmState): boolean {
  const m = mm.m;
  if (m.hooks.wakeup_kswapd) return false;
  m.hooks.wakeup_kswapd = (_m, zone, order, highest_zoneidx) =>
    kswapd_wakeup_kcompactd(mm, zone, order, highest_zoneidx);
  return true;
}
