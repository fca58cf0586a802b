/**
 * sim/alloc_churn.ts: the built-in allocation workload of `pagesim run`
 * until scenarios arrive: a mix of user (movable), kernel (unmovable), slab
 * (reclaimable) and atomic allocations of small orders that fills memory to a
 * target and churns around it, then a round of transparent-huge-page
 * allocation attempts (order 9, no direct compaction, as a THP fault with
 * defrag "madvise" would try), all driven by the seeded PRNG.
 *
 * Every allocation and free goes through alloc_pages / __free_pages of the
 * kernel model; the periodic vmstat work (pcp high decay) runs once per
 * simulated stat interval, here every `ops_per_stat_interval` operations.
 */

import {
  __GFP_COMP,
  __GFP_RECLAIMABLE,
  GFP_ATOMIC,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
  GFP_TRANSHUGE_LIGHT,
  type Gfp,
} from "../kernel/gfp.ts";
import type { Machine } from "../kernel/machine.ts";
import { __free_pages, alloc_pages } from "../kernel/page_alloc/alloc.ts";
import { vmstat_update } from "../kernel/vmstat.ts";
import type { Prng } from "../runtime/prng.ts";
import { Digest } from "./digest.ts";

export interface ChurnConfig {
  /** Allocation and free operations in the churn phase. */
  ops: number;
  /** Memory to keep allocated, in thousandths of managed pages. */
  target_permille: number;
  /** Order-9 allocation attempts at the end. */
  thp_attempts: number;
  ops_per_stat_interval: number;
}

export const DEFAULT_CHURN: ChurnConfig = {
  ops: 2_000_000,
  target_permille: 700,
  thp_attempts: 512,
  ops_per_stat_interval: 100_000,
};

/** One kind of allocation: weight out of the total, gfp, and largest order. */
interface AllocKind {
  name: string;
  weight: number;
  gfp: Gfp;
  max_order: number;
}

const KINDS: AllocKind[] = [
  { name: "user", weight: 70, gfp: GFP_HIGHUSER_MOVABLE, max_order: 0 },
  { name: "kernel", weight: 15, gfp: GFP_KERNEL, max_order: 3 },
  { name: "slab", weight: 10, gfp: GFP_KERNEL | __GFP_RECLAIMABLE, max_order: 1 },
  { name: "atomic", weight: 5, gfp: GFP_ATOMIC, max_order: 2 },
];
const TOTAL_WEIGHT = KINDS.reduce((n, k) => n + k.weight, 0);

export interface ChurnResult {
  allocs: number;
  alloc_failures: number;
  frees: number;
  pages_held: number;
  thp_attempts: number;
  thp_success: number;
  digest: string;
}

/** Run the workload; `progress` is called with the fraction done now and then. */
export function run_alloc_churn(
  m: Machine,
  prng: Prng,
  cfg: ChurnConfig,
  progress?: (done: number) => void,
): ChurnResult {
  let managed = 0;
  for (const z of m.populated) managed += z.managed_pages;
  const target = Math.floor((managed * cfg.target_permille) / 1000);
  // Held blocks: pfn and order, swap-removed on free.
  const cap = managed + 1;
  const held_pfn = new Int32Array(cap);
  const held_order = new Uint8Array(cap);
  let nheld = 0;
  let pages_held = 0;
  const digest = new Digest();
  const r: ChurnResult = {
    allocs: 0,
    alloc_failures: 0,
    frees: 0,
    pages_held: 0,
    thp_attempts: 0,
    thp_success: 0,
    digest: "",
  };

  for (let op = 0; op < cfg.ops; op++) {
    const cpu = m.nr_cpus > 1 ? prng.below(m.nr_cpus) : 0;
    const want_alloc = pages_held < target ? prng.chance(3, 4) : prng.chance(1, 4);
    if (want_alloc || nheld === 0) {
      let w = prng.below(TOTAL_WEIGHT);
      let kind = KINDS[0];
      for (const k of KINDS) {
        if (w < k.weight) {
          kind = k;
          break;
        }
        w -= k.weight;
      }
      const order = kind.max_order ? prng.below(kind.max_order + 1) : 0;
      const pfn = alloc_pages(m, cpu, kind.gfp, order);
      digest.add(pfn);
      if (pfn < 0) {
        r.alloc_failures++;
      } else {
        r.allocs++;
        held_pfn[nheld] = pfn;
        held_order[nheld] = order;
        nheld++;
        pages_held += 1 << order;
      }
    } else {
      const i = prng.below(nheld);
      const pfn = held_pfn[i];
      const order = held_order[i];
      __free_pages(m, cpu, pfn, order);
      digest.add(~pfn);
      nheld--;
      held_pfn[i] = held_pfn[nheld];
      held_order[i] = held_order[nheld];
      pages_held -= 1 << order;
      r.frees++;
    }
    if ((op + 1) % cfg.ops_per_stat_interval === 0) {
      vmstat_update(m);
      progress?.((op + 1) / (cfg.ops + cfg.thp_attempts));
    }
  }

  // Transparent huge pages: order-9 attempts without direct reclaim or
  // compaction; the successes are kept, as a process would keep them.
  for (let i = 0; i < cfg.thp_attempts; i++) {
    r.thp_attempts++;
    const pfn = alloc_pages(m, i % m.nr_cpus, GFP_TRANSHUGE_LIGHT | __GFP_COMP, 9);
    digest.add(pfn);
    if (pfn >= 0) {
      r.thp_success++;
      pages_held += 512;
    }
  }
  r.pages_held = pages_held;
  r.digest = digest.hex();
  progress?.(1);
  return r;
}
