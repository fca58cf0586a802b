/**
 * sim/world.ts: what a scenario's workload does to the kernel model, as
 * kernel paths: processes faulting in anonymous memory (do_anonymous_page)
 * and exiting or unmapping parts of it (zap_anon_page), files whose page
 * cache grows and is dropped (add_to_page_cache_lru,
 * delete_from_page_cache), unmovable and reclaimable kernel allocations
 * (alloc_pages with GFP_KERNEL, the slab's way into the buddy allocator),
 * and transparent huge page faults (an order-9 __GFP_COMP allocation with
 * the gfp mask /sys/kernel/mm/transparent_hugepage/defrag gives, counting
 * thp_fault_alloc / thp_fault_fallback, falling back to base pages).
 *
 * Every operation is a generator run by the workload thread: page faults
 * and frees yield the kernel's own steps (the LRU lock), and allocations
 * that are one step in the model yield a cond_resched() each, so simulated
 * time passes with the work done. All choices come from the World's PRNG.
 *
 * Simplified: a process is a set of mappings, each an AddressSpace of the
 * migration layer; a THP is an order-9 compound page outside the LRU (so
 * compaction steps over it, as it cannot move compound pages in the model);
 * all workload faults happen on the workload thread's CPU.
 */

import type { Host, HostGuest } from "../host/host.ts";
import {
  __GFP_COMP,
  __GFP_KSWAPD_RECLAIM,
  __GFP_RECLAIMABLE,
  GFP_KERNEL,
  GFP_TRANSHUGE,
  GFP_TRANSHUGE_LIGHT,
  type Gfp,
} from "../kernel/gfp.ts";
import type { Machine } from "../kernel/machine.ts";
import { this_cpu } from "../kernel/mm/lru.ts";
import {
  type AddressSpace,
  add_to_page_cache_lru,
  delete_from_page_cache,
  do_anonymous_page,
  mm_new_file,
  mm_new_process,
  zap_anon_page,
} from "../kernel/mm/owner.ts";
import type { MmState } from "../kernel/mm/state.ts";
import { PAGE_SIZE } from "../kernel/page.ts";
import { __free_pages, alloc_pages } from "../kernel/page_alloc/alloc.ts";
import { NR_ANON_THPS, THP_FAULT_ALLOC, THP_FAULT_FALLBACK } from "../kernel/vmstat_items.ts";
import type { Execution } from "../runtime/execution.ts";
import type { Prng } from "../runtime/prng.ts";
import type { Runtime, Step } from "../runtime/runtime.ts";
import type { Scenario } from "../workload/scenario.ts";
import { Digest } from "./digest.ts";

export const HPAGE_PMD_ORDER = 9;
const HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER;

/** A process: its anonymous mappings and its THPs (head pfns). */
export interface Proc {
  name: string;
  spaces: AddressSpace[];
  thps: number[];
}

/** A file and its page cache, in chunks as it grew. */
export interface CachedFile {
  name: string;
  spaces: AddressSpace[];
  /** Pages present (sum over the chunks). */
  nr_pages: number;
}

/** Kernel memory under one name: blocks of some order. */
export interface KernelMem {
  pfns: number[];
  orders: number[];
}

/** Counts of what the workload did, for the result. */
export interface WorkloadCounts {
  anon_faults: number;
  anon_fault_failures: number;
  anon_freed: number;
  cache_added: number;
  cache_add_failures: number;
  cache_dropped: number;
  kernel_pages: number;
  kernel_alloc_failures: number;
  thp_attempts: number;
  thp_success: number;
  thp_fallback_pages: number;
  compact_memory_writes: number;
  processes_started: number;
  processes_exited: number;
}

/** One compact_memory run, for the summary's story. */
export interface CompactRun {
  t_start_ns: number;
  t_end_ns: number;
  free_2mib_before: number;
  free_2mib_after: number;
  pgmigrate_success: number;
  balloon_migrate: number;
}

export type TraceEvent = {
  name: string;
  cat: string;
  ph: "X" | "i" | "C" | "M";
  /** microseconds */
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: "t" | "p" | "g";
  args?: Record<string, number | string>;
};

/** Trace events kept at most (instants beyond this are counted, not kept). */
export const TRACE_EVENTS_MAX = 200_000;

export class World {
  readonly procs = new Map<string, Proc>();
  readonly files = new Map<string, CachedFile>();
  readonly kmem = new Map<string, KernelMem>();
  readonly counts: WorkloadCounts = {
    anon_faults: 0,
    anon_fault_failures: 0,
    anon_freed: 0,
    cache_added: 0,
    cache_add_failures: 0,
    cache_dropped: 0,
    kernel_pages: 0,
    kernel_alloc_failures: 0,
    thp_attempts: 0,
    thp_success: 0,
    thp_fallback_pages: 0,
    compact_memory_writes: 0,
    processes_started: 0,
    processes_exited: 0,
  };
  readonly digest = new Digest();
  /** One byte per pageblock: 1 where an order-9 THP lives (memory map). */
  readonly thp_block: Uint8Array;
  readonly trace: TraceEvent[] | null;
  trace_dropped = 0;
  /** compact_memory runs finished. */
  compaction_runs = 0;
  /** Writes to compact_memory not yet served by the compaction thread. */
  compact_requests = 0;
  /** The workload thread has finished: helper threads may exit. */
  done = false;
  /** The guest's name ("guest", or "guest0".. when the host runs several). */
  guest_name = "guest";
  /** This guest's balloon devices as the host sees them, in scenario order. */
  readonly balloons: HostGuest[] = [];
  /** The host the guest runs on (null without balloons). */
  host: Host | null = null;
  /** Each compact_memory run: when, and the free 2 MiB blocks before and after. */
  readonly compact_log: CompactRun[] = [];
  /** Lock waits by lock class (count and simulated ns), from Execution.on_lock_wait. */
  readonly lock_waits: Record<string, { count: number; wait_ns: number }> = {};

  constructor(
    readonly sc: Scenario,
    readonly m: Machine,
    readonly mm: MmState,
    readonly e: Execution,
    readonly prng: Prng,
    keep_trace: boolean,
  ) {
    this.thp_block = new Uint8Array((m.mem.nr_pages >> HPAGE_PMD_ORDER) + 1);
    this.trace = keep_trace ? [] : null;
  }

  emit(ev: TraceEvent): void {
    if (!this.trace) return;
    if (this.trace.length >= TRACE_EVENTS_MAX) this.trace_dropped++;
    else this.trace.push(ev);
  }

  /** An allocation the model could not satisfy (no reclaim, no OOM killer): an instant on the CPU's track. */
  alloc_failed(rt: Runtime, what: string, order: number): void {
    this.emit({
      name: "alloc_fail",
      cat: "alloc",
      ph: "i",
      s: "t",
      ts: rt.now() / 1000,
      pid: 1,
      tid: rt.current < this.m.nr_cpus ? rt.current : 0,
      args: { what, order },
    });
  }

  proc(name: string): Proc {
    let p = this.procs.get(name);
    if (!p) {
      p = { name, spaces: [], thps: [] };
      this.procs.set(name, p);
    }
    return p;
  }

  /** Processes a name stands for: the process itself and its group NAME/i. */
  procs_named(name: string): Proc[] {
    const out: Proc[] = [];
    for (const p of this.procs.values()) {
      if (p.name === name || p.name.startsWith(`${name}/`)) out.push(p);
    }
    return out;
  }
}

export type AllocPattern = "contiguous" | "interleaved" | "random";

/**
 * Fault in `pages` anonymous pages: contiguous into `name`; interleaved or
 * random across `ways` processes NAME/0.. (page by page in turn, or each
 * page to a random one), so neighbouring frames belong to different
 * processes. Stops at the first failed fault (no reclaim, no OOM killer).
 */
export function* alloc_anon(
  rt: Runtime,
  w: World,
  name: string,
  pages: number,
  pattern: AllocPattern,
  ways: number,
): Step {
  if (pages <= 0) return;
  const n = pattern === "contiguous" ? 1 : ways;
  const per = Math.ceil(pages / n);
  const spaces: AddressSpace[] = [];
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const pname = n === 1 ? name : `${name}/${i}`;
    const as = mm_new_process(w.mm, pname, per);
    w.proc(pname).spaces.push(as);
    spaces.push(as);
  }
  for (let i = 0; i < pages; i++) {
    let k = pattern === "random" ? w.prng.below(n) : i % n;
    while (next[k] >= per) k = (k + 1) % n;
    const pfn = yield* do_anonymous_page(rt, w.mm, spaces[k], next[k]++, i);
    w.digest.add(pfn);
    if (pfn < 0) {
      w.counts.anon_fault_failures++;
      w.alloc_failed(rt, "anon fault", 0);
      return;
    }
    w.counts.anon_faults++;
  }
}

export type FreePattern = "all" | "alternate" | "random";

/** Unmap pages of the processes `name` names: all (exit), every second, or `percent`. */
export function* free_anon(
  rt: Runtime,
  w: World,
  name: string,
  pattern: FreePattern,
  percent: number,
): Step {
  for (const p of w.procs_named(name)) {
    for (const as of p.spaces) {
      for (let v = 0; v < as.pages.length; v++) {
        if (as.pages[v] < 0) continue;
        if (pattern === "alternate" && (v & 1) === 0) continue;
        if (pattern === "random" && !w.prng.chance(percent, 100)) continue;
        w.digest.add(~as.pages[v]);
        yield* zap_anon_page(rt, w.mm, as, v);
        w.counts.anon_freed++;
      }
    }
    if (pattern === "all") {
      yield* free_thps(rt, w, p);
      w.procs.delete(p.name);
    }
  }
}

function* free_thps(rt: Runtime, w: World, p: Proc): Step {
  const m = w.m;
  for (const pfn of p.thps) {
    m.pgdat[0].vm_stat[NR_ANON_THPS] -= HPAGE_PMD_NR;
    w.thp_block[pfn >> HPAGE_PMD_ORDER] = 0;
    __free_pages(m, this_cpu(rt, m), pfn, HPAGE_PMD_ORDER);
    w.digest.add(~pfn);
    yield* rt.cond_resched();
  }
  p.thps.length = 0;
}

/** Read `pages` more pages of file `name` into the page cache. */
export function* cache_grow(rt: Runtime, w: World, name: string, pages: number): Step {
  if (pages <= 0) return;
  let f = w.files.get(name);
  if (!f) {
    f = { name, spaces: [], nr_pages: 0 };
    w.files.set(name, f);
  }
  const as = mm_new_file(w.mm, `${name}#${f.spaces.length}`, pages);
  f.spaces.push(as);
  for (let i = 0; i < pages; i++) {
    const pfn = yield* add_to_page_cache_lru(rt, w.mm, as, i, i);
    w.digest.add(pfn);
    if (pfn < 0) {
      w.counts.cache_add_failures++;
      w.alloc_failed(rt, "page cache", 0);
      return;
    }
    f.nr_pages++;
    w.counts.cache_added++;
  }
}

/** Drop `pages` pages of file `name` from the page cache, oldest first or at random. */
export function* cache_shrink(
  rt: Runtime,
  w: World,
  name: string,
  pages: number,
  pattern: "oldest" | "random",
): Step {
  const f = w.files.get(name);
  if (!f) return;
  const present: number[] = [];
  for (let s = 0; s < f.spaces.length; s++) {
    const as = f.spaces[s];
    for (let i = 0; i < as.pages.length; i++) if (as.pages[i] >= 0) present.push(s * 2 ** 26 + i);
  }
  const n = Math.min(pages, present.length);
  for (let k = 0; k < n; k++) {
    // random: a partial Fisher-Yates shuffle picks n distinct pages.
    if (pattern === "random") {
      const j = k + w.prng.below(present.length - k);
      const t = present[k];
      present[k] = present[j];
      present[j] = t;
    }
    const s = Math.floor(present[k] / 2 ** 26);
    const i = present[k] % 2 ** 26;
    w.digest.add(~f.spaces[s].pages[i]);
    yield* delete_from_page_cache(rt, w.mm, f.spaces[s], i);
    f.nr_pages--;
    w.counts.cache_dropped++;
  }
}

/**
 * Allocate `bytes` of kernel memory under `name` in blocks of orders drawn
 * from [0, max_order] (or exactly `order`), unmovable or reclaimable, then
 * free all but `keep_percent` of the blocks at random: the survivors sit
 * in many pageblocks, which the allocator has claimed for their migratetype.
 */
export function* kernel_alloc(
  rt: Runtime,
  w: World,
  name: string,
  bytes: number,
  orders: { min: number; max: number },
  reclaimable_percent: number,
  keep_percent: number,
): Step {
  const m = w.m;
  let km = w.kmem.get(name);
  if (!km) {
    km = { pfns: [], orders: [] };
    w.kmem.set(name, km);
  }
  const fresh: number[] = [];
  let left = Math.ceil(bytes / PAGE_SIZE);
  while (left > 0) {
    const order = orders.min === orders.max ? orders.min : w.prng.range(orders.min, orders.max);
    const gfp: Gfp = w.prng.chance(reclaimable_percent, 100)
      ? GFP_KERNEL | __GFP_RECLAIMABLE
      : GFP_KERNEL;
    yield* rt.cond_resched();
    const pfn = alloc_pages(m, this_cpu(rt, m), gfp, order);
    w.digest.add(pfn);
    if (pfn < 0) {
      w.counts.kernel_alloc_failures++;
      w.alloc_failed(rt, "kernel", order);
      break;
    }
    fresh.push(pfn, order);
    left -= 1 << order;
    w.counts.kernel_pages += 1 << order;
  }
  for (let i = 0; i < fresh.length; i += 2) {
    if (w.prng.chance(keep_percent, 100)) {
      km.pfns.push(fresh[i]);
      km.orders.push(fresh[i + 1]);
    } else {
      yield* rt.cond_resched();
      __free_pages(m, this_cpu(rt, m), fresh[i], fresh[i + 1]);
      w.counts.kernel_pages -= 1 << fresh[i + 1];
    }
  }
}

/** Free `percent` of the kernel memory under `name`, at random. */
export function* kernel_free(rt: Runtime, w: World, name: string, percent: number): Step {
  const km = w.kmem.get(name);
  if (!km) return;
  const m = w.m;
  const keep: KernelMem = { pfns: [], orders: [] };
  for (let i = 0; i < km.pfns.length; i++) {
    if (percent < 100 && !w.prng.chance(percent, 100)) {
      keep.pfns.push(km.pfns[i]);
      keep.orders.push(km.orders[i]);
      continue;
    }
    yield* rt.cond_resched();
    __free_pages(m, this_cpu(rt, m), km.pfns[i], km.orders[i]);
    w.digest.add(~km.pfns[i]);
    w.counts.kernel_pages -= 1 << km.orders[i];
  }
  if (keep.pfns.length) w.kmem.set(name, keep);
  else w.kmem.delete(name);
}

/** vma_thp_gfp_mask() for a VMA without MADV_HUGEPAGE. */
export function thp_gfp(defrag: Scenario["kernel"]["thp_defrag"]): Gfp {
  switch (defrag) {
    case "always":
      return GFP_TRANSHUGE;
    case "defer":
    case "defer+madvise":
      return GFP_TRANSHUGE_LIGHT | __GFP_KSWAPD_RECLAIM;
    default:
      return GFP_TRANSHUGE_LIGHT;
  }
}

/**
 * `count` THP faults in process `name`: an order-9 allocation each;
 * success counts thp_fault_alloc and nr_anon_transparent_hugepages, failure
 * thp_fault_fallback and (with `fallback`) faults 512 base pages instead.
 * With transparent_hugepage=never no THP is tried.
 */
export function* thp_faults(
  rt: Runtime,
  w: World,
  name: string,
  count: number,
  fallback: boolean,
): Step {
  const m = w.m;
  const p = w.proc(name);
  const gfp = thp_gfp(w.sc.kernel.thp_defrag) | __GFP_COMP;
  const never = w.sc.kernel.transparent_hugepage === "never";
  for (let i = 0; i < count; i++) {
    yield* rt.cond_resched();
    let pfn = -1;
    if (!never) {
      w.counts.thp_attempts++;
      pfn = alloc_pages(m, this_cpu(rt, m), gfp, HPAGE_PMD_ORDER);
      w.digest.add(pfn);
    }
    if (pfn >= 0) {
      m.vm_events[THP_FAULT_ALLOC]++;
      m.pgdat[0].vm_stat[NR_ANON_THPS] += HPAGE_PMD_NR;
      w.thp_block[pfn >> HPAGE_PMD_ORDER] = 1;
      p.thps.push(pfn);
      w.counts.thp_success++;
      continue;
    }
    if (!never) {
      m.vm_events[THP_FAULT_FALLBACK]++;
      w.emit({
        name: "thp_fault_fallback",
        cat: "alloc",
        ph: "i",
        s: "t",
        ts: rt.now() / 1000,
        pid: 1,
        tid: rt.current < m.nr_cpus ? rt.current : 0,
      });
    }
    if (fallback) {
      const before = w.counts.anon_faults;
      yield* alloc_anon(rt, w, name, HPAGE_PMD_NR, "contiguous", 1);
      w.counts.thp_fallback_pages += w.counts.anon_faults - before;
    }
  }
}
