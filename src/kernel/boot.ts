/**
 * kernel/boot.ts: bringing up a machine, as x86-64 Linux does between the
 * e820 map and the first allocation: the physical memory layout of a QEMU
 * guest (e820), memblock reservations, free_area_init (zones spanning pfn
 * ranges, every pageblock MIGRATE_MOVABLE), memblock_free_all (every free
 * range handed to the buddy allocator in MAX_PAGE_ORDER-aligned blocks, to
 * the tail), the per-cpu pagesets, and init_per_zone_wmark_min.
 *
 * Simplifications (README, Fidelity): one NUMA node; the boot-time
 * reservations are the first 1 MiB, the kernel image, the swiotlb bounce
 * buffer and the memory map itself (64 bytes per page, at the top of RAM);
 * other early allocations (page tables, per-cpu areas, ACPI) are left out.
 */

import { reset_cached_positions } from "./compaction.ts";
import { verify_machine } from "./debug_vm.ts";
import { default_sysctl, Machine, type Sysctl } from "./machine.ts";
import {
  MAX_NR_ZONES,
  MAX_PAGE_ORDER,
  MIGRATE_MOVABLE,
  MIGRATE_TYPES,
  NR_PAGE_ORDERS,
  NR_PCP_LISTS,
  PerCpuPages,
  PgData,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
  Zone,
  zone_names,
} from "./mmzone.ts";
import { MemMap, PAGE_SIZE, PG_reserved, set_pageblock_migratetype } from "./page.ts";
import { alloc_flags_nofragment } from "./page_alloc/alloc.ts";
import { FPI_TO_TAIL, free_one_page } from "./page_alloc/free_area.ts";
import { zone_set_pageset_high_and_batch } from "./page_alloc/pcp.ts";
import { init_per_zone_wmark_min } from "./page_alloc/watermark.ts";
import { NR_VM_NODE_STAT_ITEMS, NR_VM_ZONE_STAT_ITEMS } from "./vmstat_items.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * How physical memory is laid out.
 * - "q35": a QEMU q35 guest: below 4 GiB at most 2 GiB of RAM (2.75 GiB for
 *   guests smaller than that), the rest from 4 GiB up; the first 1 MiB,
 *   kernel image, swiotlb and memmap reserved.
 * - "pc": a QEMU i440fx guest: at most 3 GiB below 4 GiB.
 * - "flat": RAM from pfn 0 with no hole and no reservations, zones by
 *   address as on x86-64 (DMA below 16 MiB, DMA32 below 4 GiB, Normal above).
 * - "normal": one ZONE_NORMAL from pfn 0, no reservations (tests, checker).
 */
export type Layout = "q35" | "pc" | "flat" | "normal";

export interface MachineConfig {
  /** RAM size in bytes, a multiple of 4 KiB. */
  mem_bytes: number;
  nr_cpus?: number;
  layout?: Layout;
  /** movablecore=: bytes at the top of RAM given to ZONE_MOVABLE. */
  movable_bytes?: number;
  /** Kernel text, data and bss kept after boot. */
  kernel_image_bytes?: number;
  /** log2 of pages per pageblock (9 on x86-64). */
  pageblock_order?: number;
  sysctl?: Partial<Sysctl>;
  /**
   * CONFIG_DEBUG_VM: cheap page checks on allocation, and verify_machine()
   * (debug_vm.ts) after every allocation and free. Slow on big machines.
   */
  debug_vm?: boolean;
  /** Keep a content tag per frame (see page.ts). */
  track_content?: boolean;
  /** List heads to keep in reserve for later subsystems (LRU, balloons). */
  extra_list_heads?: number;
}

export const MEM_BYTES_MIN = 16 * PAGE_SIZE;
export const MEM_BYTES_MAX = 2 * 1024 * GiB;

/** A contiguous range of RAM, in pfns [start, end). */
interface PfnRange {
  start: number;
  end: number;
}

export class MachineConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MachineConfigError";
  }
}

function check_config(cfg: MachineConfig): void {
  const { mem_bytes } = cfg;
  if (!Number.isSafeInteger(mem_bytes) || mem_bytes < MEM_BYTES_MIN || mem_bytes > MEM_BYTES_MAX) {
    throw new MachineConfigError(
      `machine.mem_bytes: expected a size from ${MEM_BYTES_MIN} bytes (16 pages) to 2 TiB, got ${mem_bytes}`,
    );
  }
  if (mem_bytes % PAGE_SIZE !== 0) {
    throw new MachineConfigError(
      `machine.mem_bytes: ${mem_bytes} is not a multiple of the 4 KiB page size`,
    );
  }
  const cpus = cfg.nr_cpus ?? 2;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 1024) {
    throw new MachineConfigError(
      `machine.nr_cpus: expected an integer from 1 to 1024, got ${cfg.nr_cpus}`,
    );
  }
  const pbo = cfg.pageblock_order ?? 9;
  if (!Number.isInteger(pbo) || pbo < 1 || pbo > MAX_PAGE_ORDER) {
    throw new MachineConfigError(
      `machine.pageblock_order: expected 1..${MAX_PAGE_ORDER}, got ${cfg.pageblock_order}`,
    );
  }
  const movable = cfg.movable_bytes ?? 0;
  if (
    !Number.isSafeInteger(movable) ||
    movable < 0 ||
    movable % PAGE_SIZE !== 0 ||
    movable >= mem_bytes
  ) {
    throw new MachineConfigError(
      `machine.movable_bytes: expected a multiple of 4 KiB below the memory size, got ${cfg.movable_bytes}`,
    );
  }
  const layout = cfg.layout ?? "q35";
  if (!["q35", "pc", "flat", "normal"].includes(layout)) {
    throw new MachineConfigError(
      `machine.layout: expected q35, pc, flat or normal, got '${layout}'`,
    );
  }
}

/** e820: the RAM ranges of the guest, in pfns. */
function e820_ram(layout: Layout, mem_bytes: number): PfnRange[] {
  const pages = mem_bytes / PAGE_SIZE;
  if (layout === "flat" || layout === "normal") return [{ start: 0, end: pages }];
  let lowmem: number;
  if (layout === "q35") lowmem = mem_bytes >= 0xb000_0000 ? 0x8000_0000 : 0xb000_0000;
  else lowmem = mem_bytes >= 0xe000_0000 ? 0xc000_0000 : 0xe000_0000;
  const below = Math.min(mem_bytes, lowmem) / PAGE_SIZE;
  // Conventional memory ends at 639 KiB; 640 KiB..1 MiB is the legacy hole.
  const ranges: PfnRange[] = [{ start: 0, end: 0x9f }];
  if (below > 0x100) ranges.push({ start: 0x100, end: below });
  if (pages > below)
    ranges.push({ start: (4 * GiB) / PAGE_SIZE, end: (4 * GiB) / PAGE_SIZE + pages - below });
  return ranges;
}

/** Zone boundaries (pfns) on x86-64: MAX_DMA_PFN and MAX_DMA32_PFN. */
const MAX_DMA_PFN = (16 * MiB) / PAGE_SIZE;
const MAX_DMA32_PFN = (4 * GiB) / PAGE_SIZE;

function intersect_pages(ranges: PfnRange[], start: number, end: number): number {
  let n = 0;
  for (const r of ranges) n += Math.max(0, Math.min(r.end, end) - Math.max(r.start, start));
  return n;
}

/**
 * boot(): build a machine from its configuration. Throws MachineConfigError
 * naming the field for a bad configuration, before allocating anything big.
 */
export function boot(cfg: MachineConfig): Machine {
  check_config(cfg);
  const layout = cfg.layout ?? "q35";
  const nr_cpus = cfg.nr_cpus ?? 2;
  const pageblock_order = cfg.pageblock_order ?? 9;
  const ram = e820_ram(layout, cfg.mem_bytes);
  const max_pfn = ram[ram.length - 1].end;
  // The kernel skips pfn 0 on x86 (the BIOS data area is never RAM for it).
  const min_pfn = layout === "q35" || layout === "pc" ? 1 : 0;

  // Zone spans, clipped to RAM; ZONE_MOVABLE takes movable_bytes off the top.
  const movable_pages = (cfg.movable_bytes ?? 0) / PAGE_SIZE;
  const spans: [number, number][] = [];
  for (let i = 0; i < MAX_NR_ZONES; i++) spans.push([0, 0]);
  const clip = (a: number, b: number): [number, number] => {
    const s = Math.max(a, min_pfn);
    const e = Math.min(b, max_pfn);
    return e > s ? [s, e] : [0, 0];
  };
  if (layout === "normal") {
    spans[ZONE_NORMAL] = clip(0, max_pfn);
  } else {
    spans[ZONE_DMA] = clip(0, MAX_DMA_PFN);
    spans[ZONE_DMA32] = clip(MAX_DMA_PFN, MAX_DMA32_PFN);
    spans[ZONE_NORMAL] = clip(MAX_DMA32_PFN, max_pfn);
  }
  if (movable_pages > 0) {
    // movablecore: the top of the highest zone becomes ZONE_MOVABLE.
    let movable_start = max_pfn;
    let need = movable_pages;
    for (let i = ram.length - 1; i >= 0 && need > 0; i--) {
      const take = Math.min(need, ram[i].end - ram[i].start);
      movable_start = ram[i].end - take;
      need -= take;
    }
    spans[ZONE_MOVABLE] = [movable_start, max_pfn];
    for (const zi of [ZONE_DMA, ZONE_DMA32, ZONE_NORMAL]) {
      const [s, e] = spans[zi];
      if (e > movable_start) spans[zi] = s < movable_start ? [s, movable_start] : [0, 0];
    }
  }

  const mem = new MemMap({
    nr_pages: max_pfn,
    list_heads_max:
      MAX_NR_ZONES * (NR_PAGE_ORDERS * MIGRATE_TYPES + nr_cpus * NR_PCP_LISTS) +
      (cfg.extra_list_heads ?? 1024),
    pageblock_order,
    track_content: cfg.track_content ?? false,
  });
  const zones: Zone[] = [];
  for (let i = 0; i < MAX_NR_ZONES; i++) {
    const z = new Zone(zone_names[i], i, 0, NR_VM_ZONE_STAT_ITEMS);
    const [s, e] = spans[i];
    z.zone_start_pfn = s;
    z.spanned_pages = e - s;
    z.present_pages = intersect_pages(ram, s, e);
    z.free_list_base = mem.alloc_list_head();
    for (let k = 1; k < NR_PAGE_ORDERS * MIGRATE_TYPES; k++) mem.alloc_list_head();
    for (let cpu = 0; cpu < nr_cpus; cpu++) {
      const pcp = new PerCpuPages(mem.alloc_list_head());
      for (let k = 1; k < NR_PCP_LISTS; k++) mem.alloc_list_head();
      z.per_cpu_pageset.push(pcp);
    }
    zones.push(z);
  }
  const pgdat = new PgData(0, zones, NR_VM_NODE_STAT_ITEMS);
  pgdat.node_start_pfn = min_pfn;
  pgdat.node_spanned_pages = max_pfn - min_pfn;
  pgdat.node_present_pages = zones.reduce((n, z) => n + z.present_pages, 0);

  const sysctl = { ...default_sysctl(), ...(cfg.sysctl ?? {}) };
  if (cfg.sysctl?.min_free_kbytes !== undefined)
    sysctl.user_min_free_kbytes = cfg.sysctl.min_free_kbytes;
  const m = new Machine({
    mem,
    pgdat: [pgdat],
    nr_cpus,
    sysctl,
    ram_pages: cfg.mem_bytes / PAGE_SIZE,
    debug_vm: cfg.debug_vm ?? false,
  });
  m.populated = zones.filter((z) => z.populated_zone());
  m.zone_lookup = [...m.populated].sort((a, b) => b.spanned_pages - a.spanned_pages);
  for (let hz = 0; hz < MAX_NR_ZONES; hz++) {
    m.zonelists.push(m.populated.filter((z) => z.zone_idx <= hz).reverse());
    m.nofragment.push(alloc_flags_nofragment(m, m.zonelists[hz][0], 0));
  }

  memmap_init(m);
  const reserved = memblock_reservations(layout, cfg, ram, max_pfn);
  memblock_free_all(m, ram, reserved, min_pfn);
  // build_all_zonelists(): too few pages to group by mobility (fewer than a
  // pageblock per migratetype) and the kernel turns grouping off.
  let vm_total_pages = 0;
  for (const zone of m.zones) vm_total_pages += zone.managed_pages;
  if (
    vm_total_pages < (1 << pageblock_order) * MIGRATE_TYPES &&
    cfg.sysctl?.page_group_by_mobility_disabled === undefined
  ) {
    m.sysctl.page_group_by_mobility_disabled = true;
  }
  // The compaction scanners start from the zone edges.
  for (const zone of m.populated) reset_cached_positions(m, zone);
  // page_alloc_init_late(): watermarks and pagesets once managed pages are known.
  init_per_zone_wmark_min(m);
  for (const zone of m.zones) zone_set_pageset_high_and_batch(m, zone);
  // CONFIG_DEBUG_VM: check the booted state, then the whole state after
  // every allocation and free.
  if (m.debug_vm) {
    verify_machine(m);
    m.verify = verify_machine;
  }
  return m;
}

/**
 * memmap_init(): every pfn starts reserved with one reference (as struct
 * pages are initialised); holes stay that way. Every pageblock is
 * MIGRATE_MOVABLE.
 */
function memmap_init(m: Machine): void {
  const mem = m.mem;
  mem.flags.fill(1 << PG_reserved);
  mem._refcount.fill(1);
  for (let pb = 0; pb < mem.pageblock_flags.length; pb++) {
    set_pageblock_migratetype(mem, pb << mem.pageblock_order, MIGRATE_MOVABLE);
  }
}

/** x86-64 SECTION_SIZE_BITS is 27: 128 MiB sections. */
const PAGES_PER_SECTION = (128 * MiB) / PAGE_SIZE;

/** Memory sections that hold any RAM. */
function memmap_sections(ram: PfnRange[]): number {
  const sections = new Set<number>();
  for (const r of ram) {
    for (let s = Math.floor(r.start / PAGES_PER_SECTION); s * PAGES_PER_SECTION < r.end; s++)
      sections.add(s);
  }
  return sections.size;
}

/** The boot-time memblock reservations that stay reserved, as pfn ranges. */
function memblock_reservations(
  layout: Layout,
  cfg: MachineConfig,
  ram: PfnRange[],
  max_pfn: number,
): PfnRange[] {
  if (layout === "flat" || layout === "normal") return [];
  const res: PfnRange[] = [];
  // x86 keeps the first 1 MiB reserved (real-mode trampoline, BIOS areas).
  res.push({ start: 0, end: 0x100 });
  // The kernel image, loaded at CONFIG_PHYSICAL_START (16 MiB).
  const kernel_pages = Math.ceil((cfg.kernel_image_bytes ?? 40 * MiB) / PAGE_SIZE);
  res.push({ start: MAX_DMA_PFN, end: MAX_DMA_PFN + kernel_pages });
  // swiotlb: 64 MiB of bounce buffers below 4 GiB when RAM reaches above it.
  if (max_pfn > MAX_DMA32_PFN) {
    const low_end = ram
      .filter((r) => r.end <= MAX_DMA32_PFN)
      .reduce((e, r) => Math.max(e, r.end), 0);
    const sw = (64 * MiB) / PAGE_SIZE;
    res.push({ start: low_end - sw, end: low_end });
  }
  // The memory map: 64 bytes of struct page for every page of each 128 MiB
  // memory section that holds RAM (SPARSEMEM_VMEMMAP: none for the hole
  // below 4 GiB), allocated top-down.
  let memmap_pages = memmap_sections(ram) * ((PAGES_PER_SECTION * 64) / PAGE_SIZE);
  for (let i = ram.length - 1; i >= 0 && memmap_pages > 0; i--) {
    const take = Math.min(memmap_pages, ram[i].end - ram[i].start);
    res.push({ start: ram[i].end - take, end: ram[i].end });
    memmap_pages -= take;
  }
  return res;
}

/**
 * memblock_free_all(): hand every RAM page that is not reserved to the buddy
 * allocator (__free_pages_core), in the largest naturally aligned blocks that
 * fit, each placed at the tail of its free list. managed_pages counts them.
 */
function memblock_free_all(
  m: Machine,
  ram: PfnRange[],
  reserved: PfnRange[],
  min_pfn: number,
): void {
  const mem = m.mem;
  // Free ranges = RAM minus reservations, computed on sorted boundaries.
  const free: PfnRange[] = [];
  for (const r of ram) {
    let pieces: PfnRange[] = [{ start: Math.max(r.start, min_pfn), end: r.end }];
    for (const x of reserved) {
      const next: PfnRange[] = [];
      for (const p of pieces) {
        if (x.end <= p.start || x.start >= p.end) {
          next.push(p);
          continue;
        }
        if (x.start > p.start) next.push({ start: p.start, end: x.start });
        if (x.end < p.end) next.push({ start: x.end, end: p.end });
      }
      pieces = next;
    }
    for (const p of pieces) if (p.end > p.start) free.push(p);
  }
  let reserved_pages = 0;
  for (const zone of m.zones) reserved_pages += zone.present_pages;
  for (const range of free) {
    for (const zone of m.populated) {
      const s = Math.max(range.start, zone.zone_start_pfn);
      const e = Math.min(range.end, zone.zone_end_pfn);
      if (e <= s) continue;
      // Clear the reserved state of the pages becoming free.
      mem.flags.fill(0, s, e);
      mem._refcount.fill(0, s, e);
      let pfn = s;
      while (pfn < e) {
        let order = MAX_PAGE_ORDER;
        while (order > 0 && ((pfn & ((1 << order) - 1)) !== 0 || pfn + (1 << order) > e)) order--;
        free_one_page(mem, zone, pfn, order, FPI_TO_TAIL, null);
        zone.managed_pages += 1 << order;
        reserved_pages -= 1 << order;
        pfn += 1 << order;
      }
    }
  }
  m.reserved_pages = reserved_pages;
}
