/**
 * check/runner.ts: one execution of a configuration under the checker: it
 * builds the World, steps the thread the explorer picks, observes what the
 * step touched (its footprint), runs the invariants after the step, and
 * turns whatever the kernel threw into a Violation.
 *
 * Footprints (for partial-order reduction). A step is the announced
 * operation plus the plain code that follows it up to the next
 * announcement. Locations are whole pages (a pfn, or a list head slot) and
 * locks. What a step reads: the page its announcement names (a lockless
 * read, a wait), and every page and list head its code read from the page
 * arrays, recorded exactly (check/reads.ts). What it writes: the page an
 * atomic or write announcement names, and every page whose fields or list
 * links changed, found exactly by comparing the page arrays with a copy
 * taken after the previous step; lock operations touch their lock (see
 * acquire_key). Two steps are dependent when one writes a location the
 * other reads or writes.
 * Reads used to be the announced ones only, on the assumption that plain
 * code reads an unannounced page only under a lock it holds. The eras
 * break that assumption where the kernel did (the 2012 and 2014
 * balloon_page_dequeue() walk the list without pages_lock), and the
 * reduced search missed their races: "proved within bounds" was unsound.
 * Why whole pages, not pfn and field: JavaScript-side bookkeeping (a
 * driver's slot table, isolated_pages, a process's page table) is not in
 * the arrays. The assumption that remains (README "Model checker"): such
 * bookkeeping changes only under a lock, or in a step that also changes a
 * field of a page that every step reading the bookkeeping reads; at page
 * granularity that is any field of the page. The runner checks the part
 * of it it can: a step that changes a driver's isolated_pages or pages
 * while writing no page is a violation, "checker-footprint". The
 * announced field "pte" (the process page table entry) names the page it
 * maps.

 * Violations: an invariant (invariants.ts, the era's), or an exception from
 * a step: DeadlockError "deadlock", LockdepError "lockdep", LockBug
 * "lock-bug", KernelBug (VM_BUG_ON, list corruption) "kernel-bug",
 * BadPageError "bad-page", MovableOpsError "movable-ops-contract", anything
 * else "exception"; an execution longer than its bound is "step-bound".
 */

import { BadPageError, KernelBug } from "../kernel/bug.ts";
import { MovableOpsError } from "../kernel/movable_ops.ts";
import { DeadlockError, LockBug, LockdepError } from "../runtime/execution.ts";
import {
  OP_ATOMIC,
  OP_LOCK,
  OP_READ,
  OP_TRYLOCK,
  OP_UNLOCK,
  OP_WAIT,
  OP_WRITE,
} from "../runtime/runtime.ts";
import { check_era } from "./eras.ts";
import { invariants } from "./invariants.ts";
import { ReadTracking } from "./reads.ts";
import { thread_kind } from "./threads.ts";
import type { CheckConfig, CheckEra, Invariant, ThreadKind } from "./world.ts";
import { World } from "./world.ts";

export interface Violation {
  /** The invariant or error class that broke. */
  invariant: string;
  message: string;
}

/** What a step touched: location keys read and written. */
export interface Footprint {
  r: number[];
  w: number[];
  /** The lock a blocking acquisition (OP_LOCK) waits for, else -1 (executed steps only). */
  lock?: number;
  /** Locks the thread held before the step (executed steps only). */
  held?: number[];
}

/**
 * Lock keys are negative, two per lock: acquisitions write the first, a
 * release writes the second and a trylock reads it. So two acquisitions of
 * one lock are dependent, and a release is dependent with a trylock (whose
 * answer it changes) but not with a blocking lock: that one is not enabled
 * while the lock is held, so the two never compete (as in Flanagan and
 * Godefroid's treatment of locks); the race is with the acquisition before
 * the release.
 */
const acquire_key = (id: number) => -2 - 2 * id;
const release_key = (id: number) => -3 - 2 * id;

/** The footprint of acquiring lock `id` alone (explore.ts's races of a blocking acquisition). */
export function acquisition_footprint(id: number): Footprint {
  return { r: [], w: [acquire_key(id)] };
}

export function dependent(a: Footprint, b: Footprint): boolean {
  for (const x of a.w) if (b.w.includes(x) || b.r.includes(x)) return true;
  for (const x of a.r) if (b.w.includes(x)) return true;
  return false;
}

export function union(a: Footprint, b: Footprint): Footprint {
  return {
    r: [...a.r, ...b.r.filter((x) => !a.r.includes(x))],
    w: [...a.w, ...b.w.filter((x) => !a.w.includes(x))],
  };
}

/** A resolved configuration: the era and thread kinds looked up. */
export interface Resolved {
  cfg: CheckConfig;
  era: CheckEra;
  kinds: ThreadKind[];
  invariants: Invariant[];
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export function resolve(cfg: CheckConfig): Resolved {
  const era = check_era(cfg.era);
  if (!era) throw new ConfigError(`unknown era '${cfg.era}'`);
  const kinds = cfg.threads.map((t) => {
    const k = era.threads.includes(t) ? thread_kind(t) : undefined;
    if (!k) {
      throw new ConfigError(
        `unknown thread kind '${t}' for era ${era.name} (choose from ${era.threads.join(", ")})`,
      );
    }
    return k;
  });
  if (kinds.length < 1) throw new ConfigError("at least one thread is needed");
  for (const r of cfg.drop_rules) {
    if (!era.rules.includes(r)) {
      throw new ConfigError(
        `unknown rule '${r}' for era ${era.name} (rules: ${era.rules.join(", ") || "none"})`,
      );
    }
  }
  if (cfg.variant !== null && !era.variants.some((v) => v.name === cfg.variant)) {
    throw new ConfigError(
      `unknown variant '${cfg.variant}' for era ${era.name} (variants: ${era.variants.map((v) => v.name).join(", ") || "none"})`,
    );
  }
  return { cfg, era, kinds, invariants: [...invariants(), ...era.invariants] };
}

/** What an exception thrown by a step means. */
export function classify(e: unknown): Violation {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof DeadlockError) return { invariant: "deadlock", message };
  if (e instanceof LockdepError) return { invariant: "lockdep", message };
  if (e instanceof LockBug) return { invariant: "lock-bug", message };
  if (e instanceof BadPageError) return { invariant: "bad-page", message };
  if (e instanceof KernelBug) return { invariant: "kernel-bug", message };
  if (e instanceof MovableOpsError) return { invariant: "movable-ops-contract", message };
  return {
    invariant: "exception",
    message: e instanceof Error ? `${e.name}: ${message}` : message,
  };
}

/**
 * The 32-bit arrays a step may write, as compared after each step, viewed
 * as Int32Array (same bits) so the comparison loop sees one type; the
 * list links only up to the last list head in use. _mapcount (16-bit) and
 * page_type (8-bit) are compared by loops of their own.
 */
function tracked32(w: World, slots: number): Int32Array[] {
  const mem = w.m.mem;
  const as32 = (a: Uint32Array | Int32Array) => new Int32Array(a.buffer, a.byteOffset, a.length);
  return [
    as32(mem.flags),
    mem._refcount,
    as32(mem.mapping),
    as32(mem.index),
    as32(mem.page_private),
    mem.lru_next.subarray(0, slots),
    mem.lru_prev.subarray(0, slots),
    as32(mem.content ?? new Uint32Array(0)),
  ];
}

function diff32(cur: Int32Array, old: Int32Array, out: number[]): void {
  for (let i = 0; i < old.length; i++) {
    if (cur[i] !== old[i]) {
      old[i] = cur[i];
      if (!out.includes(i)) out.push(i);
    }
  }
}

function diff16(cur: Int16Array, old: Int16Array, out: number[]): void {
  for (let i = 0; i < old.length; i++) {
    if (cur[i] !== old[i]) {
      old[i] = cur[i];
      if (!out.includes(i)) out.push(i);
    }
  }
}

function diff8(cur: Uint8Array, old: Uint8Array, out: number[]): void {
  for (let i = 0; i < old.length; i++) {
    if (cur[i] !== old[i]) {
      old[i] = cur[i];
      if (!out.includes(i)) out.push(i);
    }
  }
}

export interface RunnerOptions {
  choose: (n: number) => number;
  footprints?: boolean;
  record_trace?: boolean;
  record_stack?: boolean;
  steps_max?: number;
  /**
   * Find a step's writes by comparing the page arrays with copies (the
   * former way, kept to check the recording against) instead of the
   * recording proxies (check/reads.ts).
   */
  diff_writes?: boolean;
}

export class Runner {
  readonly w: World;
  readonly res: Resolved;
  private readonly step_inv: Invariant[];
  private readonly end_inv: Invariant[];
  /**
   * With diff_writes only: the arrays compared for writes and their copies
   * after the previous step.
   */
  private readonly diffs: {
    arrays: Int32Array[];
    copies: Int32Array[];
    mapcount: Int16Array;
    page_type: Uint8Array;
  } | null;
  private readonly reads: ReadTracking | null;
  readonly steps_max: number;
  /** Steps taken by workers. */
  steps = 0;

  constructor(res: Resolved, opts: RunnerOptions) {
    this.res = res;
    this.w = new World(res.cfg, res.era, res.kinds, {
      choose: opts.choose,
      record_trace: opts.record_trace,
      record_stack: opts.record_stack,
    });
    this.step_inv = res.invariants.filter((i) => i.when === "step");
    this.end_inv = res.invariants;
    this.steps_max = opts.steps_max ?? 20_000;
    const mem = this.w.m.mem;
    this.reads = opts.footprints ? new ReadTracking(mem) : null;
    if (opts.footprints && opts.diff_writes) {
      // List links only up to the last list head in use (the workers' lists come last).
      const slots = Math.max(...this.w.ctxs.map((c) => c.list)) + 1;
      const arrays = tracked32(this.w, slots);
      this.diffs = {
        arrays,
        copies: arrays.map((a) => Int32Array.from(a)),
        mapcount: Int16Array.from(mem._mapcount),
        page_type: Uint8Array.from(mem.page_type),
      };
    } else {
      this.diffs = null;
    }
  }

  /** Worker threads that can step now, by execution thread id. */
  enabled(): number[] {
    const out: number[] = [];
    for (const c of this.w.ctxs) if (this.w.e.enabled(c.tid)) out.push(c.tid);
    return out;
  }

  finished(): boolean {
    return this.w.e.finished();
  }

  /**
   * The workers that can step now, or, when none can, how the run ended:
   * every thread finished (the verdict of all invariants) or the others
   * are blocked (a deadlock).
   */
  ready(): number[] | { violation: Violation | null } {
    if (this.finished()) return { violation: this.end_check() };
    const enabled = this.enabled();
    return enabled.length > 0 ? enabled : { violation: this.deadlock() };
  }

  /** The announced footprint of thread `tid`'s next step (before it runs). */
  private announced(tid: number): Footprint {
    const t = this.w.e.threads[tid];
    const fp: Footprint = { r: [], w: [] };
    if (!t.started) return fp;
    if (t.op === OP_LOCK) fp.w.push(acquire_key(t.obj));
    else if (t.op === OP_TRYLOCK) {
      fp.w.push(acquire_key(t.obj));
      fp.r.push(release_key(t.obj));
    } else if (t.op === OP_UNLOCK) {
      fp.w.push(release_key(t.obj));
    } else if (t.op === OP_READ || t.op === OP_WAIT || t.op === OP_ATOMIC || t.op === OP_WRITE) {
      if (t.obj >= 0) {
        if (t.op === OP_READ || t.op === OP_WAIT) fp.r.push(t.obj);
        else fp.w.push(t.obj);
      }
    }
    return fp;
  }

  /** The drivers' JavaScript-side bookkeeping, to catch it changing unseen. */
  private bookkeeping(): number {
    let h = 0;
    for (const d of this.w.drivers) {
      h = (Math.imul(h, 31) + d.isolated_pages) | 0;
      const slots = d.slots;
      h = (Math.imul(h, 31) + slots.length) | 0;
      for (let i = 0; i < slots.length; i++) h = (Math.imul(h, 31) + slots[i]) | 0;
    }
    return h;
  }

  /** Add what the step just taken read and wrote to its footprint. */
  private observed(fp: Footprint): void {
    const reads = this.reads;
    if (!reads) return;
    reads.stop();
    reads.tracker.reads.take(fp.r);
    this.written(fp);
  }

  /** Pages and list heads the step wrote: recorded, or (diff_writes) compared with the copies. */
  private written(fp: Footprint): void {
    const t = this.diffs;
    // The recording is taken either way, so it starts empty at the next step.
    this.reads!.tracker.writes.take(t ? [] : fp.w);
    if (!t) return;
    for (let a = 0; a < t.arrays.length; a++) diff32(t.arrays[a], t.copies[a], fp.w);
    const mem = this.w.m.mem;
    diff16(mem._mapcount, t.mapcount, fp.w);
    diff8(mem.page_type, t.page_type, fp.w);
  }

  /**
   * Step thread `tid` and check the step invariants. Returns the step's
   * footprint (empty unless footprints are on) and the violation, if any.
   */
  step(tid: number): { fp: Footprint; violation: Violation | null } {
    const fp = this.reads ? this.announced(tid) : { r: [], w: [] };
    if (this.reads) {
      const t = this.w.e.threads[tid];
      fp.lock = t.started && t.op === OP_LOCK && t.lock ? t.lock.id : -1;
      fp.held = t.held.map((l) => l.id);
    }
    this.steps++;
    const reads = this.reads;
    const before = reads ? this.bookkeeping() : 0;
    if (reads) reads.start();
    try {
      this.w.e.step(tid);
    } catch (e) {
      this.observed(fp);
      return { fp, violation: classify(e) };
    }
    this.observed(fp);
    if (reads && !fp.w.some((k) => k >= 0) && this.bookkeeping() !== before) {
      // The footprints' one assumption (header) broke: the reduction is blind here.
      return {
        fp,
        violation: {
          invariant: "checker-footprint",
          message: `${this.w.e.threads[tid].name} changed a driver's isolated_pages or pages in a step that wrote no page`,
        },
      };
    }
    if (this.steps > this.steps_max) {
      return {
        fp,
        violation: {
          invariant: "step-bound",
          message: `more than ${this.steps_max} steps (a livelock?)`,
        },
      };
    }
    return { fp, violation: this.check(this.step_inv) };
  }

  private check(list: Invariant[]): Violation | null {
    for (const inv of list) {
      let msg: string | null;
      try {
        msg = inv.check(this.w);
      } catch (e) {
        return classify(e);
      }
      if (msg !== null) return { invariant: inv.name, message: msg };
    }
    return null;
  }

  /** Once every thread finished: all invariants. */
  end_check(): Violation | null {
    return this.check(this.end_inv);
  }

  /** No worker can run but some have not finished. */
  deadlock(): Violation {
    return classify(new DeadlockError(this.w.e.wait_for()));
  }
}
