/**
 * cli/sweep.ts: `pagesim sweep SWEEP_FILE [--workers N] [--out FILE] [--json] [--quiet]`:
 * expand the sweep's grid (sim/sweep.ts), validate every point before any
 * runs, run the points on a pool of worker threads, and print one table
 * with one row per grid point (in grid order, whatever order the workers
 * finish in), as many result columns as fit in 80 columns (a last line
 * names the others); --out writes the whole table as CSV, --json prints it. A progress bar (grid points
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
import { SweepProgress, wants_progress } from "../report/progress.ts";
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

/**
 * The result columns the terminal shows first when not all fit in 80
 * columns (the CSV and --json keep every column, in SWEEP_COLUMNS order).
 */
const TERMINAL_ORDER = [
  "thp_success_pct",
  "free_2mib_end",
  "digest",
  "free_2mib_min",
  "pgmigrate_success",
  "balloon_migrate",
  "host_reclaimed_mib",
  "fault_failures",
  "free_mib_end",
  "thp_attempts",
  "compact_runs",
];

/**
 * The table as aligned text (numbers right-aligned). With `max_width`, the
 * first `keep` columns (the point and the grid's keys) always show and the
 * result columns follow in TERMINAL_ORDER while they fit; a last line names
 * the columns left out.
 */
export function format_table(
  columns: string[],
  rows: SweepRow[],
  max_width = Number.POSITIVE_INFINITY,
  keep = columns.length,
): string {
  const width_of = (c: string) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length));
  const shown = columns.slice(0, keep);
  let used = shown.reduce((a, c) => a + width_of(c) + 2, -2);
  const rest = columns.slice(keep);
  const order = [
    ...TERMINAL_ORDER.filter((c) => rest.includes(c)),
    ...rest.filter((c) => !TERMINAL_ORDER.includes(c)),
  ];
  const left_out: string[] = [];
  for (const c of order) {
    if (used + 2 + width_of(c) <= max_width) {
      shown.push(c);
      used += 2 + width_of(c);
    } else left_out.push(c);
  }
  // Back in the table's own column order.
  const cols = columns.filter((c) => shown.includes(c));
  const width = cols.map(width_of);
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (/^-?[\d.]+$/.test(v) ? v.padStart(width[i]) : v.padEnd(width[i])))
      .join("  ")
      .trimEnd();
  const cells = rows.map((r) => cols.map((c) => String(r[c] ?? "")));
  const note = left_out.length ? [`(not shown: ${left_out.join(", ")}; see --out or --json)`] : [];
  return `${[line(cols), ...cells.map(line), ...note.map(wrap_words)].join("\n")}\n`;
}

/** Words wrapped at 80 columns, continuation lines indented by one. */
function wrap_words(text: string): string {
  const out: string[] = [];
  let line = "";
  for (const w of text.split(" ")) {
    if (line && line.length + 1 + w.length > 80) {
      out.push(line);
      line = ` ${w}`;
    } else line = line ? `${line} ${w}` : w;
  }
  out.push(line);
  return out.join("\n");
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
    const head = `pagesim sweep: ${sw.name}, ${sw.points.length} grid points (${sw.keys.join(" x ")}) on ${Math.min(workers, sw.points.length)} worker(s)`;
    process.stdout.write(`${wrap_words(head)}\n\n`);
  }
  const show_progress = wants_progress(opts, process.stdout);
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
  // At most 80 columns on the terminal; the CSV (--out) and --json have them all.
  process.stdout.write(format_table(columns, rows, 80, 1 + sw.keys.length));
  if (opts.out) process.stdout.write(`\ntable written to:\n  ${opts.out}\n`);
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
