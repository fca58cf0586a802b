// cli/sweep_worker.mjs: a worker thread of `pagesim sweep`. It registers
// tsx's loader in this thread (loaders do not follow workers) and runs
// the TypeScript worker body.
import { register } from "tsx/esm/api";

register();
await import(new URL("./sweep_worker.ts", import.meta.url).href);
