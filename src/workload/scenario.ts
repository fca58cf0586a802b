/**
 * workload/scenario.ts: the scenario schema (zod): what a scenario file may
 * say, with a default for every field, and the TypeScript types the
 * simulator reads. Sizes are written as people write them ("512MiB") and
 * become bytes; times ("30s", "250ms") become simulated nanoseconds.
 *
 * A scenario is: a machine (memory, layout, CPUs, an optional Movable zone),
 * kernel tunables (/proc/sys/vm and the THP knobs), the kernel era, balloon
 * devices and the host with its balloon policy, the simulated duration, the
 * seed, the sampling interval, and a workload: timeline events ("at 5s,
 * fault in 512MiB of anonymous memory") and stochastic generators
 * ("processes arrive every 2s on average"). Everything random is drawn from
 * the scenario's seeded PRNG by the simulator.
 *
 * The era is any era of the registry (kernel/eras/index.ts: 2012, 2014,
 * 2016, 2022, 2025, 2026); every one runs. Validation only checks what a
 * file says. What the simulator cannot run (a balloon feature the era's
 * driver did not have yet, a host without a balloon device, the auto
 * policy without stats_vq, a balloon larger than the guest, ...) is
 * refused by the runner (sim/balloon_sim.ts: balloon_problems(), through
 * sim/scenario_run.ts: unsupported()) before anything runs.
 */

import { z } from "zod";
import { MEM_BYTES_MAX, MEM_BYTES_MIN } from "../kernel/boot.ts";
import { ERAS as ERA_REGISTRY } from "../kernel/eras/index.ts";
import { format_size, parse_duration, parse_size } from "./units.ts";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const SEC = 1_000_000_000;

function got(v: unknown): string {
  if (typeof v === "string") return `'${v}'`;
  if (v === undefined) return "nothing";
  return JSON.stringify(v) ?? String(v);
}

/** A size in bytes: "512MiB", "8GiB", "4k" or a number of bytes. */
export const Size = z.any().transform((v, ctx): number => {
  const n = typeof v === "string" || typeof v === "number" ? parse_size(v) : null;
  if (n === null) {
    const message = v === undefined ? "required" : `expected a size like '512MiB', got ${got(v)}`;
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  }
  return n;
});

/** A span of simulated time in ns: "30s", "250ms", "2min", or seconds. */
export const Duration = z.any().transform((v, ctx): number => {
  const n = typeof v === "string" || typeof v === "number" ? parse_duration(v) : null;
  if (n === null) {
    const message =
      v === undefined ? "required" : `expected a duration like '30s' or '250ms', got ${got(v)}`;
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  }
  return n;
});

function choice<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, {
    error: (iss) => `expected one of ${values.join(", ")}, got ${got(iss.input)}`,
  });
}

function int(min: number, max: number) {
  return z.int({ error: (iss) => `expected an integer, got ${got(iss.input)}` }).check(
    z.refine((n: number) => n >= min && n <= max, {
      error: (iss) => `expected an integer from ${min} to ${max}, got ${got(iss.input)}`,
    }),
  );
}

/**
 * A random quantity: a plain value (fixed), or { dist: uniform, min, max },
 * { dist: exponential, mean }, { dist: fixed, value }. `unit` parses the
 * values (Size or Duration).
 */
function dist(unit: typeof Size) {
  const fixed = z.strictObject({ dist: z.literal("fixed"), value: unit });
  const uniform = z.strictObject({ dist: z.literal("uniform"), min: unit, max: unit });
  const exponential = z.strictObject({ dist: z.literal("exponential"), mean: unit });
  const obj = z.discriminatedUnion("dist", [fixed, uniform, exponential], {
    error: (iss) =>
      `expected dist: fixed, uniform or exponential, got ${got((iss.input as { dist?: unknown } | undefined)?.dist)}`,
  });
  return z.union(
    [unit.pipe(z.number()).transform((value) => ({ dist: "fixed" as const, value })), obj],
    {
      error: (iss) => `expected a value or { dist: ... }, got ${got(iss.input)}`,
    },
  );
}

export const SizeDist = dist(Size);
export const DurationDist = dist(Duration);
export type Dist = z.output<typeof SizeDist>;

/**
 * The era names: every era of the registry (kernel/eras/index.ts), oldest
 * first (integer-like keys keep ascending order).
 */
export const ERAS = Object.keys(ERA_REGISTRY) as [string, ...string[]];
export type Era = string;

export const TUNABLES = [
  "min_free_kbytes",
  "extfrag_threshold",
  "compaction_proactiveness",
  "watermark_scale_factor",
  "watermark_boost_factor",
] as const;

const Machine = z.strictObject({
  memory: Size.default(8 * GiB),
  layout: choice(["q35", "pc", "flat", "normal"]).default("q35"),
  cpus: int(1, 1024).default(2),
  /** movablecore=: bytes at the top of RAM for ZONE_MOVABLE (0: none). */
  movable: Size.default(0),
});

const Kernel = z.strictObject({
  /** Unset: computed at boot as the kernel does. */
  min_free_kbytes: int(128, 10_000_000).optional(),
  extfrag_threshold: int(0, 1000).default(500),
  compaction_proactiveness: int(0, 100).default(20),
  watermark_scale_factor: int(1, 3000).default(10),
  watermark_boost_factor: int(0, 1_000_000).default(15000),
  transparent_hugepage: choice(["always", "madvise", "never"]).default("always"),
  /** /sys/kernel/mm/transparent_hugepage/defrag */
  thp_defrag: choice(["always", "defer", "defer+madvise", "madvise", "never"]).default("madvise"),
  /** CONFIG_BALLOON_COMPACTION: may compaction migrate balloon pages. */
  balloon_compaction: z.boolean().default(true),
  /** Direct compaction in the allocator's slow path (off: costly requests just fail). */
  direct_compaction: z.boolean().default(true),
  /** The per-node kcompactd thread (woken by allocation failures, proactive compaction). */
  kcompactd: z.boolean().default(true),
});

const BALLOON_FEATURES = [
  "deflate_on_oom",
  "free_page_reporting",
  "free_page_hint",
  "stats_vq",
] as const;

const Balloon = z.strictObject({
  name: z.string().default("virtio_balloon"),
  driver: choice(["virtio_balloon"]).default("virtio_balloon"),
  features: z.array(choice(BALLOON_FEATURES)).default([]),
  /** Balloon size at boot. */
  initial: Size.default(0),
});

const Policy = z.discriminatedUnion(
  "kind",
  [
    z.strictObject({ kind: z.literal("none") }),
    /** Inflate every guest's balloon to `target` at `at`. */
    z.strictObject({ kind: z.literal("static"), target: Size, at: Duration.default(0) }),
    /** Every `interval`, move balloons so each guest keeps `free_percent` free. */
    z.strictObject({
      kind: z.literal("auto"),
      interval: Duration.default(SEC),
      free_percent: int(0, 100).default(10),
    }),
  ],
  {
    error: (iss) =>
      `expected kind: none, static or auto, got ${got((iss.input as { kind?: unknown } | undefined)?.kind)}`,
  },
);

const Host = z.strictObject({
  /** Host RAM available to back guests. */
  memory: Size,
  /** Identical guests of this scenario that the host runs. */
  guests: int(1, 64).default(1),
  policy: Policy.default({ kind: "none" }),
});

const at = Duration.default(0);
const name = (d: string) => z.string().min(1).default(d);
const percent = (d: number) => int(0, 100).default(d);
const PATTERN_ALLOC = choice(["contiguous", "interleaved", "random"]);

/** Timeline events: each happens once, at `at`. */
const EVENTS = [
  z.strictObject({
    type: z.literal("alloc_anon"),
    at,
    process: name("anon"),
    size: Size,
    /** contiguous: one process; interleaved/random: `ways` processes NAME/0.. faulting in turn or at random. */
    pattern: PATTERN_ALLOC.default("contiguous"),
    ways: int(2, 64).default(2),
  }),
  z.strictObject({
    type: z.literal("free_anon"),
    at,
    process: z.string().min(1),
    /** all: the process exits; alternate: every second page; random: `percent` of its pages. */
    pattern: choice(["all", "alternate", "random"]).default("all"),
    percent: percent(50),
  }),
  z.strictObject({ type: z.literal("cache_grow"), at, file: name("cache"), size: Size }),
  z.strictObject({
    type: z.literal("cache_shrink"),
    at,
    file: name("cache"),
    size: Size,
    pattern: choice(["oldest", "random"]).default("random"),
  }),
  z.strictObject({
    type: z.literal("kernel_alloc"),
    at,
    name: name("kmem"),
    size: Size,
    order: int(0, 3).default(0),
    /** Slab-like reclaimable memory (__GFP_RECLAIMABLE) instead of unmovable. */
    reclaimable: z.boolean().default(false),
    /** Keep this share, free the rest at random: survivors pollute many pageblocks. */
    keep_percent: percent(100),
  }),
  z.strictObject({
    type: z.literal("kernel_free"),
    at,
    name: z.string().min(1),
    percent: percent(100),
  }),
  z.strictObject({
    type: z.literal("thp"),
    at,
    process: name("thp"),
    count: int(1, 10_000_000),
    /** On failure fault 512 base pages instead (the kernel's fallback). */
    fallback: z.boolean().default(true),
  }),
  z.strictObject({ type: z.literal("compact_memory"), at }),
  z.strictObject({
    type: z.literal("sysctl"),
    at,
    name: choice(TUNABLES),
    value: int(0, 10_000_000),
  }),
  z.strictObject({
    type: z.literal("balloon_target"),
    at,
    device: int(0, 63).default(0),
    size: Size,
  }),
] as const;

const from = Duration.default(0);
const until = Duration.optional();

/** Generators: draw events from the PRNG between `from` and `until` (the end). */
const GENERATORS = [
  z.strictObject({
    type: z.literal("processes"),
    from,
    until,
    name: name("proc"),
    every: DurationDist,
    lifetime: DurationDist,
    size: SizeDist,
    pattern: PATTERN_ALLOC.default("contiguous"),
    max_live: int(1, 100_000).default(1000),
  }),
  z.strictObject({
    type: z.literal("thp_hungry"),
    from,
    until,
    name: name("thp_hungry"),
    every: DurationDist,
    count: int(1, 1_000_000).default(16),
    hold: DurationDist,
    fallback: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal("slab_mix"),
    from,
    until,
    name: name("slab"),
    every: DurationDist,
    size: SizeDist,
    reclaimable_percent: percent(50),
    keep_percent: percent(20),
    max_order: int(0, 3).default(1),
    lifetime: DurationDist,
  }),
] as const;

export const WorkloadItem = z.discriminatedUnion("type", [...EVENTS, ...GENERATORS], {
  error: (iss) =>
    `expected a type: one of ${[...EVENTS, ...GENERATORS].map((e) => e.shape.type.value).join(", ")}, got ${got((iss.input as { type?: unknown } | undefined)?.type)}`,
});

export const Scenario = z
  .strictObject({
    name: z.string().default("scenario"),
    description: z.string().default(""),
    seed: int(0, Number.MAX_SAFE_INTEGER).default(1),
    era: choice(ERAS).default("2016"),
    duration: Duration.default(60 * SEC),
    sample_interval: Duration.default(SEC),
    /** Simulated cost of one kernel step (a lock, an atomic, a page's work). */
    step_ns: int(1, 1_000_000).default(250),
    /** Moments for pictures of physical memory, besides the start and the end. */
    snapshots: z.array(Duration).default([]),
    machine: Machine.prefault({}),
    kernel: Kernel.prefault({}),
    balloons: z.array(Balloon).default([]),
    host: Host.optional(),
    workload: z.array(WorkloadItem).default([]),
  })
  .superRefine((s, ctx) => {
    if (s.duration <= 0)
      ctx.addIssue({ code: "custom", path: ["duration"], message: "must be more than 0" });
    if (s.sample_interval <= 0) {
      ctx.addIssue({ code: "custom", path: ["sample_interval"], message: "must be more than 0" });
    } else if (s.duration / s.sample_interval > 10_000) {
      ctx.addIssue({
        code: "custom",
        path: ["sample_interval"],
        message: `gives ${Math.ceil(s.duration / s.sample_interval)} samples; at most 10000 (make it longer)`,
      });
    }
    const mem = s.machine.memory;
    if (mem < MEM_BYTES_MIN || mem > MEM_BYTES_MAX || mem % 4096 !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["machine", "memory"],
        message: `expected a multiple of 4 KiB from ${format_size(MEM_BYTES_MIN)} to ${format_size(MEM_BYTES_MAX)}, got ${mem} bytes`,
      });
    }
    if (s.machine.movable >= s.machine.memory) {
      ctx.addIssue({
        code: "custom",
        path: ["machine", "movable"],
        message: "must be less than machine.memory",
      });
    }
    s.workload.forEach((w, i) => {
      const t = "at" in w ? w.at : w.from;
      if (t > s.duration) {
        ctx.addIssue({
          code: "custom",
          path: ["workload", i, "at" in w ? "at" : "from"],
          message: "is after the end of the scenario (duration)",
        });
      }
      if ("until" in w && w.until !== undefined && w.until < w.from) {
        ctx.addIssue({ code: "custom", path: ["workload", i, "until"], message: "is before from" });
      }
      if (w.type === "balloon_target" && w.device >= s.balloons.length) {
        ctx.addIssue({
          code: "custom",
          path: ["workload", i, "device"],
          message: `no balloon device ${w.device} (balloons lists ${s.balloons.length})`,
        });
      }
    });
  });

export type Scenario = z.output<typeof Scenario>;
export type WorkloadItem = z.output<typeof WorkloadItem>;
export type EventItem = Extract<WorkloadItem, { at: number }>;
export type GeneratorItem = Exclude<WorkloadItem, EventItem>;

export { MiB };
