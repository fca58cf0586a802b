/**
 * check/invariants.ts: the whole-state checks the checker runs after every
 * step (and, for the "end" ones, once every thread has finished), as a
 * registry. Each returns null or a sentence naming the pfn and what is
 * wrong. An era adds its own through CheckEra.invariants (eras.ts).
 *
 * Where a page can be (its "place"): in a free block on a free list, on a
 * pcp list, on an LRU list, on a driver's list, on a worker's isolation list
 * (cc->migratepages), or nowhere (in flight: held by a thread between two
 * steps). Who can own it: one driver (its slot table) or one process (its
 * page table). The census walks every list once per check, bounded, so a
 * corrupted link is reported instead of looping.
 *
 * Checks of links and places wait while a thread is between two stores of
 * an unlocked list update (Census.partial).
 * Checks that look inside a driver's bookkeeping are made only while the
 * driver's pages_lock is free: a critical section may be halfway through an
 * update between two steps (list_del before the count moves). The refcount
 * balance is an end check: in flight, a thread may hold references the
 * state does not show.
 *
 * Registered (name: what it says):
 *   list-links-intact   every list is circular and doubly linked, no entry twice
 *   refcount-nonneg     no page has a negative refcount
 *   page-in-one-place   a free page has no owner and no reference; a page has
 *                       at most one owner; list membership agrees with flags
 *   owned-page-placed   a driver's page is on its list xor isolated
 *   isolated-once       a driver's isolated_pages equals its PG_isolated pages
 *   balanced-at-end     at the end every page is free or owned with exactly its
 *                       owner's references, nothing isolated, locked or leaked
 *   verify-machine      the allocator's own CONFIG_DEBUG_VM checks (debug_vm.ts)
 */

import { UNLOCKED_LIST_STORE } from "../kernel/balloon_compaction.ts";
import { KernelBug } from "../kernel/bug.ts";
import { verify_machine } from "../kernel/debug_vm.ts";
import { LIST_POISON1 } from "../kernel/list.ts";
import { NR_LRU_LISTS } from "../kernel/mm/lru.ts";
import { owner_refs } from "../kernel/mm/owner.ts";
import { MIGRATE_TYPES, NR_PAGE_ORDERS, NR_PCP_LISTS } from "../kernel/mmzone.ts";
import { PageLocked, PageLRU, PGTY_buddy } from "../kernel/page.ts";
import { pindex_to_order } from "../kernel/page_alloc/pcp.ts";
import type { Invariant, World } from "./world.ts";

// ---- the census ---------------------------------------------------------------

export const PLACE_NONE = -1;
export const PLACE_FREE = 1;
export const PLACE_PCP = 2;
export const PLACE_LRU = 3;
/** + driver index */
export const PLACE_DRIVER = 100;
/** + worker index */
export const PLACE_THREAD = 200;

export const OWNER_NONE = -1;
/** + process index (drivers are 0..) */
export const OWNER_PROCESS = 100;

export interface Census {
  place: Int32Array;
  owner: Int32Array;
  /** The first problem found while walking, or null. */
  links: string | null;
  /**
   * A thread is between two stores of an unlocked list update (a dropped
   * pages-lock rule, balloon_compaction.ts lockless_list_del): the lists
   * are legitimately half updated, so checks of links and places wait
   * until the last store (a tear it leaves is still there then, and the
   * end check sees every list with nothing in flight).
   */
  partial: boolean;
  owners: string | null;
}

function walk(w: World, c: Census, head: number, place: number, len: number): void {
  if (c.links) return;
  const mem = w.m.mem;
  const nr = mem.nr_pages;
  const bound = nr + 1;
  let prev = head;
  let n = 0;
  for (let e = mem.lru_next[head]; e !== head; e = mem.lru_next[e]) {
    if (e < 0 || e >= nr || mem.lru_prev[e] !== prev) {
      const what = e === LIST_POISON1 ? "a poisoned link" : e < 0 ? `link ${e}` : `pfn ${e}`;
      c.links = `list at slot ${head}: after ${prev < nr ? `pfn ${prev}` : `slot ${prev}`} comes ${what}${e >= 0 && e < nr ? ` whose prev is ${mem.lru_prev[e]}` : ""}`;
      return;
    }
    if (++n > bound) {
      c.links = `list at slot ${head} does not come back to its head`;
      return;
    }
    for (let p = e; p < e + len && p < nr; p++) {
      if (c.place[p] !== PLACE_NONE) {
        c.links = `pfn ${p} is on two lists (places ${c.place[p]} and ${place})`;
        return;
      }
      c.place[p] = place;
    }
    prev = e;
  }
}

/** The list heads a census walks, with their place and block size (per World). */
interface Head {
  head: number;
  place: number;
  order: number;
}
const heads_of = new WeakMap<World, Head[]>();

function list_heads(w: World): Head[] {
  let heads = heads_of.get(w);
  if (heads) return heads;
  heads = [];
  // Module constants read once (imported bindings are getters under the transpiler).
  const nr_orders = NR_PAGE_ORDERS;
  const nr_mt = MIGRATE_TYPES;
  const nr_pcp = NR_PCP_LISTS;
  for (const zone of w.m.populated) {
    for (let order = 0; order < nr_orders; order++) {
      for (let mt = 0; mt < nr_mt; mt++)
        heads.push({ head: zone.free_list(order, mt), place: PLACE_FREE, order });
    }
    for (const pcp of zone.per_cpu_pageset) {
      for (let i = 0; i < nr_pcp; i++) {
        heads.push({ head: pcp.lists_base + i, place: PLACE_PCP, order: pindex_to_order(w.m, i) });
      }
    }
  }
  for (const lruvec of w.mm.lruvecs) {
    for (let lru = 0; lru < NR_LRU_LISTS; lru++)
      heads.push({ head: lruvec.lists[lru], place: PLACE_LRU, order: 0 });
  }
  w.drivers.forEach((d, i) => {
    heads.push({ head: d.pages, place: PLACE_DRIVER + i, order: 0 });
  });
  w.ctxs.forEach((t, i) => {
    heads.push({ head: t.list, place: PLACE_THREAD + i, order: 0 });
  });
  heads_of.set(w, heads);
  return heads;
}

/** Where every page is and who owns it. */
export function census(w: World): Census {
  const mem = w.m.mem;
  const nr = mem.nr_pages;
  const c: Census = {
    place: new Int32Array(nr).fill(PLACE_NONE),
    owner: new Int32Array(nr).fill(OWNER_NONE),
    links: null,
    owners: null,
    partial: list_update_in_flight(w),
  };
  for (const h of list_heads(w)) {
    if (mem.lru_next[h.head] === h.head && mem.lru_prev[h.head] === h.head) continue;
    walk(w, c, h.head, h.place, 1 << h.order);
  }
  for (let i = 0; i < w.drivers.length; i++) {
    const d = w.drivers[i];
    for (const p of d.slots) own(c, p, i, d.name);
  }
  for (let i = 0; i < w.processes.length; i++) {
    const as = w.processes[i];
    for (const p of as.pages) own(c, p, OWNER_PROCESS + i, as.name);
  }
  return c;
}

/** Whether some thread's next step is a store of an unlocked list update (Census.partial). */
export function list_update_in_flight(w: World): boolean {
  for (const t of w.e.threads)
    if (!t.done && t.started && t.field.startsWith(UNLOCKED_LIST_STORE)) return true;
  return false;
}

function own(c: Census, pfn: number, who: number, name: string): void {
  if (pfn < 0 || c.owners) return;
  if (c.owner[pfn] !== OWNER_NONE)
    c.owners = `pfn ${pfn} has two owners (${c.owner[pfn]} and ${name})`;
  else c.owner[pfn] = who;
}

// ---- the registry ---------------------------------------------------------------

const INVARIANTS: Invariant[] = [];

/** Add an invariant checked in every era (names are unique). */
export function register_invariant(inv: Invariant): void {
  if (INVARIANTS.some((i) => i.name === inv.name)) {
    throw new Error(`invariant '${inv.name}' registered twice`);
  }
  INVARIANTS.push(inv);
}

export function invariants(): readonly Invariant[] {
  return INVARIANTS;
}

/**
 * The census of the state being checked, computed once per check round
 * (the state changes only by steps); invariants share it and must not
 * change it.
 */
let cached: { w: World; steps: number; c: Census } | null = null;
export function census_of(w: World): Census {
  if (cached && cached.w === w && cached.steps === w.e.steps) return cached.c;
  const c = census(w);
  cached = { w, steps: w.e.steps, c };
  return c;
}

register_invariant({
  name: "list-links-intact",
  text: "every list is circular and doubly linked and holds no page twice",
  when: "step",
  check: (w) => {
    const c = census_of(w);
    return c.partial ? null : c.links;
  },
});

register_invariant({
  name: "refcount-nonneg",
  text: "no page has a negative refcount",
  when: "step",
  check: (w) => {
    const rc = w.m.mem._refcount;
    for (let p = 0; p < rc.length; p++) if (rc[p] < 0) return `pfn ${p} has refcount ${rc[p]}`;
    return null;
  },
});

register_invariant({
  name: "page-in-one-place",
  text: "a free page has no owner and no reference, a page has one owner at most, and list membership agrees with the page's flags",
  when: "step",
  check: (w) => {
    const c = census_of(w);
    if (c.links || c.partial) return null; // reported by list-links-intact
    if (c.owners) return c.owners;
    const mem = w.m.mem;
    for (let p = 0; p < mem.nr_pages; p++) {
      const pl = c.place[p];
      const ow = c.owner[p];
      if (pl === PLACE_FREE || pl === PLACE_PCP) {
        if (ow !== OWNER_NONE) return `pfn ${p} is free but still owned (owner ${ow})`;
        if (mem._refcount[p] !== 0) return `pfn ${p} is free with refcount ${mem._refcount[p]}`;
      } else if (pl === PLACE_LRU) {
        if (!PageLRU(mem, p)) return `pfn ${p} is on an LRU list without PG_lru`;
      } else if (pl >= PLACE_THREAD) {
        if (PageLRU(mem, p))
          return `pfn ${p} is isolated by ${w.ctxs[pl - PLACE_THREAD].name} but has PG_lru`;
        if (mem._refcount[p] < 1) return `pfn ${p} is isolated with refcount ${mem._refcount[p]}`;
      } else if (pl >= PLACE_DRIVER) {
        const d = w.drivers[pl - PLACE_DRIVER];
        if (ow !== pl - PLACE_DRIVER && d.pages_lock.owner === -1) {
          return `pfn ${p} is on ${d.name}'s list but ${d.name} does not own it`;
        }
      }
      if (pl !== PLACE_FREE && pl !== PLACE_PCP && mem.page_type[p] === PGTY_buddy) {
        return `pfn ${p} is PageBuddy but on no free list`;
      }
    }
    return null;
  },
});

register_invariant({
  name: "owned-page-placed",
  text: "while its pages_lock is free, each page a driver owns is on the driver's list or isolated by the VM, not both",
  when: "step",
  check: (w) => {
    const c = census_of(w);
    if (c.links || c.partial) return null;
    const mem = w.m.mem;
    for (let i = 0; i < w.drivers.length; i++) {
      const d = w.drivers[i];
      if (d.pages_lock.owner !== -1) continue;
      for (const p of d.slots) {
        if (p < 0) continue;
        const on_list = c.place[p] === PLACE_DRIVER + i;
        const isolated = w.mm.era.PageIsolated(mem, p);
        if (on_list && isolated) return `pfn ${p} is on ${d.name}'s list and isolated`;
        if (!on_list && !isolated)
          return `pfn ${p} belongs to ${d.name} but is neither on its list nor isolated`;
        if (mem._refcount[p] < 1)
          return `pfn ${p} belongs to ${d.name} with refcount ${mem._refcount[p]}`;
      }
    }
    return null;
  },
});

register_invariant({
  name: "isolated-once",
  text: "while its pages_lock is free, a driver's isolated_pages equals the number of its pages the VM has isolated",
  when: "step",
  check: (w) => {
    const mem = w.m.mem;
    for (const d of w.drivers) {
      if (d.pages_lock.owner !== -1) continue;
      let n = 0;
      for (const p of d.slots) if (p >= 0 && w.mm.era.PageIsolated(mem, p)) n++;
      if (d.isolated_pages !== n) {
        return `${d.name}: isolated_pages = ${d.isolated_pages} but ${n} of its pages are isolated`;
      }
    }
    return null;
  },
});

register_invariant({
  name: "balanced-at-end",
  text: "when every thread has finished, each page is free, or owned and holding exactly its owner's references; nothing is isolated, locked or leaked",
  when: "end",
  check: (w) => {
    const c = census_of(w);
    if (c.links) return c.links;
    const mem = w.m.mem;
    for (const t of w.ctxs) {
      if (mem.lru_next[t.list] !== t.list)
        return `${t.name} finished with pages on its isolation list`;
    }
    for (let p = 0; p < mem.nr_pages; p++) {
      const pl = c.place[p];
      if (pl === PLACE_FREE || pl === PLACE_PCP) continue;
      if (w.mm.era.PageIsolated(mem, p)) return `pfn ${p} is still isolated`;
      if (PageLocked(mem, p)) return `pfn ${p} is still locked`;
      const ow = c.owner[p];
      if (ow === OWNER_NONE)
        return `pfn ${p} is leaked: refcount ${mem._refcount[p]}, owned by nobody, on no free list`;
      const want = ow >= OWNER_PROCESS ? owner_refs(w.mm, p) : 1;
      if (mem._refcount[p] !== want)
        return `pfn ${p} has refcount ${mem._refcount[p]}, its owner accounts for ${want}`;
    }
    return null;
  },
});

register_invariant({
  name: "verify-machine",
  text: "the allocator's CONFIG_DEBUG_VM checks (debug_vm.ts verify_machine)",
  when: "end",
  check: (w) => {
    try {
      verify_machine(w.m);
      return null;
    } catch (e) {
      if (e instanceof KernelBug) return e.message;
      throw e;
    }
  },
});
