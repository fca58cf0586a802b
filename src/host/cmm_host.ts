/**
 * host/cmm_host.ts: the PowerVM side of the pseries CMM balloon (cmm.ts):
 * the hypervisor's per-frame loaned/active state behind the synchronous
 * hcalls, the loan request it hands the guest, and the safety check.
 *
 * hcalls are synchronous, so there are no messages in flight: the only
 * frames where guest and hypervisor may disagree are those in one of the
 * driver's transit slots (between an hcall and the balloon list).
 * Bad calls (a pfn outside the guest, loaning a loaned frame, activating an
 * active one) are refused with H_PARAMETER and counted.
 */

import { type Cmm, type CmmHypervisor, cmm_pfn_in_transit } from "../kernel/cmm.ts";
import { HostSafetyError } from "./host.ts";

export const H_SUCCESS = 0;
export const H_PARAMETER = -4;

export class CmmHost implements CmmHypervisor {
  /** Per guest pfn: 1 loaned, 0 active. */
  readonly loaned: Uint8Array;
  nr_loaned = 0;
  /** Pages the hypervisor wants on top of the current loan (h_get_mpp). */
  request = 0;
  rejected = 0;

  constructor(nr_pages: number) {
    this.loaned = new Uint8Array(nr_pages);
  }

  plpar_page_set_loaned(pfn: number): number {
    if (!(pfn >= 0 && pfn < this.loaned.length) || this.loaned[pfn]) {
      this.rejected++;
      return H_PARAMETER;
    }
    this.loaned[pfn] = 1;
    this.nr_loaned++;
    return H_SUCCESS;
  }

  plpar_page_set_active(pfn: number): number {
    if (!(pfn >= 0 && pfn < this.loaned.length) || !this.loaned[pfn]) {
      this.rejected++;
      return H_PARAMETER;
    }
    this.loaned[pfn] = 0;
    this.nr_loaned--;
    return H_SUCCESS;
  }

  loan_request(): number {
    return this.request;
  }

  /** Ask for `pages` loaned in total (the hypervisor's request is relative). */
  set_loan_target(pages: number, cmm: Cmm): void {
    if (!(Number.isInteger(pages) && pages >= 0))
      throw new RangeError(`cmm host: loan target ${pages} must be a whole number of pages >= 0`);
    this.request = pages - cmm.loaned_pages;
  }
}

/**
 * check_cmm_safety(): every loaned frame is a balloon page of the CMM
 * device, and every CMM balloon page is loaned, except frames in transit.
 */
export function check_cmm_safety(host: CmmHost, cmm: Cmm): void {
  const mem = cmm.bc.mm.m.mem;
  const id = cmm.b.id;
  const type = cmm.bc.era.page_type;
  for (let p = 0; p < host.loaned.length; p++) {
    const mine = mem.page_type[p] === type && mem.page_private[p] === id;
    if ((host.loaned[p] === 1) === mine || cmm_pfn_in_transit(cmm, p)) continue;
    throw new HostSafetyError(
      "cmm",
      p,
      host.loaned[p]
        ? `loaned to the hypervisor but the guest uses it (refcount ${mem._refcount[p]})`
        : "a CMM balloon page the hypervisor does not hold as loaned",
    );
  }
}
