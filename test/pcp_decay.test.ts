// Per-cpu page lists after a burst of frees: how much they hold, that it is
// invisible to buddyinfo, and how vmstat's periodic decay gives it back.
import { describe, expect, it } from "vitest";
import { boot } from "../src/kernel/boot.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import { GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { ZONE_DMA32 } from "../src/kernel/mmzone.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages, PCP_BATCH_SCALE_MAX } from "../src/kernel/page_alloc/pcp.ts";
import { proc_buddyinfo } from "../src/kernel/procfs.ts";
import { vmstat_update } from "../src/kernel/vmstat.ts";
import { NR_FREE_PAGES } from "../src/kernel/vmstat_items.ts";

describe("pcp lists", () => {
  it("pcp: a burst of 400 MiB of frees on a 1 GiB guest leaves tens of MiB on one CPU's lists", () => {
    const m = boot({ mem_bytes: 1024 ** 3, nr_cpus: 2 });
    const zone = m.pgdat[0].node_zones[ZONE_DMA32];
    const pcp = zone.per_cpu_pageset[0];
    const n = 100_000; // 400 MiB of order-0 pages
    const pfns = new Int32Array(n);
    for (let i = 0; i < n; i++) pfns[i] = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
    expect(pfns.every((p) => p >= 0 && m.page_zone(p) === zone)).toBe(true);
    const free_before = zone.vm_stat[NR_FREE_PAGES];
    const pcp_before = pcp.count;
    for (let i = 0; i < n; i++) __free_pages(m, 0, pfns[i], 0);
    verify_machine(m);

    // high_max is an eighth of the zone split over the node's two CPUs.
    expect(pcp.high_max).toBe(
      Math.max(Math.floor(Math.floor(zone.managed_pages / 8) / 2), 4 * pcp.batch),
    );
    // The burst grows pcp->high towards high_max, so the list keeps far more
    // than high_min (the low watermark's share) and never more than high_max.
    expect(pcp.count).toBeGreaterThan(pcp.high_min);
    expect(pcp.count).toBeLessThanOrEqual(pcp.high_max);
    expect(pcp.count * 4096).toBeGreaterThan(40 * 1024 ** 2);
    // Those pages are not free in NR_FREE_PAGES' sense: the counter rose by
    // exactly the pages that went back to the buddy lists.
    expect(zone.vm_stat[NR_FREE_PAGES] - free_before).toBe(n - (pcp.count - pcp_before));
  });

  it("pcp: vmstat decay lowers pcp->high by an eighth a second down to high_min and drains the rest", () => {
    const m = boot({ mem_bytes: 1024 ** 3, nr_cpus: 2 });
    const zone = m.pgdat[0].node_zones[ZONE_DMA32];
    const pcp = zone.per_cpu_pageset[0];
    const pfns: number[] = [];
    for (let i = 0; i < 60_000; i++) pfns.push(alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0));
    for (const p of pfns) __free_pages(m, 0, p, 0);
    const start = pcp.high;
    expect(start).toBeGreaterThan(pcp.high_min);

    let seconds = 0;
    let prev_high = pcp.high;
    while (pcp.high > pcp.high_min) {
      vmstat_update(m);
      seconds++;
      // Each tick takes at least an eighth off (or jumps to what the list
      // holds minus 32 batches), and the list never stays above high.
      const eighth = prev_high - (prev_high >> 3);
      expect(pcp.high).toBeLessThanOrEqual(Math.max(eighth, pcp.high_min, pcp.count));
      expect(pcp.count).toBeLessThanOrEqual(pcp.high);
      expect(pcp.high).toBeLessThan(prev_high);
      prev_high = pcp.high;
      expect(seconds).toBeLessThan(200);
    }
    expect(pcp.high).toBe(pcp.high_min);
    // (1 - 1/8)^s * start <= high_min gives the number of seconds, give or take
    // the batch << PCP_BATCH_SCALE_MAX clamp which can only speed it up.
    const bound = Math.ceil(Math.log(pcp.high_min / start) / Math.log(7 / 8)) + 1;
    expect(seconds).toBeLessThanOrEqual(bound);
    expect(PCP_BATCH_SCALE_MAX).toBe(5);
    verify_machine(m);
  });

  it("pcp: drain_all_pages makes freed pages visible to buddyinfo again and they merge", () => {
    const m = boot({ mem_bytes: 64 * 1024 ** 2, layout: "normal", nr_cpus: 2, debug_vm: true });
    m.verify = verify_machine;
    const before = proc_buddyinfo(m);
    const pfns: number[] = [];
    for (let i = 0; i < 300; i++) pfns.push(alloc_pages(m, i % 2, GFP_HIGHUSER_MOVABLE, 0));
    for (let i = 0; i < pfns.length; i++) __free_pages(m, i % 2, pfns[i], 0);
    const held = m.zones.reduce(
      (n, z) => n + z.per_cpu_pageset.reduce((k, p) => k + p.count, 0),
      0,
    );
    expect(held).toBeGreaterThan(0);
    expect(proc_buddyinfo(m)).not.toBe(before);
    drain_all_pages(m, null);
    // Every page went back and merged: the free lists are as they were at boot.
    expect(proc_buddyinfo(m)).toBe(before);
  });
});
