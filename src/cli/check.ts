/**
 * cli/check.ts: `pagesim check`, the model checker on the command line.
 *
 *   pagesim check [--era ERA] [--threads LIST] [--pages N] [--drop-rule NAME]...
 *                 [--variant NAME] [--mode exhaustive|random] [--budget N]
 *                 [--seed S] [--depth D] [--preemption-bound N] [--no-por]
 *                 [--no-shrink] [--no-debug-atomic-sleep] [--trace FILE] [--json]
 *   pagesim check --list [--json]
 *
 * Exit codes: 0 no violation found, 1 a violation (printed, and its trace
 * written), 2 bad arguments (with --json also as { error, exit_code: 2 }
 * on stdout). Exhaustive search takes two to four threads, random search
 * up to six; an option the chosen mode does not read (--seed and --depth
 * for exhaustive, --preemption-bound and --no-por for random) is an error. Without --threads and --pages the era's
 * standard configuration is used (either one alone overrides its half).
 * --json prints one object: era, mode, por, executions, sleep_blocked,
 * steps, complete, threads, pages, drop_rules, variant, seed, seconds,
 * violation (null or { invariant, message }), invariant (null or the
 * violation's invariant), trace (null or the trace
 * file's content) and trace_file.
 * The wall clock is read here only, to report seconds; the search never
 * sees it.
 */

import { writeFileSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import { list_info, run_check, standard_config } from "../check/check.ts";
import { format_timeline, trace_json } from "../check/counterexample.ts";
import { check_era, check_eras } from "../check/eras.ts";
import { ConfigError } from "../check/runner.ts";
import { PAGES_MAX, THREADS_MAX } from "../check/world.ts";
import { UsageError } from "./errors.ts";

/** Thrown after a command has printed its result, to set the exit code. */
export class ExitStatus extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.name = "ExitStatus";
    this.code = code;
  }
}

function int_arg(name: string, min: number, max: number) {
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

function collect(v: string, prev: string[]): string[] {
  return [
    ...prev,
    ...v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

interface CheckCliOptions {
  era?: string;
  threads?: string;
  pages?: number;
  dropRule: string[];
  variant?: string;
  mode: "exhaustive" | "random";
  budget?: number;
  seed: number;
  depth: number;
  preemptionBound?: number;
  por: boolean;
  shrink: boolean;
  debugAtomicSleep: boolean;
  trace: string;
  json?: boolean;
  list?: boolean;
}

/**
 * --help's examples. Each says what it shows and its exit code; a test runs
 * every one and checks the code (test/check_cli.test.ts).
 */
const HELP_EXAMPLES = `
Examples:
  # the eras, thread kinds, rules and variants (exit 0)
  pagesim check --list
  # era 2016's standard configuration, exhaustively: no violation (exit 0)
  pagesim check --era 2016
  # what recheck-movable-under-page-lock prevents: a timeline (exit 1)
  pagesim check --era 2016 --threads balloon_compact,balloon_deflate \\
      --pages 1 --drop-rule recheck-movable-under-page-lock
  # 2026 without its global balloon lock, by random search (exit 1)
  pagesim check --era 2026 --drop-rule pages-lock-held --pages 2 \\
      --threads balloon_putback,balloon_deflate,balloon_putback \\
      --mode random --budget 5000 --seed 7
  # a blocking lock_page under pages_lock: a sleep with interrupts
  # disabled; with that report off, lockdep's inversion (exit 1)
  pagesim check --era 2016 --drop-rule dequeue-trylock-page \\
      --no-debug-atomic-sleep
  # the toy movable_ops driver of 2016 (exit 1)
  pagesim check --era 2016-toy --threads compact,deflate --pages 1 \\
      --drop-rule recheck-movable-under-page-lock
  # a saved counterexample, step by step (exit 1: it fails again)
  pagesim replay pagesim-trace.json`;

export function register_check(program: Command): void {
  program
    .command("check")
    .description(
      "Explore the interleavings of a few kernel threads on a small machine and\n" +
        "report the first one that breaks an invariant, as a timeline and a trace file.",
    )
    .option("--era <era>", "kernel era (see --list); default: the newest")
    .option("--threads <list>", "thread kinds, comma-separated (see --list)")
    .option(
      "--pages <n>",
      "pages the driver (and process) own at the start",
      int_arg("--pages", 1, PAGES_MAX),
    )
    .option("--drop-rule <name>", "switch an era rule off (repeatable)", collect, [])
    .option("--variant <name>", "a historical variant of the era")
    .addOption(
      new Option("--mode <mode>", "exhaustive (with POR) or random (PCT)")
        .choices(["exhaustive", "random"])
        .default("exhaustive"),
    )
    .option("--budget <n>", "executions at most (random default 1000)", int_arg("--budget", 1, 1e9))
    .option("--seed <s>", "PCT seed", int_arg("--seed", 0, Number.MAX_SAFE_INTEGER), 1)
    .option("--depth <d>", "PCT bug depth", int_arg("--depth", 1, 10), 3)
    .option(
      "--preemption-bound <n>",
      "at most n preemptions per schedule",
      int_arg("--preemption-bound", 0, 1000),
    )
    .option("--no-por", "exhaustive search without partial-order reduction")
    .option("--no-shrink", "print the counterexample as found")
    .option(
      "--no-debug-atomic-sleep",
      "do not report sleeping with interrupts disabled (as with\n" +
        "CONFIG_DEBUG_ATOMIC_SLEEP=n): such a sleeper may then deadlock",
    )
    .option("--trace <file>", "where to write a violation's trace", "pagesim-trace.json")
    .option("--json", "print one JSON object")
    .option("--list", "print the eras, thread kinds, rules and variants")
    .addHelpText("after", HELP_EXAMPLES)
    .configureOutput({
      // --json: a bad option still gets one JSON object on stdout.
      outputError: (text, write) => {
        write(text);
        if (wants_json(program)) json_error(text.replace(/^error: /, "").trim());
      },
    })
    .action((opts: CheckCliOptions, cmd: Command) => {
      try {
        throw new ExitStatus(check_command(opts, (name) => cmd.getOptionValueSource(name)));
      } catch (e) {
        if (e instanceof UsageError && opts.json) json_error(e.message);
        throw e;
      }
    });
}

/** Did the command line ask for --json? (Commander keeps the words it parsed, untyped.) */
function wants_json(program: Command): boolean {
  const raw = (program as Command & { rawArgs?: string[] }).rawArgs;
  return raw?.includes("--json") ?? false;
}

/** The one JSON object --json promises, for bad arguments too (exit code 2). */
function json_error(message: string): void {
  process.stdout.write(`${JSON.stringify({ error: message, exit_code: 2 })}\n`);
}

function print_list(json: boolean): void {
  const info = list_info();
  if (json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
    return;
  }
  const out: string[] = [];
  for (const era of check_eras()) {
    out.push(
      `era ${era.name}: standard configuration ${era.standard.threads.join(",")} on ${era.standard.pages} page(s)`,
    );
    out.push(`  threads: ${era.threads.join(", ")}`);
    out.push(`  rules: ${era.rules.join(", ") || "(none)"}`);
    out.push(`  variants: ${era.variants.map((v) => v.name).join(", ") || "(none)"}`);
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

/** Largest exhaustive configuration: the issue's "two to four threads". */
export const EXHAUSTIVE_THREADS_MAX = 4;

/** Options that only one mode reads: given for the other, they are an error, not ignored. */
function check_mode_options(opts: CheckCliOptions, source: (name: string) => string | undefined) {
  const given = (name: string) => source(name) === "cli";
  const only = opts.mode === "random" ? "exhaustive" : "random";
  const wrong =
    opts.mode === "random"
      ? [
          ["preemptionBound", "--preemption-bound"],
          ["por", "--no-por"],
        ]
      : [
          ["seed", "--seed"],
          ["depth", "--depth"],
        ];
  for (const [key, flag] of wrong) {
    if (given(key)) throw new UsageError(`${flag} applies to --mode ${only} only`);
  }
}

function check_command(
  opts: CheckCliOptions,
  source: (name: string) => string | undefined = () => undefined,
): number {
  if (opts.list) {
    print_list(opts.json === true);
    return 0;
  }
  const eras = check_eras();
  // The newest kernel era (the registry also holds 2016-toy and test eras).
  const newest = eras
    .map((e) => e.name)
    .filter((n) => /^\d{4}$/.test(n))
    .sort()
    .pop();
  const era_name = opts.era ?? newest ?? eras[eras.length - 1].name;
  if (!check_era(era_name)) {
    throw new UsageError(
      `unknown era '${era_name}' (choose from ${eras.map((e) => e.name).join(", ")})`,
    );
  }
  check_mode_options(opts, source);
  const cfg = standard_config(era_name);
  if (opts.threads !== undefined) cfg.threads = collect(opts.threads, []);
  if (cfg.threads.length < 2)
    throw new UsageError("--threads: at least two threads (a race takes two)");
  const threads_max = opts.mode === "random" ? THREADS_MAX : EXHAUSTIVE_THREADS_MAX;
  if (cfg.threads.length > threads_max) {
    throw new UsageError(
      opts.mode === "random"
        ? `--threads: at most ${THREADS_MAX} threads`
        : `--threads: exhaustive search takes at most ${EXHAUSTIVE_THREADS_MAX} threads ` +
            `(got ${cfg.threads.length}); --mode random takes up to ${THREADS_MAX}`,
    );
  }
  if (opts.pages !== undefined) cfg.pages = opts.pages;
  cfg.drop_rules = opts.dropRule;
  cfg.variant = opts.variant ?? null;
  if (!opts.debugAtomicSleep) cfg.debug_atomic_sleep = false;
  const t0 = performance.now();
  let report: ReturnType<typeof run_check>;
  try {
    report = run_check(cfg, {
      mode: opts.mode,
      por: opts.por,
      preemption_bound: opts.preemptionBound ?? null,
      budget: opts.budget,
      seed: opts.seed,
      depth: opts.depth,
      shrink: opts.shrink,
    });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cx = report.counterexample;
  const trace = cx ? trace_json(cx) : null;
  if (trace) writeFileSync(opts.trace, `${JSON.stringify(trace, null, 1)}\n`);
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({
        era: cfg.era,
        mode: report.mode,
        por: report.por,
        executions: report.executions,
        sleep_blocked: report.sleep_blocked,
        steps: report.steps,
        complete: report.complete,
        threads: cfg.threads,
        pages: cfg.pages,
        drop_rules: cfg.drop_rules,
        variant: cfg.variant,
        seed: opts.mode === "random" ? opts.seed : null,
        seconds,
        violation: cx ? cx.violation : null,
        invariant: cx ? cx.violation.invariant : null,
        trace,
        trace_file: trace ? opts.trace : null,
      })}\n`,
    );
    return cx ? 1 : 0;
  }
  const how =
    report.mode === "random"
      ? `random (PCT, seed ${opts.seed}, depth ${opts.depth})`
      : `exhaustive (${report.por ? "DPOR + sleep sets" : "no POR"})`;
  const out: string[] = [
    `pagesim check: era ${cfg.era}, threads ${cfg.threads.join(",")}, pages ${cfg.pages}, mode ${how}` +
      `${cfg.drop_rules.length ? `, dropped rules ${cfg.drop_rules.join(",")}` : ""}${cfg.variant ? `, variant ${cfg.variant}` : ""}`,
    `explored ${report.executions} executions (${report.sleep_blocked} sleep-blocked), ${report.steps} steps in ${seconds.toFixed(2)} s; ` +
      (report.complete
        ? "complete"
        : cx
          ? "stopped at a violation"
          : "incomplete (budget or bound)"),
  ];
  if (!cx) {
    out.push("no violation found");
    process.stdout.write(`${out.join("\n")}\n`);
    return 0;
  }
  out.push(`counterexample: ${cx.steps.length} steps, ${cx.context_switches} context switches`);
  out.push(format_timeline(cx));
  out.push(`trace written to ${opts.trace}; replay with: pagesim replay ${opts.trace}`);
  process.stdout.write(`${out.join("\n")}\n`);
  return 1;
}
