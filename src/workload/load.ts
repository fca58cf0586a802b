/**
 * workload/load.ts: reading a scenario (or sweep) file: YAML or JSON text ->
 * the validated Scenario, or a ScenarioError listing every problem once,
 * each with its path in the file and its line ("workload[3].size: expected
 * a size like '512MiB', got 'lots' (line 14)").
 *
 * JSON is YAML, so one parser reads both; the YAML document keeps source
 * ranges, which turn a zod issue's path into a line number.
 */

import { readFileSync } from "node:fs";
import { isMap, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { z } from "zod";
import { Scenario } from "./scenario.ts";

export interface Problem {
  /** "workload[3].size"; "" for the whole file. */
  path: string;
  message: string;
  /** 1-based, or 0 when unknown. */
  line: number;
}

/** A scenario that cannot be run as written (exit code 2). */
export class ScenarioError extends Error {
  readonly problems: Problem[];
  constructor(file: string, problems: Problem[]) {
    super(problems.map((p) => format_problem(file, p)).join("\n"));
    this.name = "ScenarioError";
    this.problems = problems;
  }
}

function format_problem(file: string, p: Problem): string {
  const where = p.line ? ` (line ${p.line})` : "";
  const path = p.path ? `${p.path}: ` : "";
  return `${file}: ${path}${p.message}${where}`;
}

/** Path segments as people read them: workload[3].size */
export function format_path(path: readonly PropertyKey[]): string {
  let s = "";
  for (const k of path) {
    if (typeof k === "number") s += `[${k}]`;
    else s += s ? `.${String(k)}` : String(k);
  }
  return s;
}

/** A parsed YAML/JSON document and a way to find the line of a path in it. */
export interface SourceDoc {
  value: unknown;
  line_of(path: readonly PropertyKey[]): number;
}

/** Parse YAML or JSON text; syntax errors become a ScenarioError. */
export function parse_source(text: string, file: string): SourceDoc {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ScenarioError(
      file,
      doc.errors.map((e) => ({
        path: "",
        message: `not valid YAML or JSON: ${e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`,
        line: e.linePos?.[0]?.line ?? 0,
      })),
    );
  }
  const line_at = (n: unknown): number => {
    const r = (n as Node | null)?.range;
    return r ? lc.linePos(r[0]).line : 0;
  };
  const line_of = (path: readonly PropertyKey[]): number => {
    // The deepest node on the path that exists (a missing key: its parent).
    let node: unknown = doc.contents;
    let line = line_at(node) || 1;
    for (const k of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === k);
        if (!pair) break;
        line = line_at(pair.key) || line;
        node = pair.value;
      } else if (isSeq(node) && typeof k === "number" && node.items[k]) {
        node = node.items[k];
        line = line_at(node) || line;
      } else break;
    }
    return line;
  };
  return { value: doc.toJS() ?? {}, line_of };
}

/** A value as a problem message shows it. */
function shown(v: unknown): string {
  return typeof v === "string" ? `'${v}'` : (JSON.stringify(v) ?? String(v));
}

/** zod issues -> problems with lines (one per issue). */
export function problems_of(error: z.ZodError, src: SourceDoc): Problem[] {
  const out: Problem[] = [];
  for (const iss of error.issues) {
    let path = iss.path;
    let message = iss.message;
    if (iss.code === "unrecognized_keys") {
      for (const k of iss.keys) {
        out.push({
          path: format_path([...path, k]),
          message: "unknown field",
          line: src.line_of([...path, k]),
        });
      }
      continue;
    }
    if (iss.code === "invalid_type" && iss.input === undefined) message = "required";
    else if (iss.code === "invalid_type" && message.startsWith("Invalid input")) {
      message = `expected ${iss.expected}, got ${shown(iss.input)}`;
    }
    if (iss.code === "invalid_union" && iss.errors.length) {
      // The alternative that got furthest into the value explains best.
      let best: z.core.$ZodIssue | null = null;
      for (const alt of iss.errors) {
        if (alt.length === 1 && alt[0].path.length > (best?.path.length ?? 0)) best = alt[0];
      }
      if (best) {
        path = [...path, ...best.path];
        message = best.message;
      }
    }
    out.push({ path: format_path(path), message, line: src.line_of(path) });
  }
  // In file order (stable: problems on one line keep the schema's order).
  return out.sort((a, b) => a.line - b.line);
}

/** Validate a parsed document as a scenario. */
export function scenario_from(src: SourceDoc, file: string): Scenario {
  if (typeof src.value !== "object" || src.value === null || Array.isArray(src.value)) {
    throw new ScenarioError(file, [
      {
        path: "",
        message: "expected a mapping of scenario fields (name, machine, workload, ...)",
        line: 1,
      },
    ]);
  }
  const r = Scenario.safeParse(src.value, { reportInput: true });
  if (!r.success) throw new ScenarioError(file, problems_of(r.error, src));
  return r.data;
}

/** Parse scenario text (YAML or JSON). */
export function parse_scenario(text: string, file = "scenario"): Scenario {
  return scenario_from(parse_source(text, file), file);
}

/** Read and validate a scenario file. */
export function load_scenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ScenarioError(path, [
      { path: "", message: `cannot read: ${(e as Error).message}`, line: 0 },
    ]);
  }
  return parse_scenario(text, path);
}
