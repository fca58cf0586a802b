/**
 * bench/compaction.ts: a full compaction (/proc/sys/vm/compact_memory) of a
 * zone fragmented the way the compaction tests do it: anon pages faulted
 * in for all free memory, every second one unmapped. Reports the wall time
 * of compact_nodes() and the pages it migrated per second.
 */

import { boot } from "../src/kernel/boot.ts";
import { compact_nodes } from "../src/kernel/compaction.ts";
import { era2016 } from "../src/kernel/eras/era2016.ts";
import { do_anonymous_page, mm_new_process, zap_anon_page } from "../src/kernel/mm/owner.ts";
import { MmState } from "../src/kernel/mm/state.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import {
  COMPACTFREE_SCANNED,
  COMPACTMIGRATE_SCANNED,
  PGMIGRATE_SUCCESS,
} from "../src/kernel/vmstat_items.ts";
import { Execution } from "../src/runtime/execution.ts";
import type { Benchmark, Metrics } from "./types.ts";
import { time_s } from "./types.ts";

const GiB = 1024 ** 3;

interface CompactionRun {
  seconds: number;
  migrated: number;
  migrate_scanned: number;
  free_scanned: number;
}

function compaction_run(gib: number): CompactionRun {
  const m = boot({ mem_bytes: gib * GiB, layout: "normal", nr_cpus: 2 });
  const e = new Execution({ choose: () => 0 });
  const mm = new MmState(m, era2016, (c, k) => e.new_lock(c, k));
  const n_max = m.mem.nr_pages;
  const p = mm_new_process(mm, "bench", n_max);
  e.spawn("fault", function* (rt) {
    for (let v = 0; v < n_max; v++) if ((yield* do_anonymous_page(rt, mm, p, v, v)) < 0) break;
    for (let v = 0; v < n_max; v += 2) if (p.pages[v] >= 0) yield* zap_anon_page(rt, mm, p, v);
  });
  e.run((r) => r[0], Number.MAX_SAFE_INTEGER);
  drain_all_pages(m, null);
  const ev = m.vm_events;
  const before = [ev[PGMIGRATE_SUCCESS], ev[COMPACTMIGRATE_SCANNED], ev[COMPACTFREE_SCANNED]];
  e.spawn("compact", (rt) => compact_nodes(rt, mm));
  const seconds = time_s(() => e.run((r) => r[0], Number.MAX_SAFE_INTEGER));
  return {
    seconds,
    migrated: ev[PGMIGRATE_SUCCESS] - before[0],
    migrate_scanned: ev[COMPACTMIGRATE_SCANNED] - before[1],
    free_scanned: ev[COMPACTFREE_SCANNED] - before[2],
  };
}

export const compaction_benchmarks: Benchmark[] = [
  {
    name: "compaction",
    run: (): Metrics => {
      const gib = Number(process.env.PAGESIM_BENCH_COMPACTION_GIB ?? 16);
      const r = compaction_run(gib);
      return {
        [`compaction_${gib}gib_wall_seconds`]: { value: r.seconds, unit: "s" },
        compaction_pages_migrated_per_sec: { value: r.migrated / r.seconds, unit: "pages/s" },
        // Pages each scanner walked over (compact_migrate_scanned and
        // compact_free_scanned) per second of the whole run.
        compaction_migrate_scan_pages_per_sec: {
          value: r.migrate_scanned / r.seconds,
          unit: "pages/s",
        },
        compaction_free_scan_pages_per_sec: { value: r.free_scanned / r.seconds, unit: "pages/s" },
      };
    },
  },
];
