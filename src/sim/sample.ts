/**
 * sim/sample.ts: what the simulator records about a running machine: a
 * sample of metrics (free blocks per order, the /proc/vmstat counters a
 * report charts), the /proc files as text, and a picture of physical memory
 * with one cell per pageblock, coloured by what the pageblock holds.
 *
 * Memory map cells (one character each):
 *   f free (every page free, on the buddy or pcp lists)
 *   a anonymous (process memory, THPs included)   c page cache (file)
 *   u unmovable or reclaimable kernel memory: any such page in the block
 *     (one is enough to keep the block from becoming a free 2 MiB block)
 *   b balloon (PageOffline/balloon pages, or movable_ops pages)
 *   i isolated (a page isolated for migration, or a MIGRATE_ISOLATE block)
 *   x reserved at boot   h no RAM (a hole between zones)
 * A second string gives, per cell, the free share in tenths ('0'..'9', '9'
 * also meaning all free), so a picture can shade partly free blocks.
 *
 * Reads the memory map without locks, between steps: the simulator samples
 * from its own thread, so nothing changes during a read.
 */

import type { Machine } from "../kernel/machine.ts";
import { MIGRATE_ISOLATE, NR_PAGE_ORDERS } from "../kernel/mmzone.ts";
import {
  get_pageblock_migratetype,
  PAGE_MAPPING_ANON,
  PAGE_MAPPING_MOVABLE,
  PAGE_ORDER_MASK,
  PAGE_ORDER_SHIFT,
  PG_isolated,
  PG_reserved,
  PGTY_balloon,
  PGTY_buddy,
  PGTY_offline,
} from "../kernel/page.ts";
import { proc_buddyinfo, proc_pagetypeinfo, proc_vmstat, vmstat_values } from "../kernel/procfs.ts";

/** The /proc/vmstat counters each sample keeps (kernel names). */
export const SAMPLED_VMSTAT = [
  "nr_free_pages",
  "nr_anon_pages",
  "nr_file_pages",
  "nr_anon_transparent_hugepages",
  "thp_fault_alloc",
  "thp_fault_fallback",
  "compact_migrate_scanned",
  "compact_free_scanned",
  "compact_isolated",
  "compact_stall",
  "compact_fail",
  "compact_success",
  "pgmigrate_success",
  "pgmigrate_fail",
  "balloon_inflate",
  "balloon_deflate",
  "balloon_migrate",
] as const;

export interface Sample {
  /** Simulated time, ns. */
  t_ns: number;
  /** Free blocks per order, all zones (the columns of /proc/buddyinfo summed). */
  free_blocks: number[];
  /** Free 2 MiB (order 9) blocks, counting an order-10 block as two. */
  free_2mib_blocks: number;
  /** Pages the workload holds as kernel memory (unmovable or reclaimable). */
  kernel_pages: number;
  /** Balloon target (config num_pages) and balloon size (pages), all devices; 0 without. */
  balloon_target_pages: number;
  balloon_pages: number;
  /** Guest frames the host backs (RAM minus ballooned and reported frames). */
  host_backed_pages: number;
  vmstat: Record<(typeof SAMPLED_VMSTAT)[number], number>;
}

export function take_sample(m: Machine, t_ns: number, kernel_pages: number): Sample {
  const free_blocks = new Array<number>(NR_PAGE_ORDERS).fill(0);
  for (const z of m.populated)
    for (let o = 0; o < NR_PAGE_ORDERS; o++) free_blocks[o] += z.nr_free[o];
  let big = 0;
  for (let o = 9; o < NR_PAGE_ORDERS; o++) big += free_blocks[o] * 2 ** (o - 9);
  const all = new Map(vmstat_values(m));
  const vmstat = {} as Sample["vmstat"];
  for (const k of SAMPLED_VMSTAT) vmstat[k] = all.get(k) ?? 0;
  return {
    t_ns,
    free_blocks,
    free_2mib_blocks: big,
    kernel_pages,
    balloon_target_pages: 0,
    balloon_pages: 0,
    host_backed_pages: m.ram_pages,
    vmstat,
  };
}

/** /proc files as text at one moment, named as the kernel names them. */
export interface ProcSnapshot {
  t_ns: number;
  buddyinfo: string;
  pagetypeinfo: string;
  vmstat: string;
}

export function take_proc_snapshot(m: Machine, t_ns: number): ProcSnapshot {
  return {
    t_ns,
    buddyinfo: proc_buddyinfo(m),
    pagetypeinfo: proc_pagetypeinfo(m),
    vmstat: proc_vmstat(m),
  };
}

export interface MemoryMap {
  t_ns: number;
  label: string;
  /** Pages per cell: 1 on a small machine, else the pageblock size. */
  pages_per_cell: number;
  /** Cells per row of the picture: one pageblock per row when a cell is a page. */
  cells_per_row: number;
  /** One character per cell from pfn 0 (see the header). */
  cells: string;
  /** Free share of each cell in tenths, '0'..'9' ('9' for a free page). */
  free: string;
}

/** Memory picture cells (the letters of the header's legend). */
const CELL_ANON = 97; // a
const CELL_BALLOON = 98; // b
const CELL_FILE = 99; // c
const CELL_FREE = 102; // f
const CELL_HOLE = 104; // h
const CELL_ISOLATED = 105; // i
const CELL_KERNEL = 117; // u
const CELL_RESERVED = 120; // x

/**
 * What one page that is not a free buddy block holds, as a cell: both
 * pictures classify pages by this (the per-pageblock one counts them).
 */
function page_cell(mem: Machine["mem"], pfn: number): number {
  const flags = mem.flags[pfn];
  const pt = mem.page_type[pfn];
  if (flags & (1 << PG_reserved)) return CELL_RESERVED;
  if (flags & (1 << PG_isolated)) return CELL_ISOLATED;
  if (pt === PGTY_balloon || pt === PGTY_offline) return CELL_BALLOON;
  if (mem._refcount[pfn] === 0) return CELL_FREE;
  const mapping = mem.mapping[pfn];
  if (mapping === 0) return CELL_KERNEL;
  if (mapping & PAGE_MAPPING_MOVABLE) return CELL_BALLOON;
  return mapping & PAGE_MAPPING_ANON ? CELL_ANON : CELL_FILE;
}

/**
 * Machines up to this many pages (256 MiB) get one cell per page: they
 * have at most 128 pageblocks, too few for a per-pageblock picture to show
 * where in a block the pages are, and 65,536 cells (512 to a row, one
 * pageblock per row) still draw in a 1024 x 256 pixel canvas and take
 * 128 KiB of the report per picture. Larger machines get one cell per
 * pageblock.
 */
export const MEMORY_MAP_PER_PAGE_MAX = 65_536;

/**
 * The picture of physical memory. `thp_block[b]` marks pageblocks that hold
 * a THP (an order-9 compound page has no owner in the model's page state).
 */
export function memory_map(
  m: Machine,
  t_ns: number,
  label: string,
  thp_block: Uint8Array,
): MemoryMap {
  if (m.mem.nr_pages <= MEMORY_MAP_PER_PAGE_MAX) return memory_map_pages(m, t_ns, label, thp_block);
  const mem = m.mem;
  const order = mem.pageblock_order;
  const per = 1 << order;
  const nblocks = Math.ceil(mem.nr_pages / per);
  const cells = new Uint8Array(nblocks);
  const free = new Uint8Array(nblocks);
  const zones = m.populated;
  for (let b = 0; b < nblocks; b++) {
    const start = b * per;
    const end = Math.min(start + per, mem.nr_pages);
    free[b] = 48;
    if (!zones.some((z) => start < z.zone_end_pfn && end > z.zone_start_pfn)) {
      cells[b] = CELL_HOLE;
      continue;
    }
    if (thp_block[b]) {
      cells[b] = CELL_ANON;
      continue;
    }
    let nfree = 0;
    let anon = 0;
    let file = 0;
    let kern = 0;
    let balloon = 0;
    let isolated = get_pageblock_migratetype(mem, start) === MIGRATE_ISOLATE ? 1 : 0;
    let reserved = 0;
    let pfn = start;
    while (pfn < end) {
      const pt = mem.page_type[pfn];
      if (pt === PGTY_buddy) {
        const n = Math.min(2 ** mem.page_private[pfn], end - pfn); // buddy_order()
        nfree += n;
        pfn += n;
        continue;
      }
      switch (page_cell(mem, pfn)) {
        case CELL_RESERVED:
          reserved++;
          break;
        case CELL_ISOLATED:
          isolated++;
          break;
        case CELL_BALLOON:
          balloon++;
          break;
        case CELL_FREE:
          nfree++;
          break;
        case CELL_KERNEL:
          kern++;
          break;
        case CELL_ANON:
          anon++;
          break;
        default:
          file++;
      }
      pfn++;
    }
    const total = end - start;
    free[b] = 48 + Math.min(9, Math.floor((nfree * 10) / total));
    let c: number;
    if (isolated) c = CELL_ISOLATED;
    else if (reserved * 2 > total) c = CELL_RESERVED;
    else if (nfree === total) c = CELL_FREE;
    else if (kern > 0) c = CELL_KERNEL;
    else if (balloon > 0 && balloon >= anon && balloon >= file) c = CELL_BALLOON;
    else if (anon === 0 && file === 0) c = nfree > 0 ? CELL_FREE : CELL_RESERVED;
    else c = anon >= file ? CELL_ANON : CELL_FILE;
    cells[b] = c;
  }
  const dec = new TextDecoder();
  return {
    t_ns,
    label,
    pages_per_cell: per,
    cells_per_row: 128,
    cells: dec.decode(cells),
    free: dec.decode(free),
  };
}

/**
 * memory_map() with one cell per page, by the same rules as a pageblock's
 * (a free page on a per-CPU list is free, as in the pageblock picture).
 */
function memory_map_pages(
  m: Machine,
  t_ns: number,
  label: string,
  thp_block: Uint8Array,
): MemoryMap {
  const mem = m.mem;
  const order = mem.pageblock_order;
  const nr = mem.nr_pages;
  // Everything starts as a hole ('h', not free); the zones' pages overwrite it.
  const cells = new Uint8Array(nr).fill(CELL_HOLE);
  const free = new Uint8Array(nr).fill(48);
  for (const z of m.populated) {
    let pfn = z.zone_start_pfn;
    while (pfn < z.zone_end_pfn) {
      const pt = mem.page_type[pfn];
      if (pt === PGTY_buddy) {
        const n = Math.min(2 ** mem.page_private[pfn], z.zone_end_pfn - pfn); // buddy_order()
        cells.fill(CELL_FREE, pfn, pfn + n);
        free.fill(57, pfn, pfn + n);
        pfn += n;
        continue;
      }
      const flags = mem.flags[pfn];
      let c: number;
      if (thp_block[pfn >> order]) c = CELL_ANON;
      else {
        c = page_cell(mem, pfn);
        if (c !== CELL_RESERVED && get_pageblock_migratetype(mem, pfn) === MIGRATE_ISOLATE)
          c = CELL_ISOLATED;
      }
      // An allocated block's head records its order; the other pages of a
      // block that is not compound have no state of their own (refcount 0),
      // so the whole block takes the head's colour.
      const n =
        c !== CELL_FREE && mem._refcount[pfn] > 0
          ? Math.min(1 << ((flags & PAGE_ORDER_MASK) >>> PAGE_ORDER_SHIFT), z.zone_end_pfn - pfn)
          : 1;
      cells.fill(c, pfn, pfn + n);
      if (c === CELL_FREE) free[pfn] = 57;
      pfn += n;
    }
  }
  const dec = new TextDecoder();
  return {
    t_ns,
    label,
    pages_per_cell: 1,
    cells_per_row: 1 << order,
    cells: dec.decode(cells),
    free: dec.decode(free),
  };
}
