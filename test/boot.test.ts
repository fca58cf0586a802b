// Booting machines: the x86-64 QEMU layouts, movablecore, and the small-machine rule.
import { describe, expect, it } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import {
  MIGRATE_MOVABLE,
  MIGRATE_UNMOVABLE,
  ZONE_DMA,
  ZONE_DMA32,
  ZONE_MOVABLE,
  ZONE_NORMAL,
} from "../src/kernel/mmzone.ts";
import { get_pageblock_migratetype } from "../src/kernel/page.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe("boot", () => {
  it("boot: an 8 GiB q35 guest has 2 GiB below 4 GiB and DMA as a real guest shows it", () => {
    const m = boot({ mem_bytes: 8 * GiB });
    const [dma, dma32, normal] = [ZONE_DMA, ZONE_DMA32, ZONE_NORMAL].map(
      (i) => m.pgdat[0].node_zones[i],
    );
    // DMA: pfn 1..4095; RAM is pfns 1..0x9e and 0x100..0xfff; the first MiB is reserved.
    expect([dma.zone_start_pfn, dma.spanned_pages, dma.present_pages, dma.managed_pages]).toEqual([
      1,
      4095,
      0x9e + (0x1000 - 0x100),
      0x1000 - 0x100,
    ]);
    // DMA32 spans to 4 GiB but holds RAM only up to 2 GiB (q35 with >= 2.75 GiB).
    expect(dma32.zone_start_pfn).toBe(4096);
    expect(dma32.spanned_pages).toBe(0x100000 - 4096);
    expect(dma32.present_pages).toBe((2 * GiB) / 4096 - 4096);
    // Normal: the other 6 GiB from 4 GiB up.
    expect(normal.zone_start_pfn).toBe(0x100000);
    expect(normal.present_pages).toBe((6 * GiB) / 4096);
    // Reserved: kernel image (40 MiB) and swiotlb (64 MiB) in DMA32, memmap (128 MiB) at the top of Normal.
    expect(dma32.present_pages - dma32.managed_pages).toBe((104 * MiB) / 4096);
    expect(normal.present_pages - normal.managed_pages).toBe((128 * MiB) / 4096);
    verify_machine(m);
  });

  it("boot: a pc (i440fx) guest keeps 3 GiB below 4 GiB", () => {
    const m = boot({ mem_bytes: 8 * GiB, layout: "pc" });
    const dma32 = m.pgdat[0].node_zones[ZONE_DMA32];
    expect(dma32.present_pages).toBe((3 * GiB) / 4096 - 4096);
  });

  it("boot: movable_bytes puts the top of memory in ZONE_MOVABLE, and movable allocations prefer it", () => {
    const m = boot({ mem_bytes: 256 * MiB, layout: "flat", movable_bytes: 64 * MiB });
    const movable = m.pgdat[0].node_zones[ZONE_MOVABLE];
    expect(movable.zone_start_pfn).toBe((192 * MiB) / 4096);
    expect(movable.spanned_pages).toBe((64 * MiB) / 4096);
    expect(m.pgdat[0].node_zones[ZONE_DMA32].zone_end_pfn).toBe(movable.zone_start_pfn);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
    expect(movable.zone_spans_pfn(pfn)).toBe(true);
    verify_machine(m);
  });

  it("boot: below 3072 pages (a pageblock per migratetype) grouping by mobility is off", () => {
    const small = boot({ mem_bytes: 8 * MiB, layout: "normal", nr_cpus: 1 });
    const big = boot({ mem_bytes: 16 * MiB, layout: "normal", nr_cpus: 1 });
    expect(small.sysctl.page_group_by_mobility_disabled).toBe(true);
    expect(big.sysctl.page_group_by_mobility_disabled).toBe(false);
    // With grouping off every allocation is treated as unmovable and may take
    // whole blocks: the first movable allocation claims an unmovable block.
    const p = alloc_pages(small, 0, GFP_HIGHUSER_MOVABLE, 0);
    expect(get_pageblock_migratetype(small.mem, p)).toBe(MIGRATE_UNMOVABLE);
    const q = alloc_pages(big, 0, GFP_HIGHUSER_MOVABLE, 0);
    expect(get_pageblock_migratetype(big.mem, q)).toBe(MIGRATE_MOVABLE);
  });
});
