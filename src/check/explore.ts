/**
 * check/explore.ts: exhaustive stateless exploration. Each execution is
 * re-run from boot (a fresh World) following a prefix of decisions, then
 * extended; the decisions are thread picks and the values of rt.choose().
 *
 * Partial-order reduction (option `por`, on by default):
 *  - dynamic partial-order reduction in the style of Flanagan and Godefroid
 *    (POPL 2005): after each execution, for every step e_j, the latest
 *    earlier step e_i of another thread that is dependent with it
 *    (runner.ts footprints) and does not happen before e_j's thread's
 *    previous step is a race; at the state before e_i we add e_j's thread
 *    to the backtrack set if it was enabled there, else every enabled
 *    thread. A step that could not have run before e_i is not a race
 *    with it: a blocking acquisition of a lock e_i's thread held (Flanagan
 *    and Godefroid's "may be co-enabled"); without that test the latest
 *    dependent step is often one taken under the very lock e_j waits for,
 *    the backtrack point it adds only lets e_j's thread block, and the
 *    real race (with the acquisition before) is never reversed. A step
 *    is the announced operation and the plain code after it, so a
 *    blocking acquisition's latest race may be with what that code reads
 *    (while a third thread held the lock: no new schedule there); its
 *    acquisition is therefore also raced on its own, with the latest other
 *    acquisition of the lock, as if it were a step by itself. Happens-
 *    before is tracked with vector clocks over the dependency relation.
 *    Footprints are exact after the fact (every read and write of the
 *    page arrays, runner.ts), so the analysis runs on the finished
 *    execution rather than on the pending steps;
 *  - sleep sets (Godefroid): a thread explored from a state sleeps in the
 *    sibling subtrees until a step dependent with its step runs; a state
 *    where every enabled thread sleeps ends the execution ("sleep-blocked",
 *    counted apart).
 * Without POR every enabled thread is tried at every state (plain DFS).
 * Choice points (rt.choose) are always fully enumerated. The footprint of a
 * thread's step in a sleep set is the union over the choices made inside it.
 *
 * Preemption bound (optional): a pick of another thread while the previous
 * one could still run is a preemption; schedules with more than the bound
 * are not explored, and a search that cut any is reported incomplete (with
 * POR the bound is a heuristic, as DPOR's backtracking assumes it may pick
 * freely).
 *
 * The search stops at the first violation (or, with extra_after_violation,
 * that many executions later, keeping the violating schedule with the
 * fewest steps; the caller shrinks it), when the execution budget is spent,
 * or when the tree is exhausted (complete: every schedule explored and no
 * violation).
 */

import {
  acquisition_footprint,
  dependent,
  type Footprint,
  type Resolved,
  Runner,
  union,
  type Violation,
} from "./runner.ts";

export interface ExploreOptions {
  por: boolean;
  /** At most this many preemptions per schedule; null: unbounded. */
  preemption_bound: number | null;
  /** Stop after this many executions (incomplete). */
  max_executions: number;
  /** Steps of one execution before it counts as a livelock. */
  steps_max?: number;
  /**
   * After the first violation, explore up to this many more executions and
   * keep the violating schedule with the fewest steps (default 0).
   */
  extra_after_violation?: number;
  /** Footprint writes by comparing arrays (runner.ts diff_writes; tests). */
  diff_writes?: boolean;
}

export interface SearchResult {
  mode: "exhaustive" | "random";
  por: boolean;
  /** Executions run (complete, sleep-blocked, and the violating one). */
  executions: number;
  /** Executions ended early because every enabled thread was asleep. */
  sleep_blocked: number;
  /** Worker steps over all executions. */
  steps: number;
  /** Every schedule (up to equivalence, within the bound) was explored. */
  complete: boolean;
  violation: Violation | null;
  /** The decisions that lead to the violation (thread picks and choice values, in order). */
  schedule: number[] | null;
}

interface ThreadNode {
  kind: 0;
  enabled: number[];
  backtrack: Set<number>;
  done: Set<number>;
  sleep: Map<number, Footprint>;
  explored: Map<number, Footprint>;
  chosen: number;
  /** The thread that took the previous step (-1 at the start). */
  prev: number;
  /** Preemptions on the path before this decision. */
  preemptions: number;
}

interface ChoiceNode {
  kind: 1;
  n: number;
  chosen: number;
}

type Node = ThreadNode | ChoiceNode;

interface Event {
  thread: number;
  fp: Footprint;
  /** Index of its thread decision in the stack. */
  node: number;
}

const is_preemption = (node: ThreadNode, t: number) =>
  node.prev >= 0 && t !== node.prev && node.enabled.includes(node.prev);

export function explore(res: Resolved, opts: ExploreOptions): SearchResult {
  const stack: Node[] = [];
  const out: SearchResult = {
    mode: "exhaustive",
    por: opts.por,
    executions: 0,
    sleep_blocked: 0,
    steps: 0,
    complete: false,
    violation: null,
    schedule: null,
  };
  let cut = false;
  let best_steps = 0;
  let extra = opts.extra_after_violation ?? 0;
  for (;;) {
    if (out.executions >= opts.max_executions) return out;
    const run = execute(res, stack, opts);
    out.executions++;
    out.steps += run.steps;
    if (run.blocked) out.sleep_blocked++;
    cut ||= run.cut;
    if (run.violation) {
      if (out.violation === null || run.events.length < best_steps) {
        out.violation = run.violation;
        out.schedule = stack.map((n) => n.chosen);
        best_steps = run.events.length;
      }
    }
    if (out.violation !== null && extra-- <= 0) return out;
    if (opts.por) add_races(stack, run.events);
    if (!backtrack(stack, opts, () => (cut = true))) break;
  }
  // A violation found during the extra executions leaves the search incomplete.
  out.complete = !cut && out.violation === null;
  return out;
}

/** Move the stack to the next unexplored decision; false when none is left. */
function backtrack(stack: Node[], opts: ExploreOptions, on_cut: () => void): boolean {
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.kind === 1) {
      if (top.chosen + 1 < top.n) {
        top.chosen++;
        return true;
      }
      stack.pop();
      continue;
    }
    top.done.add(top.chosen);
    const candidates = [...top.backtrack]
      .filter((t) => !top.done.has(t) && !top.sleep.has(t))
      .sort((a, b) => a - b);
    for (const t of candidates) {
      if (
        opts.preemption_bound !== null &&
        is_preemption(top, t) &&
        top.preemptions + 1 > opts.preemption_bound
      ) {
        top.done.add(t);
        on_cut();
        continue;
      }
      top.chosen = t;
      return true;
    }
    stack.pop();
  }
  return false;
}

interface Run {
  events: Event[];
  violation: Violation | null;
  blocked: boolean;
  cut: boolean;
  steps: number;
}

/**
 * Run one execution: follow the stack's decisions, then extend it (the
 * previous thread if it can run, else the lowest awake enabled thread;
 * choice 0) until the end, a violation, or a sleep-blocked state.
 */
function execute(res: Resolved, stack: Node[], opts: ExploreOptions): Run {
  let pos = 0;
  const choose = (n: number): number => {
    if (pos < stack.length) {
      const node = stack[pos++];
      if (node.kind !== 1 || node.n !== n)
        throw new Error("explore: the model is not deterministic (choice)");
      return node.chosen;
    }
    stack.push({ kind: 1, n, chosen: 0 });
    pos++;
    return 0;
  };
  const runner = new Runner(res, {
    choose,
    footprints: opts.por,
    steps_max: opts.steps_max,
    diff_writes: opts.diff_writes,
  });
  const events: Event[] = [];
  let sleep = new Map<number, Footprint>();
  let prev = -1;
  let preemptions = 0;
  const run: Run = { events, violation: null, blocked: false, cut: false, steps: 0 };
  for (;;) {
    const enabled = runner.ready();
    if (!Array.isArray(enabled)) {
      run.violation = enabled.violation;
      break;
    }
    let node: ThreadNode;
    let node_index: number;
    if (pos < stack.length) {
      const n = stack[pos];
      if (n.kind !== 0) throw new Error("explore: the model is not deterministic (thread pick)");
      node = n;
      node_index = pos;
    } else {
      const awake = enabled.filter((t) => !sleep.has(t));
      if (awake.length === 0) {
        run.blocked = true;
        break;
      }
      const t = awake.includes(prev) ? prev : awake[0];
      node = {
        kind: 0,
        enabled,
        backtrack: new Set(opts.por ? [t] : enabled),
        done: new Set(),
        sleep: opts.por ? sleep : new Map(),
        explored: new Map(),
        chosen: t,
        prev,
        preemptions,
      };
      if (
        opts.preemption_bound !== null &&
        is_preemption(node, t) &&
        preemptions + 1 > opts.preemption_bound
      ) {
        // The previous thread sleeps and any other pick is one preemption too many.
        run.blocked = true;
        run.cut = true;
        break;
      }
      node_index = stack.length;
      stack.push(node);
    }
    pos++;
    const t = node.chosen;
    if (is_preemption(node, t)) preemptions++;
    const { fp, violation } = runner.step(t);
    events.push({ thread: t, fp, node: node_index });
    if (opts.por) {
      const seen = node.explored.get(t);
      node.explored.set(t, seen ? union(seen, fp) : fp);
      const next = new Map<number, Footprint>();
      for (const [p, pfp] of node.sleep) if (p !== t && !dependent(pfp, fp)) next.set(p, pfp);
      for (const [p, pfp] of node.explored) if (p !== t && !dependent(pfp, fp)) next.set(p, pfp);
      sleep = next;
    }
    prev = t;
    if (violation) {
      run.violation = violation;
      break;
    }
  }
  run.steps = runner.steps;
  return run;
}

/**
 * Flanagan-Godefroid backtracking over a finished execution: for each step,
 * the latest dependent step of another thread not ordered before it by
 * happens-before is a race; schedule the later thread before it.
 */
function add_races(stack: Node[], events: Event[]): void {
  let nthreads = 0;
  for (const e of events) nthreads = Math.max(nthreads, e.thread + 1);
  const clocks: Int32Array[] = [];
  const last_of = new Int32Array(nthreads).fill(-1);
  const count = new Int32Array(nthreads);
  for (let j = 0; j < events.length; j++) {
    const ej = events[j];
    const prev_j = last_of[ej.thread];
    const prev_clock = prev_j >= 0 ? clocks[prev_j] : null;
    const clock = prev_clock ? Int32Array.from(prev_clock) : new Int32Array(nthreads);
    let raced = false;
    for (let i = j - 1; i >= 0; i--) {
      const ei = events[i];
      if (ei.thread === ej.thread || !dependent(ei.fp, ej.fp)) continue;
      const ci = clocks[i];
      // Does e_i happen before e_j's thread's previous step?
      const ordered = prev_clock !== null && prev_clock[ei.thread] >= ci[ei.thread];
      // A blocking acquisition of a lock e_i's thread held is not
      // co-enabled with e_i: e_j cannot run before it there.
      const coenabled = !(ej.fp.lock! >= 0 && ei.fp.held!.includes(ej.fp.lock!));
      if (!raced && !ordered && coenabled) {
        raced = true;
        const node = stack[ei.node] as ThreadNode;
        if (node.enabled.includes(ej.thread)) {
          if (!node.sleep.has(ej.thread)) node.backtrack.add(ej.thread);
        } else {
          for (const t of node.enabled) if (!node.sleep.has(t)) node.backtrack.add(t);
        }
      }
      for (let k = 0; k < nthreads; k++) if (ci[k] > clock[k]) clock[k] = ci[k];
    }
    // A blocking acquisition is one step with the plain code after it, so
    // its latest race above may be with something that code reads, while
    // the acquisition itself raced with another thread's earlier
    // acquisition of the same lock (that thread then held it across e_i,
    // so e_j could not run before e_i, and backtracking there adds nothing
    // new). Race the acquisition on its own too, as if it were a step of
    // its own: more backtrack points, never fewer.
    if (ej.fp.lock! >= 0) {
      const acq = acquisition_footprint(ej.fp.lock!);
      for (let i = j - 1; i >= 0; i--) {
        const ei = events[i];
        if (ei.thread === ej.thread || !dependent(ei.fp, acq)) continue;
        const ci = clocks[i];
        if (prev_clock !== null && prev_clock[ei.thread] >= ci[ei.thread]) continue;
        if (ei.fp.held!.includes(ej.fp.lock!)) continue;
        const node = stack[ei.node] as ThreadNode;
        if (node.enabled.includes(ej.thread)) {
          if (!node.sleep.has(ej.thread)) node.backtrack.add(ej.thread);
        } else {
          for (const t of node.enabled) if (!node.sleep.has(t)) node.backtrack.add(t);
        }
        break;
      }
    }
    count[ej.thread]++;
    clock[ej.thread] = count[ej.thread];
    clocks.push(clock);
    last_of[ej.thread] = j;
  }
}
