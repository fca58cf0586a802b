/**
 * Bad input: machine configurations that must be refused, allocation
 * arguments out of range, and frees the kernel would report as a bad page.
 * Every refused free must leave the machine exactly as it was.
 */

import { describe, expect, it } from "vitest";
import { boot, MachineConfigError } from "../src/kernel/boot.ts";
import { BadPageError } from "../src/kernel/bug.ts";
import { verify_machine } from "../src/kernel/debug_vm.ts";
import {
  __GFP_COMP,
  __GFP_DMA,
  __GFP_DMA32,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
} from "../src/kernel/gfp.ts";
import type { Machine } from "../src/kernel/machine.ts";
import { ZONE_NORMAL } from "../src/kernel/mmzone.ts";
import { PageFlag, PG_active, PG_lru, PG_reserved, SetPageFlag } from "../src/kernel/page.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { proc_buddyinfo } from "../src/kernel/procfs.ts";
import { MiB, small, snapshot } from "./helpers.ts";

const NEVER = { sysctl: { transparent_hugepage: "never" as const } };

describe("bad machine configurations", () => {
  const bad_mem: [string, number][] = [
    ["not a multiple of 4 KiB", 4 * MiB + 1],
    ["not a multiple of 4 KiB (2 KiB more)", 4 * MiB + 2048],
    ["smaller than 16 pages", 15 * 4096],
    ["zero", 0],
    ["negative", -4 * MiB],
    ["NaN", Number.NaN],
    ["infinite", Number.POSITIVE_INFINITY],
    ["fractional", 4 * MiB + 0.5],
    ["above 2 TiB", 2 * 1024 * 1024 * MiB + 4096],
  ];
  for (const [what, mem_bytes] of bad_mem) {
    it(`config: a memory size that is ${what} is refused, naming mem_bytes`, () => {
      expect(() => boot({ mem_bytes, layout: "normal" })).toThrow(MachineConfigError);
      expect(() => boot({ mem_bytes, layout: "normal" })).toThrow(/machine\.mem_bytes/);
      expect(() => boot({ mem_bytes, layout: "normal" })).toThrow(String(mem_bytes));
    });
  }

  it("config: the smallest machine (16 pages) boots", () => {
    const m = boot({ mem_bytes: 16 * 4096, layout: "normal", nr_cpus: 1, debug_vm: true });
    expect(m.zone(0, ZONE_NORMAL).managed_pages).toBe(16);
    verify_machine(m);
  });

  it("config: other bad fields are refused with their own names", () => {
    const ok = { mem_bytes: 16 * MiB, layout: "normal" as const };
    expect(() => boot({ ...ok, nr_cpus: 0 })).toThrow(/machine\.nr_cpus/);
    expect(() => boot({ ...ok, nr_cpus: 1.5 })).toThrow(MachineConfigError);
    expect(() => boot({ ...ok, pageblock_order: 11 })).toThrow(/machine\.pageblock_order/);
    expect(() => boot({ ...ok, movable_bytes: 16 * MiB })).toThrow(/machine\.movable_bytes/);
    expect(() => boot({ ...ok, movable_bytes: 100 })).toThrow(/machine\.movable_bytes/);
    // @ts-expect-error: not a layout
    expect(() => boot({ ...ok, layout: "numa" })).toThrow(/machine\.layout/);
  });
});

describe("bad allocation arguments", () => {
  it("alloc: order 11 and other orders outside 0..10 throw RangeError", () => {
    const m = small(16 * MiB, NEVER);
    const before = proc_buddyinfo(m);
    for (const order of [11, 12, -1, 2.5, Number.NaN]) {
      expect(() => alloc_pages(m, 0, GFP_KERNEL, order), `order ${order}`).toThrow(RangeError);
    }
    expect(() => alloc_pages(m, 0, GFP_KERNEL, 11)).toThrow(/order 11/);
    expect(proc_buddyinfo(m)).toBe(before);
  });

  it("alloc: a CPU the machine does not have throws RangeError", () => {
    const m = small(16 * MiB, NEVER);
    expect(() => alloc_pages(m, 1, GFP_KERNEL, 0)).toThrow(/no CPU 1/);
    expect(() => alloc_pages(m, -1, GFP_KERNEL, 0)).toThrow(RangeError);
  });

  it("alloc: __GFP_DMA with __GFP_DMA32 is an invalid zone and throws", () => {
    const m = small(16 * MiB, NEVER);
    expect(() => alloc_pages(m, 0, __GFP_DMA | __GFP_DMA32, 0)).toThrow(/invalid zone bits/);
  });
});

describe("bad frees", () => {
  /**
   * The free must throw a BadPageError naming the operation and the pfn
   * (dump_page prints it in hex), and change nothing at all.
   */
  function expect_bad_free(
    m: Machine,
    pfn: number,
    order: number,
    reason: RegExp,
    bad_pfn = pfn,
  ): BadPageError {
    const before = snapshot(m);
    let err: unknown;
    try {
      __free_pages(m, 0, pfn, order);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadPageError);
    const bad = err as BadPageError;
    expect(bad.operation).toBe("__free_pages");
    expect(bad.pfn).toBe(bad_pfn);
    expect(bad.message).toMatch(/^BUG: Bad page state in __free_pages: /);
    expect(bad.message).toMatch(reason);
    expect(bad.message).toContain(`pfn:0x${bad_pfn.toString(16)} `);
    expect(snapshot(m)).toEqual(before);
    verify_machine(m);
    return bad;
  }

  it("free: freeing a page twice (it is on a pcp list) is a bad page", () => {
    const m = small(16 * MiB, NEVER);
    const pfn = alloc_pages(m, 0, GFP_KERNEL, 0);
    __free_pages(m, 0, pfn, 0);
    expect(m.zone(0, ZONE_NORMAL).per_cpu_pageset[0].count).toBe(1);
    expect_bad_free(m, pfn, 0, /not allocated \(refcount 0\): double free/);
  });

  it("free: freeing a page twice (it is back in the buddy lists) is a bad page", () => {
    const m = small(16 * MiB, NEVER);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 5);
    const other = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 5);
    __free_pages(m, 0, pfn, 5);
    drain_all_pages(m, null);
    // pfn heads a free order-5 block (its buddy `other` is in use).
    expect(other).toBe(pfn + 32);
    expect_bad_free(m, pfn, 5, /already free \(PageBuddy\)/);
  });

  it("free: freeing a page that was never allocated is a bad page", () => {
    const m = small(16 * MiB, NEVER);
    // Inside the free block 0/o10: not a buddy head, refcount 0.
    expect_bad_free(m, 5, 0, /refcount 0/);
    // The head of a free block.
    expect_bad_free(m, 1024, 10, /PageBuddy/);
  });

  it("free: freeing a tail page of a compound page is a bad page", () => {
    const m = small(16 * MiB, NEVER);
    const head = alloc_pages(m, 0, GFP_KERNEL | __GFP_COMP, 2);
    expect_bad_free(m, head + 1, 0, /tail page of a compound page/);
    expect_bad_free(m, head + 3, 2, /tail page/);
    __free_pages(m, 0, head, 2);
    verify_machine(m);
  });

  it("free: freeing with a different order than allocated is a bad page", () => {
    const m = small(16 * MiB, NEVER);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 4);
    expect_bad_free(m, pfn, 3, /freed with order 3 but allocated with order 4/);
    expect_bad_free(m, pfn, 5, /freed with order 5 but allocated with order 4/);
    const comp = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE | __GFP_COMP, 2);
    expect_bad_free(m, comp, 0, /freed with order 0 but allocated with order 2/);
    __free_pages(m, 0, pfn, 4);
    __free_pages(m, 0, comp, 2);
    drain_all_pages(m, null);
    expect(Array.from(m.zone(0, ZONE_NORMAL).nr_free)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
  });

  it("free: freeing a page still on the LRU, or active, is a bad page; cleared, it frees", () => {
    const m = small(16 * MiB, NEVER);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 0);
    SetPageFlag(m.mem, pfn, PG_lru);
    expect_bad_free(m, pfn, 0, /PAGE_FLAGS_CHECK_AT_FREE/);
    expect(PageFlag(m.mem, pfn, PG_lru)).toBe(true);
    m.mem.flags[pfn] &= ~(1 << PG_lru);
    SetPageFlag(m.mem, pfn, PG_active);
    expect_bad_free(m, pfn, 0, /PAGE_FLAGS_CHECK_AT_FREE/);
    m.mem.flags[pfn] &= ~(1 << PG_active);
    __free_pages(m, 0, pfn, 0);
    expect(m.mem._refcount[pfn]).toBe(0);
  });

  it("free: freeing a mapped page, or one with a mapping, is a bad page naming the page at fault", () => {
    const m = small(16 * MiB, NEVER);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE, 2);
    // The third page of the block is still mapped once.
    m.mem._mapcount[pfn + 2] = 0;
    expect_bad_free(m, pfn, 2, /nonzero mapcount/, pfn + 2);
    m.mem._mapcount[pfn + 2] = -1;
    m.mem.mapping[pfn] = (7 << 2) | 1; // an anon_vma handle
    expect_bad_free(m, pfn, 2, /non-NULL mapping/);
    m.mem.mapping[pfn] = 0;
    __free_pages(m, 0, pfn, 2);
    verify_machine(m);
  });

  it("free: a pfn outside the memory map is refused with a RangeError naming it", () => {
    const m = small(16 * MiB, NEVER);
    const before = snapshot(m);
    for (const pfn of [4096, 1 << 30, -1, 1.5]) {
      expect(() => __free_pages(m, 0, pfn, 0), `pfn ${pfn}`).toThrow(RangeError);
    }
    expect(() => __free_pages(m, 0, 4096, 0)).toThrow(
      /__free_pages: pfn 4096 is outside the memory map/,
    );
    expect(() => __free_pages(m, 0, 0, 11)).toThrow(/order 11/);
    expect(snapshot(m)).toEqual(before);
  });

  it("free: a pfn in a hole or a boot-time reservation of a q35 guest is a bad page", () => {
    // 64 MiB q35: RAM [0, 0x9f) and [0x100, 0x4000); pfn 0 belongs to no
    // zone; the first MiB and the kernel image (from pfn 4096) are reserved.
    const m = boot({ mem_bytes: 64 * MiB, layout: "q35", nr_cpus: 1, debug_vm: true });
    m.verify = verify_machine;
    expect(m.page_zone(0)).toBe(null);
    expect_bad_free(m, 0, 0, /memory hole/);
    expect(PageFlag(m.mem, 0x50, PG_reserved)).toBe(true);
    expect_bad_free(m, 0x50, 0, /PAGE_FLAGS_CHECK_AT_FREE/);
    expect_bad_free(m, 5000, 0, /PAGE_FLAGS_CHECK_AT_FREE/);
  });

  it("free: a compound page with a second reference is not freed by one __free_pages", () => {
    // (Compound: for a non-compound block the kernel would free the tail
    // sub-blocks at once, which pagesim does not model.)
    const m = small(16 * MiB, NEVER);
    const pfn = alloc_pages(m, 0, GFP_HIGHUSER_MOVABLE | __GFP_COMP, 4);
    m.mem._refcount[pfn]++; // get_page()
    const before = proc_buddyinfo(m);
    __free_pages(m, 0, pfn, 4);
    expect(m.mem._refcount[pfn]).toBe(1);
    expect(proc_buddyinfo(m)).toBe(before);
    __free_pages(m, 0, pfn, 4);
    expect(m.mem._refcount[pfn]).toBe(0);
    expect(Array.from(m.zone(0, ZONE_NORMAL).nr_free)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
  });
});
