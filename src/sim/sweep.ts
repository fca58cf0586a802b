/**
 * sim/sweep.ts: a grid of scenario variations. A sweep file names a base
 * scenario (a file, relative to the sweep file, or an inline mapping) and a
 * grid: for each dotted scenario path a list of values. Every combination
 * (the cartesian product, first key varying slowest) is one grid point: the
 * base with those values set, validated like any scenario. Each point runs
 * independently (the CLI spreads them over worker threads) and gives one row
 * of the sweep's table.
 *
 *   name: proactiveness
 *   scenario: thp_compact_memory.yaml
 *   grid:
 *     kernel.compaction_proactiveness: [0, 20, 50]
 *     workload.2.keep_percent: [5, 20]     (a list item by its index)
 *     seed: [1, 2]
 */

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import {
  type Problem,
  parse_source,
  problems_of,
  ScenarioError,
  type SourceDoc,
} from "../workload/load.ts";
import { Scenario } from "../workload/scenario.ts";
import type { ScenarioResult } from "./scenario_run.ts";
import { unsupported } from "./scenario_run.ts";

const SweepFile = z.strictObject({
  name: z.string().default("sweep"),
  description: z.string().default(""),
  /** A scenario file (relative to the sweep file) or an inline scenario. */
  scenario: z.union([z.string().min(1), z.record(z.string(), z.unknown())], {
    error: "expected a scenario file name or an inline scenario mapping",
  }),
  grid: z
    .record(z.string().regex(/^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$/i), z.array(z.unknown()).min(1))
    .refine((g) => Object.keys(g).length > 0, "expected at least one key"),
});

export interface GridPoint {
  index: number;
  /** The grid values of this point, by dotted path, as written. */
  values: Record<string, unknown>;
  scenario: Scenario;
}

export interface Sweep {
  name: string;
  keys: string[];
  points: GridPoint[];
}

/** Set `value` at a dotted path of a plain object, creating mappings on the way. */
function set_path(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let o = obj;
  for (let i = 0; i < keys.length - 1; i++) {
    const k = keys[i];
    const into_list = Array.isArray(o[k]) && /^\d+$/.test(keys[i + 1]);
    if (!into_list && (typeof o[k] !== "object" || o[k] === null || Array.isArray(o[k]))) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]] = value;
}

function read_text(file: string, owner: string, path: string, line: number): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ScenarioError(owner, [
      { path, message: `cannot read ${file}: ${(e as Error).message}`, line },
    ]);
  }
}

/** Every combination of the grid's values, the first key varying slowest. */
function expand_grid(grid: Record<string, unknown[]>): Record<string, unknown>[] {
  let combos: Record<string, unknown>[] = [{}];
  for (const [k, values] of Object.entries(grid)) {
    const next: Record<string, unknown>[] = [];
    for (const c of combos) for (const v of values) next.push({ ...c, [k]: v });
    combos = next;
  }
  return combos;
}

/** "workload.2.keep_percent" as problem paths print it: "workload[2].keep_percent". */
const as_problem_path = (key: string) => key.replace(/\.(\d+)(?=\.|$)/g, "[$1]");

/** One line per distinct problem: the same bad value fails in many points. */
function distinct(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}|${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Read a sweep file and expand its grid; every problem is reported (ScenarioError). */
export function load_sweep(path: string): Sweep {
  const src = parse_source(read_text(path, path, "", 0), path);
  const parsed = SweepFile.safeParse(src.value, { reportInput: true });
  if (!parsed.success) throw new ScenarioError(path, problems_of(parsed.error, src));
  const sw = parsed.data;
  let base: unknown = sw.scenario;
  let base_src: SourceDoc = src;
  let base_name = "the inline scenario";
  if (typeof sw.scenario === "string") {
    base_name = resolve(dirname(path), sw.scenario);
    base_src = parse_source(
      read_text(base_name, path, "scenario", src.line_of(["scenario"])),
      base_name,
    );
    base = base_src.value;
  }
  const keys = Object.keys(sw.grid);
  const combos = expand_grid(sw.grid);
  if (combos.length > 10_000) {
    const message = `${combos.length} grid points; at most 10000`;
    throw new ScenarioError(path, [{ path: "grid", message, line: src.line_of(["grid"]) }]);
  }
  const problems: Problem[] = [];
  const points: GridPoint[] = [];
  const grid_key = (p: string) =>
    keys.find((k) => {
      const kp = as_problem_path(k);
      return p === kp || p.startsWith(`${kp}.`) || p.startsWith(`${kp}[`);
    });
  combos.forEach((values, index) => {
    const doc = structuredClone(base) as Record<string, unknown>;
    for (const [k, v] of Object.entries(values)) set_path(doc, k, v);
    const r = Scenario.safeParse(doc, { reportInput: true });
    if (r.success) {
      for (const p of unsupported(r.data)) problems.push({ ...p, line: 0 });
      points.push({ index, values, scenario: r.data });
      return;
    }
    for (const p of problems_of(r.error, base_src)) {
      const key = grid_key(p.path);
      problems.push(
        key
          ? {
              path: `grid.${key}`,
              message: `${JSON.stringify(values[key])}: ${p.path}: ${p.message}`,
              line: src.line_of(["grid", key]),
            }
          : {
              path: p.path,
              message: `${p.message} (in ${base_name}${p.line ? `, line ${p.line}` : ""})`,
              line: src.line_of(["scenario"]),
            },
      );
    }
  });
  if (problems.length) throw new ScenarioError(path, distinct(problems));
  return { name: sw.name, keys, points };
}

/** The columns every sweep row has after the grid's own. */
export const SWEEP_COLUMNS = [
  "thp_attempts",
  "thp_success_pct",
  "free_2mib_end",
  "free_2mib_min",
  "free_mib_end",
  "pgmigrate_success",
  "compact_runs",
  "balloon_migrate",
  "host_reclaimed_mib",
  "fault_failures",
  "digest",
] as const;

export type SweepRow = Record<string, string | number>;

/** One row of the sweep's table from a grid point's result. */
export function sweep_row(p: GridPoint, r: ScenarioResult): SweepRow {
  const row: SweepRow = { point: p.index };
  for (const [k, v] of Object.entries(p.values))
    row[k] = typeof v === "object" ? JSON.stringify(v) : String(v);
  const tl = r.timeline;
  row.thp_attempts = r.thp.attempts;
  row.thp_success_pct = r.thp.attempts ? Number((100 * r.thp.success_rate).toFixed(1)) : 0;
  row.free_2mib_end = tl[tl.length - 1]?.free_2mib_blocks ?? 0;
  row.free_2mib_min = Math.min(...tl.map((s) => s.free_2mib_blocks));
  row.free_mib_end = Math.round((r.vmstat.nr_free_pages ?? 0) / 256);
  row.pgmigrate_success = r.compaction.pages_migrated;
  row.compact_runs = r.compaction.runs;
  row.balloon_migrate = r.vmstat.balloon_migrate ?? 0;
  row.host_reclaimed_mib = r.host ? Math.round(r.host.reclaimed_pages / 256) : 0;
  row.fault_failures =
    r.workload.anon_fault_failures +
    r.workload.cache_add_failures +
    r.workload.kernel_alloc_failures;
  row.digest = r.digest;
  return row;
}
