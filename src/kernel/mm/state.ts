/**
 * kernel/mm/state.ts: the state the migration layer hangs off a Machine:
 * one Lruvec per node (mm/vmscan.c's per-node LRU lists), the owners of user
 * pages (processes' page tables and files' page caches, see owner.ts), the
 * registered movable_ops drivers, the era protocol in force, and the page
 * locks (pagemap.ts).
 *
 * Locks are runtime handles created once at setup through the `new_lock`
 * factory the caller passes (Execution.new_lock under the runtime), so the
 * kernel structures hold `Lock` values and never import the runtime itself.
 *
 * Invariant: an owner handle, a driver handle and a page lock never change
 * once handed out; handles start at 1 so that a page's mapping is never 0
 * while it has an owner.
 */

import type { Lock, LockKind } from "../../runtime/runtime.ts";
import type { CaptureControl } from "../compaction.ts";
import type { MovableEra } from "../eras/era.ts";
import type { Machine } from "../machine.ts";
import type { MmObserver } from "../migrate.ts";
import type { MovableOperations } from "../movable_ops.ts";
import type { Pfn } from "../page.ts";
import { Lruvec } from "./lru.ts";
import type { AddressSpace } from "./owner.ts";

export type NewLock = (lock_class: string, kind: LockKind) => Lock;

export class MmState {
  readonly m: Machine;
  /** node_id -> lruvec (the node's LRU lists and their lock). */
  readonly lruvecs: Lruvec[];
  /** owner handle -> address space; slot 0 is unused. */
  readonly owners: (AddressSpace | null)[] = [null];
  /** movable_ops driver handle -> ops; slot 0 is unused. */
  readonly movable_ops: (MovableOperations | null)[] = [null];
  readonly era: MovableEra;
  /**
   * pfn -> its page lock, created the first time the page is locked: a
   * table of PAGE_LOCK_CHUNK-pfn chunks, each allocated when a page in it
   * is first locked (see pagemap.ts).
   */
  readonly page_locks: (Lock | null)[][] = [];
  readonly new_lock: NewLock;
  /**
   * Empty list_head slots given back by finished users (compaction's
   * per-run lists live on the kernel stack; the memory map's slots are a
   * fixed supply, so they are recycled).
   */
  readonly list_head_pool: number[] = [];
  /**
   * PF_MEMALLOC of the running task (memalloc_noreclaim_save()): set while
   * a direct compaction runs. That run never yields to another thread (see
   * compaction_direct.ts), so one flag per machine is the current task's.
   */
  pf_memalloc = false;
  /**
   * current->capture_control: the direct compaction in progress that may
   * capture a freed block (compaction.ts CaptureControl), or null.
   */
  capture_control: CaptureControl | null = null;
  /**
   * Names of era rules switched off (kernel/rules.ts); empty in normal runs.
   * Set before any thread starts.
   */
  readonly dropped_rules = new Set<string>();
  /**
   * Observers of migration and compaction for trace export (migrate.ts
   * MmObserver); unset unless a trace is kept, never set by the checker.
   */
  observer?: MmObserver;

  constructor(m: Machine, era: MovableEra, new_lock: NewLock) {
    this.m = m;
    this.era = era;
    this.new_lock = new_lock;
    this.lruvecs = m.pgdat.map(
      (p) => new Lruvec(m.mem, p, new_lock("lruvec->lru_lock", "spinlock")),
    );
  }

  /** mem_cgroup_page_lruvec() without memcgs: the node's lruvec. */
  page_lruvec(_pfn: Pfn): Lruvec {
    return this.lruvecs[0];
  }
}
