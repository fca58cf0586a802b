/**
 * Shared helpers for the LRU, migration, movable_ops and compaction tests: a
 * small machine with an MmState whose locks come from one Execution, a way
 * to run a kernel path as a thread to completion, a zone filled with anon
 * pages to free holes in, and whole-state checks of the LRU lists and the
 * owners' reverse map.
 */

import { expect } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { era2016 } from "../src/kernel/eras/era2016.ts";
import { list_add, list_empty } from "../src/kernel/list.ts";
import type { Machine } from "../src/kernel/machine.ts";
import { lru_list_pfns, NR_LRU_LISTS, page_lru } from "../src/kernel/mm/lru.ts";
import {
  type AddressSpace,
  do_anonymous_page,
  mm_new_process,
  zap_anon_page,
} from "../src/kernel/mm/owner.ts";
import { MmState } from "../src/kernel/mm/state.ts";
import type { Zone } from "../src/kernel/mmzone.ts";
import { PAGE_MAPPING_ANON, PageLRU } from "../src/kernel/page.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  NR_FREE_PAGES,
  NR_INACTIVE_ANON,
  NR_ISOLATED_ANON,
  NR_ISOLATED_FILE,
} from "../src/kernel/vmstat_items.ts";
import { Execution } from "../src/runtime/execution.ts";
import type { Runtime, StepOf } from "../src/runtime/runtime.ts";

export interface Env {
  m: Machine;
  mm: MmState;
  e: Execution;
  /** Run `body` as one thread to completion and return its result. */
  run<T>(body: (rt: Runtime) => StepOf<T>): T;
  /** A fresh empty list_head slot (a migration list). */
  list(): number;
  /** A new process with `n` virtual pages. */
  mm_new(name: string, n: number): AddressSpace;
}

export function mm_env(): Env {
  const m = boot({
    mem_bytes: 16 * 1024 ** 2,
    layout: "normal",
    nr_cpus: 2,
    debug_vm: true,
    track_content: true,
  });
  m.verify = verify_machine;
  const e = new Execution({ choose: () => 0 });
  const mm = new MmState(m, era2016, (c, k) => e.new_lock(c, k));
  const run = <T>(body: (rt: Runtime) => StepOf<T>): T => {
    let out: T | undefined;
    e.spawn(`T${e.threads.length}`, function* (rt) {
      out = yield* body(rt);
    });
    e.run((r) => r[0], e.steps + 10_000_000);
    return out as T;
  };
  return {
    m,
    mm,
    e,
    run,
    list: () => m.mem.alloc_list_head(),
    mm_new: (name, n) => mm_new_process(mm, name, n),
  };
}

/** mm_env(): one Normal zone of pfns 0..NR_PAGES - 1, eight pageblocks of PB pages. */
export const NR_PAGES = 4096;
export const PB = 512;

/** The one populated zone of mm_env(). */
export function zone_of(env: Env): Zone {
  return env.m.zones.find((z) => z.populated_zone())!;
}

/**
 * Every pfn of the zone an anon page of one new process "p": watermarks are
 * zeroed so faults can take the last free page (pcp pages are not counted
 * free, so drain and fault again until nothing is left). vpage v holds tag
 * 1000 + v. Runs without the per-operation whole-state checks (the tests
 * check at the end).
 */
export function full_zone(env: Env): AddressSpace {
  const z = zone_of(env);
  z._watermark.fill(0);
  const p = env.mm_new("p", NR_PAGES);
  env.m.debug_vm = false;
  let n = 0;
  for (let round = 0; round < 64 && (round === 0 || z.vm_stat[NR_FREE_PAGES] > 0); round++) {
    for (; n < NR_PAGES; n++)
      if (env.run((rt) => do_anonymous_page(rt, env.mm, p, n, 1000 + n)) < 0) break;
    drain_all_pages(env.m, null);
  }
  env.m.debug_vm = true;
  expect(n).toBe(NR_PAGES);
  return p;
}

/** Unmap the anon page of `p` at `pfn` (it may stay on a pcp list). */
export function zap_pfn(env: Env, p: AddressSpace, pfn: number): void {
  env.run((rt) => zap_anon_page(rt, env.mm, p, env.m.mem.index[pfn]));
}

/** Free [start, start + n) of `p` back to the buddy lists. */
export function free_range(env: Env, p: AddressSpace, start: number, n: number): void {
  for (let pfn = start; pfn < start + n; pfn++) zap_pfn(env, p, pfn);
  drain_all_pages(env.m, null);
}

/** The pfns on a list_head slot, head first. */
export function list_pfns(m: Machine, head: number): number[] {
  const out: number[] = [];
  for (let p = m.mem.lru_next[head]; p !== head; p = m.mem.lru_next[p]) out.push(p);
  return out;
}

export function put_on_list(m: Machine, head: number, pfn: number): void {
  list_add(m.mem, pfn, head);
}

export { list_empty };

/**
 * The whole mm state: buddy checks, LRU lists agree with PG_lru, page_lru()
 * and the counters, every owner entry maps back through mapping/index.
 */
export function verify_mm(env: Env, isolated_anon = 0, isolated_file = 0): void {
  const { m, mm } = env;
  verify_machine(m);
  const mem = m.mem;
  const pgdat = m.pgdat[0];
  for (let lru = 0; lru < NR_LRU_LISTS; lru++) {
    const pfns = lru_list_pfns(mm, 0, lru);
    for (const p of pfns) {
      expect(PageLRU(mem, p), `pfn ${p} on lru ${lru} has PG_lru`).toBe(true);
      expect(page_lru(mem, p), `pfn ${p} on the list its flags name`).toBe(lru);
    }
    expect(pgdat.vm_stat[NR_INACTIVE_ANON + lru], `lru ${lru} count`).toBe(pfns.length);
  }
  expect(pgdat.vm_stat[NR_ISOLATED_ANON]).toBe(isolated_anon);
  expect(pgdat.vm_stat[NR_ISOLATED_FILE]).toBe(isolated_file);
  for (const as of mm.owners) {
    if (!as) continue;
    for (let i = 0; i < as.pages.length; i++) {
      const p = as.pages[i];
      if (p < 0) continue;
      const low = as.kind === "anon" ? PAGE_MAPPING_ANON : 0;
      expect(mem.mapping[p], `${as.name}[${i}] -> pfn ${p} maps back`).toBe(
        ((as.handle << 2) | low) >>> 0,
      );
      expect(mem.index[p]).toBe(i);
      expect(mem._refcount[p]).toBeGreaterThanOrEqual(1);
    }
  }
}
