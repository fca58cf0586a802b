/**
 * kernel/drivers/toy_movable.ts: a small movable_ops driver shaped like the
 * 2016 balloon (mm/balloon_compaction.c of v4.8), for the model checker and
 * the tests: it owns pages on one list under its pages_lock, keeps a slot
 * number in page->private (slot -> pfn in `slots`) and the page's content
 * tag, all of which follow the page to its new pfn, and counts the pages the
 * VM has isolated. Its isolate_page trusts the core, as
 * balloon_page_isolate() does: it unlinks the page without checking that it
 * is still on the list, so the core's rules are what keeps it safe.
 *
 * For the tests it counts its callbacks (`calls`) and can break its
 * contract on request: `migrate_answer` makes migrate_page answer that
 * value (-EAGAIN, -EBUSY or nonsense) without migrating, and
 * `rogue_isolate` makes isolate_page say yes without touching any list.
 * Both are off by default; the checker never sets them.
 *
 * Lock order: page lock, then pages_lock (enqueue, isolate, migrate,
 * putback); remove_page() holds pages_lock and only trylocks the page.
 * Rules (kernel/rules.ts; each can be switched off by name):
 *   dequeue-skips-isolated: remove_page() leaves a page alone while the VM
 *   has it isolated (PG_isolated, read under the page lock).
 * Invariants (checked by src/check/invariants.ts; a rogue_isolate driver
 * breaks them):
 *  - a page in `slots` is on `pages` or PG_isolated, never both, whenever
 *    pages_lock is free;
 *  - isolated_pages equals the number of its pages with PG_isolated;
 *  - it holds one reference on each of its pages.
 */

import type { Lock, Runtime, Step, StepOf } from "../../runtime/runtime.ts";
import { EAGAIN, EBUSY, ENOENT } from "../errno.ts";
import { GFP_HIGHUSER_MOVABLE } from "../gfp.ts";
import { list_add, list_del } from "../list.ts";
import { put_page, this_cpu } from "../mm/lru.ts";
import { lock_page, trylock_page, unlock_page } from "../mm/pagemap.ts";
import type { MmState } from "../mm/state.ts";
import {
  __ClearPageMovable,
  __SetPageMovable,
  type MovableOperations,
  register_movable_ops,
} from "../movable_ops.ts";
import { alloc_pages } from "../page_alloc/alloc.ts";
import { RULE_DEQUEUE_SKIPS_ISOLATED, rule_holds } from "../rules.ts";

export class ToyMovable implements MovableOperations {
  readonly name: string;
  readonly handle: number;
  /** list_head slot of the driver's page list. */
  readonly pages: number;
  readonly pages_lock: Lock;
  /** slot -> pfn, -1 when empty. */
  readonly slots: Int32Array;
  isolated_pages = 0;
  /** Calls of each callback (for tests). */
  calls = { isolate: 0, migrate: 0, putback: 0 };
  /** While not null, migrate_page answers this instead of migrating (for tests). */
  migrate_answer: number | null = null;
  /** isolate_page says yes without taking the page off any list (a rogue driver, for tests). */
  rogue_isolate = false;

  constructor(mm: MmState, name: string, nr_slots: number) {
    this.name = name;
    this.pages = mm.m.mem.alloc_list_head();
    this.pages_lock = mm.new_lock(`${name}->pages_lock`, "spinlock");
    this.slots = new Int32Array(nr_slots).fill(-1);
    this.handle = register_movable_ops(mm, this);
  }

  /** Enqueue a fresh page into `slot` (balloon_page_enqueue); the pfn or -ENOMEM. */
  *add_page(rt: Runtime, mm: MmState, slot: number, tag: number): StepOf<number> {
    const m = mm.m;
    const pfn = alloc_pages(m, this_cpu(rt, m), GFP_HIGHUSER_MOVABLE, 0);
    if (pfn < 0) return pfn;
    if (m.mem.content) m.mem.content[pfn] = tag >>> 0;
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
   * Take back and free the page of `slot` (balloon_page_dequeue for one
   * page): under pages_lock, trylock the page (its lock holder may be
   * isolating or migrating it: -EAGAIN), leave it while isolated (-EBUSY),
   * else release and free it. -ENOENT for an empty slot.
   */
  *remove_page(rt: Runtime, mm: MmState, slot: number): StepOf<number> {
    const mem = mm.m.mem;
    yield* rt.spin_lock(this.pages_lock);
    const pfn = this.slots[slot];
    let rc = 0;
    if (pfn < 0) rc = -ENOENT;
    else if (!(yield* trylock_page(rt, mm, pfn))) rc = -EAGAIN;
    else {
      if (rule_holds(mm, RULE_DEQUEUE_SKIPS_ISOLATED) && mm.era.PageIsolated(mem, pfn)) rc = -EBUSY;
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

  /** balloon_page_isolate(): unlink the page, trusting the core's checks. */
  *isolate_page(rt: Runtime, mm: MmState, pfn: number, _mode: number): StepOf<boolean> {
    this.calls.isolate++;
    if (this.rogue_isolate) return true;
    yield* rt.spin_lock(this.pages_lock);
    list_del(mm.m.mem, pfn);
    this.isolated_pages++;
    yield* rt.spin_unlock(this.pages_lock);
    return true;
  }

  /** balloon_page_migrate(): the slot, data and list place move to `dst`. */
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
    mem._refcount[dst]++; // the driver's reference on its new page
    __SetPageMovable(mm, dst, this.handle);
    list_add(mem, dst, this.pages);
    this.isolated_pages--;
    __ClearPageMovable(mm, src);
    yield* rt.spin_unlock(this.pages_lock);
    put_page(rt, mm, src); // the driver's reference on the old page
    return 0;
  }

  /** balloon_page_putback(): back on the list. */
  *putback_page(rt: Runtime, mm: MmState, pfn: number): Step {
    this.calls.putback++;
    yield* rt.spin_lock(this.pages_lock);
    list_add(mm.m.mem, pfn, this.pages);
    this.isolated_pages--;
    yield* rt.spin_unlock(this.pages_lock);
  }
}
