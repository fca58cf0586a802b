/**
 * kernel/eras/era2014.ts: the balloon compaction protocol of v3.18-v4.7
 * (d6d86c0a7f8d "mm/balloon_compaction: redesign ballooned pages
 * management"; seed 000's rules i-iv), as it stood in the last 4.7 stable
 * release (with "fix deflation when compaction is disabled" and "don't rely
 * on __PageMovable() of newpage after unlocking it" applied).
 *
 * Recognition: PageBalloon (a page type) says "balloon page",
 * page->private names the device, PagePrivate (PG_private) says "on the
 * device list, not isolated". The lockless scan predicate is PageBalloon &&
 * PagePrivate (no pointer is dereferenced); migration and putback recognise
 * an isolated balloon page by PageBalloon. pagesim's PG_isolated is a
 * ghost (era.ts).
 * Locks: page lock, then pages_lock (rule i); isolation pins the page,
 * trylocks it and rechecks PageBalloon && PagePrivate (rule iii), and
 * clears PagePrivate with the list removal (rule iv); dequeue skips pages
 * without PagePrivate.
 */

import { type MemMap, PageFlag, type Pfn, PG_private, PGTY_balloon } from "../page.ts";
import type { BalloonEra, MovableEra } from "./era.ts";
import { isolated_flag, movable_by_flag } from "./page_marks.ts";

export const era2014: MovableEra = {
  name: "2014",
  /** balloon_page_movable(): PageBalloon && PagePrivate, two lockless reads. */
  __PageMovable(mem: MemMap, pfn: Pfn): boolean {
    return mem.page_type[pfn] === PGTY_balloon && PageFlag(mem, pfn, PG_private);
  },
  /**
   * The driver comes from the page type (ops_by_type). SetPagePrivate: on
   * the list; ClearPagePrivate: off the list (isolated or deleted).
   */
  ...movable_by_flag(PG_private),
  /** A ghost: PagePrivate clear says "isolated" in this era (era.ts). */
  ...isolated_flag,
  uses_page_lock: true,
  driver_isolates: true,
  /** isolated_balloon_page(): PageBalloon. */
  isolated_movable_page(mem: MemMap, pfn: Pfn): boolean {
    return mem.page_type[pfn] === PGTY_balloon;
  },
  ops_by_type: PGTY_balloon,
};

export const balloon_era2014: BalloonEra = {
  name: "2014",
  device_lookup: "private",
  isolation: "private_flag",
  page_type: PGTY_balloon,
  uses_page_lock: true,
  global_pages_lock: false,
  delete_under_pages_lock: true,
  isolate_checks_device: false,
};
