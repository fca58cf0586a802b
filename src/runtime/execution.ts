/**
 * runtime/execution.ts: one execution of a set of kernel threads: the
 * Runtime the kernel code sees, the blocking rules of its locks, a
 * lock-order checker in the spirit of lockdep, and deadlock detection with
 * the wait-for cycle. The simulator's scheduler and the checker's explorer
 * are two policies over the same `runnable()` / `step()` interface.
 *
 * Semantics:
 *  - a thread announces its next step (operation, object, field) and
 *    yields; the step happens when the scheduler resumes it;
 *  - a thread whose next step takes a lock someone else holds is not
 *    runnable (it "spins" or "sleeps" without consuming steps);
 *  - when no thread is runnable and some have not finished, that is a
 *    deadlock, reported with who waits for which lock held by whom;
 *  - lockdep records, for every blocking acquisition, that the classes held
 *    come before the class taken, and reports an inversion (a cycle in that
 *    order) the first time one appears, even if this run did not deadlock;
 *  - a thread in wait_event() is runnable only once its condition holds;
 *    one in wait_event_timeout() is always runnable (its timeout may fire),
 *    and its next step comes at its deadline unless the condition holds
 *    earlier: the simulator wakes it exactly then, the checker lets the
 *    timeout fire at any point;
 *  - time: every thread has a virtual clock in ns. A step costs
 *    `step_ns` (0 by default, as in the checker, where time does not
 *    exist) and schedule_timeout(ns) puts the thread's next step ns later.
 *    `earliest()` picks the runnable thread whose next step comes first,
 *    which makes run(earliest) a discrete-event simulation; the global
 *    clock `now_ns` never goes backwards;
 *  - within run(), a solo thread (the only live one, no trace, no clock) cannot
 *    be interleaved with, so its lockless reads and uncontended lock
 *    operations take effect at once without a scheduler round trip
 *    (cond_resched() stays a real step, so the caller of step() still gets
 *    control back): the same semantics, a fraction of the cost (a full
 *    compaction run by one thread, say). Locks are still owned and lockdep
 *    still sees every acquisition. Such steps are not counted in `steps`.
 *  - coalesce mode (option `coalesce`, off by default; for simulator runs
 *    only, never the checker or randomized schedules, which need every
 *    interleaving point): the driver promises to pick threads by
 *    earliest() (simulated time, ties to the lowest id) and to look at the
 *    state only between two step() calls. Then one step(id) may take
 *    several of thread id's steps: when the thread announces a step that
 *    cannot block (a lockless access, a lock that is free, a trylock, an
 *    unlock), it takes it at once, without yielding, exactly when
 *    earliest() would pick it again at that point, which is when no other
 *    thread that can run then has its next step earlier in simulated time,
 *    or at the same time with a lower id:
 *        for every enabled u != t:
 *          ready_ns(t) < ready_ns(u), or ready_ns(t) = ready_ns(u) and t < u.
 *    The test runs after t's plain code, so a thread that this code woke
 *    (a lock released, a wait condition made true) is seen as the
 *    scheduler would see it. A coalesced step is a step in every other
 *    way: it counts in `steps`, costs step_ns on t's clock, moves `now_ns`
 *    and is traced (with its label) when tracing, so the schedule, the
 *    trace and the final state are those of the one-step-per-call run.
 *    Waits, sleeps and cond_resched() stay real steps, and at most
 *    COALESCE_STEPS_MAX steps are taken in one call (and never past run()'s
 *    steps_max), so the driver gets control back. The rule cannot see
 *    threads of another Execution: a driver that interleaves several
 *    executions on one clock must not coalesce. Kernel code cannot tell
 *    the modes apart. A driver may switch `coalesce` off and on between
 *    step() calls (run_until() does when it checks after every step).
 *  - interrupts: each thread has its own interrupt state, disabled by
 *    spin_lock_irqsave() and restored by spin_unlock_irqrestore() to the
 *    state saved with it. No interrupt handler is modelled: the state only
 *    decides where sleeping is allowed. A thread with interrupts disabled
 *    that calls something that may sleep (mutex_lock, so the page lock;
 *    wait_event, wait_event_timeout, schedule_timeout, cond_resched) throws
 *    LockBug "BUG: sleeping function called from invalid context" at the
 *    call, whether or not it would really have to wait, as might_sleep()
 *    does under CONFIG_DEBUG_ATOMIC_SLEEP; the option debug_atomic_sleep
 *    (on by default) switches the report off, as that config does, and the
 *    thread then sleeps with interrupts disabled (where a lock cycle then
 *    becomes a plain deadlock). Restoring with interrupts enabled, and
 *    finishing with them disabled, are LockBugs in either case;
 *  - labels (record_stack, for the checker's counterexamples and replay):
 *    each trace entry names the kernel functions that announced the step,
 *    read from the JavaScript stack at announcement (slow; off by default).
 */

import {
  done_step,
  IRQ_FLAGS_DISABLED,
  IRQ_FLAGS_ENABLED,
  type IrqFlags,
  type Lock,
  type LockKind,
  NO_STEP,
  OP_ATOMIC,
  OP_LOCK,
  OP_NAMES,
  OP_RESCHED,
  OP_SLEEP,
  OP_TRYLOCK,
  OP_UNLOCK,
  OP_WAIT,
  type Runtime,
  type Step,
  type StepOf,
} from "./runtime.ts";

/**
 * A locking rule broken by the code being run (recursive locking, unlocking a
 * lock not held, finishing with a lock held), or a scheduler misuse.
 */
export class LockBug extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LockBug";
  }
}

export class DeadlockError extends Error {
  readonly cycle: string[];
  constructor(cycle: string[]) {
    super(`deadlock: ${cycle.join("; ")}`);
    this.name = "DeadlockError";
    this.cycle = cycle;
  }
}

export class LockdepError extends Error {
  constructor(message: string) {
    super(`lockdep: possible circular locking dependency: ${message}`);
    this.name = "LockdepError";
  }
}

/** One entry of an execution's trace: who did what to which object. */
export interface TraceEntry {
  thread: number;
  op: number;
  obj: number;
  field: string;
  /** The kernel functions that announced the step, innermost last (record_stack only). */
  func?: string;
}

/** The runtime's locks: a Lock with its lockdep class number (for lockdep's pair set). */
interface RtLock extends Lock {
  readonly cid: number;
}

class Thread {
  readonly id: number;
  readonly name: string;
  readonly gen: Step;
  done = false;
  started = false;
  /** The announced next step. */
  op = OP_RESCHED;
  obj = -1;
  field = "";
  lock: Lock | null = null;
  /** The kernel functions that announced the step (record_stack only). */
  func = "";
  /** The condition of an announced wait_event(). */
  cond: (() => boolean) | null = null;
  /** The deadline of an announced wait_event_timeout() (Infinity: none). */
  wait_until = Number.POSITIVE_INFINITY;
  /** Simulated time at which the announced step may run. */
  ready_ns: number;
  readonly held: Lock[] = [];
  /** Interrupts disabled (spin_lock_irqsave) and not yet restored. */
  irqs_disabled = false;
  constructor(id: number, name: string, gen: Step, now_ns: number) {
    this.id = id;
    this.name = name;
    this.gen = gen;
    this.ready_ns = now_ns;
  }
}

export interface ExecutionOptions {
  /** Resolves rt.choose(n); the checker enumerates, the simulator draws. */
  choose: (n: number) => number;
  /** Keep a trace of every step (checker, replay). */
  record_trace?: boolean;
  /** Report lock-order inversions (on by default). */
  lockdep?: boolean;
  /** Simulated cost of one step in ns (0: no clock, as in the checker). */
  step_ns?: number;
  /**
   * Label each trace entry with the kernel functions that announced it
   * (slow). A function of a stack frame's file path picks the frames that
   * count; by default those under /kernel/.
   */
  record_stack?: boolean | ((path: string) => boolean);
  /**
   * Coalesce mode (simulator only; see the header): the driver schedules by
   * earliest() and acts only between step() calls, so a step() may take
   * several uncontended steps of its thread. Off by default.
   */
  coalesce?: boolean;
  /**
   * Report sleeping with interrupts disabled (CONFIG_DEBUG_ATOMIC_SLEEP's
   * might_sleep(); on by default). Off, such a thread just sleeps.
   */
  debug_atomic_sleep?: boolean;
}

/** lockdep tells at most this many lock classes apart. */
const LOCKDEP_CLASSES_MAX = 1 << 16;

/** Most steps one step() call takes in coalesce mode, so the driver gets control back. */
export const COALESCE_STEPS_MAX = 1 << 14;

const STEP_TRUE: StepOf<boolean> = done_step(true);
const STEP_FALSE: StepOf<boolean> = done_step(false);
const STEP_IRQS_WERE_ON: StepOf<IrqFlags> = done_step(IRQ_FLAGS_ENABLED);
const STEP_IRQS_WERE_OFF: StepOf<IrqFlags> = done_step(IRQ_FLAGS_DISABLED);

export class Execution implements Runtime {
  current = -1;
  readonly threads: Thread[] = [];
  readonly locks: Lock[] = [];
  readonly trace: TraceEntry[] | null;
  steps = 0;
  /** The simulated time of the latest step, in ns. */
  now_ns = 0;
  /**
   * Observer of lock waits (reports, traces): called when a thread that
   * was blocked on `lock` takes it, with the simulated times it waited
   * from and until. Only observes; scheduling is the same without it.
   */
  on_lock_wait: ((thread: number, lock: Lock, from_ns: number, to_ns: number) => void) | null =
    null;
  /**
   * Coalesce mode (see the header); a driver may switch it between step()
   * calls, e.g. off while it checks invariants after every step.
   */
  coalesce: boolean;
  private readonly step_ns: number;
  /** Coalesced steps still allowed in the current step() call. */
  private coalesce_left = 0;
  /** run()'s steps_max: a coalesced step never goes past it. */
  private steps_limit = Number.POSITIVE_INFINITY;
  /** Threads spawned and not finished. */
  private live = 0;
  /** Threads with interrupts disabled: 0 keeps might_sleep() to one test. */
  private irqs_off = 0;
  private readonly debug_atomic_sleep: boolean;
  /** No trace and no clock: a solo thread may skip its scheduler round trips. */
  private readonly solo_ok: boolean;
  /**
   * Inside run(): nothing but the threads acts between two steps. A caller
   * driving step() by hand may act in between (as another CPU would), so
   * then every step stays a step.
   */
  private in_run = false;
  private readonly choose_fn: (n: number) => number;
  private readonly lockdep_on: boolean;
  private readonly record_stack: boolean;
  private readonly stack_filter: (path: string) => boolean;
  /** lockdep: class -> classes taken while it was held. */
  private readonly order = new Map<string, Set<string>>();
  /** lockdep: a number per lock class (the latest looked up, cached: page locks come in runs). */
  private readonly class_ids = new Map<string, number>();
  private last_class = "";
  private last_cid = -1;
  /**
   * lockdep: (held class, taken class) pairs already in `order`, or of one
   * class, as held * LOCKDEP_CLASSES_MAX + taken: the check most
   * acquisitions need, without string hashing.
   */
  private readonly order_seen = new Set<number>();

  constructor(opts: ExecutionOptions) {
    this.choose_fn = opts.choose;
    this.trace = opts.record_trace ? [] : null;
    this.lockdep_on = opts.lockdep ?? true;
    this.step_ns = opts.step_ns ?? 0;
    this.solo_ok = this.trace === null && this.step_ns === 0;
    this.coalesce = opts.coalesce ?? false;
    this.debug_atomic_sleep = opts.debug_atomic_sleep ?? true;
    this.record_stack = (opts.record_stack ?? false) !== false && this.trace !== null;
    this.stack_filter =
      typeof opts.record_stack === "function" ? opts.record_stack : (p) => p.includes("/kernel/");
  }

  /** Is the running thread the only live one, with nothing to record? */
  private solo(): boolean {
    return this.solo_ok && this.in_run && this.live === 1 && this.current >= 0;
  }

  /**
   * May the running thread take the step it is about to announce at once?
   * Solo: yes, unaccounted. Coalesce mode: when earliest() would pick it
   * again (the header's rule); the step is then accounted here as step()
   * would account it.
   */
  private at_once(op: number, obj: number, field: string, lock: Lock | null): boolean {
    if (this.solo()) return true;
    if (this.coalesce_left <= 0 || !this.coalesce || this.current < 0) return false;
    // Inside an inline run its driver resumes the step, unaccounted.
    if (this.inline_depth > 0) return false;
    if (this.steps >= this.steps_limit || !this.keeps_cpu(this.current)) return false;
    this.step_inline(op, obj, field, lock);
    return true;
  }

  /**
   * Would earliest() pick thread `id` (running, its next step uncontended)
   * now? No other enabled thread's next step comes earlier, or at the
   * same time with a lower id.
   */
  private keeps_cpu(id: number): boolean {
    const threads = this.threads;
    const t_ns = threads[id].ready_ns;
    for (let i = 0; i < threads.length; i++) {
      const u = threads[i];
      if (i === id || u.done) continue;
      // The time test first: enabled() may evaluate a wait condition.
      const ns = this.next_ns(u);
      if ((i < id ? ns <= t_ns : ns < t_ns) && this.enabled(i)) return false;
    }
    return true;
  }

  /** Inline runs in progress inside the running thread's step (Runtime.inline_enter). */
  private inline_depth = 0;

  inline_enter(): void {
    this.inline_depth++;
  }

  inline_exit(): void {
    if (this.inline_depth <= 0) throw new LockBug("inline_exit without inline_enter");
    this.inline_depth--;
  }

  /** Take the running thread's step now, accounted (trace, steps, clock) as step() does. */
  private step_inline(op: number, obj: number, field: string, lock: Lock | null): void {
    const t = this.threads[this.current];
    if (this.trace) {
      this.announce(op, obj, field, lock);
      const e: TraceEntry = { thread: t.id, op, obj, field };
      if (this.record_stack) e.func = t.func;
      this.trace.push(e);
    }
    this.coalesce_left--;
    this.steps++;
    if (t.ready_ns < this.now_ns) t.ready_ns = this.now_ns;
    else this.now_ns = t.ready_ns;
    t.ready_ns += this.step_ns;
  }

  new_lock(lock_class: string, kind: LockKind = "spinlock"): Lock {
    let cid = this.last_cid;
    if (lock_class !== this.last_class) {
      cid = this.class_ids.get(lock_class) ?? this.class_ids.size;
      if (cid >= LOCKDEP_CLASSES_MAX) throw new LockBug(`more than ${cid} lock classes`);
      this.class_ids.set(lock_class, cid);
      this.last_class = lock_class;
      this.last_cid = cid;
    }
    // An object literal, not a class: V8 learns that these live long (page
    // locks by the million) and allocates them in the old generation.
    const lock: RtLock = { id: this.locks.length, lock_class, kind, owner: -1, cid };
    this.locks.push(lock);
    return lock;
  }

  /** Add a thread running `body`; it starts at its first step. */
  spawn(name: string, body: (rt: Runtime) => Step): number {
    const id = this.threads.length;
    this.threads.push(new Thread(id, name, body(this), this.now_ns));
    this.live++;
    return id;
  }

  // ---- the Runtime the kernel sees ----------------------------------------

  private announce(op: number, obj: number, field: string, lock: Lock | null): void {
    const t = this.threads[this.current];
    t.op = op;
    t.obj = obj;
    t.field = field;
    t.lock = lock;
    t.cond = null;
    t.wait_until = Number.POSITIVE_INFINITY;
    if (this.record_stack) {
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 40;
      t.func = stack_label(new Error().stack ?? "", this.stack_filter);
      Error.stackTraceLimit = limit;
    }
  }

  spin_lock(lock: Lock): Step {
    if (lock.owner === -1 && this.at_once(OP_LOCK, lock.id, lock.lock_class, lock)) {
      this.acquire(lock, true);
      return NO_STEP;
    }
    return this.spin_lock_step(lock);
  }

  private *spin_lock_step(lock: Lock): Step {
    this.announce(OP_LOCK, lock.id, lock.lock_class, lock);
    yield;
    this.acquire(lock, true);
  }

  spin_unlock(lock: Lock): Step {
    if (this.at_once(OP_UNLOCK, lock.id, lock.lock_class, lock)) {
      this.release(lock);
      return NO_STEP;
    }
    return this.spin_unlock_step(lock);
  }

  private *spin_unlock_step(lock: Lock): Step {
    this.announce(OP_UNLOCK, lock.id, lock.lock_class, lock);
    yield;
    this.release(lock);
  }

  spin_trylock(lock: Lock): StepOf<boolean> {
    if (lock.owner === -1 && this.at_once(OP_TRYLOCK, lock.id, lock.lock_class, lock)) {
      this.acquire(lock, false);
      return STEP_TRUE;
    }
    // A trylock of a held lock cannot block: coalesce mode takes it too (it fails).
    if (
      lock.owner !== -1 &&
      this.coalesce &&
      this.at_once(OP_TRYLOCK, lock.id, lock.lock_class, lock)
    )
      return STEP_FALSE;
    return this.spin_trylock_step(lock);
  }

  private *spin_trylock_step(lock: Lock): StepOf<boolean> {
    this.announce(OP_TRYLOCK, lock.id, lock.lock_class, lock);
    yield;
    if (lock.owner !== -1) return false;
    this.acquire(lock, false);
    return true;
  }

  spin_lock_irqsave(lock: Lock): StepOf<IrqFlags> {
    if (lock.owner === -1 && this.at_once(OP_LOCK, lock.id, lock.lock_class, lock)) {
      const was_off = this.threads[this.current].irqs_disabled;
      this.acquire(lock, true);
      this.local_irq_disable();
      return was_off ? STEP_IRQS_WERE_OFF : STEP_IRQS_WERE_ON;
    }
    return this.spin_lock_irqsave_step(lock);
  }

  /** local_irq_save() happens at the call; the lock is taken when the step runs. */
  private *spin_lock_irqsave_step(lock: Lock): StepOf<IrqFlags> {
    const flags = this.threads[this.current].irqs_disabled ? IRQ_FLAGS_DISABLED : IRQ_FLAGS_ENABLED;
    this.announce(OP_LOCK, lock.id, lock.lock_class, lock);
    yield;
    this.acquire(lock, true);
    this.local_irq_disable();
    return flags;
  }

  spin_unlock_irqrestore(lock: Lock, flags: IrqFlags): Step {
    if (this.at_once(OP_UNLOCK, lock.id, lock.lock_class, lock)) {
      this.release(lock);
      this.local_irq_restore(flags);
      return NO_STEP;
    }
    return this.spin_unlock_irqrestore_step(lock, flags);
  }

  private *spin_unlock_irqrestore_step(lock: Lock, flags: IrqFlags): Step {
    this.announce(OP_UNLOCK, lock.id, lock.lock_class, lock);
    yield;
    this.release(lock);
    this.local_irq_restore(flags);
  }

  irqs_disabled(): boolean {
    return this.current >= 0 && this.threads[this.current].irqs_disabled;
  }

  private local_irq_disable(): void {
    const t = this.threads[this.current];
    if (!t.irqs_disabled) {
      t.irqs_disabled = true;
      this.irqs_off++;
    }
  }

  /** A finished thread's interrupt state goes; whether it had them disabled. */
  private irqs_reset(t: Thread): boolean {
    if (!t.irqs_disabled) return false;
    t.irqs_disabled = false;
    this.irqs_off--;
    return true;
  }

  private local_irq_restore(flags: IrqFlags): void {
    const t = this.threads[this.current];
    if (!t.irqs_disabled) {
      throw new LockBug(`${t.name}: spin_unlock_irqrestore with interrupts enabled`);
    }
    if (flags === IRQ_FLAGS_ENABLED) {
      t.irqs_disabled = false;
      this.irqs_off--;
    } else if (flags !== IRQ_FLAGS_DISABLED) {
      throw new LockBug(`${t.name}: spin_unlock_irqrestore with flags ${flags} never saved`);
    }
  }

  /**
   * might_sleep(): the running thread is about to call `what`, which may
   * sleep; with its interrupts disabled that is a bug (see the header).
   */
  private might_sleep(what: string): void {
    if (this.irqs_off === 0 || !this.debug_atomic_sleep || this.current < 0) return;
    const t = this.threads[this.current];
    if (!t.irqs_disabled) return;
    const held = t.held.map((l) => l.lock_class).join(", ");
    throw new LockBug(
      `BUG: sleeping function called from invalid context: ${t.name} calls ${what} with interrupts disabled${held ? ` (holding ${held})` : ""}`,
    );
  }

  mutex_lock(lock: Lock): Step {
    if (this.irqs_off !== 0) this.might_sleep(`mutex_lock(${lock.lock_class})`);
    return this.spin_lock(lock);
  }

  mutex_unlock(lock: Lock): Step {
    return this.spin_unlock(lock);
  }

  mutex_trylock(lock: Lock): StepOf<boolean> {
    return this.spin_trylock(lock);
  }

  lockdep_assert_held(lock: Lock): void {
    if (lock.owner !== this.current) {
      throw new LockBug(
        `lockdep_assert_held: ${lock.lock_class} is not held by thread ${this.current}`,
      );
    }
  }

  access(op: number, obj: number, field: string): Step {
    return this.at_once(op, obj, field, null) ? NO_STEP : this.access_step(op, obj, field);
  }

  private *access_step(op: number, obj: number, field: string): Step {
    this.announce(op, obj, field, null);
    yield;
  }

  /** Always a real step, even solo: whoever drives the execution gets control back. */
  *cond_resched(): Step {
    if (this.irqs_off !== 0) this.might_sleep("cond_resched");
    this.announce(OP_RESCHED, -1, "", null);
    yield;
  }

  *wait_event(obj: number, field: string, cond: () => boolean): Step {
    if (this.irqs_off !== 0) this.might_sleep(`wait_event(${field})`);
    this.announce(OP_WAIT, obj, field, null);
    const t = this.threads[this.current];
    t.cond = cond;
    t.wait_until = Number.POSITIVE_INFINITY;
    yield;
    if (!cond()) throw new LockBug(`wait_event on ${field}: resumed with its condition false`);
  }

  *wait_event_timeout(
    obj: number,
    field: string,
    cond: () => boolean,
    timeout_ns: number,
  ): StepOf<boolean> {
    if (!(timeout_ns >= 0)) throw new LockBug(`wait_event_timeout(${timeout_ns}): negative`);
    if (this.irqs_off !== 0) this.might_sleep(`wait_event_timeout(${field})`);
    if (cond()) return true;
    this.announce(OP_WAIT, obj, field, null);
    const t = this.threads[this.current];
    t.cond = cond;
    t.wait_until = t.ready_ns + timeout_ns;
    yield;
    return cond();
  }

  *schedule_timeout(ns: number): Step {
    if (!(ns >= 0)) throw new LockBug(`schedule_timeout(${ns}): negative or not a number`);
    if (this.irqs_off !== 0) this.might_sleep("schedule_timeout");
    this.announce(OP_SLEEP, -1, "", null);
    const t = this.threads[this.current];
    t.ready_ns += ns;
    yield;
  }

  now(): number {
    return this.now_ns;
  }

  choose(n: number): number {
    const c = this.choose_fn(n);
    if (!(Number.isInteger(c) && c >= 0 && c < n)) throw new LockBug(`choose(${n}) returned ${c}`);
    return c;
  }

  private acquire(lock: Lock, blocking: boolean): void {
    const t = this.threads[this.current];
    if (lock.owner !== -1) {
      throw new LockBug(
        lock.owner === t.id
          ? `recursive locking: thread ${t.name} takes ${lock.lock_class} it already holds`
          : `scheduler resumed ${t.name} on ${lock.lock_class} held by thread ${lock.owner}`,
      );
    }
    if (this.lockdep_on && blocking) {
      const held = t.held;
      const taken = this.cid_of(lock);
      for (let i = 0; i < held.length; i++) {
        const h = held[i];
        const cid = this.cid_of(h);
        const key = cid * LOCKDEP_CLASSES_MAX + taken;
        if (cid >= 0 && taken >= 0 && this.order_seen.has(key)) continue;
        this.lockdep_add(h.lock_class, lock.lock_class, t.name);
        if (cid >= 0 && taken >= 0) this.order_seen.add(key);
      }
    }
    lock.owner = t.id;
    t.held.push(lock);
  }

  /** The lockdep class number of one of this execution's locks, -1 for another's. */
  private cid_of(lock: Lock): number {
    return this.locks[lock.id] === lock ? (lock as RtLock).cid : -1;
  }

  private release(lock: Lock): void {
    const t = this.threads[this.current];
    if (lock.owner !== t.id) {
      throw new LockBug(
        `${t.name} unlocks ${lock.lock_class}, which it does not hold (owner ${lock.owner})`,
      );
    }
    lock.owner = -1;
    // Locks are mostly released in reverse order: pop, without a search.
    const held = t.held;
    if (held[held.length - 1] === lock) held.pop();
    else held.splice(held.lastIndexOf(lock), 1);
  }

  private lockdep_add(held: string, taken: string, who: string): void {
    if (held === taken) return;
    let after = this.order.get(held);
    if (after?.has(taken)) return;
    // Is `held` already ordered after `taken`? Then this is an inversion.
    const path = this.lockdep_path(taken, held);
    if (path) {
      throw new LockdepError(
        `${who} takes ${taken} while holding ${held}, but ${path.join(" -> ")} was recorded before`,
      );
    }
    if (!after) {
      after = new Set();
      this.order.set(held, after);
    }
    after.add(taken);
  }

  private lockdep_path(from: string, to: string): string[] | null {
    const seen = new Set<string>();
    const walk = (c: string): string[] | null => {
      if (c === to) return [c];
      if (seen.has(c)) return null;
      seen.add(c);
      for (const n of this.order.get(c) ?? []) {
        const p = walk(n);
        if (p) return [c, ...p];
      }
      return null;
    };
    return walk(from);
  }

  // ---- scheduling interface ------------------------------------------------

  /** Can thread `id` take its next step now? */
  enabled(id: number): boolean {
    const t = this.threads[id];
    if (t.done) return false;
    if (t.op === OP_LOCK && t.lock && t.lock.owner !== -1 && t.lock.owner !== t.id) return false;
    if (t.cond !== null && t.wait_until === Number.POSITIVE_INFINITY && !t.cond()) return false;
    return true;
  }

  /** When thread `t`'s next step comes: a timed wait not yet satisfied, at its deadline. */
  private next_ns(t: Thread): number {
    return t.cond !== null && t.wait_until !== Number.POSITIVE_INFINITY && !t.cond()
      ? t.wait_until
      : t.ready_ns;
  }

  /**
   * The simulator's policy: of `runnable`, the thread whose next step comes
   * first in simulated time (ties to the lowest id).
   */
  earliest(runnable: number[]): number {
    let best = runnable[0];
    let best_ns = this.next_ns(this.threads[best]);
    for (let i = 1; i < runnable.length; i++) {
      const ns = this.next_ns(this.threads[runnable[i]]);
      if (ns < best_ns) {
        best = runnable[i];
        best_ns = ns;
      }
    }
    return best;
  }

  /** Simulated time of thread `id`'s next step. */
  ready_ns(id: number): number {
    return this.next_ns(this.threads[id]);
  }

  /** Ids of the threads that can step, in id order. */
  runnable(): number[] {
    const r: number[] = [];
    for (let i = 0; i < this.threads.length; i++) if (this.enabled(i)) r.push(i);
    return r;
  }

  finished(): boolean {
    return this.live === 0;
  }

  /** Run thread `id` through its announced step up to its next announcement. */
  step(id: number): void {
    const t = this.threads[id];
    if (!this.enabled(id)) throw new LockBug(`step: thread ${t.name} cannot run now`);
    if (this.trace) {
      const e: TraceEntry = {
        thread: id,
        op: t.started ? t.op : OP_RESCHED,
        obj: t.obj,
        field: t.field,
      };
      if (this.record_stack) e.func = t.started ? t.func : "start";
      this.trace.push(e);
    }
    t.started = true;
    this.current = id;
    this.steps++;
    this.coalesce_left = COALESCE_STEPS_MAX;
    // A timed wait whose condition is still false times out at its deadline.
    if (t.cond !== null && t.wait_until > t.ready_ns && t.wait_until !== Number.POSITIVE_INFINITY) {
      if (!t.cond()) t.ready_ns = t.wait_until;
    }
    // A thread that was blocked resumes no earlier than the step that woke it.
    if (t.ready_ns < this.now_ns) {
      if (this.on_lock_wait !== null && t.op === OP_LOCK && t.lock !== null)
        this.on_lock_wait(id, t.lock, t.ready_ns, this.now_ns);
      t.ready_ns = this.now_ns;
    } else this.now_ns = t.ready_ns;
    t.ready_ns += this.step_ns;
    let r: IteratorResult<void, void>;
    try {
      r = t.gen.next();
    } catch (e) {
      // A thread that threw is over; the execution reports the error.
      t.done = true;
      this.live--;
      this.irqs_reset(t);
      this.current = -1;
      throw e;
    }
    if (r.done) {
      t.done = true;
      this.live--;
      if (t.held.length) {
        throw new LockBug(
          `${t.name} finished holding ${t.held.map((l) => l.lock_class).join(", ")}`,
        );
      }
      if (this.irqs_reset(t)) throw new LockBug(`${t.name} finished with interrupts disabled`);
    }
    this.current = -1;
  }

  /** The wait-for cycle when no thread can run (for DeadlockError). */
  wait_for(): string[] {
    const lines: string[] = [];
    for (const t of this.threads) {
      if (!t.done && t.cond !== null) lines.push(`${t.name} waits for ${t.field}`);
      if (t.done || !t.lock || t.op !== OP_LOCK) continue;
      const owner = this.threads[t.lock.owner];
      const irqs = t.irqs_disabled ? " (interrupts disabled)" : "";
      lines.push(
        `${t.name} waits for ${t.lock.lock_class} held by ${owner?.name ?? "nobody"}${irqs}`,
      );
    }
    return lines;
  }

  /**
   * Run to completion, letting `pick` choose among the runnable threads.
   * Throws DeadlockError when nothing can run, LockBug past `steps_max`.
   */
  run(pick: (runnable: number[]) => number, steps_max: number): void {
    this.in_run = true;
    this.steps_limit = steps_max;
    try {
      while (!this.finished()) {
        const r = this.runnable();
        if (r.length === 0) throw new DeadlockError(this.wait_for());
        if (this.steps >= steps_max) throw new LockBug(`execution exceeded ${steps_max} steps`);
        this.step(pick(r));
      }
    } finally {
      this.in_run = false;
      this.steps_limit = Number.POSITIVE_INFINITY;
    }
  }
}

/** Describe a trace entry for people: "T1 lock zone->lock". */
export function format_trace_entry(e: TraceEntry, names: string[]): string {
  const op = OP_NAMES[e.op] ?? `op${e.op}`;
  const what = e.op === OP_ATOMIC || e.field ? ` ${e.field}${e.obj >= 0 ? `@${e.obj}` : ""}` : "";
  return `${names[e.thread] ?? e.thread} ${op}${what}`;
}

/**
 * The kernel functions on a stack captured at an announcement: the two
 * innermost frames `keep` accepts, as "caller>callee" (runtime frames and
 * generator plumbing are never kept).
 */
function stack_label(stack: string, keep: (path: string) => boolean): string {
  const names: string[] = [];
  for (const line of stack.split("\n")) {
    const m = /^\s*at (?:Generator\.)?([\w$.]+) \((.*)\)$/.exec(line);
    if (!m || m[2].includes("/runtime/") || !keep(m[2])) continue;
    const name = m[1].replace(/^.*\./, "");
    if (name === "next" || name.startsWith("era_") || names.includes(name)) continue;
    names.push(name);
    if (names.length === 2) break;
  }
  return names.reverse().join(">");
}
