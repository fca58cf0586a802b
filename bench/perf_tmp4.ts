import { boot } from "../src/kernel/boot.ts";
import { alloc_pages, __free_pages } from "../src/kernel/page_alloc/alloc.ts";
import { GFP_KERNEL } from "../src/kernel/gfp.ts";
const m = boot({ mem_bytes: 4 * 2**30, nr_cpus: 2 });
const K = 200_000; const pf = new Int32Array(K);
for (let r = 0; r < 5; r++) {
let t0 = performance.now();
for (let i = 0; i < K; i++) pf[i] = alloc_pages(m, 0, GFP_KERNEL, 0);
const ta = performance.now() - t0; t0 = performance.now();
for (let i = 0; i < K; i++) __free_pages(m, 0, pf[i], 0);
const tf = performance.now() - t0;
console.log("alloc ns", (ta*1e6/K).toFixed(0), "free ns", (tf*1e6/K).toFixed(0));
}
const pcp = m.zones[2].per_cpu_pageset[0]; console.log(pcp);
