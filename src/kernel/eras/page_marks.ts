/**
 * kernel/eras/page_marks.ts: the struct page marks that more than one era
 * shares, as pieces of a MovableEra that an era spreads into its object:
 *  - the isolated flag (every era; a ghost in 2012 and 2014, see era.ts);
 *  - a driver handle in page->mapping with PAGE_MAPPING_MOVABLE in the low
 *    bits (2012's balloon mapping, the 2016 and 2022 cores);
 *  - a page flag that says "movable", the driver chosen by the page type
 *    and none named in page->mapping (2014: PG_private, 2025 and 2026:
 *    PG_movable_ops).
 * What differs between eras stays in their own files.
 * All functions are plain code, as every MovableEra method: the caller
 * announces the step (a lockless read, an atomic flag operation).
 * Invariant: a handle below 2^30 written by set_mapping_movable() reads
 * back unchanged through mapping_movable_handle().
 */

import {
  ClearPageFlag,
  type MemMap,
  PAGE_MAPPING_FLAGS,
  PAGE_MAPPING_MOVABLE,
  PageIsolated,
  type Pfn,
  PG_isolated,
  SetPageFlag,
} from "../page.ts";
import type { MovableEra } from "./era.ts";

/**
 * The isolated flag (pagesim's PG_isolated bit), set and cleared by the VM
 * under the page lock. Models PageIsolated() and its setters (v4.8-v6.16,
 * PG_reclaim reused in the kernel) and PageMovableOpsIsolated() and its
 * setters (v6.17 on).
 */
export const isolated_flag: Pick<
  MovableEra,
  "PageIsolated" | "SetPageIsolated" | "ClearPageIsolated"
> = {
  PageIsolated,
  SetPageIsolated(mem: MemMap, pfn: Pfn): void {
    SetPageFlag(mem, pfn, PG_isolated);
  },
  ClearPageIsolated(mem: MemMap, pfn: Pfn): void {
    ClearPageFlag(mem, pfn, PG_isolated);
  },
};

/**
 * The driver handle in page->mapping, 0 unless its low bits are
 * PAGE_MAPPING_MOVABLE. Models page_mapping() of a movable page (v4.8:
 * the driver's address_space), page_movable_ops() (v6.0: its
 * movable_operations) and, in 2012, the balloon mapping in page->mapping.
 */
export function mapping_movable_handle(mem: MemMap, pfn: Pfn): number {
  const m = mem.mapping[pfn];
  return (m & PAGE_MAPPING_FLAGS) === PAGE_MAPPING_MOVABLE ? m >>> 2 : 0;
}

/**
 * page->mapping = handle << 2 | PAGE_MAPPING_MOVABLE (pagesim stores a small
 * handle where the kernel stores a pointer). Models __SetPageMovable()
 * (v4.8-v6.16) and, in 2012, balloon_page_insert() setting page->mapping
 * to the balloon mapping.
 */
export function set_mapping_movable(mem: MemMap, pfn: Pfn, handle: number): void {
  mem.mapping[pfn] = ((handle << 2) | PAGE_MAPPING_MOVABLE) >>> 0;
}

/**
 * "Movable" is page flag `flag`; the page type picks the driver
 * (MovableEra.ops_by_type), so page->mapping names none (handle 0). Models
 * SetPagePrivate() / ClearPagePrivate() as the 2014 balloon uses them (on
 * its list / off it) and SetPageMovableOps() (v6.17 on; the kernel never
 * clears it, pagesim does in balloon_page_finalize(), see era2025.ts).
 */
export function movable_by_flag(
  flag: number,
): Pick<MovableEra, "page_movable_ops_handle" | "__SetPageMovable" | "__ClearPageMovable"> {
  return {
    page_movable_ops_handle(): number {
      return 0;
    },
    __SetPageMovable(mem: MemMap, pfn: Pfn): void {
      SetPageFlag(mem, pfn, flag);
    },
    __ClearPageMovable(mem: MemMap, pfn: Pfn): void {
      ClearPageFlag(mem, pfn, flag);
    },
  };
}
