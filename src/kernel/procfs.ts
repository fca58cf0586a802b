/**
 * kernel/procfs.ts: the text of /proc/buddyinfo, /proc/pagetypeinfo,
 * /proc/zoneinfo, /proc/vmstat, /proc/meminfo (the lines pagesim models),
 * /proc/sys/vm/lowmem_reserve_ratio and debugfs extfrag/extfrag_index and
 * extfrag/unusable_index, formatted as mm/vmstat.c of v6.16 prints them, so
 * that scripts that parse those files work on pagesim's output.
 *
 * The fragmentation indexes are computed as __fragmentation_index() and
 * unusable_free_index() compute them (mm/vmstat.c), from the free block
 * counts per order.
 *
 * These functions only read state; they take no locks (the kernel takes
 * zone->lock for pagetypeinfo's list walk; pagesim runs them between steps).
 */

import type { Machine } from "./machine.ts";
import {
  MIGRATE_TYPES,
  migratetype_names,
  NR_PAGE_ORDERS,
  WMARK_HIGH,
  WMARK_LOW,
  WMARK_MIN,
  WMARK_PROMO,
  type Zone,
} from "./mmzone.ts";
import { get_pageblock_migratetype, PAGE_SHIFT } from "./page.ts";
import {
  NODE_ITEMS_IN_HPAGES,
  NR_FREE_PAGES,
  node_stat_names,
  numa_stat_names,
  vm_event_names,
  vm_stat_names,
  zone_stat_names,
} from "./vmstat_items.ts";

const pad = (s: string | number, w: number) => String(s).padStart(w);
const padr = (s: string | number, w: number) => String(s).padEnd(w);

/** /proc/buddyinfo: free blocks per order, "%6lu " each. */
export function proc_buddyinfo(m: Machine): string {
  return per_zone_order_lines(m, (zone, order) => `${pad(zone.nr_free[order], 6)} `);
}

/** Count free blocks on one free list, stopping at 100000 as the kernel does. */
function count_free_list(m: Machine, zone: Zone, order: number, mt: number): [number, boolean] {
  const head = zone.free_list(order, mt);
  const mem = m.mem;
  let n = 0;
  for (let p = mem.lru_next[head]; p !== head; p = mem.lru_next[p]) {
    if (++n >= 100000) return [100000, true];
  }
  return [n, false];
}

/**
 * Pageblocks of each migratetype in a zone, counted as
 * pagetypeinfo_showblockcount_print() does: stepping a pageblock at a time
 * from the zone's first pfn (so a zone that starts mid-block counts the
 * block it starts in).
 */
export function pageblock_counts(m: Machine, zone: Zone): number[] {
  const mem = m.mem;
  const count = new Array<number>(MIGRATE_TYPES).fill(0);
  const step = 1 << mem.pageblock_order;
  for (let pfn = zone.zone_start_pfn; pfn < zone.zone_end_pfn; pfn += step) {
    count[get_pageblock_migratetype(mem, pfn)]++;
  }
  return count;
}

/** /proc/pagetypeinfo */
export function proc_pagetypeinfo(m: Machine): string {
  let out = "";
  for (const pgdat of m.pgdat) {
    if (!pgdat.node_zones.some((z) => z.populated_zone())) continue;
    out += `Page block order: ${m.mem.pageblock_order}\n`;
    out += `Pages per block:  ${1 << m.mem.pageblock_order}\n\n`;
    out += `${padr("Free pages count per migrate type at order", 43)} `;
    for (let order = 0; order < NR_PAGE_ORDERS; order++) out += `${pad(order, 6)} `;
    out += "\n";
    for (const zone of pgdat.node_zones) {
      if (!zone.populated_zone()) continue;
      for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
        out += `Node ${pad(pgdat.node_id, 4)}, zone ${pad(zone.name, 8)}, type ${pad(migratetype_names[mt], 12)} `;
        for (let order = 0; order < NR_PAGE_ORDERS; order++) {
          const [n, overflow] = count_free_list(m, zone, order, mt);
          out += `${overflow ? ">" : ""}${pad(n, 6)} `;
        }
        out += "\n";
      }
    }
    out += `\n${padr("Number of blocks type ", 23)}`;
    for (let mt = 0; mt < MIGRATE_TYPES; mt++) out += `${pad(migratetype_names[mt], 12)} `;
    out += "\n";
    for (const zone of pgdat.node_zones) {
      if (!zone.populated_zone()) continue;
      out += `Node ${pgdat.node_id}, zone ${pad(zone.name, 8)} `;
      for (const c of pageblock_counts(m, zone)) out += `${pad(c, 12)} `;
      out += "\n";
    }
  }
  return out;
}

function fls(x: number): number {
  return x === 0 ? 0 : 32 - Math.clz32(x);
}

/** calculate_normal_threshold(): the per-cpu vmstat drift threshold. */
export function calculate_normal_threshold(m: Machine, zone: Zone): number {
  const mem = Math.floor(zone.managed_pages / (1 << (27 - PAGE_SHIFT)));
  return Math.min(125, 2 * fls(m.nr_cpus) * (1 + fls(mem)));
}

function node_stat_value(m: Machine, node_id: number, i: number): number {
  let v = Math.max(0, m.pgdat[node_id].vm_stat[i]);
  if (NODE_ITEMS_IN_HPAGES.includes(node_stat_names[i]))
    v = Math.floor(v / (1 << m.mem.pageblock_order));
  return v;
}

/** /proc/zoneinfo */
export function proc_zoneinfo(m: Machine): string {
  let out = "";
  for (const pgdat of m.pgdat) {
    const first_populated = pgdat.node_zones.find((z) => z.populated_zone());
    for (const zone of pgdat.node_zones) {
      out += `Node ${pgdat.node_id}, zone ${pad(zone.name, 8)}`;
      if (zone === first_populated) {
        out += "\n  per-node stats";
        for (let i = 0; i < node_stat_names.length; i++) {
          out += `\n      ${padr(node_stat_names[i], 12)} ${node_stat_value(m, pgdat.node_id, i)}`;
        }
      }
      out += `\n  pages free     ${Math.max(0, zone.vm_stat[NR_FREE_PAGES])}`;
      out += `\n        boost    ${zone.watermark_boost}`;
      out += `\n        min      ${zone.wmark_pages(WMARK_MIN)}`;
      out += `\n        low      ${zone.wmark_pages(WMARK_LOW)}`;
      out += `\n        high     ${zone.wmark_pages(WMARK_HIGH)}`;
      out += `\n        promo    ${zone.wmark_pages(WMARK_PROMO)}`;
      out += `\n        spanned  ${zone.spanned_pages}`;
      out += `\n        present  ${zone.present_pages}`;
      out += `\n        managed  ${zone.managed_pages}`;
      out += `\n        cma      ${zone.cma_pages}`;
      out += `\n        protection: (${Array.from(zone.lowmem_reserve).join(", ")})`;
      if (!zone.populated_zone()) {
        out += "\n";
        continue;
      }
      for (let i = 0; i < zone_stat_names.length; i++) {
        out += `\n      ${padr(zone_stat_names[i], 12)} ${Math.max(0, zone.vm_stat[i])}`;
      }
      for (let i = 0; i < numa_stat_names.length; i++) {
        out += `\n      ${padr(numa_stat_names[i], 12)} ${zone.vm_numa_event[i]}`;
      }
      out += "\n  pagesets";
      for (let cpu = 0; cpu < zone.per_cpu_pageset.length; cpu++) {
        const pcp = zone.per_cpu_pageset[cpu];
        out += `\n    cpu: ${cpu}`;
        out += `\n              count:    ${pcp.count}`;
        out += `\n              high:     ${pcp.high}`;
        out += `\n              batch:    ${pcp.batch}`;
        out += `\n              high_min: ${pcp.high_min}`;
        out += `\n              high_max: ${pcp.high_max}`;
        out += `\n  vm stats threshold: ${calculate_normal_threshold(m, zone)}`;
      }
      out += "\n  node_unreclaimable:  0";
      out += `\n  start_pfn:           ${zone.zone_start_pfn}`;
      out += "\n";
    }
  }
  return out;
}

/** The /proc/vmstat values, by name, in the kernel's order. */
export function vmstat_values(m: Machine): [string, number][] {
  const rows: [string, number][] = [];
  for (let i = 0; i < zone_stat_names.length; i++) {
    let v = 0;
    for (const z of m.zones) v += z.vm_stat[i];
    rows.push([zone_stat_names[i], Math.max(0, v)]);
  }
  for (let i = 0; i < numa_stat_names.length; i++) {
    let v = 0;
    for (const z of m.zones) v += z.vm_numa_event[i];
    rows.push([numa_stat_names[i], v]);
  }
  for (let i = 0; i < node_stat_names.length; i++) {
    let v = 0;
    for (const p of m.pgdat) v += node_stat_value(m, p.node_id, i);
    rows.push([node_stat_names[i], v]);
  }
  const memmap_pages = Math.ceil((m.ram_pages * 64) / (1 << PAGE_SHIFT));
  const vm_stat_values = [0, 0, 0, memmap_pages];
  for (let i = 0; i < vm_stat_names.length; i++) rows.push([vm_stat_names[i], vm_stat_values[i]]);
  for (let i = 0; i < vm_event_names.length; i++) rows.push([vm_event_names[i], m.vm_events[i]]);
  return rows;
}

/** /proc/vmstat */
export function proc_vmstat(m: Machine): string {
  let out = "";
  for (const [name, v] of vmstat_values(m)) out += `${name} ${v}\n`;
  return `${out}nr_unstable 0\n`;
}

/** /proc/sys/vm/lowmem_reserve_ratio */
export function proc_lowmem_reserve_ratio(m: Machine): string {
  return `${m.sysctl.lowmem_reserve_ratio.join("\t")}\n`;
}

/** struct contig_page_info, from fill_contig_page_info(). */
export interface ContigPageInfo {
  free_pages: number;
  free_blocks_total: number;
  free_blocks_suitable: number;
}

/** fill_contig_page_info(): free memory of a zone as seen by a request of `order`. */
export function fill_contig_page_info(zone: Zone, order: number): ContigPageInfo {
  const info = { free_pages: 0, free_blocks_total: 0, free_blocks_suitable: 0 };
  for (let o = 0; o < NR_PAGE_ORDERS; o++) {
    const blocks = zone.nr_free[o];
    info.free_blocks_total += blocks;
    info.free_pages += blocks * 2 ** o;
    if (o >= order) info.free_blocks_suitable += blocks * 2 ** (o - order);
  }
  return info;
}

/**
 * __fragmentation_index(): in thousandths, how far a failure to allocate
 * `order` would be due to fragmentation (towards 1000) rather than lack of
 * memory (towards 0); -1000 when the allocation would succeed.
 */
export function __fragmentation_index(order: number, info: ContigPageInfo): number {
  const requested = 2 ** order;
  if (order >= NR_PAGE_ORDERS) return 0;
  if (!info.free_blocks_total) return 0;
  if (info.free_blocks_suitable) return -1000;
  return (
    1000 -
    Math.floor((1000 + Math.floor((info.free_pages * 1000) / requested)) / info.free_blocks_total)
  );
}

/** fragmentation_index() of a zone for an order. */
export function fragmentation_index(zone: Zone, order: number): number {
  return __fragmentation_index(order, fill_contig_page_info(zone, order));
}

/** unusable_free_index(): thousandths of free memory in blocks smaller than 2^order. */
export function unusable_free_index(order: number, info: ContigPageInfo): number {
  if (info.free_pages === 0) return 1000;
  return Math.floor(
    ((info.free_pages - info.free_blocks_suitable * 2 ** order) * 1000) / info.free_pages,
  );
}

function c_int_div_mod(v: number): [number, number] {
  // C's int division truncates toward zero; `| 0` also turns -0 into 0.
  return [Math.trunc(v / 1000) | 0, (v % 1000) | 0];
}

function fmt_03d(v: number): string {
  // printf %03d: zero padded to 3 characters, the sign counting as one.
  return v < 0 ? `-${String(-v).padStart(2, "0")}` : String(v).padStart(3, "0");
}

/**
 * The walk shared by buddyinfo and the debugfs indexes (walk_zones_in_node
 * with frag_show_print and friends): a line per populated zone,
 * "Node %d, zone %8s " and one cell per order.
 */
function per_zone_order_lines(m: Machine, cell: (zone: Zone, order: number) => string): string {
  let out = "";
  for (const pgdat of m.pgdat) {
    for (const zone of pgdat.node_zones) {
      if (!zone.populated_zone()) continue;
      out += `Node ${pgdat.node_id}, zone ${pad(zone.name, 8)} `;
      for (let order = 0; order < NR_PAGE_ORDERS; order++) out += cell(zone, order);
      out += "\n";
    }
  }
  return out;
}

/** debugfs extfrag/extfrag_index: printf("%2d.%03d ", index / 1000, index % 1000). */
export function debugfs_extfrag_index(m: Machine): string {
  return per_zone_order_lines(m, (zone, order) => {
    const [q, r] = c_int_div_mod(fragmentation_index(zone, order));
    return `${pad(q, 2)}.${fmt_03d(r)} `;
  });
}

/** debugfs extfrag/unusable_index: printf("%d.%03d ", ...). */
export function debugfs_unusable_index(m: Machine): string {
  return per_zone_order_lines(m, (zone, order) => {
    const [q, r] = c_int_div_mod(unusable_free_index(order, fill_contig_page_info(zone, order)));
    return `${q}.${fmt_03d(r)} `;
  });
}
