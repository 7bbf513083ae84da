/**
 * An open-addressing hash from keys of up to three int32s to an int32 value, in typed arrays: a
 * lookup on the data path reads numbers and allocates nothing. Linear probing; a delete shifts
 * the run after it back (no tombstones, so lookups stay short however often tunnels change).
 */

const EMPTY = -1;
const MIN_CAPACITY = 16;

function mix(a: number, b: number, c: number): number {
  let h = Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b), 0x27d4eb2d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

export class KeyHash {
  private keys: Int32Array;
  /** Per slot the value (>= 0), or EMPTY. */
  private vals: Int32Array;
  private mask: number;
  size = 0;

  constructor(capacity = MIN_CAPACITY) {
    let cap = MIN_CAPACITY;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Int32Array(cap * 3);
    this.vals = new Int32Array(cap).fill(EMPTY);
    this.mask = cap - 1;
  }

  /** The value stored under (a, b, c), or -1. */
  get(a: number, b: number, c: number): number {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    for (let i = mix(a, b, c) & mask; ; i = (i + 1) & mask) {
      const v = vals[i];
      if (v === EMPTY) return -1;
      const k = i * 3;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c) return v;
    }
  }

  /** Stores `value` (>= 0) under (a, b, c), replacing what was there. */
  set(a: number, b: number, c: number, value: number): void {
    if ((this.size + 1) * 2 > this.vals.length) this.grow();
    const i = this.find(a | 0, b | 0, c | 0);
    if (this.vals[i] === EMPTY) {
      this.size++;
      const k = i * 3;
      this.keys[k] = a;
      this.keys[k + 1] = b;
      this.keys[k + 2] = c;
    }
    this.vals[i] = value;
  }

  /** Removes (a, b, c); true if it was there. */
  delete(a: number, b: number, c: number): boolean {
    let i = this.find(a | 0, b | 0, c | 0);
    const { keys, vals, mask } = this;
    if (vals[i] === EMPTY) return false;
    this.size--;
    // Backward shift: move each later entry of the run whose home is not in (i, j] into the hole.
    for (let j = (i + 1) & mask; vals[j] !== EMPTY; j = (j + 1) & mask) {
      const home = mix(keys[j * 3], keys[j * 3 + 1], keys[j * 3 + 2]) & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      keys.copyWithin(i * 3, j * 3, j * 3 + 3);
      vals[i] = vals[j];
      i = j;
    }
    vals[i] = EMPTY;
    return true;
  }

  /** The slot holding (a, b, c), or the empty slot where it would go. */
  private find(a: number, b: number, c: number): number {
    const { keys, vals, mask } = this;
    for (let i = mix(a, b, c) & mask; ; i = (i + 1) & mask) {
      if (vals[i] === EMPTY) return i;
      const k = i * 3;
      if (keys[k] === a && keys[k + 1] === b && keys[k + 2] === c) return i;
    }
  }

  private grow(): void {
    const { keys, vals } = this;
    this.keys = new Int32Array(keys.length * 2);
    this.vals = new Int32Array(vals.length * 2).fill(EMPTY);
    this.mask = this.vals.length - 1;
    this.size = 0;
    for (let i = 0; i < vals.length; i++) if (vals[i] !== EMPTY) this.set(keys[i * 3], keys[i * 3 + 1], keys[i * 3 + 2], vals[i]);
  }
}
