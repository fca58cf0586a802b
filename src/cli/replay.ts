/**
 * cli/replay.ts: `pagesim replay FILE [--json]`: re-run a trace written by
 * `pagesim check` step by step on a fresh machine, printing each step as it
 * runs, then the invariant that broke and whether it is the one the trace
 * recorded.
 *
 * Exit codes: 0 the schedule ran to the end without a violation, 1 a
 * violation (the same or another: the output says which), 2 a file that
 * cannot be read or is not a trace, or a schedule the configuration cannot
 * follow. --json prints one object: config, steps, violation, expected,
 * reproduced.
 */

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import {
  parse_trace,
  ReplayError,
  replay_schedule,
  step_text,
  trace_step,
} from "../check/counterexample.ts";
import { ConfigError, resolve } from "../check/runner.ts";
import { ExitStatus } from "./check.ts";
import { UsageError } from "./errors.ts";

export function register_replay(program: Command): void {
  program
    .command("replay")
    .description("Re-run a counterexample trace written by `pagesim check`, step by step.")
    .argument("<file>", "trace file (JSON)")
    .option("--json", "print one JSON object")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  pagesim check --era 2016 --drop-rule recheck-movable-under-page-lock \\\n" +
        "      --trace bug.json    # write a counterexample\n" +
        "  pagesim replay bug.json\n" +
        "  pagesim replay bug.json --json",
    )
    .action((file: string, opts: { json?: boolean }) => {
      throw new ExitStatus(replay_command(file, opts.json === true));
    });
}

function replay_command(file: string, json: boolean): number {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const t = parse_trace(text);
    const res = resolve(t.config);
    const lines: string[] = [];
    let n = 0;
    const played = replay_schedule(res, t.schedule, true, (runner) => {
      const w = runner.w;
      n++;
      const s = trace_step(w, w.e.trace![w.e.trace!.length - 1], n);
      lines.push(`${String(n).padStart(5)}  ${s.thread.padEnd(12)} ${step_text(s)}`);
      if (!json) process.stdout.write(`${lines[lines.length - 1]}\n`);
    });
    const v = played.violation;
    const reproduced = v !== null && t.violation !== null && v.invariant === t.violation.invariant;
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ config: t.config, steps: n, violation: v, expected: t.violation, reproduced })}\n`,
      );
    } else {
      const out: string[] = [];
      out.push(v ? `violated: ${v.invariant}: ${v.message}` : "no violation");
      if (t.violation) {
        out.push(
          reproduced
            ? `reproduced: the trace's failure (${t.violation.invariant})`
            : `differs from the trace, which recorded ${t.violation.invariant}`,
        );
      }
      process.stdout.write(`${out.join("\n")}\n`);
    }
    return v ? 1 : 0;
  } catch (e) {
    if (e instanceof ReplayError || e instanceof ConfigError)
      throw new UsageError(`${file}: ${e.message}`);
    throw e;
  }
}
