/**
 * sim/digest.ts: a running FNV-1a (32-bit) digest of a run's event stream,
 * printed at the end of every run so that two runs can be compared: the same
 * scenario and seed must give the same digest on any machine.
 */
export class Digest {
  private h = 0x811c9dc5;

  /** Fold one 32-bit integer into the digest. */
  add(x: number): void {
    let h = this.h;
    for (let i = 0; i < 4; i++) {
      h ^= (x >>> (i * 8)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
    this.h = h;
  }

  hex(): string {
    return (this.h >>> 0).toString(16).padStart(8, "0");
  }
}
