import { boot } from "../src/kernel/boot.ts";
import { alloc_pages, __free_pages } from "../src/kernel/page_alloc/alloc.ts";
import { GFP_KERNEL, GFP_HIGHUSER_MOVABLE } from "../src/kernel/gfp.ts";
const m = boot({ mem_bytes: 4 * 2**30, nr_cpus: 2 });
let n = 500_000;
for (let r = 0; r < 3; r++) {
const t0 = performance.now();
for (let i = 0; i < n; i++) { const p = alloc_pages(m, 0, GFP_KERNEL, 0); __free_pages(m, 0, p, 0); }
const dt = (performance.now() - t0) / 1000;
console.log("pairs/s", (n / dt / 1e6).toFixed(2), "M");
}
// mixed
const held: number[] = []; const ord: number[] = [];
let x = 12345; const rnd = () => (x = (x * 1103515245 + 12345) >>> 0);
const t1 = performance.now(); let ops = 0;
for (let i = 0; i < 2_000_000; i++) {
  if (held.length < 20000 && (rnd() & 1)) { const o = rnd() % 4; const g = (rnd()&1) ? GFP_KERNEL : GFP_HIGHUSER_MOVABLE; const p = alloc_pages(m, rnd()&1, g, o); if (p>=0) { held.push(p); ord.push(o);} }
  else if (held.length) { const k = rnd() % held.length; __free_pages(m, rnd()&1, held[k], ord[k]); held[k]=held[held.length-1]; ord[k]=ord[ord.length-1]; held.pop(); ord.pop(); }
  ops++;
}
console.log("mixed ops/s", (ops / ((performance.now()-t1)/1000) / 1e6).toFixed(2), "M");
