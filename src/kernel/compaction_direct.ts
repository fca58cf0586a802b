/**
 * kernel/compaction_direct.ts: direct compaction, the allocator's side of
 * mm/compaction.c and mm/page_alloc.c (v6.16): __alloc_pages_direct_compact()
 * (page_alloc.c), try_to_compact_pages() and compact_zone_order()
 * (compaction.c), with compaction capture and deferral, and the bridge that
 * plugs them into the slow path's seam: install_direct_compaction().
 *
 * The bridge. The slow path (page_alloc/alloc.ts) is plain code: an
 * allocation runs to completion as one step. compact_zone() is a generator
 * that announces steps. install_direct_compaction() sets
 * m.hooks.direct_compact to a function that runs the compaction generator to
 * completion on the calling thread through an InlineRuntime: lock
 * operations go to the real runtime when the allocation runs inside a
 * thread (so lock ownership and lockdep see them) and are taken directly
 * otherwise; lockless reads and cond_resched() are no-ops. The run is
 * bracketed by rt.inline_enter()/inline_exit(), so a runtime in coalesce
 * mode does not take the delegated lock operations as steps of the thread
 * (no count, no clock), as one without it does not. Simplification:
 * direct compaction never yields to another CPU in the simulator; it is one
 * long step of the allocating thread, as the allocation itself is.
 *
 * Locks: a lock another thread holds cannot be waited for inside one step.
 * When the node's lruvec->lru_lock is held elsewhere at entry the zone's run
 * ends at once as COMPACT_CONTENDED (what async compaction does when its
 * trylock fails); any other lock found held by another thread during the
 * run (a page lock a movable_ops putback must sleep on, a driver's list
 * lock) raises a KernelBug naming it. Migration never sleeps on a page lock
 * here: the run sets PF_MEMALLOC (mm.pf_memalloc), as
 * memalloc_noreclaim_save() does.
 *
 * Sleeping. In the kernel direct compaction may sleep: the allocating task
 * is in process context, and a migration callback may block (the
 * virtio-balloon driver's migratepage waits for the host to acknowledge the
 * new page and the old one). Here it cannot: a wait needs other threads
 * (the host's device thread) to run, and the run is one step. So the
 * InlineRuntime reports can_sleep = false (Runtime.can_sleep, the model's
 * might_sleep() context), and a path that would sleep backs off before it
 * changes anything. The migration scanner does not isolate a movable_ops
 * page whose driver sleeps to migrate it (movable_ops.ts, nosleep_refuses;
 * the device says so in BalloonDevInfo.migratepage_sleeps): an isolation
 * failure, so async direct compaction gives up that order-aligned chunk,
 * and a block scanned to its end without isolating gets its skip bit.
 * Refusing later, in migratepage, would leave the block unmarked (movable_ops
 * pages do not claim blocks) and fast_find_migrateblock() would offer it
 * forever. As a backstop virtballoon_migratepage() answers -EAGAIN (the
 * errno of its failed balloon_lock trylock) to a caller that cannot sleep.
 * Both are counted (BalloonDevInfo.nosleep_refused,
 * VirtioBalloon.migrate_nosleep) and shown on the scenario trace.
 * Simplification: a THP fault under thp_defrag=always never migrates a
 * balloon page; compact_memory and kcompactd, which are threads, still do.
 * The other movable_ops drivers (cmm, zsmalloc, the toy driver) do not
 * sleep in their callbacks (spinlocks and a synchronous hcall), as in the
 * kernel, and migrate as usual. The migration core's own sleeps are a page
 * lock (never for PF_MEMALLOC, nor in a context that cannot sleep) and the
 * writeback wait of MIGRATE_SYNC, a mode direct compaction never uses
 * (asserted; the kernel would say "sleeping function
 * called from invalid context"). A wait that would remain (a bug) still
 * raises a KernelBug from wait_event() below. Not chosen: running direct
 * compaction as real steps of the allocating thread (the kernel's
 * behaviour) needs the slow path (page_alloc/alloc.ts, plain code called
 * from every allocation site) to become a generator; answering the wait by
 * running the host's side inline would run another thread's code, at a
 * time it did not choose, on this one.
 *
 * Capture: while compact_zone_order() runs, mm.capture_control points at its
 * capture_control; the free-area hook installed here lets __free_one_page()
 * hand a block of the wanted order to it (compaction_capture()). Because the
 * run never yields, every free in that window is the compacting task's own,
 * which is the kernel's rule (task_capc()).
 * Invariants: a captured block leaves the free lists' accounting at once and
 * is held as an allocated block of its order (refcount 1) until
 * __alloc_pages_direct_compact() hands it to the caller, so whole-state
 * checks in between find every page accounted for (the kernel keeps it
 * frozen at refcount 0 instead). mm.pf_memalloc and mm.capture_control are
 * restored when a run ends, also when it throws.
 */

import {
  done_step,
  IRQ_FLAGS_DISABLED,
  IRQ_FLAGS_ENABLED,
  type IrqFlags,
  type Lock,
  NO_STEP,
  type Runtime,
  type Step,
  type StepOf,
} from "../runtime/runtime.ts";
import { assert, KernelBug } from "./bug.ts";
import {
  type CaptureControl,
  COMPACT_COMPLETE,
  COMPACT_CONTENDED,
  COMPACT_DEFERRED,
  COMPACT_PARTIAL_SKIPPED,
  COMPACT_SKIPPED,
  COMPACT_SUCCESS,
  compact_control,
  compact_control_release,
  compact_zone,
  compaction_capture,
  compaction_defer_reset,
  compaction_deferred,
  defer_compaction,
} from "./compaction.ts";
import { __GFP_IO, type Gfp } from "./gfp.ts";
import type { DirectCompactResult, Machine } from "./machine.ts";
import { MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT } from "./migrate.ts";
import type { MmState } from "./mm/state.ts";
import type { Zone } from "./mmzone.ts";
import { PAGE_ORDER_MASK, type Pfn } from "./page.ts";
import {
  COMPACT_PRIO_ASYNC,
  COMPACT_PRIO_SYNC_FULL,
  get_page_from_freelist,
  prep_new_page,
} from "./page_alloc/alloc.ts";
import { COMPACTFAIL, COMPACTSTALL, COMPACTSUCCESS } from "./vmstat_items.ts";

/** MIN_COMPACT_PRIORITY: the hardest priority (whole zone, skip hints ignored). */
export const MIN_COMPACT_PRIORITY = COMPACT_PRIO_SYNC_FULL;

/** Lock owner id of an inline run that started outside any runtime thread. */
const INLINE_TASK = -2;

/**
 * A Runtime that runs a kernel path inline inside the current step: see the
 * file header. Never yields on its own; delegated lock operations of the
 * outer runtime yield, and run_inline() resumes them at once.
 */
export class InlineRuntime implements Runtime {
  readonly outer: Runtime;
  /** Nothing run inline may sleep: see "Sleeping" in the file header. */
  readonly can_sleep = false;
  /** Interrupts disabled by an irqsave lock taken with no outer thread (INLINE_TASK). */
  private irqs_off = false;
  constructor(outer: Runtime) {
    this.outer = outer;
  }

  irqs_disabled(): boolean {
    return this.outer.current >= 0 ? this.outer.irqs_disabled() : this.irqs_off;
  }

  /**
   * might_sleep(): an inline run cannot sleep at all (can_sleep), but one
   * with interrupts disabled calling something that may sleep is the
   * kernel's "sleeping function called from invalid context" whatever the
   * locks' state, as in the runtime (runtime.ts spin_lock_irqsave).
   */
  private might_sleep(what: string): void {
    if (this.irqs_disabled()) {
      throw new KernelBug(
        `BUG: sleeping function called from invalid context: direct compaction calls ${what} with interrupts disabled`,
      );
    }
  }

  get current(): number {
    const c = this.outer.current;
    return c >= 0 ? c : INLINE_TASK;
  }

  /** A lock held by another thread cannot be waited for inside one step. */
  private cannot_wait(lock: Lock): never {
    throw new KernelBug(
      `direct compaction needs ${lock.lock_class}, held by thread ${lock.owner}; it runs inline ` +
        "without yielding to other CPUs (compaction_direct.ts), so it cannot wait",
    );
  }

  *spin_lock(lock: Lock): Step {
    if (lock.owner !== -1) this.cannot_wait(lock);
    if (this.outer.current >= 0) yield* this.outer.spin_lock(lock);
    else lock.owner = INLINE_TASK;
  }

  *spin_unlock(lock: Lock): Step {
    if (this.outer.current >= 0) yield* this.outer.spin_unlock(lock);
    else {
      assert(lock.owner === INLINE_TASK, `inline unlock of ${lock.lock_class} it does not hold`);
      lock.owner = -1;
    }
  }

  *spin_trylock(lock: Lock): StepOf<boolean> {
    if (lock.owner !== -1) return false;
    if (this.outer.current >= 0) return yield* this.outer.spin_trylock(lock);
    lock.owner = INLINE_TASK;
    return true;
  }

  *spin_lock_irqsave(lock: Lock): StepOf<IrqFlags> {
    if (lock.owner !== -1) this.cannot_wait(lock);
    if (this.outer.current >= 0) return yield* this.outer.spin_lock_irqsave(lock);
    const flags = this.irqs_off ? IRQ_FLAGS_DISABLED : IRQ_FLAGS_ENABLED;
    lock.owner = INLINE_TASK;
    this.irqs_off = true;
    return flags;
  }

  *spin_unlock_irqrestore(lock: Lock, flags: IrqFlags): Step {
    if (this.outer.current >= 0) {
      yield* this.outer.spin_unlock_irqrestore(lock, flags);
      return;
    }
    assert(lock.owner === INLINE_TASK, `inline unlock of ${lock.lock_class} it does not hold`);
    assert(this.irqs_off, "inline spin_unlock_irqrestore with interrupts enabled");
    lock.owner = -1;
    this.irqs_off = flags !== IRQ_FLAGS_ENABLED;
  }

  mutex_lock(lock: Lock): Step {
    this.might_sleep(`mutex_lock(${lock.lock_class})`);
    return this.spin_lock(lock);
  }

  mutex_unlock(lock: Lock): Step {
    return this.spin_unlock(lock);
  }

  mutex_trylock(lock: Lock): StepOf<boolean> {
    return this.spin_trylock(lock);
  }

  lockdep_assert_held(lock: Lock): void {
    if (lock.owner !== this.current) {
      throw new KernelBug(`lockdep_assert_held: ${lock.lock_class} is not held by the inline run`);
    }
  }

  access(_op: number, _obj: number, _field: string): Step {
    return NO_STEP;
  }

  cond_resched(): Step {
    this.might_sleep("cond_resched");
    return NO_STEP;
  }

  /** An inline run cannot sleep: a condition that does not hold already is a bug. */
  wait_event(_obj: number, field: string, cond: () => boolean): Step {
    this.might_sleep(`wait_event(${field})`);
    if (!cond()) {
      throw new KernelBug(`direct compaction would wait for ${field}; it runs inline and cannot`);
    }
    return NO_STEP;
  }

  /** An inline run cannot sleep: the wait times out at once. */
  wait_event_timeout(
    _obj: number,
    _field: string,
    cond: () => boolean,
    _timeout_ns: number,
  ): StepOf<boolean> {
    this.might_sleep(`wait_event_timeout(${_obj < 0 ? "" : _obj})`);
    return done_step(cond());
  }

  /** Simulated time stands still inside one step. */
  schedule_timeout(_ns: number): Step {
    this.might_sleep("schedule_timeout");
    return NO_STEP;
  }

  now(): number {
    return this.outer.now();
  }

  choose(n: number): number {
    return this.outer.choose(n);
  }
}

/** Drive a generator to completion inside the current step; `what` names the loop. */
export function run_inline<T>(gen: StepOf<T>, steps_max: number, what: string): T {
  for (let steps = 0; ; steps++) {
    const r = gen.next();
    if (r.done) return r.value;
    assert(steps < steps_max, `${what}: inline run bounded by ${steps_max} steps`);
  }
}

/** The page captured for a direct compaction (struct page **capture), -1 for none. */
export interface CaptureResult {
  page: Pfn;
}

/**
 * compact_zone_order(): one zone's run for an allocation: ASYNC at
 * COMPACT_PRIO_ASYNC, SYNC_LIGHT otherwise (direct compaction never uses
 * MIGRATE_SYNC); the hardest priority also walks the whole zone ignoring
 * skip hints and pageblock suitability. The run publishes its
 * capture_control, and a captured block makes it COMPACT_SUCCESS. Run it
 * inline (as __alloc_pages_direct_compact() does): mm.capture_control is
 * per machine, and so the current task's only while nothing else runs.
 */
export function* compact_zone_order(
  rt: Runtime,
  mm: MmState,
  zone: Zone,
  order: number,
  gfp_mask: Gfp,
  prio: number,
  alloc_flags: number,
  highest_zoneidx: number,
  capture: CaptureResult,
): StepOf<number> {
  const full = prio === MIN_COMPACT_PRIORITY;
  // The lruvec lock held by another CPU: the run would have to wait for it
  // at its first isolation; it backs off as async compaction's failed
  // trylock does (see the file header).
  const lru_lock = mm.lruvecs[zone.node_id].lru_lock;
  if (lru_lock.owner !== -1 && lru_lock.owner !== rt.current) return COMPACT_CONTENDED;
  const cc = compact_control(mm, zone, {
    order,
    search_order: order,
    gfp_mask,
    mode: prio === COMPACT_PRIO_ASYNC ? MIGRATE_ASYNC : MIGRATE_SYNC_LIGHT,
    alloc_flags,
    highest_zoneidx,
    direct_compaction: true,
    whole_zone: full,
    ignore_skip_hint: full,
    ignore_block_suitable: full,
  });
  const capc: CaptureControl = { cc, page: -1 };
  const saved = mm.capture_control;
  mm.capture_control = capc;
  let ret: number;
  try {
    ret = yield* compact_zone(rt, mm, cc, capc);
  } finally {
    mm.capture_control = saved;
  }
  compact_control_release(mm, cc);
  capture.page = capc.page;
  if (capc.page >= 0) ret = COMPACT_SUCCESS;
  return ret;
}

/**
 * try_to_compact_pages(): compact the zones of the allocation's zonelist in
 * turn until one succeeds. Zones whose compaction is deferred are skipped
 * (except at the hardest priority); a sync run that walked its zone without
 * success defers it. Returns the best compact_result seen; COMPACT_SKIPPED
 * when the request may not do I/O (gfp_compaction_allowed()). need_resched()
 * is never true in pagesim, so an async pass visits every zone.
 */
export function* try_to_compact_pages(
  rt: Runtime,
  mm: MmState,
  gfp_mask: Gfp,
  order: number,
  alloc_flags: number,
  highest_zoneidx: number,
  prio: number,
  capture: CaptureResult,
): StepOf<number> {
  const m = mm.m;
  if (!(gfp_mask & __GFP_IO)) return COMPACT_SKIPPED;
  let rc = COMPACT_SKIPPED;
  for (const zone of m.zonelists[highest_zoneidx]) {
    if (prio > MIN_COMPACT_PRIORITY && compaction_deferred(zone, order)) {
      rc = Math.max(rc, COMPACT_DEFERRED);
      continue;
    }
    const status = yield* compact_zone_order(
      rt,
      mm,
      zone,
      order,
      gfp_mask,
      prio,
      alloc_flags,
      highest_zoneidx,
      capture,
    );
    rc = Math.max(rc, status);
    if (status === COMPACT_SUCCESS) {
      // Compaction made a block, but the allocation has not taken it yet:
      // only the failing order moves, the deferral stays.
      compaction_defer_reset(zone, order, false);
      break;
    }
    if (
      prio !== COMPACT_PRIO_ASYNC &&
      (status === COMPACT_COMPLETE || status === COMPACT_PARTIAL_SKIPPED)
    )
      defer_compaction(zone, order);
  }
  return rc;
}

/**
 * __alloc_pages_direct_compact(): compact (inline, under PF_MEMALLOC) and
 * then take the captured block, or try the free lists again. Counts
 * compact_stall for every attempt that was not skipped, then compact_success
 * or compact_fail; success clears the zone's deferral and its
 * compact_blockskip_flush.
 */
export function __alloc_pages_direct_compact(
  rt: Runtime,
  mm: MmState,
  cpu: number,
  gfp: Gfp,
  order: number,
  alloc_flags: number,
  highest_zoneidx: number,
  migratetype: number,
  prio: number,
): DirectCompactResult {
  const m = mm.m;
  if (!order) return { pfn: -1, result: COMPACT_SKIPPED };
  const capture: CaptureResult = { page: -1 };
  const inline_rt = new InlineRuntime(rt);
  const saved = mm.pf_memalloc;
  mm.pf_memalloc = true;
  let result: number;
  rt.inline_enter?.();
  try {
    result = run_inline(
      try_to_compact_pages(inline_rt, mm, gfp, order, alloc_flags, highest_zoneidx, prio, capture),
      64 * m.mem.nr_pages + 1_000_000,
      "__alloc_pages_direct_compact",
    );
  } finally {
    rt.inline_exit?.();
    mm.pf_memalloc = saved;
  }
  if (result === COMPACT_SKIPPED) return { pfn: -1, result };
  m.vm_events[COMPACTSTALL]++;
  let pfn = capture.page;
  if (pfn >= 0) {
    // The block was held as allocated since its capture: give it to the
    // caller the way the allocator prepares a new block.
    m.mem._refcount[pfn] = 0;
    m.mem.flags[pfn] &= ~PAGE_ORDER_MASK;
    prep_new_page(m, pfn, order, gfp);
  } else {
    pfn = get_page_from_freelist(m, cpu, gfp, order, alloc_flags, highest_zoneidx, migratetype);
  }
  if (pfn >= 0) {
    const zone = m.page_zone(pfn)!;
    zone.compact_blockskip_flush = false;
    compaction_defer_reset(zone, order, true);
    m.vm_events[COMPACTSUCCESS]++;
    return { pfn, result };
  }
  m.vm_events[COMPACTFAIL]++;
  return { pfn: -1, result };
}

/**
 * The free-area capture hook: task_capc() (a direct compaction of this zone
 * is running and has not captured yet) and compaction_capture(). A captured
 * block is held as an allocated block of its order (see the file header).
 */
function capture_hook(mm: MmState): (zone: Zone, pfn: Pfn, order: number, mt: number) => boolean {
  const m = mm.m;
  return (zone, pfn, order, migratetype) => {
    const capc = mm.capture_control;
    if (capc === null || capc.cc.zone !== zone) return false;
    if (!compaction_capture(capc, pfn, order, migratetype, m.mem.pageblock_order)) return false;
    prep_new_page(m, pfn, order, 0);
    return true;
  };
}

/**
 * Attach direct compaction to machine mm.m: the slow path's
 * m.hooks.direct_compact runs __alloc_pages_direct_compact() inline on the
 * allocating thread of `rt`, and __free_one_page() may capture for it.
 */
export function install_direct_compaction(mm: MmState, rt: Runtime): void {
  const m: Machine = mm.m;
  m.hooks.direct_compact = (_m, cpu, gfp, order, alloc_flags, highest_zoneidx, migratetype, prio) =>
    __alloc_pages_direct_compact(
      rt,
      mm,
      cpu,
      gfp,
      order,
      alloc_flags,
      highest_zoneidx,
      migratetype,
      prio,
    );
  m.free_area_hooks.compaction_capture = capture_hook(mm);
}
