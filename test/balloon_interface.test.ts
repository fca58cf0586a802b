// The balloon compaction interface used directly, in every era: the list
// interfaces balloon_page_list_enqueue() and balloon_page_list_dequeue()
// with more than one page (skipping locked and isolated pages),
// balloon_page_finalize() where the 2025 and 2026 eras call it, and the gfp
// balloon_page_alloc() passes to the allocator.
import { describe, expect, it } from "vitest";
import { balloon_settled, boot_balloon_guest, run_until } from "../src/host/rig.ts";
import {
  balloon_page_alloc,
  balloon_page_alloc_gfp,
  balloon_page_device,
  balloon_page_finalize,
  balloon_page_free,
  balloon_page_list_dequeue,
  balloon_page_list_enqueue,
  verify_balloon_dev_info,
} from "../src/kernel/balloon_compaction.ts";
import { KernelBug } from "../src/kernel/bug.ts";
import {
  __GFP_NOMEMALLOC,
  __GFP_NORETRY,
  __GFP_NOWARN,
  GFP_HIGHUSER,
  GFP_HIGHUSER_MOVABLE,
} from "../src/kernel/gfp.ts";
import { list_add, list_count_nodes, list_del, list_empty } from "../src/kernel/list.ts";
import { trylock_page, unlock_page } from "../src/kernel/mm/pagemap.ts";
import { isolate_movable_page } from "../src/kernel/movable_ops.ts";
import { PageIsolated, PageLocked } from "../src/kernel/page.ts";
import { VIRTIO_BALLOON_F_MUST_TELL_HOST } from "../src/kernel/virtio_balloon.ts";
import { BALLOON_DEFLATE, BALLOON_INFLATE } from "../src/kernel/vmstat_items.ts";
import type { Runtime } from "../src/runtime/runtime.ts";
import { ERAS, F, MiB, small_guest } from "./balloon_helpers.ts";

type Guest = ReturnType<typeof small_guest>;

/** Run `body` as a thread to its end. */
function run_thread(g: Guest, body: (rt: Runtime) => Generator<unknown, void, unknown>): void {
  const t = g.e.spawn("test", body as never);
  run_until(g.e, () => g.e.threads[t].done, 1_000_000);
}

/** Allocate `n` balloon pages onto a fresh list and enqueue them with the list interface. */
function list_enqueue(g: Guest, n: number): { pages: number[]; enqueued: number; list: number } {
  const mem = g.m.mem;
  const list = mem.alloc_list_head();
  const pages: number[] = [];
  let enqueued = -1;
  run_thread(g, function* (rt) {
    for (let i = 0; i < n; i++) {
      const p = balloon_page_alloc(rt, g.bc);
      pages.push(p);
      list_add(mem, p, list);
    }
    enqueued = yield* balloon_page_list_enqueue(rt, g.bc, g.vb.vb_dev_info, list);
  });
  return { pages, enqueued, list };
}

describe.each(ERAS.map((era) => ({ era, name: era.name })))(
  "balloon interface, era $name",
  ({ era }) => {
    it("balloon_page_list_enqueue: 10 pages from a list join the device; the list is left empty", () => {
      const g = small_guest(F(VIRTIO_BALLOON_F_MUST_TELL_HOST), 16 * MiB, era);
      const b = g.vb.vb_dev_info;
      const { pages, enqueued, list } = list_enqueue(g, 10);
      expect(enqueued).toBe(10);
      expect(list_empty(g.m.mem, list)).toBe(true);
      expect(b.nr_listed).toBe(10);
      expect(verify_balloon_dev_info(g.bc, b)).toBe(10);
      expect(g.m.vm_events[BALLOON_INFLATE]).toBe(10);
      for (const p of pages) expect(balloon_page_device(g.bc, p)).toBe(b);
    });

    it("balloon_page_list_dequeue: 8 asked of 10 listed, 3 isolated and 1 locked: only free listed pages come off", () => {
      const g = small_guest(F(VIRTIO_BALLOON_F_MUST_TELL_HOST), 16 * MiB, era);
      const { m, mm, bc } = g;
      const mem = m.mem;
      const b = g.vb.vb_dev_info;
      const { pages } = list_enqueue(g, 10);
      // Compaction isolates three (they leave the list).
      const iso = m.mem.alloc_list_head();
      run_thread(g, function* (rt) {
        for (const p of pages.slice(0, 3)) {
          expect(yield* isolate_movable_page(rt, mm, p, 0)).toBe(0);
          list_add(mem, p, iso);
        }
      });
      expect(b.isolated_pages).toBe(3);
      // Another CPU holds the lock of one listed page (eras whose balloon
      // code locks pages skip it; 2026 does not look at the page lock).
      const locked = pages[5];
      let release = false;
      const holder = g.e.spawn("holder", function* (rt: Runtime) {
        expect(yield* trylock_page(rt, mm, locked)).toBe(true);
        yield* rt.wait_event(-1, "release", () => release);
        yield* unlock_page(rt, mm, locked);
      });
      run_until(g.e, () => PageLocked(mem, locked), 1000);
      const out = mem.alloc_list_head();
      let got = -1;
      run_thread(g, function* (rt) {
        got = yield* balloon_page_list_dequeue(rt, bc, b, out, 8);
      });
      const skips_locked = era.uses_page_lock;
      expect(got).toBe(skips_locked ? 6 : 7);
      expect(list_count_nodes(mem, out, mem.nr_pages)).toBe(got);
      expect(m.vm_events[BALLOON_DEFLATE]).toBe(got);
      if (skips_locked) expect(bc.coverage.dequeue_page_locked).toBeGreaterThan(0);
      // Isolated pages stay the device's, off its list; none was taken.
      expect(b.isolated_pages).toBe(3);
      for (const p of pages.slice(0, 3)) {
        expect(PageIsolated(mem, p)).toBe(true);
        expect(balloon_page_device(bc, p)).toBe(b);
      }
      for (let p = mem.lru_next[out]; p !== out; p = mem.lru_next[p]) {
        expect(pages.slice(0, 3)).not.toContain(p);
        expect(balloon_page_device(bc, p)).toBe(null);
      }
      expect(b.nr_listed).toBe(7 - got);
      expect(verify_balloon_dev_info(bc, b)).toBe(7 - got);
      // A dequeued page holds the balloon's reference, and in 2012 also
      // dequeue's extra one until balloon_page_free(), which drops both.
      const refs = era.name === "2012" ? 2 : 1;
      const taken: number[] = [];
      for (let p = mem.lru_next[out]; p !== out; p = mem.lru_next[p]) taken.push(p);
      for (const p of taken) expect(mem._refcount[p], `pfn ${p}`).toBe(refs);
      release = true;
      run_until(g.e, () => g.e.threads[holder].done, 1000);
      run_thread(g, function* (rt) {
        yield* rt.cond_resched();
        for (const p of taken) {
          list_del(mem, p);
          balloon_page_free(rt, bc, p);
        }
      });
      for (const p of taken) expect(mem._refcount[p], `pfn ${p}`).toBe(0);
    });

    it("balloon_page_alloc: the era's gfp reaches the allocator", () => {
      for (const compaction of [true, false]) {
        const g = boot_balloon_guest({
          machine: { mem_bytes: 16 * MiB, nr_cpus: 2 },
          features: F(VIRTIO_BALLOON_F_MUST_TELL_HOST),
          balloon: { era, compaction },
        });
        const seen = new Set<number>();
        const prev = g.m.hooks.page_use;
        g.m.hooks.page_use = (m, pfn, order, gfp) => {
          seen.add(gfp);
          prev?.(m, pfn, order, gfp);
        };
        g.hg.set_target_pages(300);
        run_until(g.e, () => balloon_settled(g), 1_000_000);
        const mask = compaction ? GFP_HIGHUSER_MOVABLE : GFP_HIGHUSER;
        // v5.2's balloon_page_alloc() (2016 on) added __GFP_NOWARN.
        const nowarn = era.isolation === "core" ? __GFP_NOWARN : 0;
        const want = mask | __GFP_NOMEMALLOC | __GFP_NORETRY | nowarn;
        expect([...seen]).toEqual([want]);
        expect(balloon_page_alloc_gfp(g.bc)).toBe(want);
      }
    });

    it("balloon_page_finalize: used by dequeue and migration from 2025 on; refuses a listed page; clears page->private", () => {
      const g = small_guest(F(VIRTIO_BALLOON_F_MUST_TELL_HOST), 16 * MiB, era);
      const { bc, mm } = g;
      const mem = g.m.mem;
      const b = g.vb.vb_dev_info;
      g.hg.set_target_pages(50);
      run_until(g.e, () => balloon_settled(g), 1_000_000);
      g.hg.set_target_pages(20);
      run_until(g.e, () => balloon_settled(g), 1_000_000);
      const finalizes = era.isolate_checks_device;
      expect(bc.coverage.finalize).toBe(finalizes ? 30 : 0);
      if (!finalizes) return;
      const listed = mem.lru_next[b.pages];
      let err: unknown = null;
      run_thread(g, function* (rt) {
        yield* rt.spin_lock(b.pages_lock);
        try {
          balloon_page_finalize(rt, bc, listed);
        } catch (e) {
          err = e;
        }
        yield* rt.spin_unlock(b.pages_lock);
      });
      expect(err).toBeInstanceOf(KernelBug);
      expect(String(err)).toMatch(/still on the balloon list/);
      // An isolated page (the old page of a migration) may be finalized.
      run_thread(g, function* (rt) {
        expect(yield* isolate_movable_page(rt, mm, listed, 0)).toBe(0);
        balloon_page_finalize(rt, bc, listed);
      });
      expect(mem.page_private[listed]).toBe(0);
      expect(balloon_page_device(bc, listed)).toBe(null);
    });
  },
);
