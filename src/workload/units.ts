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
