/**
 * kernel/eras/era.ts: what differs between kernel eras in how a page with
 * driver-supplied migration callbacks (movable_ops) is recognised and
 * isolated. movable_ops.ts and migrate.ts call only this interface, so the
 * 2022 (struct movable_operations in page->mapping), 2025 (v6.16) and 2026
 * (PG_movable_ops with the page type, no page lock) protocols can plug in
 * beside the 2016 one (eras/era2016.ts).
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
   * Whether isolation and putback of movable_ops pages take the page lock.
   * migrate.ts takes both page locks in every era up to v6.16; the 2026 era
   * will need that made conditional too.
   */
  readonly uses_page_lock: boolean;
}

/**
 * What differs between kernel eras in the balloon compaction interface
 * (balloon_compaction.ts). Only the 2016 era (v4.8-v5.19) is implemented;
 * the fields say what later eras change, so adding one is a new object:
 *  - 2012 (v3.8): device found through page->mapping; rules (ii)-(iv) of
 *    seed 000 (refcount raised while handled, PagePrivate rechecked under
 *    the page lock);
 *  - 2022 (v6.0-v6.16): struct movable_operations, PageOffline page type;
 *  - 2025 (v6.17, seed 004): PG_movable_ops with PageOffline, finalize keeps
 *    the page type, isolation fails when page->private is 0;
 *  - 2026 (seed 003): no page lock in balloon code; one global
 *    balloon_pages_lock guards every list and page->private.
 */
export interface BalloonEra {
  readonly name: string;
  /**
   * How a page names its device: "mapping" (2012: the device's own
   * address_space in page->mapping) or "private" (2014 on: page->private).
   * Only "private" is implemented.
   */
  readonly device_lookup: "mapping" | "private";
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
