/**
 * check/reads.ts: exact footprints for partial-order reduction. The
 * kernel model reads page state straight from the MemMap's typed arrays,
 * mostly without announcing it (the scanner announces PG_lru, then reads
 * page->mapping; the 2012 and 2014 balloon_page_dequeue walk the pages
 * list without pages_lock). A read the explorer does not see is a race it
 * does not reorder, and a reduced search that misses a race is unsound:
 * it reported "proved within bounds" for configurations where the
 * randomized search found a counterexample.
 *
 * So, while the explorer steps a thread, every element read of the page
 * arrays goes through a Proxy that records the index: a pfn, or for the
 * list arrays a pfn or list_head slot, the same location space as the
 * runner's write keys (whole pages, see runner.ts). Invariants, setup and
 * the runner's own comparisons read the raw arrays (the proxies pass reads
 * stand in for the arrays only while a step runs). Kernel code looks the
 * arrays up through `m.mem` on each call, so it sees whichever is in
 * place; methods (subarray, fill) run on the raw array.
 *
 * Writes are recorded by the same proxies: an element store that changes
 * the value, or a change made by a mutating method (fill: alloc_pages()
 * zeroes content), found by comparing the array around the call. The
 * runner used to find writes by comparing every array after every step;
 * both give the same footprints (test/check.test.ts compares them) and
 * the recording is cheaper.
 *
 * What is still not tracked: pageblock_flags (migratetype changes are rare
 * in the checker's small machine and happen together with free-list
 * writes) and JavaScript-side bookkeeping (runner.ts header).
 */

import type { MemMap } from "../kernel/page.ts";

type Arr = Uint32Array | Int32Array | Int16Array | Uint8Array;

/** The arrays whose element reads are recorded (runner.ts compares the same ones for writes). */
const FIELDS = [
  "flags",
  "_refcount",
  "_mapcount",
  "page_type",
  "mapping",
  "index",
  "page_private",
  "lru_next",
  "lru_prev",
  "content",
] as const;

/** Locations touched since the last take(), each once. */
class LocationSet {
  private readonly seen: Uint8Array;
  private readonly list: number[] = [];

  constructor(slots: number) {
    this.seen = new Uint8Array(slots);
  }

  add(i: number): void {
    if (this.seen[i] === 0) {
      this.seen[i] = 1;
      this.list.push(i);
    }
  }

  /** Append the locations to `out` (each once) and forget them. */
  take(out: number[]): void {
    for (const i of this.list) {
      this.seen[i] = 0;
      if (!out.includes(i)) out.push(i);
    }
    this.list.length = 0;
  }
}

export class ReadTracker {
  /** Record (only while the explorer runs a step). */
  on = false;
  readonly reads: LocationSet;
  /** Elements whose value a step changed (a store of the same value is not a write). */
  readonly writes: LocationSet;

  constructor(slots: number) {
    this.reads = new LocationSet(slots);
    this.writes = new LocationSet(slots);
  }
}

/** Methods that change elements: run on the raw array, changes found by comparison (rare). */
const MUTATORS = new Set<PropertyKey>(["fill", "set", "copyWithin", "sort", "reverse"]);

function tracking<T extends Arr>(raw: T, tr: ReadTracker): T {
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(raw, {
    get(target, key) {
      if (typeof key === "string") {
        const c = key.charCodeAt(0);
        if (c >= 48 && c <= 57) {
          const i = +key;
          if (tr.on && i < target.length) tr.reads.add(i);
          return target[i];
        }
      }
      const v = Reflect.get(target, key, target);
      if (typeof v !== "function") return v;
      let f = bound.get(key);
      if (f === undefined) {
        const method = v as (...a: unknown[]) => unknown;
        f = MUTATORS.has(key)
          ? (...args: unknown[]) => {
              const before = target.slice();
              const r = method.apply(target, args);
              if (tr.on)
                for (let i = 0; i < target.length; i++)
                  if (target[i] !== before[i]) tr.writes.add(i);
              return r;
            }
          : method.bind(target);
        bound.set(key, f);
      }
      return f;
    },
    set(target, key, value) {
      if (typeof key === "string") {
        const c = key.charCodeAt(0);
        if (c >= 48 && c <= 57) {
          const i = +key;
          const before = target[i];
          target[i] = value;
          if (tr.on && i < target.length && target[i] !== before) tr.writes.add(i);
          return true;
        }
      }
      return Reflect.set(target, key, value, target);
    },
  });
}

/**
 * Recording proxies for a MemMap's page arrays. start() puts them in place
 * of the arrays and turns recording on; stop() puts the raw arrays back
 * (everything outside a step, the invariants above all, reads at full
 * speed) and take() hands over what was read.
 */
export class ReadTracking {
  readonly tracker: ReadTracker;
  private readonly mem: Record<string, Arr | null>;
  private readonly fields: string[] = [];
  private readonly raw: Arr[] = [];
  private readonly proxies: Arr[] = [];

  constructor(mem: MemMap) {
    this.tracker = new ReadTracker(mem.lru_next.length);
    this.mem = mem as unknown as Record<string, Arr | null>;
    for (const f of FIELDS) {
      const a = this.mem[f];
      if (a === null) continue;
      this.fields.push(f);
      this.raw.push(a);
      this.proxies.push(tracking(a, this.tracker));
    }
  }

  start(): void {
    for (let i = 0; i < this.fields.length; i++) this.mem[this.fields[i]] = this.proxies[i];
    this.tracker.on = true;
  }

  stop(): void {
    this.tracker.on = false;
    for (let i = 0; i < this.fields.length; i++) this.mem[this.fields[i]] = this.raw[i];
  }
}
