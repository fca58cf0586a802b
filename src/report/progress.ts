/**
 * report/progress.ts: the progress bars (cli-progress) on stderr. A run's:
 * simulated time reached, the simulation rate (simulated seconds per wall
 * second) and the ETA. It appears only once a run has taken more than a
 * second of wall time, and only when the caller says the terminal wants it
 * (not with --quiet or --json, not when stdout is not a TTY). Wall-clock
 * time is read here, in the report layer, never in the model. A sweep's
 * (SweepProgress): grid points finished, under the same conditions.
 */

import { SingleBar } from "cli-progress";
import { format_duration } from "../workload/units.ts";

/**
 * Whether a command shows a progress bar: not with --quiet, not with
 * --json, and only when its output goes to a terminal.
 */
export function wants_progress(
  opts: { quiet?: boolean; json?: boolean },
  out: { isTTY?: boolean },
): boolean {
  return !opts.quiet && !opts.json && out.isTTY === true;
}

export class RunProgress {
  private bar: SingleBar | null = null;
  private readonly start = Date.now();

  constructor(private readonly stream: NodeJS.WriteStream) {}

  update(t_ns: number, end_ns: number): void {
    const elapsed = (Date.now() - this.start) / 1000;
    if (!this.bar) {
      if (elapsed < 1) return;
      this.bar = new SingleBar({
        stream: this.stream,
        format:
          "{bar} {percentage}% | {sim} of {total_sim} simulated | {rate} sim-s/s | ETA {eta_formatted}",
        barsize: 24,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 20,
      });
      this.bar.start(end_ns, 0, { sim: "0 s", total_sim: format_duration(end_ns), rate: "-" });
    }
    this.bar.update(Math.min(t_ns, end_ns), {
      sim: format_duration(Math.round(t_ns / 1e6) * 1e6),
      rate: elapsed > 0 ? (t_ns / 1e9 / elapsed).toFixed(1) : "-",
    });
  }

  done(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

/**
 * The progress bar of a sweep: grid points finished of the total, and the
 * ETA; like RunProgress it appears only after a second of wall time.
 */
export class SweepProgress {
  private bar: SingleBar | null = null;
  private readonly start = Date.now();

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly total: number,
  ) {}

  update(done: number): void {
    if (!this.bar) {
      if (Date.now() - this.start < 1000) return;
      this.bar = new SingleBar({
        stream: this.stream,
        format: "{bar} {value} of {total} grid points | ETA {eta_formatted}",
        barsize: 24,
        hideCursor: true,
        clearOnComplete: true,
      });
      this.bar.start(this.total, 0);
    }
    this.bar.update(done);
  }

  done(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
