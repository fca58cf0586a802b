/**
 * kernel/eras/index.ts: the registry of kernel eras, the one place where an
 * era is chosen by name (the checker, the host rig, scenarios, tests). Each
 * era models the code as it stood in its last stable release: its movable
 * core (MovableEra), its balloon (BalloonEra), the names of its written
 * rules (kernel/rules.ts; each can be dropped through
 * MmState.dropped_rules) and its variants: real historical bugs, each the
 * era's code before a later fix, expressed as the fix rules it drops.
 */

import { era_rules } from "../rules.ts";
import type { BalloonEra, MovableEra } from "./era.ts";
import { balloon_era2012, era2012 } from "./era2012.ts";
import { balloon_era2014, era2014 } from "./era2014.ts";
import { balloon_era2016, era2016 } from "./era2016.ts";
import { balloon_era2022, era2022 } from "./era2022.ts";
import { balloon_era2025, era2025 } from "./era2025.ts";
import { balloon_era2026, era2026 } from "./era2026.ts";

/** A historical bug of an era: the code before a fix. */
export interface EraVariant {
  readonly name: string;
  readonly description: string;
  /** The fix rules (kernel/rules.ts, kind "fix") the pre-fix code lacks. */
  readonly drops: readonly string[];
  /** The kernel commit or thread (docs/notes/balloon-eras.md section). */
  readonly reference: string;
}

export interface EraInfo {
  readonly movable: MovableEra;
  readonly balloon: BalloonEra;
  /** Kernels the era covers. */
  readonly kernels: string;
  /** Droppable written rules (kernel/rules.ts). */
  readonly rules: readonly string[];
  readonly variants: readonly EraVariant[];
}

export const ERAS: Readonly<Record<string, EraInfo>> = {
  "2012": {
    movable: era2012,
    balloon: balloon_era2012,
    kernels: "v3.8-v3.17",
    rules: era_rules("2012"),
    variants: [
      {
        name: "E12-wrong-predicate-in-migrate",
        description:
          "v3.8-v3.17 as released: __unmap_and_move() picks the balloon branch with the lockless scan predicate (refcount == 1), always false for an isolated page; the generic path calls the driver and then clears the new page's mapping: the new balloon page is listed without its identity",
        drops: ["migrate-routes-by-identity"],
        reference:
          "balloon-eras.md 7.1b, 'keep ballooned pages away from normal migration path' (2014)",
      },
    ],
  },
  "2014": {
    movable: era2014,
    balloon: balloon_era2014,
    kernels: "v3.18-v4.7",
    rules: era_rules("2014"),
    variants: [
      {
        name: "E14-newpage-fate-after-unlock",
        description:
          "before the 2019 stable fix: unmap_and_move() tests PageBalloon(newpage) after unlocking it; a deflate in between makes it put a deflated page on the LRU",
        drops: ["newpage-fate-before-unlock"],
        reference:
          "balloon-eras.md 7.3, 'mm: migrate: don't rely on __PageMovable() of newpage after unlocking it' (2019)",
      },
    ],
  },
  "2016": {
    movable: era2016,
    balloon: balloon_era2016,
    kernels: "v4.8-v5.19",
    rules: era_rules("2016"),
    variants: [
      {
        name: "E19-double-list-del",
        description:
          "v5.2-v5.3-rc: balloon_page_enqueue_one() unlinks the page itself, but balloon_page_enqueue()'s page is on no list: list_del of a detached page",
        drops: ["enqueue-one-on-detached-page"],
        reference:
          "balloon-eras.md 7.4, 'mm/balloon_compaction: avoid duplicate page removal' (2019)",
      },
    ],
  },
  "2022": {
    movable: era2022,
    balloon: balloon_era2022,
    kernels: "v6.0-v6.16",
    rules: era_rules("2022"),
    variants: [],
  },
  "2025": {
    movable: era2025,
    balloon: balloon_era2025,
    kernels: "v6.17-v6.19",
    rules: era_rules("2025"),
    variants: [],
  },
  "2026": {
    movable: era2026,
    balloon: balloon_era2026,
    kernels: "after v6.19 (seed 003)",
    rules: era_rules("2026"),
    variants: [],
  },
};

/** The era called `name`, or a RangeError naming the known ones. */
export function era_by_name(name: string): EraInfo {
  const e = ERAS[name];
  if (!e) throw new RangeError(`unknown era '${name}' (eras: ${Object.keys(ERAS).join(", ")})`);
  return e;
}

/** The era of a balloon era object (the host rig pairs a BalloonEra with its core). */
export function era_of_balloon(b: BalloonEra): EraInfo {
  return era_by_name(b.name);
}
