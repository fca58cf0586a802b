// Scenario files: defaults, units, and one clear message per problem with its path and line.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ERAS as ERA_REGISTRY } from "../src/kernel/eras/index.ts";
import { DEFAULT_SCENARIO_YAML } from "../src/workload/default_scenario.ts";
import { parse_scenario, ScenarioError } from "../src/workload/load.ts";
import { ERAS } from "../src/workload/scenario.ts";
import { format_duration, format_size, parse_duration, parse_size } from "../src/workload/units.ts";

function problems(text: string): string[] {
  try {
    parse_scenario(text, "t.yaml");
  } catch (e) {
    if (e instanceof ScenarioError) return e.message.split("\n");
    throw e;
  }
  throw new Error("expected a ScenarioError");
}

describe("scenario schema", () => {
  it("scenario: an empty file is a complete scenario with every default", () => {
    const sc = parse_scenario("{}", "empty");
    expect(sc.machine).toEqual({ memory: 8 * 1024 ** 3, layout: "q35", cpus: 2, movable: 0 });
    expect(sc.kernel.extfrag_threshold).toBe(500);
    expect(sc.kernel.compaction_proactiveness).toBe(20);
    expect(sc.kernel.balloon_compaction).toBe(true);
    expect(sc.kernel.min_free_kbytes).toBeUndefined();
    expect(sc.era).toBe("2016");
    expect(sc.duration).toBe(60e9);
    expect(sc.sample_interval).toBe(1e9);
    expect(sc.seed).toBe(1);
    expect(sc.balloons).toEqual([]);
    expect(sc.host).toBeUndefined();
    expect(sc.workload).toEqual([]);
  });

  it("scenario: every era of the registry is a valid era; an unknown one names them all", () => {
    expect(ERAS).toEqual(Object.keys(ERA_REGISTRY));
    expect(ERAS).toEqual(["2012", "2014", "2016", "2022", "2025", "2026"]);
    for (const era of ERAS) expect(parse_scenario(`era: "${era}"\n`, "t.yaml").era).toBe(era);
    expect(problems('name: x\nera: "2013"\n')).toEqual([
      "t.yaml: era: expected one of 2012, 2014, 2016, 2022, 2025, 2026, got '2013' (line 2)",
    ]);
    // A number is not an era name (YAML reads 2016 unquoted as a number).
    expect(problems("era: 2016\n")).toEqual([
      "t.yaml: era: expected one of 2012, 2014, 2016, 2022, 2025, 2026, got 2016 (line 1)",
    ]);
  });

  it("scenario: YAML and JSON give the same scenario", () => {
    const yaml = "machine:\n  memory: 512MiB\nworkload:\n  - type: thp\n    at: 2s\n    count: 3\n";
    const json = JSON.stringify({
      machine: { memory: "512MiB" },
      workload: [{ type: "thp", at: "2s", count: 3 }],
    });
    expect(parse_scenario(json)).toEqual(parse_scenario(yaml));
    const sc = parse_scenario(yaml);
    expect(sc.workload[0]).toMatchObject({
      type: "thp",
      at: 2e9,
      count: 3,
      process: "thp",
      fallback: true,
    });
  });

  it("scenario: the built-in default scenario is valid", () => {
    const sc = parse_scenario(DEFAULT_SCENARIO_YAML, "default");
    expect(sc.name).toBe("default");
    expect(sc.machine.memory).toBe(8 * 1024 ** 3);
    expect(sc.workload.length).toBeGreaterThan(5);
  });

  it("scenario: a bad size names its path, the value and its line", () => {
    const text = [
      "name: t", // 1
      "workload:", // 2
      "  - type: alloc_anon", // 3
      "    size: 1GiB", // 4
      "  - type: thp", // 5
      "    count: 2", // 6
      "  - type: compact_memory", // 7
      "  - type: alloc_anon", // 8
      "    at: 5s", // 9
      "    size: lots", // 10
    ].join("\n");
    expect(problems(text)).toEqual([
      "t.yaml: workload[3].size: expected a size like '512MiB', got 'lots' (line 10)",
    ]);
  });

  it("scenario: every problem is reported once, in file order, each with its line", () => {
    const text = [
      "machine:", // 1
      "  memory: 1GiB", // 2
      "  cpus: 0", // 3
      "  colour: blue", // 4
      "era: 1999", // 5
      "duration: soon", // 6
      "workload:", // 7
      "  - type: dance", // 8
      "  - type: processes", // 9
      "    every: 1s", // 10
      "    lifetime: 10s", // 11
      "    size: { dist: uniform, min: 1MiB, max: x }", // 12
      "  - type: free_anon", // 13
      "    pattern: all", // 14
    ].join("\n");
    const p = problems(text);
    expect(p).toContain("t.yaml: machine.cpus: expected an integer from 1 to 1024, got 0 (line 3)");
    expect(p).toContain("t.yaml: machine.colour: unknown field (line 4)");
    expect(p).toContain(
      "t.yaml: era: expected one of 2012, 2014, 2016, 2022, 2025, 2026, got 1999 (line 5)",
    );
    expect(p).toContain(
      "t.yaml: duration: expected a duration like '30s' or '250ms', got 'soon' (line 6)",
    );
    expect(
      p.some((l) =>
        /^t\.yaml: workload\[0\]\.type: expected a type: one of alloc_anon, .*got 'dance' \(line 8\)$/.test(
          l,
        ),
      ),
    ).toBe(true);
    expect(p).toContain(
      "t.yaml: workload[1].size.max: expected a size like '512MiB', got 'x' (line 12)",
    );
    expect(p).toContain("t.yaml: workload[2].process: required (line 13)");
    expect(p).toHaveLength(7);
  });

  it("scenario: a value of the wrong type is not called missing", () => {
    expect(problems("machine:\n  cpus: two\nkernel:\n  balloon_compaction: maybe\n")).toEqual([
      "t.yaml: machine.cpus: expected an integer, got 'two' (line 2)",
      "t.yaml: kernel.balloon_compaction: expected boolean, got 'maybe' (line 4)",
    ]);
  });

  it("scenario: YAML syntax errors and non-mappings are refused with a line", () => {
    expect(problems("machine: [1, 2\n")[0]).toMatch(
      /^t\.yaml: not valid YAML or JSON: .*\(line \d+\)$/,
    );
    expect(problems("- 1\n- 2\n")[0]).toMatch(/expected a mapping of scenario fields/);
  });

  it("scenario: cross-field checks (events after the end, balloon devices, sample count)", () => {
    const p = problems(
      "duration: 11s\nsample_interval: 1ms\nworkload:\n  - type: thp\n    at: 20s\n    count: 1\n  - type: balloon_target\n    size: 1GiB\n",
    );
    expect(p).toEqual([
      "t.yaml: sample_interval: gives 11000 samples; at most 10000 (make it longer) (line 2)",
      "t.yaml: workload[0].at: is after the end of the scenario (duration) (line 5)",
      "t.yaml: workload[1].device: no balloon device 0 (balloons lists 0) (line 7)",
    ]);
  });

  it("scenario: balloons, host and policy are validated", () => {
    const sc = parse_scenario(
      "balloons:\n  - features: [deflate_on_oom, free_page_reporting]\n    initial: 1GiB\nhost:\n  memory: 64GiB\n  guests: 3\n  policy: { kind: auto, free_percent: 15 }\n",
    );
    expect(sc.balloons[0]).toEqual({
      name: "virtio_balloon",
      driver: "virtio_balloon",
      features: ["deflate_on_oom", "free_page_reporting"],
      initial: 1024 ** 3,
    });
    expect(sc.host?.policy).toEqual({ kind: "auto", interval: 1e9, free_percent: 15 });
    const p = problems("balloons:\n  - features: [teleport]\nhost:\n  policy: { kind: magic }\n");
    expect(p).toContain(
      "t.yaml: balloons[0].features[0]: expected one of deflate_on_oom, free_page_reporting, free_page_hint, stats_vq, got 'teleport' (line 2)",
    );
    expect(p).toContain("t.yaml: host.memory: required (line 3)");
  });
});

describe("units", () => {
  it("units: sizes and durations parse as people write them", () => {
    expect(parse_size("512MiB")).toBe(512 * 1024 ** 2);
    expect(parse_size("4k")).toBe(4096);
    expect(parse_size("lots")).toBeNull();
    expect(parse_duration("250ms")).toBe(250e6);
    expect(parse_duration("2min")).toBe(120e9);
    expect(parse_duration(1.5)).toBe(1.5e9);
    expect(parse_duration("soon")).toBeNull();
    expect(parse_duration("-1s")).toBeNull();
  });

  it("units: printing then parsing a whole size or duration gives it back (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 1023 }),
        (shift, k) => {
          const bytes = k * 2 ** (10 * Math.floor(shift / 10));
          expect(parse_size(format_size(bytes).replace(" ", ""))).toBe(bytes);
        },
      ),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 59 }), fc.constantFrom(1, 1e3, 1e6, 1e9), (k, unit) => {
        expect(parse_duration(format_duration(k * unit).replace(" ", ""))).toBe(k * unit);
      }),
    );
  });
});
