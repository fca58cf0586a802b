/**
 * report/progress.ts: a one-line progress indicator for runs longer than a
 * second, drawn on a terminal only (the caller decides). It redraws at most
 * every 1% so it costs nothing measurable. Wall-clock time is read here, in
 * the report layer, never in the model.
 */
export class ProgressLine {
  private last = -1;
  private readonly start = Date.now();
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly label: string,
  ) {}

  update(fraction: number): void {
    const pct = Math.floor(fraction * 100);
    if (pct === this.last) return;
    this.last = pct;
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = fraction > 0 ? (elapsed / fraction) * (1 - fraction) : 0;
    this.stream.write(
      `\r${this.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(pct).padStart(3)}%  ${elapsed.toFixed(1)}s elapsed, ETA ${eta.toFixed(1)}s `,
    );
  }

  done(): void {
    this.stream.write("\r\x1b[K");
  }
}
