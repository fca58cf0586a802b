/**
 * kernel/eras/era2016.ts: the movable_ops protocol of v4.8 (2016, seed 002,
 * "mm: migrate: support non-lru movable page migration").
 *
 * Encoding: page->mapping = driver handle << 2 | PAGE_MAPPING_MOVABLE (the
 * kernel stores the driver's address_space pointer; pagesim stores a small
 * handle in the bits above the two flag bits). __ClearPageMovable() keeps
 * only the PAGE_MAPPING_MOVABLE bit, so the page still looks movable to a
 * lockless reader but has no driver ("released by its owner").
 * Isolation flag: PG_isolated (PG_reclaim in the kernel), set and cleared
 * only by the VM, under the page lock.
 * Locks: the page lock is taken by isolation (trylock), migration (both
 * pages) and putback (sleeping lock_page).
 */

import {
  type MemMap,
  PAGE_MAPPING_FLAGS,
  PAGE_MAPPING_MOVABLE,
  type Pfn,
  PGTY_balloon,
} from "../page.ts";
import type { BalloonEra, MovableEra } from "./era.ts";
import { isolated_flag, mapping_movable_handle, set_mapping_movable } from "./page_marks.ts";

export const era2016: MovableEra = {
  name: "2016",
  __PageMovable(mem: MemMap, pfn: Pfn): boolean {
    return (mem.mapping[pfn] & PAGE_MAPPING_FLAGS) === PAGE_MAPPING_MOVABLE;
  },
  page_movable_ops_handle: mapping_movable_handle,
  __SetPageMovable: set_mapping_movable,
  __ClearPageMovable(mem: MemMap, pfn: Pfn): void {
    mem.mapping[pfn] &= PAGE_MAPPING_MOVABLE;
  },
  ...isolated_flag,
  uses_page_lock: true,
  driver_isolates: false,
  isolated_movable_page(mem: MemMap, pfn: Pfn): boolean {
    return (mem.mapping[pfn] & PAGE_MAPPING_FLAGS) === PAGE_MAPPING_MOVABLE;
  },
  ops_by_type: 0,
};

/**
 * The balloon half of the 2016 era (mm/balloon_compaction.c v4.8-v5.19):
 * PageBalloon page type, the device in page->private, __SetPageMovable with
 * the balloon's mapping; each device has its own pages_lock; enqueue and
 * dequeue trylock the page under pages_lock (which is allowed against the
 * order page lock -> pages_lock only because it is a trylock);
 * virtballoon_migratepage deletes the old, isolated page without pages_lock
 * (it is on no list, and the page lock is held).
 */
export const balloon_era2016: BalloonEra = {
  name: "2016",
  device_lookup: "private",
  isolation: "core",
  page_type: PGTY_balloon,
  uses_page_lock: true,
  global_pages_lock: false,
  delete_under_pages_lock: false,
  isolate_checks_device: false,
};
