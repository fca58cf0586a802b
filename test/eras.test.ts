// The kernel eras (kernel/eras/index.ts) under the checker's balloon kinds
// (check/balloon_kinds.ts): random interleavings (PCT over pinned seeds) of
// compaction, deflate, inflate and putback on one to three balloon pages.
// For every era the intact protocol keeps every invariant (2012 and 2014:
// except the hole of their unlocked dequeue walk, which the search finds);
// each written rule, dropped, gives the violation named in the table, or is
// recorded as not needed in the model (with the reason); each variant's
// historical bug is found.
import { describe, expect, it } from "vitest";
import {
  BALLOON_INVARIANTS,
  BALLOON_KINDS,
  BALLOON_RANDOM_WITNESSES,
  balloon_check_era,
  register_balloon_kinds,
} from "../src/check/balloon_kinds.ts";
import { standard_config } from "../src/check/check.ts";
import { explore } from "../src/check/explore.ts";
import { invariants } from "../src/check/invariants.ts";
import { pct } from "../src/check/pct.ts";
import type { Resolved, Violation } from "../src/check/runner.ts";
import type { ThreadKind } from "../src/check/world.ts";
import { ERAS } from "../src/kernel/eras/index.ts";
import { RULES, RuleError, rule_assert } from "../src/kernel/rules.ts";
import { mm_env } from "./mm_helpers.ts";

type Cfg = readonly [threads: string[], pages: number];
/** The configurations: A the standard one, then smaller ones aimed at one race. */
const A: Cfg = [["balloon_compact", "balloon_deflate", "balloon_inflate"], 3];
const B: Cfg = [["balloon_compact", "balloon_compact", "balloon_deflate"], 2];
const C: Cfg = [["balloon_putback", "balloon_deflate", "balloon_putback"], 2];
const D: Cfg = [["balloon_compact", "balloon_deflate"], 1];
const E: Cfg = [["balloon_putback", "balloon_putback"], 1];
const E2: Cfg = [["balloon_putback", "balloon_putback"], 2];
const P: Cfg = [["balloon_putback", "balloon_deflate"], 1];
const I: Cfg = [["balloon_inflate"], 1];

function resolved(
  era: string,
  [threads, pages]: Cfg,
  drop: string[],
  variant: string | null,
): Resolved {
  const ce = balloon_check_era(era);
  const kinds = threads.map((t) => {
    const k = BALLOON_KINDS.find((x) => x.name === t);
    if (!k) throw new Error(`no kind ${t}`);
    return k;
  });
  return {
    cfg: { era, threads: [...threads], pages, drop_rules: drop, variant },
    era: ce,
    kinds,
    invariants: [...invariants(), ...ce.invariants],
  };
}

/**
 * Random search: for seeds 1..seeds, PCT with depth 3, 2 and 1, `budget`
 * executions each; the first violation, or null.
 */
function search(
  era: string,
  cfg: Cfg,
  drop: string[] = [],
  variant: string | null = null,
  seeds = 6,
  budget = 300,
): Violation | null {
  for (let seed = 1; seed <= seeds; seed++) {
    for (const depth of [3, 2, 1]) {
      const r = pct(resolved(era, cfg, drop, variant), { seed, budget, depth });
      if (r.violation) return r.violation;
    }
  }
  return null;
}

/** Exhaustive search (the checker's DPOR explorer) of a small configuration. */
function exhaust(
  era: string,
  cfg: Cfg,
  drop: string[] = [],
): { v: Violation | null; complete: boolean } {
  const r = explore(resolved(era, cfg, drop, null), {
    por: true,
    preemption_bound: null,
    max_executions: 20_000,
  });
  return { v: r.violation, complete: r.complete };
}

const CLEAN: Record<string, Cfg[]> = {
  "2012": [C, E],
  "2014": [C, D, E, P],
  "2016": [A, B, C, D, E],
  "2022": [A, B, C, D, E],
  "2025": [A, B, C, D, E],
  "2026": [A, B, C, D, E],
};

describe("eras: the registry", () => {
  it("eras: every era names its core, its balloon, rules known for it and variants that drop its fix rules", () => {
    expect(Object.keys(ERAS)).toEqual(["2012", "2014", "2016", "2022", "2025", "2026"]);
    for (const [name, e] of Object.entries(ERAS)) {
      expect(e.movable.name).toBe(name);
      expect(e.balloon.name).toBe(name);
      expect(e.rules.length).toBeGreaterThanOrEqual(4);
      for (const r of e.rules)
        expect(RULES.some((x) => x.name === r && x.era === name && x.kind === "rule")).toBe(true);
      for (const v of e.variants)
        for (const r of v.drops)
          expect(RULES.some((x) => x.name === r && x.era === name && x.kind === "fix")).toBe(true);
    }
    expect(Object.values(ERAS).flatMap((e) => e.variants).length).toBeGreaterThanOrEqual(3);
  });

  it("eras: register_balloon_kinds registers the six kinds and returns a checker era per kernel era", () => {
    const got: ThreadKind[] = [];
    const eras = register_balloon_kinds((k) => got.push(k));
    expect(got.map((k) => k.name)).toEqual([
      "balloon_inflate",
      "balloon_deflate",
      "balloon_compact",
      "balloon_putback",
      "balloon_host",
      "balloon_free",
    ]);
    expect(eras.map((e) => e.name)).toEqual(Object.keys(ERAS));
    for (const e of eras) {
      expect(e.era).toBe(ERAS[e.name].movable);
      expect(e.invariants).toBe(BALLOON_INVARIANTS);
      expect(e.variants.map((v) => v.name)).toEqual(ERAS[e.name].variants.map((v) => v.name));
    }
  });

  it("rules: a broken rule throws RuleError naming era, rule and pfn; MmState.dropped_rules switches it off", () => {
    const { mm } = mm_env();
    let err: unknown = null;
    try {
      rule_assert(mm, "2026", "pages-lock-held", false, "balloon_page_insert", 7);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(RuleError);
    expect((err as RuleError).era).toBe("2026");
    expect((err as RuleError).rule).toBe("pages-lock-held");
    expect((err as RuleError).pfn).toBe(7);
    mm.dropped_rules.add("pages-lock-held");
    expect(() => rule_assert(mm, "2026", "pages-lock-held", false, "x", 7)).not.toThrow();
  });
});

describe.each(Object.keys(ERAS))("eras: era %s, intact", (name) => {
  it(`eras ${name}: random interleavings of compaction, deflate, inflate and putback keep every invariant`, () => {
    for (const cfg of CLEAN[name]) {
      const v = search(name, cfg, [], null, 1, 150);
      expect(v, `${cfg[0].join("+")} on ${cfg[1]} pages`).toBe(null);
    }
  }, 120_000);
});

describe("eras: the unlocked dequeue walk of 2012 and 2014 (finding)", () => {
  it("eras 2012: dequeue takes a page compaction has just isolated (no isolated test, unlocked walk): lists corrupted", () => {
    const v = search("2012", B);
    expect(v?.invariant).toBe("list-links-intact");
  }, 60_000);
  it("eras 2014: dequeue skips an isolated page, then follows its poisoned link (the walk is outside pages_lock until v4.8)", () => {
    const v = search("2014", B);
    expect(v?.invariant).toBe("kernel-bug");
    expect(v?.message).toMatch(/walked off device 'balloon' list/);
  }, 60_000);
});

/** Dropping dequeue-trylock-page: dequeue's lock_page() under pages_lock. */
const TRYLOCK_SPLAT =
  /^BUG: sleeping function called from invalid context: balloon_deflate0 calls mutex_lock\(page lock\) with interrupts disabled/;

/**
 * rule -> [configuration, invariant, message pattern, how: random search
 * unless "exhaustive"]; null: not needed in the model (see README "Eras").
 */
const DROPS: Record<string, Record<string, [Cfg, string, RegExp, "exhaustive"?] | null>> = {
  "2012": {
    // A torn list: a putback's unlocked list_add against the isolation of
    // its neighbour (README "Eras").
    "pages-lock-held": [E2, "kernel-bug", /list corruption in list_add/, "exhaustive"],
    "page-lock-held": [C, "kernel-bug", /list corruption in list_del/],
    // Found by exhaustive search of two putbacks on one page (the random
    // search alone missed it).
    "recheck-count-under-page-lock": [E, "kernel-bug", /./, "exhaustive"],
    "dequeue-extra-ref": null,
  },
  "2014": {
    // As in 2012 (README "Eras"): before, an unlocked list update was one step.
    "pages-lock-held": [E2, "kernel-bug", /list corruption in list_add/, "exhaustive"],
    "page-lock-held": [C, "kernel-bug", /list corruption in list_del/],
    "recheck-balloon-under-page-lock": [
      E,
      "kernel-bug",
      /list corruption in list_del/,
      "exhaustive",
    ],
    "clear-private-flag-with-list-removal": [D, "balloon-listed-identity", /nr_listed/],
    "dequeue-skips-isolated": [D, "list-links-intact", /list at slot/],
  },
  "2016": {
    "recheck-movable-under-page-lock": [
      D,
      "kernel-bug",
      /rule 'private-names-device' broken in balloon_page_isolate/,
    ],
    "recheck-isolated-under-page-lock": [B, "kernel-bug", /isolated twice/],
    "dequeue-skips-isolated": null,
    // Two unlocked unlinks of neighbours tear the list (lockless_list_del).
    "pages-lock-held": [B, "list-links-intact", /list at slot/],
    "page-lock-held": [C, "kernel-bug", /list corruption in list_del/],
    // lock_page() under pages_lock: might_sleep() with interrupts disabled;
    // with that report off, a deadlock (test/check_eras.test.ts).
    "dequeue-trylock-page": [D, "lock-bug", TRYLOCK_SPLAT, "exhaustive"],
    "private-names-device": null,
  },
  "2022": {
    "recheck-movable-under-page-lock": [
      D,
      "kernel-bug",
      /rule 'private-names-device' broken in balloon_page_isolate/,
    ],
    "recheck-isolated-under-page-lock": [B, "kernel-bug", /isolated twice/],
    "dequeue-skips-isolated": null,
    "pages-lock-held": [B, "kernel-bug", /list corruption in list_del/],
    "page-lock-held": [C, "kernel-bug", /list corruption in list_del|rule 'private-names-device'/],
    "dequeue-trylock-page": [D, "lock-bug", TRYLOCK_SPLAT, "exhaustive"],
    "private-names-device": null,
  },
  "2025": {
    "recheck-movable-under-page-lock": null,
    "recheck-isolated-under-page-lock": [
      E,
      "kernel-bug",
      /list corruption in list_del/,
      "exhaustive",
    ],
    "pages-lock-held": [B, "kernel-bug", /list corruption in list_del/],
    "page-lock-held": [C, "kernel-bug", /list corruption in list_del/],
    "dequeue-trylock-page": [D, "lock-bug", TRYLOCK_SPLAT, "exhaustive"],
    "private-names-device": null,
  },
  "2026": {
    "recheck-movable-under-page-lock": null,
    "recheck-isolated-under-page-lock": [E, "kernel-bug", /isolated twice/],
    "pages-lock-held": [C, "kernel-bug", /list corruption in list_del/],
    "isolate-reads-private-under-lock": [C, "kernel-bug", /list corruption in list_del/],
    "private-names-device": [C, "kernel-bug", /list corruption in list_del/],
    "core-page-lock": [B, "kernel-bug", /isolated twice/],
  },
};

describe.each(Object.keys(ERAS))("eras: era %s, each rule dropped", (name) => {
  it(`eras ${name}: the table covers every rule of the era`, () => {
    expect(Object.keys(DROPS[name]).sort()).toEqual([...ERAS[name].rules].sort());
  });
  it(`eras ${name}: BALLOON_RANDOM_WITNESSES (the benchmark's) are this table's randomized entries`, () => {
    const random = Object.entries(DROPS[name])
      .filter(([, want]) => want !== null && want[3] !== "exhaustive")
      .filter(([rule]) => !balloon_check_era(name).witnesses[rule])
      .map(([rule, want]) => [
        rule,
        { threads: [...want![0][0]], pages: want![0][1], invariant: want![1] },
      ]);
    expect(Object.fromEntries(random)).toEqual(BALLOON_RANDOM_WITNESSES[name]);
  });
  it.each(Object.entries(DROPS[name]))(
    `eras ${name}: dropping %s`,
    (rule, want) => {
      if (want === null) {
        // Not needed in the model: every configuration clean with the rule stays clean.
        for (const cfg of CLEAN[name]) {
          const v = search(name, cfg, [rule], null, 1, 100);
          expect(v, `${cfg[0].join("+")}`).toBe(null);
        }
        // And the two-isolator configuration, exhaustively.
        const x = exhaust(name, E, [rule]);
        expect(x.complete && x.v === null, "E exhausted clean").toBe(true);
        // From 2014 the standard configuration (compaction, deflation,
        // inflation) is clean too and has the deflater the dequeue rules
        // are about: exhausted with the rule dropped. (2012's has no
        // deflater: every 2012 configuration with one breaks on the
        // unlocked walk, README "Eras".)
        if (name !== "2012") {
          const sc = standard_config(name);
          const y = exhaust(name, [sc.threads, sc.pages], [rule]);
          expect(y.complete && y.v === null, "standard configuration exhausted clean").toBe(true);
        }
        return;
      }
      const [cfg, inv, msg, how] = want;
      if (how === "exhaustive") {
        const intact = exhaust(name, cfg);
        expect(intact.complete && intact.v === null, "exhaustively clean with the rule").toBe(true);
        const { v } = exhaust(name, cfg, [rule]);
        expect(v?.invariant).toBe(inv);
        expect(v?.message).toMatch(msg);
        return;
      }
      expect(search(name, cfg, [], null, 1, 200), "the configuration is clean with the rule").toBe(
        null,
      );
      const v = search(name, cfg, [rule]);
      expect(v?.invariant).toBe(inv);
      expect(v?.message).toMatch(msg);
    },
    120_000,
  );
});

describe("eras: historical bugs as variants", () => {
  it("eras 2012, E12-wrong-predicate-in-migrate: after one migration the new balloon page is listed without its mapping", () => {
    expect(search("2012", E, [], null, 1, 200)).toBe(null);
    const v = search("2012", E, [], "E12-wrong-predicate-in-migrate");
    expect(v?.invariant).toBe("page-in-one-place");
    expect(v?.message).toMatch(/on balloon's list but balloon does not own it/);
  }, 60_000);
  it("eras 2014, E14-newpage-fate-after-unlock: a deflate between unlock and the test puts a ballooned frame on the LRU", () => {
    expect(search("2014", P, [], null, 1, 200)).toBe(null);
    const v = search("2014", P, [], "E14-newpage-fate-after-unlock");
    expect(v?.invariant).toBe("balloon-host-discarded");
    expect(v?.message).toMatch(/discarded it but it is on the LRU/);
  }, 60_000);
  it("eras 2016, E19-double-list-del: one inflation unlinks a page that is on no list", () => {
    expect(search("2016", I, [], null, 1, 5)).toBe(null);
    const v = search("2016", I, [], "E19-double-list-del", 1, 5);
    expect(v?.invariant).toBe("kernel-bug");
    expect(v?.message).toMatch(/list corruption in list_del/);
  });
});
