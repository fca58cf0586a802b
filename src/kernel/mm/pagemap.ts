/**
 * kernel/mm/pagemap.ts: the page lock (PG_locked) of include/linux/pagemap.h:
 * lock_page(), trylock_page(), unlock_page().
 *
 * Choice: each page that is ever locked gets a runtime Lock of kind
 * "page_lock" (created on first use and kept in MmState.page_locks), and
 * PG_locked mirrors who holds it. A runtime Lock lets a thread truly block
 * on a locked page (lock_page sleeps, so the runtime's deadlock detector and
 * lockdep see the page lock like any other), whereas a bare flag would need a
 * busy-wait that the scheduler cannot tell from progress. The kernel hashes
 * pages onto a table of wait queues; we key by pfn so two pages never share a
 * lock, at the cost of one Lock object per page ever locked.
 *
 * Invariant: PG_locked is set exactly while the page's Lock has an owner.
 * Locks: the page lock sleeps, so it is taken before any spinlock
 * (lruvec->lru_lock, a driver's list lock).
 */

import type { Lock, Runtime, Step, StepOf } from "../../runtime/runtime.ts";
import { VM_BUG_ON_PAGE } from "../bug.ts";
import { ClearPageFlag, PageLocked, type Pfn, PG_locked, SetPageFlag } from "../page.ts";
import type { MmState } from "./state.ts";

/** pfns per chunk of MmState.page_locks. */
export const PAGE_LOCK_CHUNK_SHIFT = 12;
const PAGE_LOCK_CHUNK = 1 << PAGE_LOCK_CHUNK_SHIFT;

/**
 * The page's Lock, created on first use. A two-level table rather than a
 * Map: compaction locks millions of pages once each, and a Map's growth
 * and hashing dominated its cost.
 */
export function page_lock_of(mm: MmState, pfn: Pfn): Lock {
  const i = pfn >>> PAGE_LOCK_CHUNK_SHIFT;
  let chunk = mm.page_locks[i];
  if (chunk === undefined) {
    chunk = new Array<Lock | null>(PAGE_LOCK_CHUNK).fill(null);
    mm.page_locks[i] = chunk;
  }
  let l = chunk[pfn & (PAGE_LOCK_CHUNK - 1)];
  if (l === null) {
    l = mm.new_lock("page lock", "page_lock");
    chunk[pfn & (PAGE_LOCK_CHUNK - 1)] = l;
  }
  return l;
}

/** The pfn whose page lock has runtime id `id`, or -1 (for traces). */
export function page_lock_pfn(mm: MmState, id: number): Pfn {
  for (let i = 0; i < mm.page_locks.length; i++) {
    const chunk = mm.page_locks[i];
    if (!chunk) continue;
    for (let j = 0; j < chunk.length; j++) {
      if (chunk[j]?.id === id) return (i << PAGE_LOCK_CHUNK_SHIFT) + j;
    }
  }
  return -1;
}

/** lock_page(): sleep until the page lock is ours. */
export function* lock_page(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  yield* rt.mutex_lock(page_lock_of(mm, pfn));
  VM_BUG_ON_PAGE(
    PageLocked(mm.m.mem, pfn),
    mm.m.mem,
    pfn,
    "lock_page: PG_locked set on a free lock",
  );
  SetPageFlag(mm.m.mem, pfn, PG_locked);
}

/** trylock_page(): take the page lock if nobody holds it. */
export function* trylock_page(rt: Runtime, mm: MmState, pfn: Pfn): StepOf<boolean> {
  const ok = yield* rt.mutex_trylock(page_lock_of(mm, pfn));
  if (ok) SetPageFlag(mm.m.mem, pfn, PG_locked);
  return ok;
}

/** unlock_page(): clear PG_locked and wake a waiter. */
export function* unlock_page(rt: Runtime, mm: MmState, pfn: Pfn): Step {
  VM_BUG_ON_PAGE(!PageLocked(mm.m.mem, pfn), mm.m.mem, pfn, "unlock_page: page not locked");
  ClearPageFlag(mm.m.mem, pfn, PG_locked);
  yield* rt.mutex_unlock(page_lock_of(mm, pfn));
}

/** Whether the running thread holds the page lock (for assertions). */
export function page_locked_by_me(rt: Runtime, mm: MmState, pfn: Pfn): boolean {
  const l = mm.page_locks[pfn >>> PAGE_LOCK_CHUNK_SHIFT]?.[pfn & (PAGE_LOCK_CHUNK - 1)];
  return l != null && l.owner === rt.current;
}
