/**
 * kernel/mm/owner.ts: the owners of user pages and the reverse map back to
 * them: a process's anonymous memory (a page table, vpage -> pfn) and a
 * file's page cache (index -> pfn), with do_anonymous_page(),
 * add_to_page_cache_lru(), zap_anon_page(), delete_from_page_cache(), pins
 * (get_user_pages) and mlock.
 *
 * Reverse map: page->mapping = owner handle << 2, with PAGE_MAPPING_ANON for
 * anonymous pages, and page->index = the vpage or file index, so migration
 * can find and repoint the one entry that points at a page (rmap_walk
 * reduced to one mapping).
 * References: a mapped anon page holds one reference for its pte
 * (mapcount 1); a page cache page holds one for the cache; a pin adds one.
 * Locks: there is no page table lock. An owner entry is read and changed
 * only in plain code between two steps (zap clears the pte before its first
 * step; migration repoints it under both page locks), which is what the PTL
 * guarantees in the kernel. mlock_page() and pin_user_page() take a pfn the
 * caller read from the owner and assume no migration runs in between (the
 * kernel holds the PTL or the page lock there). The LRU parts take
 * lruvec->lru_lock.
 * Invariants: owner.pages[page->index] === pfn for every owned page, and an
 * owned page's mapping names that owner.
 */

import type { Runtime, Step, StepOf } from "../../runtime/runtime.ts";
import { OP_WRITE } from "../../runtime/runtime.ts";
import { assert, VM_BUG_ON_PAGE } from "../bug.ts";
import { EEXIST, ENOENT, ENOMEM } from "../errno.ts";
import { GFP_HIGHUSER_MOVABLE } from "../gfp.ts";
import {
  ClearPageFlag,
  PAGE_MAPPING_ANON,
  PAGE_MAPPING_FLAGS,
  PageFlag,
  PageLRU,
  type Pfn,
  PG_mlocked,
  PG_swapbacked,
  PG_unevictable,
  PG_writeback,
  SetPageFlag,
} from "../page.ts";
import { alloc_pages } from "../page_alloc/alloc.ts";
import { NR_ANON_MAPPED, NR_FILE_PAGES, NR_MLOCK } from "../vmstat_items.ts";
import { lru_cache_add, lru_relocate, page_lru, put_page_lru, this_cpu } from "./lru.ts";
import type { MmState } from "./state.ts";

export type OwnerKind = "anon" | "file";

/** A process's anonymous memory or a file's page cache. */
export interface AddressSpace {
  readonly handle: number;
  readonly kind: OwnerKind;
  readonly name: string;
  /** vpage (anon) or index (file) -> pfn, -1 when absent. */
  readonly pages: Int32Array;
}

function new_owner(mm: MmState, kind: OwnerKind, name: string, nr_pages: number): AddressSpace {
  const handle = mm.owners.length;
  assert(handle < 1 << 29, "owner handles fit above the mapping flag bits");
  const as: AddressSpace = { handle, kind, name, pages: new Int32Array(nr_pages).fill(-1) };
  mm.owners.push(as);
  return as;
}

/** A process with `nr_vpages` pages of anonymous address space. */
export function mm_new_process(mm: MmState, name: string, nr_vpages: number): AddressSpace {
  return new_owner(mm, "anon", name, nr_vpages);
}

/** A file whose page cache can hold `nr_pages` pages. */
export function mm_new_file(mm: MmState, name: string, nr_pages: number): AddressSpace {
  return new_owner(mm, "file", name, nr_pages);
}

/** page_owner_space(): the owner a page's mapping names, or null. */
export function page_address_space(mm: MmState, pfn: Pfn): AddressSpace | null {
  const mapping = mm.m.mem.mapping[pfn];
  const bits = mapping & PAGE_MAPPING_FLAGS;
  if (mapping === 0 || (bits !== 0 && bits !== PAGE_MAPPING_ANON)) return null;
  return mm.owners[mapping >>> 2] ?? null;
}

/** References the owner holds on its page (pte or page cache). */
export function owner_refs(mm: MmState, pfn: Pfn): number {
  const mem = mm.m.mem;
  const as = page_address_space(mm, pfn);
  if (as === null) return 0;
  return (as.kind === "file" ? 1 : 0) + mem._mapcount[pfn] + 1;
}

function* new_user_page(
  rt: Runtime,
  mm: MmState,
  as: AddressSpace,
  index: number,
  tag: number,
): StepOf<number> {
  assert(index >= 0 && index < as.pages.length, "page index inside the owner");
  if (as.pages[index] !== -1) return -EEXIST;
  const m = mm.m;
  const pfn = alloc_pages(m, this_cpu(rt, m), GFP_HIGHUSER_MOVABLE, 0);
  if (pfn < 0) return -ENOMEM;
  const mem = m.mem;
  mem.index[pfn] = index;
  if (as.kind === "anon") {
    mem.mapping[pfn] = ((as.handle << 2) | PAGE_MAPPING_ANON) >>> 0;
    mem._mapcount[pfn] = 0;
    SetPageFlag(mem, pfn, PG_swapbacked);
    mm.page_lruvec(pfn).pgdat.vm_stat[NR_ANON_MAPPED] += 1;
  } else {
    mem.mapping[pfn] = (as.handle << 2) >>> 0;
    mm.page_lruvec(pfn).pgdat.vm_stat[NR_FILE_PAGES] += 1;
  }
  if (mem.content) mem.content[pfn] = tag >>> 0;
  as.pages[index] = pfn;
  yield* lru_cache_add(rt, mm, pfn);
  return pfn;
}

/**
 * do_anonymous_page(): fault in `vpage` of process `as` with data `tag`.
 * Returns the pfn, -ENOMEM, or -EEXIST if already present.
 */
export function* do_anonymous_page(
  rt: Runtime,
  mm: MmState,
  as: AddressSpace,
  vpage: number,
  tag: number,
): StepOf<number> {
  assert(as.kind === "anon", "do_anonymous_page on a process");
  return yield* new_user_page(rt, mm, as, vpage, tag);
}

/** add_to_page_cache_lru(): read page `index` of file `as` with data `tag`. */
export function* add_to_page_cache_lru(
  rt: Runtime,
  mm: MmState,
  as: AddressSpace,
  index: number,
  tag: number,
): StepOf<number> {
  assert(as.kind === "file", "add_to_page_cache_lru on a file");
  return yield* new_user_page(rt, mm, as, index, tag);
}

/** zap_pte_range() for one page: unmap `vpage` and drop its reference. */
export function* zap_anon_page(
  rt: Runtime,
  mm: MmState,
  as: AddressSpace,
  vpage: number,
): StepOf<number> {
  assert(as.kind === "anon", "zap_anon_page on a process");
  const pfn = as.pages[vpage];
  if (pfn < 0) return -ENOENT;
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(mem._mapcount[pfn] !== 0, mem, pfn, "zap_anon_page: page not mapped once");
  // Clear the pte before the first step: from here a racing migration sees
  // the pte's reference without a mapping and backs off with -EAGAIN.
  as.pages[vpage] = -1;
  mem._mapcount[pfn] = -1;
  mm.page_lruvec(pfn).pgdat.vm_stat[NR_ANON_MAPPED] -= 1;
  if (PageFlag(mem, pfn, PG_mlocked)) yield* munlock_page(rt, mm, pfn);
  yield* put_page_lru(rt, mm, pfn);
  return 0;
}

/** delete_from_page_cache(): drop page `index` of file `as`. */
export function* delete_from_page_cache(
  rt: Runtime,
  mm: MmState,
  as: AddressSpace,
  index: number,
): StepOf<number> {
  assert(as.kind === "file", "delete_from_page_cache on a file");
  const pfn = as.pages[index];
  if (pfn < 0) return -ENOENT;
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(PageFlag(mem, pfn, PG_writeback), mem, pfn, "truncating a page under writeback");
  as.pages[index] = -1;
  mm.page_lruvec(pfn).pgdat.vm_stat[NR_FILE_PAGES] -= 1;
  yield* put_page_lru(rt, mm, pfn);
  return 0;
}

/** get_user_pages() pin: one more reference, which migration cannot account for. */
export function pin_user_page(mm: MmState, pfn: Pfn): void {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(mem._refcount[pfn] < 1, mem, pfn, "pinning a free page");
  mem._refcount[pfn]++;
}

/** unpin_user_page(): drop a pin. */
export function unpin_user_page(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  return put_page_lru(rt, mm, pfn);
}

/** mlock_vma_page(): the page becomes unevictable (lru_lock taken). */
export function* mlock_page(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  const mem = mm.m.mem;
  if (PageFlag(mem, pfn, PG_mlocked)) return;
  const lruvec = mm.page_lruvec(pfn);
  yield* rt.spin_lock(lruvec.lru_lock);
  const on_lru = PageLRU(mem, pfn);
  const from = page_lru(mem, pfn);
  SetPageFlag(mem, pfn, PG_mlocked);
  SetPageFlag(mem, pfn, PG_unevictable);
  if (on_lru) lru_relocate(mm.m, lruvec, pfn, from);
  mm.m.page_zone(pfn)!.vm_stat[NR_MLOCK] += 1;
  yield* rt.spin_unlock(lruvec.lru_lock);
}

/** munlock_vma_page(): back to the evictable lists. */
export function* munlock_page(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  const mem = mm.m.mem;
  if (!PageFlag(mem, pfn, PG_mlocked)) return;
  const lruvec = mm.page_lruvec(pfn);
  yield* rt.spin_lock(lruvec.lru_lock);
  const on_lru = PageLRU(mem, pfn);
  const from = page_lru(mem, pfn);
  ClearPageFlag(mem, pfn, PG_mlocked);
  ClearPageFlag(mem, pfn, PG_unevictable);
  if (on_lru) lru_relocate(mm.m, lruvec, pfn, from);
  mm.m.page_zone(pfn)!.vm_stat[NR_MLOCK] -= 1;
  yield* rt.spin_unlock(lruvec.lru_lock);
}

/** set_page_writeback() / end_page_writeback(), for scenarios. */
export function set_page_writeback(mm: MmState, pfn: Pfn, on: boolean): void {
  if (on) SetPageFlag(mm.m.mem, pfn, PG_writeback);
  else ClearPageFlag(mm.m.mem, pfn, PG_writeback);
}

/**
 * end_page_writeback() as a step another CPU can interleave with (the I/O
 * completion): clears PG_writeback, which wakes wait_on_page_writeback().
 */
export function* end_page_writeback(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  yield* rt.access(OP_WRITE, pfn, "PG_writeback");
  ClearPageFlag(mm.m.mem, pfn, PG_writeback);
}
