/**
 * check/world.ts: one configuration of the model checker made concrete: a
 * small machine (16 pages, one ZONE_NORMAL), an MmState with the era's
 * protocol, the Execution whose threads the explorer schedules, and the
 * kernel objects the thread kinds work on (drivers, processes). A World is
 * built afresh for every execution (stateless model checking: nothing is
 * cloned, everything is re-run from boot).
 *
 * Also the extension points, as types: a ThreadKind (what a thread does and
 * what it needs prepared), an Invariant (a whole-state check after every
 * step or at the end), and a CheckEra (an era's protocol, its droppable
 * rules, variants, standard configuration and extra invariants). The
 * registries live in threads.ts, invariants.ts and eras.ts.
 *
 * Invariants relied on:
 *  - setup (prepare hooks) runs on setup threads with a fixed schedule, so
 *    two Worlds built from one configuration are identical before the
 *    first explored step;
 *  - every page lock is created during setup, so lock ids do not depend on
 *    the schedule (the explorer's footprints name locks by id);
 *  - worker threads get ids first_worker.., one per configured thread, in
 *    the configured order. The machine has CPUS CPUs; a thread whose id is
 *    not below it runs on CPU 0 (lru.ts this_cpu), so some threads share
 *    pcp lists. That only adds dependencies between their steps.
 */

import { boot } from "../kernel/boot.ts";
import type { MovableEra } from "../kernel/eras/era.ts";
import type { Machine } from "../kernel/machine.ts";
import type { AddressSpace } from "../kernel/mm/owner.ts";
import { page_lock_of, page_lock_pfn } from "../kernel/mm/pagemap.ts";
import { MmState } from "../kernel/mm/state.ts";
import { PAGE_SIZE } from "../kernel/page.ts";
import { Execution } from "../runtime/execution.ts";
import type { Lock, Runtime, Step, StepOf } from "../runtime/runtime.ts";

/** Pages of the checker's machine: room for a few driver and process pages plus targets. */
export const WORLD_PAGES = 16;
/** At most this many threads and pages in one configuration. */
export const THREADS_MAX = 6;
export const PAGES_MAX = 4;
/** CPUs of the checker's machine (see the header). */
const CPUS = 4;

/** What the user asks to check. */
export interface CheckConfig {
  era: string;
  /** Thread kind names, one per thread (a kind may repeat). */
  threads: string[];
  /** Pages each driver (and process) owns at the start. */
  pages: number;
  /** Era rules switched off (kernel/rules.ts names). */
  drop_rules: string[];
  /** A named variant of the era (historical pre-fix code), or null. */
  variant: string | null;
  /**
   * Report sleeping with interrupts disabled (the kernel's
   * CONFIG_DEBUG_ATOMIC_SLEEP; on when absent). Off, a thread that sleeps
   * with interrupts disabled just sleeps, so what follows (a deadlock)
   * shows (runtime/execution.ts).
   */
  debug_atomic_sleep?: boolean;
}

/** What the invariants need to know of a movable_ops driver. */
export interface DriverView {
  readonly name: string;
  /** list_head slot of the driver's page list. */
  readonly pages: number;
  readonly pages_lock: Lock;
  /** slot -> pfn, -1 when empty: the pages the driver owns. */
  readonly slots: Int32Array;
  readonly isolated_pages: number;
}

/** One worker thread of a World. */
export interface ThreadCtx {
  /** Execution thread id. */
  readonly tid: number;
  readonly kind: string;
  /** The n-th thread of its kind (0-based): which slot or page it works on. */
  readonly index: number;
  /** Column name in traces: kind and index, e.g. "compact0". */
  readonly name: string;
  /** A list_head slot of its own: the pages it has isolated (cc->migratepages). */
  readonly list: number;
}

/** A kind of thread the checker can run (registry: threads.ts). */
export interface ThreadKind {
  readonly name: string;
  /** One line for `pagesim check --list` and the README. */
  readonly text: string;
  /**
   * Called once per World for each distinct kind in the configuration, in
   * order of first appearance, before any worker is spawned. May create
   * drivers or processes (idempotently: kinds share them) and run kernel
   * paths through w.run_setup().
   */
  prepare?(w: World): void;
  /** The thread's body. */
  body(w: World, ctx: ThreadCtx): (rt: Runtime) => Step;
}

/** A whole-state check (registry: invariants.ts). Returns null or what is wrong. */
export interface Invariant {
  readonly name: string;
  readonly text: string;
  /** "step": after every step (and at the end); "end": once all threads finished. */
  readonly when: "step" | "end";
  check(w: World): string | null;
}

/** A named historical variant of an era: the code before a fix. */
export interface Variant {
  readonly name: string;
  readonly text: string;
  /** Applied to the World before the workers are spawned. */
  apply(w: World): void;
}

/** A configuration that shows what a rule prevents, and the invariant that breaks without it. */
export interface RuleWitness {
  readonly threads: string[];
  readonly pages: number;
  readonly invariant: string;
  /**
   * Explore only schedules with at most this many preemptions (a bounded
   * witness: clean and broken within the bound, where the whole tree is
   * too large); absent: the whole tree.
   */
  readonly preemption_bound?: number;
}

/** An era as the checker sees it (registry: eras.ts). */
export interface CheckEra {
  readonly name: string;
  readonly era: MovableEra;
  /** Droppable rule names (kernel/rules.ts RULES of this era). */
  readonly rules: readonly string[];
  readonly variants: readonly Variant[];
  /** The configuration the tests exhaust and `pagesim check --era E` runs. */
  readonly standard: { threads: string[]; pages: number };
  /**
   * For each droppable rule, a configuration in which dropping it breaks an
   * invariant, and which (tests and benchmarks use these; a rule without a
   * witness is one the model does not need, say so in its text).
   */
  readonly witnesses: Readonly<Record<string, RuleWitness>>;
  /** Thread kinds this era supports (names in the thread registry). */
  readonly threads: readonly string[];
  /** Era-specific invariants (its written rules as whole-state checks). */
  readonly invariants: readonly Invariant[];
}

export interface WorldOptions {
  /** Resolves rt.choose(n) (the explorer enumerates, PCT draws). */
  choose: (n: number) => number;
  record_trace?: boolean;
  record_stack?: boolean;
}

export class World {
  readonly cfg: CheckConfig;
  readonly era: CheckEra;
  readonly m: Machine;
  readonly mm: MmState;
  readonly e: Execution;
  readonly drivers: DriverView[] = [];
  readonly processes: AddressSpace[] = [];
  readonly ctxs: ThreadCtx[] = [];
  /** Execution thread id of the first worker (lower ids ran setup). */
  first_worker = 0;
  /** Trace entries written during setup (not part of the explored schedule). */
  setup_trace = 0;
  /** Pages the compaction scanner visits (driver and process pages at setup), ascending. */
  scan_pfns: number[] = [];
  /** Objects that thread kinds share (a driver, a balloon device), by name. */
  readonly ext = new Map<string, unknown>();

  constructor(cfg: CheckConfig, era: CheckEra, kinds: ThreadKind[], opts: WorldOptions) {
    this.cfg = cfg;
    this.era = era;
    const nr_workers = cfg.threads.length;
    this.m = boot({
      mem_bytes: WORLD_PAGES * PAGE_SIZE,
      layout: "normal",
      nr_cpus: CPUS,
      pageblock_order: 4,
      extra_list_heads: 16,
      track_content: true,
      // No reserves: on 16 pages the default watermarks would refuse every allocation.
      sysctl: { min_free_kbytes: 0, user_min_free_kbytes: 0 },
    });
    this.e = new Execution({
      choose: opts.choose,
      debug_atomic_sleep: cfg.debug_atomic_sleep ?? true,
      record_trace: opts.record_trace ?? false,
      // Labels name kernel functions and the thread kinds' models of them.
      record_stack: opts.record_stack
        ? (path) => path.includes("/kernel/") || path.includes("/check/threads")
        : false,
    });
    const e = this.e;
    this.mm = new MmState(this.m, era.era, (c, k) => e.new_lock(c, k));
    for (const r of cfg.drop_rules) this.mm.dropped_rules.add(r);
    // Every page lock exists before the first step (see the header).
    for (let pfn = 0; pfn < this.m.mem.nr_pages; pfn++) {
      page_lock_of(this.mm, pfn);
    }
    const seen = new Set<string>();
    for (const k of kinds) {
      if (seen.has(k.name)) continue;
      seen.add(k.name);
      k.prepare?.(this);
    }
    const scan: number[] = [];
    for (const d of this.drivers) for (const p of d.slots) if (p >= 0) scan.push(p);
    for (const as of this.processes) for (const p of as.pages) if (p >= 0) scan.push(p);
    this.scan_pfns = scan.sort((a, b) => a - b);
    if (cfg.variant) {
      const v = era.variants.find((x) => x.name === cfg.variant);
      v?.apply(this);
    }
    this.setup_trace = e.trace?.length ?? 0;
    this.first_worker = e.threads.length;
    const count = new Map<string, number>();
    for (let i = 0; i < nr_workers; i++) {
      const k = kinds[i];
      const index = count.get(k.name) ?? 0;
      count.set(k.name, index + 1);
      const ctx: ThreadCtx = {
        tid: this.first_worker + i,
        kind: k.name,
        index,
        name: `${k.name}${index}`,
        list: this.m.mem.alloc_list_head(),
      };
      this.ctxs.push(ctx);
      e.spawn(ctx.name, k.body(this, ctx));
    }
  }

  /** Run `body` as a setup thread to completion (deterministic, not explored). */
  run_setup<T>(body: (rt: Runtime) => StepOf<T>): T {
    let out: T | undefined;
    this.e.spawn(`setup${this.e.threads.length}`, function* (rt) {
      out = yield* body(rt);
    });
    this.e.run((r) => r[0], this.e.steps + 100_000);
    return out as T;
  }

  /** A lock for people: "page lock of pfn 3", or its lockdep class. */
  lock_name(id: number): string {
    const pfn = page_lock_pfn(this.mm, id);
    if (pfn >= 0) return `page lock of pfn ${pfn}`;
    return this.e.locks[id]?.lock_class ?? `lock ${id}`;
  }

  /** The worker thread ids, in configuration order. */
  workers(): number[] {
    return this.ctxs.map((c) => c.tid);
  }
}
