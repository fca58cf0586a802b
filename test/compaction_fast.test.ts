// The fast free-list searches of compaction (src/kernel/compaction.ts,
// v5.1+): fast_isolate_freepages() takes a free block high in the zone from
// the free lists instead of walking pageblocks, falls back to the highest
// candidate or (direct compaction) the half-way block, and
// fast_find_migrateblock() starts the migration scanner at a low pageblock
// that already has free pages, going back once to the lowest one it found
// when a later search fails. Counters and cursors move as predicted.
import { describe, expect, it } from "vitest";
import {
  type CompactControl,
  compact_control,
  compact_control_release,
  FAST_START_USED,
  fast_find_migrateblock,
  fast_isolate_freepages,
  freelist_scan_limit,
} from "../src/kernel/compaction.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { list_del } from "../src/kernel/list.ts";
import { MIGRATE_SYNC_LIGHT } from "../src/kernel/migrate.ts";
import { get_pageblock_skip, set_pageblock_skip } from "../src/kernel/page.ts";
import { __free_pages, prep_new_page } from "../src/kernel/page_alloc/alloc.ts";
import { COMPACTISOLATED, NR_FREE_PAGES } from "../src/kernel/vmstat_items.ts";
import {
  type Env,
  free_range,
  full_zone,
  list_pfns,
  mm_env,
  NR_PAGES,
  PB,
  verify_mm,
  zone_of,
} from "./mm_helpers.ts";

/** A kcompactd-like order-9 control with both scanners placed by hand. */
function cc_at(env: Env, opts: Partial<CompactControl> = {}): CompactControl {
  return compact_control(env.mm, zone_of(env), {
    order: 9,
    search_order: 9,
    mode: MIGRATE_SYNC_LIGHT,
    gfp_mask: GFP_HIGHUSER_MOVABLE,
    migratetype: 1,
    migrate_pfn: 0,
    free_pfn: NR_PAGES - PB,
    ...opts,
  });
}

describe("compaction fast searches", () => {
  it("compaction fast: freelist_scan_limit halves per failure down to 1", () => {
    const env = mm_env();
    const cc = cc_at(env);
    const limits: number[] = [];
    for (let f = 0; f < 8; f++) {
      cc.fast_search_fail = f;
      limits.push(freelist_scan_limit(cc));
    }
    expect(limits).toEqual([33, 17, 9, 5, 3, 2, 1, 1]);
    compact_control_release(env.mm, cc);
  });

  it("compaction fast: fast_isolate_freepages takes a free block in the top quarter from the free list", () => {
    const env = mm_env();
    const { m, mm } = env;
    const z = zone_of(env);
    const p = full_zone(env);
    // An order-3 block at the top of block 7, an order-2 block low in block 2.
    free_range(env, p, NR_PAGES - 8, 8);
    free_range(env, p, 1024, 4);
    expect(z.nr_free[3]).toBe(1);
    expect(z.nr_free[2]).toBe(1);
    const iso0 = m.vm_events[COMPACTISOLATED];
    const cc = cc_at(env);
    cc.nr_migratepages = 8;
    fast_isolate_freepages(m, cc);
    // distance 3584: preferred low_pfn = block start of 3584 - 896 = 2560,
    // min_pfn = block start of 3584 - 1792 = 1536. Orders from 8 down: the
    // order-3 list's only entry, 4088, is above low_pfn: taken at once. One
    // entry looked at plus the 7 further pages of the block isolated.
    expect(list_pfns(m, cc.freepages)).toEqual([NR_PAGES - 8]);
    expect(m.mem.page_private[NR_PAGES - 8]).toBe(3);
    expect(cc.nr_freepages).toBe(8);
    expect(cc.total_free_scanned).toBe(8);
    expect(m.vm_events[COMPACTISOLATED] - iso0).toBe(8);
    expect(cc.search_order).toBe(3);
    expect(cc.fast_search_fail).toBe(0);
    expect(z.vm_stat[NR_FREE_PAGES]).toBe(4);
    // The highest block seen (3584) lowers the cached free pfn below it.
    expect(z.compact_cached_free_pfn).toBe(NR_PAGES - 2 * PB);
    // Enough free pages: the rest of block 7 was not scanned.
    expect(get_pageblock_skip(m.mem, NR_PAGES - PB)).toBe(false);
    // Give the block back (as release_freepages() does) and check the zone.
    list_del(m.mem, NR_PAGES - 8);
    prep_new_page(m, NR_PAGES - 8, 3, 0);
    __free_pages(m, 0, NR_PAGES - 8, 3);
    compact_control_release(mm, cc);
    verify_mm(env);
  });

  it("compaction fast: with only a low free block the search fails; direct compaction jumps the free scanner to the half-way block", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = full_zone(env);
    free_range(env, p, 1024, 8);
    const z = zone_of(env);
    // kcompactd: the order-3 block at 1024 is below min_pfn (1536): no
    // candidate, a failure, and the free scanner stays.
    const cc = cc_at(env);
    cc.nr_migratepages = 8;
    fast_isolate_freepages(m, cc);
    expect(cc.nr_freepages).toBe(0);
    expect(cc.fast_search_fail).toBe(1);
    expect(cc.free_pfn).toBe(NR_PAGES - PB);
    expect(cc.total_free_scanned).toBe(1);
    compact_control_release(mm, cc);
    // Direct compaction, first scan: pessimistic, the free scanner moves to
    // min_pfn, whose block (3, all allocated, MOVABLE) is scanned whole by
    // fast_isolate_around(): 512 pfns, nothing free, so it is marked skip.
    const dc = cc_at(env, { direct_compaction: true });
    dc.nr_migratepages = 8;
    fast_isolate_freepages(m, dc);
    expect(dc.free_pfn).toBe(3 * PB);
    expect(dc.nr_freepages).toBe(0);
    expect(dc.total_free_scanned).toBe(1 + PB);
    expect(get_pageblock_skip(m.mem, 3 * PB)).toBe(true);
    expect(z.nr_free[3]).toBe(1);
    compact_control_release(mm, dc);
    verify_mm(env);
  });

  it("compaction fast: fast_find_migrateblock starts at a low block with free pages, skips marked ones, and goes back once to the lowest found", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = full_zone(env);
    // An order-4 block in block 2 (pfn 1024) and one in block 1 (pfn 512).
    free_range(env, p, 1024, 16);
    free_range(env, p, PB, 16);
    const z = zone_of(env);
    expect(z.nr_free[4]).toBe(2);
    // From the zone start: high_pfn = block start of (3584 - 0) / 2 = 1536;
    // the first entry on the order-4 list is below it and its block is not
    // marked: the scanner starts at that block.
    const cc = cc_at(env);
    const first = m.mem.lru_next[z.free_list(4, 1)];
    const start = fast_find_migrateblock(m, cc);
    expect(start).toBe(first & ~(PB - 1));
    expect(cc.fast_start_pfn).toBe(first);
    expect(cc.total_migrate_scanned).toBe(1);
    // The found entry went to the tail of its list: the next search sees
    // the other block first.
    expect(m.mem.lru_prev[z.free_list(4, 1)]).toBe(first);
    compact_control_release(mm, cc);
    // Both blocks marked skip: nothing found, a failure; the start stays.
    set_pageblock_skip(m.mem, PB);
    set_pageblock_skip(m.mem, 1024);
    const c2 = cc_at(env);
    expect(fast_find_migrateblock(m, c2)).toBe(0);
    expect(c2.fast_search_fail).toBe(1);
    expect(c2.total_migrate_scanned).toBe(2);
    // A later failing search from pfn 2048 goes back to the lowest pfn an
    // earlier search of this run found, once.
    c2.migrate_pfn = 2048;
    c2.fast_start_pfn = 1024;
    expect(fast_find_migrateblock(m, c2)).toBe(1024);
    expect(c2.migrate_pfn).toBe(1024);
    expect(c2.fast_start_pfn).toBe(FAST_START_USED);
    c2.migrate_pfn = 2048;
    expect(fast_find_migrateblock(m, c2)).toBe(2048);
    // Small orders never use it; nor does a run that ignores skip hints.
    const c3 = cc_at(env, { order: 3 });
    expect(fast_find_migrateblock(m, c3)).toBe(0);
    expect(c3.total_migrate_scanned).toBe(0);
    compact_control_release(mm, c2);
    compact_control_release(mm, c3);
    verify_mm(env);
  });
});
