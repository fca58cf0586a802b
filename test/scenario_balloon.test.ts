// The scenario runner with balloons and the host: determinism (several guests
// included), the static policy, balloon_target on a second device, and every
// era of the registry running balloon compaction. Tiny guests (64 MiB), so each run takes a fraction of a second.
import { describe, expect, it } from "vitest";
import { FRAME_BALLOONED, HostSafetyError } from "../src/host/host.ts";
import {
  BalloonCompaction,
  balloon_pages_owned,
  verify_balloon_dev_info,
} from "../src/kernel/balloon_compaction.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { run_scenario } from "../src/sim/scenario_run.ts";
import { parse_scenario } from "../src/workload/load.ts";
import { ERAS } from "../src/workload/scenario.ts";

const GUESTS = `
name: tiny_host
duration: 3s
sample_interval: 500ms
machine: { memory: 64MiB, cpus: 2, layout: normal }
kernel: { watermark_boost_factor: 0 }
balloons: [{ name: b0, features: [stats_vq] }]
host: { memory: 96MiB, guests: 2, policy: { kind: static, target: 16MiB, at: 1s } }
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 12MiB, pattern: random }
  - type: processes
    every: 200ms
    lifetime: { dist: uniform, min: 200ms, max: 1s }
    size: { dist: uniform, min: 256KiB, max: 2MiB }
  - { type: compact_memory, at: 2s }
`;

/** A small guest whose balloon sits in the holes a process left, then compact_memory. */
const ERA_RUN = `
name: tiny_eras
duration: 2s
sample_interval: 500ms
machine: { memory: 64MiB, cpus: 2, layout: normal }
kernel: { watermark_boost_factor: 0, compaction_proactiveness: 0 }
balloons: [{ name: b0 }]
workload:
  - { type: alloc_anon, at: 0s, process: db, size: 32MiB, pattern: random, ways: 2 }
  - { type: free_anon, at: 200ms, process: db/0 }
  - { type: balloon_target, at: 300ms, size: 8MiB }
  - { type: free_anon, at: 800ms, process: db/1 }
  - { type: compact_memory, at: 1s }
  - { type: thp, at: 1500ms, count: 4, fallback: false }
`;

describe("scenario runner with balloons", () => {
  it("scenario run: each sample checks the host's ballooned frames against the guest's (a frame marked ballooned behind the guest's back is caught at the next sample)", () => {
    let marked = -1;
    let marked_at = -1;
    const run = () =>
      run_scenario(parse_scenario(ERA_RUN), {
        on_sample: (w, t) => {
          if (marked >= 0 || t < 500e6) return;
          // A page the guest uses (an anon page of the process): the host
          // now believes it discarded it, and counts it.
          const hg = w.balloons[0];
          const mem = w.m.mem;
          for (let p = 0; p < mem.nr_pages; p++) {
            if (mem._refcount[p] > 0 && mem.mapping[p] !== 0 && hg.frame[p] === 0) {
              hg.frame[p] = FRAME_BALLOONED;
              hg.ballooned_pages++;
              marked = p;
              marked_at = t;
              return;
            }
          }
        },
      });
    let err: unknown = null;
    try {
      run();
    } catch (e) {
      err = e;
    }
    expect(marked).toBeGreaterThanOrEqual(0);
    expect(marked_at).toBe(500e6);
    expect(err).toBeInstanceOf(HostSafetyError);
    expect(String(err)).toMatch(/the host discarded it but the guest uses it/);
    expect(String(err)).toContain(`${marked}`);
    // Without the disturbance the same run is clean.
    expect(() => run_scenario(parse_scenario(ERA_RUN))).not.toThrow();
  });

  it("scenario run: two guests under a static policy are deterministic; another seed gives another digest", () => {
    const a = run_scenario(parse_scenario(GUESTS));
    const b = run_scenario(parse_scenario(GUESTS));
    const c = run_scenario(parse_scenario(`${GUESTS}\nseed: 2\n`));
    expect(a.digest).toBe(b.digest);
    expect(a.guests.map((g) => g.digest)).toEqual(b.guests.map((g) => g.digest));
    expect(c.digest).not.toBe(a.digest);
    // The static policy set both guests' balloons to 16 MiB at 1 s.
    expect(a.guests.map((g) => g.balloons[0].balloon_pages)).toEqual([4096, 4096]);
    expect(a.guests.map((g) => g.balloons[0].name)).toEqual(["guest0:b0", "guest1:b0"]);
    const h = a.host!;
    expect(h.timeline.find((s) => s.t_ns === 5e8)!.total_pages).toBe(2 * h.guests[0].ram_pages);
    expect(h.total_backed_pages).toBe(2 * (h.guests[0].ram_pages - 4096));
    expect(h.reclaimed_pages).toBe(2 * 4096);
    // The guests differ (each its own seed) but the top level is the first.
    expect(a.guests[0].seed).toBe(1);
    expect(a.guests[1].seed).toBe(2);
    expect(a.guests[0].digest).not.toBe(a.guests[1].digest);
    expect(a.balloons[0].name).toBe("guest0:b0");
  });

  it("scenario run: balloon_target reaches the device it names, in every era with several devices", () => {
    // 2012 too: each device has its own balloon mapping.
    for (const era of ["2012", "2014", "2016", "2022", "2025", "2026"]) {
      const r = run_scenario(
        parse_scenario(`
era: "${era}"
duration: 2s
machine: { memory: 64MiB, cpus: 2, layout: normal }
balloons: [{ name: first }, { name: second, initial: 4MiB }]
workload:
  - { type: balloon_target, at: 500ms, device: 1, size: 8MiB }
  - { type: balloon_target, at: 1s, device: 0, size: 2MiB }
  - { type: compact_memory, at: 1500ms }
`),
      );
      expect(r.era).toBe(era);
      expect(r.balloons.map((b) => [b.name, b.target_pages, b.balloon_pages])).toEqual([
        ["first", 512, 512],
        ["second", 2048, 2048],
      ]);
      // Two devices: host memory counts each frame once.
      expect(r.host?.reclaimed_pages).toBe(2560);
      expect(r.vmstat.balloon_inflate).toBe(2560);
    }
  });

  it("scenario run: every era runs balloon compaction deterministically; eras that lock differently differ", () => {
    const digests: Record<string, string> = {};
    for (const era of ERAS) {
      const text = `${ERA_RUN}era: "${era}"\n`;
      let listed = -1;
      const a = run_scenario(parse_scenario(text), {
        at_end: (m, mm) => {
          verify_machine(m);
          const bc = mm.movable_ops.find((o) => o instanceof BalloonCompaction);
          if (!(bc instanceof BalloonCompaction)) throw new Error("no balloon driver");
          const b = bc.devices.find((d) => d !== null);
          if (!b) throw new Error("no balloon device");
          listed = verify_balloon_dev_info(bc, b);
          expect(b.isolated_pages).toBe(0);
          expect(balloon_pages_owned(bc, b)).toBe(listed);
        },
      });
      const b = run_scenario(parse_scenario(text));
      expect(a.era).toBe(era);
      expect(b.digest, era).toBe(a.digest);
      expect(b.steps, era).toBe(a.steps);
      // Compaction moved balloon pages, and the balloon still holds its 8 MiB.
      expect(a.vmstat.balloon_migrate, era).toBeGreaterThan(200);
      expect(listed, era).toBe(2048);
      expect(a.balloons[0].balloon_pages, era).toBe(2048);
      expect(a.host?.reclaimed_pages, era).toBe(2048);
      digests[era] = a.digest;
    }
    // 2012 and 2014 lock the page before pages_lock and walk the list
    // without it; 2016 trylocks under pages_lock; 2022 also deletes under
    // it in migratepage; 2026 takes no page lock and one global lock.
    const differ = [digests["2012"], digests["2016"], digests["2022"], digests["2026"]];
    expect(new Set(differ).size).toBe(4);
    // Same locks in the same order, so the same steps: 2014 differs from
    // 2012 in flags only, 2025 from 2016 in flags and page type only.
    expect(digests["2014"]).toBe(digests["2012"]);
    expect(digests["2025"]).toBe(digests["2016"]);
  });

  it("scenario run: without CONFIG_BALLOON_COMPACTION every era keeps its balloon pages where they are", () => {
    for (const era of ERAS) {
      const sc = parse_scenario(`${ERA_RUN}era: "${era}"\n`);
      sc.kernel.balloon_compaction = false;
      const r = run_scenario(sc, { at_end: (m) => verify_machine(m) });
      expect(r.vmstat.balloon_migrate, era).toBe(0);
      expect(r.balloons[0].balloon_pages, era).toBe(2048);
      expect(r.host?.reclaimed_pages, era).toBe(2048);
      // compact_memory scanned the zone and stepped around the (unmovable) balloon.
      expect(r.compaction.migrate_scanned, era).toBeGreaterThan(10_000);
      expect(r.compaction.pages_migrated, era).toBe(0);
    }
  });
});
