// The runtime's coalesce mode on the balloon: the same guest run with one
// step per scheduler pick and coalesced (a thread's uncontended steps taken
// without a round trip, the benchmark's setting) must take the same steps
// in the same order and end in the same state, bit for bit: trace, step
// count, simulated clock, every page's state, the driver's and the host's
// counters and frames. A run that checks after every step gets every step.
import { describe, expect, it } from "vitest";
import { check_balloon_safety } from "../src/host/host.ts";
import {
  type BalloonGuest,
  balloon_settled,
  boot_balloon_guest,
  run_until,
  shutdown_balloon,
} from "../src/host/rig.ts";
import { compact_nodes } from "../src/kernel/compaction.ts";
import type { BalloonEra } from "../src/kernel/eras/era.ts";
import { do_anonymous_page, mm_new_process, zap_anon_page } from "../src/kernel/mm/owner.ts";
import {
  VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_MUST_TELL_HOST,
} from "../src/kernel/virtio_balloon.ts";
import { BALLOON_MIGRATE } from "../src/kernel/vmstat_items.ts";
import { Execution } from "../src/runtime/execution.ts";
import { Digest } from "../src/sim/digest.ts";
import { ERAS, F, MiB } from "./balloon_helpers.ts";

/** The lock waits of the latest guest's execution (on_lock_wait). */
const lock_waits: string[] = [];

/** A guest on an execution built with or without coalescing (trace on or off). */
function guest(
  coalesce: boolean,
  trace: boolean,
  step_ns: number,
  era: BalloonEra,
  features = F(VIRTIO_BALLOON_F_MUST_TELL_HOST),
): BalloonGuest {
  const e = new Execution({ choose: () => 0, step_ns, record_trace: trace, coalesce });
  e.on_lock_wait = (thread, lock, from_ns, to_ns) => {
    lock_waits.push(`${thread} ${lock.lock_class} ${from_ns}-${to_ns}`);
  };
  lock_waits.length = 0;
  return boot_balloon_guest({
    machine: { mem_bytes: 32 * MiB, nr_cpus: 2, track_content: true },
    features,
    latency_ns: 20_000,
    balloon: { era },
    execution: e,
  });
}

/** Everything a run leaves behind, folded into one digest plus the counters. */
function state_of(g: BalloonGuest) {
  const { m, e, vb, hg } = g;
  const mem = m.mem;
  const d = new Digest();
  for (const a of [
    mem.flags,
    mem._refcount,
    mem._mapcount,
    mem.page_type,
    mem.mapping,
    mem.index,
    mem.page_private,
    mem.lru_next,
    mem.lru_prev,
    hg.frame,
  ]) {
    for (let i = 0; i < a.length; i++) d.add(a[i]);
  }
  const trace = new Digest();
  for (const t of e.trace ?? []) {
    trace.add(t.thread);
    trace.add(t.op);
    trace.add(t.obj);
    for (let i = 0; i < t.field.length; i++) trace.add(t.field.charCodeAt(i));
  }
  return {
    pages: d.hex(),
    trace: trace.hex(),
    trace_len: e.trace?.length ?? 0,
    steps: e.steps,
    now_ns: e.now_ns,
    vm_events: Array.from(m.vm_events),
    nr_free: m.zones.map((z) => Array.from(z.nr_free)),
    managed: m.zones.map((z) => z.managed_pages),
    balloon: [vb.num_pages, vb.config_actual, vb.out_of_puff, vb.rounds, vb.vb_dev_info.nr_listed],
    host: [hg.backed_pages, hg.ballooned_pages, hg.rejected, ...hg.buffers],
    lock_waits: [...lock_waits],
  };
}

/** Inflate to 5,000 pages, deflate to 1,500, then a target beyond reach (out of puff), then 0. */
function inflate_deflate(g: BalloonGuest): void {
  const { hg, vb, e } = g;
  hg.set_target_pages(5_000);
  run_until(e, () => balloon_settled(g), 10_000_000);
  hg.set_target_pages(1_500);
  run_until(e, () => balloon_settled(g), 10_000_000);
  hg.set_target_pages(hg.ram_pages);
  run_until(e, () => vb.out_of_puff >= 2 && vb.balloon_lock.owner === -1, 10_000_000);
  hg.set_target_pages(0);
  run_until(e, () => balloon_settled(g), 10_000_000);
  shutdown_balloon(g);
}

describe("balloon: coalesce mode", () => {
  describe.each(ERAS.map((era) => ({ era, name: era.name })))("era $name", ({ era }) => {
    it("balloon coalesce: inflate, deflate, out of puff and back to 0 end in the same state, trace and step count", () => {
      for (const step_ns of [0, 30]) {
        const runs = [false, true].map((coalesce) => {
          const g = guest(coalesce, true, step_ns, era);
          inflate_deflate(g);
          return state_of(g);
        });
        expect(runs[1]).toEqual(runs[0]);
        expect(runs[0].vm_events).not.toEqual(new Array(runs[0].vm_events.length).fill(0));
      }
    });
  });

  it("balloon coalesce: without a trace too, and with DEFLATE_ON_OOM", () => {
    const era = ERAS.find((x) => x.name === "2016") ?? ERAS[0];
    const runs = [false, true].map((coalesce) => {
      const g = guest(coalesce, false, 0, era, F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
      inflate_deflate(g);
      return state_of(g);
    });
    expect(runs[1]).toEqual(runs[0]);
  });

  it("balloon coalesce: a process faulting, the balloon resizing and compaction all at once, in simulated time", () => {
    for (const era of ERAS.filter((x) => x.isolation === "core")) {
      const runs = [false, true].map((coalesce) => {
        const g = guest(coalesce, true, 40, era);
        const { m, mm, e, hg } = g;
        const n = m.mem.nr_pages;
        const p = mm_new_process(mm, "workload", n);
        let faulted = 0;
        const f = e.spawn("fault", function* (rt) {
          for (let v = 0; v < n / 2; v++) {
            if ((yield* do_anonymous_page(rt, mm, p, v, 7000 + v)) < 0) break;
            faulted++;
          }
          for (let v = 0; v < faulted; v += 3) yield* zap_anon_page(rt, mm, p, v);
        });
        hg.set_target_pages(2_000);
        run_until(e, () => e.threads[f].done && balloon_settled(g), 10_000_000);
        const c = e.spawn("compact_memory", (rt) => compact_nodes(rt, mm));
        hg.set_target_pages(500);
        run_until(e, () => e.threads[c].done && balloon_settled(g), 50_000_000);
        check_balloon_safety(hg);
        shutdown_balloon(g);
        return state_of(g);
      });
      expect(runs[1]).toEqual(runs[0]);
      // The threads did contend (the runs are not trivially sequential).
      expect(runs[0].lock_waits.length).toBeGreaterThan(0);
      expect(runs[0].vm_events[BALLOON_MIGRATE]).toBeGreaterThan(0);
    }
  });

  it("balloon coalesce: coalesced steps carry the same labels (the kernel functions that announced them)", () => {
    const era = ERAS.find((x) => x.name === "2016") ?? ERAS[0];
    const traces = [false, true].map((coalesce) => {
      const e = new Execution({
        choose: () => 0,
        record_trace: true,
        record_stack: true,
        coalesce,
      });
      const g = boot_balloon_guest({
        machine: { mem_bytes: 16 * MiB, nr_cpus: 2 },
        features: F(VIRTIO_BALLOON_F_MUST_TELL_HOST),
        balloon: { era },
        execution: e,
      });
      g.hg.set_target_pages(300);
      run_until(e, () => balloon_settled(g), 1_000_000);
      g.hg.set_target_pages(0);
      run_until(e, () => balloon_settled(g), 1_000_000);
      return e.trace;
    });
    expect(traces[1]).toEqual(traces[0]);
    expect(traces[0]?.some((t) => t.func === "balloon_page_enqueue>trylock_page")).toBe(true);
  });

  it("balloon coalesce: run_until() checking after every step gets every step", () => {
    const era = ERAS.find((x) => x.name === "2016") ?? ERAS[0];
    const g = guest(true, false, 0, era);
    g.hg.set_target_pages(2_000);
    let checks = 0;
    const s0 = g.e.steps;
    run_until(
      g.e,
      () => balloon_settled(g),
      1_000_000,
      () => {
        checks++;
        check_balloon_safety(g.hg);
      },
    );
    expect(checks).toBe(g.e.steps - s0);
    expect(g.e.coalesce).toBe(true);
    // Without the check it coalesces: fewer step() calls than steps.
    let calls = 0;
    const step = g.e.step.bind(g.e);
    g.e.step = (id: number) => {
      calls++;
      step(id);
    };
    const s1 = g.e.steps;
    g.hg.set_target_pages(0);
    run_until(g.e, () => balloon_settled(g), 1_000_000);
    expect(calls).toBeLessThan((g.e.steps - s1) / 10);
  });
});
