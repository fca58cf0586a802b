/**
 * check/counterexample.ts: what the checker does with a violating schedule:
 * replay it (strictly, as `pagesim replay` does, or leniently while
 * shrinking), shrink it, print it as a timeline with one column per thread,
 * and save or load it as a JSON trace file.
 *
 * A schedule is the flat list of decisions of one execution, in the order
 * they were made: at each scheduling point the worker thread id that ran,
 * and inside a step the value each rt.choose() returned. Replaying it on a
 * fresh World reaches the same state, step for step (the model is
 * deterministic: the only variation is the schedule).
 *
 * Shrinking is greedy and keeps the same invariant broken. Each round tries,
 * in this order: dropping a chunk of consecutive steps (largest first, so a
 * retry loop of whole rounds goes at once), moving a whole run of one
 * thread's steps before an earlier run, swapping two neighbouring runs,
 * pulling a thread's next step forward to join its previous run, and
 * dropping single steps. Each candidate is replayed leniently (a pick that
 * cannot run is replaced by the previous thread or the lowest enabled one);
 * the first that fails the same way with fewer steps, or as many steps and
 * fewer context switches, starts the next round. Bounded by a number of
 * replays; deterministic (no clock).
 *
 * Trace file (version 1): { pagesim_trace: 1, config, schedule, violation,
 * steps: [{ step, thread, func, op, obj, field }] }.
 */

import { format_trace_entry, type TraceEntry } from "../runtime/execution.ts";
import { OP_LOCK, OP_NAMES, OP_TRYLOCK, OP_UNLOCK } from "../runtime/runtime.ts";
import { type Resolved, Runner, type Violation } from "./runner.ts";
import type { CheckConfig, World } from "./world.ts";

export interface TraceStep {
  step: number;
  thread: string;
  func: string;
  op: string;
  obj: number;
  field: string;
}

export interface Counterexample {
  config: CheckConfig;
  schedule: number[];
  violation: Violation;
  /** Worker thread names, the timeline's columns. */
  threads: string[];
  steps: TraceStep[];
  context_switches: number;
}

export class ReplayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReplayError";
  }
}

interface Played {
  violation: Violation | null;
  schedule: number[];
  /** Thread picks only. */
  threads: number[];
  choices: number[];
  runner: Runner;
}

/**
 * Replay `schedule` strictly: every pick must be an enabled worker and
 * every choice in range, else ReplayError. `on_step` sees each step.
 */
export function replay_schedule(
  res: Resolved,
  schedule: number[],
  record = false,
  on_step?: (runner: Runner) => void,
): Played {
  let pos = 0;
  const threads: number[] = [];
  const choices: number[] = [];
  const take = (what: string): number => {
    if (pos >= schedule.length)
      throw new ReplayError(`schedule ends before the ${what} at decision ${pos}`);
    return schedule[pos++];
  };
  const runner = new Runner(res, {
    choose: (n) => {
      const v = take("choice");
      if (!(Number.isInteger(v) && v >= 0 && v < n)) {
        throw new ReplayError(`decision ${pos - 1}: choice ${v} is not in [0, ${n})`);
      }
      choices.push(v);
      return v;
    },
    record_trace: record,
    record_stack: record,
  });
  let violation: Violation | null = null;
  for (;;) {
    const enabled = runner.ready();
    if (!Array.isArray(enabled)) {
      violation = enabled.violation;
      break;
    }
    if (pos >= schedule.length) break;
    const t = take("thread pick");
    if (!enabled.includes(t)) {
      throw new ReplayError(
        `decision ${pos - 1}: thread ${t} cannot run (enabled: ${enabled.join(", ")})`,
      );
    }
    threads.push(t);
    const r = runner.step(t);
    on_step?.(runner);
    if (r.violation) {
      violation = r.violation;
      break;
    }
  }
  return { violation, schedule: schedule.slice(0, pos), threads, choices, runner };
}

/** Replay a wished-for thread order leniently (see the header). */
function replay_lenient(res: Resolved, want: number[], choices_in: number[]): Played {
  const schedule: number[] = [];
  const threads: number[] = [];
  const choices: number[] = [];
  let ci = 0;
  const runner = new Runner(res, {
    choose: (n) => {
      const v = ci < choices_in.length ? Math.min(choices_in[ci], n - 1) : 0;
      ci++;
      choices.push(v);
      schedule.push(v);
      return v;
    },
  });
  let violation: Violation | null = null;
  let prev = -1;
  for (let k = 0; ; k++) {
    const enabled = runner.ready();
    if (!Array.isArray(enabled)) {
      violation = enabled.violation;
      break;
    }
    let t = k < want.length ? want[k] : prev;
    if (!enabled.includes(t)) t = enabled.includes(prev) ? prev : enabled[0];
    schedule.push(t);
    threads.push(t);
    prev = t;
    const r = runner.step(t);
    if (r.violation) {
      violation = r.violation;
      break;
    }
  }
  return { violation, schedule, threads, choices, runner };
}

export function context_switches(threads: number[]): number {
  let n = 0;
  for (let i = 1; i < threads.length; i++) if (threads[i] !== threads[i - 1]) n++;
  return n;
}

/**
 * The candidates one shrinking round tries, best first: a thread order
 * derived from `cur` (the current best's thread picks).
 */
function* shrink_candidates(cur: number[]): Generator<number[]> {
  const n = cur.length;
  // Chunk deletion (in the manner of delta debugging): drop `size`
  // consecutive picks. A retry loop is a run of whole rounds; halving sizes
  // and the short periods 2..8 between them remove it in one go.
  const sizes = new Set<number>();
  for (let size = n >> 1; size >= 2; size >>= 1) sizes.add(size);
  for (let size = 8; size >= 2; size--) if (size <= n >> 1) sizes.add(size);
  for (const size of [...sizes].sort((a, b) => b - a)) {
    for (let a = 0; a + size <= n; a++) yield [...cur.slice(0, a), ...cur.slice(a + size)];
  }
  // Whole runs of one thread.
  const runs: number[][] = [];
  for (const t of cur) {
    const last = runs[runs.length - 1];
    if (last && last[0] === t) last.push(t);
    else runs.push([t]);
  }
  // Move a run earlier, before any earlier run (several switches fewer at once).
  for (let i = 2; i < runs.length; i++) {
    for (let j = 0; j + 1 < i; j++) {
      yield [...runs.slice(0, j), runs[i], ...runs.slice(j, i), ...runs.slice(i + 1)].flat();
    }
  }
  // Swap two neighbouring runs (up to two switches fewer).
  for (let i = 0; i + 1 < runs.length; i++) {
    yield [...runs.slice(0, i), runs[i + 1], runs[i], ...runs.slice(i + 2)].flat();
  }
  // Pull a thread's next step forward to join its previous run; drop one step.
  for (let k = 1; k < n; k++) {
    if (cur[k] !== cur[k - 1]) {
      const q = cur.indexOf(cur[k - 1], k);
      if (q > k) yield [...cur.slice(0, k), cur[q], ...cur.slice(k, q), ...cur.slice(q + 1)];
    }
    yield [...cur.slice(0, k), ...cur.slice(k + 1)];
  }
}

/** Shrink a violating schedule (see the header). At most `replays_max` replays. */
export function shrink(res: Resolved, schedule: number[], replays_max = 3000): number[] {
  const first = replay_schedule(res, schedule);
  if (!first.violation) return schedule;
  const invariant = first.violation.invariant;
  let best = first;
  let replays = 0;
  const better = (p: Played) =>
    p.threads.length < best.threads.length ||
    (p.threads.length === best.threads.length &&
      context_switches(p.threads) < context_switches(best.threads));
  let improved = true;
  while (improved && replays < replays_max) {
    improved = false;
    for (const c of shrink_candidates(best.threads)) {
      if (++replays > replays_max) break;
      const p = replay_lenient(res, c, best.choices);
      if (p.violation?.invariant === invariant && better(p)) {
        best = p;
        improved = true;
        break;
      }
    }
  }
  return best.schedule;
}

/** Replay with labels and build the counterexample to print and save. */
export function counterexample(res: Resolved, schedule: number[]): Counterexample {
  const p = replay_schedule(res, schedule, true);
  if (!p.violation) throw new ReplayError("the schedule does not reach a violation");
  const w = p.runner.w;
  const trace = w.e.trace ?? [];
  const steps: TraceStep[] = trace.slice(w.setup_trace).map((e, i) => trace_step(w, e, i + 1));
  return {
    config: res.cfg,
    schedule: p.schedule,
    violation: p.violation,
    threads: w.ctxs.map((c) => c.name),
    steps,
    context_switches: context_switches(p.threads),
  };
}

/** A trace entry for people; a lock is named, not numbered. */
export function trace_step(w: World, e: TraceEntry, step: number): TraceStep {
  const lock = e.op === OP_LOCK || e.op === OP_TRYLOCK || e.op === OP_UNLOCK;
  return {
    step,
    thread: w.e.threads[e.thread].name,
    func: e.func ?? "",
    op: OP_NAMES[e.op] ?? `op${e.op}`,
    obj: lock ? -1 : e.obj,
    field: lock ? w.lock_name(e.obj) : e.field,
  };
}

/** One step as a timeline cell: "isolate_movable_page: trylock page lock@3". */
export function step_text(s: TraceStep): string {
  if (s.func === "start") return "start";
  const what = format_trace_entry(
    { thread: 0, op: OP_NAMES.indexOf(s.op), obj: s.obj, field: s.field },
    [""],
  ).trimStart();
  return s.func ? `${s.func}: ${what}` : what;
}

const COLUMN = 48;

/**
 * The timeline: one column per thread, one line per step, then the broken
 * invariant. One thread acts per line, so its cell is printed whole and may
 * run on under the (empty) columns to its right: nothing a step touches is
 * cut off.
 */
export function format_timeline(cx: Counterexample): string {
  const head = (s: string) => (s.length > COLUMN ? `${s.slice(0, COLUMN - 1)}~` : s.padEnd(COLUMN));
  const lines: string[] = [];
  lines.push(` step  ${cx.threads.map(head).join(" ")}`.trimEnd());
  for (const s of cx.steps) {
    const col = cx.threads.indexOf(s.thread);
    const indent = " ".repeat((COLUMN + 1) * Math.max(col, 0));
    lines.push(`${String(s.step).padStart(5)}  ${indent}${step_text(s)}`.trimEnd());
  }
  lines.push(`violated: ${cx.violation.invariant}: ${cx.violation.message}`);
  return lines.join("\n");
}

export function trace_json(cx: Counterexample): object {
  return {
    pagesim_trace: 1,
    config: cx.config,
    schedule: cx.schedule,
    violation: cx.violation,
    context_switches: cx.context_switches,
    steps: cx.steps,
  };
}

/** Parse a trace file's JSON; throws ReplayError naming what is wrong. */
export function parse_trace(text: string): {
  config: CheckConfig;
  schedule: number[];
  violation: Violation | null;
} {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new ReplayError(`not JSON: ${(e as Error).message}`);
  }
  const o = j as Record<string, unknown>;
  if (!o || typeof o !== "object" || o.pagesim_trace !== 1) {
    throw new ReplayError("not a pagesim trace (pagesim_trace: 1 missing)");
  }
  const c = o.config as Record<string, unknown> | undefined;
  const ok =
    c &&
    typeof c.era === "string" &&
    Array.isArray(c.threads) &&
    c.threads.every((t) => typeof t === "string") &&
    Number.isInteger(c.pages) &&
    Array.isArray(c.drop_rules) &&
    c.drop_rules.every((t) => typeof t === "string") &&
    (c.variant === null || typeof c.variant === "string") &&
    (c.debug_atomic_sleep === undefined || typeof c.debug_atomic_sleep === "boolean");
  if (!ok) throw new ReplayError("trace config: expected era, threads, pages, drop_rules, variant");
  if (!Array.isArray(o.schedule) || !o.schedule.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new ReplayError("trace schedule: expected a list of non-negative integers");
  }
  const v = o.violation as Violation | null | undefined;
  return {
    config: {
      era: c.era as string,
      threads: c.threads as string[],
      pages: c.pages as number,
      drop_rules: c.drop_rules as string[],
      variant: c.variant as string | null,
      ...(c.debug_atomic_sleep === false ? { debug_atomic_sleep: false } : {}),
    },
    schedule: o.schedule as number[],
    violation: v && typeof v.invariant === "string" ? v : null,
  };
}
