// The pagesim command as a user runs it: exit codes, messages, the JSON contract,
// determinism, and the report directory (parsed, not eyeballed).
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type DefaultTreeAdapterMap, parse } from "parse5";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../bin/pagesim.mjs", import.meta.url));
const SMALL = fileURLToPath(new URL("./scenarios/small.yaml", import.meta.url));

function pagesim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The same, without waiting: independent runs go in parallel. */
function pagesim_async(
  ...args: string[]
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: "utf8" }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : null) : 0, out, err });
    });
  });
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "pagesim-test-"));
}

type Node = DefaultTreeAdapterMap["node"];
type Element = DefaultTreeAdapterMap["element"];

function elements(root: Node): Element[] {
  const out: Element[] = [];
  const walk = (n: Node) => {
    if ("tagName" in n) out.push(n as Element);
    const kids = "childNodes" in n ? n.childNodes : [];
    for (const c of kids) walk(c as Node);
    if ("content" in n && n.content) walk(n.content as Node);
  };
  walk(root);
  return out;
}

const attr = (e: Element, name: string) => e.attrs.find((a) => a.name === name)?.value;
const text = (e: Element) =>
  e.childNodes.map((c) => ("value" in c ? (c as { value: string }).value : "")).join("");

describe("pagesim run", () => {
  it("cli: a scenario file runs and prints the summary and the /proc files asked for", () => {
    const r = pagesim("run", SMALL, "--quiet", "--proc", "buddyinfo,pagetypeinfo");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^pagesim run: scenario small, seed 3, era 2016\n {2}256 MiB q35 guest, 2 CPUs, 4 s simulated\n/,
    );
    expect(r.out).toContain("Free memory by order (all zones)");
    expect(r.out).toMatch(/THP faults: \d+ tried, \d+ succeeded/);
    expect(r.out).toMatch(/\/proc\/buddyinfo:\nNode 0, zone {6}DMA( +\d+){11} \n/);
    expect(r.out).toContain("Page block order: 9\nPages per block:  512\n");
    for (const line of r.out.split("\n/proc/buddyinfo")[0].split("\n")) {
      expect(line.length, line).toBeLessThanOrEqual(80);
    }
  });

  it("cli: --json gives one object with the documented fields", () => {
    const r = pagesim("run", SMALL, "--json", "--seed", "9");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.scenario).toBe("small");
    expect(j.seed).toBe(9);
    expect(j.era).toBe("2016");
    expect(j.digest).toMatch(/^[0-9a-f]{8}$/);
    // Final /proc/vmstat by kernel names; nr_free_pages is the zones' free pages.
    expect(Object.keys(j.vmstat)).toEqual(
      expect.arrayContaining([
        "nr_free_pages",
        "pgmigrate_success",
        "thp_fault_alloc",
        "compact_isolated",
      ]),
    );
    let free = 0;
    for (const [zone, orders] of Object.entries(j.buddyinfo as Record<string, number[]>)) {
      expect(["DMA", "DMA32", "Normal", "Movable"]).toContain(zone);
      expect(orders).toHaveLength(11);
      orders.forEach((n, o) => {
        free += n * 2 ** o;
      });
    }
    // buddyinfo counts free blocks; the rest of nr_free_pages sits on the pcp lists.
    expect(free).toBeLessThanOrEqual(j.vmstat.nr_free_pages);
    expect(j.timeline).toHaveLength(9);
    expect(j.timeline[0]).toMatchObject({ t_ns: 0 });
    expect(j.timeline[8].vmstat.nr_free_pages).toBe(j.vmstat.nr_free_pages);
    expect(j.thp.attempts).toBe(j.vmstat.thp_fault_alloc + j.vmstat.thp_fault_fallback);
  });

  it("cli: the same seed gives the same digest, another seed another", async () => {
    const [a, b, c] = (
      await Promise.all(
        ["5", "5", "6"].map((seed) =>
          pagesim_async("run", SMALL, "--json", "--seed", seed, "--duration", "1s"),
        ),
      )
    ).map((r) => JSON.parse(r.out));
    expect(a.digest).toBe(b.digest);
    expect(a.vmstat).toEqual(b.vmstat);
    expect(a.digest).not.toBe(c.digest);
  });

  it("cli: a bad scenario exits 2 with one line per problem, its path and line, and runs nothing", () => {
    const dir = tmp();
    const file = join(dir, "bad.yaml");
    writeFileSync(
      file,
      "name: bad\nmachine:\n  memory: 1GiB\nworkload:\n  - type: thp\n    count: 1\n  - type: alloc_anon\n    size: lots\n  - type: kernel_alloc\n    size: 1MiB\n    order: 7\n",
    );
    const out = join(dir, "out");
    const r = pagesim("run", file, "--out", out);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toContain(
      `${file}: workload[1].size: expected a size like '512MiB', got 'lots' (line 8)`,
    );
    expect(r.err).toContain(
      `${file}: workload[2].order: expected an integer from 0 to 3, got 7 (line 11)`,
    );
    expect(existsSync(out)).toBe(false);
  });

  it("cli: what is not modelled or did not exist in the era is refused with exit 2 and its line", () => {
    const dir = tmp();
    const file = join(dir, "balloon.yaml");
    writeFileSync(file, "name: b\nhost:\n  memory: 16GiB\n");
    const r = pagesim("run", file);
    expect(r.code).toBe(2);
    expect(r.err).toContain("host: a host needs a balloon device in the guest (balloons) (line 2)");
    expect(r.out).toBe("");
    // A balloon feature the era's kernel did not have yet, with its line.
    const old = join(dir, "old.yaml");
    writeFileSync(old, "name: o\nballoons:\n  - features: [stats_vq, free_page_reporting]\n");
    const era = pagesim("run", old, "--era", "2014");
    expect(era.code).toBe(2);
    expect(era.err).toContain(
      "balloons[0].features[1]: free_page_reporting (VIRTIO_BALLOON_F_REPORTING) came with Linux v5.7; era 2014 models v3.18-v4.7, whose virtio_balloon driver lacks it (line 3)",
    );
    expect(era.out).toBe("");
  });

  it("cli: bad arguments exit 2 with a message naming the problem", async () => {
    const bad = [
      [["run", "--mem", "lots"], /--mem.*expected a size like '8GiB'/],
      [
        ["run", SMALL, "--mem", "1000001"],
        /mem_bytes: 1000001 is not a multiple of the 4 KiB page size/,
      ],
      [["run", "--cpus", "0"], /--cpus must be an integer from 1 to 1024/],
      [["run", "--layout", "sun4m"], /--layout.*sun4m/],
      [["run", "--era", "1999"], /--era.*1999/],
      [["run", "--proc", "meminfo"], /unknown file 'meminfo'/],
      [["run", "/no/such/file.yaml"], /\/no\/such\/file\.yaml: cannot read/],
      [["frobnicate"], /unknown command/],
    ] as const;
    const runs = await Promise.all(bad.map(([args]) => pagesim_async(...args)));
    for (const [i, [args, msg]] of bad.entries()) {
      const r = runs[i];
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.out).toBe("");
    }
  });

  it("cli: --help on every command shows an example and exits 0", async () => {
    const cmds = [
      ["--help"],
      ["run", "--help"],
      ["check", "--help"],
      ["replay", "--help"],
      ["sweep", "--help"],
      ["help", "replay"],
    ];
    const runs = await Promise.all(cmds.map((c) => pagesim_async(...c)));
    for (const [i, cmd] of cmds.entries()) {
      const r = runs[i];
      const what = cmd.join(" ");
      expect(r.code, what).toBe(0);
      expect(r.out, what).toMatch(/^Usage: pagesim/);
      // An "Example:" or "Examples:" section with at least one command
      // under it (after a "# what it shows" comment, in check's).
      expect(r.out, what).toMatch(/\nExamples?:\n( {2}#.*\n)* {2}pagesim \w+/);
      // 80 columns.
      for (const l of r.out.split("\n")) expect(l.length, `${what}: ${l}`).toBeLessThanOrEqual(80);
    }
    // The command list gives each command's description as one wrapped paragraph.
    expect(runs[0].out).toContain("run its workload, sample");
  });

  it("cli: a reader that closes stdout early (pagesim help run | head -3) ends it quietly, exit 0", async () => {
    const child = spawn(process.execPath, [BIN, "help", "run"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Closed before the command (which takes a while to load) writes anything.
    child.stdout.destroy();
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(err).toBe("");
    expect(code).toBe(0);
  });

  it("cli: --out writes result.json, metrics.csv, /proc samples, an HTML report and a trace", () => {
    const out = join(tmp(), "report");
    const r = pagesim("run", SMALL, "--quiet", "--out", out);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`report written to:\n  ${out}/report.html\n`);
    const res = JSON.parse(readFileSync(join(out, "result.json"), "utf8"));
    expect(res.scenario).toBe("small");
    expect(res.scenario_config.machine.memory).toBe(256 * 1024 ** 2);
    // metrics.csv: a header and one row per sample.
    const csv = readFileSync(join(out, "metrics.csv"), "utf8").trim().split("\n");
    expect(csv[0].split(",")).toEqual(
      expect.arrayContaining(["t_s", "free_blocks_order_9", "nr_free_pages", "thp_fault_alloc"]),
    );
    expect(csv).toHaveLength(res.timeline.length + 1);
    // /proc snapshots at each sample, in the kernel's formats.
    const samples = readdirSync(join(out, "samples")).filter((d) => /^\d{4}$/.test(d));
    expect(samples).toHaveLength(res.timeline.length);
    expect(readFileSync(join(out, "samples", "0001", "buddyinfo"), "utf8")).toMatch(
      /^Node 0, zone {6}DMA( +\d+){11} \n/,
    );
    expect(readFileSync(join(out, "samples", "0001", "pagetypeinfo"), "utf8")).toContain(
      "Page block order: 9",
    );
    expect(readFileSync(join(out, "samples", "0001", "vmstat"), "utf8")).toMatch(
      /^nr_free_pages \d+\n/,
    );

    // report.html: charts with data and a memory picture per moment.
    const doc = parse(readFileSync(join(out, "report.html"), "utf8"));
    const els = elements(doc as unknown as Node);
    const ids = els.map((e) => attr(e, "id")).filter(Boolean);
    for (const id of [
      "chart-free-orders",
      "chart-memory",
      "chart-2mib",
      "chart-thp",
      "chart-compaction",
    ]) {
      expect(ids).toContain(id);
    }
    const scripts = els.filter((e) => e.tagName === "script");
    expect(scripts.some((s) => text(s).includes("uPlot"))).toBe(true); // inlined, no network
    expect(els.some((e) => e.tagName === "script" && attr(e, "src"))).toBe(false);
    const data = JSON.parse(text(scripts.find((s) => attr(s, "id") === "pagesim-data")!));
    expect(data.t).toHaveLength(res.timeline.length);
    for (const ch of data.charts) {
      expect(ch.series.length).toBeGreaterThan(0);
      for (const s of ch.series) expect(s.values).toHaveLength(data.t.length);
    }
    const canvases = els.filter((e) => e.tagName === "canvas" && attr(e, "class") === "memmap");
    expect(canvases).toHaveLength(data.maps.length);
    expect(data.maps.map((m: { label: string }) => m.label)).toEqual(["start", "2.50 s", "end"]);
    expect(data.maps[2].cells).toMatch(/a/);
    expect(data.maps[2].cells).toHaveLength(data.maps[0].cells.length);
    // A 256 MiB guest: one cell per page, a 2 MiB pageblock (512 pages) to a row.
    for (const m of data.maps) {
      expect(m.pages_per_cell).toBe(1);
      expect(m.cells_per_row).toBe(512);
      expect(m.cells).toHaveLength(65_536);
      expect(m.free).toHaveLength(65_536);
    }
    expect(els.some((e) => e.tagName === "p" && text(e).startsWith("One cell per page"))).toBe(
      true,
    );

    // trace.json: valid Chrome trace-event JSON.
    const trace = JSON.parse(readFileSync(join(out, "trace.json"), "utf8"));
    expect(Array.isArray(trace.traceEvents)).toBe(true);
    for (const ev of trace.traceEvents) {
      expect(typeof ev.name).toBe("string");
      expect(["X", "i", "C", "M"]).toContain(ev.ph);
      expect(Number.isFinite(ev.ts)).toBe(true);
      expect(Number.isInteger(ev.pid) && Number.isInteger(ev.tid)).toBe(true);
      if (ev.ph === "X") expect(ev.dur).toBeGreaterThanOrEqual(0);
      if (ev.ph === "C") for (const v of Object.values(ev.args)) expect(typeof v).toBe("number");
    }
    const names = trace.traceEvents
      .filter((e: { name: string }) => e.name === "thread_name")
      .map((e: { args: { name: string } }) => e.args.name);
    expect(names).toEqual(["CPU 0", "CPU 1"]); // one track per simulated CPU
    for (const ev of trace.traceEvents) expect([0, 1]).toContain(ev.tid);
    const compaction = trace.traceEvents.filter(
      (e: { name: string; ph: string }) => e.name === "compact_memory" && e.ph === "X",
    );
    expect(compaction).toHaveLength(2); // the write on CPU 0 and the run on CPU 1
    expect(
      compaction.some(
        (e: { tid: number; args: { pgmigrate_success?: number } }) =>
          e.tid === 1 && (e.args.pgmigrate_success ?? 0) > 0,
      ),
    ).toBe(true);
  });

  it("cli: --balloon-compaction both runs a scenario twice; --json holds both variants and --out writes both reports", () => {
    const dir = tmp();
    const out = join(dir, "report");
    const file = fileURLToPath(new URL("../examples/balloon_compaction.yaml", import.meta.url));
    const r = pagesim("run", file, "--balloon-compaction", "both", "--json", "--out", out);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.variants.map((v: { variant: string }) => v.variant)).toEqual([
      "balloon_compaction=on",
      "balloon_compaction=off",
    ]);
    expect(
      j.variants.map(
        (v: { kernel: { balloon_compaction: boolean } }) => v.kernel.balloon_compaction,
      ),
    ).toEqual([true, false]);
    expect(j.vmstat).toEqual(j.variants[0].vmstat);
    for (const d of [out, join(out, "balloon_compaction_off")]) {
      expect(readdirSync(d).sort()).toEqual([
        ...(d === out ? ["balloon_compaction_off"] : []),
        "metrics.csv",
        "report.html",
        "result.json",
        "samples",
        "trace.json",
      ]);
    }
    const off = JSON.parse(
      readFileSync(join(out, "balloon_compaction_off", "result.json"), "utf8"),
    );
    expect(off.digest).toBe(j.variants[1].digest);
    const one = pagesim("run", file, "--balloon-compaction", "off", "--quiet");
    expect(one.code).toBe(0);
    expect(one.out).toContain("Balloon balloon0 (balloon compaction off)");
    expect(one.out).not.toContain("Side by side");
  });

  it("cli: the default scenario (8 GiB guest) runs with balloon compaction on and off and tells the seeds' story", () => {
    const r = pagesim("run", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.scenario).toBe("default");
    expect(j.machine.memory).toBe(8 * 1024 ** 3);
    expect(j.timeline).toHaveLength(29);
    // The top level is the first variant; `variants` holds both in full.
    expect(j.variants.map((v: { variant: string }) => v.variant)).toEqual([
      "balloon_compaction=on",
      "balloon_compaction=off",
    ]);
    const [on, off] = j.variants;
    expect(j.digest).toBe(on.digest);
    expect(on.digest).not.toBe(off.digest);
    for (const v of j.variants) {
      // The host took 768 MiB; the balloon sits in the holes the database left.
      expect(v.vmstat.balloon_inflate).toBe(196_608);
      expect(v.host.reclaimed_pages).toBe(196_608);
      expect(v.compact_runs[0].free_2mib_before).toBeLessThan(50);
      expect(Object.keys(v.buddyinfo)).toEqual(["DMA", "DMA32", "Normal"]);
    }
    // On: balloon pages migrate, 2 MiB blocks come back and every late THP fault succeeds.
    expect(on.vmstat.balloon_migrate).toBeGreaterThan(30_000);
    expect(off.vmstat.balloon_migrate).toBe(0);
    // Measured: 27 -> 667 blocks on, 27 -> 304 off; late THP faults 512 and 276 of 512.
    expect(on.compact_runs[0].free_2mib_after).toBeGreaterThan(
      2 * off.compact_runs[0].free_2mib_after,
    );
    const late = (v: { timeline: { t_ns: number; vmstat: Record<string, number> }[] }) => {
      const s = v.timeline.find((x) => x.t_ns === 21e9)!;
      const e = v.timeline[v.timeline.length - 1];
      return e.vmstat.thp_fault_alloc - s.vmstat.thp_fault_alloc;
    };
    expect(late(on)).toBe(512);
    expect(late(off)).toBeLessThan(0.6 * 512);
  }, 180_000);

  it("cli: the default scenario's output fits 80 columns (the 'reports written' lines too) and its trace has compaction and migration slices on the CPU tracks", () => {
    // A long --out: the old one-line "reports written to A and B" was 150 columns.
    const out = join(tmp(), "default-reports");
    const r = pagesim("run", "--quiet", "--out", out);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(
      `reports written to:\n  ${out}/report.html\n  ${out}/balloon_compaction_off/report.html\n`,
    );
    expect(r.out).toContain("Side by side");
    for (const l of r.out.split("\n")) expect(l.length, l).toBeLessThanOrEqual(80);

    const trace = JSON.parse(readFileSync(join(out, "trace.json"), "utf8"));
    type Ev = {
      name: string;
      ph: string;
      tid: number;
      ts: number;
      dur: number;
      args: Record<string, number | string>;
    };
    const ev: Ev[] = trace.traceEvents;
    const tracks = ev.filter((e) => e.name === "thread_name").map((e) => e.tid);
    expect(tracks).toEqual([0, 1]);
    // compact_memory on CPU 1: its run, a compact_zone slice per zone inside
    // it, and migrate_pages batches inside those, accounting for every page.
    const run = ev.find((e) => e.name === "compact_memory" && e.tid === 1)!;
    const zones = ev.filter((e) => e.name === "compact_zone");
    expect(zones.map((z) => z.args.zone)).toEqual(["DMA", "DMA32", "Normal"]);
    const within = (a: Ev, b: Ev) => b.ts <= a.ts && a.ts + a.dur <= b.ts + b.dur + 1e-6;
    for (const z of zones) {
      expect(z.tid).toBe(1);
      expect(within(z, run)).toBe(true);
    }
    const batches = ev.filter((e) => e.name === "migrate_pages");
    expect(batches.length).toBeGreaterThan(100);
    const sum = (k: string) => batches.reduce((a, e) => a + Number(e.args[k]), 0);
    expect(sum("succeeded")).toBe(run.args.pgmigrate_success);
    expect(sum("balloon_pages")).toBe(run.args.balloon_migrate);
    expect(sum("balloon_pages")).toBeGreaterThan(30_000);
    for (const b of batches) {
      expect(b.ph).toBe("X");
      expect(b.tid).toBe(1);
      expect(zones.some((z) => within(b, z))).toBe(true);
      // Pages left on the list (no target page: -ENOMEM) are neither.
      expect(Number(b.args.nr_pages)).toBeGreaterThanOrEqual(
        Number(b.args.succeeded) + Number(b.args.failed),
      );
    }
    // The balloon's inflate batches on its worker's CPU (CPU 0 of 2).
    const inflate = ev.filter((e) => e.name === "balloon_inflate");
    expect(inflate.reduce((a, e) => a + Number(e.args.pages), 0)).toBe(196_608);
    for (const e of inflate) expect(e.tid).toBe(0);
    // An 8 GiB guest's memory picture: one cell per 2 MiB pageblock.
    const html = readFileSync(join(out, "report.html"), "utf8");
    const json = html.slice(html.indexOf(">", html.indexOf('id="pagesim-data"')) + 1);
    const data = JSON.parse(json.slice(0, json.indexOf("</script>")));
    expect(data.maps[0].pages_per_cell).toBe(512);
    expect(data.maps[0].cells_per_row).toBe(128);
    expect(html).toContain("One cell per pageblock (2 MiB)");
    // A reasonable size (measured: about 0.5 MB).
    expect(readFileSync(join(out, "trace.json")).length).toBeLessThan(4 * 2 ** 20);
  }, 120_000);
});
