/**
 * cli/run.ts: `pagesim run` without a scenario: boot a machine, run the
 * built-in allocation workload, print /proc files and a summary.
 */

import { boot, type Layout } from "../kernel/boot.ts";
import { NR_PAGE_ORDERS } from "../kernel/mmzone.ts";
import { zone_pcp_pages } from "../kernel/page_alloc/pcp.ts";
import {
  debugfs_extfrag_index,
  debugfs_unusable_index,
  proc_buddyinfo,
  proc_pagetypeinfo,
  proc_vmstat,
  proc_zoneinfo,
  vmstat_values,
} from "../kernel/procfs.ts";
import { NR_FREE_PAGES } from "../kernel/vmstat_items.ts";
import { ProgressLine } from "../report/progress.ts";
import { Prng } from "../runtime/prng.ts";
import { DEFAULT_CHURN, run_alloc_churn } from "../sim/alloc_churn.ts";
import { format_size } from "../workload/units.ts";

export interface RunOptions {
  mem: number;
  cpus: number;
  layout: Layout;
  seed: number;
  ops: number;
  thp: number;
  proc: string[];
  json?: boolean;
  quiet?: boolean;
}

const PROC: Record<string, [string, (m: ReturnType<typeof boot>) => string]> = {
  buddyinfo: ["/proc/buddyinfo", proc_buddyinfo],
  pagetypeinfo: ["/proc/pagetypeinfo", proc_pagetypeinfo],
  zoneinfo: ["/proc/zoneinfo", proc_zoneinfo],
  vmstat: ["/proc/vmstat", proc_vmstat],
  extfrag_index: ["/sys/kernel/debug/extfrag/extfrag_index", debugfs_extfrag_index],
  unusable_index: ["/sys/kernel/debug/extfrag/unusable_index", debugfs_unusable_index],
};

export function run_default(opts: RunOptions): void {
  // Boot first: a bad configuration is reported before anything is printed.
  const m = boot({ mem_bytes: opts.mem, nr_cpus: opts.cpus, layout: opts.layout });
  const out = process.stdout;
  if (!opts.json) {
    out.write(
      `pagesim run: seed ${opts.seed}, ${format_size(opts.mem)} ${opts.layout} guest, ${opts.cpus} CPUs, ` +
        `${opts.ops} operations, ${opts.thp} THP attempts\n`,
    );
  }
  const prng = new Prng(opts.seed);
  const show_progress = !opts.quiet && !opts.json && process.stderr.isTTY === true;
  const bar = show_progress ? new ProgressLine(process.stderr, "allocating") : null;
  const r = run_alloc_churn(
    m,
    prng,
    { ...DEFAULT_CHURN, ops: opts.ops, thp_attempts: opts.thp },
    (f) => bar?.update(f),
  );
  bar?.done();

  const zones = m.populated.map((z) => ({
    name: z.name,
    managed_pages: z.managed_pages,
    free_pages: z.vm_stat[NR_FREE_PAGES],
    pcp_pages: zone_pcp_pages(z),
    free_blocks: Array.from(z.nr_free),
  }));
  if (opts.json) {
    const vmstat = Object.fromEntries(vmstat_values(m));
    out.write(
      `${JSON.stringify({
        seed: opts.seed,
        machine: { mem_bytes: opts.mem, cpus: opts.cpus, layout: opts.layout },
        min_free_kbytes: m.sysctl.min_free_kbytes,
        workload: r,
        zones,
        vmstat,
        proc: Object.fromEntries(opts.proc.map((p) => [PROC[p][0], PROC[p][1](m)])),
      })}\n`,
    );
    return;
  }
  out.write(
    `\nworkload: ${r.allocs} allocations (${r.alloc_failures} failed), ${r.frees} frees, ` +
      `${format_size(r.pages_held * 4096)} held; THP ${r.thp_success}/${r.thp_attempts} succeeded\n`,
  );
  out.write(`min_free_kbytes ${m.sysctl.min_free_kbytes}; event digest ${r.digest}\n\n`);
  out.write("zone        managed        free    pcp lists   free 2MiB+ blocks\n");
  for (const z of zones) {
    let big = 0;
    for (let o = 9; o < NR_PAGE_ORDERS; o++) big += z.free_blocks[o] << (o - 9);
    out.write(
      `${z.name.padEnd(8)} ${format_size(z.managed_pages * 4096).padStart(10)} ${format_size(z.free_pages * 4096).padStart(11)} ` +
        `${format_size(z.pcp_pages * 4096).padStart(12)} ${String(big).padStart(19)}\n`,
    );
  }
  for (const p of opts.proc) {
    out.write(`\n${PROC[p][0]}:\n${PROC[p][1](m)}`);
  }
}
