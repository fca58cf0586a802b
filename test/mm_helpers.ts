/**
 * Shared helpers for the LRU, migration and movable_ops tests: a small
 * machine with an MmState whose locks come from one Execution, a way to run
 * a kernel path as a thread to completion, and whole-state checks of the
 * LRU lists and the owners' reverse map.
 */

import { expect } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { era2016 } from "../src/kernel/eras/era2016.ts";
import { list_add, list_empty } from "../src/kernel/list.ts";
import type { Machine } from "../src/kernel/machine.ts";
import { lru_list_pfns, NR_LRU_LISTS, page_lru } from "../src/kernel/mm/lru.ts";
import { type AddressSpace, mm_new_process } from "../src/kernel/mm/owner.ts";
import { MmState } from "../src/kernel/mm/state.ts";
import { PAGE_MAPPING_ANON, PageLRU } from "../src/kernel/page.ts";
import {
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
