/**
 * runtime/runtime.ts: the interface between kernel code and whoever
 * schedules it (the simulator's scheduler or the checker's explorer).
 *
 * A kernel path that can race with another CPU is a generator. Just before
 * each action another CPU could interleave with, it announces the step
 * (operation, object, field) and yields; the scheduler decides when it runs.
 * Work done entirely under one lock is plain code between two steps.
 *
 *   function* balloon_page_isolate(rt: Runtime, ...) {
 *     yield* rt.spin_lock(b_dev_info.pages_lock);
 *     ...
 *     yield* rt.spin_unlock(b_dev_info.pages_lock);
 *   }
 *
 * The kernel model imports only the types in this file; the runtime that
 * implements them lives in execution.ts.
 */

/** What a step does, for partial-order reduction and traces. */
export const OP_LOCK = 1;
export const OP_TRYLOCK = 2;
export const OP_UNLOCK = 3;
/** An atomic read-modify-write of a page field (get_page_unless_zero, test_and_set_bit). */
export const OP_ATOMIC = 4;
/** A lockless read the protocol depends on (PageLRU, a movable flag). */
export const OP_READ = 5;
/** A lockless write another CPU may observe. */
export const OP_WRITE = 6;
/** cond_resched(): a point where the thread may be preempted, touching nothing. */
export const OP_RESCHED = 7;
/** wait_event(): the thread sleeps until a condition on shared state holds. */
export const OP_WAIT = 8;
/** schedule_timeout() / msleep(): the thread sleeps for a stretch of simulated time. */
export const OP_SLEEP = 9;

export const OP_NAMES = [
  "",
  "lock",
  "trylock",
  "unlock",
  "atomic",
  "read",
  "write",
  "resched",
  "wait",
  "sleep",
];

/**
 * What spin_lock_irqsave() saves and spin_unlock_irqrestore() restores (the
 * kernel's `unsigned long flags`): whether the thread had its interrupts
 * disabled before. The model has no interrupt handlers; the state exists
 * so that sleeping with interrupts disabled is caught (see Runtime).
 */
export type IrqFlags = number;
export const IRQ_FLAGS_ENABLED: IrqFlags = 0;
export const IRQ_FLAGS_DISABLED: IrqFlags = 1;

/** Lock kinds. A spinlock and a mutex block the same way in the model. */
export type LockKind = "spinlock" | "mutex" | "page_lock";

/** A lock the kernel model takes. Created by Execution.new_lock(). */
export interface Lock {
  readonly id: number;
  /** The lockdep class, e.g. "zone->lock" or "b_dev_info->pages_lock". */
  readonly lock_class: string;
  readonly kind: LockKind;
  /** The thread that holds it, or -1. */
  owner: number;
}

export type Step = Generator<void, void, void>;
export type StepOf<T> = Generator<void, T, void>;

/** What a kernel path sees of the CPU it runs on. */
export interface Runtime {
  /** The running thread's id (a CPU number in the simulator). */
  readonly current: number;
  /**
   * Whether the running code may sleep (wait_event, schedule_timeout, a
   * lock another thread holds): the model's might_sleep() context. Absent
   * means true (an Execution's threads, the checker's). A runtime that runs
   * a path inline inside another thread's step (compaction_direct.ts's
   * InlineRuntime) sets it false; code that would sleep asks first and
   * backs off before changing anything, where the kernel would sleep.
   */
  readonly can_sleep?: boolean;
  /**
   * An inline run (compaction_direct.ts's run_inline) begins or ends inside
   * the running thread's step. Its driver resumes the steps it announces at
   * once, not the scheduler: they are not steps of the thread (no count, no
   * clock), so a runtime must not take them as steps either (coalesce
   * mode would). Optional; calls nest.
   */
  inline_enter?(): void;
  inline_exit?(): void;
  spin_lock(lock: Lock): Step;
  spin_unlock(lock: Lock): Step;
  /**
   * spin_lock_irqsave(): disable the running thread's interrupts and take
   * `lock` (one step, as spin_lock); returns the flags to hand back to
   * spin_unlock_irqrestore(). While a thread's interrupts are disabled,
   * anything that may sleep (mutex_lock and the page lock, wait_event,
   * wait_event_timeout, schedule_timeout, cond_resched) is a bug, as the
   * kernel's might_sleep() reports "BUG: sleeping function called from
   * invalid context": the runtime throws before the thread changes
   * anything. A thread that finishes with interrupts disabled is a bug too.
   */
  spin_lock_irqsave(lock: Lock): StepOf<IrqFlags>;
  /**
   * spin_unlock_irqrestore(): release `lock` and restore the interrupt
   * state `flags` saved when it (or an outer irqsave lock) was taken.
   * Restoring while interrupts are enabled is a bug (the flags were not
   * saved by this thread's matching irqsave).
   */
  spin_unlock_irqrestore(lock: Lock, flags: IrqFlags): Step;
  /** irqs_disabled(): whether the running thread has its interrupts disabled. */
  irqs_disabled(): boolean;
  /** spin_trylock(): true if taken. */
  spin_trylock(lock: Lock): StepOf<boolean>;
  mutex_lock(lock: Lock): Step;
  mutex_unlock(lock: Lock): Step;
  mutex_trylock(lock: Lock): StepOf<boolean>;
  /** lockdep_assert_held(): fires unless the running thread holds `lock`. */
  lockdep_assert_held(lock: Lock): void;
  /** An atomic or lockless access to `field` of object `obj` (a pfn, a device). */
  access(op: number, obj: number, field: string): Step;
  cond_resched(): Step;
  /**
   * wait_event(): sleep until `cond()` holds (another thread makes it true).
   * The thread is not runnable while the condition is false; when all live
   * threads wait, that is a deadlock. `obj` and `field` name what is waited
   * for, as in access().
   */
  wait_event(obj: number, field: string, cond: () => boolean): Step;
  /**
   * wait_event_timeout(): as wait_event(), but give up after `timeout_ns` of
   * simulated time; returns whether the condition held.
   */
  wait_event_timeout(
    obj: number,
    field: string,
    cond: () => boolean,
    timeout_ns: number,
  ): StepOf<boolean>;
  /**
   * schedule_timeout(): sleep for `ns` of simulated time. The simulator's
   * clock moves on; the checker treats it as a preemption point.
   */
  schedule_timeout(ns: number): Step;
  /** The running thread's simulated time in ns (0 when nothing keeps time). */
  now(): number;
  /** A nondeterministic choice in [0, n): the checker enumerates, the simulator draws. */
  choose(n: number): number;
}

/**
 * An already finished step returning `value`: `yield*` on it returns at
 * once without announcing anything (a runtime that knows nobody can
 * interleave, or an inline run, hands these out instead of real steps).
 */
export function done_step<T>(value: T): StepOf<T> {
  const result: IteratorReturnResult<T> = { done: true, value };
  const it = {
    next: () => result,
    return: () => result,
    throw: (e: unknown): never => {
      throw e;
    },
    [Symbol.iterator]() {
      return it;
    },
  };
  return it as unknown as StepOf<T>;
}

/** The finished step with no value. */
export const NO_STEP: Step = done_step(undefined);
