/**
 * bench/buddy.ts: the physical-memory benchmarks: order-0 alloc+free pairs,
 * a random mix of orders and migratetypes, bytes of state per page, and the
 * time to boot a 64 GiB machine.
 */

import { boot } from "../src/kernel/boot.ts";
import {
  __GFP_RECLAIMABLE,
  GFP_ATOMIC,
  GFP_HIGHUSER_MOVABLE,
  GFP_KERNEL,
} from "../src/kernel/gfp.ts";
import { __free_pages, alloc_pages } from "../src/kernel/page_alloc/alloc.ts";
import { Prng } from "../src/runtime/prng.ts";
import { type Benchmark, best_of, time_s } from "./types.ts";

const GiB = 1024 ** 3;

function order0_pairs_per_sec(): number {
  const m = boot({ mem_bytes: 4 * GiB, nr_cpus: 2 });
  const n = 5_000_000;
  // Warm up the JIT, then measure.
  for (let i = 0; i < 500_000; i++) __free_pages(m, 0, alloc_pages(m, 0, GFP_KERNEL, 0), 0);
  const s = best_of(3, () =>
    time_s(() => {
      for (let i = 0; i < n; i++) __free_pages(m, 0, alloc_pages(m, 0, GFP_KERNEL, 0), 0);
    }),
  );
  return n / s;
}

function mixed_ops_per_sec(): number {
  const m = boot({ mem_bytes: 4 * GiB, nr_cpus: 2 });
  const prng = new Prng(1);
  const gfps = [GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_KERNEL | __GFP_RECLAIMABLE, GFP_ATOMIC];
  const cap = 200_000;
  const pfns = new Int32Array(cap);
  const orders = new Uint8Array(cap);
  let held = 0;
  const step = (n: number) => {
    for (let i = 0; i < n; i++) {
      if (held < cap && (held === 0 || prng.chance(1, 2))) {
        // Orders 0..10, small ones far more often, as in a real kernel.
        const r = prng.below(64);
        const order = r < 40 ? 0 : r < 52 ? 1 : r < 58 ? 2 : r < 61 ? 3 : prng.below(11);
        const pfn = alloc_pages(m, prng.below(2), gfps[prng.below(4)], order);
        if (pfn >= 0) {
          pfns[held] = pfn;
          orders[held++] = order;
        }
      } else {
        const k = prng.below(held);
        __free_pages(m, prng.below(2), pfns[k], orders[k]);
        held--;
        pfns[k] = pfns[held];
        orders[k] = orders[held];
      }
    }
  };
  step(500_000);
  const n = 3_000_000;
  const s = best_of(3, () => time_s(() => step(n)));
  return n / s;
}

export const buddy_benchmarks: Benchmark[] = [
  {
    name: "buddy",
    run: () => {
      const m = boot({ mem_bytes: GiB, nr_cpus: 2 });
      const bytes = m.mem.bytes_per_page();
      const init = best_of(3, () => time_s(() => boot({ mem_bytes: 64 * GiB, nr_cpus: 8 })));
      return {
        buddy_order0_pairs_per_sec: { value: order0_pairs_per_sec(), unit: "pairs/s" },
        buddy_mixed_ops_per_sec: { value: mixed_ops_per_sec(), unit: "ops/s" },
        page_state_bytes_per_page: { value: bytes, unit: "bytes/page" },
        machine_init_64gib_seconds: { value: init, unit: "s" },
      };
    },
  },
];
