/**
 * check/balloon_kinds.ts: the balloon's thread kinds and invariants for the
 * model checker, in every era of kernel/eras/index.ts. The kinds run the
 * real balloon_compaction.ts, movable_ops.ts and migrate.ts paths against
 * one balloon device with a small driver shaped like virtio-balloon (its
 * migratepage is virtballoon_migratepage() without virtqueues: telling the
 * host is one step that changes the frame's state at once, the host's ack).
 *
 *   balloon_inflate  fill_balloon() of one page: balloon_page_alloc(),
 *                    balloon_page_enqueue(), tell the host (it discards
 *                    the frame); under the driver's balloon_lock
 *   balloon_deflate  leak_balloon() of one page: balloon_page_dequeue(),
 *                    tell the host (it backs the frame again), then free
 *                    the page (release_pages_balloon: put_page)
 *   balloon_compact  compaction's scan of the balloon pages: the lockless
 *                    test (movable_page_candidate), isolate_movable_page(),
 *                    then migrate_pages() to a free target page and
 *                    putback_movable_pages() of what failed
 *   balloon_putback  isolate one balloon page; with no target (rt.choose)
 *                    put it back at once, else migrate it
 *   balloon_free     page freeing: the guest's process (one anonymous LRU
 *                    page per configured page, made at setup) unmaps its
 *                    page n (zap_anon_page: the last put_page frees it to
 *                    the allocator's pcp list). Compaction's scan visits
 *                    that pfn too (it was a process page at setup): its
 *                    lockless PG_lru read and movable test, and in 2012
 *                    and 2014 balloon_page_isolate()'s get_page_unless_zero,
 *                    race with the LRU removal and the free. The freed
 *                    frame goes to the freeing CPU's pcp list, and every
 *                    checker thread has a CPU of its own, so an inflation
 *                    never takes that very frame here (it would need a
 *                    pcp drain or a shared CPU). This is the freeing that
 *                    matters in these eras: a deflated balloon page's own
 *                    release is already the deflate's last step (put_page
 *                    after balloon_lock), interleaved with everything.
 *   balloon_host     the host acknowledging, as a thread of its own: with
 *                    it in the configuration, telling the host is a
 *                    request the guest posts in the frame's content word
 *                    (HOST_REQ_DISCARD / HOST_REQ_BACK; tell_host()) and
 *                    then a wait_event() for the ack, as virtio's
 *                    tell_host() adds the pfns to the virtqueue, kicks and
 *                    waits; the host thread waits for any request, takes
 *                    the lowest pfn asking and acknowledges it by changing
 *                    the frame (DISCARDED, or backed: 0), until every other
 *                    worker has finished. Its look for requests reads every
 *                    page's content in one step, so the footprints see it
 *                    depend on every post. Without it (the standard
 *                    configurations) telling the host is one step, the
 *                    request and the ack at once. (This kind found a
 *                    hole in DPOR, since mended in check/explore.ts:
 *                    README "Fidelity > Model checker".)
 *
 * The host's frame state lives in the page's content (mem.content, which
 * the checker's footprints track): DISCARDED while the host has taken the
 * frame, anything else when it backs it. Setup inflates `pages` pages.
 *
 * Locks: balloon_lock (a mutex) around inflate, deflate and the driver's
 * migratepage (a trylock there, as virtio does), then the era's locks.
 * Invariants (balloon_invariants(); each returns null or what is wrong):
 *   balloon-listed-identity  every page on the device list carries the
 *                            era's balloon identity for this device and no
 *                            isolated mark (verify_balloon_dev_info)
 *   balloon-one-place        each page of the device is on its list, or
 *                            isolated by exactly one worker (on its list or
 *                            in flight in its hands), never both
 *   balloon-isolated-count   isolated_pages equals the isolated pages of
 *                            the device (while its pages lock is free)
 *   balloon-host-discarded   the guest never frees or reuses a frame the
 *                            host discarded: such a frame is a balloon
 *                            page, or held by the deflater telling the host
 *   balloon-end-accounted    at the end the list and isolated_pages account
 *                            for every page inflated and not deflated
 * The checker's own invariants (list links, one place, refcounts balanced
 * at the end, verify_machine) see the device as a DriverView.
 */

import {
  BalloonCompaction,
  type BalloonDevInfo,
  balloon_devinfo_init,
  balloon_page_alloc,
  balloon_page_delete,
  balloon_page_dequeue,
  balloon_page_device,
  balloon_page_enqueue,
  balloon_page_free,
  balloon_page_insert,
  PageBalloon,
} from "../kernel/balloon_compaction.ts";
import { era_by_name } from "../kernel/eras/index.ts";
import { EAGAIN } from "../kernel/errno.ts";
import { list_add, list_count_nodes } from "../kernel/list.ts";
import { putback_movable_pages } from "../kernel/migrate.ts";
import { put_page } from "../kernel/mm/lru.ts";
import { zap_anon_page } from "../kernel/mm/owner.ts";
import { isolate_movable_page, movable_page_candidate } from "../kernel/movable_ops.ts";
import { PageLRU, type Pfn } from "../kernel/page.ts";
import { era_rules, rule_names } from "../kernel/rules.ts";
import {
  type Lock,
  OP_READ,
  OP_WRITE,
  type Runtime,
  type Step,
  type StepOf,
} from "../runtime/runtime.ts";
import { census_of, PLACE_DRIVER, PLACE_FREE, PLACE_PCP, PLACE_THREAD } from "./invariants.ts";
import { migrate_list, toy_process } from "./threads.ts";
import type {
  CheckEra,
  DriverView,
  Invariant,
  RuleWitness,
  ThreadCtx,
  ThreadKind,
  Variant,
  World,
} from "./world.ts";

/** The content of a frame the host has discarded. */
export const DISCARDED = 0xdead;
/** A frame the guest asked the host to discard (inflate), not yet acknowledged (balloon_host). */
export const HOST_REQ_DISCARD = 0xd15c;
/** A discarded frame the guest asked the host to back again (deflate), not yet acknowledged. */
export const HOST_REQ_BACK = 0xbac;
/** Requests one host thread serves at most (each worker posts a few). */
const HOST_REQUESTS_MAX = 64;
const EXT = "balloon";

/** The balloon of one World, shared by the kinds (w.ext). */
export interface BalloonRig {
  readonly bc: BalloonCompaction;
  readonly b: BalloonDevInfo;
  readonly balloon_lock: Lock;
  readonly view: BalloonView;
  /** Pages inflated minus pages deflated (the driver's num_pages). */
  num_pages: number;
  /** A balloon_host thread acknowledges requests (set after setup's inflations). */
  host: boolean;
}

/**
 * The device as the checker's invariants see a driver. A page whose
 * migration is half done (the new page is listed and isolated_pages
 * already counts it out, the old page is not yet deleted) is in flight in
 * the migrating thread's hands, not the device's.
 */
export class BalloonView implements DriverView {
  readonly name = "balloon";
  /** Old pages between insert(new) and delete(old) in migratepage. */
  readonly handing_over = new Set<number>();
  private slots_at = -1;
  private slots_cache: Int32Array = new Int32Array(0);
  constructor(
    readonly bc: BalloonCompaction,
    readonly b: BalloonDevInfo,
    /** The execution's step count: the state changes only by steps. */
    private readonly steps: () => number,
  ) {}
  get pages(): number {
    return this.b.pages;
  }
  get pages_lock(): Lock {
    return this.b.pages_lock;
  }
  get isolated_pages(): number {
    return this.b.isolated_pages;
  }
  /** The pages the device owns now: the era's identity names it. */
  get slots(): Int32Array {
    const at = this.steps();
    if (at !== this.slots_at) {
      this.slots_cache = this.owned();
      this.slots_at = at;
    }
    return this.slots_cache;
  }
  private owned(): Int32Array {
    const mem = this.bc.mm.m.mem;
    const out: number[] = [];
    for (let p = 0; p < mem.nr_pages; p++)
      if (
        PageBalloon(this.bc, p) &&
        balloon_page_device(this.bc, p) === this.b &&
        !this.handing_over.has(p)
      )
        out.push(p);
    return Int32Array.from(out);
  }
}

/**
 * Tell the host about one frame: it discards it (inflate) or backs it
 * again. One step when nothing else plays the host; with a balloon_host
 * thread, post the request and wait_event() for its ack.
 */
function* tell_host(rt: Runtime, w: World, pfn: Pfn, inflate: boolean): Step {
  yield* rt.access(OP_WRITE, pfn, "content");
  const content = w.m.mem.content;
  if (!content) return;
  if (!rig_of(w)?.host) {
    content[pfn] = inflate ? DISCARDED : 0;
    return;
  }
  content[pfn] = inflate ? HOST_REQ_DISCARD : HOST_REQ_BACK;
  const acked = inflate ? DISCARDED : 0;
  // Read the array afresh: during a step it is the footprints' recording proxy.
  yield* rt.wait_event(pfn, "content", () => w.m.mem.content?.[pfn] === acked);
}

/** The lowest pfn with a request for the host, or -1. */
function host_request(content: Uint32Array): number {
  for (let p = 0; p < content.length; p++)
    if (content[p] === HOST_REQ_DISCARD || content[p] === HOST_REQ_BACK) return p;
  return -1;
}

/** The host thread: acknowledge requests until every other worker has finished. */
function* balloon_host(rt: Runtime, w: World, ctx: ThreadCtx): Step {
  const mem = w.m.mem;
  if (!mem.content) return;
  const others = w.ctxs.filter((c) => c !== ctx).map((c) => c.tid);
  const idle = () => others.every((t) => w.e.threads[t].done);
  // mem.content is read afresh after every yield: during a step it is the
  // footprints' recording proxy (check/reads.ts), so the look for requests
  // is seen to read every page.
  for (let n = 0; n < HOST_REQUESTS_MAX; n++) {
    yield* rt.wait_event(-1, "virtqueue", () => host_request(mem.content!) >= 0 || idle());
    const p = host_request(mem.content!);
    if (p < 0) return;
    yield* rt.access(OP_WRITE, p, "content");
    const content = mem.content!;
    content[p] = content[p] === HOST_REQ_DISCARD ? DISCARDED : 0;
  }
  throw new Error(`balloon_host: more than ${HOST_REQUESTS_MAX} requests`);
}

/**
 * The driver's migratepage: virtballoon_migratepage() without virtqueues.
 * Trylock balloon_lock (-EAGAIN), take the balloon's reference of the new
 * page, insert it and uncount the isolated page under the pages lock, tell
 * the host to take the new frame, delete the old page, tell the host to
 * back the old frame, drop the old page's balloon reference.
 */
function* balloon_check_migratepage(
  rt: Runtime,
  w: World,
  r: BalloonRig,
  newpage: Pfn,
  page: Pfn,
): StepOf<number> {
  const { bc, b } = r;
  const mem = w.m.mem;
  if (!(yield* rt.mutex_trylock(r.balloon_lock))) return -EAGAIN;
  mem._refcount[newpage]++;
  const flags = yield* rt.spin_lock_irqsave(b.pages_lock);
  balloon_page_insert(rt, bc, b, newpage);
  b.isolated_pages--;
  r.view.handing_over.add(page);
  yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  yield* tell_host(rt, w, newpage, true);
  const del_flags = bc.era.delete_under_pages_lock ? yield* rt.spin_lock_irqsave(b.pages_lock) : 0;
  balloon_page_delete(rt, bc, page);
  r.view.handing_over.delete(page);
  if (bc.era.delete_under_pages_lock) yield* rt.spin_unlock_irqrestore(b.pages_lock, del_flags);
  yield* tell_host(rt, w, page, false);
  yield* rt.mutex_unlock(r.balloon_lock);
  put_page(rt, bc.mm, page);
  return 0;
}

/** The World's balloon, created once (setup inflates cfg.pages pages). */
export function balloon_rig(w: World): BalloonRig {
  const have = w.ext.get(EXT) as BalloonRig | undefined;
  if (have) return have;
  const era = era_by_name(w.cfg.era);
  if (w.mm.era !== era.movable)
    throw new Error(`balloon kinds: the World's core is era ${w.mm.era.name}, not ${w.cfg.era}`);
  const bc = new BalloonCompaction(w.mm, { era: era.balloon });
  const b = balloon_devinfo_init(bc, "balloon");
  const balloon_lock = w.mm.new_lock("vb->balloon_lock", "mutex");
  const r: BalloonRig = {
    bc,
    b,
    balloon_lock,
    view: new BalloonView(bc, b, () => w.e.steps),
    num_pages: 0,
    host: false,
  };
  b.migratepage = (rt, _b, newpage, page) => balloon_check_migratepage(rt, w, r, newpage, page);
  w.ext.set(EXT, r);
  w.drivers.push(r.view);
  for (let i = 0; i < w.cfg.pages; i++) w.run_setup((rt) => inflate_one(rt, w, r));
  return r;
}

/** fill_balloon() of one page: 1 if a page joined the balloon. */
function* inflate_one(rt: Runtime, w: World, r: BalloonRig): StepOf<number> {
  yield* rt.mutex_lock(r.balloon_lock);
  const pfn = balloon_page_alloc(rt, r.bc);
  if (pfn >= 0) {
    yield* balloon_page_enqueue(rt, r.bc, r.b, pfn);
    r.num_pages++;
    yield* tell_host(rt, w, pfn, true);
  }
  yield* rt.mutex_unlock(r.balloon_lock);
  return pfn >= 0 ? 1 : 0;
}

/** isolate_migratepages_block() for one pfn: the lockless tests, then isolation. */
function* scan_one(rt: Runtime, w: World, ctx: ThreadCtx, pfn: Pfn) {
  const mm = w.mm;
  const mem = w.m.mem;
  // Lockless: anything seen here is rechecked (or, rule dropped, trusted).
  yield* rt.access(OP_READ, pfn, "PG_lru");
  if (PageLRU(mem, pfn) || !movable_page_candidate(mm, pfn)) return false;
  if ((yield* isolate_movable_page(rt, mm, pfn, 0)) !== 0) return false;
  list_add(mem, pfn, ctx.list);
  return true;
}

export const BALLOON_KINDS: readonly ThreadKind[] = [
  {
    name: "balloon_inflate",
    text: "fill_balloon() of one page: balloon_page_alloc, balloon_page_enqueue, the host discards the frame",
    prepare: (w) => void balloon_rig(w),
    body: (w) =>
      function* (rt) {
        yield* inflate_one(rt, w, balloon_rig(w));
      },
  },
  {
    name: "balloon_deflate",
    text: "leak_balloon() of one page: balloon_page_dequeue, the host backs the frame again, put_page frees it",
    prepare: (w) => void balloon_rig(w),
    body: (w) =>
      function* (rt) {
        const r = balloon_rig(w);
        yield* rt.mutex_lock(r.balloon_lock);
        const pfn = yield* balloon_page_dequeue(rt, r.bc, r.b);
        if (pfn >= 0) {
          r.num_pages--;
          yield* tell_host(rt, w, pfn, false);
        }
        yield* rt.mutex_unlock(r.balloon_lock);
        if (pfn >= 0) balloon_page_free(rt, r.bc, pfn);
      },
  },
  {
    name: "balloon_compact",
    text: "compaction: isolate the balloon pages (lockless test, isolate_movable_page), migrate_pages them, put back failures",
    prepare: (w) => void balloon_rig(w),
    body: (w, ctx) =>
      function* (rt) {
        for (const pfn of w.scan_pfns) yield* scan_one(rt, w, ctx, pfn);
        yield* migrate_list(rt, w, ctx);
      },
  },
  {
    name: "balloon_putback",
    text: "isolate one balloon page; with no migration target (rt.choose) put it back, else migrate it",
    prepare: (w) => void balloon_rig(w),
    body: (w, ctx) =>
      function* (rt) {
        const pfn = w.scan_pfns[ctx.index % Math.max(1, w.scan_pfns.length)];
        if (pfn === undefined || !(yield* scan_one(rt, w, ctx, pfn))) return;
        if (rt.choose(2) === 0) yield* putback_movable_pages(rt, w.mm, ctx.list);
        else yield* migrate_list(rt, w, ctx);
      },
  },
  {
    name: "balloon_host",
    text: "the host as a thread: acknowledges each frame the guest asks it to discard or back again (the guest waits for the ack)",
    prepare: (w) => {
      balloon_rig(w).host = true;
    },
    body: (w, ctx) =>
      function* (rt) {
        yield* balloon_host(rt, w, ctx);
      },
  },
  {
    name: "balloon_free",
    text: "the guest's process unmaps one of its pages (munmap): the last put_page frees it, racing with compaction's lockless scan of that pfn",
    prepare: (w) => {
      balloon_rig(w);
      toy_process(w);
    },
    body: (w, ctx) =>
      function* (rt) {
        yield* zap_anon_page(rt, w.mm, toy_process(w), ctx.index % w.cfg.pages);
      },
  },
];

// ---- invariants -------------------------------------------------------------------

function rig_of(w: World): BalloonRig | null {
  return (w.ext.get(EXT) as BalloonRig | undefined) ?? null;
}

export const BALLOON_INVARIANTS: readonly Invariant[] = [
  {
    name: "balloon-listed-identity",
    text: "while the pages lock is free, every page on the device list is a balloon page of this device, not isolated, with a reference",
    when: "step",
    check: (w) => {
      const r = rig_of(w);
      if (!r || r.b.pages_lock.owner !== -1) return null;
      const c = census_of(w);
      if (c.links || c.partial) return null; // list-links-intact reports it
      const mem = w.m.mem;
      for (let p = mem.lru_next[r.b.pages]; p !== r.b.pages; p = mem.lru_next[p]) {
        if (!PageBalloon(r.bc, p) || balloon_page_device(r.bc, p) !== r.b)
          return `pfn ${p} is on the balloon list without the era's balloon identity`;
        if (w.mm.era.PageIsolated(mem, p)) return `pfn ${p} is on the balloon list and isolated`;
        if (mem._refcount[p] < 1)
          return `pfn ${p} is on the balloon list with refcount ${mem._refcount[p]}`;
      }
      if (list_count_nodes(mem, r.b.pages, mem.nr_pages) !== r.b.nr_listed)
        return `balloon list length differs from nr_listed ${r.b.nr_listed}`;
      return null;
    },
  },
  {
    name: "balloon-one-place",
    text: "while the pages lock is free, each page of the device is on its list or isolated by exactly one worker, never both, never on a free list",
    when: "step",
    check: (w) => {
      const r = rig_of(w);
      if (!r || r.b.pages_lock.owner !== -1) return null;
      const c = census_of(w);
      if (c.links || c.partial) return null;
      const mem = w.m.mem;
      const listed = PLACE_DRIVER + w.drivers.indexOf(r.view);
      for (const p of r.view.slots) {
        const pl = c.place[p];
        if (pl === PLACE_FREE || pl === PLACE_PCP) return `balloon pfn ${p} is on a free list`;
        const iso = w.mm.era.PageIsolated(mem, p);
        if (pl === listed && iso) return `balloon pfn ${p} is on the device list and isolated`;
        if (pl >= PLACE_THREAD && !iso)
          return `balloon pfn ${p} is on ${w.ctxs[pl - PLACE_THREAD].name}'s list but not isolated`;
      }
      return null;
    },
  },
  {
    name: "balloon-isolated-count",
    text: "while the pages lock is free, isolated_pages equals the device's isolated pages and is never negative",
    when: "step",
    check: (w) => {
      const r = rig_of(w);
      if (!r) return null;
      if (r.b.isolated_pages < 0) return `isolated_pages is ${r.b.isolated_pages}`;
      if (r.b.pages_lock.owner !== -1) return null;
      let n = 0;
      for (const p of r.view.slots) if (w.mm.era.PageIsolated(w.m.mem, p)) n++;
      return n === r.b.isolated_pages
        ? null
        : `isolated_pages = ${r.b.isolated_pages} but ${n} balloon pages are isolated`;
    },
  },
  {
    name: "balloon-host-discarded",
    text: "a frame the host discarded, or was asked to discard or back and has not acknowledged, is never free, on the LRU or owned by anyone but the balloon (or the deflater telling the host)",
    when: "step",
    check: (w) => {
      const r = rig_of(w);
      const content = w.m.mem.content;
      if (!r || !content) return null;
      const c = census_of(w);
      if (c.links || c.partial) return null;
      for (let p = 0; p < content.length; p++) {
        const v = content[p];
        if (v !== DISCARDED && v !== HOST_REQ_DISCARD && v !== HOST_REQ_BACK) continue;
        const pl = c.place[p];
        if (pl === PLACE_FREE || pl === PLACE_PCP || w.m.mem._refcount[p] === 0)
          return `pfn ${p}: the host discarded it but the guest freed it`;
        if (PageLRU(w.m.mem, p)) return `pfn ${p}: the host discarded it but it is on the LRU`;
      }
      return null;
    },
  },
  {
    name: "balloon-end-accounted",
    text: "at the end the device list plus isolated_pages holds every page inflated and not deflated, each with one reference",
    when: "end",
    check: (w) => {
      const r = rig_of(w);
      if (!r) return null;
      const mem = w.m.mem;
      const listed = list_count_nodes(mem, r.b.pages, mem.nr_pages);
      if (r.b.isolated_pages !== 0) return `isolated_pages is ${r.b.isolated_pages} at the end`;
      if (listed !== r.num_pages)
        return `the list holds ${listed} pages, the driver counts ${r.num_pages}`;
      const owned = r.view.slots.length;
      if (owned !== r.num_pages)
        return `${owned} pages carry the balloon identity, the driver counts ${r.num_pages}`;
      return null;
    },
  },
];

const COMPACT_DEFLATE = ["balloon_compact", "balloon_deflate"] as const;
const w = (
  threads: string[],
  pages: number,
  invariant: string,
  preemption_bound?: number,
): RuleWitness => ({
  threads,
  pages,
  invariant,
  ...(preemption_bound === undefined ? {} : { preemption_bound }),
});
/** Configurations of test/eras.test.ts: D compaction against deflation, E two putbacks. */
const D = [...COMPACT_DEFLATE];
const E = ["balloon_putback", "balloon_putback"];
/** B two compactions and a deflation, C two putbacks around a deflation (both on 2 pages). */
const B = ["balloon_compact", "balloon_compact", "balloon_deflate"];
const C = ["balloon_putback", "balloon_deflate", "balloon_putback"];

/**
 * Each era's standard configuration: compaction isolating and migrating a
 * balloon page, a deflation and an inflation, on one balloon page. Every
 * era's intact protocol from 2014 on passes it exhaustively. 2012 does not:
 * its balloon_page_dequeue() reads the list without pages_lock and never
 * asks whether the page it read was isolated meanwhile, so compaction plus
 * deflation on one page corrupts the migration list with every rule in
 * force (a real v3.8-v3.17 race, closed by the 2014 redesign's PagePrivate
 * test; test/check_eras.test.ts pins it). 2012's standard configuration is
 * therefore compaction against inflation. (Richer configurations are not
 * clean in 2014 either: the walk itself is unlocked until v4.8; README
 * "Eras".)
 */
const STANDARD = ["balloon_compact", "balloon_deflate", "balloon_inflate"];
export const BALLOON_STANDARD: Record<string, { threads: string[]; pages: number }> = {
  "2012": { threads: ["balloon_compact", "balloon_inflate"], pages: 1 },
  "2014": { threads: STANDARD, pages: 1 },
  "2016": { threads: STANDARD, pages: 1 },
  "2022": { threads: STANDARD, pages: 1 },
  "2025": { threads: STANDARD, pages: 1 },
  "2026": { threads: STANDARD, pages: 1 },
};

/**
 * For each rule, a small configuration that exhaustive search finishes in
 * which dropping it breaks the named invariant (tests and benchmarks use
 * these). null: no such configuration, either because the model does not
 * need the rule or because only randomized search on a larger
 * configuration finds the race (see the comments and README "Eras";
 * test/eras.test.ts covers every rule either way).
 */
export const BALLOON_WITNESSES: Record<string, Record<string, RuleWitness | null>> = {
  "2012": {
    // A torn list, E on 2 pages: without pages_lock one putback reads
    // head->next (the other page) for its list_add while the other isolates
    // that page; its stores then link the unlinked, poisoned page back in
    // (the unlocked update is its pointer stores: lockless_list_add).
    "pages-lock-held": w(E, 2, "list-links-intact"),
    // Within two preemptions, before the era's own dequeue race (see
    // BALLOON_STANDARD), which needs three on C.
    "page-lock-held": w(C, 2, "kernel-bug", 2),
    "recheck-count-under-page-lock": w(E, 1, "kernel-bug"),
    "dequeue-extra-ref": null,
  },
  "2014": {
    "pages-lock-held": w(E, 2, "list-links-intact"),
    "page-lock-held": w(D, 1, "kernel-bug"),
    "recheck-balloon-under-page-lock": w(E, 1, "kernel-bug"),
    "clear-private-flag-with-list-removal": w(D, 1, "balloon-listed-identity"),
    // The race is in reads the dequeue walk never announces: exhaustive search
    // finds it since footprints record every read (check/reads.ts).
    "dequeue-skips-isolated": w(D, 1, "list-links-intact"),
  },
  "2016": {
    "recheck-movable-under-page-lock": w(D, 1, "kernel-bug"),
    "recheck-isolated-under-page-lock": w(E, 1, "kernel-bug"),
    "dequeue-skips-isolated": null,
    // B on 2 pages is too large to exhaust; within three preemptions it is not.
    "pages-lock-held": w(B, 2, "kernel-bug", 3),
    "page-lock-held": w(D, 1, "kernel-bug"),
    // lock_page under pages_lock: might_sleep() with interrupts disabled, in
    // every schedule. With the report off (debug_atomic_sleep: false) D
    // deadlocks: BALLOON_DEADLOCK_WITNESSES.
    "dequeue-trylock-page": w(D, 1, "lock-bug"),
    "private-names-device": null,
  },
  "2022": {
    "recheck-movable-under-page-lock": w(D, 1, "kernel-bug"),
    "recheck-isolated-under-page-lock": w(E, 1, "kernel-bug"),
    "dequeue-skips-isolated": null,
    "pages-lock-held": w(B, 2, "kernel-bug", 3),
    "page-lock-held": w(D, 1, "kernel-bug"),
    "dequeue-trylock-page": w(D, 1, "lock-bug"),
    "private-names-device": null,
  },
  "2025": {
    "recheck-movable-under-page-lock": null,
    "recheck-isolated-under-page-lock": w(E, 1, "kernel-bug"),
    "pages-lock-held": w(B, 2, "kernel-bug", 3),
    "page-lock-held": w(D, 1, "kernel-bug"),
    "dequeue-trylock-page": w(D, 1, "lock-bug"),
    "private-names-device": null,
  },
  "2026": {
    "recheck-movable-under-page-lock": null,
    "recheck-isolated-under-page-lock": w(E, 1, "kernel-bug"),
    "pages-lock-held": w(C, 2, "list-links-intact", 2),
    "isolate-reads-private-under-lock": w(D, 1, "kernel-bug"),
    "private-names-device": w(D, 1, "kernel-bug"),
    "core-page-lock": w(E, 1, "kernel-bug"),
  },
};

/**
 * For the rules with no exhaustive witness, not even within a preemption
 * bound, that are needed all the same:
 * the configuration on which randomized search (PCT, seeds 1.., depths 3,
 * 2, 1, 300 executions each) breaks the named invariant without the rule.
 * test/eras.test.ts checks these (and that the configuration is clean
 * with the rule); the benchmark times the search. A rule in neither table
 * is not needed in the model (README "Eras").
 */
export const BALLOON_RANDOM_WITNESSES: Record<string, Record<string, RuleWitness>> = {
  "2012": {},
  "2014": {},
  "2016": {},
  "2022": {},
  "2025": {},
  "2026": {},
};

/**
 * A checker era for balloon era `name` (kernel/eras/index.ts): its core, its
 * rules, its variants (each drops its fix rules), the balloon kinds and
 * invariants, and a standard configuration.
 */
export function balloon_check_era(name: string): CheckEra {
  const info = era_by_name(name);
  const variants: Variant[] = info.variants.map((v) => ({
    name: v.name,
    text: v.description,
    apply: (w: World) => {
      for (const r of v.drops) w.mm.dropped_rules.add(r);
    },
  }));
  const witnesses: Record<string, RuleWitness> = {};
  for (const [rule, w] of Object.entries(BALLOON_WITNESSES[name] ?? {})) {
    if (w) witnesses[rule] = w;
  }
  return {
    name,
    era: info.movable,
    rules: [...info.rules],
    variants,
    standard: BALLOON_STANDARD[name] ?? { threads: [...COMPACT_DEFLATE], pages: 1 },
    witnesses,
    threads: BALLOON_KINDS.map((k) => k.name),
    invariants: BALLOON_INVARIANTS,
  };
}

/**
 * Register the balloon kinds with the checker's registry (threads.ts
 * register_thread_kind) and return the CheckEra of every balloon era for
 * eras.ts register_check_era(). Names are checked against kernel/rules.ts.
 */
export function register_balloon_kinds(register_thread_kind: (k: ThreadKind) => void): CheckEra[] {
  for (const k of BALLOON_KINDS) register_thread_kind(k);
  const known = rule_names();
  return ["2012", "2014", "2016", "2022", "2025", "2026"].map((name) => {
    const era = balloon_check_era(name);
    for (const r of [...era.rules, ...era_rules(name, "fix")])
      if (!known.includes(r)) throw new Error(`era ${name}: rule '${r}' unknown`);
    return era;
  });
}
