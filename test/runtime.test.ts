// The runtime's threads, locks, deadlock detection and lockdep, driven by
// random schedules from the seeded PRNG.
import { describe, expect, it, vi } from "vitest";
import { run_check, standard_config } from "../src/check/check.ts";
import { InlineRuntime, run_inline } from "../src/kernel/compaction_direct.ts";
import { DeadlockError, Execution, LockBug, LockdepError } from "../src/runtime/execution.ts";
import { Prng } from "../src/runtime/prng.ts";
import { type Lock, OP_READ, OP_WRITE, type Runtime, type Step } from "../src/runtime/runtime.ts";

/** Run an execution under a random schedule drawn from `seed`. */
function run_random(e: Execution, seed: number): void {
  const prng = new Prng(seed);
  e.run((r) => r[prng.below(r.length)], 10_000);
}

/** Two threads each add 1 to a shared counter: read, then write. */
function counter_execution(locked: boolean): { e: Execution; value: () => number } {
  const e = new Execution({ choose: () => 0, record_trace: true });
  const lock = e.new_lock("counter_lock");
  let counter = 0;
  const inc = function* (rt: Runtime): Step {
    if (locked) yield* rt.spin_lock(lock);
    yield* rt.access(OP_READ, 0, "counter");
    const v = counter;
    yield* rt.access(OP_WRITE, 0, "counter");
    counter = v + 1;
    if (locked) yield* rt.spin_unlock(lock);
  };
  e.spawn("T0", inc);
  e.spawn("T1", inc);
  return { e, value: () => counter };
}

describe("runtime", () => {
  it("runtime: a spinlock makes read-modify-write atomic under every random schedule", () => {
    for (let seed = 0; seed < 200; seed++) {
      const { e, value } = counter_execution(true);
      run_random(e, seed);
      expect(value()).toBe(2);
    }
  });

  it("runtime: without the lock some schedule loses an update", () => {
    const lost: number[] = [];
    for (let seed = 0; seed < 200; seed++) {
      const { e, value } = counter_execution(false);
      run_random(e, seed);
      expect([1, 2]).toContain(value());
      if (value() === 1) lost.push(seed);
    }
    expect(lost.length).toBeGreaterThan(0);
  });

  it("runtime: AB-BA locking deadlocks under some schedule, reported with the wait-for cycle", () => {
    let deadlocks = 0;
    for (let seed = 0; seed < 100; seed++) {
      const e = new Execution({ choose: () => 0, lockdep: false });
      const a = e.new_lock("A");
      const b = e.new_lock("B");
      e.spawn("T0", function* (rt) {
        yield* rt.spin_lock(a);
        yield* rt.spin_lock(b);
        yield* rt.spin_unlock(b);
        yield* rt.spin_unlock(a);
      });
      e.spawn("T1", function* (rt) {
        yield* rt.spin_lock(b);
        yield* rt.spin_lock(a);
        yield* rt.spin_unlock(a);
        yield* rt.spin_unlock(b);
      });
      try {
        run_random(e, seed);
      } catch (err) {
        expect(err).toBeInstanceOf(DeadlockError);
        expect((err as DeadlockError).cycle).toEqual([
          "T0 waits for B held by T1",
          "T1 waits for A held by T0",
        ]);
        deadlocks++;
      }
    }
    expect(deadlocks).toBeGreaterThan(0);
    expect(deadlocks).toBeLessThan(100);
  });

  it("runtime: lockdep reports the AB-BA inversion even when the run does not deadlock", () => {
    const e = new Execution({ choose: () => 0 });
    const a = e.new_lock("A");
    const b = e.new_lock("B");
    e.spawn("T0", function* (rt) {
      yield* rt.spin_lock(a);
      yield* rt.spin_lock(b);
      yield* rt.spin_unlock(b);
      yield* rt.spin_unlock(a);
    });
    e.spawn("T1", function* (rt) {
      yield* rt.spin_lock(b);
      yield* rt.spin_lock(a);
      yield* rt.spin_unlock(a);
      yield* rt.spin_unlock(b);
    });
    // T0 runs to completion first: no deadlock is possible in this schedule.
    expect(() => e.run((r) => r[0], 100)).toThrow(LockdepError);
    expect(() => e.run((r) => r[0], 100)).not.toThrow(DeadlockError);
  });

  it("runtime: trylock fails on a held lock instead of blocking", () => {
    const e = new Execution({ choose: () => 0 });
    const l = e.new_lock("L", "mutex");
    const got: boolean[] = [];
    e.spawn("holder", function* (rt) {
      yield* rt.mutex_lock(l);
      yield* rt.cond_resched();
      yield* rt.mutex_unlock(l);
    });
    e.spawn("trier", function* (rt) {
      const ok = yield* rt.mutex_trylock(l);
      got.push(ok);
      if (ok) yield* rt.mutex_unlock(l);
    });
    // holder takes the lock, then trier tries while it is held.
    const order = [0, 0, 1, 1, 0, 0];
    e.run((r) => (r.includes(order[0]) ? order.shift()! : r[0]), 100);
    expect(got).toEqual([false]);
  });

  it("runtime: a thread blocked on a lock is not runnable until the owner releases it", () => {
    const e = new Execution({ choose: () => 0 });
    const l = e.new_lock("L");
    e.spawn("T0", function* (rt) {
      yield* rt.spin_lock(l);
      yield* rt.cond_resched();
      yield* rt.spin_unlock(l);
    });
    e.spawn("T1", function* (rt) {
      yield* rt.spin_lock(l);
      yield* rt.spin_unlock(l);
    });
    e.step(0); // T0 announces lock
    e.step(1); // T1 announces lock
    e.step(0); // T0 takes it, announces resched
    expect(e.runnable()).toEqual([0]);
    e.step(0); // announces unlock
    e.step(0); // unlocks, finishes
    expect(e.runnable()).toEqual([1]);
  });

  it("runtime: unlocking a lock not held, finishing with a lock held and lockdep_assert_held are bugs", () => {
    const e1 = new Execution({ choose: () => 0 });
    const l1 = e1.new_lock("L");
    e1.spawn("T", function* (rt) {
      yield* rt.spin_unlock(l1);
    });
    expect(() => e1.run((r) => r[0], 10)).toThrow(/does not hold/);

    const e2 = new Execution({ choose: () => 0 });
    const l2 = e2.new_lock("L");
    e2.spawn("T", function* (rt) {
      yield* rt.spin_lock(l2);
    });
    expect(() => e2.run((r) => r[0], 10)).toThrow(LockBug);

    const e3 = new Execution({ choose: () => 0 });
    const l3 = e3.new_lock("zone->lock");
    e3.spawn("T", function* (rt) {
      yield* rt.cond_resched();
      rt.lockdep_assert_held(l3);
    });
    expect(() => e3.run((r) => r[0], 10)).toThrow(/zone->lock is not held/);
  });

  it("runtime: the same seed gives the same trace", () => {
    const traces = [7, 7, 8].map((seed) => {
      const { e } = counter_execution(false);
      run_random(e, seed);
      return JSON.stringify(e.trace);
    });
    expect(traces[0]).toBe(traces[1]);
  });
});

describe("runtime: errors", () => {
  it("runtime: a thread that throws is finished and the error reaches the caller", () => {
    const e = new Execution({ choose: () => 0 });
    e.spawn("T", function* (rt) {
      yield* rt.cond_resched();
      throw new Error("kernel path failed");
    });
    expect(() => e.run((r) => r[0], 10)).toThrow("kernel path failed");
    expect(e.finished()).toBe(true);
    expect(e.runnable()).toEqual([]);
  });
});

describe("runtime: waits and simulated time", () => {
  it("runtime: wait_event blocks a thread until another makes its condition true", () => {
    for (let seed = 0; seed < 50; seed++) {
      const e = new Execution({ choose: () => 0, record_trace: true });
      let acked = false;
      const order: string[] = [];
      e.spawn("guest", function* (rt) {
        yield* rt.wait_event(0, "vq->acked", () => acked);
        order.push("guest saw ack");
      });
      e.spawn("host", function* (rt) {
        yield* rt.cond_resched();
        yield* rt.access(OP_WRITE, 0, "vq->acked");
        acked = true;
        order.push("host acked");
      });
      run_random(e, seed);
      expect(order).toEqual(["host acked", "guest saw ack"]);
    }
  });

  it("runtime: every live thread waiting is a deadlock naming what each waits for", () => {
    const e = new Execution({ choose: () => 0 });
    e.spawn("guest", function* (rt) {
      yield* rt.wait_event(0, "vq->acked", () => false);
    });
    expect(() => e.run((r) => r[0], 10)).toThrow(/guest waits for vq->acked/);
  });

  it("runtime: earliest() runs threads in simulated-time order and the clock never goes back", () => {
    const e = new Execution({ choose: () => 0, step_ns: 10 });
    const log: [string, number][] = [];
    for (const [name, period] of [
      ["slow", 1000],
      ["fast", 300],
    ] as const) {
      e.spawn(name, function* (rt) {
        for (let i = 0; i < 4; i++) {
          yield* rt.schedule_timeout(period);
          log.push([name, rt.now()]);
        }
      });
    }
    e.run((r) => e.earliest(r), 1000);
    const times = log.map(([, t]) => t);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    // fast wakes at ~300, 600, 900 before slow's first wake at ~1000.
    expect(log.slice(0, 3).map(([n]) => n)).toEqual(["fast", "fast", "fast"]);
    expect(log[3][0]).toBe("slow");
    expect(e.now_ns).toBeGreaterThanOrEqual(4000);
  });

  it("runtime: on_lock_wait sees a thread blocked on a lock, in simulated time, and changes nothing", () => {
    const run = (observe: boolean) => {
      const e = new Execution({ choose: () => 0, step_ns: 10 });
      const l = e.new_lock("L", "spinlock");
      const seen: string[] = [];
      if (observe)
        e.on_lock_wait = (t, lock, from, to) => seen.push(`${t} ${lock.lock_class} ${from}-${to}`);
      const order: string[] = [];
      e.spawn("holder", function* (rt) {
        yield* rt.spin_lock(l);
        yield* rt.schedule_timeout(1000);
        order.push("holder");
        yield* rt.spin_unlock(l);
      });
      e.spawn("waiter", function* (rt) {
        yield* rt.schedule_timeout(100);
        yield* rt.spin_lock(l);
        order.push("waiter");
        yield* rt.spin_unlock(l);
      });
      e.run((r) => e.earliest(r), 1000);
      return { seen, order, now: e.now_ns, steps: e.steps };
    };
    const a = run(true);
    // The waiter asked at 120 ns and got the lock when the holder let go.
    expect(a.seen).toEqual(["1 L 120-1030"]);
    const b = run(false);
    expect([b.order, b.now, b.steps]).toEqual([a.order, a.now, a.steps]);
  });
});

describe("runtime: a solo thread inside run()", () => {
  it("runtime: skips scheduler round trips but keeps lock ownership, recursion checks and lockdep", () => {
    const e = new Execution({ choose: () => 0 });
    const a = e.new_lock("A");
    const b = e.new_lock("B");
    const owners: number[] = [];
    e.spawn("T", function* (rt) {
      yield* rt.spin_lock(a);
      owners.push(a.owner);
      yield* rt.access(OP_READ, 0, "x");
      yield* rt.spin_lock(b);
      yield* rt.spin_unlock(b);
      yield* rt.spin_unlock(a);
      owners.push(a.owner);
      // B then A: the inversion of the order recorded above.
      yield* rt.spin_lock(b);
      yield* rt.spin_lock(a);
    });
    expect(() => e.run((r) => r[0], 100)).toThrow(LockdepError);
    expect(owners).toEqual([0, -1]);
    // Without the announcements a solo run needs far fewer scheduler steps
    // than the same thread run with a trace.
    const steps = (trace: boolean) => {
      const x = new Execution({ choose: () => 0, record_trace: trace });
      const l = x.new_lock("L");
      x.spawn("T", function* (rt) {
        for (let i = 0; i < 10; i++) {
          yield* rt.spin_lock(l);
          yield* rt.access(OP_WRITE, 0, "x");
          yield* rt.spin_unlock(l);
        }
      });
      x.run((r) => r[0], 1000);
      return x.steps;
    };
    expect(steps(false)).toBeLessThan(steps(true));
    const r = new Execution({ choose: () => 0 });
    const l = r.new_lock("L");
    r.spawn("T", function* (rt) {
      yield* rt.spin_lock(l);
      yield* rt.spin_lock(l);
    });
    expect(() => r.run((x) => x[0], 100)).toThrow(/recursive locking/);
  });
});

describe("runtime: wait_event_timeout", () => {
  it("runtime: a timed wait times out at its deadline, or wakes when the condition comes true first", () => {
    for (const set_at of [200, 2000]) {
      const e = new Execution({ choose: () => 0, step_ns: 1 });
      let flag = false;
      let woke_at = -1;
      let got: boolean | null = null;
      e.spawn("waiter", function* (rt) {
        got = yield* rt.wait_event_timeout(0, "flag", () => flag, 500);
        woke_at = rt.now();
      });
      e.spawn("setter", function* (rt) {
        yield* rt.schedule_timeout(set_at);
        yield* rt.access(OP_WRITE, 0, "flag");
        flag = true;
      });
      e.run((r) => e.earliest(r), 100);
      if (set_at < 500) {
        expect(got).toBe(true);
        expect(woke_at).toBeGreaterThanOrEqual(set_at);
        expect(woke_at).toBeLessThan(500);
      } else {
        expect(got).toBe(false);
        expect(woke_at).toBeGreaterThanOrEqual(500);
        expect(woke_at).toBeLessThan(set_at);
      }
    }
  });
});

/**
 * A pinned random program of `threads` threads over three locks (taken in
 * id order), shared counters, trylocks, sleeps, cond_resched() and timed
 * waits; run under earliest() with or without coalescing. Returns what an
 * observer can see: the trace, counts, clocks, lock waits, what each
 * thread saw, and the error if one was thrown.
 */
function coalesce_program(seed: number, step_ns: number, coalesce: boolean, trace: boolean) {
  const prng = new Prng(seed);
  const e = new Execution({ choose: () => 0, step_ns, record_trace: trace, coalesce });
  const locks = [e.new_lock("A"), e.new_lock("B"), e.new_lock("C")];
  const x = [0, 0, 0];
  const seen: string[] = [];
  const waits: string[] = [];
  e.on_lock_wait = (t, l, from, to) => waits.push(`${t} ${l.lock_class} ${from}-${to}`);
  const nr_threads = 2 + prng.below(3);
  for (let id = 0; id < nr_threads; id++) {
    const ops = Array.from({ length: 5 + prng.below(30) }, () => [
      prng.below(7),
      prng.below(3),
      prng.below(3),
      prng.below(5),
    ]);
    e.spawn(`T${id}`, function* (rt) {
      for (const [op, a, b, k] of ops) {
        if (op === 0 || op === 1) {
          // A critical section, nested when b > a.
          yield* rt.spin_lock(locks[a]);
          yield* rt.access(OP_WRITE, a, "x");
          x[a]++;
          if (b > a) {
            yield* rt.spin_lock(locks[b]);
            x[b] += x[a];
            yield* rt.spin_unlock(locks[b]);
          }
          yield* rt.spin_unlock(locks[a]);
        } else if (op === 2) {
          const ok = yield* rt.spin_trylock(locks[a]);
          seen.push(`${id} try ${a} ${ok} @${rt.now()}`);
          if (ok) {
            yield* rt.access(OP_READ, a, "x");
            yield* rt.spin_unlock(locks[a]);
          }
        } else if (op === 3) {
          yield* rt.access(OP_READ, b, "x");
          seen.push(`${id} read ${x[b]} @${rt.now()}`);
        } else if (op === 4) yield* rt.schedule_timeout(k * 13);
        else if (op === 5) yield* rt.cond_resched();
        else {
          const got = yield* rt.wait_event_timeout(a, "x", () => x[a] > k, 50 * k);
          seen.push(`${id} wait ${got} @${rt.now()}`);
        }
      }
    });
  }
  let picks = 0;
  let error = "";
  try {
    e.run((r) => {
      picks++;
      return e.earliest(r);
    }, 100_000);
  } catch (err) {
    error = String(err);
  }
  return {
    observed: { trace: e.trace, steps: e.steps, now: e.now_ns, x, seen, waits, error },
    picks,
  };
}

describe("runtime: coalesce mode", () => {
  it("runtime: coalescing gives the trace, steps, clocks, lock waits and values of one step per scheduler pick", () => {
    let picks_one = 0;
    let picks_coalesced = 0;
    for (let seed = 1; seed <= 60; seed++) {
      for (const step_ns of [0, 7, 100]) {
        for (const trace of [true, false]) {
          const one = coalesce_program(seed, step_ns, false, trace);
          const co = coalesce_program(seed, step_ns, true, trace);
          expect(co.observed).toEqual(one.observed);
          // Without coalescing the scheduler picks before every step.
          expect(one.picks).toBe(one.observed.steps);
          picks_one += one.picks;
          picks_coalesced += co.picks;
        }
      }
    }
    // It did coalesce: fewer scheduler picks for the same steps (these
    // threads contend and sleep a lot; about 57% of the picks remain).
    expect(picks_coalesced).toBeLessThan(picks_one * 0.75);
  });

  it("runtime: a thread stops coalescing when the lock it releases wakes an earlier thread, or at a tie with a lower id", () => {
    const run = (coalesce: boolean) => {
      const e = new Execution({ choose: () => 0, step_ns: 10, record_trace: true, coalesce });
      const l = e.new_lock("L");
      const order: string[] = [];
      // T0 asks for L at 10 ns and waits; T1 holds it and works on.
      e.spawn("T0", function* (rt) {
        yield* rt.schedule_timeout(5);
        yield* rt.spin_lock(l);
        order.push(`T0 got L @${rt.now()}`);
        yield* rt.spin_unlock(l);
      });
      e.spawn("T1", function* (rt) {
        yield* rt.spin_lock(l);
        for (let i = 0; i < 5; i++) yield* rt.access(OP_WRITE, 0, "x");
        yield* rt.spin_unlock(l);
        for (let i = 0; i < 5; i++) {
          yield* rt.access(OP_WRITE, 0, "x");
          order.push(`T1 x @${rt.now()}`);
        }
      });
      e.run((r) => e.earliest(r), 1000);
      return { order, trace: e.trace, now: e.now_ns, steps: e.steps };
    };
    const a = run(false);
    expect(run(true)).toEqual(a);
    // T0 took L as soon as T1 let go, before T1's next write.
    expect(a.order[0]).toMatch(/^T0 got L/);
  });

  it("runtime: coalescing keeps lock ownership, recursion checks, lockdep and run()'s step bound", () => {
    const e = new Execution({ choose: () => 0, coalesce: true, step_ns: 1 });
    const a = e.new_lock("A");
    const b = e.new_lock("B");
    e.spawn("idle", function* (rt) {
      yield* rt.schedule_timeout(1_000_000);
    });
    e.spawn("T", function* (rt) {
      yield* rt.spin_lock(a);
      yield* rt.spin_lock(b);
      yield* rt.spin_unlock(b);
      yield* rt.spin_unlock(a);
      yield* rt.spin_lock(b);
      yield* rt.spin_lock(a);
    });
    expect(() => e.run((r) => e.earliest(r), 100)).toThrow(LockdepError);
    const r = new Execution({ choose: () => 0, coalesce: true });
    const l = r.new_lock("L");
    r.spawn("idle", function* (rt) {
      yield* rt.schedule_timeout(1_000_000);
    });
    r.spawn("T", function* (rt) {
      yield* rt.spin_lock(l);
      yield* rt.spin_lock(l);
    });
    expect(() => r.run((x) => r.earliest(x), 100)).toThrow(/recursive locking/);
    // A thread that never yields a real step still stops at steps_max.
    const s = new Execution({ choose: () => 0, coalesce: true, step_ns: 1 });
    s.spawn("idle", function* (rt) {
      yield* rt.schedule_timeout(Number.MAX_SAFE_INTEGER);
    });
    s.spawn("spin", function* (rt) {
      for (;;) yield* rt.access(OP_READ, 0, "x");
    });
    expect(() => s.run((x) => s.earliest(x), 5000)).toThrow(/exceeded 5000 steps/);
    expect(s.steps).toBe(5000);
  });
});

describe("runtime: coalesce mode is off in the checker", () => {
  it("runtime: every step() the checker takes is exactly one step, on an execution that does not coalesce", () => {
    const step = Execution.prototype.step;
    let calls = 0;
    const spy = vi.spyOn(Execution.prototype, "step").mockImplementation(function (
      this: Execution,
      id: number,
    ) {
      expect(this.coalesce).toBe(false);
      const before = this.steps;
      try {
        step.call(this, id);
      } finally {
        calls++;
        expect(this.steps).toBe(before + 1);
      }
    });
    try {
      for (const mode of ["exhaustive", "random"] as const) {
        const r = run_check(standard_config("2016"), { mode, budget: 40 });
        expect(r.violation).toBeNull();
      }
    } finally {
      spy.mockRestore();
    }
    expect(calls).toBeGreaterThan(1000);
  });
});

describe("runtime: spin_lock_irqsave", () => {
  /** One thread running `body` on an execution in mode `mode`; returns what it threw. */
  function run_one(
    mode: "trace" | "solo" | "coalesce",
    body: (rt: Runtime, a: Lock, b: Lock, m: Lock) => Step,
    opts: { debug_atomic_sleep?: boolean } = {},
  ): unknown {
    const e = new Execution({
      choose: () => 0,
      record_trace: mode === "trace",
      coalesce: mode === "coalesce",
      ...opts,
    });
    const a = e.new_lock("A");
    const b = e.new_lock("B");
    const m = e.new_lock("M", "mutex");
    e.spawn("T", (rt) => body(rt, a, b, m));
    try {
      if (mode === "coalesce") while (!e.finished()) e.step(0);
      else e.run((r) => r[0], 1000);
    } catch (err) {
      return err;
    }
    return null;
  }

  for (const mode of ["trace", "solo", "coalesce"] as const) {
    it(`runtime: irqrestore gives back the saved interrupt state, nested irqsave locks restore in turn (${mode})`, () => {
      const seen: unknown[] = [];
      const err = run_one(mode, function* (rt, a, b) {
        seen.push(rt.irqs_disabled());
        const fa = yield* rt.spin_lock_irqsave(a);
        seen.push(fa, rt.irqs_disabled(), a.owner);
        const fb = yield* rt.spin_lock_irqsave(b);
        seen.push(fb, rt.irqs_disabled());
        yield* rt.spin_unlock_irqrestore(b, fb);
        seen.push(rt.irqs_disabled());
        yield* rt.spin_unlock_irqrestore(a, fa);
        seen.push(rt.irqs_disabled(), a.owner);
      });
      expect(err).toBeNull();
      expect(seen).toEqual([false, 0, true, 0, 1, true, true, false, -1]);
    });

    it(`runtime: sleeping with interrupts disabled is "sleeping function called from invalid context" (${mode})`, () => {
      const sleepers: [string, (rt: Runtime, m: Lock) => Step][] = [
        ["mutex_lock(M)", (rt, m) => rt.mutex_lock(m)],
        ["cond_resched", (rt) => rt.cond_resched()],
        ["wait_event(x)", (rt) => rt.wait_event(0, "x", () => true)],
        [
          "wait_event_timeout(x)",
          function* (rt) {
            yield* rt.wait_event_timeout(0, "x", () => false, 5);
          },
        ],
        ["schedule_timeout", (rt) => rt.schedule_timeout(5)],
      ];
      for (const [what, sleep] of sleepers) {
        const err = run_one(mode, function* (rt, a, _b, m) {
          const f = yield* rt.spin_lock_irqsave(a);
          yield* sleep(rt, m);
          yield* rt.spin_unlock_irqrestore(a, f);
        });
        expect(err).toBeInstanceOf(LockBug);
        expect((err as Error).message).toBe(
          `BUG: sleeping function called from invalid context: T calls ${what} with interrupts disabled (holding A)`,
        );
        // The same call after irqrestore, or under a plain spin_lock, is allowed
        // (only the interrupt state is modelled, not the preempt count).
        expect(
          run_one(mode, function* (rt, a, _b, m) {
            const f = yield* rt.spin_lock_irqsave(a);
            yield* rt.spin_unlock_irqrestore(a, f);
            yield* sleep(rt, m);
            if (m.owner === 0) yield* rt.mutex_unlock(m);
          }),
        ).toBeNull();
      }
      // A trylock never sleeps.
      expect(
        run_one(mode, function* (rt, a, _b, m) {
          const f = yield* rt.spin_lock_irqsave(a);
          if (yield* rt.mutex_trylock(m)) yield* rt.mutex_unlock(m);
          yield* rt.spin_unlock_irqrestore(a, f);
        }),
      ).toBeNull();
    });
  }

  it("runtime: irqrestore with interrupts enabled, forged flags, and finishing with interrupts disabled are bugs", () => {
    const restore_on = run_one("trace", function* (rt, a, b) {
      const f = yield* rt.spin_lock_irqsave(a);
      yield* rt.spin_unlock_irqrestore(a, f);
      yield* rt.spin_lock(b);
      yield* rt.spin_unlock_irqrestore(b, f);
    });
    expect((restore_on as Error).message).toBe("T: spin_unlock_irqrestore with interrupts enabled");
    const forged = run_one("solo", function* (rt, a) {
      yield* rt.spin_lock_irqsave(a);
      yield* rt.spin_unlock_irqrestore(a, 7);
    });
    expect((forged as Error).message).toBe("T: spin_unlock_irqrestore with flags 7 never saved");
    const left_off = run_one("trace", function* (rt, a) {
      yield* rt.spin_lock_irqsave(a);
      yield* rt.spin_unlock(a);
    });
    expect((left_off as Error).message).toBe("T finished with interrupts disabled");
  });

  it("runtime: a thread waiting for an irqsave lock keeps its interrupts on until it has it; others are unaffected", () => {
    const e = new Execution({ choose: () => 0, record_trace: true });
    const a = e.new_lock("A");
    const m = e.new_lock("M", "mutex");
    const seen: boolean[] = [];
    e.spawn("T0", function* (rt) {
      const f = yield* rt.spin_lock_irqsave(a);
      yield* rt.access(OP_READ, 0, "x");
      yield* rt.spin_unlock_irqrestore(a, f);
    });
    e.spawn("T1", function* (rt) {
      yield* rt.mutex_lock(m);
      seen.push(rt.irqs_disabled());
      const f = yield* rt.spin_lock_irqsave(a);
      seen.push(rt.irqs_disabled());
      yield* rt.spin_unlock_irqrestore(a, f);
      yield* rt.mutex_unlock(m);
    });
    // T0 takes A; T1 sleeps on the mutex (allowed: its interrupts are on).
    e.step(0);
    e.step(0);
    e.step(1);
    e.step(1);
    expect(e.enabled(1)).toBe(false);
    e.run((r) => r[0], 100);
    expect(seen).toEqual([false, true]);
  });

  it("runtime: with debug_atomic_sleep off a sleeping lock taken with interrupts disabled just sleeps, and a cycle through it is a deadlock", () => {
    let deadlocks = 0;
    for (let seed = 0; seed < 60; seed++) {
      const e = new Execution({ choose: () => 0, lockdep: false, debug_atomic_sleep: false });
      const spin = e.new_lock("pages_lock");
      const page = e.new_lock("page lock", "page_lock");
      e.spawn("T0", function* (rt) {
        if (!(yield* rt.mutex_trylock(page))) return;
        const f = yield* rt.spin_lock_irqsave(spin);
        yield* rt.spin_unlock_irqrestore(spin, f);
        yield* rt.mutex_unlock(page);
      });
      e.spawn("T1", function* (rt) {
        const f = yield* rt.spin_lock_irqsave(spin);
        yield* rt.mutex_lock(page);
        yield* rt.mutex_unlock(page);
        yield* rt.spin_unlock_irqrestore(spin, f);
      });
      try {
        run_random(e, seed);
      } catch (err) {
        expect(err).toBeInstanceOf(DeadlockError);
        expect((err as DeadlockError).cycle).toEqual([
          "T0 waits for pages_lock held by T1",
          "T1 waits for page lock held by T0 (interrupts disabled)",
        ]);
        deadlocks++;
      }
    }
    expect(deadlocks).toBeGreaterThan(0);
  });
});

describe("runtime: InlineRuntime and interrupts", () => {
  it("runtime: an inline run tracks interrupts on its own (no outer thread) or through the outer thread, and may not sleep with them off", () => {
    const e = new Execution({ choose: () => 0 });
    const a = e.new_lock("A");
    const m = e.new_lock("M", "mutex");
    const outside = new InlineRuntime(e);
    const seen: unknown[] = [];
    seen.push(
      run_inline(
        (function* () {
          const f = yield* outside.spin_lock_irqsave(a);
          seen.push(outside.irqs_disabled(), a.owner);
          yield* outside.spin_unlock_irqrestore(a, f);
          return outside.irqs_disabled();
        })(),
        100,
        "test",
      ),
    );
    expect(seen).toEqual([true, -2, false]);
    expect(() =>
      run_inline(
        (function* () {
          yield* outside.spin_lock_irqsave(a);
          yield* outside.mutex_lock(m);
        })(),
        100,
        "test",
      ),
    ).toThrow(
      "BUG: sleeping function called from invalid context: direct compaction calls mutex_lock(M) with interrupts disabled",
    );
    a.owner = -1;
    let inner_irqs: boolean[] = [];
    e.spawn("T", function* (rt) {
      const f = yield* rt.spin_lock_irqsave(a);
      const inl = new InlineRuntime(rt);
      inner_irqs = [inl.irqs_disabled()];
      yield* rt.spin_unlock_irqrestore(a, f);
      inner_irqs.push(inl.irqs_disabled());
    });
    e.run((r) => r[0], 100);
    expect(inner_irqs).toEqual([true, false]);
  });
});
