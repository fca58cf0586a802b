/**
 * cli/sweep_worker.ts: the body of a `pagesim sweep` worker thread: it
 * receives grid points ({ index, values, scenario }), runs each scenario to
 * its end and posts back the point's table row, or the error that stopped it.
 */

import { parentPort } from "node:worker_threads";
import { run_scenario } from "../sim/scenario_run.ts";
import { type GridPoint, sweep_row } from "../sim/sweep.ts";

/** Errors that mean the model broke (exit 1) rather than a bad scenario. */
const KERNEL_BUGS = ["KernelBug", "BadPageError", "LockBug", "DeadlockError", "LockdepError"];

const port = parentPort;
if (!port) throw new Error("sweep_worker: not a worker thread");
port.on("message", (p: GridPoint | null) => {
  if (p === null) {
    port.close();
    return;
  }
  try {
    const r = run_scenario(p.scenario);
    port.postMessage({ index: p.index, row: sweep_row(p, r) });
  } catch (e) {
    const err = e as Error;
    port.postMessage({
      index: p.index,
      error: `${err.name}: ${err.message}`,
      kernel_bug: KERNEL_BUGS.includes(err.name),
      bad_machine: err.name === "MachineConfigError",
    });
  }
});
