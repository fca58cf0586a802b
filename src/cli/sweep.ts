/**
 * cli/sweep.ts: `pagesim sweep SWEEP_FILE [--workers N] [--out FILE] [--json] [--quiet]`:
 * expand the sweep's grid (sim/sweep.ts), validate every point before any
 * runs, run the points on a pool of worker threads, and print one table
 * with one row per grid point (in grid order, whatever order the workers
 * finish in); --out also writes it as CSV. A progress bar (grid points
 * finished, ETA) appears on a terminal after a second, not with --quiet
 * or --json.
 *
 * Exit codes: 2 for a bad sweep file or a bad grid point (all reported,
 * nothing run); 1 when a point hits a kernel BUG (the point is named).
 */

import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { Command } from "commander";
import { KernelBug } from "../kernel/bug.ts";
import { SweepProgress } from "../report/progress.ts";
import { load_sweep, SWEEP_COLUMNS, type Sweep, type SweepRow } from "../sim/sweep.ts";
import { ScenarioError } from "../workload/load.ts";
import { UsageError } from "./errors.ts";
import { int_arg } from "./run.ts";

export interface SweepOptions {
  workers?: number;
  out?: string;
  json?: boolean;
  quiet?: boolean;
}

type Reply = {
  index: number;
  row?: SweepRow;
  error?: string;
  kernel_bug?: boolean;
  bad_machine?: boolean;
};

/** Run every point on `n` workers; rows come back in grid order. */
export async function run_sweep(
  sw: Sweep,
  n: number,
  on_point?: (finished: number) => void,
): Promise<SweepRow[]> {
  const rows: (SweepRow | null)[] = sw.points.map(() => null);
  let finished = 0;
  const queue = [...sw.points];
  const nworkers = Math.max(1, Math.min(n, queue.length));
  let failure: Reply | null = null;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(new URL("./sweep_worker.mjs", import.meta.url));
      const feed = () => {
        const p = failure ? undefined : queue.shift();
        w.postMessage(p ?? null);
      };
      w.on("message", (m: Reply) => {
        if (m.error !== undefined) failure ??= m;
        else if (m.row) {
          rows[sw.points.findIndex((p) => p.index === m.index)] = m.row;
          on_point?.(++finished);
        }
        feed();
      });
      w.on("error", reject);
      w.on("exit", () => resolve());
      feed();
    });
  await Promise.all(Array.from({ length: nworkers }, one));
  if (failure) {
    const f = failure as Reply;
    const p = sw.points.find((pt) => pt.index === f.index);
    const msg = `grid point ${f.index} (${JSON.stringify(p?.values)}): ${f.error}`;
    if (f.bad_machine) throw new UsageError(msg);
    throw f.kernel_bug ? new KernelBug(msg) : new Error(msg);
  }
  return rows as SweepRow[];
}

/** The table as aligned text (numbers right-aligned). */
export function format_table(columns: string[], rows: SweepRow[]): string {
  const cells = rows.map((r) => columns.map((c) => String(r[c] ?? "")));
  const width = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (/^-?[\d.]+$/.test(v) ? v.padStart(width[i]) : v.padEnd(width[i])))
      .join("  ")
      .trimEnd();
  return `${[line(columns), ...cells.map(line)].join("\n")}\n`;
}

export function table_csv(columns: string[], rows: SweepRow[]): string {
  const q = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return `${[columns.map(q).join(","), ...rows.map((r) => columns.map((c) => q(String(r[c] ?? ""))).join(","))].join("\n")}\n`;
}

export async function sweep_command(file: string, opts: SweepOptions): Promise<void> {
  let sw: Sweep;
  try {
    sw = load_sweep(file);
  } catch (e) {
    if (e instanceof ScenarioError) throw new UsageError(e.message);
    throw e;
  }
  const workers = opts.workers ?? Math.min(2, availableParallelism());
  if (!opts.json) {
    process.stdout.write(
      `pagesim sweep: ${sw.name}, ${sw.points.length} grid points (${sw.keys.join(" x ")}) on ${Math.min(workers, sw.points.length)} worker(s)\n\n`,
    );
  }
  const show_progress = !opts.quiet && !opts.json && process.stdout.isTTY === true;
  const bar = show_progress ? new SweepProgress(process.stderr, sw.points.length) : null;
  let rows: SweepRow[];
  try {
    rows = await run_sweep(sw, workers, bar ? (n) => bar.update(n) : undefined);
  } finally {
    bar?.done();
  }
  const columns = ["point", ...sw.keys, ...SWEEP_COLUMNS];
  if (opts.out) writeFileSync(opts.out, table_csv(columns, rows));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ sweep: sw.name, columns, rows })}\n`);
    return;
  }
  process.stdout.write(format_table(columns, rows));
  if (opts.out) process.stdout.write(`\ntable written to ${opts.out}\n`);
}

/** Register `pagesim sweep` on the program. */
export function register_sweep(program: Command): void {
  program
    .command("sweep")
    .argument("<sweep_file>", "sweep file (YAML or JSON): a base scenario and a grid of values")
    .description(
      "Run a grid of scenario variations (every combination of the grid's values)\n" +
        "on worker threads and print one table with one row per grid point.",
    )
    .option(
      "--workers <n>",
      "worker threads (default: 2 or the CPUs, if fewer)",
      int_arg("--workers", 1, 256),
    )
    .option("--out <file>", "also write the table as CSV")
    .option("--json", "print the table as one JSON object")
    .option("--quiet", "no progress bar")
    .addHelpText(
      "after",
      "\nExample:\n  pagesim sweep examples/sweep_pollution.yaml --workers 2 --out sweep.csv\n\n" +
        "A sweep file:\n  name: pollution\n  scenario: unmovable_pollution.yaml\n  grid:\n" +
        "    kernel.extfrag_threshold: [100, 500, 900]\n    seed: [1, 2]",
    )
    .action(async (file: string, opts: SweepOptions) => {
      await sweep_command(file, opts);
    });
}
