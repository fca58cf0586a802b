/**
 * kernel/vmstat.ts: the periodic per-cpu vmstat work of mm/vmstat.c
 * (vmstat_update -> refresh_cpu_vm_stats), which, besides folding counters,
 * decays every pcp's high mark and drains what is above it
 * (decay_pcp_high). The simulator calls vmstat_update() once every
 * sysctl_stat_interval (1 s of simulated time).
 *
 * pagesim keeps counters exact (there are no per-cpu diffs to fold), so
 * only the pcp decay has an effect.
 */

import type { Machine } from "./machine.ts";
import { decay_pcp_high } from "./page_alloc/pcp.ts";

/** sysctl_stat_interval, in simulated nanoseconds (HZ = 1 s). */
export const STAT_INTERVAL_NS = 1_000_000_000;

/** vmstat_update() on every CPU: returns whether any pcp still has decay work. */
export function vmstat_update(m: Machine): boolean {
  let todo = false;
  for (const zone of m.populated) {
    for (const pcp of zone.per_cpu_pageset) {
      if (decay_pcp_high(m, zone, pcp)) todo = true;
    }
  }
  return todo;
}
