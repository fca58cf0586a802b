/**
 * check/runner.ts: one execution of a configuration under the checker: it
 * builds the World, steps the thread the explorer picks, observes what the
 * step touched (its footprint), runs the invariants after the step, and
 * turns whatever the kernel threw into a Violation.
 *
 * Footprints (for partial-order reduction). A step is the announced
 * operation plus the plain code that follows it up to the next
 * announcement. What it read: the announced object and field (a lockless
 * read, an atomic, a wait). What it wrote: found exactly, by comparing the
 * page arrays and list links with a copy taken after the previous step,
 * field by field; lock operations touch their lock (see acquire_key). Two steps are dependent
 * when one writes a location the other reads or writes.
 * Assumption (documented in the README): plain code reads shared state only
 * under a lock it holds, or state its own thread wrote; then steps with
 * disjoint footprints commute. JavaScript-side bookkeeping (a driver's slot
 * table, a process's page table) changes only under a lock or together with
 * a page field (mapcount, private), so the arrays show it. The announced
 * field "pte" is the process page table entry; it is keyed as the page's
 * mapcount, which zap and migration change together with the entry.
 *
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
}

/**
 * Page fields as footprint keys: pfn * FIELDS + field, the field being the
 * position of its array in tracked() (index is 5, never announced).
 */
const F_FLAGS = 0;
const F_REFCOUNT = 1;
const F_MAPCOUNT = 2;
const F_TYPE = 3;
const F_MAPPING = 4;
const F_PRIVATE = 6;
const F_LINKS = 7;
const F_CONTENT = 8;
const FIELDS = 9;

/** The announced field names the kernel uses, as footprint fields. */
function field_key(field: string): number {
  if (field === "refcount") return F_REFCOUNT;
  if (field === "mapping") return F_MAPPING;
  if (field === "PageBuddy") return F_TYPE;
  if (field === "pte" || field === "mapcount") return F_MAPCOUNT;
  if (field === "private") return F_PRIVATE;
  if (field.startsWith("PG_") || field.startsWith("Page") || field === "flags") return F_FLAGS;
  return -1;
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

/** The arrays a step may write, as compared after each step. */
function tracked(w: World): ArrayLike<number>[] {
  const mem = w.m.mem;
  return [
    mem.flags,
    mem._refcount,
    mem._mapcount,
    mem.page_type,
    mem.mapping,
    mem.index,
    mem.page_private,
    mem.lru_next,
    mem.content ?? new Uint32Array(0),
  ];
}

export interface RunnerOptions {
  choose: (n: number) => number;
  footprints?: boolean;
  record_trace?: boolean;
  record_stack?: boolean;
  steps_max?: number;
}

export class Runner {
  readonly w: World;
  readonly res: Resolved;
  private readonly step_inv: Invariant[];
  private readonly end_inv: Invariant[];
  private readonly arrays: ArrayLike<number>[];
  private readonly copies: Int32Array[] | null;
  private readonly prev_copy: Int32Array | null;
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
    this.arrays = tracked(this.w);
    if (opts.footprints) {
      this.copies = this.arrays.map((a) => Int32Array.from(a as ArrayLike<number>));
      this.prev_copy = Int32Array.from(this.w.m.mem.lru_prev);
    } else {
      this.copies = null;
      this.prev_copy = null;
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
        const f = field_key(t.field);
        const keys =
          f < 0
            ? Array.from({ length: FIELDS }, (_, i) => t.obj * FIELDS + i)
            : [t.obj * FIELDS + f];
        if (t.op === OP_READ || t.op === OP_WAIT) fp.r.push(...keys);
        else fp.w.push(...keys);
      }
    }
    return fp;
  }

  /** Field writes since the last call, and refresh the copies. */
  private written(fp: Footprint): void {
    const copies = this.copies;
    if (!copies) return;
    for (let a = 0; a < this.arrays.length; a++) {
      const cur = this.arrays[a];
      const old = copies[a];
      const field = a === 8 ? F_CONTENT : a === 7 ? F_LINKS : a;
      for (let i = 0; i < old.length; i++) {
        if (cur[i] !== old[i]) {
          old[i] = cur[i];
          const k = i * FIELDS + field;
          if (!fp.w.includes(k)) fp.w.push(k);
        }
      }
    }
    const prev = this.w.m.mem.lru_prev;
    const pc = this.prev_copy!;
    for (let i = 0; i < pc.length; i++) {
      if (prev[i] !== pc[i]) {
        pc[i] = prev[i];
        const k = i * FIELDS + F_LINKS;
        if (!fp.w.includes(k)) fp.w.push(k);
      }
    }
  }

  /**
   * Step thread `tid` and check the step invariants. Returns the step's
   * footprint (empty unless footprints are on) and the violation, if any.
   */
  step(tid: number): { fp: Footprint; violation: Violation | null } {
    const fp = this.copies ? this.announced(tid) : { r: [], w: [] };
    this.steps++;
    try {
      this.w.e.step(tid);
    } catch (e) {
      this.written(fp);
      return { fp, violation: classify(e) };
    }
    this.written(fp);
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
