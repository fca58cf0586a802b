/**
 * A small movable_ops driver for tests: it owns pages on its own list under
 * its own spinlock, keeps per-page bookkeeping (a slot number in
 * page->private and slot -> pfn in an array, plus the page's content tag)
 * that must follow the page to its new pfn, and can be told to answer
 * -EAGAIN or nonsense from migrate_page.
 *
 * Lock order: page lock, then toy->pages_lock (the 2016 balloon's order);
 * remove_page() holds pages_lock and only trylocks the page.
 */

import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { list_add, list_del } from "../src/kernel/list.ts";
import { put_page, this_cpu } from "../src/kernel/mm/lru.ts";
import { lock_page, trylock_page, unlock_page } from "../src/kernel/mm/pagemap.ts";
import type { MmState } from "../src/kernel/mm/state.ts";
import {
  __ClearPageMovable,
  __SetPageMovable,
  type MovableOperations,
  register_movable_ops,
} from "../src/kernel/movable_ops.ts";
import { PageIsolated } from "../src/kernel/page.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import type { Lock, Runtime, Step, StepOf } from "../src/runtime/runtime.ts";

export class ToyDriver implements MovableOperations {
  readonly name: string;
  readonly handle: number;
  readonly pages: number;
  readonly pages_lock: Lock;
  /** slot -> pfn, -1 when free */
  readonly slots: Int32Array;
  isolated_pages = 0;
  /** Calls of each callback. */
  calls = { isolate: 0, migrate: 0, putback: 0 };
  /** migrate_page answers this instead of migrating while it is not null. */
  migrate_answer: number | null = null;
  /** isolate_page says yes without taking the page off any list (a rogue driver). */
  rogue_isolate = false;

  constructor(mm: MmState, name: string, nr_slots: number) {
    this.name = name;
    this.pages = mm.m.mem.alloc_list_head();
    this.pages_lock = mm.new_lock(`${name}->pages_lock`, "spinlock");
    this.slots = new Int32Array(nr_slots).fill(-1);
    this.handle = register_movable_ops(mm, this);
  }

  /** Allocate a page into `slot` with data `tag` (balloon_page_enqueue). */
  *add_page(rt: Runtime, mm: MmState, slot: number, tag: number): StepOf<number> {
    const m = mm.m;
    const pfn = alloc_pages(m, this_cpu(rt, m), GFP_HIGHUSER_MOVABLE, 0);
    if (pfn < 0) return pfn;
    if (m.mem.content) m.mem.content[pfn] = tag;
    yield* lock_page(rt, mm, pfn);
    __SetPageMovable(mm, pfn, this.handle);
    yield* rt.spin_lock(this.pages_lock);
    m.mem.page_private[pfn] = slot;
    this.slots[slot] = pfn;
    list_add(m.mem, pfn, this.pages);
    yield* rt.spin_unlock(this.pages_lock);
    yield* unlock_page(rt, mm, pfn);
    return pfn;
  }

  /**
   * Free the page in `slot` (balloon_page_dequeue): under pages_lock,
   * trylock the page (a page lock holder may be migrating it: -EAGAIN),
   * skip it while isolated (-EBUSY), else release and free it.
   */
  *remove_page(rt: Runtime, mm: MmState, slot: number): StepOf<number> {
    const mem = mm.m.mem;
    yield* rt.spin_lock(this.pages_lock);
    const pfn = this.slots[slot];
    let rc = 0;
    if (pfn < 0) rc = -2;
    else if (!(yield* trylock_page(rt, mm, pfn))) rc = -11;
    else {
      if (PageIsolated(mem, pfn)) rc = -16;
      else {
        list_del(mem, pfn);
        this.slots[slot] = -1;
        mem.page_private[pfn] = 0;
        __ClearPageMovable(mm, pfn);
      }
      yield* unlock_page(rt, mm, pfn);
    }
    yield* rt.spin_unlock(this.pages_lock);
    if (rc === 0) put_page(rt, mm, pfn);
    return rc;
  }

  *isolate_page(rt: Runtime, mm: MmState, pfn: number, _mode: number): StepOf<boolean> {
    this.calls.isolate++;
    if (this.rogue_isolate) return true;
    const mem = mm.m.mem;
    yield* rt.spin_lock(this.pages_lock);
    const mine = this.slots[mem.page_private[pfn]] === pfn;
    if (mine) {
      list_del(mem, pfn);
      this.isolated_pages++;
    }
    yield* rt.spin_unlock(this.pages_lock);
    return mine;
  }

  *migrate_page(rt: Runtime, mm: MmState, dst: number, src: number, _mode: number): StepOf<number> {
    this.calls.migrate++;
    if (this.migrate_answer !== null) return this.migrate_answer;
    const mem = mm.m.mem;
    yield* rt.spin_lock(this.pages_lock);
    const slot = mem.page_private[src];
    this.slots[slot] = dst;
    mem.page_private[dst] = slot;
    mem.page_private[src] = 0;
    if (mem.content) mem.content[dst] = mem.content[src];
    mem._refcount[dst]++; // the driver's own reference on its new page
    __SetPageMovable(mm, dst, this.handle);
    list_add(mem, dst, this.pages);
    this.isolated_pages--;
    __ClearPageMovable(mm, src);
    yield* rt.spin_unlock(this.pages_lock);
    put_page(rt, mm, src); // the driver's reference on the old page
    return 0;
  }

  *putback_page(rt: Runtime, mm: MmState, pfn: number): Step {
    this.calls.putback++;
    yield* rt.spin_lock(this.pages_lock);
    list_add(mm.m.mem, pfn, this.pages);
    this.isolated_pages--;
    yield* rt.spin_unlock(this.pages_lock);
  }
}
