/**
 * kernel/cmm.ts: models arch/powerpc/platforms/pseries/cmm.c, the pseries
 * Collaborative Memory Manager: a second balloon driver on the same
 * balloon compaction interface, with different behaviour from virtio:
 *  - the hypervisor is told page by page, through synchronous hcalls
 *    (plpar_page_set_loaned / plpar_page_set_active), not in batches on a
 *    queue; a refused hcall stops the batch;
 *  - a page is loaned *before* it joins the balloon, and on deflate
 *    activated after it left it;
 *  - the target is a loan request the driver polls every `delay` (1 s):
 *    loaned + request, kept above min_mem;
 *  - migration has no driver mutex: loan the new page (-EBUSY if the
 *    hypervisor refuses), then insert it and delete the old page in one
 *    pages_lock section, then activate the old page;
 *  - the driver adjusts the managed page count itself, always.
 * (Compaction support came to CMM in v5.6, believed; modelled on the 2016
 * interface like virtio.)
 *
 * Locks: the balloon pages lock inside enqueue/dequeue/migrate; no lock of
 * the driver's own (the kernel's loaned_pages is an atomic counter).
 * Invariants: loaned_pages = pages on the device list + isolated pages (+
 * the page a migration has inserted and not yet deleted); every page the
 * hypervisor holds as loaned is a balloon page of this device or in one of
 * the driver's transit slots (cmm_pfn_in_transit).
 */

import type { Runtime, StepOf } from "../runtime/runtime.ts";
import {
  type BalloonCompaction,
  type BalloonDevInfo,
  balloon_devinfo_init,
  balloon_page_alloc,
  balloon_page_dequeue_onto,
  balloon_page_enqueue,
  balloon_page_free,
  balloon_page_insert,
  balloon_page_remove,
} from "./balloon_compaction.ts";
import { EBUSY } from "./errno.ts";
import { list_del } from "./list.ts";
import { put_page } from "./mm/lru.ts";
import type { Pfn } from "./page.ts";
import { BALLOON_MIGRATE } from "./vmstat_items.ts";

/** The hypervisor calls CMM makes (H_SET_MPP family). 0 is H_SUCCESS. */
export interface CmmHypervisor {
  plpar_page_set_loaned(pfn: Pfn): number;
  plpar_page_set_active(pfn: Pfn): number;
  /** h_get_mpp(): pages the hypervisor wants loaned on top of the current loan (may be < 0). */
  loan_request(): number;
}

/** Default polling interval (the `delay` module parameter, 1 s). */
export const CMM_DEFAULT_DELAY_NS = 1_000_000_000;

/** Transit slots (see cmm_pfn_in_transit). */
const T_ALLOC = 0;
const T_MIGRATE_NEW = 1;
const T_MIGRATE_OLD = 2;

/** The driver's state (the kernel keeps it in file-scope variables). */
export class Cmm {
  readonly bc: BalloonCompaction;
  readonly b: BalloonDevInfo;
  readonly hv: CmmHypervisor;
  loaned_pages = 0;
  loaned_pages_target = 0;
  delay_ns = CMM_DEFAULT_DELAY_NS;
  /** min_mem_mb in pages: never loan the guest below this. */
  min_mem_pages: number;
  stop = false;
  /** Pages between an hcall and the balloon list, -1 when empty. */
  readonly transit = new Int32Array(3).fill(-1);
  /** cmm_free_pages()'s local list (a list_head slot). */
  readonly free_list: number;
  hcall_failures = 0;
  constructor(bc: BalloonCompaction, hv: CmmHypervisor, min_mem_pages: number) {
    this.bc = bc;
    this.hv = hv;
    this.min_mem_pages = min_mem_pages;
    this.b = balloon_devinfo_init(bc, "cmm");
    const mm = bc.mm;
    this.free_list = mm.list_head_pool.pop() ?? mm.m.mem.alloc_list_head();
  }
}

/** cmm_init(): set up the device and, with balloon compaction, its migratepage. */
export function cmm_init(bc: BalloonCompaction, hv: CmmHypervisor, min_mem_pages = 0): Cmm {
  const cmm = new Cmm(bc, hv, min_mem_pages);
  cmm.b.adjust_managed_page_count = true;
  if (bc.compaction)
    cmm.b.migratepage = (rt, _b, newpage, page, mode) =>
      cmm_migratepage(rt, cmm, newpage, page, mode);
  return cmm;
}

/** Whether `pfn` is between an hcall and the balloon list in some path. */
export function cmm_pfn_in_transit(cmm: Cmm, pfn: Pfn): boolean {
  const mem = cmm.bc.mm.m.mem;
  return (
    cmm.transit[T_ALLOC] === pfn ||
    cmm.transit[T_MIGRATE_NEW] === pfn ||
    cmm.transit[T_MIGRATE_OLD] === pfn ||
    mem.lru_next[cmm.free_list] === pfn
  );
}

/** cmm_alloc_pages(): loan up to `nr` pages; returns how many are still missing. */
export function* cmm_alloc_pages(rt: Runtime, cmm: Cmm, nr: number): StepOf<number> {
  const bc = cmm.bc;
  for (; nr > 0; nr--) {
    const page = balloon_page_alloc(rt, bc);
    if (page < 0) break;
    cmm.transit[T_ALLOC] = page;
    if (cmm.hv.plpar_page_set_loaned(page) !== 0) {
      cmm.hcall_failures++;
      cmm.transit[T_ALLOC] = -1;
      put_page(rt, bc.mm, page);
      break;
    }
    yield* balloon_page_enqueue(rt, bc, cmm.b, page);
    cmm.transit[T_ALLOC] = -1;
    cmm.loaned_pages++;
  }
  return nr;
}

/** cmm_free_pages(): give back up to `nr` pages; returns how many could not be. */
export function* cmm_free_pages(rt: Runtime, cmm: Cmm, nr: number): StepOf<number> {
  const bc = cmm.bc;
  const mem = bc.mm.m.mem;
  for (; nr > 0; nr--) {
    const page = yield* balloon_page_dequeue_onto(rt, bc, cmm.b, cmm.free_list);
    if (page < 0) break;
    cmm.hv.plpar_page_set_active(page);
    list_del(mem, page);
    balloon_page_free(rt, bc, page);
    cmm.loaned_pages--;
  }
  return nr;
}

/** cmm_get_mpp(): the new target from the hypervisor's loan request. */
export function cmm_get_mpp(cmm: Cmm): void {
  const m = cmm.bc.mm.m;
  let totalram = 0;
  for (const z of m.zones) totalram += z.managed_pages;
  let target = cmm.loaned_pages + cmm.hv.loan_request();
  const os_target = totalram + cmm.loaned_pages - cmm.min_mem_pages;
  if (target < 0) target = 0;
  if (target > os_target) target = Math.max(0, os_target);
  cmm.loaned_pages_target = target;
}

/**
 * cmm_thread(): every `delay`, poll the hypervisor and move towards the
 * target; a loan that stops short (allocation or hcall failure) lowers
 * the target to what was reached.
 */
export function* cmm_thread(rt: Runtime, cmm: Cmm): StepOf<void> {
  while (!cmm.stop) {
    yield* rt.schedule_timeout(cmm.delay_ns);
    if (cmm.stop) break;
    cmm_get_mpp(cmm);
    const loaned = cmm.loaned_pages;
    if (cmm.loaned_pages_target > loaned) {
      if ((yield* cmm_alloc_pages(rt, cmm, cmm.loaned_pages_target - loaned)) > 0)
        cmm.loaned_pages_target = cmm.loaned_pages;
    } else if (cmm.loaned_pages_target < loaned) {
      yield* cmm_free_pages(rt, cmm, loaned - cmm.loaned_pages_target);
    }
  }
}

/**
 * cmm_migratepage(): loan the new page first (so the loan never exceeds
 * the request), then swap the pages in the balloon under pages_lock, then
 * activate the old page; the core frees it.
 */
export function* cmm_migratepage(
  rt: Runtime,
  cmm: Cmm,
  newpage: Pfn,
  page: Pfn,
  _mode: number,
): StepOf<number> {
  const bc = cmm.bc;
  const mm = bc.mm;
  const b = cmm.b;
  cmm.transit[T_MIGRATE_NEW] = newpage;
  if (cmm.hv.plpar_page_set_loaned(newpage) !== 0) {
    cmm.hcall_failures++;
    cmm.transit[T_MIGRATE_NEW] = -1;
    return -EBUSY;
  }
  mm.m.mem._refcount[newpage]++; // the balloon's reference
  cmm.transit[T_MIGRATE_OLD] = page;
  const flags = yield* rt.spin_lock_irqsave(b.pages_lock);
  balloon_page_insert(rt, bc, b, newpage);
  balloon_page_remove(rt, bc, page); // 2025 on: balloon_page_finalize()
  b.isolated_pages--;
  mm.m.vm_events[BALLOON_MIGRATE]++;
  yield* rt.spin_unlock_irqrestore(b.pages_lock, flags);
  cmm.transit[T_MIGRATE_NEW] = -1;
  cmm.hv.plpar_page_set_active(page);
  cmm.transit[T_MIGRATE_OLD] = -1;
  put_page(rt, mm, page);
  return 0;
}
