/**
 * kernel/machine.ts: the state of one simulated machine: the memory map,
 * the nodes and zones, the global vm event counters, the sysctls, and the
 * seams through which later subsystems (compaction, reclaim, balloon OOM
 * deflation, free page reporting) hook into the allocator.
 *
 * There is no module-level mutable state anywhere in kernel/: everything a
 * kernel path touches hangs off a Machine, so the checker can build a fresh
 * one for every execution. Build a Machine with boot() in boot.ts.
 */

import { MAX_NR_ZONES, type PgData, type Zone } from "./mmzone.ts";
import type { MemMap, Pfn } from "./page.ts";
import type { FreeAreaHooks } from "./page_alloc/free_area.ts";
import { NR_VM_EVENT_ITEMS } from "./vmstat_items.ts";

/** /proc/sys/vm and the boot parameters pagesim models. */
export interface Sysctl {
  /** The value in force (computed at boot unless the user set it). */
  min_free_kbytes: number;
  /** What the user wrote to min_free_kbytes, or -1 (computed). */
  user_min_free_kbytes: number;
  watermark_scale_factor: number;
  watermark_boost_factor: number;
  lowmem_reserve_ratio: number[];
  percpu_pagelist_high_fraction: number;
  extfrag_threshold: number;
  compaction_proactiveness: number;
  compact_unevictable_allowed: number;
  /** /sys/kernel/mm/transparent_hugepage/enabled */
  transparent_hugepage: "always" | "madvise" | "never";
  /** Set at boot on machines too small to group pages by mobility. */
  page_group_by_mobility_disabled: boolean;
}

export function default_sysctl(): Sysctl {
  return {
    min_free_kbytes: 1024,
    user_min_free_kbytes: -1,
    watermark_scale_factor: 10,
    watermark_boost_factor: 15000,
    lowmem_reserve_ratio: [256, 256, 32, 0, 0],
    percpu_pagelist_high_fraction: 0,
    extfrag_threshold: 500,
    compaction_proactiveness: 20,
    compact_unevictable_allowed: 1,
    transparent_hugepage: "always",
    page_group_by_mobility_disabled: false,
  };
}

/** What a direct compaction attempt reports back to the allocator. */
export interface DirectCompactResult {
  /** pfn of a block captured or allocated after compaction, or -1. */
  pfn: Pfn;
  /** enum compact_result, as a number (compaction.ts). */
  result: number;
}

/**
 * The allocator slow path's seams (mm/page_alloc.c __alloc_pages_slowpath).
 * Each is null until the subsystem that provides it is attached.
 */
export interface AllocHooks {
  /** wakeup_kswapd(): memory is low in this zone for this order. */
  wakeup_kswapd: ((m: Machine, zone: Zone, order: number, highest_zoneidx: number) => void) | null;
  /** __alloc_pages_direct_compact(): compact and retry the allocation. */
  direct_compact:
    | ((
        m: Machine,
        cpu: number,
        gfp: number,
        order: number,
        alloc_flags: number,
        highest_zoneidx: number,
        migratetype: number,
        prio: number,
      ) => DirectCompactResult)
    | null;
  /** __alloc_pages_direct_reclaim(): pages reclaimed (progress), 0 for none. */
  direct_reclaim: ((m: Machine, cpu: number, gfp: number, order: number) => number) | null;
  /** The OOM notifier chain (balloon deflate-on-OOM): pages freed. */
  oom_notify: ((m: Machine, cpu: number) => number) | null;
  /** The OOM killer: free memory by ending a task; whether it did. */
  oom_kill: ((m: Machine, cpu: number, order: number) => boolean) | null;
  /**
   * Not a kernel hook: an observer told each time the guest starts using
   * frames (an allocation returned 2^order of them with this gfp; gfp 0: a
   * migration copies data into one). The host model checks there that the
   * frames are not ones it discarded (host/host.ts). Null: no cost.
   */
  page_use: ((m: Machine, pfn: Pfn, order: number, gfp: number) => void) | null;
}

export class Machine {
  readonly mem: MemMap;
  readonly pgdat: PgData[];
  /** Every zone of every node, node by node in zone index order. */
  readonly zones: Zone[];
  readonly nr_cpus: number;
  readonly sysctl: Sysctl;
  /** vm_event_states summed over CPUs */
  readonly vm_events = new Float64Array(NR_VM_EVENT_ITEMS);
  readonly hooks: AllocHooks = {
    wakeup_kswapd: null,
    direct_compact: null,
    direct_reclaim: null,
    oom_notify: null,
    oom_kill: null,
    page_use: null,
  };
  readonly free_area_hooks: FreeAreaHooks = {
    page_reporting_notify_free: null,
    compaction_capture: null,
  };
  /** CONFIG_DEBUG_VM: whole-state checks after operations. */
  debug_vm: boolean;
  /** The whole-state check run after each operation when debug_vm is on. */
  verify: ((m: Machine) => void) | null = null;
  /** Total RAM the machine was configured with, in pages (MemTotal + reserved). */
  readonly ram_pages: number;
  /** Pages reserved at boot (memblock reservations, memmap, kernel image). */
  reserved_pages = 0;
  /** Populated zones, for the allocator's hot loops. */
  populated: Zone[] = [];
  /** Populated zones, largest first: page_zone()'s search order. */
  zone_lookup: Zone[] = [];
  /**
   * zonelists[highest_zoneidx]: the populated zones an allocation may use,
   * highest first (the node's ZONELIST_FALLBACK order on one node).
   */
  zonelists: Zone[][] = [];
  /**
   * enum rmqueue_mode for the __rmqueue() call in progress: a bulk refill
   * keeps it across its loop; a single allocation starts at RMQUEUE_NORMAL.
   * Scratch state of one allocator call, always under zone->lock.
   */
  rmqueue_mode = 0;
  /** alloc_flags_nofragment()'s ALLOC_NOFRAGMENT bit for each highest_zoneidx. */
  nofragment: number[] = [];

  constructor(args: {
    mem: MemMap;
    pgdat: PgData[];
    nr_cpus: number;
    sysctl: Sysctl;
    ram_pages: number;
    debug_vm: boolean;
  }) {
    this.mem = args.mem;
    this.pgdat = args.pgdat;
    this.zones = args.pgdat.flatMap((p) => p.node_zones);
    this.nr_cpus = args.nr_cpus;
    this.sysctl = args.sysctl;
    this.ram_pages = args.ram_pages;
    this.debug_vm = args.debug_vm;
  }

  /** page_zone(): the zone a pfn belongs to, or null for a hole. */
  page_zone(pfn: Pfn): Zone | null {
    // The zone of the last lookup first: consecutive operations mostly stay
    // in one zone (the kernel reads the zone from page->flags instead).
    const last = this.last_zone;
    if (
      last !== null &&
      pfn >= last.zone_start_pfn &&
      pfn < last.zone_start_pfn + last.spanned_pages
    )
      return last;
    const zones = this.zone_lookup;
    for (let i = 0; i < zones.length; i++) {
      const z = zones[i];
      if (pfn >= z.zone_start_pfn && pfn < z.zone_start_pfn + z.spanned_pages) {
        this.last_zone = z;
        return z;
      }
    }
    return null;
  }

  /** page_zone()'s one-entry cache. */
  private last_zone: Zone | null = null;

  zone(node_id: number, zone_idx: number): Zone {
    if (!(zone_idx >= 0 && zone_idx < MAX_NR_ZONES))
      throw new RangeError(`no zone index ${zone_idx}`);
    const p = this.pgdat[node_id];
    if (!p) throw new RangeError(`no node ${node_id}`);
    return p.node_zones[zone_idx];
  }

  /** The zone named like /proc does ("DMA32", "Normal"), on node 0. */
  zone_by_name(name: string): Zone {
    const z = this.pgdat[0].node_zones.find((zz) => zz.name.toLowerCase() === name.toLowerCase());
    if (!z)
      throw new RangeError(
        `no zone named '${name}' (zones: ${this.pgdat[0].node_zones.map((zz) => zz.name).join(", ")})`,
      );
    return z;
  }
}
