/**
 * kernel/rules.ts: the written rules of each kernel era's protocol, as named
 * assertions that can be switched off one by one, so the model checker (and
 * the tests) can show what each rule prevents (`--drop-rule NAME`). One
 * mechanism for the movable_ops core (movable_ops.ts, migrate.ts), the
 * balloon (balloon_compaction.ts) and the drivers.
 *
 * A rule is a step the protocol takes "because otherwise it would race"
 * (take a lock, recheck under it, skip an isolated page) together with the
 * assertion that the state it relies on holds. Code asks
 * `rule_holds(mm, NAME)` before the step: when the rule is dropped it
 * behaves as if the author had left the step out. Where the rule states a
 * condition ("private changes only under the pages lock"), the code calls
 * `rule_assert(mm, era, NAME, ok, where, pfn)`, which throws a RuleError
 * naming era, rule and pfn unless the rule was dropped. The assertions run
 * in every mode (simulator, tests, checker).
 *
 * Rules are on unless a caller (the checker, a test, BalloonCompaction's
 * drop_rules option) adds their names to MmState.dropped_rules before the
 * threads start; nothing in the kernel model drops a rule by itself.
 *
 * A "fix" rule is a later kernel fix in force in an era's last stable
 * release; dropping it gives the pre-fix code (an era variant, eras/index.ts).
 *
 * Invariant: every name used with rule_holds() / rule_assert() is listed in
 * RULES, once per era whose code carries it.
 */

import { KernelBug } from "./bug.ts";
import type { MmState } from "./mm/state.ts";

export interface RuleInfo {
  readonly name: string;
  /** The era (eras/) whose code carries the rule. */
  readonly era: string;
  /** What the rule says, in our words, and what it keeps safe. */
  readonly text: string;
  /** "fix": a later bug fix (its absence is a named variant of the era). */
  readonly kind?: "rule" | "fix";
}

/** A broken named rule: which era's rule, where, on which page. */
export class RuleError extends KernelBug {
  readonly era: string;
  readonly rule: string;
  constructor(era: string, rule: string, where: string, pfn: number) {
    super(`era ${era}: rule '${rule}' broken in ${where} (pfn ${pfn})`, pfn);
    this.name = "RuleError";
    this.era = era;
    this.rule = rule;
  }
}

// ---- the movable_ops core (movable_ops.ts, migrate.ts) ------------------------

/** isolate_movable_page() rechecks, with the page lock held, that the page is still movable and owned. */
export const RULE_RECHECK_MOVABLE = "recheck-movable-under-page-lock";
/** isolate_movable_page() rechecks PG_isolated with the page lock held before asking the driver. */
export const RULE_RECHECK_ISOLATED = "recheck-isolated-under-page-lock";
/** A driver's dequeue skips pages the VM has isolated, seen under the page lock. */
export const RULE_DEQUEUE_SKIPS_ISOLATED = "dequeue-skips-isolated";
/** 2026: the core still serialises PageMovableOpsIsolated with the page lock (E26-6). */
export const RULE_CORE_PAGE_LOCK = "core-page-lock";
/** 2012 fix (folded into v3.18): migration routes an isolated balloon page by its identity, not by the lockless scan predicate. */
export const RULE_MIGRATE_ROUTES_BY_IDENTITY = "migrate-routes-by-identity";
/** 2014 fix (2019, stable 3.12-4.7): decide the new page's fate before unlocking it. */
export const RULE_NEWPAGE_FATE_BEFORE_UNLOCK = "newpage-fate-before-unlock";

// ---- the balloon (balloon_compaction.ts) ---------------------------------------

/** The device list, isolated_pages and page->private change only under the pages lock. */
export const RULE_PAGES_LOCK_HELD = "pages-lock-held";
/** Balloon insert and delete (the page's identity) change only under the page lock (seed 000 i, seed 004 i). */
export const RULE_PAGE_LOCK_HELD = "page-lock-held";
/**
 * 2016-2025: balloon_page_dequeue() walks the list under pages_lock and only
 * trylocks each page: the lock order is page lock, then pages_lock.
 */
export const RULE_DEQUEUE_TRYLOCK_PAGE = "dequeue-trylock-page";
/** A page the core hands to isolate / putback / migrate names a live device; isolation fails on none (E25-4). */
export const RULE_PRIVATE_NAMES_DEVICE = "private-names-device";
/** 2012: isolation rechecks the balloon mapping and refcount == 2 under the page lock (E12-3). */
export const RULE_RECHECK_COUNT = "recheck-count-under-page-lock";
/** 2012: dequeue takes an extra reference before deleting the page (E12-4). */
export const RULE_DEQUEUE_EXTRA_REF = "dequeue-extra-ref";
/** 2014: isolation rechecks PageBalloon && PagePrivate under the page lock (seed 000 iii, E14-3). */
export const RULE_RECHECK_BALLOON = "recheck-balloon-under-page-lock";
/** 2014: isolation clears PagePrivate with the list removal (seed 000 iv, E14-4). */
export const RULE_CLEAR_PRIVATE_FLAG = "clear-private-flag-with-list-removal";
/** 2026: the isolation callback reads page->private under balloon_pages_lock (E26-3). */
export const RULE_PRIVATE_UNDER_LOCK = "isolate-reads-private-under-lock";
/** 2016 fix (2019, v5.3): balloon_page_enqueue_one() works on a page already off its list. */
export const RULE_ENQUEUE_DETACHED = "enqueue-one-on-detached-page";

const T = {
  pages_lock:
    "the device list, isolated_pages and page->private change only under the pages lock (isolation and putback take it): otherwise a dequeue walking the list under it follows a link isolation just poisoned",
  page_lock:
    "balloon insert and delete run under the page lock (enqueue and dequeue trylock the page): otherwise an isolator holding the page lock sees a page whose identity is half changed",
  dequeue_skips:
    "dequeue skips a page the VM has isolated: otherwise it deletes (and frees) a page migration owns, unlinking it from the migration list",
  recheck_movable:
    "isolate_movable_page() re-reads PageMovable and the driver after trylock_page(): the lockless look may be stale, the driver may have released the page meanwhile",
  dequeue_trylock:
    "balloon_page_dequeue() holds pages_lock (interrupts disabled) for its walk and only trylocks each page, skipping a locked one: the order is page lock, then pages_lock (isolation, migration and putback hold the page lock and take pages_lock), so a sleeping lock_page there sleeps with interrupts disabled and, against a compactor holding that page's lock, deadlocks",
  recheck_isolated:
    "isolate_movable_page() re-reads the isolated flag after trylock_page(): another CPU may have isolated the page since the scanner's lockless look",
};

function rules_of(era: string, list: [string, string, ("rule" | "fix")?][]): RuleInfo[] {
  return list.map(([name, text, kind]) => ({ name, era, text, kind: kind ?? "rule" }));
}

/** The rules 2016 and 2022 share (2022 changed the route, not the rules). */
const RULES_2016_2022: [string, string][] = [
  [RULE_RECHECK_MOVABLE, T.recheck_movable],
  [RULE_RECHECK_ISOLATED, T.recheck_isolated],
  [RULE_DEQUEUE_SKIPS_ISOLATED, T.dequeue_skips],
  [RULE_PAGES_LOCK_HELD, T.pages_lock],
  [RULE_PAGE_LOCK_HELD, T.page_lock],
  [RULE_DEQUEUE_TRYLOCK_PAGE, T.dequeue_trylock],
  [RULE_PRIVATE_NAMES_DEVICE, "a page the core hands to the balloon names a live device"],
];

export const RULES: readonly RuleInfo[] = [
  ...rules_of("2012", [
    [RULE_PAGES_LOCK_HELD, T.pages_lock],
    [RULE_PAGE_LOCK_HELD, T.page_lock],
    [
      RULE_RECHECK_COUNT,
      "balloon_page_isolate() rechecks the balloon mapping and refcount == 2 under the page lock: otherwise a second compactor isolates an isolated page",
    ],
    [
      RULE_DEQUEUE_EXTRA_REF,
      "balloon_page_dequeue() takes an extra reference before deleting the page, so an isolator that already passed its lockless test sees refcount != 2",
    ],
    [
      RULE_MIGRATE_ROUTES_BY_IDENTITY,
      "unmap_and_move() recognises an isolated balloon page by its mapping (isolated_balloon_page), not by the lockless scan predicate that wants refcount == 1",
      "fix",
    ],
  ]),
  ...rules_of("2014", [
    [RULE_PAGES_LOCK_HELD, T.pages_lock],
    [RULE_PAGE_LOCK_HELD, T.page_lock],
    [
      RULE_RECHECK_BALLOON,
      "balloon_page_isolate() rechecks PageBalloon && PagePrivate under the page lock (seed 000 iii): the lockless look may be stale",
    ],
    [
      RULE_CLEAR_PRIVATE_FLAG,
      "isolation clears PagePrivate together with the list removal (seed 000 iv): PagePrivate is what tells dequeue and other isolators the page is on the list",
    ],
    [
      RULE_DEQUEUE_SKIPS_ISOLATED,
      "balloon_page_dequeue() skips a page without PagePrivate (isolated), seen under the page lock",
    ],
    [
      RULE_NEWPAGE_FATE_BEFORE_UNLOCK,
      "unmap_and_move() decides how to drop the new page's reference from the old page's state, not by looking at the new page after unlocking it",
      "fix",
    ],
  ]),
  ...rules_of("2016", [
    ...RULES_2016_2022,
    [
      RULE_ENQUEUE_DETACHED,
      "balloon_page_enqueue_one() does not unlink the page: the single-page caller already took it off its own list",
      "fix",
    ],
  ]),
  ...rules_of("2022", RULES_2016_2022),
  ...rules_of("2025", [
    [RULE_RECHECK_MOVABLE, T.recheck_movable],
    [RULE_RECHECK_ISOLATED, T.recheck_isolated],
    [RULE_PAGES_LOCK_HELD, T.pages_lock],
    [
      RULE_PAGE_LOCK_HELD,
      "PG_movable_ops and page->private are set and cleared under the page lock, then pages_lock (seed 004 i): the isolation callback reads page->private under the page lock only",
    ],
    [RULE_DEQUEUE_TRYLOCK_PAGE, T.dequeue_trylock],
    [
      RULE_PRIVATE_NAMES_DEVICE,
      "balloon_page_isolate() fails on a page whose page->private is 0 (deflated, E25-4)",
    ],
  ]),
  ...rules_of("2026", [
    [RULE_RECHECK_MOVABLE, T.recheck_movable],
    [RULE_RECHECK_ISOLATED, T.recheck_isolated],
    [
      RULE_PAGES_LOCK_HELD,
      "every device list, isolated_pages and page->private change only under the global balloon_pages_lock (seed 003 i, ii)",
    ],
    [
      RULE_PRIVATE_UNDER_LOCK,
      "balloon_page_isolate() looks the device up through page->private under balloon_pages_lock (seed 003): read before the lock, a deflate can finalize the page in between",
    ],
    [
      RULE_PRIVATE_NAMES_DEVICE,
      "balloon_page_isolate() fails on a page whose page->private is 0 (deflated or not yet inflated)",
    ],
    [
      RULE_CORE_PAGE_LOCK,
      "the movable_ops core still takes the page lock around isolation, migration and putback, which serialises PageMovableOpsIsolated (E26-6)",
    ],
  ]),
];

/** The rule names of an era. */
export function era_rules(era: string, kind: "rule" | "fix" = "rule"): string[] {
  return RULES.filter((r) => r.era === era && (r.kind ?? "rule") === kind).map((r) => r.name);
}

/** Every known rule name. */
export function rule_names(): string[] {
  return [...new Set(RULES.map((r) => r.name))];
}

/** Whether the rule `name` is in force (not dropped). */
export function rule_holds(mm: MmState, name: string): boolean {
  return mm.dropped_rules.size === 0 || !mm.dropped_rules.has(name);
}

/** The assertion of rule `name` of `era`: throws RuleError when `ok` is false, unless dropped. */
export function rule_assert(
  mm: MmState,
  era: string,
  name: string,
  ok: boolean,
  where: string,
  pfn: number,
): void {
  if (!ok && rule_holds(mm, name)) throw new RuleError(era, name, where, pfn);
}
