/**
 * check/threads.ts: the registry of thread kinds the checker can run, and
 * the kinds that exist before the balloon lands. Each kind runs the real
 * kernel paths (movable_ops.ts, migrate.ts, mm/lru.ts, mm/owner.ts, the
 * toy driver) as one thread; the explorer decides how they interleave.
 *
 *   compact      the migration scanner's work on the configured pages:
 *                isolate each movable_ops or LRU page (the branch of
 *                isolate_migratepages_block), migrate_pages() them to new
 *                pages (MIGRATE_ASYNC), put back what failed
 *   putback      isolate one driver page; compaction_alloc() may find no
 *                target (rt.choose): then the page goes straight back
 *                (putback_movable_pages), else it is migrated
 *   deflate      the driver takes back and frees one of its pages (like a
 *                balloon deflate: balloon_page_dequeue + free)
 *   inflate      the driver allocates and enqueues a new page (like a
 *                balloon inflate: balloon_page_enqueue)
 *   isolate_lru  a process page looked up under the page table lock,
 *                referenced, isolated from the LRU and put back
 *   free         the process unmaps one page (munmap): its last
 *                reference frees it
 *
 * Thread n of a kind works on slot / page n modulo the configured pages;
 * inflate fills new slots after them.
 *
 * Rule for bodies: read shared state only after announcing a step that
 * names it (the explorer sees a step's reads through its announcement
 * only; see runner.ts). A body's first step (up to its first announcement)
 * must not read what other threads change.
 *
 * To add a kind (the balloon's inflate, deflate and host ack): write a
 * ThreadKind (world.ts) whose prepare() creates the device once (keep it in
 * w.ext and push a DriverView on w.drivers so the invariants see it) and
 * whose body runs the kernel path, then register_thread_kind() it and list
 * its name in the era's `threads` (eras.ts).
 */

import { ToyMovable } from "../kernel/drivers/toy_movable.ts";
import { GFP_HIGHUSER_MOVABLE } from "../kernel/gfp.ts";
import { list_add, list_empty } from "../kernel/list.ts";
import {
  MIGRATE_ASYNC,
  MR_COMPACTION,
  migrate_pages,
  putback_movable_pages,
} from "../kernel/migrate.ts";
import { isolate_lru_page_to_list, put_page_lru, this_cpu } from "../kernel/mm/lru.ts";
import { do_anonymous_page, mm_new_process, zap_anon_page } from "../kernel/mm/owner.ts";
import { __PageMovable, isolate_movable_page } from "../kernel/movable_ops.ts";
import { PAGE_MAPPING_ANON, PageLRU, type Pfn } from "../kernel/page.ts";
import { alloc_pages } from "../kernel/page_alloc/alloc.ts";
import { OP_READ, type Runtime, type Step } from "../runtime/runtime.ts";
import type { ThreadCtx, ThreadKind, World } from "./world.ts";

const THREAD_KINDS = new Map<string, ThreadKind>();

/** Add a kind to the registry (names are unique). */
export function register_thread_kind(k: ThreadKind): void {
  if (THREAD_KINDS.has(k.name)) throw new Error(`thread kind '${k.name}' registered twice`);
  THREAD_KINDS.set(k.name, k);
}

export function thread_kind(name: string): ThreadKind | undefined {
  return THREAD_KINDS.get(name);
}

/** Every registered kind, in registration order. */
export function thread_kinds(): ThreadKind[] {
  return [...THREAD_KINDS.values()];
}

// ---- shared setup -----------------------------------------------------------

const TOY = "toy";

/** The toy driver, with `pages` pages in slots 0.. (created once per World). */
export function toy_driver(w: World): ToyMovable {
  let d = w.ext.get(TOY) as ToyMovable | undefined;
  if (d) return d;
  const pages = w.cfg.pages;
  d = new ToyMovable(w.mm, "toy", pages + w.cfg.threads.length);
  w.ext.set(TOY, d);
  w.drivers.push(d);
  const drv = d;
  for (let s = 0; s < pages; s++) w.run_setup((rt) => drv.add_page(rt, w.mm, s, 100 + s));
  return d;
}

/** A process with `pages` anonymous pages on the LRU (created once per World). */
export function toy_process(w: World) {
  const have = w.processes[0];
  if (have) return have;
  const as = mm_new_process(w.mm, "proc", w.cfg.pages);
  w.processes.push(as);
  for (let v = 0; v < w.cfg.pages; v++)
    w.run_setup((rt) => do_anonymous_page(rt, w.mm, as, v, 200 + v));
  return as;
}

/** compaction_alloc(): a free page for migration, or -1 (the balloon kinds use it too). */
export function compaction_alloc(rt: Runtime, w: World): (src: Pfn) => Pfn {
  return () => alloc_pages(w.m, this_cpu(rt, w.m), GFP_HIGHUSER_MOVABLE, 0);
}

/**
 * The migration scanner's decision for one page (one pfn of
 * isolate_migratepages_block() in compaction.ts):
 * a lockless look, then isolate_movable_page() or isolate_lru_page(). True
 * if the page is now on ctx.list.
 */
function* isolate_migratepages_block(rt: Runtime, w: World, ctx: ThreadCtx, pfn: Pfn) {
  const mm = w.mm;
  const mem = w.m.mem;
  // Lockless: the page may change under us; everything is rechecked.
  yield* rt.access(OP_READ, pfn, "PG_lru");
  if (!PageLRU(mem, pfn)) {
    if (!__PageMovable(mm, pfn) || mm.era.PageIsolated(mem, pfn)) return false;
    if ((yield* isolate_movable_page(rt, mm, pfn, 0)) !== 0) return false;
    list_add(mem, pfn, ctx.list);
    return true;
  }
  // The scanner's pin pre-check for anonymous pages.
  if (mem.mapping[pfn] & PAGE_MAPPING_ANON && mem._refcount[pfn] > mem._mapcount[pfn] + 1)
    return false;
  return (yield* isolate_lru_page_to_list(rt, mm, pfn, ctx.list)) === 0;
}

/** migrate_pages() then putback_movable_pages() of what is left (compact_zone; the balloon kinds use it too). */
export function* migrate_list(rt: Runtime, w: World, ctx: ThreadCtx): Step {
  if (list_empty(w.m.mem, ctx.list)) return;
  yield* migrate_pages(
    rt,
    w.mm,
    ctx.list,
    compaction_alloc(rt, w),
    null,
    MIGRATE_ASYNC,
    MR_COMPACTION,
  );
  yield* putback_movable_pages(rt, w.mm, ctx.list);
}

// ---- the kinds -----------------------------------------------------------------

register_thread_kind({
  name: "compact",
  text: "compaction: isolate the configured driver and LRU pages, migrate them, put back failures",
  prepare: (w) => void toy_driver(w),
  body: (w, ctx) =>
    function* (rt) {
      for (const pfn of w.scan_pfns) yield* isolate_migratepages_block(rt, w, ctx, pfn);
      yield* migrate_list(rt, w, ctx);
    },
});

register_thread_kind({
  name: "putback",
  text: "isolate one driver page; with no migration target (rt.choose) put it back, else migrate it",
  prepare: (w) => void toy_driver(w),
  body: (w, ctx) =>
    function* (rt) {
      const drv = toy_driver(w);
      const slot = ctx.index % w.cfg.pages;
      // Announce the look at the driver's page before reading its slot.
      yield* rt.access(OP_READ, Math.max(drv.slots[slot], 0), "private");
      const pfn = drv.slots[slot];
      if (pfn < 0 || !(yield* isolate_migratepages_block(rt, w, ctx, pfn))) return;
      if (rt.choose(2) === 0) yield* putback_movable_pages(rt, w.mm, ctx.list);
      else yield* migrate_list(rt, w, ctx);
    },
});

register_thread_kind({
  name: "deflate",
  text: "the driver takes back one of its pages and frees it (balloon deflate)",
  prepare: (w) => void toy_driver(w),
  body: (w, ctx) =>
    function* (rt) {
      yield* toy_driver(w).remove_page(rt, w.mm, ctx.index % w.cfg.pages);
    },
});

register_thread_kind({
  name: "inflate",
  text: "the driver allocates a page and enqueues it (balloon inflate)",
  prepare: (w) => void toy_driver(w),
  body: (w, ctx) =>
    function* (rt) {
      yield* toy_driver(w).add_page(rt, w.mm, w.cfg.pages + ctx.index, 300 + ctx.index);
    },
});

register_thread_kind({
  name: "isolate_lru",
  text: "look a process page up (page table lock), reference it, isolate it from the LRU, put it back",
  prepare: (w) => void toy_process(w),
  body: (w, ctx) =>
    function* (rt) {
      const as = toy_process(w);
      const v = ctx.index % w.cfg.pages;
      const mem = w.m.mem;
      // follow_page() under the page table lock: read the pte, take a reference.
      yield* rt.access(OP_READ, Math.max(as.pages[v], 0), "pte");
      const pfn = as.pages[v];
      if (pfn < 0) return;
      mem._refcount[pfn]++;
      const rc = yield* isolate_lru_page_to_list(rt, w.mm, pfn, ctx.list);
      yield* put_page_lru(rt, w.mm, pfn);
      if (rc === 0) yield* putback_movable_pages(rt, w.mm, ctx.list);
    },
});

register_thread_kind({
  name: "free",
  text: "the process unmaps one of its pages (munmap); the last reference frees it",
  prepare: (w) => void toy_process(w),
  body: (w, ctx) =>
    function* (rt) {
      yield* zap_anon_page(rt, w.mm, toy_process(w), ctx.index % w.cfg.pages);
    },
});
