/**
 * kernel/page_reporting.ts: models mm/page_reporting.c (free page
 * reporting, v5.7 on): free blocks of at least page_reporting_order are
 * taken off the free lists in batches, handed to a reporting device (the
 * virtio balloon with VIRTIO_BALLOON_F_REPORTING), which tells the host it
 * may discard them, and put back marked "reported" so they are not
 * reported again. The guest may allocate them at any time afterwards; the
 * host backs them again on first touch.
 *
 * Trigger: the buddy core calls page_reporting_notify_free() (through
 * m.free_area_hooks) when a block of at least the reporting order is
 * freed; that requests a pass, which the worker (page_reporting_worker, a
 * thread) starts PAGE_REPORTING_DELAY_NS later. Registration requests a
 * first pass, so memory free since boot is reported too.
 *
 * Locks: zone->lock around every free-list walk, isolation and putback
 * (the allocator's work is atomic in pagesim, so those are plain code
 * between steps); the lock is dropped while the device reports, which is
 * where the worker waits for the host. One reporting device per machine
 * (-EBUSY for a second), as in the kernel.
 * Invariant: a block being reported is off the free lists (isolated, not
 * PageBuddy, refcount 0) until it is put back; no allocation can reach it.
 *
 * Simplification: the kernel keeps PG_reported in the free block's flags
 * and clears it when the block leaves the free list; pagesim keeps the
 * reported order of a block head in its own array (`reported`) and trusts
 * it only while the head is still a free block of that order, so a block
 * allocated and freed again with the same order between two passes is not
 * reported again until it merges or splits.
 */

import type { Runtime, StepOf } from "../runtime/runtime.ts";
import { assert } from "./bug.ts";
import { __isolate_free_page } from "./compaction.ts";
import { EBUSY } from "./errno.ts";
import type { Machine } from "./machine.ts";
import { MAX_PAGE_ORDER, MIGRATE_ISOLATE, MIGRATE_TYPES, type Zone } from "./mmzone.ts";
import { PageBuddy, type Pfn } from "./page.ts";
import { FPI_SKIP_REPORT_NOTIFY, free_one_page } from "./page_alloc/free_area.ts";
import { ALLOC_CMA, zone_watermark_ok } from "./page_alloc/watermark.ts";

export const PAGE_REPORTING_CAPACITY = 32;
export const PAGE_REPORTING_DELAY_NS = 2_000_000_000;
export const PAGE_REPORTING_IDLE = 0;
export const PAGE_REPORTING_REQUESTED = 1;
export const PAGE_REPORTING_ACTIVE = 2;

/** The device's report callback: the batch is pfns[0..n) with their orders. */
export type PageReport = (
  rt: Runtime,
  pfns: Int32Array,
  orders: Uint8Array,
  n: number,
) => StepOf<number>;

/** struct page_reporting_dev_info, with the worker's state. */
export class PageReportingDevInfo {
  readonly report: PageReport;
  /** page_reporting_order: smallest order reported. */
  readonly order: number;
  state = PAGE_REPORTING_IDLE;
  /** Block head -> reported order + 1 (see the header). */
  readonly reported: Uint8Array;
  readonly batch_pfn = new Int32Array(PAGE_REPORTING_CAPACITY);
  readonly batch_order = new Uint8Array(PAGE_REPORTING_CAPACITY);
  nr_batch = 0;
  /** Ends the worker once idle. */
  stop = false;
  passes = 0;
  reported_blocks = 0;
  reported_pages = 0;
  constructor(m: Machine, report: PageReport, order: number) {
    this.report = report;
    this.order = order;
    this.reported = new Uint8Array(m.mem.nr_pages);
  }
}

/** page_reporting_register(): attach the device; -EBUSY if one is attached. */
export function page_reporting_register(m: Machine, prdev: PageReportingDevInfo): number {
  if (m.free_area_hooks.page_reporting_notify_free) return -EBUSY;
  m.free_area_hooks.page_reporting_notify_free = (_zone, order) =>
    page_reporting_notify_free(prdev, order);
  __page_reporting_request(prdev);
  return 0;
}

/** page_reporting_unregister(): detach; the worker ends once idle. */
export function page_reporting_unregister(m: Machine, prdev: PageReportingDevInfo): void {
  m.free_area_hooks.page_reporting_notify_free = null;
  prdev.stop = true;
}

/** __page_reporting_request(): ask for a pass (the worker starts it after the delay). */
export function __page_reporting_request(prdev: PageReportingDevInfo): void {
  prdev.state = PAGE_REPORTING_REQUESTED;
}

/** page_reporting_notify_free(): a block of `order` was freed. */
export function page_reporting_notify_free(prdev: PageReportingDevInfo, order: number): void {
  if (order < prdev.order) return;
  __page_reporting_request(prdev);
}

/** Whether the free block at `pfn` of `order` was reported and has not changed since. */
export function page_reported(m: Machine, prdev: PageReportingDevInfo, pfn: Pfn, order: number) {
  return (
    prdev.reported[pfn] === order + 1 && PageBuddy(m.mem, pfn) && m.mem.page_private[pfn] === order
  );
}

/** page_reporting_drain(): put the batch back on the free lists, marked reported. */
function page_reporting_drain(m: Machine, prdev: PageReportingDevInfo, zone: Zone): void {
  const mem = m.mem;
  for (let i = 0; i < prdev.nr_batch; i++) {
    const p = prdev.batch_pfn[i];
    const order = prdev.batch_order[i];
    // __putback_isolated_page(): back without a new notification.
    free_one_page(mem, zone, p, order, FPI_SKIP_REPORT_NOTIFY, m.free_area_hooks);
    // It may have merged with its buddy: then the bigger block is unreported.
    if (PageBuddy(mem, p) && mem.page_private[p] === order) prdev.reported[p] = order + 1;
  }
  prdev.nr_batch = 0;
}

/** Report the gathered batch (zone->lock dropped meanwhile) and put it back. */
function* page_reporting_flush(
  rt: Runtime,
  m: Machine,
  prdev: PageReportingDevInfo,
  zone: Zone,
): StepOf<void> {
  if (prdev.nr_batch === 0) return;
  yield* prdev.report(rt, prdev.batch_pfn, prdev.batch_order, prdev.nr_batch);
  for (let i = 0; i < prdev.nr_batch; i++) prdev.reported_pages += 1 << prdev.batch_order[i];
  prdev.reported_blocks += prdev.nr_batch;
  page_reporting_drain(m, prdev, zone);
}

/**
 * page_reporting_cycle(): take unreported blocks off one free list into the
 * batch; report whenever it is full. Stops when the zone would fall below
 * its watermark (__isolate_free_page refuses) or the list has no
 * unreported block left.
 */
function* page_reporting_cycle(
  rt: Runtime,
  m: Machine,
  prdev: PageReportingDevInfo,
  zone: Zone,
  order: number,
  mt: number,
): StepOf<void> {
  const mem = m.mem;
  const list = zone.free_list(order, mt);
  let walked = 0;
  for (let p = mem.lru_next[list]; p !== list; ) {
    assert(++walked <= 2 * mem.nr_pages, "page_reporting_cycle: list walk bounded");
    const next = mem.lru_next[p];
    if (page_reported(m, prdev, p, order)) {
      p = next;
      continue;
    }
    if (__isolate_free_page(m, zone, p, order) === 0) return;
    prdev.batch_pfn[prdev.nr_batch] = p;
    prdev.batch_order[prdev.nr_batch] = order;
    prdev.nr_batch++;
    if (prdev.nr_batch < PAGE_REPORTING_CAPACITY) {
      p = next;
      continue;
    }
    yield* page_reporting_flush(rt, m, prdev, zone);
    // The list changed while the lock was dropped: start again.
    p = mem.lru_next[list];
  }
}

/** page_reporting_process_zone(): every order and migratetype of one zone. */
function* page_reporting_process_zone(
  rt: Runtime,
  m: Machine,
  prdev: PageReportingDevInfo,
  zone: Zone,
): StepOf<void> {
  const watermark = zone.low_wmark_pages() + (PAGE_REPORTING_CAPACITY << prdev.order);
  if (!zone_watermark_ok(m, zone, 0, watermark, zone.zone_idx, ALLOC_CMA)) return;
  for (let order = prdev.order; order <= MAX_PAGE_ORDER; order++) {
    for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
      if (mt === MIGRATE_ISOLATE) continue;
      yield* page_reporting_cycle(rt, m, prdev, zone, order, mt);
    }
  }
  yield* page_reporting_flush(rt, m, prdev, zone);
}

/**
 * page_reporting_process() as a thread: wait for a request, wait the
 * delay, report every zone, go idle unless a new request came meanwhile.
 */
export function* page_reporting_worker(
  rt: Runtime,
  m: Machine,
  prdev: PageReportingDevInfo,
): StepOf<void> {
  for (;;) {
    yield* rt.wait_event(
      -1,
      "page_reporting",
      () => prdev.stop || prdev.state === PAGE_REPORTING_REQUESTED,
    );
    if (prdev.stop) return;
    yield* rt.schedule_timeout(PAGE_REPORTING_DELAY_NS);
    prdev.state = PAGE_REPORTING_ACTIVE;
    prdev.passes++;
    for (const zone of m.zones) {
      if (zone.populated_zone()) yield* page_reporting_process_zone(rt, m, prdev, zone);
    }
    if (prdev.state === PAGE_REPORTING_ACTIVE) prdev.state = PAGE_REPORTING_IDLE;
  }
}
