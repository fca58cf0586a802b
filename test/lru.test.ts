// LRU lists and their owners: faulting in anon and page cache pages,
// isolate_lru_page / putback_lru_page, mlock, unmapping.
import { describe, expect, it } from "vitest";
import { EBUSY } from "../src/kernel/errno.ts";
import {
  isolate_lru_page,
  isolate_lru_page_to_list,
  LRU_INACTIVE_ANON,
  LRU_INACTIVE_FILE,
  LRU_UNEVICTABLE,
  lru_list_pfns,
  putback_lru_page,
} from "../src/kernel/mm/lru.ts";
import {
  add_to_page_cache_lru,
  do_anonymous_page,
  mlock_page,
  mm_new_file,
  mm_new_process,
  munlock_page,
  zap_anon_page,
} from "../src/kernel/mm/owner.ts";
import { PageLRU } from "../src/kernel/page.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  NR_ANON_MAPPED,
  NR_FREE_PAGES,
  NR_ISOLATED_ANON,
  NR_MLOCK,
  NR_ZONE_INACTIVE_ANON,
} from "../src/kernel/vmstat_items.ts";
import { list_pfns, mm_env, verify_mm } from "./mm_helpers.ts";

describe("lru", () => {
  it("lru: faulted anon pages sit on the inactive anon list with their owner's view", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const zone = m.zone_by_name("Normal");
    const free0 = zone.vm_stat[NR_FREE_PAGES];
    const p = mm_new_process(mm, "p", 8);
    for (let v = 0; v < 8; v++)
      expect(run((rt) => do_anonymous_page(rt, mm, p, v, 100 + v))).toBeGreaterThanOrEqual(0);
    expect(lru_list_pfns(mm, 0, LRU_INACTIVE_ANON).length).toBe(8);
    expect(m.pgdat[0].vm_stat[NR_ANON_MAPPED]).toBe(8);
    expect(zone.vm_stat[NR_ZONE_INACTIVE_ANON]).toBe(8);
    for (let v = 0; v < 8; v++) {
      const pfn = p.pages[v];
      expect(m.mem.content![pfn]).toBe(100 + v);
      expect(m.mem._refcount[pfn]).toBe(1);
      expect(m.mem._mapcount[pfn]).toBe(0);
    }
    verify_mm(env);
    for (let v = 0; v < 8; v++) expect(run((rt) => zap_anon_page(rt, mm, p, v))).toBe(0);
    expect(lru_list_pfns(mm, 0, LRU_INACTIVE_ANON).length).toBe(0);
    expect(m.pgdat[0].vm_stat[NR_ANON_MAPPED]).toBe(0);
    drain_all_pages(m, null);
    expect(zone.vm_stat[NR_FREE_PAGES]).toBe(free0);
    verify_mm(env);
  });

  it("lru: isolation takes a reference and clears PG_lru; a second isolation fails; putback restores", () => {
    const env = mm_env();
    const { m, mm, run, list } = env;
    const p = mm_new_process(mm, "p", 2);
    const pfn = run((rt) => do_anonymous_page(rt, mm, p, 0, 7));
    const l = list();
    expect(run((rt) => isolate_lru_page_to_list(rt, mm, pfn, l))).toBe(0);
    expect(m.mem._refcount[pfn]).toBe(2);
    expect(PageLRU(m.mem, pfn)).toBe(false);
    expect(m.pgdat[0].vm_stat[NR_ISOLATED_ANON]).toBe(1);
    expect(list_pfns(m, l)).toEqual([pfn]);
    verify_mm(env, 1);
    expect(run((rt) => isolate_lru_page(rt, mm, pfn))).toBe(-EBUSY);
    m.mem.lru_next[l] = l;
    m.mem.lru_prev[l] = l;
    m.pgdat[0].vm_stat[NR_ISOLATED_ANON] -= 1;
    run((rt) => putback_lru_page(rt, mm, pfn));
    expect(m.mem._refcount[pfn]).toBe(1);
    expect(lru_list_pfns(mm, 0, LRU_INACTIVE_ANON)).toEqual([pfn]);
    verify_mm(env);
  });

  it("lru: page cache pages go on the inactive file list", () => {
    const env = mm_env();
    const { mm, run } = env;
    const f = mm_new_file(mm, "f", 4);
    const pfn = run((rt) => add_to_page_cache_lru(rt, mm, f, 3, 9));
    expect(lru_list_pfns(mm, 0, LRU_INACTIVE_FILE)).toEqual([pfn]);
    verify_mm(env);
  });

  it("lru: mlock moves a page to the unevictable list and counts NR_MLOCK; munlock moves it back", () => {
    const env = mm_env();
    const { m, mm, run } = env;
    const p = mm_new_process(mm, "p", 1);
    const pfn = run((rt) => do_anonymous_page(rt, mm, p, 0, 1));
    run((rt) => mlock_page(rt, mm, pfn));
    expect(lru_list_pfns(mm, 0, LRU_UNEVICTABLE)).toEqual([pfn]);
    expect(m.zone_by_name("Normal").vm_stat[NR_MLOCK]).toBe(1);
    verify_mm(env);
    run((rt) => munlock_page(rt, mm, pfn));
    expect(lru_list_pfns(mm, 0, LRU_INACTIVE_ANON)).toEqual([pfn]);
    expect(m.zone_by_name("Normal").vm_stat[NR_MLOCK]).toBe(0);
    run((rt) => mlock_page(rt, mm, pfn));
    run((rt) => zap_anon_page(rt, mm, p, 0));
    expect(m.zone_by_name("Normal").vm_stat[NR_MLOCK]).toBe(0);
    verify_mm(env);
  });

  it("lru: a page unmapped while isolated is freed when it is put back", () => {
    const env = mm_env();
    const { m, mm, run, list } = env;
    const p = mm_new_process(mm, "p", 1);
    const pfn = run((rt) => do_anonymous_page(rt, mm, p, 0, 1));
    const l = list();
    run((rt) => isolate_lru_page_to_list(rt, mm, pfn, l));
    run((rt) => zap_anon_page(rt, mm, p, 0));
    expect(m.mem._refcount[pfn]).toBe(1);
    verify_mm(env, 1);
    m.mem.lru_next[l] = l;
    m.mem.lru_prev[l] = l;
    m.pgdat[0].vm_stat[NR_ISOLATED_ANON] -= 1;
    run((rt) => putback_lru_page(rt, mm, pfn));
    expect(m.mem._refcount[pfn]).toBe(0);
    verify_mm(env);
  });
});
