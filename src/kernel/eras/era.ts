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
