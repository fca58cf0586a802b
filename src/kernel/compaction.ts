/**
 * kernel/compaction.ts: models mm/compaction.c (memory compaction), the
 * parts a full or targeted run needs: compact_zone() with its two scanners,
 * compact_finished(), compaction_suitable(), the pageblock skip hints and
 * cached scanner positions, and the /proc/sys/vm/compact_memory trigger
 * (compact_nodes()); the pieces direct compaction and kcompactd share:
 * compaction deferral (compaction_deferred, defer_compaction,
 * compaction_defer_reset, compaction_restarting), capture
 * (compaction_capture), too_many_isolated() and the fragmentation score of
 * proactive compaction. The allocator's side of direct compaction lives in
 * compaction_direct.ts, kcompactd in compaction_daemon.ts.
 *
 * Shape of a run: the migration scanner walks the zone upwards from its
 * start one pageblock at a time and isolates up to COMPACT_CLUSTER_MAX (32)
 * movable pages (LRU pages and movable_ops pages); migrate_pages() moves
 * them into free pages that the free scanner takes, lazily, from pageblocks
 * walked downwards from the zone end. The run ends when the scanners meet
 * or, for a targeted order, when a free block of that order exists on a
 * list the request could use. For a costly order both scanners first try
 * the free lists (fast_find_migrateblock(), fast_isolate_freepages()); a
 * block is claimed with its skip bit when the migration scanner first
 * isolates from it (test_and_set_skip()); async direct compaction gives up
 * an order-aligned chunk at its first failure (skip_on_failure); a second
 * round in the same block takes the rest of it at once (finish_pageblock).
 *
 * Era: the free scanner follows the pre-v6.10 kernels (and so the v4.8
 * migration in migrate.ts): every isolated free block is split into order-0
 * pages, each holding one reference, and compaction_alloc() hands out one
 * order-0 page at a time.
 *
 * Locks: the migration scanner reads PageBuddy and its order without
 * zone->lock (announced as a lockless read; at worst it steps over the wrong
 * number of pfns, which only changes what gets scanned); LRU isolation takes
 * lruvec->lru_lock inside isolate_lru_page(); movable_ops isolation takes the
 * page lock and the driver's locks inside isolate_movable_page(). The free
 * scanner works under zone->lock semantics: like the allocator, its work on
 * a block is plain code between two steps, so nothing interleaves with it.
 * Deferral state (compact_considered, compact_defer_shift,
 * compact_order_failed) is read and written without a lock, as the kernel
 * does: at worst one attempt too many or too few is skipped.
 * Invariants: at the end of compact_zone() the migratepages and freepages
 * lists are empty (every isolated page migrated, put back or released);
 * cc.nr_freepages equals the length of cc.freepages; isolated free pages
 * are order-0 allocated pages with refcount 1 that no owner knows about.
 */

import type { Runtime, StepOf } from "../runtime/runtime.ts";
import { OP_READ } from "../runtime/runtime.ts";
import { assert, VM_BUG_ON } from "./bug.ts";
import { EAGAIN, ENOMEM } from "./errno.ts";
import { __GFP_FS, GFP_KERNEL, type Gfp, gfp_migratetype } from "./gfp.ts";
import {
  list_add,
  list_add_tail,
  list_del,
  list_empty,
  list_first_entry_or_null,
  list_move_tail,
} from "./list.ts";
import type { Machine } from "./machine.ts";
import {
  MIGRATE_ASYNC,
  MIGRATE_SYNC,
  MR_COMPACTION,
  migrate_pages,
  putback_movable_pages,
} from "./migrate.ts";
import { isolate_lru_page_to_list, this_cpu } from "./mm/lru.ts";
import type { MmState } from "./mm/state.ts";
import {
  is_migrate_movable,
  MAX_PAGE_ORDER,
  MIGRATE_CMA,
  MIGRATE_HIGHATOMIC,
  MIGRATE_ISOLATE,
  MIGRATE_MOVABLE,
  NR_PAGE_ORDERS,
  PAGE_ALLOC_COSTLY_ORDER,
  type PgData,
  pageblock_end_pfn,
  pageblock_start_pfn,
  type Zone,
} from "./mmzone.ts";
import {
  ISOLATE_ASYNC_MIGRATE,
  ISOLATE_UNEVICTABLE,
  isolate_movable_page,
  movable_page_candidate,
} from "./movable_ops.ts";
import {
  clear_pageblock_skip,
  compound_order,
  get_pageblock_migratetype,
  get_pageblock_skip,
  PAGE_MAPPING_ANON,
  PAGE_ORDER_MASK,
  PageBuddy,
  PageHead,
  PageLRU,
  type Pfn,
  page_mapcount,
  set_pageblock_migratetype,
  set_pageblock_skip,
} from "./page.ts";
import {
  __free_pages,
  COMPACT_DEFERRED,
  COMPACT_NOT_SUITABLE_ZONE,
  COMPACT_SKIPPED,
  prep_new_page,
} from "./page_alloc/alloc.ts";
import { find_suitable_fallback } from "./page_alloc/fallback.ts";
import { del_page_from_free_list } from "./page_alloc/free_area.ts";
import { drain_all_pages, drain_pages_zone } from "./page_alloc/pcp.ts";
import {
  __zone_watermark_ok,
  ALLOC_CMA,
  ALLOC_WMARK_MASK,
  ALLOC_WMARK_MIN,
  zone_watermark_ok,
} from "./page_alloc/watermark.ts";
import { fragmentation_index } from "./procfs.ts";
import {
  COMPACTFREE_SCANNED,
  COMPACTISOLATED,
  COMPACTMIGRATE_SCANNED,
  NR_ACTIVE_ANON,
  NR_ACTIVE_FILE,
  NR_FREE_PAGES,
  NR_INACTIVE_ANON,
  NR_INACTIVE_FILE,
  NR_ISOLATED_ANON,
  NR_ISOLATED_FILE,
  PGMIGRATE_SUCCESS,
} from "./vmstat_items.ts";

/** Pages isolated per round, and the scanners' lock-drop interval. */
export const COMPACT_CLUSTER_MAX = 32;

/** COMPACT_MAX_DEFER_SHIFT: at most 1 << 6 = 64 attempts are skipped in a row. */
export const COMPACT_MAX_DEFER_SHIFT = 6;

/** COMPACTION_HPAGE_ORDER: HPAGE_PMD_ORDER on x86-64, the order proactive compaction serves. */
export const COMPACTION_HPAGE_ORDER = 9;

// enum compact_result, continued from page_alloc/alloc.ts (order matters).
export { COMPACT_DEFERRED, COMPACT_NOT_SUITABLE_ZONE, COMPACT_SKIPPED };
export const COMPACT_NO_SUITABLE_PAGE = 3;
export const COMPACT_CONTINUE = 4;
export const COMPACT_COMPLETE = 5;
export const COMPACT_PARTIAL_SKIPPED = 6;
export const COMPACT_CONTENDED = 7;
export const COMPACT_SUCCESS = 8;

// isolate_migrate_t
export const ISOLATE_ABORT = 0;
export const ISOLATE_NONE = 1;
export const ISOLATE_SUCCESS = 2;

/** compact_gap(): free pages beyond the watermark a run needs as targets. */
export function compact_gap(order: number): number {
  return 2 << order;
}

/** struct compact_control (mm/internal.h), the fields pagesim uses. */
export interface CompactControl {
  zone: Zone;
  /** Isolated free pages (order 0, refcount 1): a list_head slot. */
  freepages: number;
  /** Isolated source pages: a list_head slot. */
  migratepages: number;
  nr_freepages: number;
  nr_migratepages: number;
  free_pfn: Pfn;
  migrate_pfn: Pfn;
  total_migrate_scanned: number;
  total_free_scanned: number;
  /** Lowest pfn fast_find_migrateblock() found; 0 unset, FAST_START_USED once used. */
  fast_start_pfn: number;
  /** Consecutive failures of the fast free-list searches (shrinks their budget). */
  fast_search_fail: number;
  /** The order fast_isolate_freepages() starts from. */
  search_order: number;
  gfp_mask: Gfp;
  /** Target order; -1 compacts the whole zone. */
  order: number;
  migratetype: number;
  alloc_flags: number;
  highest_zoneidx: number;
  mode: number;
  ignore_skip_hint: boolean;
  no_set_skip_hint: boolean;
  ignore_block_suitable: boolean;
  direct_compaction: boolean;
  /** A proactive run of kcompactd: stop at the low fragmentation score. */
  proactive_compaction: boolean;
  whole_zone: boolean;
  contended: boolean;
  /** Scan the rest of the pageblock: no COMPACT_CLUSTER_MAX cut, skip bit ignored. */
  finish_pageblock: boolean;
}

/**
 * struct capture_control: while a direct compaction runs, a block of the
 * wanted order that its own frees form in its zone is handed to it instead
 * of going on a free list (compaction_capture()). `page` is -1 until then.
 */
export interface CaptureControl {
  cc: CompactControl;
  page: Pfn;
}

/**
 * A compact_control for `zone` with the kernel's defaults and `opts` on top.
 * Its two lists come from mm.list_head_pool; give them back with
 * compact_control_release() when the run is over.
 */
export function compact_control(
  mm: MmState,
  zone: Zone,
  opts: Partial<Omit<CompactControl, "zone" | "freepages" | "migratepages">>,
): CompactControl {
  const list_head = () => mm.list_head_pool.pop() ?? mm.m.mem.alloc_list_head();
  return {
    zone,
    freepages: list_head(),
    migratepages: list_head(),
    nr_freepages: 0,
    nr_migratepages: 0,
    free_pfn: 0,
    migrate_pfn: 0,
    total_migrate_scanned: 0,
    total_free_scanned: 0,
    fast_start_pfn: 0,
    fast_search_fail: 0,
    search_order: 0,
    gfp_mask: GFP_KERNEL,
    order: -1,
    migratetype: 0,
    alloc_flags: ALLOC_WMARK_MIN,
    highest_zoneidx: zone.zone_idx,
    mode: MIGRATE_SYNC,
    ignore_skip_hint: false,
    no_set_skip_hint: false,
    ignore_block_suitable: false,
    direct_compaction: false,
    proactive_compaction: false,
    whole_zone: false,
    contended: false,
    finish_pageblock: false,
    ...opts,
  };
}

/** The end of a compact_control's life: its (empty) lists go back to the pool. */
export function compact_control_release(mm: MmState, cc: CompactControl): void {
  const mem = mm.m.mem;
  VM_BUG_ON(!list_empty(mem, cc.freepages), "compact_control_release: free pages still isolated");
  VM_BUG_ON(!list_empty(mem, cc.migratepages), "compact_control_release: sources still isolated");
  mm.list_head_pool.push(cc.freepages, cc.migratepages);
}

// ---------------------------------------------------------------------------
// Skip hints and cached positions

/** isolation_suitable(): may the scanners look at this pageblock? */
function isolation_suitable(m: Machine, cc: CompactControl, pfn: Pfn): boolean {
  return cc.ignore_skip_hint || !get_pageblock_skip(m.mem, pfn);
}

/** block_end_pfn(): the end of the order-aligned block holding `pfn`. */
function block_end_pfn(pfn: Pfn, order: number): Pfn {
  const size = 2 ** order;
  return Math.ceil((pfn + 1) / size) * size;
}

/**
 * test_and_set_skip(): was the block's skip bit set already? Sets it if
 * not (unless skip hints are not to be written). With skip hints ignored
 * it neither reads nor writes the bit.
 */
function test_and_set_skip(m: Machine, cc: CompactControl, pfn: Pfn): boolean {
  if (cc.ignore_skip_hint) return false;
  const skip = get_pageblock_skip(m.mem, pfn);
  if (!skip && !cc.no_set_skip_hint) set_pageblock_skip(m.mem, pfn);
  return skip;
}

/** reset_cached_positions(): both scanners start again from the zone edges. */
export function reset_cached_positions(m: Machine, zone: Zone): void {
  zone.compact_cached_migrate_pfn[0] = zone.zone_start_pfn;
  zone.compact_cached_migrate_pfn[1] = zone.zone_start_pfn;
  zone.compact_cached_free_pfn = pageblock_start_pfn(m.mem, zone.zone_end_pfn - 1);
}

/**
 * update_cached_migrate(): the migration scanner finished with the block
 * holding `pfn`; later runs start past it. Like the kernel this rounds up
 * to the end of the block *containing* pfn, so an aligned end pfn moves the
 * cache one block further than the block just finished.
 */
function update_cached_migrate(m: Machine, cc: CompactControl, pfn: Pfn): void {
  if (cc.no_set_skip_hint) return;
  const zone = cc.zone;
  const end = pageblock_end_pfn(m.mem, pfn);
  if (end > zone.compact_cached_migrate_pfn[0]) zone.compact_cached_migrate_pfn[0] = end;
  if (cc.mode !== MIGRATE_ASYNC && end > zone.compact_cached_migrate_pfn[1])
    zone.compact_cached_migrate_pfn[1] = end;
}

/** update_pageblock_skip(): the free scanner emptied a block; mark it, lower the cache. */
function update_pageblock_skip(m: Machine, cc: CompactControl, block: Pfn, pfn: Pfn): void {
  if (cc.no_set_skip_hint) return;
  set_pageblock_skip(m.mem, block);
  if (pfn < cc.zone.compact_cached_free_pfn) cc.zone.compact_cached_free_pfn = pfn;
}

/** pageblock_pfn_to_page() reduced to: does the block [start, end) lie in the zone? */
function pageblock_in_zone(zone: Zone, start: Pfn, end: Pfn): boolean {
  return start >= zone.zone_start_pfn && end <= zone.zone_end_pfn;
}

// ---------------------------------------------------------------------------
// Migration scanner

/**
 * suitable_migration_source(): async direct compaction only takes pages from
 * blocks of the request's kind (MOVABLE or CMA for a movable request), so
 * that it does not spread movable targets into unmovable blocks' worth of
 * work; every other caller takes any block.
 */
export function suitable_migration_source(m: Machine, cc: CompactControl, pfn: Pfn): boolean {
  if (cc.mode !== MIGRATE_ASYNC || !cc.direct_compaction) return true;
  const mt = get_pageblock_migratetype(m.mem, pfn);
  if (cc.migratetype === MIGRATE_MOVABLE) return is_migrate_movable(mt);
  return mt === cc.migratetype;
}

/**
 * too_many_isolated(): are more pages isolated from the node's LRU lists
 * than half of what is on them? Callers that may enter the filesystem
 * (__GFP_FS) get a limit eight times tighter, so that GFP_NOFS compactors
 * can still make progress while the others wait. Lockless reads of node
 * counters; at worst one block more or less is isolated.
 */
export function too_many_isolated(m: Machine, cc: CompactControl): boolean {
  const vm_stat = m.pgdat[cc.zone.node_id].vm_stat;
  let inactive = vm_stat[NR_INACTIVE_FILE] + vm_stat[NR_INACTIVE_ANON];
  let active = vm_stat[NR_ACTIVE_FILE] + vm_stat[NR_ACTIVE_ANON];
  const isolated = vm_stat[NR_ISOLATED_FILE] + vm_stat[NR_ISOLATED_ANON];
  if (cc.gfp_mask & __GFP_FS) {
    inactive = Math.floor(inactive / 8);
    active = Math.floor(active / 8);
  }
  return isolated > Math.floor((inactive + active) / 2);
}

/**
 * isolate_migratepages_block(): scan [low_pfn, end_pfn) of one pageblock and
 * move up to COMPACT_CLUSTER_MAX movable pages onto cc.migratepages. Free
 * blocks are stepped over by their order, read without zone->lock. Returns
 * 0, or -EAGAIN when too many pages are isolated already: the kernel's
 * async runs and runs holding pages give up so; sync runs would sleep in
 * reclaim_throttle() and try again, which pagesim does not model (they give
 * up too).
 */
function* isolate_migratepages_block(
  rt: Runtime,
  mm: MmState,
  cc: CompactControl,
  low_pfn: Pfn,
  end_pfn: Pfn,
  isolate_mode: number,
): StepOf<number> {
  const m = mm.m;
  const mem = m.mem;
  let nr_scanned = 0;
  let nr_isolated = 0;
  cc.migrate_pfn = low_pfn;
  if (too_many_isolated(m, cc)) return -EAGAIN;
  // The block's first page, when the scan starts at the block's start (a
  // continuation after COMPACT_CLUSTER_MAX pages has none): the skip bit
  // is tested and set through it.
  const valid_page =
    low_pfn === pageblock_start_pfn(mem, low_pfn) || low_pfn === cc.zone.zone_start_pfn
      ? low_pfn
      : -1;
  let skip_updated = false;
  // Async direct compaction wants a free block of cc.order soon: one page
  // that cannot be isolated spoils its order-aligned chunk, so it gives the
  // chunk up at once (putting back what it took from it).
  const skip_on_failure = cc.direct_compaction && cc.mode === MIGRATE_ASYNC;
  let next_skip_pfn = skip_on_failure ? block_end_pfn(low_pfn, cc.order) : 0;
  for (; low_pfn < end_pfn; low_pfn++) {
    if (skip_on_failure && low_pfn >= next_skip_pfn) {
      // The previous chunk gave pages and no failure: migrate them now.
      if (nr_isolated) break;
      next_skip_pfn = block_end_pfn(low_pfn, cc.order);
    }
    if (low_pfn % COMPACT_CLUSTER_MAX === 0) yield* rt.cond_resched();
    nr_scanned++;
    // Lockless: the block may be allocated or merged meanwhile. At worst we
    // skip a wrong number of pfns; nothing is taken without a recheck.
    yield* rt.access(OP_READ, low_pfn, "PageBuddy");
    if (PageBuddy(mem, low_pfn)) {
      const order = mem.page_private[low_pfn];
      if (order > 0 && order <= MAX_PAGE_ORDER) {
        low_pfn += (1 << order) - 1;
        nr_scanned += (1 << order) - 1;
      }
      continue;
    }
    let isolated = false;
    if (PageHead(mem, low_pfn)) {
      // Compound pages are not migrated by this model: step over them (a
      // failure, as for a compound page too big for the request).
      const n = 1 << compound_order(mem, low_pfn);
      low_pfn += n - 1;
      nr_scanned += n - 1;
    } else if (!PageLRU(mem, low_pfn)) {
      if (movable_page_candidate(mm, low_pfn)) {
        if ((yield* isolate_movable_page(rt, mm, low_pfn, isolate_mode)) === 0) {
          list_add(mem, low_pfn, cc.migratepages);
          isolated = true;
        }
      }
    } else if (!anon_page_pinned(mm, low_pfn)) {
      // First LRU isolation in the block (the kernel: first time it takes
      // the lruvec lock here): claim the block with its skip bit; a bit
      // already set means another scanner has it, so leave the block.
      if (!skip_updated && valid_page >= 0) {
        skip_updated = true;
        if (test_and_set_skip(m, cc, valid_page) && !cc.finish_pageblock) {
          low_pfn = end_pfn;
          break;
        }
      }
      isolated = (yield* isolate_lru_page_to_list(rt, mm, low_pfn, cc.migratepages)) === 0;
    }
    if (!isolated) {
      if (!skip_on_failure) continue;
      // isolate_fail: the chunk is spoilt; give back what it gave.
      if (nr_isolated) {
        yield* putback_movable_pages(rt, mm, cc.migratepages);
        cc.nr_migratepages = 0;
        nr_isolated = 0;
      }
      if (low_pfn < next_skip_pfn) {
        low_pfn = next_skip_pfn - 1;
        next_skip_pfn += 1 << cc.order;
      }
      continue;
    }
    cc.nr_migratepages++;
    nr_isolated++;
    if (cc.nr_migratepages >= COMPACT_CLUSTER_MAX && !cc.finish_pageblock) {
      low_pfn++;
      break;
    }
  }
  if (low_pfn > end_pfn) low_pfn = end_pfn;
  isolate_migratepages_block_end(m, cc, low_pfn, end_pfn, valid_page, skip_updated, nr_isolated);
  cc.total_migrate_scanned += nr_scanned;
  m.vm_events[COMPACTISOLATED] += nr_isolated;
  cc.migrate_pfn = low_pfn;
  return 0;
}

/**
 * The end of isolate_migratepages_block(): a block scanned to its end
 * without yielding anything (or finished on purpose) is marked skip, unless
 * the scan did not start at its start or the bit was already dealt with by
 * test_and_set_skip(); the cached migrate pfn moves past it.
 */
function isolate_migratepages_block_end(
  m: Machine,
  cc: CompactControl,
  low_pfn: Pfn,
  end_pfn: Pfn,
  valid_page: Pfn,
  skip_updated: boolean,
  nr_isolated: number,
): void {
  if (low_pfn !== end_pfn || (nr_isolated !== 0 && !cc.finish_pageblock)) return;
  if (!cc.no_set_skip_hint && valid_page >= 0 && !skip_updated)
    set_pageblock_skip(m.mem, valid_page);
  update_cached_migrate(m, cc, low_pfn);
}

/**
 * The scanner's pin pre-check: an anonymous page with more references than
 * mappings is pinned (GUP) and would fail migration; leave it alone. File
 * pages are not checked here (their extra references show in migration).
 * Lockless; at worst a page pinned or unpinned meanwhile is judged wrongly,
 * and migration's refcount check under the page lock decides.
 */
function anon_page_pinned(mm: MmState, pfn: Pfn): boolean {
  const mem = mm.m.mem;
  if (!(mem.mapping[pfn] & PAGE_MAPPING_ANON)) return false;
  return mem._refcount[pfn] > page_mapcount(mem, pfn);
}

/**
 * isolate_migratepages(): find the next pageblock to take sources from,
 * walking up from cc.migrate_pfn while the block lies below the free
 * scanner, and isolate from it.
 */
function* isolate_migratepages(rt: Runtime, mm: MmState, cc: CompactControl): StepOf<number> {
  const m = mm.m;
  const mem = m.mem;
  const zone = cc.zone;
  const nr = 1 << mem.pageblock_order;
  let isolate_mode = m.sysctl.compact_unevictable_allowed ? ISOLATE_UNEVICTABLE : 0;
  if (cc.mode !== MIGRATE_SYNC) isolate_mode |= ISOLATE_ASYNC_MIGRATE;
  let low_pfn = fast_find_migrateblock(m, cc);
  let block_start = Math.max(pageblock_start_pfn(mem, low_pfn), zone.zone_start_pfn);
  let block_end = pageblock_end_pfn(mem, low_pfn);
  // The fast search already checked the found block's skip bit.
  let fast_find_block = low_pfn !== cc.migrate_pfn && cc.fast_search_fail === 0;
  for (; block_end <= cc.free_pfn; fast_find_block = false) {
    cc.migrate_pfn = low_pfn;
    const at_block_start = low_pfn === block_start;
    if (
      pageblock_in_zone(zone, block_start, block_end) &&
      !(at_block_start && !fast_find_block && !isolation_suitable(m, cc, block_start))
    ) {
      if (!suitable_migration_source(m, cc, block_start)) {
        update_cached_migrate(m, cc, block_end);
      } else {
        if (yield* isolate_migratepages_block(rt, mm, cc, low_pfn, block_end, isolate_mode))
          return ISOLATE_ABORT;
        break;
      }
    }
    low_pfn = block_end;
    block_start = block_end;
    block_end += nr;
    cc.migrate_pfn = low_pfn;
  }
  return cc.nr_migratepages ? ISOLATE_SUCCESS : ISOLATE_NONE;
}

// ---------------------------------------------------------------------------
// Free scanner

/**
 * suitable_migration_target(): a block is a target if it is MOVABLE (or CMA)
 * and does not already start with a free block big enough for the request.
 */
export function suitable_migration_target(m: Machine, cc: CompactControl, pfn: Pfn): boolean {
  const mem = m.mem;
  if (PageBuddy(mem, pfn)) {
    const min_order = cc.order <= 0 ? mem.pageblock_order : cc.order;
    if (mem.page_private[pfn] >= min_order) return false;
  }
  if (cc.ignore_block_suitable) return true;
  return is_migrate_movable(get_pageblock_migratetype(mem, pfn));
}

/**
 * __isolate_free_page() (page_alloc.c): take a free block off its list if
 * the zone stays above its min watermark by the block's size; a block of at
 * least half a pageblock turns its pageblocks MOVABLE. Returns the pages
 * taken, or 0. The block keeps refcount 0 and is no longer PageBuddy.
 * Caller holds zone->lock.
 */
export function __isolate_free_page(m: Machine, zone: Zone, pfn: Pfn, order: number): number {
  const mem = m.mem;
  const mt = get_pageblock_migratetype(mem, pfn);
  if (mt !== MIGRATE_ISOLATE) {
    const watermark = zone.min_wmark_pages() + (1 << order);
    if (!zone_watermark_ok(m, zone, 0, watermark, 0, ALLOC_CMA)) return 0;
  }
  del_page_from_free_list(mem, zone, pfn, order, mt);
  if (order >= mem.pageblock_order - 1) {
    const end = pfn + (1 << order);
    for (let p = pfn; p < end; p += 1 << mem.pageblock_order) {
      const bmt = get_pageblock_migratetype(mem, p);
      if (bmt === MIGRATE_ISOLATE || bmt === MIGRATE_CMA || bmt === MIGRATE_HIGHATOMIC) continue;
      set_pageblock_migratetype(mem, p, MIGRATE_MOVABLE);
    }
  }
  return 1 << order;
}

/**
 * split_page() (page_alloc.c): an allocated non-compound block of `order`
 * becomes 1 << order order-0 pages, each with its own reference.
 */
export function split_page(m: Machine, pfn: Pfn, order: number): void {
  const mem = m.mem;
  VM_BUG_ON(mem._refcount[pfn] !== 1, "split_page: head must hold exactly one reference");
  for (let p = pfn; p < pfn + (1 << order); p++) {
    mem._refcount[p] = 1;
    mem.flags[p] &= ~PAGE_ORDER_MASK;
  }
}

/**
 * isolate_freepages_block(): take free blocks in [start, end_pfn) visiting
 * every `stride`th pfn, until the free pages cover the isolated sources.
 * Returns the pfn where the scan stopped. Runs under zone->lock.
 */
function isolate_freepages_block(
  m: Machine,
  cc: CompactControl,
  start: Pfn,
  end_pfn: Pfn,
  stride: number,
): Pfn {
  const mem = m.mem;
  let nr_scanned = 0;
  let total_isolated = 0;
  let blockpfn = start;
  for (; blockpfn < end_pfn; blockpfn += stride) {
    nr_scanned++;
    if (PageHead(mem, blockpfn)) {
      const n = 1 << compound_order(mem, blockpfn);
      if (blockpfn + n <= end_pfn) {
        blockpfn += n - 1;
        nr_scanned += n - 1;
      }
      continue;
    }
    if (!PageBuddy(mem, blockpfn)) continue;
    const order = mem.page_private[blockpfn];
    const isolated = __isolate_free_page(m, cc.zone, blockpfn, order);
    if (!isolated) break;
    mem.page_private[blockpfn] = order;
    nr_scanned += isolated - 1;
    total_isolated += isolated;
    cc.nr_freepages += isolated;
    list_add_tail(mem, blockpfn, cc.freepages);
    if (cc.nr_migratepages <= cc.nr_freepages) {
      blockpfn += isolated;
      break;
    }
    blockpfn += isolated - 1;
  }
  if (blockpfn > end_pfn) blockpfn = end_pfn;
  cc.total_free_scanned += nr_scanned;
  m.vm_events[COMPACTISOLATED] += total_isolated;
  return blockpfn;
}

/**
 * split_map_pages(): every isolated block (order in page_private) is made an
 * allocated block and split into order-0 pages, each with one reference,
 * listed on cc.freepages.
 */
function split_map_pages(m: Machine, cc: CompactControl): void {
  const mem = m.mem;
  const blocks: Pfn[] = [];
  for (let p = list_first_entry_or_null(mem, cc.freepages); p >= 0; ) {
    blocks.push(p);
    const next = mem.lru_next[p];
    p = next === cc.freepages ? -1 : next;
  }
  for (const pfn of blocks) {
    const order = mem.page_private[pfn];
    list_del(mem, pfn);
    prep_new_page(m, pfn, order, 0);
    split_page(m, pfn, order);
    for (let p = pfn; p < pfn + (1 << order); p++) list_add_tail(mem, p, cc.freepages);
  }
}

/**
 * isolate_freepages(): walk pageblocks down from cc.free_pfn, above the
 * migration scanner's block, and isolate free pages from target blocks
 * until they cover the isolated sources. Scanning a block to its end marks
 * it skip. The fast free-list search (fast_isolate_freepages()) goes first;
 * the linear walk runs only if it found nothing.
 */
export function isolate_freepages(m: Machine, cc: CompactControl): void {
  const mem = m.mem;
  const zone = cc.zone;
  fast_isolate_freepages(m, cc);
  if (cc.nr_freepages) {
    split_map_pages(m, cc);
    return;
  }
  const nr = 1 << mem.pageblock_order;
  let isolate_start_pfn = cc.free_pfn;
  let block_start = pageblock_start_pfn(mem, cc.free_pfn);
  let block_end = Math.min(block_start + nr, zone.zone_end_pfn);
  const low_pfn = pageblock_end_pfn(mem, cc.migrate_pfn);
  let stride = cc.mode === MIGRATE_ASYNC ? COMPACT_CLUSTER_MAX : 1;
  for (; block_start >= low_pfn; ) {
    if (
      pageblock_in_zone(zone, block_start, block_end) &&
      suitable_migration_target(m, cc, block_start) &&
      isolation_suitable(m, cc, block_start)
    ) {
      const before = cc.nr_freepages;
      isolate_start_pfn = isolate_freepages_block(m, cc, isolate_start_pfn, block_end, stride);
      if (isolate_start_pfn === block_end)
        update_pageblock_skip(m, cc, block_start, block_start - nr);
      if (cc.nr_freepages >= cc.nr_migratepages) {
        if (isolate_start_pfn >= block_end) isolate_start_pfn = block_start - nr;
        break;
      }
      if (isolate_start_pfn < block_end) break;
      stride = cc.nr_freepages > before ? 1 : Math.min(COMPACT_CLUSTER_MAX, stride * 2);
    }
    block_end = block_start;
    block_start -= nr;
    isolate_start_pfn = block_start;
  }
  cc.free_pfn = isolate_start_pfn;
  split_map_pages(m, cc);
}

// ---------------------------------------------------------------------------
// Fast free-list searches (v5.1+), under zone->lock: plain code

/** ULONG_MAX of cc->fast_start_pfn: the cached start was used once already. */
export const FAST_START_USED = Number.MAX_SAFE_INTEGER;

/** freelist_scan_limit(): 33 entries, halved with each consecutive failure, at least 1. */
export function freelist_scan_limit(cc: CompactControl): number {
  return (cc.fast_search_fail >= 6 ? 0 : COMPACT_CLUSTER_MAX >> cc.fast_search_fail) + 1;
}

/**
 * move_freelist_head(): rotate the free list so that `freepage` comes
 * first and the entries searched before it go to the tail (the next search
 * from the tail meets the unsearched ones first). Rotating is moving the
 * list head itself to just before `freepage`.
 */
function move_freelist_head(m: Machine, freelist: number, freepage: Pfn): void {
  if (m.mem.lru_next[freelist] !== freepage) list_move_tail(m.mem, freelist, freepage);
}

/**
 * move_freelist_tail(): rotate so that `freepage` and the entries before it
 * go last: the list head moves to just after `freepage`.
 */
function move_freelist_tail(m: Machine, freelist: number, freepage: Pfn): void {
  const mem = m.mem;
  if (mem.lru_prev[freelist] === freepage) return;
  list_del(mem, freelist);
  list_add(mem, freelist, freepage);
}

/** update_fast_start_pfn(): remember the lowest pfn the fast search found. */
function update_fast_start_pfn(cc: CompactControl, pfn: Pfn): void {
  if (cc.fast_start_pfn === FAST_START_USED) return;
  if (!cc.fast_start_pfn || pfn < cc.fast_start_pfn) cc.fast_start_pfn = pfn;
}

/** reinit_migrate_pfn(): after a failed fast search, restart once from that lowest pfn. */
function reinit_migrate_pfn(cc: CompactControl): Pfn {
  if (!cc.fast_start_pfn || cc.fast_start_pfn === FAST_START_USED) return cc.migrate_pfn;
  cc.migrate_pfn = cc.fast_start_pfn;
  cc.fast_start_pfn = FAST_START_USED;
  return cc.migrate_pfn;
}

/**
 * fast_find_migrateblock(): for a costly order (and not for an unmovable
 * direct request), look on the MOVABLE free lists of orders below the
 * request for a free block low in the zone (the first half of the distance
 * to the free scanner when starting, the first eighth later) whose
 * pageblock is not skip-marked: a source block that already has free pages
 * needs fewer migrations. Returns where the migration scanner starts.
 * Entries looked at count as migrate-scanned. Runs under zone->lock.
 */
export function fast_find_migrateblock(m: Machine, cc: CompactControl): Pfn {
  const mem = m.mem;
  const zone = cc.zone;
  let pfn = cc.migrate_pfn;
  if (cc.ignore_skip_hint) return pfn;
  if (cc.finish_pageblock) return pfn;
  if (pfn !== zone.zone_start_pfn && pfn !== pageblock_start_pfn(mem, pfn)) return pfn;
  if (cc.order <= PAGE_ALLOC_COSTLY_ORDER) return pfn;
  if (cc.direct_compaction && cc.migratetype !== MIGRATE_MOVABLE) return pfn;
  const limit = freelist_scan_limit(cc);
  let distance = Math.floor((cc.free_pfn - cc.migrate_pfn) / 2);
  if (cc.migrate_pfn !== zone.zone_start_pfn) distance = Math.floor(distance / 4);
  const high_pfn = pageblock_start_pfn(mem, cc.migrate_pfn + distance);
  let nr_scanned = 0;
  let found_block = false;
  for (
    let order = cc.order - 1;
    order >= PAGE_ALLOC_COSTLY_ORDER && !found_block && nr_scanned < limit;
    order--
  ) {
    if (!zone.nr_free[order]) continue;
    const freelist = zone.free_list(order, MIGRATE_MOVABLE);
    for (let fp = mem.lru_next[freelist]; fp !== freelist; fp = mem.lru_next[fp]) {
      if (nr_scanned++ >= limit) {
        move_freelist_tail(m, freelist, fp);
        break;
      }
      if (fp >= high_pfn) continue;
      // Recently skipped: leave it where it is.
      if (get_pageblock_skip(mem, fp)) continue;
      move_freelist_tail(m, freelist, fp);
      update_fast_start_pfn(cc, fp);
      pfn = Math.max(pageblock_start_pfn(mem, fp), zone.zone_start_pfn);
      cc.fast_search_fail = 0;
      found_block = true;
      break;
    }
  }
  cc.total_migrate_scanned += nr_scanned;
  if (!found_block) {
    cc.fast_search_fail++;
    pfn = reinit_migrate_pfn(cc);
  }
  return pfn;
}

/** next_search_order(): orders below the request, round robin; -1 once wrapped. */
function next_search_order(cc: CompactControl, order: number): number {
  order--;
  if (order < 0) order = cc.order - 1;
  if (order === cc.search_order) {
    cc.search_order--;
    if (cc.search_order < 0) cc.search_order = cc.order - 1;
    return -1;
  }
  return order;
}

/**
 * fast_isolate_around(): after the fast search took a block, scan the rest
 * of its pageblock (stride 1) for more free pages, unless enough are
 * isolated or this is async direct compaction; a pageblock scanned to its
 * end is marked skip.
 */
function fast_isolate_around(m: Machine, cc: CompactControl, pfn: Pfn): void {
  if (cc.nr_freepages >= cc.nr_migratepages) return;
  if (cc.direct_compaction && cc.mode === MIGRATE_ASYNC) return;
  const mem = m.mem;
  const zone = cc.zone;
  const start = Math.max(pageblock_start_pfn(mem, pfn), zone.zone_start_pfn);
  const end = Math.min(pageblock_end_pfn(mem, pfn), zone.zone_end_pfn);
  const stop = isolate_freepages_block(m, cc, start, end, 1);
  if (stop === end && !cc.no_set_skip_hint) set_pageblock_skip(mem, start);
}

/** The block the fast search found: take it off the free list onto cc.freepages. */
function fast_isolate_take(m: Machine, cc: CompactControl, page: Pfn, order: number): number {
  const nr_isolated = __isolate_free_page(m, cc.zone, page, order);
  if (!nr_isolated) return 0;
  m.mem.page_private[page] = order;
  cc.nr_freepages += nr_isolated;
  list_add_tail(m.mem, page, cc.freepages);
  m.vm_events[COMPACTISOLATED] += nr_isolated;
  return nr_isolated;
}

/**
 * A first fast search that found nothing: move the free scanner down to the
 * highest block seen if it lies in the top half, or (direct compaction,
 * pessimistic) to the half-way block. Returns the block to scan around, or
 * -1.
 */
function fast_isolate_fallback(m: Machine, cc: CompactControl, highest: Pfn, min_pfn: Pfn): Pfn {
  const zone = cc.zone;
  if (highest >= min_pfn) {
    cc.free_pfn = highest;
    return highest;
  }
  if (!cc.direct_compaction || min_pfn < zone.zone_start_pfn) return -1;
  const block_end = Math.min(pageblock_end_pfn(m.mem, min_pfn), zone.zone_end_pfn);
  cc.free_pfn = min_pfn;
  return pageblock_in_zone(zone, min_pfn, block_end) && suitable_migration_target(m, cc, min_pfn)
    ? min_pfn
    : -1;
}

/**
 * fast_isolate_freepages(): for order > 0, search the MOVABLE free lists of
 * orders below the request, from the tail, for a free block in the top
 * quarter of the space between the scanners (else the highest in the top
 * half), with a small budget that halves after each failure; take it and
 * then the rest of its pageblock. On a first scan that fails, move the
 * free scanner down to the highest block seen (or, for direct compaction,
 * to the half-way mark). Runs under zone->lock.
 */
export function fast_isolate_freepages(m: Machine, cc: CompactControl): void {
  if (cc.order <= 0) return;
  const mem = m.mem;
  const zone = cc.zone;
  const nr_pb = 1 << mem.pageblock_order;
  let limit = Math.max(1, freelist_scan_limit(cc) >> 1);
  let scan_start = false;
  if (cc.free_pfn >= zone.compact_init_free_pfn) {
    limit = nr_pb >> 1;
    scan_start = true;
  }
  const distance = cc.free_pfn - cc.migrate_pfn;
  let low_pfn = pageblock_start_pfn(mem, cc.free_pfn - Math.floor(distance / 4));
  const min_pfn = pageblock_start_pfn(mem, cc.free_pfn - Math.floor(distance / 2));
  if (min_pfn > low_pfn) low_pfn = min_pfn;
  let nr_scanned = 0;
  let highest = 0;
  let page = -1;
  cc.search_order = Math.min(cc.order - 1, cc.search_order);
  for (let order = cc.search_order; page < 0 && order >= 0; order = next_search_order(cc, order)) {
    if (!zone.nr_free[order]) continue;
    const freelist = zone.free_list(order, MIGRATE_MOVABLE);
    let order_scanned = 0;
    let high_pfn = 0;
    let fp = mem.lru_prev[freelist];
    for (; fp !== freelist; fp = mem.lru_prev[fp]) {
      order_scanned++;
      nr_scanned++;
      if (fp >= highest) highest = Math.max(pageblock_start_pfn(mem, fp), zone.zone_start_pfn);
      if (fp >= low_pfn) {
        cc.fast_search_fail = 0;
        cc.search_order = order;
        page = fp;
        break;
      }
      if (fp >= min_pfn && fp > high_pfn) {
        high_pfn = fp;
        limit >>= 1;
      }
      if (order_scanned >= limit) break;
    }
    if (page < 0 && high_pfn) {
      page = high_pfn;
      fp = page;
    }
    if (fp !== freelist) move_freelist_head(m, freelist, fp);
    if (page >= 0) {
      const nr_isolated = fast_isolate_take(m, cc, page, order);
      if (nr_isolated) nr_scanned += nr_isolated - 1;
      else {
        // Below the watermark: give up the search.
        order = cc.search_order + 1;
        page = -1;
      }
    }
    if (cc.nr_freepages >= cc.nr_migratepages) break;
    if (order_scanned >= limit) limit = Math.max(1, limit >> 1);
  }
  if (page < 0) {
    cc.fast_search_fail++;
    if (scan_start) page = fast_isolate_fallback(m, cc, highest, min_pfn);
  }
  if (highest && highest >= zone.compact_cached_free_pfn) {
    highest -= nr_pb;
    zone.compact_cached_free_pfn = highest;
  }
  cc.total_free_scanned += nr_scanned;
  if (page < 0) return;
  fast_isolate_around(m, cc, page);
}

/** compaction_alloc(): migration's new_page callback: one isolated free page, or -1. */
function compaction_alloc(m: Machine, cc: CompactControl): Pfn {
  const mem = m.mem;
  if (list_empty(mem, cc.freepages)) {
    if (!cc.contended) isolate_freepages(m, cc);
    if (list_empty(mem, cc.freepages)) return -1;
  }
  const pfn = list_first_entry_or_null(mem, cc.freepages);
  list_del(mem, pfn);
  cc.nr_freepages--;
  return pfn;
}

/** compaction_free(): migration's put_new_page callback: keep the unused target. */
function compaction_free(m: Machine, cc: CompactControl, pfn: Pfn): void {
  list_add(m.mem, pfn, cc.freepages);
  cc.nr_freepages++;
}

/** release_freepages(): free every unused target; returns the highest pfn, or 0. */
function release_freepages(rt: Runtime, m: Machine, cc: CompactControl): Pfn {
  const mem = m.mem;
  let high = 0;
  const cpu = this_cpu(rt, m);
  for (let p = list_first_entry_or_null(mem, cc.freepages); p >= 0; ) {
    list_del(mem, p);
    if (p > high) high = p;
    __free_pages(m, cpu, p, 0);
    p = list_first_entry_or_null(mem, cc.freepages);
  }
  cc.nr_freepages = 0;
  return high;
}

// ---------------------------------------------------------------------------
// Ending a run, suitability

/** compact_scanners_met(): the free scanner reached the migration scanner's block. */
function compact_scanners_met(m: Machine, cc: CompactControl): boolean {
  const o = m.mem.pageblock_order;
  return cc.free_pfn >> o <= cc.migrate_pfn >> o;
}

/** __compact_finished(): may the run stop, and how did it end? */
function __compact_finished(m: Machine, cc: CompactControl): number {
  const zone = cc.zone;
  const mem = m.mem;
  if (compact_scanners_met(m, cc)) {
    reset_cached_positions(m, zone);
    if (cc.direct_compaction) zone.compact_blockskip_flush = true;
    return cc.whole_zone ? COMPACT_COMPLETE : COMPACT_PARTIAL_SKIPPED;
  }
  if (cc.proactive_compaction) {
    // kswapd is not modelled, so it is never running on the node.
    const ret =
      fragmentation_score_zone(zone) > fragmentation_score_wmark(m, true)
        ? COMPACT_CONTINUE
        : COMPACT_SUCCESS;
    return cc.contended ? COMPACT_CONTENDED : ret;
  }
  if (cc.order === -1) return COMPACT_CONTINUE;
  if (cc.migrate_pfn & ((1 << mem.pageblock_order) - 1)) return COMPACT_CONTINUE;
  let ret = COMPACT_NO_SUITABLE_PAGE;
  for (let order = cc.order; order < NR_PAGE_ORDERS; order++) {
    if (list_first_entry_or_null(mem, zone.free_list(order, cc.migratetype)) >= 0) {
      ret = COMPACT_SUCCESS;
      break;
    }
    if (
      cc.migratetype === MIGRATE_MOVABLE &&
      list_first_entry_or_null(mem, zone.free_list(order, MIGRATE_CMA)) >= 0
    ) {
      ret = COMPACT_SUCCESS;
      break;
    }
    if (find_suitable_fallback(m, zone, order, cc.migratetype, true) >= 0) {
      ret = COMPACT_SUCCESS;
      break;
    }
  }
  return cc.contended ? COMPACT_CONTENDED : ret;
}

/** compact_finished(): __compact_finished() with "no suitable page yet" meaning go on. */
export function compact_finished(m: Machine, cc: CompactControl): number {
  const ret = __compact_finished(m, cc);
  return ret === COMPACT_NO_SUITABLE_PAGE ? COMPACT_CONTINUE : ret;
}

/**
 * __compaction_suitable(): enough free order-0 pages above the watermark
 * for the run's targets (compact_gap), the low watermark for costly orders.
 */
export function __compaction_suitable(
  m: Machine,
  zone: Zone,
  order: number,
  highest_zoneidx: number,
  free_pages: number,
): boolean {
  const watermark =
    (order > PAGE_ALLOC_COSTLY_ORDER ? zone.low_wmark_pages() : zone.min_wmark_pages()) +
    compact_gap(order);
  return __zone_watermark_ok(m, zone, 0, watermark, highest_zoneidx, ALLOC_CMA, free_pages);
}

/**
 * compaction_suitable(): __compaction_suitable(), and for costly orders a
 * fragmentation index above sysctl extfrag_threshold (a low index means the
 * request fails for lack of memory, which compaction cannot fix).
 */
export function compaction_suitable(
  m: Machine,
  zone: Zone,
  order: number,
  highest_zoneidx: number,
): boolean {
  if (!__compaction_suitable(m, zone, order, highest_zoneidx, zone.vm_stat[NR_FREE_PAGES]))
    return false;
  if (order > PAGE_ALLOC_COSTLY_ORDER) {
    const fragindex = fragmentation_index(zone, order);
    if (fragindex >= 0 && fragindex <= m.sysctl.extfrag_threshold) return false;
  }
  return true;
}

/**
 * compaction_suit_allocation_order(): SUCCESS if the allocation would
 * already succeed, SKIPPED if compaction cannot help, else CONTINUE.
 */
export function compaction_suit_allocation_order(m: Machine, cc: CompactControl): number {
  const zone = cc.zone;
  const watermark = zone.wmark_pages(cc.alloc_flags & ALLOC_WMARK_MASK);
  if (zone_watermark_ok(m, zone, cc.order, watermark, cc.highest_zoneidx, cc.alloc_flags))
    return COMPACT_SUCCESS;
  if (!compaction_suitable(m, zone, cc.order, cc.highest_zoneidx)) return COMPACT_SKIPPED;
  return COMPACT_CONTINUE;
}

// ---------------------------------------------------------------------------
// Deferral: after a failure, skip the next 1 << compact_defer_shift attempts

/**
 * compaction_deferred(): should this attempt at `order` be skipped? Orders
 * below the lowest that failed are never deferred. Counting happens here:
 * each call is one attempt considered, and the attempt that reaches
 * 1 << compact_defer_shift goes ahead.
 */
export function compaction_deferred(zone: Zone, order: number): boolean {
  if (order < zone.compact_order_failed) return false;
  const limit = 1 << zone.compact_defer_shift;
  if (++zone.compact_considered >= limit) {
    zone.compact_considered = limit;
    return false;
  }
  return true;
}

/** defer_compaction(): a run at `order` failed: skip twice as many next time. */
export function defer_compaction(zone: Zone, order: number): void {
  zone.compact_considered = 0;
  zone.compact_defer_shift++;
  if (order < zone.compact_order_failed) zone.compact_order_failed = order;
  if (zone.compact_defer_shift > COMPACT_MAX_DEFER_SHIFT)
    zone.compact_defer_shift = COMPACT_MAX_DEFER_SHIFT;
}

/**
 * compaction_defer_reset(): a run at `order` succeeded (`alloc_success`:
 * and the allocation got its page): no more deferral, and the orders up to
 * this one are no longer considered failing.
 */
export function compaction_defer_reset(zone: Zone, order: number, alloc_success: boolean): void {
  if (alloc_success) {
    zone.compact_considered = 0;
    zone.compact_defer_shift = 0;
  }
  if (order >= zone.compact_order_failed) zone.compact_order_failed = order + 1;
}

/** compaction_restarting(): deferred to the limit and still asked: start over. */
export function compaction_restarting(zone: Zone, order: number): boolean {
  if (order < zone.compact_order_failed) return false;
  return (
    zone.compact_defer_shift === COMPACT_MAX_DEFER_SHIFT &&
    zone.compact_considered >= 1 << COMPACT_MAX_DEFER_SHIFT
  );
}

// ---------------------------------------------------------------------------
// Capture

/**
 * compaction_capture(): called by __free_one_page() (through the machine's
 * free-area hook) for a block of `order` about to be listed or merged, while
 * a direct compaction of this zone runs. Takes the block if it has exactly
 * the wanted order and its migratetype may serve the request: never CMA or
 * ISOLATE blocks, and a MOVABLE block smaller than a pageblock only for a
 * MOVABLE request (so as not to mix unmovable pages into movable blocks).
 * Caller holds zone->lock.
 */
export function compaction_capture(
  capc: CaptureControl,
  pfn: Pfn,
  order: number,
  migratetype: number,
  pageblock_order: number,
): boolean {
  if (capc.page >= 0 || order !== capc.cc.order) return false;
  if (migratetype === MIGRATE_CMA || migratetype === MIGRATE_ISOLATE) return false;
  if (
    order < pageblock_order &&
    migratetype === MIGRATE_MOVABLE &&
    capc.cc.migratetype !== MIGRATE_MOVABLE
  )
    return false;
  capc.page = pfn;
  return true;
}

// ---------------------------------------------------------------------------
// Resetting the skip hints

/**
 * __reset_isolation_pfn(): clear the skip bit of the block holding `pfn` if
 * a sample of its pages (one in 1 << PAGE_ALLOC_COSTLY_ORDER) finds an LRU
 * page (worth scanning as a source) or a free page (as a target). Target
 * side alone only considers MOVABLE blocks. Lockless reads; a wrong guess
 * costs one block scanned for nothing or skipped once more.
 */
function __reset_isolation_pfn(
  m: Machine,
  zone: Zone,
  pfn: Pfn,
  check_source: boolean,
  check_target: boolean,
): boolean {
  const mem = m.mem;
  if (!zone.zone_spans_pfn(pfn)) return false;
  if (check_source && check_target && !get_pageblock_skip(mem, pfn)) return true;
  if (!check_source && check_target && get_pageblock_migratetype(mem, pfn) !== MIGRATE_MOVABLE)
    return false;
  const start = Math.max(pageblock_start_pfn(mem, pfn), zone.zone_start_pfn);
  const end = Math.min(pageblock_end_pfn(mem, pfn) - 1, zone.zone_end_pfn - 1);
  for (let p = start; p <= end; p += 1 << PAGE_ALLOC_COSTLY_ORDER) {
    if ((check_source && PageLRU(mem, p)) || (check_target && PageBuddy(mem, p))) {
      clear_pageblock_skip(mem, p);
      return true;
    }
  }
  return false;
}

/**
 * __reset_isolation_suitable(): once a direct compaction has walked the
 * whole zone (compact_blockskip_flush), walk pageblocks from both ends
 * towards the middle clearing skip bits where the sample finds work, and
 * restart the cached scanner positions at the first reset blocks.
 */
export function __reset_isolation_suitable(m: Machine, zone: Zone): void {
  if (!zone.compact_blockskip_flush) return;
  zone.compact_blockskip_flush = false;
  const nr = 1 << m.mem.pageblock_order;
  let migrate_pfn = zone.zone_start_pfn;
  let free_pfn = zone.zone_end_pfn - 1;
  let reset_migrate = free_pfn;
  let reset_free = migrate_pfn;
  let source_set = false;
  let free_set = false;
  for (; migrate_pfn < free_pfn; migrate_pfn += nr, free_pfn -= nr) {
    if (
      __reset_isolation_pfn(m, zone, migrate_pfn, true, source_set) &&
      migrate_pfn < reset_migrate
    ) {
      source_set = true;
      reset_migrate = migrate_pfn;
      zone.compact_init_migrate_pfn = migrate_pfn;
      zone.compact_cached_migrate_pfn[0] = migrate_pfn;
      zone.compact_cached_migrate_pfn[1] = migrate_pfn;
    }
    if (__reset_isolation_pfn(m, zone, free_pfn, free_set, true) && free_pfn > reset_free) {
      free_set = true;
      reset_free = free_pfn;
      zone.compact_init_free_pfn = free_pfn;
      zone.compact_cached_free_pfn = free_pfn;
    }
  }
  // Nothing worth resetting: leave the scanners met where the walk met.
  if (reset_migrate >= reset_free) {
    zone.compact_cached_migrate_pfn[0] = migrate_pfn;
    zone.compact_cached_migrate_pfn[1] = migrate_pfn;
    zone.compact_cached_free_pfn = free_pfn;
  }
}

/** reset_isolation_suitable(): __reset_isolation_suitable() for every populated zone of a node. */
export function reset_isolation_suitable(m: Machine, pgdat: PgData): void {
  for (const zone of pgdat.node_zones)
    if (zone.populated_zone()) __reset_isolation_suitable(m, zone);
}

// ---------------------------------------------------------------------------
// Fragmentation score (proactive compaction)

/**
 * extfrag_for_order() (vmstat.c): the percentage of free memory that lies in
 * blocks smaller than `order`; 0 when nothing is free.
 */
export function extfrag_for_order(zone: Zone, order: number): number {
  let free_pages = 0;
  let suitable = 0;
  for (let o = 0; o < NR_PAGE_ORDERS; o++) {
    free_pages += zone.nr_free[o] * 2 ** o;
    if (o >= order) suitable += zone.nr_free[o] * 2 ** (o - order);
  }
  if (free_pages === 0) return 0;
  return Math.floor(((free_pages - suitable * 2 ** order) * 100) / free_pages);
}

/** fragmentation_score_zone(): extfrag_for_order() at the huge page order. */
export function fragmentation_score_zone(zone: Zone): number {
  return extfrag_for_order(zone, COMPACTION_HPAGE_ORDER);
}

/**
 * fragmentation_score_zone_weighted(): the zone's score scaled by its share
 * of the node's present pages, so small zones (DMA) barely count.
 */
export function fragmentation_score_zone_weighted(m: Machine, zone: Zone): number {
  const pgdat = m.pgdat[zone.node_id];
  return Math.floor(
    (zone.present_pages * fragmentation_score_zone(zone)) / (pgdat.node_present_pages + 1),
  );
}

/** fragmentation_score_node(): the weighted scores of the node's populated zones, summed. */
export function fragmentation_score_node(m: Machine, pgdat: PgData): number {
  let score = 0;
  for (const zone of pgdat.node_zones)
    if (zone.populated_zone()) score += fragmentation_score_zone_weighted(m, zone);
  return score;
}

/**
 * fragmentation_score_wmark() (v6.16 as pagesim takes it, see the notes): proactive compaction starts above
 * the high mark and stops at the low one: low = 100 - proactiveness, high =
 * low + min(10, low / 2), at most 100. Default 20: low 80, high 90.
 */
export function fragmentation_score_wmark(m: Machine, low: boolean): number {
  const wmark_low = 100 - m.sysctl.compaction_proactiveness;
  const leeway = Math.min(10, Math.floor(wmark_low / 2));
  return low ? wmark_low : Math.min(wmark_low + leeway, 100);
}

// ---------------------------------------------------------------------------
// The run

/**
 * compact_zone()'s rescan rule: a non-sync run whose migration failed
 * inside a block scans the rest of the block now, so that the block gets
 * marked skip instead of being found again by fast_find_migrateblock().
 */
function should_finish_pageblock(m: Machine, cc: CompactControl): boolean {
  return (
    (cc.migrate_pfn & ((1 << m.mem.pageblock_order) - 1)) !== 0 &&
    !cc.ignore_skip_hint &&
    !cc.finish_pageblock &&
    cc.mode < MIGRATE_SYNC
  );
}

/**
 * check_drain (compact_zone()): once the migration scanner has left the
 * order-aligned block it migrated from, flush this CPU's pcp lists of the
 * zone so the freed pages can merge. Returns the new last_migrated_pfn.
 */
function check_drain(rt: Runtime, m: Machine, cc: CompactControl, last_migrated_pfn: Pfn): Pfn {
  if (cc.order <= 0 || !last_migrated_pfn) return last_migrated_pfn;
  const block = cc.migrate_pfn & ~((1 << cc.order) - 1);
  if (last_migrated_pfn >= block) return last_migrated_pfn;
  drain_pages_zone(m, this_cpu(rt, m), cc.zone);
  return 0;
}

/** Where the scanners start: the zone edges, or the cached positions. */
function compact_zone_start(m: Machine, cc: CompactControl): void {
  const zone = cc.zone;
  const start = zone.zone_start_pfn;
  const end = zone.zone_end_pfn;
  if (cc.whole_zone) {
    cc.migrate_pfn = start;
    cc.free_pfn = pageblock_start_pfn(m.mem, end - 1);
    return;
  }
  const sync = cc.mode !== MIGRATE_ASYNC ? 1 : 0;
  cc.migrate_pfn = zone.compact_cached_migrate_pfn[sync];
  cc.free_pfn = zone.compact_cached_free_pfn;
  if (cc.free_pfn < start || cc.free_pfn >= end) {
    cc.free_pfn = pageblock_start_pfn(m.mem, end - 1);
    zone.compact_cached_free_pfn = cc.free_pfn;
  }
  if (cc.migrate_pfn < start || cc.migrate_pfn >= end) {
    cc.migrate_pfn = start;
    zone.compact_cached_migrate_pfn[0] = start;
    zone.compact_cached_migrate_pfn[1] = start;
  }
  if (cc.migrate_pfn <= zone.compact_init_migrate_pfn) cc.whole_zone = true;
}

/**
 * compact_zone(): run the scanners until compact_finished() says stop, or
 * until `capc` (direct compaction) has captured a block. Returns the
 * compact_result. Counts COMPACTMIGRATE_SCANNED and COMPACTFREE_SCANNED at
 * the end (COMPACTISOLATED as it goes).
 */
export function* compact_zone(
  rt: Runtime,
  mm: MmState,
  cc: CompactControl,
  capc: CaptureControl | null = null,
): StepOf<number> {
  const m = mm.m;
  const mem = m.mem;
  const zone = cc.zone;
  const begin = compact_zone_begin(m, cc);
  if (begin !== COMPACT_CONTINUE) return begin;
  // For an observer (trace export) only: when, and the migrations before.
  const obs = mm.observer?.compact_zone;
  const t0_ns = obs ? rt.now() : 0;
  const migrated0 = obs ? m.vm_events[PGMIGRATE_SUCCESS] : 0;
  let last_migrated_pfn = 0;
  let update_cached =
    cc.mode === MIGRATE_ASYNC &&
    zone.compact_cached_migrate_pfn[0] === zone.compact_cached_migrate_pfn[1];
  let ret: number;
  const alloc = () => compaction_alloc(m, cc);
  const free = (pfn: Pfn) => compaction_free(m, cc, pfn);
  let rounds = 0;
  run: while ((ret = compact_finished(m, cc)) === COMPACT_CONTINUE) {
    assert(
      ++rounds <= 2 * zone.spanned_pages + 16,
      "compact_zone: rounds bounded by the zone size",
    );
    // A second round in the block last migrated from scans the rest of the
    // block in one go (finish_pageblock), so a block is not rescanned again
    // and again; failing that, it is marked skip.
    cc.finish_pageblock =
      pageblock_start_pfn(mem, last_migrated_pfn) === pageblock_start_pfn(mem, cc.migrate_pfn);
    // rescan: at most twice (a failed migration sets finish_pageblock).
    for (let pass = 0; ; pass++) {
      assert(pass < 2, "compact_zone: one rescan per round");
      const isolated = yield* isolate_migratepages(rt, mm, cc);
      if (isolated === ISOLATE_ABORT) {
        ret = COMPACT_CONTENDED;
        yield* putback_movable_pages(rt, mm, cc.migratepages);
        cc.nr_migratepages = 0;
        break run;
      }
      if (isolated === ISOLATE_NONE) {
        if (update_cached) zone.compact_cached_migrate_pfn[1] = zone.compact_cached_migrate_pfn[0];
        break;
      }
      update_cached = false;
      last_migrated_pfn = Math.max(
        zone.zone_start_pfn,
        pageblock_start_pfn(mem, cc.migrate_pfn - 1),
      );
      const err = yield* migrate_pages(
        rt,
        mm,
        cc.migratepages,
        alloc,
        free,
        cc.mode,
        MR_COMPACTION,
      );
      cc.nr_migratepages = 0;
      if (err) {
        yield* putback_movable_pages(rt, mm, cc.migratepages);
        if (err === -ENOMEM && !compact_scanners_met(m, cc)) {
          ret = COMPACT_CONTENDED;
          break run;
        }
        if (should_finish_pageblock(m, cc)) {
          cc.finish_pageblock = true;
          // A THP cannot form here any more: no drain for this block.
          if (cc.order === COMPACTION_HPAGE_ORDER) last_migrated_pfn = 0;
          continue;
        }
      }
      // Stop as soon as this run's own frees formed a block it captured.
      if (capc && capc.page >= 0) {
        ret = COMPACT_SUCCESS;
        break run;
      }
      break;
    }
    last_migrated_pfn = check_drain(rt, m, cc, last_migrated_pfn);
  }
  compact_zone_end(rt, m, cc);
  obs?.(rt, {
    t0_ns,
    zone: zone.name,
    order: cc.order,
    mode: cc.mode,
    result: ret,
    migrate_scanned: cc.total_migrate_scanned,
    free_scanned: cc.total_free_scanned,
    nr_migrated: m.vm_events[PGMIGRATE_SUCCESS] - migrated0,
  });
  return ret;
}

/**
 * The start of compact_zone(): reset the run's counters, return early
 * (SUCCESS or SKIPPED) when the allocation needs no compaction or
 * compaction cannot help, and place the scanners. COMPACT_CONTINUE to run.
 */
function compact_zone_begin(m: Machine, cc: CompactControl): number {
  cc.total_migrate_scanned = 0;
  cc.total_free_scanned = 0;
  cc.fast_start_pfn = 0;
  cc.nr_migratepages = 0;
  cc.nr_freepages = 0;
  cc.migratetype = gfp_migratetype(cc.gfp_mask);
  if (cc.order !== -1) {
    const r = compaction_suit_allocation_order(m, cc);
    if (r !== COMPACT_CONTINUE) return r;
  }
  // Deferred to the limit and still failing: forget the skip hints, if a
  // direct compaction has walked the whole zone since they were last reset.
  if (compaction_restarting(cc.zone, cc.order)) __reset_isolation_suitable(m, cc.zone);
  compact_zone_start(m, cc);
  return COMPACT_CONTINUE;
}

/**
 * The end of compact_zone(): free the unused targets (the cached free pfn
 * only ever moves back up to them) and count the run's scans.
 */
function compact_zone_end(rt: Runtime, m: Machine, cc: CompactControl): void {
  const zone = cc.zone;
  if (cc.nr_freepages > 0) {
    const free_pfn = pageblock_start_pfn(m.mem, release_freepages(rt, m, cc));
    if (free_pfn > zone.compact_cached_free_pfn) zone.compact_cached_free_pfn = free_pfn;
  }
  m.vm_events[COMPACTMIGRATE_SCANNED] += cc.total_migrate_scanned;
  m.vm_events[COMPACTFREE_SCANNED] += cc.total_free_scanned;
  VM_BUG_ON(!list_empty(m.mem, cc.migratepages), "compact_zone: sources left isolated");
}

/**
 * compact_nodes(): what a write to /proc/sys/vm/compact_memory does: every
 * populated zone gets a full synchronous compaction (order -1, MIGRATE_SYNC,
 * skip hints ignored, zone edge to zone edge). pagesim drains every CPU's
 * pcp lists before and after each zone so that the freed source pages reach
 * the buddy lists and merge (see the README's Fidelity section).
 */
export function* compact_nodes(rt: Runtime, mm: MmState): StepOf<void> {
  const m = mm.m;
  for (const zone of m.zones) {
    if (!zone.populated_zone()) continue;
    drain_all_pages(m, zone);
    const cc = compact_control(mm, zone, {
      order: -1,
      mode: MIGRATE_SYNC,
      ignore_skip_hint: true,
      whole_zone: true,
      gfp_mask: GFP_KERNEL,
    });
    yield* compact_zone(rt, mm, cc);
    compact_control_release(mm, cc);
    drain_all_pages(m, zone);
  }
}
