/**
 * cli/main.ts: the `pagesim` command.
 *
 *   pagesim run [--mem SIZE] [--cpus N] [--layout q35|pc|flat|normal]
 *               [--seed S] [--ops N] [--thp N] [--proc LIST] [--json] [--quiet]
 *
 *   pagesim check ...   the model checker (cli/check.ts)
 *   pagesim replay FILE a counterexample trace, step by step (cli/replay.ts)
 *
 * Exit codes: 0 success, 1 a failure of the model (a kernel BUG), 2 bad
 * arguments or configuration (with a message naming what was wrong).
 */

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { MachineConfigError } from "../kernel/boot.ts";
import { KernelBug } from "../kernel/bug.ts";
import { parse_size } from "../workload/units.ts";
import { ExitStatus, register_check } from "./check.ts";
import { UsageError } from "./errors.ts";
import { register_replay } from "./replay.ts";
import { type RunOptions, run_default } from "./run.ts";

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

function size_arg(v: string): number {
  const n = parse_size(v);
  if (n === null)
    throw new InvalidArgumentError(`expected a size like '8GiB' or '512MiB', got '${v}'`);
  return n;
}

const PROC_FILES = [
  "buddyinfo",
  "pagetypeinfo",
  "zoneinfo",
  "vmstat",
  "extfrag_index",
  "unusable_index",
];

function proc_list(v: string): string[] {
  const names = v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!PROC_FILES.includes(n)) {
      throw new InvalidArgumentError(`unknown file '${n}' (choose from ${PROC_FILES.join(", ")})`);
    }
  }
  return names;
}

export function build_program(): Command {
  const program = new Command();
  program
    .name("pagesim")
    .description(
      "An executable model of Linux physical memory: the buddy allocator, compaction,\n" +
        "page migration, movable_ops and memory balloons.",
    )
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("run")
    .description(
      "Boot a machine, run the built-in allocation workload on it, and print what\n" +
        "the kernel would show in /proc (buddyinfo and pagetypeinfo by default).",
    )
    .option("--mem <size>", "RAM size (binary units: 8GiB, 512MiB)", size_arg, 8 * 1024 ** 3)
    .option("--cpus <n>", "number of CPUs", int_arg("--cpus", 1, 1024), 2)
    .addOption(
      new Option("--layout <layout>", "physical memory layout")
        .choices(["q35", "pc", "flat", "normal"])
        .default("q35"),
    )
    .option("--seed <s>", "PRNG seed", int_arg("--seed", 0, Number.MAX_SAFE_INTEGER), 1)
    .option(
      "--ops <n>",
      "allocation/free operations in the churn phase",
      int_arg("--ops", 0, 1e10),
      2_000_000,
    )
    .option(
      "--thp <n>",
      "order-9 (THP) allocation attempts at the end",
      int_arg("--thp", 0, 1e8),
      512,
    )
    .option("--proc <files>", `files to print: ${PROC_FILES.join(",")}`, proc_list, [
      "buddyinfo",
      "pagetypeinfo",
    ])
    .option("--json", "print one JSON object instead of text")
    .option("--quiet", "print only the results, no progress")
    .addHelpText(
      "after",
      "\nExamples:\n  pagesim run\n  pagesim run --mem 64GiB --cpus 8 --seed 7 --proc buddyinfo,zoneinfo\n  pagesim run --mem 1GiB --ops 100000 --json",
    )
    .action((opts: RunOptions) => {
      run_default(opts);
    });
  register_check(program);
  register_replay(program);
  return program;
}

export function main(argv: string[]): number {
  const program = build_program();
  try {
    program.parse(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof ExitStatus) return e.code;
    if (e instanceof CommanderError) {
      if (
        e.code === "commander.helpDisplayed" ||
        e.code === "commander.version" ||
        e.code === "commander.help"
      ) {
        return 0;
      }
      return 2;
    }
    if (e instanceof MachineConfigError || e instanceof UsageError) {
      process.stderr.write(`pagesim: ${e.message}\n`);
      return 2;
    }
    if (e instanceof KernelBug) {
      process.stderr.write(`pagesim: the model hit a kernel BUG:\n${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));
