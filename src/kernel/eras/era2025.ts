/**
 * kernel/eras/era2025.ts: the movable_ops protocol of v6.17-v6.19 (David
 * Hildenbrand's "rework movable_ops page migration"; seed 004), as in the
 * last 6.19 stable release.
 *
 * Recognition: PG_movable_ops is a real page flag; which driver's
 * movable_ops apply comes from the page type (PageOffline: the balloon);
 * page->mapping carries nothing. The isolated flag is
 * PG_movable_ops_isolated (pagesim's PG_isolated bit), managed by the
 * migration core under the page lock.
 * Locks: the core trylocks the page for isolation, locks both pages for
 * migration and lock_page()s for putback; the balloon sets PG_movable_ops
 * and page->private under the page lock, then pages_lock (seed 004 i).
 * Simplification: the kernel keeps PG_movable_ops and PageOffline until the
 * page is freed (sticky); pagesim clears them in balloon_page_finalize(),
 * so that the page reaches the allocator clean (put_page does not clear
 * page types). Isolation still fails on page->private == 0 (E25-4).
 */

import { type MemMap, PageFlag, type Pfn, PG_movable_ops, PGTY_offline } from "../page.ts";
import type { BalloonEra, MovableEra } from "./era.ts";
import { isolated_flag, movable_by_flag } from "./page_marks.ts";

/** The 2025 core; era2026.ts reuses it under its own name. */
export function movable_ops_era(name: string): MovableEra {
  return {
    name,
    /** page_has_movable_ops(). */
    __PageMovable(mem: MemMap, pfn: Pfn): boolean {
      return PageFlag(mem, pfn, PG_movable_ops);
    },
    /** SetPageMovableOps(); the driver comes from the page type (ops_by_type). */
    ...movable_by_flag(PG_movable_ops),
    /** PageMovableOpsIsolated(). */
    ...isolated_flag,
    uses_page_lock: true,
    driver_isolates: false,
    isolated_movable_page(mem: MemMap, pfn: Pfn): boolean {
      return PageFlag(mem, pfn, PG_movable_ops);
    },
    ops_by_type: PGTY_offline,
  };
}

export const era2025: MovableEra = movable_ops_era("2025");

export const balloon_era2025: BalloonEra = {
  name: "2025",
  device_lookup: "private",
  isolation: "core",
  page_type: PGTY_offline,
  uses_page_lock: true,
  global_pages_lock: false,
  // virtballoon_migratepage() finalizes the old page outside pages_lock.
  delete_under_pages_lock: false,
  isolate_checks_device: true,
};
