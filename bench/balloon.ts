/**
 * bench/balloon.ts: the virtio balloon against the host model.
 *  - balloon_inflate_pages_per_sec / balloon_deflate_pages_per_sec: an
 *    8 GiB balloon in a 16 GiB guest, inflated from empty and deflated back,
 *    with the host thread answering every buffer (wall time of the whole
 *    exchange, in batches of 256 pfns);
 *  - balloon_compaction_16gib_wall_seconds: compact_memory on a 16 GiB guest
 *    whose 4 GiB balloon (exactly 1,048,576 pages; the size is in the unit
 *    and in balloon_compaction_balloon_pages) took every fourth page, and
 *    a few thousand more from the start of memory, while a process filled
 *    it (the process then freed another fourth), balloon compaction on;
 *    the driver and host threads answer each migration's two messages.
 * Both run their guest in the runtime's coalesce mode (runtime/execution.ts):
 * the same steps, in the same order, as one step per scheduler pick (the
 * tests compare them), without a round trip for each uncontended step.
 */

import { balloon_settled, boot_balloon_guest, run_until } from "../src/host/rig.ts";
import { compact_nodes } from "../src/kernel/compaction.ts";
import { do_anonymous_page, mm_new_process, zap_anon_page } from "../src/kernel/mm/owner.ts";
import { drain_all_pages } from "../src/kernel/page_alloc/pcp.ts";
import { VIRTIO_BALLOON_F_MUST_TELL_HOST } from "../src/kernel/virtio_balloon.ts";
import { BALLOON_MIGRATE, PGMIGRATE_SUCCESS } from "../src/kernel/vmstat_items.ts";
import type { Benchmark, Metrics } from "./types.ts";
import { time_s } from "./types.ts";

const GiB = 1024 ** 3;
const FEATURES = 1 << VIRTIO_BALLOON_F_MUST_TELL_HOST;
/** The compaction benchmark's balloon: exactly 4 GiB. */
const BALLOON_PAGES = (4 * GiB) / 4096;
/** Free pages left beside the balloon (above the 16 GiB guest's watermarks). */
const HEADROOM_PAGES = 8192;

function inflate_deflate(): Metrics {
  const g = boot_balloon_guest({
    machine: { mem_bytes: 16 * GiB, nr_cpus: 2 },
    features: FEATURES,
    coalesce: true,
  });
  const pages = (8 * GiB) / 4096;
  g.hg.set_target_pages(pages);
  const t_in = time_s(() => run_until(g.e, () => balloon_settled(g), Number.MAX_SAFE_INTEGER));
  if (g.vb.num_pages !== pages) throw new Error(`inflate reached ${g.vb.num_pages} of ${pages}`);
  g.hg.set_target_pages(0);
  const t_out = time_s(() => run_until(g.e, () => balloon_settled(g), Number.MAX_SAFE_INTEGER));
  if (g.vb.num_pages !== 0) throw new Error(`deflate left ${g.vb.num_pages}`);
  return {
    balloon_inflate_pages_per_sec: { value: pages / t_in, unit: "pages/s" },
    balloon_deflate_pages_per_sec: { value: pages / t_out, unit: "pages/s" },
  };
}

function compaction(): Metrics {
  const g = boot_balloon_guest({
    machine: { mem_bytes: 16 * GiB, nr_cpus: 2 },
    features: FEATURES,
    coalesce: true,
  });
  const { m, mm, e, hg } = g;
  const n = m.mem.nr_pages;
  const p = mm_new_process(mm, "bench", n);
  let faulted = 0;
  const f = e.spawn("fault", function* (rt) {
    for (let v = 0; v < n; v++) {
      if ((yield* do_anonymous_page(rt, mm, p, v, v)) < 0) break;
      faulted++;
    }
    for (let v = 0; v < faulted; v += 4) yield* zap_anon_page(rt, mm, p, v);
    // A fourth of the faulted pages is a little less than the balloon plus
    // the watermarks: free one more page in each of the first groups of four.
    const extra = Math.max(0, BALLOON_PAGES + HEADROOM_PAGES - Math.ceil(faulted / 4));
    for (let i = 0; i < extra; i++) yield* zap_anon_page(rt, mm, p, 4 * i + 1);
  });
  run_until(e, () => e.threads[f].done, Number.MAX_SAFE_INTEGER);
  drain_all_pages(m, null);
  hg.set_target_pages(BALLOON_PAGES);
  run_until(e, () => balloon_settled(g), Number.MAX_SAFE_INTEGER);
  if (g.vb.num_pages !== BALLOON_PAGES)
    throw new Error(`balloon reached ${g.vb.num_pages} of ${BALLOON_PAGES} pages`);
  const u = e.spawn("unmap", function* (rt) {
    for (let v = 2; v < faulted; v += 4) yield* zap_anon_page(rt, mm, p, v);
  });
  run_until(e, () => e.threads[u].done, Number.MAX_SAFE_INTEGER);
  drain_all_pages(m, null);
  const ev = m.vm_events;
  const before = [ev[PGMIGRATE_SUCCESS], ev[BALLOON_MIGRATE]];
  const c = e.spawn("compact", (rt) => compact_nodes(rt, mm));
  const seconds = time_s(() => run_until(e, () => e.threads[c].done, Number.MAX_SAFE_INTEGER));
  return {
    balloon_compaction_16gib_wall_seconds: {
      value: seconds,
      unit: "s (16 GiB guest, 4 GiB balloon = 1,048,576 pages)",
    },
    balloon_compaction_balloon_pages: { value: g.vb.num_pages, unit: "pages (balloon size)" },
    balloon_compaction_pages_migrated: { value: ev[PGMIGRATE_SUCCESS] - before[0], unit: "pages" },
    balloon_compaction_balloon_pages_migrated: {
      value: ev[BALLOON_MIGRATE] - before[1],
      unit: "pages",
    },
  };
}

export const balloon_benchmarks: Benchmark[] = [
  { name: "balloon_inflate_deflate", run: inflate_deflate },
  { name: "balloon_compaction", run: compaction },
];
