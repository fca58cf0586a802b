/**
 * kernel/gfp.ts: models include/linux/gfp_types.h and include/linux/gfp.h:
 * the GFP flags, gfp_zone() and gfp_migratetype().
 *
 * Bit numbers follow the kernel's ___GFP_*_BIT order. Flags pagesim does not
 * act on (IO, FS, ZERO, ACCOUNT, ...) exist so that the composite masks read
 * as the kernel's do.
 */

import {
  MIGRATE_MOVABLE,
  MIGRATE_RECLAIMABLE,
  MIGRATE_UNMOVABLE,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
} from "./mmzone.ts";

export type Gfp = number;

export const __GFP_DMA = 1 << 0;
export const __GFP_HIGHMEM = 1 << 1;
export const __GFP_DMA32 = 1 << 2;
export const __GFP_MOVABLE = 1 << 3;
export const __GFP_RECLAIMABLE = 1 << 4;
export const __GFP_HIGH = 1 << 5;
export const __GFP_IO = 1 << 6;
export const __GFP_FS = 1 << 7;
export const __GFP_ZERO = 1 << 8;
export const __GFP_DIRECT_RECLAIM = 1 << 10;
export const __GFP_KSWAPD_RECLAIM = 1 << 11;
export const __GFP_WRITE = 1 << 12;
export const __GFP_NOWARN = 1 << 13;
export const __GFP_RETRY_MAYFAIL = 1 << 14;
export const __GFP_NOFAIL = 1 << 15;
export const __GFP_NORETRY = 1 << 16;
export const __GFP_MEMALLOC = 1 << 17;
export const __GFP_COMP = 1 << 18;
export const __GFP_NOMEMALLOC = 1 << 19;
export const __GFP_HARDWALL = 1 << 20;
export const __GFP_THISNODE = 1 << 21;
export const __GFP_ACCOUNT = 1 << 22;

export const __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
export const GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE;
export const GFP_MOVABLE_MASK = __GFP_RECLAIMABLE | __GFP_MOVABLE;

export const GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN;
export const GFP_NOIO = __GFP_RECLAIM;
export const GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
export const GFP_DMA = __GFP_DMA;
export const GFP_DMA32 = __GFP_DMA32;
export const GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM;
export const GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE;
export const GFP_TRANSHUGE_LIGHT =
  (GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM;
export const GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM;

/** Names for parsing and printing, in the kernel's spelling. */
export const GFP_NAMES: Readonly<Record<string, Gfp>> = {
  GFP_ATOMIC,
  GFP_KERNEL,
  GFP_NOWAIT,
  GFP_NOIO,
  GFP_USER,
  GFP_DMA,
  GFP_DMA32,
  GFP_HIGHUSER,
  GFP_HIGHUSER_MOVABLE,
  GFP_TRANSHUGE_LIGHT,
  GFP_TRANSHUGE,
  __GFP_DMA,
  __GFP_HIGHMEM,
  __GFP_DMA32,
  __GFP_MOVABLE,
  __GFP_RECLAIMABLE,
  __GFP_HIGH,
  __GFP_IO,
  __GFP_FS,
  __GFP_ZERO,
  __GFP_DIRECT_RECLAIM,
  __GFP_KSWAPD_RECLAIM,
  __GFP_RECLAIM,
  __GFP_WRITE,
  __GFP_NOWARN,
  __GFP_RETRY_MAYFAIL,
  __GFP_NOFAIL,
  __GFP_NORETRY,
  __GFP_MEMALLOC,
  __GFP_COMP,
  __GFP_NOMEMALLOC,
  __GFP_HARDWALL,
  __GFP_THISNODE,
  __GFP_ACCOUNT,
};

/**
 * gfp_zone(): the highest zone an allocation may use. On x86-64 there is no
 * ZONE_HIGHMEM, so __GFP_HIGHMEM alone means ZONE_NORMAL; __GFP_HIGHMEM with
 * __GFP_MOVABLE means ZONE_MOVABLE. Combining DMA and DMA32 is a bug.
 */
export function gfp_zone(gfp: Gfp): number {
  const z = gfp & GFP_ZONEMASK;
  if (z === 0) return ZONE_NORMAL;
  if (z & __GFP_DMA) {
    if (z & (__GFP_DMA32 | __GFP_HIGHMEM))
      throw new RangeError(`gfp_zone: invalid zone bits 0x${z.toString(16)}`);
    return ZONE_DMA;
  }
  if (z & __GFP_DMA32) {
    if (z & __GFP_HIGHMEM) throw new RangeError(`gfp_zone: invalid zone bits 0x${z.toString(16)}`);
    return ZONE_DMA32;
  }
  if ((z & (__GFP_HIGHMEM | __GFP_MOVABLE)) === (__GFP_HIGHMEM | __GFP_MOVABLE))
    return ZONE_MOVABLE;
  return ZONE_NORMAL;
}

/** gfp_migratetype() */
export function gfp_migratetype(gfp: Gfp): number {
  if (gfp & __GFP_MOVABLE) {
    if (gfp & __GFP_RECLAIMABLE)
      throw new RangeError("gfp_migratetype: both __GFP_MOVABLE and __GFP_RECLAIMABLE");
    return MIGRATE_MOVABLE;
  }
  if (gfp & __GFP_RECLAIMABLE) return MIGRATE_RECLAIMABLE;
  return MIGRATE_UNMOVABLE;
}

export function gfpflags_allow_blocking(gfp: Gfp): boolean {
  return (gfp & __GFP_DIRECT_RECLAIM) !== 0;
}

/** Parse "GFP_KERNEL|__GFP_COMP" into a mask; throws naming the bad token. */
export function parse_gfp(text: string): Gfp {
  let gfp = 0;
  for (const raw of text.split("|")) {
    const token = raw.trim();
    const v = GFP_NAMES[token];
    if (v === undefined) throw new RangeError(`unknown GFP flag '${token}' in '${text}'`);
    gfp |= v;
  }
  return gfp;
}

/** Print a mask as the kernel's %pGg does: names joined with '|'. */
export function format_gfp(gfp: Gfp): string {
  const composite = [
    "GFP_TRANSHUGE",
    "GFP_TRANSHUGE_LIGHT",
    "GFP_HIGHUSER_MOVABLE",
    "GFP_HIGHUSER",
    "GFP_USER",
    "GFP_KERNEL",
    "GFP_ATOMIC",
    "GFP_NOWAIT",
  ];
  const parts: string[] = [];
  let rest = gfp;
  for (const name of composite) {
    const v = GFP_NAMES[name];
    if ((rest & v) === v && v !== 0) {
      parts.push(name);
      rest &= ~v;
      break;
    }
  }
  for (const [name, v] of Object.entries(GFP_NAMES)) {
    if (!name.startsWith("__") || name === "__GFP_RECLAIM") continue;
    if (rest & v) {
      parts.push(name);
      rest &= ~v;
    }
  }
  return parts.length ? parts.join("|") : "0x0";
}
