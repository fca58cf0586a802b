/**
 * Shared helpers for the test suite: small crafted machines and read-only
 * views of the model's state (free lists, pcp lists, snapshots).
 */

import { boot, type MachineConfig } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import type { Machine } from "../src/kernel/machine.ts";
import type { Zone } from "../src/kernel/mmzone.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  proc_buddyinfo,
  proc_pagetypeinfo,
  proc_vmstat,
  proc_zoneinfo,
} from "../src/kernel/procfs.ts";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/**
 * A small crafted machine: one CPU, "normal" layout (one ZONE_NORMAL from
 * pfn 0, no reservations), every allocator call followed by the whole-state
 * check.
 */
export function small(mem_bytes: number, cfg: Partial<MachineConfig> = {}): Machine {
  const m = boot({ mem_bytes, layout: "normal", nr_cpus: 1, debug_vm: true, ...cfg });
  m.verify = verify_machine;
  return m;
}

/** The pfns on free_area[order].free_list[mt], head first. */
export function free_list(m: Machine, zone: Zone, order: number, mt: number): number[] {
  const out: number[] = [];
  const head = zone.free_list(order, mt);
  for (let p = m.mem.lru_next[head]; p !== head; p = m.mem.lru_next[p]) out.push(p);
  return out;
}

/** The pfns on one pcp list (pindex) of one CPU, head first. */
export function pcp_list(m: Machine, zone: Zone, cpu: number, pindex: number): number[] {
  const out: number[] = [];
  const head = zone.per_cpu_pageset[cpu].lists_base + pindex;
  for (let p = m.mem.lru_next[head]; p !== head; p = m.mem.lru_next[p]) out.push(p);
  return out;
}

/** Everything observable about a machine, for "unchanged" comparisons. */
export function snapshot(m: Machine) {
  const mem = m.mem;
  return {
    buddyinfo: proc_buddyinfo(m),
    pagetypeinfo: proc_pagetypeinfo(m),
    zoneinfo: proc_zoneinfo(m),
    vmstat: proc_vmstat(m),
    flags: Array.from(mem.flags),
    refcount: Array.from(mem._refcount),
    mapcount: Array.from(mem._mapcount),
    page_type: Array.from(mem.page_type),
    mapping: Array.from(mem.mapping),
    private: Array.from(mem.page_private),
    next: Array.from(mem.lru_next),
    prev: Array.from(mem.lru_prev),
    pageblocks: Array.from(mem.pageblock_flags),
  };
}

/**
 * Allocate one page at a time with `alloc`, draining the pcp lists after
 * each so that only the pages handed out leave the free lists. Returns the
 * pfns in allocation order.
 */
export function alloc_drained(m: Machine, n: number, alloc: () => number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const pfn = alloc();
    if (pfn < 0) throw new Error(`allocation ${i} of ${n} failed`);
    out.push(pfn);
    drain_all_pages(m, null);
  }
  return out;
}

/** Parse "name value" lines into a map. */
export function parse_kv(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [k, v] = line.split(" ");
    out.set(k, Number(v));
  }
  return out;
}
