/**
 * kernel/debug_vm.ts: whole-state checks in the spirit of CONFIG_DEBUG_VM
 * and CONFIG_DEBUG_PAGEALLOC, run after every operation in tests and every N
 * steps in the simulator. Each failure is a KernelBug naming the pfn.
 *
 * What is checked, per populated zone:
 *  - every free list is intact (links, no cycles) and holds only PageBuddy
 *    head pages of its order, aligned, refcount 0, in the zone, with clean
 *    flags, on the list of their pageblock's migratetype;
 *  - nr_free[order] and NR_FREE_PAGES / NR_FREE_CMA_PAGES /
 *    NR_FREE_PAGES_BLOCKS / nr_free_highatomic equal what the lists hold;
 *  - pcp lists hold free (refcount 0, non-buddy) aligned blocks and
 *    pcp->count equals their pages;
 *  - every page is in exactly one state: in a free block, on a pcp list,
 *    in an allocated block (head refcount >= 1), reserved, or a hole; no
 *    PageBuddy page is off the free lists;
 *  - no two free buddies of the same order are left unmerged, unless their
 *    pageblocks' migratetypes may not merge.
 */

import { KernelBug } from "./bug.ts";
import { list_count_nodes } from "./list.ts";
import type { Machine } from "./machine.ts";
import {
  MAX_PAGE_ORDER,
  MIGRATE_CMA,
  MIGRATE_HIGHATOMIC,
  MIGRATE_ISOLATE,
  MIGRATE_TYPES,
  migratetype_is_mergeable,
  migratetype_names,
  NR_PAGE_ORDERS,
  NR_PCP_LISTS,
  type Zone,
} from "./mmzone.ts";
import {
  dump_page,
  get_pageblock_migratetype,
  PAGE_FLAGS_CHECK_AT_FREE,
  PAGE_ORDER_MASK,
  type Pfn,
  PG_head,
  PG_tail,
  PGTY_buddy,
  page_order,
} from "./page.ts";
import { pindex_to_order } from "./page_alloc/pcp.ts";
import { NR_FREE_CMA_PAGES, NR_FREE_PAGES, NR_FREE_PAGES_BLOCKS } from "./vmstat_items.ts";

const FREE = 1;
const PCP = 2;

function fail(m: Machine, zone: Zone, pfn: Pfn, what: string): never {
  throw new KernelBug(`debug_vm: zone ${zone.name}: ${what}\n  ${dump_page(m.mem, pfn)}`, pfn);
}

/** Run every check on every populated zone. */
export function verify_machine(m: Machine): void {
  for (const zone of m.populated) verify_zone(m, zone);
}

export function verify_zone(m: Machine, zone: Zone): void {
  const mem = m.mem;
  const base = zone.zone_start_pfn;
  const seen = new Uint8Array(zone.spanned_pages);
  const pageblock_nr_pages = 1 << mem.pageblock_order;
  let free_pages = 0;
  let free_cma = 0;
  let free_highatomic = 0;
  let free_blocks_pages = 0;

  for (let order = 0; order < NR_PAGE_ORDERS; order++) {
    let blocks = 0;
    for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
      const head = zone.free_list(order, mt);
      list_count_nodes(mem, head, zone.spanned_pages + 1);
      for (let pfn = mem.lru_next[head]; pfn !== head; pfn = mem.lru_next[pfn]) {
        blocks++;
        if (!zone.zone_spans_pfn(pfn))
          fail(
            m,
            zone,
            pfn,
            `free_list[${order}][${migratetype_names[mt]}] holds a page outside the zone`,
          );
        if (mem.page_type[pfn] !== PGTY_buddy)
          fail(m, zone, pfn, `free_list[${order}] entry is not PageBuddy`);
        if (mem.page_private[pfn] !== order)
          fail(m, zone, pfn, `free_list[${order}] entry has buddy_order ${mem.page_private[pfn]}`);
        if ((pfn & ((1 << order) - 1)) !== 0)
          fail(m, zone, pfn, `free block of order ${order} is misaligned`);
        const nr = 1 << order;
        const blocks_in = Math.max(1, nr / pageblock_nr_pages);
        for (let b = 0; b < blocks_in; b++) {
          const pb_mt = get_pageblock_migratetype(mem, pfn + b * pageblock_nr_pages);
          if (pb_mt !== mt) {
            fail(
              m,
              zone,
              pfn,
              `free block on the ${migratetype_names[mt]} list lies in a ${migratetype_names[pb_mt]} pageblock`,
            );
          }
        }
        for (let p = pfn; p < pfn + nr; p++) {
          if (p >= zone.zone_end_pfn)
            fail(m, zone, pfn, "free block runs past the end of the zone");
          if (seen[p - base]) fail(m, zone, p, "page is in two free blocks");
          seen[p - base] = FREE;
          if (mem._refcount[p] !== 0) fail(m, zone, p, "free page has a reference");
          if (
            mem.flags[p] &
            (PAGE_FLAGS_CHECK_AT_FREE | PAGE_ORDER_MASK | (1 << PG_head) | (1 << PG_tail))
          )
            fail(m, zone, p, "free page has flags set");
          if (mem._mapcount[p] !== -1) fail(m, zone, p, "free page is mapped");
          if (p !== pfn && mem.page_type[p] === PGTY_buddy)
            fail(m, zone, p, "PageBuddy inside a free block");
        }
        if (mt !== MIGRATE_ISOLATE) free_pages += nr;
        if (mt === MIGRATE_CMA) free_cma += nr;
        if (mt === MIGRATE_HIGHATOMIC) free_highatomic += nr;
        if (mt !== MIGRATE_ISOLATE && order >= mem.pageblock_order) free_blocks_pages += nr;
      }
    }
    if (blocks !== zone.nr_free[order]) {
      throw new KernelBug(
        `debug_vm: zone ${zone.name}: nr_free[${order}] = ${zone.nr_free[order]} but the lists hold ${blocks}`,
      );
    }
  }
  const counters: [string, number, number][] = [
    ["NR_FREE_PAGES", zone.vm_stat[NR_FREE_PAGES], free_pages],
    ["NR_FREE_CMA_PAGES", zone.vm_stat[NR_FREE_CMA_PAGES], free_cma],
    ["NR_FREE_PAGES_BLOCKS", zone.vm_stat[NR_FREE_PAGES_BLOCKS], free_blocks_pages],
    ["nr_free_highatomic", zone.nr_free_highatomic, free_highatomic],
  ];
  for (const [name, have, want] of counters) {
    if (have !== want)
      throw new KernelBug(
        `debug_vm: zone ${zone.name}: ${name} = ${have} but the free lists hold ${want}`,
      );
  }

  // pcp lists
  for (let cpu = 0; cpu < zone.per_cpu_pageset.length; cpu++) {
    const pcp = zone.per_cpu_pageset[cpu];
    let count = 0;
    for (let pindex = 0; pindex < NR_PCP_LISTS; pindex++) {
      const head = pcp.lists_base + pindex;
      const order = pindex_to_order(m, pindex);
      list_count_nodes(mem, head, zone.spanned_pages + 1);
      for (let pfn = mem.lru_next[head]; pfn !== head; pfn = mem.lru_next[pfn]) {
        if (!zone.zone_spans_pfn(pfn))
          fail(m, zone, pfn, `cpu ${cpu} pcp list holds a page of another zone`);
        if ((pfn & ((1 << order) - 1)) !== 0)
          fail(m, zone, pfn, `pcp block of order ${order} is misaligned`);
        for (let p = pfn; p < pfn + (1 << order); p++) {
          if (seen[p - base]) fail(m, zone, p, "page is both on a pcp list and elsewhere");
          seen[p - base] = PCP;
          if (mem._refcount[p] !== 0) fail(m, zone, p, "pcp page has a reference");
          if (mem.page_type[p] === PGTY_buddy) fail(m, zone, p, "pcp page is marked PageBuddy");
        }
        count += 1 << order;
      }
    }
    if (count !== pcp.count)
      throw new KernelBug(
        `debug_vm: zone ${zone.name}: cpu ${cpu} pcp->count = ${pcp.count} but its lists hold ${count}`,
      );
  }

  // Every other page: allocated (a head with a reference and its tails) or reserved.
  for (let pfn = base; pfn < zone.zone_end_pfn; ) {
    if (seen[pfn - base]) {
      pfn++;
      continue;
    }
    if (mem.page_type[pfn] === PGTY_buddy) fail(m, zone, pfn, "PageBuddy page is on no free list");
    if (mem._refcount[pfn] < 1)
      fail(m, zone, pfn, "page is neither free, on a pcp list, nor allocated (lost)");
    const order = page_order(mem, pfn);
    if (order > MAX_PAGE_ORDER || (pfn & ((1 << order) - 1)) !== 0)
      fail(m, zone, pfn, "allocated block has a bad order");
    const compound = (mem.flags[pfn] & (1 << PG_head)) !== 0;
    if (mem.flags[pfn] & (1 << PG_tail)) fail(m, zone, pfn, "tail page without a head before it");
    for (let p = pfn + 1; p < pfn + (1 << order); p++) {
      if (seen[p - base]) fail(m, zone, p, "page of an allocated block is also free");
      if (mem.page_type[p] === PGTY_buddy)
        fail(m, zone, p, "page of an allocated block is PageBuddy");
      if (compound && !(mem.flags[p] & (1 << PG_tail)))
        fail(m, zone, p, "compound page tail lacks PG_tail");
      if (!compound && mem.flags[p] & (1 << PG_tail))
        fail(m, zone, p, "PG_tail in a non-compound block");
    }
    pfn += 1 << order;
  }

  // No unmerged buddies.
  for (let order = 0; order < MAX_PAGE_ORDER; order++) {
    for (let mt = 0; mt < MIGRATE_TYPES; mt++) {
      const head = zone.free_list(order, mt);
      for (let pfn = mem.lru_next[head]; pfn !== head; pfn = mem.lru_next[pfn]) {
        const buddy = pfn ^ (1 << order);
        if (!zone.zone_spans_pfn(buddy)) continue;
        if (mem.page_type[buddy] !== PGTY_buddy || mem.page_private[buddy] !== order) continue;
        if (order >= mem.pageblock_order) {
          const bmt = get_pageblock_migratetype(mem, buddy);
          if (bmt !== mt && (!migratetype_is_mergeable(mt) || !migratetype_is_mergeable(bmt)))
            continue;
        }
        fail(m, zone, pfn, `free block and its buddy ${buddy} (order ${order}) were not merged`);
      }
    }
  }
}
