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

  it("cli check: every example of --help runs with the exit code its comment gives", () => {
    const help = pagesim("check", "--help").out;
    // "# what it shows (exit N)" then the command, continued with " \\".
    const examples: { argv: string[]; code: number }[] = [];
    let code = -1;
    let cmd = "";
    for (const raw of help.slice(help.indexOf("Examples:")).split("\n")) {
      const l = raw.trim();
      const m = /^# .*\(exit (\d)/.exec(l);
      if (m) code = Number(m[1]);
      else if (l.startsWith("pagesim ") || cmd) {
        cmd += ` ${l.replace(/\\$/, "")}`;
        if (!l.endsWith("\\")) {
          examples.push({ argv: cmd.trim().split(/\s+/).slice(1), code });
          cmd = "";
          code = -1;
        }
      }
    }
    expect(examples.length).toBeGreaterThanOrEqual(6);
    for (const { argv, code } of examples) {
      expect(code, `${argv.join(" ")}: no (exit N) comment`).toBeGreaterThanOrEqual(0);
      const trace = argv[0] === "replay" ? [] : ["--trace", "pagesim-trace.json"];
      const r = pagesim(...argv, ...(argv.includes("--list") ? [] : trace));
      expect(r.code, `${argv.join(" ")}: ${r.err}`).toBe(code);
    }
    // Every help line fits 80 columns.
    for (const l of help.split("\n")) expect(l.length, l).toBeLessThanOrEqual(80);
  }, 90_000);

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

  it("cli check: --no-debug-atomic-sleep changes the verdict and the trace keeps it for replay", () => {
    const args = ["check", "--era", "2016", "--drop-rule", "dequeue-trylock-page", "--json"];
    const on = JSON.parse(pagesim(...args, "--trace", join(dir, "das-on.json")).out);
    expect(on.invariant).toBe("lock-bug");
    expect(on.violation.message).toMatch(/sleeping function called from invalid context/);
    const trace = join(dir, "das-off.json");
    const off = JSON.parse(pagesim(...args, "--no-debug-atomic-sleep", "--trace", trace).out);
    expect(["lockdep", "deadlock"]).toContain(off.invariant);
    expect(JSON.parse(readFileSync(trace, "utf8")).config.debug_atomic_sleep).toBe(false);
    const rj = pagesim("replay", trace, "--json");
    expect(rj.code).toBe(1);
    expect(JSON.parse(rj.out)).toMatchObject({ reproduced: true });
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

  it("cli check: random mode is deterministic per seed: the same seed finds the same counterexample, another seed explores other schedules", () => {
    const args = (seed: string) => [
      "check",
      "--era",
      "2016-toy",
      "--threads",
      "compact,deflate,inflate",
      "--pages",
      "1",
      "--drop-rule",
      "recheck-movable-under-page-lock",
      "--mode",
      "random",
      "--budget",
      "200",
      "--seed",
      seed,
      "--json",
      "--no-shrink",
      "--trace",
      join(dir, `pct-${seed}.json`),
    ];
    const a = JSON.parse(pagesim(...args("4")).out);
    const b = JSON.parse(pagesim(...args("4")).out);
    expect(a.mode).toBe("random");
    expect(a.seed).toBe(4);
    expect(a.invariant).not.toBeNull();
    expect(b.invariant).toBe(a.invariant);
    expect(b.executions).toBe(a.executions);
    expect(b.trace.schedule).toEqual(a.trace.schedule);
    // Other seeds take other paths: not all of them stop at the same
    // execution with the same schedule.
    const others = ["5", "6", "7"].map((s) => JSON.parse(pagesim(...args(s)).out));
    expect(
      others.some(
        (o) =>
          o.executions !== a.executions ||
          JSON.stringify(o.trace?.schedule) !== JSON.stringify(a.trace.schedule),
      ),
    ).toBe(true);
  });

  it("cli check: bad arguments exit 2 with a message naming the problem (and JSON with --json)", () => {
    const bad: [string[], RegExp][] = [
      [["check", "--era", "1999"], /unknown era '1999'/],
      [["check", "--threads", "balloon_compact,bogus"], /bogus/],
      [["check", "--pages", "0"], /--pages must be an integer/],
      [["check", "--drop-rule", "no-such-rule"], /unknown rule 'no-such-rule'/],
      [["check", "--variant", "nope"], /unknown variant/],
      [["check", "--mode", "sideways"], /sideways/],
      [["check", "--threads", "balloon_compact"], /at least two threads/],
      [
        [
          "check",
          "--threads",
          "balloon_compact,balloon_compact,balloon_deflate,balloon_inflate,balloon_putback",
        ],
        /at most 4 threads/,
      ],
      [["check", "--seed", "3"], /--seed applies to --mode random only/],
      [["check", "--mode", "random", "--no-por"], /--no-por applies to --mode exhaustive only/],
      [["check", "--mode", "random", "--preemption-bound", "2"], /--preemption-bound applies/],
      [["replay", join(dir, "missing.json")], /missing\.json/],
    ];
    for (const [args, why] of bad) {
      const r = pagesim(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err, args.join(" ")).toMatch(why);
      if (args[0] === "check") {
        const j = pagesim(...args, "--json");
        expect(j.code, args.join(" ")).toBe(2);
        expect(JSON.parse(j.out), args.join(" ")).toMatchObject({ exit_code: 2 });
        expect(JSON.parse(j.out).error, args.join(" ")).toMatch(why);
      }
    }
    const junk = join(dir, "junk.json");
    writeFileSync(junk, '{"pagesim_trace": 1, "config": {}}');
    expect(pagesim("replay", junk).code).toBe(2);
  });
});
