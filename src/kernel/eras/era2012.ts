/**
 * kernel/eras/era2012.ts: the balloon compaction protocol of v3.8-v3.17
 * (Rafael Aquini's series, merged for v3.8; the first posting is seed 001),
 * as it stood in v3.17.
 *
 * Recognition: a balloon page is one whose page->mapping is the device's
 * balloon mapping (the kernel compares the pointer and tests AS_BALLOON_MAP;
 * pagesim stores the driver handle << 2 | PAGE_MAPPING_MOVABLE so that it
 * cannot be mistaken for a file or anon mapping). The lockless scan
 * predicate balloon_page_movable() also wants an unmapped page with no
 * flags and refcount == 1. No page flag says "isolated": the refcount does
 * (isolated_balloon_page: the balloon mapping and refcount >= 2; pagesim's
 * PG_isolated is a ghost, see era.ts).
 * Locks: balloon_page_isolate() pins the page (get_page_unless_zero), then
 * trylocks it, then takes pages_lock; putback takes lock_page, then
 * pages_lock; enqueue and dequeue trylock the page, then take pages_lock.
 * Migration: unmap_and_move() recognises the isolated balloon page by its
 * mapping and calls balloon_page_migrate() (the driver's migratepage) with
 * both pages locked.
 */

import {
  type MemMap,
  type Pfn,
  PG_active,
  PG_locked,
  PG_lru,
  PG_private,
  PG_swapbacked,
  PGTY_balloon,
} from "../page.ts";
import type { BalloonEra, MovableEra } from "./era.ts";
import { isolated_flag, mapping_movable_handle, set_mapping_movable } from "./page_marks.ts";

/** The flags balloon_page_movable() wants clear (page_flags_cleared(), the ones that matter here). */
const FLAGS_CHECKED =
  (1 << PG_lru) | (1 << PG_locked) | (1 << PG_private) | (1 << PG_swapbacked) | (1 << PG_active);

export const era2012: MovableEra = {
  name: "2012",
  /** balloon_page_movable(): lockless; no flags, unmapped, refcount 1, the balloon mapping. */
  __PageMovable(mem: MemMap, pfn: Pfn): boolean {
    return (
      (mem.flags[pfn] & FLAGS_CHECKED) === 0 &&
      mem._mapcount[pfn] === -1 &&
      mem._refcount[pfn] === 1 &&
      mapping_movable_handle(mem, pfn) !== 0
    );
  },
  /** The device whose balloon mapping page->mapping is. */
  page_movable_ops_handle: mapping_movable_handle,
  /** balloon_page_insert(): page->mapping = the balloon mapping. */
  __SetPageMovable: set_mapping_movable,
  /** balloon_page_delete(): page->mapping = NULL. */
  __ClearPageMovable(mem: MemMap, pfn: Pfn): void {
    mem.mapping[pfn] = 0;
  },
  /** A ghost: the refcount says "isolated" in this era (era.ts). */
  ...isolated_flag,
  uses_page_lock: true,
  driver_isolates: true,
  /** isolated_balloon_page() without its refcount half (the page is pinned here). */
  isolated_movable_page(mem: MemMap, pfn: Pfn): boolean {
    return mapping_movable_handle(mem, pfn) !== 0;
  },
  ops_by_type: 0,
};

/**
 * The balloon half: identity in page->mapping, isolation by refcount,
 * lock order page lock -> pages_lock; pagesim gives a 2012 balloon a page
 * type too (PGTY_balloon) only as bookkeeping for the invariants' census:
 * nothing in the era's code reads it.
 */
export const balloon_era2012: BalloonEra = {
  name: "2012",
  device_lookup: "mapping",
  isolation: "refcount",
  page_type: PGTY_balloon,
  uses_page_lock: true,
  global_pages_lock: false,
  delete_under_pages_lock: true,
  isolate_checks_device: false,
};
