/**
 * cli/run.ts: `pagesim run [SCENARIO]`: load a scenario file (YAML or JSON;
 * without one, the built-in default scenario), apply the command line's
 * overrides, refuse what cannot run yet, run it on the virtual clock and
 * print a summary (or one JSON object), optionally writing a report
 * directory (--out).
 *
 * Variants: without a file (the built-in default), or with
 * `--balloon-compaction both`, the scenario runs twice, with
 * CONFIG_BALLOON_COMPACTION on and off, and the output shows both: the
 * first run's summary and a side-by-side table; in --json the top level is
 * the first run and `variants` holds both runs in full, each with its
 * `variant` label; --out DIR writes the first run to DIR and the second to
 * DIR/balloon_compaction_off.
 *
 * Exit codes (see main.ts): 2 for a bad scenario or argument, each problem
 * on its own line with its path and line, before anything runs; 1 when the
 * model hits a kernel BUG.
 */

import { readFileSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import { MachineConfigError } from "../kernel/boot.ts";
import {
  debugfs_extfrag_index,
  debugfs_unusable_index,
  proc_buddyinfo,
  proc_pagetypeinfo,
  proc_vmstat,
  proc_zoneinfo,
} from "../kernel/procfs.ts";
import { write_report } from "../report/files.ts";
import { RunProgress, wants_progress } from "../report/progress.ts";
import { compare_table, describe_run, run_header, summary } from "../report/summary.ts";
import { run_scenario, type ScenarioResult, unsupported } from "../sim/scenario_run.ts";
import {
  BALLOON_COMPACTION_VARIANTS,
  DEFAULT_SCENARIO_YAML,
  type ScenarioVariant,
} from "../workload/default_scenario.ts";
import { parse_source, ScenarioError, type SourceDoc, scenario_from } from "../workload/load.ts";
import { ERAS, type Era, type Scenario } from "../workload/scenario.ts";
import { parse_duration, parse_size } from "../workload/units.ts";
import { UsageError } from "./errors.ts";

export interface RunOptions {
  seed?: number;
  era?: Era;
  out?: string;
  json?: boolean;
  quiet?: boolean;
  mem?: number;
  cpus?: number;
  layout?: Scenario["machine"]["layout"];
  duration?: number;
  proc: string[];
  balloonCompaction?: "on" | "off" | "both";
}

const PROC_FILES: Record<string, [string, (m: Parameters<typeof proc_buddyinfo>[0]) => string]> = {
  buddyinfo: ["/proc/buddyinfo", proc_buddyinfo],
  pagetypeinfo: ["/proc/pagetypeinfo", proc_pagetypeinfo],
  zoneinfo: ["/proc/zoneinfo", proc_zoneinfo],
  vmstat: ["/proc/vmstat", proc_vmstat],
  extfrag_index: ["/sys/kernel/debug/extfrag/extfrag_index", debugfs_extfrag_index],
  unusable_index: ["/sys/kernel/debug/extfrag/unusable_index", debugfs_unusable_index],
};

export function int_arg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        `${name} must be an integer from ${min} to ${max}, got '${v}'`,
      );
    }
    return n;
  };
}

function size_arg(v: string): number {
  const n = parse_size(v);
  if (n === null)
    throw new InvalidArgumentError(`expected a size like '8GiB' or '512MiB', got '${v}'`);
  return n;
}

function duration_arg(v: string): number {
  const n = parse_duration(v);
  if (n === null || n <= 0)
    throw new InvalidArgumentError(`expected a duration like '30s', got '${v}'`);
  return n;
}

function proc_list(v: string): string[] {
  const names = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(n in PROC_FILES)) {
      throw new InvalidArgumentError(
        `unknown file '${n}' (choose from ${Object.keys(PROC_FILES).join(", ")})`,
      );
    }
  }
  return names;
}

/** Read, validate and override a scenario; every problem is a UsageError (exit 2). */
export function prepare_scenario(file: string | undefined, opts: RunOptions): Scenario {
  const name = file ?? "built-in default scenario";
  let src: SourceDoc;
  try {
    let text = DEFAULT_SCENARIO_YAML;
    if (file !== undefined) {
      try {
        text = readFileSync(file, "utf8");
      } catch (e) {
        throw new ScenarioError(file, [
          { path: "", message: `cannot read: ${(e as Error).message}`, line: 0 },
        ]);
      }
    }
    src = parse_source(text, name);
    const sc = scenario_from(src, name);
    if (opts.seed !== undefined) sc.seed = opts.seed;
    if (opts.era !== undefined) sc.era = opts.era;
    if (opts.mem !== undefined) sc.machine.memory = opts.mem;
    if (opts.cpus !== undefined) sc.machine.cpus = opts.cpus;
    if (opts.layout !== undefined) sc.machine.layout = opts.layout;
    if (opts.duration !== undefined) sc.duration = opts.duration;
    if (opts.balloonCompaction === "on") sc.kernel.balloon_compaction = true;
    if (opts.balloonCompaction === "off") sc.kernel.balloon_compaction = false;
    const problems = unsupported(sc).map((p) => ({
      ...p,
      line: src.line_of(
        p.path
          .split(/[.[\]]+/)
          .filter(Boolean)
          .map((k) => (/^\d+$/.test(k) ? Number(k) : k)),
      ),
    }));
    if (problems.length) throw new ScenarioError(name, problems);
    return sc;
  } catch (e) {
    if (e instanceof ScenarioError) throw new UsageError(e.message);
    throw e;
  }
}

/** The runs a command makes: one, or the balloon compaction variants. */
export function variants_of(file: string | undefined, opts: RunOptions): ScenarioVariant[] | null {
  const mode = opts.balloonCompaction ?? (file === undefined ? "both" : undefined);
  return mode === "both" ? [...BALLOON_COMPACTION_VARIANTS] : null;
}

/** One run of the command, with the progress bar and the header. */
function run_once(
  sc: Scenario,
  file: string | undefined,
  opts: RunOptions,
  header: string | null,
): ScenarioResult {
  const out = process.stdout;
  const show_progress = wants_progress(opts, out);
  const bar = show_progress ? new RunProgress(process.stderr) : null;
  let header_done = false;
  try {
    return run_scenario(sc, {
      on_boot: () => {
        // Printed once the machine booted, so a bad machine prints nothing.
        if (header !== null) out.write(header);
        header_done = true;
      },
      progress: (t, end) => bar?.update(t, end),
      proc_snapshots: opts.out !== undefined,
      trace: opts.out !== undefined,
      final_proc: (m) =>
        Object.fromEntries(opts.proc.map((p) => [PROC_FILES[p][0], PROC_FILES[p][1](m)])),
    });
  } catch (e) {
    if (e instanceof MachineConfigError && !header_done)
      throw new UsageError(`${file ?? "default"}: ${e.message}`);
    throw e;
  } finally {
    bar?.done();
  }
}

export function run_command(file: string | undefined, opts: RunOptions): void {
  const sc = prepare_scenario(file, opts);
  const out = process.stdout;
  const variants = variants_of(file, opts);
  const head = run_header({ ...sc, scenario: sc.name, duration_ns: sc.duration });
  if (variants === null) {
    const t0 = Date.now();
    const r = run_once(sc, file, opts, opts.json ? null : head);
    const wall_s = (Date.now() - t0) / 1000;
    if (opts.out !== undefined) write_report(opts.out, r, sc);
    if (opts.json) {
      out.write(`${JSON.stringify(json_result(r))}\n`);
      return;
    }
    out.write(summary(r, wall_s));
    for (const [path, text] of Object.entries(r.final_proc)) out.write(`\n${path}:\n${text}`);
    if (opts.out !== undefined) out.write(reports_written([`${opts.out}/report.html`]));
    return;
  }
  const runs: { label: string; r: ScenarioResult; wall_s: number; sc: Scenario }[] = [];
  for (const [i, v] of variants.entries()) {
    const vsc = structuredClone(sc);
    v.apply(vsc);
    const t0 = Date.now();
    const line = `  run ${i + 1} of ${variants.length}: ${v.label}\n`;
    const first = i === 0 ? `${head}${describe_run(sc.description)}` : "";
    const r = run_once(vsc, file, opts, opts.json ? null : first + line);
    runs.push({ label: v.label, r, wall_s: (Date.now() - t0) / 1000, sc: vsc });
  }
  if (opts.out !== undefined) {
    runs.forEach((x, i) => {
      const dir = i === 0 ? opts.out! : `${opts.out}/${x.label.replace("=", "_")}`;
      write_report(dir, x.r, x.sc);
    });
  }
  if (opts.json) {
    const all = runs.map((x) => ({ variant: x.label, ...json_result(x.r) }));
    out.write(`${JSON.stringify({ ...json_result(runs[0].r), variants: all })}\n`);
    return;
  }
  out.write(summary(runs[0].r, runs[0].wall_s));
  out.write(compare_table(runs.map((x) => ({ label: x.label, r: x.r, wall_s: x.wall_s }))));
  for (const [path, text] of Object.entries(runs[0].r.final_proc)) out.write(`\n${path}:\n${text}`);
  if (opts.out !== undefined)
    out.write(
      reports_written([
        `${opts.out}/report.html`,
        `${opts.out}/${runs[1].label.replace("=", "_")}/report.html`,
      ]),
    );
}

/**
 * Where the reports went, one path per line (indented) so a long --out
 * stays within 80 columns as far as the path itself allows.
 */
export function reports_written(paths: string[]): string {
  const head = paths.length === 1 ? "report written to:" : "reports written to:";
  return `\n${head}\n${paths.map((p) => `  ${p}\n`).join("")}`;
}

/** The --json object: the result without the bulky parts that --out writes. */
export function json_result(r: ScenarioResult): Record<string, unknown> {
  const { proc_snapshots: _p, trace: _t, ...rest } = r;
  return {
    ...rest,
    buddyinfo: Object.fromEntries(r.buddyinfo.map((z) => [z.zone, z.free])),
    buddyinfo_start: Object.fromEntries(r.buddyinfo_start.map((z) => [z.zone, z.free])),
  };
}

/** Register `pagesim run` on the program. */
export function register_run(program: Command): void {
  program
    .command("run")
    .argument(
      "[scenario]",
      "scenario file (YAML or JSON); without one, the built-in default scenario",
    )
    .description(
      "Run a scenario on the virtual clock: boot the machine it describes, run its\n" +
        "workload, sample /proc as simulated time passes, and print a summary.",
    )
    .option(
      "--seed <s>",
      "PRNG seed (overrides the scenario's)",
      int_arg("--seed", 0, Number.MAX_SAFE_INTEGER),
    )
    .addOption(
      new Option("--era <era>", "kernel era (overrides the scenario's)").choices([...ERAS]),
    )
    .option(
      "--out <dir>",
      "write result.json, metrics.csv, /proc samples, report.html and trace.json",
    )
    .option("--json", "print one JSON object instead of the summary")
    .option("--quiet", "no progress bar")
    .option("--mem <size>", "RAM size (overrides machine.memory)", size_arg)
    .option("--cpus <n>", "number of CPUs (overrides machine.cpus)", int_arg("--cpus", 1, 1024))
    .addOption(
      new Option("--layout <layout>", "physical memory layout (overrides machine.layout)").choices([
        "q35",
        "pc",
        "flat",
        "normal",
      ]),
    )
    .option("--duration <time>", "simulated time to run (overrides duration)", duration_arg)
    .addOption(
      new Option(
        "--balloon-compaction <mode>",
        "CONFIG_BALLOON_COMPACTION: on, off, or both (two runs side by side; the default scenario's default)",
      ).choices(["on", "off", "both"]),
    )
    .option(
      "--proc <files>",
      `files to print at the end, comma-separated: ${Object.keys(PROC_FILES).join(", ")}`,
      proc_list,
      [],
    )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  pagesim run                      # the default, balloon compaction on and off\n" +
        "  pagesim run --balloon-compaction on --json > default_on.json\n" +
        "  pagesim run examples/balloon_compaction.yaml --balloon-compaction both\n" +
        "  pagesim run examples/thp_compact_memory.yaml --seed 7 --out out/thp\n" +
        "  pagesim run --mem 1GiB --duration 10s --json > result.json\n" +
        "  pagesim run examples/unmovable_pollution.yaml --proc buddyinfo,pagetypeinfo",
    )
    .action((file: string | undefined, opts: RunOptions) => {
      run_command(file, opts);
    });
}
