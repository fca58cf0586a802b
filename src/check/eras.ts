/**
 * check/eras.ts: the eras the checker knows, as a registry of CheckEra
 * (world.ts): the kernel protocol (kernel/eras/), the era's droppable rules
 * (names from kernel/rules.ts), its named variants (historical pre-fix
 * code), the thread kinds it supports, its standard configuration (the one
 * the tests exhaust and `pagesim check --era E` runs without --threads and
 * --pages) and any invariants of its own.
 *
 * Today: 2016 (the movable_ops framework of v4.8) with a toy driver shaped
 * like its balloon. To add an era (the balloon eras 2012..2026): build its
 * MovableEra in kernel/eras/, list its rules in kernel/rules.ts RULES, and
 * register_check_era() here with its thread kinds and invariants.
 *
 * Invariant: every rule an era lists is in kernel/rules.ts RULES with that
 * era, and every thread kind it lists is registered (checked at lookup).
 */

import { era2016 } from "../kernel/eras/era2016.ts";
import { RULES } from "../kernel/rules.ts";
import { thread_kind } from "./threads.ts";
import type { CheckEra } from "./world.ts";

const ERAS = new Map<string, CheckEra>();

export function register_check_era(era: CheckEra): void {
  if (ERAS.has(era.name)) throw new Error(`era '${era.name}' registered twice`);
  for (const r of era.rules) {
    if (!RULES.some((x) => x.name === r && x.era === era.name)) {
      throw new Error(`era ${era.name}: rule '${r}' is not in kernel/rules.ts for this era`);
    }
  }
  ERAS.set(era.name, era);
}

export function check_era(name: string): CheckEra | undefined {
  const era = ERAS.get(name);
  if (era) {
    for (const t of era.threads) {
      if (!thread_kind(t)) throw new Error(`era ${name}: thread kind '${t}' is not registered`);
    }
  }
  return era;
}

export function check_eras(): CheckEra[] {
  return [...ERAS.values()];
}

register_check_era({
  name: "2016",
  era: era2016,
  rules: RULES.filter((r) => r.era === "2016").map((r) => r.name),
  variants: [],
  standard: { threads: ["compact", "deflate", "inflate"], pages: 2 },
  threads: ["compact", "putback", "deflate", "inflate", "isolate_lru", "free"],
  invariants: [],
});
