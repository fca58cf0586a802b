// The progress bars (report/progress.ts): when a command shows one, and
// what a run's bar says once it appears. Vitest's fake timers stand in for
// the wall clock and cli-progress's redraw timer, so nothing here depends
// on timing.
import { PassThrough } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { RunProgress, SweepProgress, wants_progress } from "../src/report/progress.ts";

/** A terminal-like stream that keeps what is written to it. */
function fake_tty() {
  const s = new PassThrough() as PassThrough & { isTTY: boolean; columns: number };
  s.isTTY = true;
  s.columns = 100;
  let text = "";
  s.on("data", (d: Buffer) => {
    text += d.toString("utf8");
  });
  return { stream: s as unknown as NodeJS.WriteStream, text: () => text };
}

describe("progress bars", () => {
  it("progress: shown only on a terminal, and never with --quiet or --json", () => {
    expect(wants_progress({}, { isTTY: true })).toBe(true);
    expect(wants_progress({ quiet: true }, { isTTY: true })).toBe(false);
    expect(wants_progress({ json: true }, { isTTY: true })).toBe(false);
    expect(wants_progress({}, { isTTY: false })).toBe(false);
    expect(wants_progress({}, {})).toBe(false);
  });

  it("progress: a run's bar stays hidden for the first second, then shows simulated time, rate and ETA", () => {
    // Fake timers: the bar's clock and cli-progress's redraw timer both
    // move only when the test says so.
    vi.useFakeTimers();
    try {
      const tty = fake_tty();
      const bar = new RunProgress(tty.stream);
      vi.advanceTimersByTime(500);
      bar.update(1e9, 10e9);
      vi.advanceTimersByTime(200);
      expect(tty.text()).toBe("");
      vi.advanceTimersByTime(800); // 1.5 s of wall time, 3 simulated seconds: 2.0 sim-s/s
      bar.update(3e9, 10e9);
      vi.advanceTimersByTime(200);
      const shown = tty.text();
      expect(shown).toContain("3 s of 10 s simulated");
      expect(shown).toContain("2.0 sim-s/s");
      expect(shown).toContain("30%");
      expect(shown).toMatch(/ETA \d+s/);
      bar.done();
    } finally {
      vi.useRealTimers();
    }
  });

  it("progress: a sweep's bar counts grid points once a second has passed", () => {
    vi.useFakeTimers();
    try {
      const tty = fake_tty();
      const bar = new SweepProgress(tty.stream, 6);
      bar.update(1);
      vi.advanceTimersByTime(200);
      expect(tty.text()).toBe("");
      vi.advanceTimersByTime(1800);
      bar.update(4);
      vi.advanceTimersByTime(200);
      expect(tty.text()).toContain("4 of 6 grid points");
      bar.done();
    } finally {
      vi.useRealTimers();
    }
  });
});
