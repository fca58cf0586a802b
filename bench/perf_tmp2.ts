import { boot } from "../src/kernel/boot.ts";
import { alloc_pages, __free_pages } from "../src/kernel/page_alloc/alloc.ts";
import { GFP_KERNEL } from "../src/kernel/gfp.ts";
const m = boot({ mem_bytes: 4 * 2**30, nr_cpus: 2 });
const n = 10_000_000;
const t0 = performance.now();
for (let i = 0; i < n; i++) { const p = alloc_pages(m, 0, GFP_KERNEL, 0); __free_pages(m, 0, p, 0); }
console.log("pairs/s", (n / ((performance.now() - t0) / 1000) / 1e6).toFixed(2), "M");
