/**
 * cli/main.ts: the `pagesim` command.
 *
 *   pagesim run [SCENARIO] [--seed S] [--era ERA] [--out DIR] [--json] [--quiet]
 *   pagesim sweep SWEEP_FILE [--workers N]
 *
 * Each command lives in its own file (run.ts, sweep.ts) and registers itself here.
 *
 *   pagesim check ...   the model checker (cli/check.ts)
 *   pagesim replay FILE a counterexample trace, step by step (cli/replay.ts)
 *
 * Exit codes: 0 success, 1 a failure of the model (a kernel BUG), 2 bad
 * arguments or configuration (with a message naming what was wrong).
 * A reader that closes stdout early (`pagesim help run | head -3`) ends the
 * command quietly with exit 0 (EPIPE is not an error of ours).
 */

import { Command, CommanderError } from "commander";
import { MachineConfigError } from "../kernel/boot.ts";
import { KernelBug } from "../kernel/bug.ts";
import { ExitStatus, register_check } from "./check.ts";
import { UsageError } from "./errors.ts";
import { register_replay } from "./replay.ts";
import { register_run } from "./run.ts";
import { register_sweep } from "./sweep.ts";

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
    // The command list shows each description on one line, wrapped by
    // commander at the terminal's width (80 off a terminal), not at the
    // line breaks written for the command's own --help.
    .configureHelp({
      subcommandDescription: (cmd) => cmd.summary() || cmd.description().replace(/\s*\n\s*/g, " "),
    })
    .addHelpText(
      "after",
      "\nExamples:\n  pagesim run\n  pagesim run examples/thp_compact_memory.yaml --out out/thp\n  pagesim sweep examples/sweep_pollution.yaml --workers 2",
    )
    .exitOverride();

  register_run(program);
  register_sweep(program);
  register_check(program);
  register_replay(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = build_program();
  try {
    await program.parseAsync(argv, { from: "user" });
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

/**
 * Quit quietly when the reader of stdout has gone (EPIPE): the output is not
 * wanted any more, which is not a failure.
 */
function exit_on_epipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
}

exit_on_epipe(process.stdout);
process.exitCode = await main(process.argv.slice(2));
