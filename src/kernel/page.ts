/**
 * kernel/page.ts: models struct page (include/linux/mm_types.h), the page
 * flags (include/linux/page-flags.h), page types, and the pageblock bitmap
 * (include/linux/pageblock-flags.h).
 *
 * There is no per-page object. The memory map is a structure of arrays indexed
 * by pfn, allocated once when the machine boots:
 *
 *   flags        Uint32  PG_* bits, and in bits 24..27 the order of the
 *                        block the page heads or belongs to (the kernel keeps
 *                        a folio's order in the flags of its first tail page)
 *   _refcount    Int32   page_ref_count()
 *   _mapcount    Int16   as in the kernel: -1 means unmapped
 *   page_type    Uint8   PGTY_* (buddy, offline, ...), 0 for none
 *   mapping      Uint32  owner handle << 2 | PAGE_MAPPING_* low bits
 *   index        Uint32  offset of the page in its owner (page->index)
 *   page_private Uint32  page->private: the buddy order of a free block, or the
 *                        balloon device that owns a balloon page
 *   lru_next/prev Int32  the page's list_head (page->lru, shared with
 *                        page->buddy_list and the balloon list)
 *
 * That is 31 bytes a page. List heads (free lists, pcp lists, LRU and balloon
 * lists) are extra slots after the last pfn in the two link arrays, so every
 * list is two Int32Array links as in the kernel.
 *
 * Deliberate departures: tail pages carry PG_tail and the compound order
 * instead of a compound_head pointer (head = pfn rounded down to the order);
 * the head of every allocated block records the order it was allocated with
 * (page_owner does this in the kernel), so a free with the wrong order is
 * caught;
 * PG_isolated and PG_movable_ops are bits of their own rather than aliases of
 * PG_reclaim and PG_uptodate, so that a page dump shows them unambiguously.
 *
 * An optional `content` array (4 more bytes a page, on for tests) models the
 * data in each frame, so that migration can be checked to carry it over.
 */

export type Pfn = number;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

// Page flag bit numbers, in the kernel's order where the kernel has the flag.
export const PG_locked = 0;
export const PG_writeback = 1;
export const PG_referenced = 2;
export const PG_uptodate = 3;
export const PG_dirty = 4;
export const PG_lru = 5;
export const PG_head = 6;
export const PG_waiters = 7;
export const PG_active = 8;
export const PG_workingset = 9;
export const PG_owner_priv_1 = 10;
export const PG_arch_1 = 11;
export const PG_reserved = 12;
export const PG_private = 13;
export const PG_private_2 = 14;
export const PG_reclaim = 15;
export const PG_swapbacked = 16;
export const PG_unevictable = 17;
export const PG_mlocked = 18;
export const PG_hwpoison = 19;
export const PG_isolated = 20;
export const PG_movable_ops = 21;
export const PG_tail = 22;
export const NR_PAGEFLAGS = 23;

/** Bits 24..27 of page->flags: the order of the block (see the header). */
export const PAGE_ORDER_SHIFT = 24;
export const PAGE_ORDER_MASK = 0xf << PAGE_ORDER_SHIFT;

export const PAGEFLAG_NAMES: readonly string[] = [
  "locked",
  "writeback",
  "referenced",
  "uptodate",
  "dirty",
  "lru",
  "head",
  "waiters",
  "active",
  "workingset",
  "owner_priv_1",
  "arch_1",
  "reserved",
  "private",
  "private_2",
  "reclaim",
  "swapbacked",
  "unevictable",
  "mlocked",
  "hwpoison",
  "isolated",
  "movable_ops",
  "tail",
];

/** Flags that must be clear when a page is freed (PAGE_FLAGS_CHECK_AT_FREE). */
export const PAGE_FLAGS_CHECK_AT_FREE =
  (1 << PG_lru) |
  (1 << PG_locked) |
  (1 << PG_private) |
  (1 << PG_private_2) |
  (1 << PG_writeback) |
  (1 << PG_reserved) |
  (1 << PG_active) |
  (1 << PG_unevictable) |
  (1 << PG_mlocked) |
  (1 << PG_isolated) |
  (1 << PG_movable_ops);

// Page types (page->page_type). Values follow the kernel's PGTY_* encoding.
export const PGTY_none = 0;
export const PGTY_buddy = 0xf0;
export const PGTY_offline = 0xf1;
export const PGTY_table = 0xf2;
export const PGTY_guard = 0xf3;
export const PGTY_hugetlb = 0xf4;
export const PGTY_slab = 0xf5;
export const PGTY_zsmalloc = 0xf6;
export const PGTY_unaccepted = 0xf7;
/** PageBalloon of the v3.18..v6.16 kernels, a page type of its own then. */
export const PGTY_balloon = 0xf8;

export function page_type_name(t: number): string {
  switch (t) {
    case PGTY_none:
      return "none";
    case PGTY_buddy:
      return "buddy";
    case PGTY_offline:
      return "offline";
    case PGTY_table:
      return "table";
    case PGTY_guard:
      return "guard";
    case PGTY_hugetlb:
      return "hugetlb";
    case PGTY_slab:
      return "slab";
    case PGTY_zsmalloc:
      return "zsmalloc";
    case PGTY_unaccepted:
      return "unaccepted";
    case PGTY_balloon:
      return "balloon";
    default:
      return `unknown(${t})`;
  }
}

// Low bits of page->mapping (the 2016 encoding; include/linux/page-flags.h).
export const PAGE_MAPPING_ANON = 0x1;
export const PAGE_MAPPING_MOVABLE = 0x2;
export const PAGE_MAPPING_KSM = PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE;
export const PAGE_MAPPING_FLAGS = PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE;

// Pageblock bits (include/linux/pageblock-flags.h): three bits of
// migratetype and the compaction skip hint, one byte per pageblock.
export const PB_migratetype_mask = 0x7;
export const PB_migrate_skip = 0x8;

export interface MemMapOptions {
  /** Number of pfns the memory map covers: pfn 0 .. nr_pages - 1. */
  nr_pages: number;
  /** Extra list_head slots after the last pfn. */
  list_heads_max: number;
  /** log2 of pages per pageblock. */
  pageblock_order: number;
  /** Keep a content tag per frame (tests, checker). */
  track_content: boolean;
}

/** The memory map: struct page for every pfn, as parallel typed arrays. */
export class MemMap {
  readonly nr_pages: number;
  readonly flags: Uint32Array;
  readonly _refcount: Int32Array;
  readonly _mapcount: Int16Array;
  readonly page_type: Uint8Array;
  readonly mapping: Uint32Array;
  readonly index: Uint32Array;
  readonly page_private: Uint32Array;
  readonly lru_next: Int32Array;
  readonly lru_prev: Int32Array;
  readonly pageblock_flags: Uint8Array;
  readonly pageblock_order: number;
  readonly content: Uint32Array | null;
  readonly list_heads_max: number;
  private list_heads_used = 0;

  constructor(opts: MemMapOptions) {
    const { nr_pages, list_heads_max, pageblock_order } = opts;
    if (!Number.isInteger(nr_pages) || nr_pages < 1 || nr_pages > 0x7fff_0000 - list_heads_max) {
      throw new RangeError(`memory map: nr_pages must be in [1, 2^31 - 2^16), got ${nr_pages}`);
    }
    this.nr_pages = nr_pages;
    this.list_heads_max = list_heads_max;
    this.pageblock_order = pageblock_order;
    this.flags = new Uint32Array(nr_pages);
    this._refcount = new Int32Array(nr_pages);
    this._mapcount = new Int16Array(nr_pages).fill(-1);
    this.page_type = new Uint8Array(nr_pages);
    this.mapping = new Uint32Array(nr_pages);
    this.index = new Uint32Array(nr_pages);
    this.page_private = new Uint32Array(nr_pages);
    this.lru_next = new Int32Array(nr_pages + list_heads_max);
    this.lru_prev = new Int32Array(nr_pages + list_heads_max);
    // A page that was never on a list has poisoned links (as after list_del),
    // not zeroes: zeroed links at pfn 0 look like a self-linked entry, so a
    // list_del of a never-added pfn 0 passed the CONFIG_DEBUG_LIST check and
    // list_entry_linked() called a never-linked page linked. The values are
    // list.ts's LIST_POISON1/2 (not imported: list.ts imports this module).
    this.lru_next.fill(-0x100, 0, nr_pages);
    this.lru_prev.fill(-0x122, 0, nr_pages);
    this.pageblock_flags = new Uint8Array(Math.ceil(nr_pages / (1 << pageblock_order)));
    this.content = opts.track_content ? new Uint32Array(nr_pages) : null;
  }

  /** Hand out a list_head slot (an index past the last pfn), initialised empty. */
  alloc_list_head(): number {
    if (this.list_heads_used >= this.list_heads_max) {
      throw new RangeError(`memory map: out of list_head slots (${this.list_heads_max})`);
    }
    const h = this.nr_pages + this.list_heads_used++;
    this.lru_next[h] = h;
    this.lru_prev[h] = h;
    return h;
  }

  is_list_head(slot: number): boolean {
    return slot >= this.nr_pages;
  }

  /** Bytes of state held for every simulated page, all arrays included. */
  bytes_per_page(): number {
    const arrays = [
      this.flags,
      this._refcount,
      this._mapcount,
      this.page_type,
      this.mapping,
      this.index,
      this.page_private,
      this.lru_next,
      this.lru_prev,
      this.pageblock_flags,
    ];
    let bytes = 0;
    for (const a of arrays) bytes += a.byteLength;
    if (this.content) bytes += this.content.byteLength;
    return bytes / this.nr_pages;
  }
}

// ---- flag accessors (PageFoo / SetPageFoo / ClearPageFoo) -------------------

export function PageFlag(mem: MemMap, pfn: Pfn, bit: number): boolean {
  return (mem.flags[pfn] & (1 << bit)) !== 0;
}
export function SetPageFlag(mem: MemMap, pfn: Pfn, bit: number): void {
  mem.flags[pfn] |= 1 << bit;
}
export function ClearPageFlag(mem: MemMap, pfn: Pfn, bit: number): void {
  mem.flags[pfn] &= ~(1 << bit);
}
/** TestSetPageFoo: sets the bit and says whether it was already set. */
export function TestSetPageFlag(mem: MemMap, pfn: Pfn, bit: number): boolean {
  const old = mem.flags[pfn];
  mem.flags[pfn] = old | (1 << bit);
  return (old & (1 << bit)) !== 0;
}
/** TestClearPageFoo: clears the bit and says whether it was set. */
export function TestClearPageFlag(mem: MemMap, pfn: Pfn, bit: number): boolean {
  const old = mem.flags[pfn];
  mem.flags[pfn] = old & ~(1 << bit);
  return (old & (1 << bit)) !== 0;
}

export const PageLocked = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_locked)) !== 0;
export const PageLRU = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_lru)) !== 0;
export const PageHead = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_head)) !== 0;
export const PageTail = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_tail)) !== 0;
export const PageCompound = (mem: MemMap, pfn: Pfn) =>
  (mem.flags[pfn] & ((1 << PG_head) | (1 << PG_tail))) !== 0;
export const PageReserved = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_reserved)) !== 0;
export const PagePrivate = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_private)) !== 0;
export const PageIsolated = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_isolated)) !== 0;
export const PageMovableOps = (mem: MemMap, pfn: Pfn) =>
  (mem.flags[pfn] & (1 << PG_movable_ops)) !== 0;
export const PageWriteback = (mem: MemMap, pfn: Pfn) =>
  (mem.flags[pfn] & (1 << PG_writeback)) !== 0;
export const PageMlocked = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_mlocked)) !== 0;
export const PageActive = (mem: MemMap, pfn: Pfn) => (mem.flags[pfn] & (1 << PG_active)) !== 0;

export const PageBuddy = (mem: MemMap, pfn: Pfn) => mem.page_type[pfn] === PGTY_buddy;
export const PageOffline = (mem: MemMap, pfn: Pfn) => mem.page_type[pfn] === PGTY_offline;
export const PageGuard = (mem: MemMap, pfn: Pfn) => mem.page_type[pfn] === PGTY_guard;

export function __SetPageType(mem: MemMap, pfn: Pfn, type: number): void {
  mem.page_type[pfn] = type;
}
export function __ClearPageType(mem: MemMap, pfn: Pfn): void {
  mem.page_type[pfn] = PGTY_none;
}

/** buddy_order(): a free block's order lives in page->private. */
export function buddy_order(mem: MemMap, pfn: Pfn): number {
  return mem.page_private[pfn];
}
export function set_buddy_order(mem: MemMap, pfn: Pfn, order: number): void {
  mem.page_private[pfn] = order;
  mem.page_type[pfn] = PGTY_buddy;
}

export function page_ref_count(mem: MemMap, pfn: Pfn): number {
  return mem._refcount[pfn];
}
export function page_mapcount(mem: MemMap, pfn: Pfn): number {
  return mem._mapcount[pfn] + 1;
}

/** The order recorded in page->flags (see the header). */
export function page_order(mem: MemMap, pfn: Pfn): number {
  return (mem.flags[pfn] & PAGE_ORDER_MASK) >>> PAGE_ORDER_SHIFT;
}

export function set_page_order(mem: MemMap, pfn: Pfn, order: number): void {
  mem.flags[pfn] = (mem.flags[pfn] & ~PAGE_ORDER_MASK) | (order << PAGE_ORDER_SHIFT);
}

/** compound_head(): the head pfn of the compound page that `pfn` belongs to. */
export function compound_head(mem: MemMap, pfn: Pfn): Pfn {
  if ((mem.flags[pfn] & (1 << PG_tail)) === 0) return pfn;
  return pfn & ~((1 << page_order(mem, pfn)) - 1);
}

export function compound_order(mem: MemMap, pfn: Pfn): number {
  return PageHead(mem, pfn) ? page_order(mem, pfn) : 0;
}

// ---- pageblocks ------------------------------------------------------------

export function pfn_to_pageblock(mem: MemMap, pfn: Pfn): number {
  return pfn >>> mem.pageblock_order;
}

/** get_pfnblock_migratetype() */
export function get_pageblock_migratetype(mem: MemMap, pfn: Pfn): number {
  return mem.pageblock_flags[pfn >>> mem.pageblock_order] & PB_migratetype_mask;
}

/** set_pageblock_migratetype() */
export function set_pageblock_migratetype(mem: MemMap, pfn: Pfn, migratetype: number): void {
  const pb = pfn >>> mem.pageblock_order;
  mem.pageblock_flags[pb] = (mem.pageblock_flags[pb] & ~PB_migratetype_mask) | migratetype;
}

export function get_pageblock_skip(mem: MemMap, pfn: Pfn): boolean {
  return (mem.pageblock_flags[pfn >>> mem.pageblock_order] & PB_migrate_skip) !== 0;
}

export function set_pageblock_skip(mem: MemMap, pfn: Pfn): void {
  mem.pageblock_flags[pfn >>> mem.pageblock_order] |= PB_migrate_skip;
}

export function clear_pageblock_skip(mem: MemMap, pfn: Pfn): void {
  mem.pageblock_flags[pfn >>> mem.pageblock_order] &= ~PB_migrate_skip;
}

// ---- dump_page -------------------------------------------------------------

export function page_flags_string(flags: number): string {
  const names: string[] = [];
  for (let bit = 0; bit < NR_PAGEFLAGS; bit++) {
    if (flags & (1 << bit)) names.push(PAGEFLAG_NAMES[bit]);
  }
  return names.join("|");
}

/** dump_page(): one line describing a page, for assertion reports. */
export function dump_page(mem: MemMap, pfn: Pfn): string {
  if (!(pfn >= 0 && pfn < mem.nr_pages)) return `page: pfn:${pfn} (outside the memory map)`;
  const flags = mem.flags[pfn];
  const type = mem.page_type[pfn];
  const parts = [
    `page: pfn:0x${pfn.toString(16)}`,
    `refcount:${mem._refcount[pfn]}`,
    `mapcount:${mem._mapcount[pfn] + 1}`,
    `mapping:0x${mem.mapping[pfn].toString(16)}`,
    `index:0x${mem.index[pfn].toString(16)}`,
    `private:0x${mem.page_private[pfn].toString(16)}`,
    `order:${page_order(mem, pfn)}`,
    `flags:0x${(flags & ~PAGE_ORDER_MASK).toString(16)}(${page_flags_string(flags)})`,
    `page_type:${page_type_name(type)}`,
    `pageblock_mt:${get_pageblock_migratetype(mem, pfn)}`,
  ];
  return parts.join(" ");
}
