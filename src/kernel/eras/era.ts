/**
 * kernel/eras/era.ts: what differs between kernel eras in how a page with
 * driver-supplied migration callbacks (movable_ops, or the balloon hooks of
 * 2012-2014 compaction and migration) is recognised, isolated and routed.
 * movable_ops.ts, migrate.ts and compaction.ts call only this interface.
 * Eras: 2012 (balloon mapping in page->mapping, isolation = refcount),
 * 2014 (PageBalloon + PagePrivate), 2016/2022 (PAGE_MAPPING_MOVABLE in
 * page->mapping, PG_isolated), 2025/2026 (PG_movable_ops with the page type,
 * PageMovableOpsIsolated). The registry is eras/index.ts; the page marks
 * several eras share are in eras/page_marks.ts.
 *
 * Model ghost: in 2012 and 2014 the kernel had no isolated flag (2012: the
 * refcount says it, 2014: PagePrivate clear). pagesim still sets PG_isolated
 * on an isolated page in those eras, as a record for the invariants; the
 * era's code never reads it (driver_isolates: the balloon code decides).
 *
 * All methods are plain code: the caller announces the step (a lockless read
 * of page->mapping, an atomic flag operation) before calling them.
 */

import type { MemMap, Pfn } from "../page.ts";

export interface MovableEra {
  readonly name: string;
  /** Lockless "might be a movable_ops page" (may be a false positive). */
  __PageMovable(mem: MemMap, pfn: Pfn): boolean;
  /** The registered driver handle of a movable page, 0 if its owner released it. */
  page_movable_ops_handle(mem: MemMap, pfn: Pfn): number;
  /** Mark a page as movable by driver `handle` (page lock held in 2016). */
  __SetPageMovable(mem: MemMap, pfn: Pfn, handle: number): void;
  /** The owner lets go of the page (page lock held in 2016). */
  __ClearPageMovable(mem: MemMap, pfn: Pfn): void;
  /** The flag that says the VM has isolated a movable page. */
  PageIsolated(mem: MemMap, pfn: Pfn): boolean;
  SetPageIsolated(mem: MemMap, pfn: Pfn): void;
  ClearPageIsolated(mem: MemMap, pfn: Pfn): void;
  /**
   * Whether the core takes the page lock for movable_ops pages: isolation
   * (trylock), migration (both pages) and putback (lock_page). True in
   * every era (2026 too: the core still locks, rule core-page-lock).
   */
  readonly uses_page_lock: boolean;
  /**
   * 2012-2014: the balloon code itself pins, trylocks and rechecks the page
   * (balloon_page_isolate(), balloon_page_putback() take the page lock);
   * the core only makes the lockless test and calls it.
   */
  readonly driver_isolates: boolean;
  /**
   * How migration and putback recognise an isolated page of a driver
   * (unmap_and_move, putback_movable_pages): 2012 isolated_balloon_page()
   * (the balloon mapping), 2014 PageBalloon, later __PageMovable /
   * page_has_movable_ops.
   */
  isolated_movable_page(mem: MemMap, pfn: Pfn): boolean;
  /**
   * The page type that selects the driver (2014: PageBalloon, 2025 on:
   * PageOffline with PG_movable_ops), or 0 when page->mapping names it.
   */
  readonly ops_by_type: number;
}

/**
 * What differs between kernel eras in the balloon compaction interface
 * (balloon_compaction.ts):
 *  - 2012 (v3.8-v3.17): device found through page->mapping (the device's
 *    balloon mapping); isolation pins and trylocks the page itself and
 *    wants refcount == 2; dequeue takes an extra reference;
 *  - 2014 (v3.18-v4.7): PageBalloon, page->private names the device,
 *    PagePrivate = on the list (seed 000 rules i-iv);
 *  - 2016 (v4.8-v5.19): the movable_ops framework of seed 002;
 *  - 2022 (v6.0-v6.16): struct movable_operations, PageOffline page type;
 *  - 2025 (v6.17, seed 004): PG_movable_ops with PageOffline, finalize
 *    clears page->private, isolation fails when page->private is 0;
 *  - 2026 (seed 003): no page lock in balloon code; one global
 *    balloon_pages_lock guards every list and page->private.
 */
export interface BalloonEra {
  readonly name: string;
  /**
   * How a page names its device: "mapping" (2012: the device's own
   * balloon mapping in page->mapping, one per device) or "private" (2014
   * on: page->private).
   */
  readonly device_lookup: "mapping" | "private";
  /**
   * What says a page is isolated to the balloon code: "refcount" (2012:
   * refcount == 2 under the page lock), "private_flag" (2014: PagePrivate
   * clear) or "core" (2016 on: the core's isolated flag).
   */
  readonly isolation: "refcount" | "private_flag" | "core";
  /** The page type a balloon page carries (PGTY_balloon until v6.0, then PGTY_offline). */
  readonly page_type: number;
  /** Enqueue and dequeue trylock the page (every era before 2026). */
  readonly uses_page_lock: boolean;
  /** One lock for every device (2026) instead of each device's pages_lock. */
  readonly global_pages_lock: boolean;
  /** balloon_page_delete() in migratepage runs under the pages lock (from v6.0 on). */
  readonly delete_under_pages_lock: boolean;
  /** balloon_page_isolate() refuses a page whose page->private is 0 (2025 on). */
  readonly isolate_checks_device: boolean;
}
