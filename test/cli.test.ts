// The pagesim command as a user runs it: exit codes, JSON contract, determinism.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../bin/pagesim.mjs", import.meta.url));

function pagesim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("pagesim run", () => {
  it("cli: a small run prints buddyinfo and pagetypeinfo in the kernel's layout", () => {
    const r = pagesim("run", "--mem", "256MiB", "--ops", "20000", "--thp", "4", "--quiet");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^pagesim run: seed 1, 256 MiB q35 guest, 2 CPUs/);
    expect(r.out).toMatch(/\/proc\/buddyinfo:\nNode 0, zone {6}DMA( +\d+){11} \n/);
    expect(r.out).toContain("Page block order: 9\nPages per block:  512\n");
  });

  it("cli: --json gives one object whose vmstat counters add up", () => {
    const r = pagesim("run", "--mem", "128MiB", "--ops", "5000", "--thp", "0", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.seed).toBe(1);
    // Every allocation is counted in exactly one pgalloc_<zone> counter, in pages;
    // the workload allocated at least one page per successful allocation.
    const pgalloc = ["dma", "dma32", "normal", "movable", "device"].reduce(
      (n, z) => n + j.vmstat[`pgalloc_${z}`],
      0,
    );
    expect(pgalloc).toBeGreaterThanOrEqual(j.workload.allocs);
    // nr_free_pages is the sum of the zones' free pages.
    const free = j.zones.reduce((n: number, z: { free_pages: number }) => n + z.free_pages, 0);
    expect(j.vmstat.nr_free_pages).toBe(free);
  });

  it("cli: the same seed gives the same digest, another seed another", () => {
    const a = JSON.parse(
      pagesim("run", "--mem", "64MiB", "--ops", "3000", "--json", "--seed", "5").out,
    );
    const b = JSON.parse(
      pagesim("run", "--mem", "64MiB", "--ops", "3000", "--json", "--seed", "5").out,
    );
    const c = JSON.parse(
      pagesim("run", "--mem", "64MiB", "--ops", "3000", "--json", "--seed", "6").out,
    );
    expect(a.workload.digest).toBe(b.workload.digest);
    expect(a.workload.digest).not.toBe(c.workload.digest);
  });

  it("cli: bad arguments exit 2 with a message naming the problem", () => {
    const bad = [
      [["run", "--mem", "lots"], /--mem.*expected a size like '8GiB'/],
      [["run", "--mem", "1000001"], /mem_bytes: 1000001 is not a multiple of the 4 KiB page size/],
      [["run", "--mem", "1000"], /mem_bytes: expected a size from 65536 bytes/],
      [["run", "--cpus", "0"], /--cpus must be an integer from 1 to 1024/],
      [["run", "--layout", "sun4m"], /--layout.*sun4m/],
      [["run", "--proc", "meminfo"], /unknown file 'meminfo'/],
      [["frobnicate"], /unknown command/],
    ] as const;
    for (const [args, msg] of bad) {
      const r = pagesim(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.out).toBe("");
    }
  });

  it("cli: --help shows an example and exits 0", () => {
    const r = pagesim("run", "--help");
    expect(r.code).toBe(0);
    expect(r.out).toContain("Examples:");
  });
});
