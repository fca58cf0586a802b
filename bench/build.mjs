// bench/build.mjs: bundle the benchmark suite with esbuild before running it.
//
// The benchmarks measure the model's code as a production build runs it:
// one bundle, as `esbuild --bundle` makes it. Under tsx's on-the-fly
// transform every module's exports become getters that V8 does not inline
// across modules, which costs the hot paths 10-40% (the allocator's order-0
// pair and a full compaction, measured); numbers from that setup would
// measure the loader, not the kernel model.
import { build } from "esbuild";

await build({
  entryPoints: [new URL("./run.ts", import.meta.url).pathname],
  bundle: true,
  platform: "node",
  format: "esm",
  packages: "external",
  outfile: new URL("./run.bundle.mjs", import.meta.url).pathname,
  logLevel: "warning",
});
