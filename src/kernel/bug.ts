/**
 * kernel/bug.ts: BUG(), VM_BUG_ON(), VM_BUG_ON_PAGE(), VM_WARN_ON() and the
 * bad_page() report, as executable documentation.
 *
 * As in the kernel, VM_BUG_ON* fires when its condition is TRUE and `assert`
 * fires when its condition is FALSE. The message argument should be a string
 * literal: a page dump is built only when an assertion fires, so the checks
 * cost a branch on the hot path and nothing else.
 *
 * Two kinds of failure are kept apart:
 *  - KernelBug: the model broke one of its own invariants (a bug in pagesim or,
 *    under the checker, in the protocol being checked);
 *  - BadPageError: the caller asked for something the kernel would report as a
 *    bad page or reject (freeing a free page, a wrong order). It is thrown
 *    before any state changes, so the machine stays consistent.
 */

import type { MemMap } from "./page.ts";
import { dump_page } from "./page.ts";

export class KernelBug extends Error {
  readonly pfn: number | undefined;
  constructor(message: string, pfn?: number) {
    super(message);
    this.name = "KernelBug";
    this.pfn = pfn;
  }
}

export class BadPageError extends Error {
  readonly pfn: number;
  readonly operation: string;
  constructor(operation: string, pfn: number, reason: string, page: string) {
    super(`BUG: Bad page state in ${operation}: ${reason}\n  ${page}`);
    this.name = "BadPageError";
    this.pfn = pfn;
    this.operation = operation;
  }
}

export function BUG(message: string): never {
  throw new KernelBug(`kernel BUG: ${message}`);
}

/** Fires when `cond` is true. */
export function VM_BUG_ON(cond: boolean, message: string): void {
  if (cond) throw new KernelBug(`VM_BUG_ON: ${message}`);
}

/** Fires when `cond` is true; the report carries the page's state. */
export function VM_BUG_ON_PAGE(cond: boolean, mem: MemMap, pfn: number, message: string): void {
  if (cond) throw new KernelBug(`VM_BUG_ON_PAGE: ${message}\n  ${dump_page(mem, pfn)}`, pfn);
}

/** Fires when `cond` is false. */
export function assert(cond: boolean, message: string): asserts cond {
  if (!cond) throw new KernelBug(`assertion failed: ${message}`);
}

/** Documents a condition that may go either way; it checks nothing. */
export function maybe(_cond: boolean): void {}

/** The kernel's bad_page(): reject an operation on a page in the wrong state. */
export function bad_page(mem: MemMap, pfn: number, operation: string, reason: string): never {
  throw new BadPageError(operation, pfn, reason, dump_page(mem, pfn));
}
