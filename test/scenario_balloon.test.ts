// The scenario runner with balloons and the host: determinism (several guests
// included), the static policy, balloon_target on a second device, and the
// eras that run. Tiny guests (64 MiB), so each run takes a fraction of a second.
import { describe, expect, it } from "vitest";
import { run_scenario } from "../src/sim/scenario_run.ts";
import { parse_scenario } from "../src/workload/load.ts";

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

describe("scenario runner with balloons", () => {
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

  it("scenario run: balloon_target reaches the device it names, and each era runs", () => {
    for (const era of ["2016", "2022", "2026"]) {
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
});
