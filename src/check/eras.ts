/**
 * check/eras.ts: the eras the checker knows, as a registry of CheckEra
 * (world.ts): the kernel protocol (kernel/eras/), the era's droppable rules
 * (names from kernel/rules.ts), its named variants (historical pre-fix
 * code), the thread kinds it supports, its standard configuration (the one
 * the tests exhaust and `pagesim check --era E` runs without --threads and
 * --pages) and any invariants of its own.
 *
 * The balloon eras 2012, 2014, 2016, 2022, 2025 and 2026 (kernel/eras/:
 * each era's core and balloon protocol, its rules and its historical
 * variants; thread kinds, invariants, witnesses and standard
 * configurations in balloon_kinds.ts), and "2016-toy": the movable_ops
 * framework of v4.8 with a small test driver shaped like its balloon (the
 * generic kinds compact, deflate, inflate, putback, isolate_lru, free).
 * To add an era: build its MovableEra and BalloonEra in kernel/eras/, list
 * its rules in kernel/rules.ts RULES, and register it here.
 *
 * Invariant: every rule an era lists is in kernel/rules.ts RULES with that
 * era, and every thread kind it lists is registered (checked at lookup).
 */

import { era2016 } from "../kernel/eras/era2016.ts";
import {
  RULE_DEQUEUE_SKIPS_ISOLATED,
  RULE_RECHECK_ISOLATED,
  RULE_RECHECK_MOVABLE,
  RULES,
} from "../kernel/rules.ts";
import { register_balloon_kinds } from "./balloon_kinds.ts";
import { register_thread_kind, thread_kind } from "./threads.ts";
import type { CheckEra } from "./world.ts";

const ERAS = new Map<string, CheckEra>();

export function register_check_era(era: CheckEra): void {
  if (ERAS.has(era.name)) throw new Error(`era '${era.name}' registered twice`);
  for (const r of era.rules) {
    if (!RULES.some((x) => x.name === r && x.era === era.name.replace(/-toy$/, ""))) {
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

for (const era of register_balloon_kinds(register_thread_kind)) register_check_era(era);

register_check_era({
  name: "2016-toy",
  era: era2016,
  rules: [RULE_RECHECK_MOVABLE, RULE_RECHECK_ISOLATED, RULE_DEQUEUE_SKIPS_ISOLATED],
  variants: [],
  witnesses: {
    // Deflate releases and unlinks the page between compaction's lockless
    // look and its trylock; the driver unlinks it again.
    [RULE_RECHECK_MOVABLE]: { threads: ["compact", "deflate"], pages: 1, invariant: "kernel-bug" },
    // Two scanners both see the page not isolated; the second isolates it again.
    [RULE_RECHECK_ISOLATED]: { threads: ["compact", "compact"], pages: 1, invariant: "kernel-bug" },
    // Deflate takes back a page compaction has isolated.
    [RULE_DEQUEUE_SKIPS_ISOLATED]: {
      threads: ["compact", "deflate"],
      pages: 1,
      invariant: "isolated-once",
    },
  },
  standard: { threads: ["compact", "deflate", "inflate"], pages: 2 },
  threads: ["compact", "putback", "deflate", "inflate", "isolate_lru", "free"],
  invariants: [],
});
