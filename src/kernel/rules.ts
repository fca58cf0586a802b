/**
 * kernel/rules.ts: the written rules of a kernel era's protocol, as named
 * assertions that can be switched off one by one, so the model checker can
 * show what each rule prevents (`pagesim check --drop-rule NAME`).
 *
 * A rule is a check or a step the protocol does "because otherwise it would
 * race": code that implements it asks `rule_holds(mm, NAME)` and, when the
 * rule is dropped, behaves as if the author had left it out (the lockless
 * answer is trusted, the recheck is skipped). Rules are on unless a caller
 * (the checker, a test) adds their names to MmState.dropped_rules before the
 * threads start; nothing in the kernel model drops a rule by itself.
 *
 * Invariant: every name used with rule_holds() is listed in RULES with the
 * era it belongs to and what it keeps safe.
 */

import type { MmState } from "./mm/state.ts";

export interface RuleInfo {
  readonly name: string;
  /** The era (eras/) whose code carries the rule. */
  readonly era: string;
  /** What the rule says, in our words. */
  readonly text: string;
}

/** isolate_movable_page() rechecks, with the page lock held, that the page is still movable and owned. */
export const RULE_RECHECK_MOVABLE = "recheck-movable-under-page-lock";
/** isolate_movable_page() rechecks PG_isolated with the page lock held before asking the driver. */
export const RULE_RECHECK_ISOLATED = "recheck-isolated-under-page-lock";
/** A driver's dequeue (balloon_page_dequeue) skips pages the VM has isolated, seen under the page lock. */
export const RULE_DEQUEUE_SKIPS_ISOLATED = "dequeue-skips-isolated";

export const RULES: readonly RuleInfo[] = [
  {
    name: RULE_RECHECK_MOVABLE,
    era: "2016",
    text: "isolate_movable_page() re-reads PageMovable and the driver after trylock_page(): the lockless look may be stale, the driver may have released the page meanwhile",
  },
  {
    name: RULE_RECHECK_ISOLATED,
    era: "2016",
    text: "isolate_movable_page() re-reads PG_isolated after trylock_page(): another CPU may have isolated the page since the scanner's lockless look",
  },
  {
    name: RULE_DEQUEUE_SKIPS_ISOLATED,
    era: "2016",
    text: "a driver taking its page back (balloon_page_dequeue) trylocks it and skips it while the VM has it isolated",
  },
];

/** Whether the rule `name` is in force (not dropped). */
export function rule_holds(mm: MmState, name: string): boolean {
  return mm.dropped_rules.size === 0 || !mm.dropped_rules.has(name);
}
