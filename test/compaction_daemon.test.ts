// kcompactd and proactive compaction (src/kernel/compaction_daemon.ts) run
// as a runtime thread: a failed high-order allocation wakes it through the
// wakeup_kswapd seam and it compacts the zone for that order; a wake-up
// request it is not woken for is found at the next timeout; proactive
// compaction lowers the fragmentation score below the high mark; the
// fragmentation score and its watermarks follow the kernel's arithmetic.
import { describe, expect, it } from "vitest";
import {
  extfrag_for_order,
  fragmentation_score_node,
  fragmentation_score_wmark,
  fragmentation_score_zone,
} from "../src/kernel/compaction.ts";
import {
  compaction_proactiveness_write,
  HPAGE_FRAG_CHECK_INTERVAL_MSEC,
  install_kcompactd_wakeup,
  Kcompactd,
  kcompactd,
  kcompactd_should_run,
  kcompactd_stop,
  should_proactive_compact_node,
  wakeup_kcompactd,
} from "../src/kernel/compaction_daemon.ts";
import { __GFP_KSWAPD_RECLAIM, GFP_TRANSHUGE_LIGHT } from "../src/kernel/gfp.ts";
import { type AddressSpace, do_anonymous_page, zap_anon_page } from "../src/kernel/mm/owner.ts";
import type { Zone } from "../src/kernel/mmzone.ts";
import { alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  COMPACTFREE_SCANNED,
  COMPACTMIGRATE_SCANNED,
  KCOMPACTD_FREE_SCANNED,
  KCOMPACTD_MIGRATE_SCANNED,
  KCOMPACTD_WAKE,
  PGMIGRATE_SUCCESS,
} from "../src/kernel/vmstat_items.ts";
import { type Env, mm_env, verify_mm } from "./mm_helpers.ts";

const NR_PAGES = 4096;
const THP_DEFER = GFP_TRANSHUGE_LIGHT | __GFP_KSWAPD_RECLAIM;
const MS = 1_000_000;

function zone_of(env: Env): Zone {
  return env.m.zones.find((z) => z.populated_zone())!;
}

/**
 * The compaction tests' layout: anon pages faulted in pfn order until the
 * watermark stops them (3873), every second one unmapped: 2160 free pages
 * in 1936 order-0 blocks and one each of orders 5, 6 and 7.
 */
function fragmented(env: Env): AddressSpace {
  const p = env.mm_new("p", NR_PAGES);
  // One thread for the whole setup (each env.run() adds a thread), without
  // the per-operation whole-state checks (the tests check at the end).
  env.m.debug_vm = false;
  env.run(function* (rt) {
    let n = 0;
    for (; n < NR_PAGES; n++) if ((yield* do_anonymous_page(rt, env.mm, p, n, 1000 + n)) < 0) break;
    for (let v = 0; v < n; v += 2) yield* zap_anon_page(rt, env.mm, p, v);
  });
  env.m.debug_vm = true;
  drain_all_pages(env.m, null);
  expect(Array.from(zone_of(env).nr_free)).toEqual([1936, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0]);
  return p;
}

function data_intact(env: Env, p: AddressSpace): void {
  for (let v = 0; v < p.pages.length; v++) {
    const pfn = p.pages[v];
    if (pfn >= 0) expect(env.m.mem.content![pfn], `vpage ${v}`).toBe(1000 + v);
  }
}

/** A kcompactd thread for node 0 on a manual clock. */
function start_kcompactd(env: Env) {
  let now = 0;
  const kd = new Kcompactd(env.m.pgdat[0], () => now);
  const id = env.e.spawn("kcompactd0", (rt) => kcompactd(rt, env.mm, kd));
  const pgdat = env.m.pgdat[0];
  /** Step kcompactd until it sleeps again (or ends); returns the steps taken. */
  const until_asleep = () => {
    let steps = 0;
    do {
      env.e.step(id);
      steps++;
      expect(steps, "kcompactd reaches its sleep").toBeLessThan(10_000_000);
    } while (!pgdat.kcompactd_sleeping && !env.e.threads[id].done);
    return steps;
  };
  const stop = () => {
    kcompactd_stop(kd);
    while (!env.e.threads[id].done) env.e.step(id);
  };
  return {
    kd,
    until_asleep,
    stop,
    advance: (ns: number) => {
      now += ns;
    },
  };
}

function ev(env: Env, i: number): number {
  return env.m.vm_events[i];
}

describe("kcompactd", () => {
  it("kcompactd: a failed THP allocation wakes it; it compacts for order 9 and the retry succeeds", () => {
    const env = mm_env();
    const { m, mm } = env;
    const p = fragmented(env);
    expect(install_kcompactd_wakeup(mm)).toBe(true);
    const k = start_kcompactd(env);
    k.until_asleep();
    expect(m.pgdat[0].kcompactd_sleeping).toBe(true);
    const wake0 = ev(env, KCOMPACTD_WAKE);
    const mig0 = ev(env, COMPACTMIGRATE_SCANNED);
    const free0 = ev(env, COMPACTFREE_SCANNED);
    // No direct reclaim, so no direct compaction: the allocation fails, but
    // the slow path's kswapd wake-up reaches kcompactd (the node is balanced
    // at order 0: 2160 free pages, and compaction is suitable: low
    // watermark 243 + compact_gap 1024 <= 2160, fragmentation index 998).
    expect(alloc_pages(m, 0, THP_DEFER, 9)).toBe(-1);
    expect(m.pgdat[0].kcompactd_max_order).toBe(9);
    expect(m.pgdat[0].kcompactd_woken).toBe(true);
    expect(kcompactd_should_run(k.kd)).toBe(true);
    k.until_asleep();
    // One kcompactd_do_work(): compact_daemon_wake 1; its scans are counted
    // both in the daemon's counters and the plain ones.
    expect(ev(env, KCOMPACTD_WAKE) - wake0).toBe(1);
    const mig = ev(env, COMPACTMIGRATE_SCANNED) - mig0;
    const free = ev(env, COMPACTFREE_SCANNED) - free0;
    expect(mig).toBeGreaterThan(0);
    expect(ev(env, KCOMPACTD_MIGRATE_SCANNED)).toBe(mig);
    expect(ev(env, KCOMPACTD_FREE_SCANNED)).toBe(free);
    // The run (SYNC_LIGHT from the zone start): block 0's 256 pages move,
    // but its frees stay on the pcp list (the zone starts at pfn 0, so the
    // kernel's last_migrated_pfn of 0 means "nothing to drain"); block 1's
    // 256 move too, leaving it drains, and blocks 0 and 1 merge into one
    // order-10 block: COMPACT_SUCCESS after 2 * 512 pfns scanned, plus the
    // free-list entries fast_find_migrateblock() looked at: at the zone
    // start the order-7, 6 and 5 blocks at the top of block 7 (3, all too
    // high), at pfn 512 at most freelist_scan_limit() = 17 more.
    expect(mig - 1024).toBeGreaterThanOrEqual(3);
    expect(mig - 1024).toBeLessThanOrEqual(3 + 17);
    expect(ev(env, PGMIGRATE_SUCCESS)).toBe(512);
    expect(zone_of(env).nr_free[10]).toBe(1);
    // The work is done: the request is cleared and the zone not deferred.
    expect(m.pgdat[0].kcompactd_max_order).toBe(0);
    expect(zone_of(env).compact_defer_shift).toBe(0);
    // The same THP request now finds a free order-9 block.
    const pfn = alloc_pages(m, 0, THP_DEFER, 9);
    expect(pfn).toBeGreaterThanOrEqual(0);
    expect(pfn % 512).toBe(0);
    k.stop();
    data_intact(env, p);
    verify_mm(env);
  });

  it("kcompactd: a request it is not woken for is found at the next timeout", () => {
    const env = mm_env();
    const { m, mm } = env;
    fragmented(env);
    const k = start_kcompactd(env);
    k.until_asleep();
    // Compaction cannot help by the sysctl's standard (index 998 <=
    // threshold 1000): the order is remembered but kcompactd stays asleep.
    m.sysctl.extfrag_threshold = 1000;
    wakeup_kcompactd(mm, m.pgdat[0], 9, 2);
    expect(m.pgdat[0].kcompactd_max_order).toBe(9);
    expect(m.pgdat[0].kcompactd_woken).toBe(false);
    const wake0 = ev(env, KCOMPACTD_WAKE);
    // Stepping alone does not end the sleep, and a runner may leave the
    // thread off the CPU until the deadline.
    for (let i = 0; i < 100; i++) env.e.step(env.e.threads.length - 1);
    expect(m.pgdat[0].kcompactd_sleeping).toBe(true);
    expect(kcompactd_should_run(k.kd)).toBe(false);
    expect(k.kd.sleep_deadline_ns).toBe(HPAGE_FRAG_CHECK_INTERVAL_MSEC * MS);
    // 500 ms later the sleep times out and the condition holds: one
    // kcompactd_do_work() that finds no zone worth compacting.
    k.advance(HPAGE_FRAG_CHECK_INTERVAL_MSEC * MS);
    expect(kcompactd_should_run(k.kd)).toBe(true);
    k.until_asleep();
    expect(k.kd.timeouts).toBe(1);
    expect(ev(env, KCOMPACTD_WAKE) - wake0).toBe(1);
    expect(ev(env, KCOMPACTD_MIGRATE_SCANNED)).toBe(0);
    expect(m.pgdat[0].kcompactd_max_order).toBe(0);
    k.stop();
    verify_mm(env);
  });

  it("kcompactd: proactive compaction lowers the fragmentation score below the high mark", () => {
    const env = mm_env();
    const { m } = env;
    const p = fragmented(env);
    // Score: all 2160 free pages lie in blocks below order 9: 100 for the
    // zone, weighted 4096 * 100 / 4097 = 99 for the node; above the high
    // mark of proactiveness 20 (low 80, high 80 + min(10, 40) = 90).
    expect(fragmentation_score_zone(zone_of(env))).toBe(100);
    expect(fragmentation_score_node(m, m.pgdat[0])).toBe(99);
    expect(should_proactive_compact_node(m, m.pgdat[0])).toBe(true);
    const k = start_kcompactd(env);
    k.until_asleep();
    const wake0 = ev(env, KCOMPACTD_WAKE);
    const mig0 = ev(env, COMPACTMIGRATE_SCANNED);
    const moved0 = ev(env, PGMIGRATE_SUCCESS);
    k.advance(HPAGE_FRAG_CHECK_INTERVAL_MSEC * MS);
    k.until_asleep();
    // A timeout, not a wake-up: no compact_daemon_wake, but the proactive
    // run's scans are the daemon's.
    expect(ev(env, KCOMPACTD_WAKE)).toBe(wake0);
    expect(ev(env, PGMIGRATE_SUCCESS) - moved0).toBeGreaterThan(0);
    expect(ev(env, KCOMPACTD_MIGRATE_SCANNED)).toBe(ev(env, COMPACTMIGRATE_SCANNED) - mig0);
    // The zone's run stops once its score is at the low mark or below.
    const score = fragmentation_score_node(m, m.pgdat[0]);
    expect(score).toBeLessThanOrEqual(fragmentation_score_wmark(m, false));
    expect(fragmentation_score_zone(zone_of(env))).toBeLessThanOrEqual(80);
    // Where it stopped: 2048 pages free on the lists, one order-9 block
    // among them, a score of (2048 - 512) * 100 / 2048 = 75 (the source
    // pages freed last still wait on the pcp list: order -1 runs never
    // drain).
    const nr_free = Array.from(zone_of(env).nr_free);
    expect(nr_free.reduce((sum, n, o) => sum + n * 2 ** o, 0)).toBe(2048);
    expect(nr_free[9] + nr_free[10]).toBe(1);
    expect(fragmentation_score_zone(zone_of(env))).toBe(75);
    expect(should_proactive_compact_node(m, m.pgdat[0])).toBe(false);
    // The next timeout finds nothing to do.
    const moved1 = ev(env, PGMIGRATE_SUCCESS);
    k.advance(HPAGE_FRAG_CHECK_INTERVAL_MSEC * MS);
    k.until_asleep();
    expect(ev(env, PGMIGRATE_SUCCESS)).toBe(moved1);
    k.stop();
    data_intact(env, p);
    verify_mm(env);
  });

  it("kcompactd: writing compaction_proactiveness triggers a proactive run at once; 0 turns the timeout off", () => {
    const env = mm_env();
    const { m } = env;
    fragmented(env);
    m.sysctl.compaction_proactiveness = 0;
    expect(should_proactive_compact_node(m, m.pgdat[0])).toBe(false);
    const k = start_kcompactd(env);
    k.until_asleep();
    // Proactiveness 0: the sleep has no timeout: an hour later the thread
    // is still asleep and not even runnable (a wait_event without timeout).
    k.advance(3600 * 1000 * MS);
    expect(env.e.enabled(env.e.threads.length - 1)).toBe(false);
    expect(m.pgdat[0].kcompactd_sleeping).toBe(true);
    expect(k.kd.timeouts).toBe(0);
    const moved0 = ev(env, PGMIGRATE_SUCCESS);
    compaction_proactiveness_write(m, 20);
    expect(m.pgdat[0].proactive_compact_trigger).toBe(true);
    k.until_asleep();
    expect(ev(env, PGMIGRATE_SUCCESS) - moved0).toBeGreaterThan(0);
    expect(m.pgdat[0].proactive_compact_trigger).toBe(false);
    expect(fragmentation_score_node(m, m.pgdat[0])).toBeLessThanOrEqual(90);
    expect(() => compaction_proactiveness_write(m, 101)).toThrow(/0\.\.100/);
    k.stop();
    verify_mm(env);
  });

  it("kcompactd: fragmentation score and watermarks follow the kernel's integer arithmetic", () => {
    const env = mm_env();
    const { m } = env;
    const z = zone_of(env);
    // After boot: four free order-10 blocks: nothing below order 9.
    expect(extfrag_for_order(z, 9)).toBe(0);
    fragmented(env);
    // 2160 free pages; for order 5: the order-5, 6 and 7 blocks (224
    // pages) are suitable: (2160 - 224) * 100 / 2160 = 89.6 -> 89.
    expect(extfrag_for_order(z, 5)).toBe(89);
    expect(extfrag_for_order(z, 0)).toBe(0);
    const wm = (p: number) => {
      m.sysctl.compaction_proactiveness = p;
      return [fragmentation_score_wmark(m, true), fragmentation_score_wmark(m, false)];
    };
    expect(wm(20)).toEqual([80, 90]);
    expect(wm(90)).toEqual([10, 15]);
    expect(wm(99)).toEqual([1, 1]);
    expect(wm(100)).toEqual([0, 0]);
    expect(wm(0)).toEqual([100, 100]);
  });
});
