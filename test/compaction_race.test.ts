// Compaction racing the owners of the pages it moves: kcompactd (a runtime
// thread running proactive compaction) against a process that faults pages
// in, unmaps them and asks for THPs (direct compaction, run inline in its
// thread), under seeded random schedules. Every schedule must keep the
// memory map and LRU invariants, every owner's data and every page.
import { describe, expect, it } from "vitest";
import {
  compaction_proactiveness_write,
  install_kcompactd_wakeup,
  Kcompactd,
  kcompactd,
  kcompactd_stop,
} from "../src/kernel/compaction_daemon.ts";
import { install_direct_compaction } from "../src/kernel/compaction_direct.ts";
import { __GFP_COMP, GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
import { this_cpu } from "../src/kernel/mm/lru.ts";
import { do_anonymous_page, zap_anon_page } from "../src/kernel/mm/owner.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { KCOMPACTD_MIGRATE_SCANNED, NR_FREE_PAGES } from "../src/kernel/vmstat_items.ts";
import { Prng } from "../src/runtime/prng.ts";
import { mm_env, verify_mm } from "./mm_helpers.ts";

const NR_PAGES = 4096;
const THP = GFP_HIGHUSER_MOVABLE | __GFP_COMP;

describe("compaction races", () => {
  it("compaction race: kcompactd's proactive run against faults, unmaps and THP allocations, 12 random schedules", () => {
    let daemon_scanned = 0;
    let thps = 0;
    for (let seed = 0; seed < 12; seed++) {
      const env = mm_env();
      const { e, m, mm } = env;
      // Fragment the zone without the per-operation whole-state checks.
      m.debug_vm = false;
      const p = env.mm_new("p", NR_PAGES);
      // One setup thread (each env.run() adds a thread to the execution).
      const n = env.run(function* (rt) {
        let v = 0;
        for (; v < NR_PAGES; v++) if ((yield* do_anonymous_page(rt, mm, p, v, 1000 + v)) < 0) break;
        for (let u = 0; u < v; u += 2) yield* zap_anon_page(rt, mm, p, u);
        return v;
      });
      drain_all_pages(m, null);
      // The race itself runs with them off too (they cost more than the
      // run); the whole state is checked at the end.
      install_direct_compaction(mm, e);
      install_kcompactd_wakeup(mm);
      const kd = new Kcompactd(m.pgdat[0], () => e.steps * 1000);
      const kid = e.spawn("kcompactd0", (rt) => kcompactd(rt, mm, kd));
      const prng = new Prng(seed);
      const held: number[] = [];
      let worker_done = false;
      e.spawn("worker", function* (rt) {
        for (let i = 0; i < 150; i++) {
          const what = prng.below(10);
          const v = prng.below(n);
          if (what < 5) {
            if (p.pages[v] < 0) yield* do_anonymous_page(rt, mm, p, v, 1000 + v);
          } else if (what < 9) {
            if (p.pages[v] >= 0) yield* zap_anon_page(rt, mm, p, v);
          } else {
            const pfn = alloc_pages(m, this_cpu(rt, m), THP, 9);
            if (pfn >= 0) held.push(pfn);
            yield* rt.cond_resched();
          }
        }
        worker_done = true;
      });
      compaction_proactiveness_write(m, 20);
      e.run((r) => {
        if (worker_done && !kd.should_stop) kcompactd_stop(kd);
        return r[prng.below(r.length)];
      }, e.steps + 5_000_000);
      expect(e.threads[kid].done).toBe(true);
      daemon_scanned += m.vm_events[KCOMPACTD_MIGRATE_SCANNED];
      thps += held.length;
      m.debug_vm = true;
      verify_mm(env);
      for (const pfn of held) __free_pages(m, 0, pfn, 9);
      verify_mm(env);
      drain_all_pages(m, null);
      let owned = 0;
      for (let v = 0; v < NR_PAGES; v++) {
        const pfn = p.pages[v];
        if (pfn < 0) continue;
        owned++;
        expect(m.mem.content![pfn], `seed ${seed} vpage ${v}`).toBe(1000 + v);
      }
      const z = m.zones.find((zz) => zz.populated_zone())!;
      expect(z.vm_stat[NR_FREE_PAGES] + owned, `seed ${seed}: every page accounted for`).toBe(
        NR_PAGES,
      );
    }
    // The schedules did make kcompactd compact, and direct compaction did
    // hand out THPs.
    expect(daemon_scanned).toBeGreaterThan(0);
    expect(thps).toBeGreaterThan(0);
  });
});
