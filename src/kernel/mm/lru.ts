/**
 * kernel/mm/lru.ts: the per-node LRU lists of mm/vmscan.c and mm/swap.c:
 * add_page_to_lru_list(), del_page_from_lru_list(), lru_cache_add(),
 * isolate_lru_page() and putback_lru_page() (the page-based API of the
 * 2016 kernels; folio_isolate_lru() is the same protocol on folios).
 *
 * Lock: lruvec->lru_lock (a spinlock, one per node) guards the five lists,
 * PG_lru, PG_active/PG_unevictable of pages on a list, and the LRU size
 * counters. PG_lru is read locklessly first (a racing isolation at worst
 * makes us take the lock for nothing: it is rechecked under the lock).
 *
 * Invariants:
 *  - a page is on an LRU list exactly when PG_lru is set, and on the list
 *    page_lru() names;
 *  - NR_INACTIVE_ANON.. NR_UNEVICTABLE (node) and NR_ZONE_* (zone) equal the
 *    list lengths;
 *  - an isolated page (off the LRU, PG_lru clear) holds one extra reference,
 *    dropped by putback_lru_page() or by migration once it is done.
 *
 * Simplified: no per-CPU pagevecs (lru_cache_add() adds under the lock at
 * once), no memcg lruvecs, order-0 pages only.
 */

import type { Lock, Runtime, Step, StepOf } from "../../runtime/runtime.ts";
import { OP_READ } from "../../runtime/runtime.ts";
import { VM_BUG_ON_PAGE } from "../bug.ts";
import { EBUSY } from "../errno.ts";
import { list_add, list_count_nodes, list_del } from "../list.ts";
import type { Machine } from "../machine.ts";
import type { PgData } from "../mmzone.ts";
import {
  ClearPageFlag,
  type MemMap,
  PageFlag,
  PageLRU,
  type Pfn,
  PG_active,
  PG_lru,
  PG_swapbacked,
  PG_unevictable,
  SetPageFlag,
} from "../page.ts";
import { __free_pages } from "../page_alloc/alloc.ts";
import { NR_INACTIVE_ANON, NR_ISOLATED_ANON, NR_ZONE_INACTIVE_ANON } from "../vmstat_items.ts";
import type { MmState } from "./state.ts";

// enum lru_list
export const LRU_INACTIVE_ANON = 0;
export const LRU_ACTIVE_ANON = 1;
export const LRU_INACTIVE_FILE = 2;
export const LRU_ACTIVE_FILE = 3;
export const LRU_UNEVICTABLE = 4;
export const NR_LRU_LISTS = 5;

/** struct lruvec: one node's LRU lists and the lock that guards them. */
export class Lruvec {
  /** list_head slot of each lru_list. */
  readonly lists: Int32Array;
  readonly pgdat: PgData;
  readonly lru_lock: Lock;
  constructor(mem: MemMap, pgdat: PgData, lru_lock: Lock) {
    this.lists = new Int32Array(NR_LRU_LISTS);
    for (let i = 0; i < NR_LRU_LISTS; i++) this.lists[i] = mem.alloc_list_head();
    this.pgdat = pgdat;
    this.lru_lock = lru_lock;
  }
}

/** page_is_file_cache(): file pages are not swap-backed. */
export function page_is_file_cache(mem: MemMap, pfn: Pfn): boolean {
  return !PageFlag(mem, pfn, PG_swapbacked);
}

/** page_lru(): which list the page's flags say it belongs on. */
export function page_lru(mem: MemMap, pfn: Pfn): number {
  if (PageFlag(mem, pfn, PG_unevictable)) return LRU_UNEVICTABLE;
  const base = page_is_file_cache(mem, pfn) ? LRU_INACTIVE_FILE : LRU_INACTIVE_ANON;
  return base + (PageFlag(mem, pfn, PG_active) ? 1 : 0);
}

/** update_lru_size(): node and zone counters move together. */
function update_lru_size(m: Machine, lruvec: Lruvec, lru: number, pfn: Pfn, nr: number): void {
  lruvec.pgdat.vm_stat[NR_INACTIVE_ANON + lru] += nr;
  const zone = m.page_zone(pfn);
  if (zone) zone.vm_stat[NR_ZONE_INACTIVE_ANON + lru] += nr;
}

/** add_page_to_lru_list(): the caller holds lru_lock and sets PG_lru. */
export function add_page_to_lru_list(m: Machine, lruvec: Lruvec, pfn: Pfn, lru: number): void {
  list_add(m.mem, pfn, lruvec.lists[lru]);
  update_lru_size(m, lruvec, lru, pfn, 1);
}

/** del_page_from_lru_list(): the caller holds lru_lock and clears PG_lru. */
export function del_page_from_lru_list(m: Machine, lruvec: Lruvec, pfn: Pfn, lru: number): void {
  list_del(m.mem, pfn);
  update_lru_size(m, lruvec, lru, pfn, -1);
}

/** Move a page on the LRU to the list its flags now name (lru_lock held). */
export function lru_relocate(m: Machine, lruvec: Lruvec, pfn: Pfn, from_lru: number): void {
  del_page_from_lru_list(m, lruvec, pfn, from_lru);
  add_page_to_lru_list(m, lruvec, pfn, page_lru(m.mem, pfn));
}

/** lru_cache_add(): put a page that is off the LRU on its list. */
export function* lru_cache_add(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(PageLRU(mem, pfn), mem, pfn, "lru_cache_add: page already on the LRU");
  VM_BUG_ON_PAGE(mem._refcount[pfn] < 1, mem, pfn, "lru_cache_add: page without a reference");
  const lruvec = mm.page_lruvec(pfn);
  yield* rt.spin_lock(lruvec.lru_lock);
  SetPageFlag(mem, pfn, PG_lru);
  add_page_to_lru_list(mm.m, lruvec, pfn, page_lru(mem, pfn));
  yield* rt.spin_unlock(lruvec.lru_lock);
}

/**
 * isolate_lru_page(): take a page off its LRU list for migration. The caller
 * holds a reference; on success (0) the page holds one more (the isolation
 * reference) and PG_lru is clear; -EBUSY if it was not on the LRU. The
 * caller accounts NR_ISOLATED_ANON/FILE (see isolate_lru_page_to_list()).
 */
export function* isolate_lru_page(rt: Runtime, mm: MmState, pfn: Pfn): StepOf<number> {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(mem._refcount[pfn] < 1, mem, pfn, "isolate_lru_page: page without a reference");
  // Lockless peek; rechecked under the lock.
  yield* rt.access(OP_READ, pfn, "PG_lru");
  if (!PageLRU(mem, pfn)) return -EBUSY;
  const lruvec = mm.page_lruvec(pfn);
  yield* rt.spin_lock(lruvec.lru_lock);
  let ret = -EBUSY;
  if (PageLRU(mem, pfn)) {
    mem._refcount[pfn]++;
    ClearPageFlag(mem, pfn, PG_lru);
    del_page_from_lru_list(mm.m, lruvec, pfn, page_lru(mem, pfn));
    ret = 0;
  }
  yield* rt.spin_unlock(lruvec.lru_lock);
  return ret;
}

/** NR_ISOLATED_ANON or NR_ISOLATED_FILE for this page. */
export function nr_isolated_item(mem: MemMap, pfn: Pfn): number {
  return NR_ISOLATED_ANON + (page_is_file_cache(mem, pfn) ? 1 : 0);
}

/**
 * isolate_lru_page() plus what its migration callers do: account the page as
 * isolated and put it on `list` (a list_head slot). Returns 0 or -EBUSY.
 */
export function* isolate_lru_page_to_list(
  rt: Runtime,
  mm: MmState,
  pfn: Pfn,
  list: number,
): StepOf<number> {
  const ret = yield* isolate_lru_page(rt, mm, pfn);
  if (ret !== 0) return ret;
  const mem = mm.m.mem;
  mm.page_lruvec(pfn).pgdat.vm_stat[nr_isolated_item(mem, pfn)] += 1;
  list_add(mem, pfn, list);
  return 0;
}

/**
 * putback_lru_page(): return an isolated page to its LRU list and drop the
 * isolation reference. If its owner let go of it meanwhile (only the
 * isolation reference is left), the page is freed instead.
 */
export function* putback_lru_page(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  const mem = mm.m.mem;
  VM_BUG_ON_PAGE(PageLRU(mem, pfn), mem, pfn, "putback_lru_page: page is on the LRU");
  if (mem._refcount[pfn] === 1) {
    put_page(rt, mm, pfn);
    return;
  }
  yield* lru_cache_add(rt, mm, pfn);
  // The owner may have let go meanwhile: this can be the last reference.
  yield* put_page_lru(rt, mm, pfn);
}

/**
 * put_page() for a page that may sit on the LRU (the kernel's put_page
 * reaching __page_cache_release): the decision "last reference" and the
 * removal from the LRU are made together under lru_lock, so a racing
 * isolation either finds the page gone from the LRU or holds a reference
 * that keeps it alive. Without PG_lru the page cannot gain PG_lru unless
 * someone else holds a reference, so the lockless path is safe.
 */
export function* put_page_lru(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  const mem = mm.m.mem;
  yield* rt.access(OP_READ, pfn, "PG_lru");
  if (PageLRU(mem, pfn)) {
    const lruvec = mm.page_lruvec(pfn);
    yield* rt.spin_lock(lruvec.lru_lock);
    const last = mem._refcount[pfn] === 1;
    if (!last) mem._refcount[pfn]--;
    else if (PageLRU(mem, pfn)) {
      ClearPageFlag(mem, pfn, PG_lru);
      del_page_from_lru_list(mm.m, lruvec, pfn, page_lru(mem, pfn));
    }
    yield* rt.spin_unlock(lruvec.lru_lock);
    if (!last) return;
  }
  put_page(rt, mm, pfn);
}

/** The CPU the running thread is on, for the pcp lists a free goes to. */
export function this_cpu(rt: Runtime, m: Machine): number {
  return rt.current >= 0 && rt.current < m.nr_cpus ? rt.current : 0;
}

/**
 * put_page(): drop a reference. The last one frees the page: it must be off
 * the LRU (use put_page_lru() when it may not be) and unmapped; its owner bits and LRU-related flags are cleared
 * first (what the kernel's __page_cache_release and free_pages_prepare do).
 */
export function put_page(rt: Runtime, mm: MmState, pfn: Pfn): void {
  const mem = mm.m.mem;
  if (mem._refcount[pfn] === 1) {
    VM_BUG_ON_PAGE(PageLRU(mem, pfn), mem, pfn, "put_page: freeing a page still on the LRU");
    VM_BUG_ON_PAGE(mem._mapcount[pfn] !== -1, mem, pfn, "put_page: freeing a mapped page");
    mem.mapping[pfn] = 0;
    ClearPageFlag(mem, pfn, PG_active);
    ClearPageFlag(mem, pfn, PG_unevictable);
    ClearPageFlag(mem, pfn, PG_swapbacked);
  }
  __free_pages(mm.m, this_cpu(rt, mm.m), pfn, 0);
}

/** The pfns on one LRU list, head first (tests, debug). */
export function lru_list_pfns(mm: MmState, node: number, lru: number): number[] {
  const mem = mm.m.mem;
  const head = mm.lruvecs[node].lists[lru];
  list_count_nodes(mem, head, mem.nr_pages);
  const out: number[] = [];
  for (let p = mem.lru_next[head]; p !== head; p = mem.lru_next[p]) out.push(p);
  return out;
}
