/**
 * workload/units.ts: sizes as people write them ("8GiB", "512 MiB", "4k",
 * "1T", plain bytes) and as pagesim prints them.
 */

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * Parse a size. Binary units throughout (the kernel's convention: "GB" in
 * /proc/meminfo means GiB). Returns null when the text is not a size.
 */
export function parse_size(text: string | number): number | null {
  if (typeof text === "number") return Number.isSafeInteger(text) && text >= 0 ? text : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) return null;
  const unit = UNITS[m[2].toLowerCase()];
  if (unit === undefined) return null;
  const v = Number(m[1]) * unit;
  if (!Number.isFinite(v)) return null;
  return Math.round(v);
}

/** Print a byte count with the largest binary unit that keeps it readable. */
export function format_size(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = Number.isInteger(v) ? String(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);
  return `${s} ${units[i]}`;
}

const TIME_UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  ms: 1e6,
  s: 1e9,
  sec: 1e9,
  m: 60e9,
  min: 60e9,
  h: 3600e9,
};

/**
 * Parse a span of simulated time ("30s", "500ms", "2min", "1.5h"); a plain
 * number is seconds. Returns whole nanoseconds, or null when the text is not
 * a duration.
 */
export function parse_duration(text: string | number): number | null {
  if (typeof text === "number") {
    return Number.isFinite(text) && text >= 0 ? Math.round(text * 1e9) : null;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zµ]*)\s*$/i.exec(text);
  if (!m) return null;
  const unit = m[2] === "" ? 1e9 : TIME_UNITS[m[2].toLowerCase()];
  if (unit === undefined) return null;
  const v = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(v) ? v : null;
}

/** Print simulated nanoseconds as people read them: "1.50 s", "250 ms". */
export function format_duration(ns: number): string {
  if (ns >= 60e9 && ns % 60e9 === 0) return `${ns / 60e9} min`;
  if (ns >= 1e9) return `${trim(ns / 1e9)} s`;
  if (ns >= 1e6) return `${trim(ns / 1e6)} ms`;
  if (ns >= 1e3) return `${trim(ns / 1e3)} µs`;
  return `${ns} ns`;
}

function trim(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);
}
