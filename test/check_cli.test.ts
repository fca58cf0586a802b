// `pagesim check` and `pagesim replay` as a user runs them: exit codes,
// the --json and --list contracts, and a trace file that replays.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../bin/pagesim.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "pagesim-check-"));

function pagesim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("pagesim check", () => {
  it("cli check: without --era the newest era's standard configuration runs", () => {
    const r = pagesim("check", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ era: "2026", complete: true, violation: null });
  });

  it("cli check: every example of --help runs (exit 0: clean, 1: a violation; never 2)", () => {
    const help = pagesim("check", "--help").out;
    const examples = help
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.startsWith("pagesim check "))
      .map((l) => l.split(/\s+/).slice(1));
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const args of examples) {
      const r = pagesim(...args, "--trace", join(dir, "help-example.json"));
      expect([0, 1], `${args.join(" ")}: ${r.err}`).toContain(r.code);
    }
  }, 60_000);

  it("cli check: --list --json prints eras, threads, rules and variants", () => {
    const r = pagesim("check", "--list", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(Object.keys(j).sort()).toEqual(["eras", "rules", "threads", "variants"]);
    expect(j.eras).toContain("2016");
    expect(j.rules["2016"]).toContain("recheck-movable-under-page-lock");
    expect(j.variants["2016"]).toEqual(["E19-double-list-del"]);
    expect(j.threads).toContain("compact");
  });

  it("cli check: the standard configuration passes (exit 0) and --json reports the search", () => {
    const r = pagesim("check", "--era", "2016-toy", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({
      era: "2016-toy",
      mode: "exhaustive",
      complete: true,
      violation: null,
      trace: null,
    });
    expect(j.threads).toEqual(["compact", "deflate", "inflate"]);
    expect(j.executions).toBeGreaterThan(100);
    expect(j.steps).toBeGreaterThan(j.executions);
  });

  it("cli check: a dropped rule exits 1 with a timeline, writes a trace, and replay reproduces it", () => {
    const trace = join(dir, "t.json");
    const r = pagesim(
      "check",
      "--era",
      "2016-toy",
      "--threads",
      "compact,deflate",
      "--pages",
      "1",
      "--drop-rule",
      "recheck-movable-under-page-lock",
      "--trace",
      trace,
    );
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^ step {2}compact0 +deflate0$/m);
    expect(r.out).toMatch(/isolate_movable_page>trylock_page: trylock page lock of pfn \d+/);
    expect(r.out).toMatch(/^violated: kernel-bug: list corruption/m);
    expect(r.out).toContain(`pagesim replay ${trace}`);
    const saved = JSON.parse(readFileSync(trace, "utf8"));
    expect(saved.pagesim_trace).toBe(1);
    expect(saved.violation.invariant).toBe("kernel-bug");
    const rp = pagesim("replay", trace);
    expect(rp.code).toBe(1);
    expect(rp.out).toMatch(/^ +1 {2}compact0 +start$/m);
    expect(rp.out).toContain("reproduced: the trace's failure (kernel-bug)");
    const rj = JSON.parse(pagesim("replay", trace, "--json").out);
    expect(rj).toMatchObject({ reproduced: true, steps: saved.steps.length });
  });

  it("cli check: --json with a violation carries the invariant and the trace", () => {
    const r = pagesim(
      "check",
      "--era",
      "2016-toy",
      "--threads",
      "compact,deflate",
      "--pages",
      "1",
      "--drop-rule",
      "dequeue-skips-isolated",
      "--json",
      "--trace",
      join(dir, "u.json"),
    );
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j.violation.invariant).toBe("isolated-once");
    expect(j.invariant).toBe("isolated-once");
    expect(j.complete).toBe(false);
    expect(j.trace.schedule.length).toBeGreaterThan(0);
    expect(j.trace.steps.length).toBe(j.trace.steps.at(-1).step);
  });

  it("cli check: random mode is deterministic per seed", () => {
    const args = [
      "check",
      "--era",
      "2016-toy",
      "--threads",
      "compact,deflate,inflate",
      "--pages",
      "1",
      "--mode",
      "random",
      "--budget",
      "50",
      "--seed",
      "4",
      "--json",
    ];
    const a = JSON.parse(pagesim(...args).out);
    const b = JSON.parse(pagesim(...args).out);
    expect(a.mode).toBe("random");
    expect(a.seed).toBe(4);
    expect(a.executions).toBe(50);
    expect(b.steps).toBe(a.steps);
  });

  it("cli check: bad arguments exit 2 with a message", () => {
    const bad = [
      ["check", "--era", "1999"],
      ["check", "--threads", "compact,bogus"],
      ["check", "--pages", "0"],
      ["check", "--drop-rule", "no-such-rule"],
      ["check", "--variant", "nope"],
      ["check", "--mode", "sideways"],
      ["replay", join(dir, "missing.json")],
    ];
    for (const args of bad) {
      const r = pagesim(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err.length, args.join(" ")).toBeGreaterThan(0);
    }
    const junk = join(dir, "junk.json");
    writeFileSync(junk, '{"pagesim_trace": 1, "config": {}}');
    expect(pagesim("replay", junk).code).toBe(2);
  });
});
