/**
 * R07: IPv4 path MTU learnt from ICMPv4 "fragmentation needed" (RFC 1191), per outer
 * destination. Entries age out like Linux's (net.ipv4.route.mtu_expires, 10 minutes) so a
 * path that grows back is used again. Touched per packet only in dynamic mode, as one Map
 * lookup on a number key: no allocation, as the key is a signed 32-bit integer (`| 0`, a small
 * integer; an unsigned address above 2^31 would be a heap number per lookup).
 */
import type { Clock } from './token-bucket.js';

export const PMTU_EXPIRES_MS = 10 * 60 * 1000;
/**
 * At most this many destinations are remembered. 6to4 talks to any IPv4 on the internet, and
 * each "fragmentation needed" names one: without a bound, forged reports grow the table forever.
 */
export const PMTU_TABLE_SIZE = 1024;
/** RFC 791: every IPv4 host must accept 68-byte datagrams unfragmented; smaller reports are bogus. */
export const IPV4_MIN_MTU = 68;

interface Entry {
  mtu: number;
  expires: number;
}

/** Data-path lookups per reading of the clock (see `getForPacket`). */
export const CLOCK_EVERY = 256;

export class PathMtuTable {
  /** In order of last update (a Map keeps insertion order): the first entry is the stalest. */
  private readonly entries = new Map<number, Entry>();
  /** The clock as `getForPacket` last read it, and the lookups left before it reads it again. */
  private now = 0;
  private lookupsToClock = 0;

  /** `onEvict`: a live entry was dropped to make room (counted by the tunnel). */
  constructor(
    private readonly clock: Clock,
    private readonly capacity = PMTU_TABLE_SIZE,
    private readonly onEvict: () => void = () => undefined,
  ) {}

  /** Records a report; returns true if the path MTU to `dst` went down. */
  update(dst: number, mtu: number): boolean {
    dst |= 0;
    if (mtu < IPV4_MIN_MTU) return false;
    const now = this.clock();
    const cur = this.lookup(dst, now);
    if (cur !== 0 && cur <= mtu) return false;
    this.entries.delete(dst);
    if (this.entries.size >= this.capacity) this.makeRoom(now);
    this.entries.set(dst, { mtu, expires: now + PMTU_EXPIRES_MS });
    return true;
  }

  /** Drops expired entries; if none had expired, the least recently updated one. */
  private makeRoom(now: number): void {
    for (const [dst, e] of this.entries) if (now >= e.expires) this.entries.delete(dst);
    if (this.entries.size < this.capacity) return;
    const stalest = this.entries.keys().next().value as number;
    this.entries.delete(stalest);
    this.onEvict();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The learnt path MTU to `dst`, or 0 if none is known. */
  get(dst: number): number {
    return this.lookup(dst | 0, this.clock());
  }

  /**
   * `get` for the data path, once per packet: the clock is read once per CLOCK_EVERY lookups, so
   * an entry may serve up to that many packets past its expiry. A read per packet was a heap
   * number per packet (a fractional millisecond count returned from a call V8 did not inline).
   */
  getForPacket(dst: number): number {
    if (this.entries.size === 0) return 0;
    if (--this.lookupsToClock < 0) {
      this.lookupsToClock = CLOCK_EVERY - 1;
      this.now = this.clock();
    }
    return this.lookup(dst | 0, this.now);
  }

  private lookup(dst: number, now: number): number {
    if (this.entries.size === 0) return 0;
    const e = this.entries.get(dst);
    if (e === undefined) return 0;
    if (now >= e.expires) {
      this.entries.delete(dst);
      return 0;
    }
    return e.mtu;
  }

  /** The `limit` most recently updated live entries, newest first (status shows a bounded list). */
  entriesForStatus(limit = 32): Array<{ dst: number; mtu: number; expiresInMs: number }> {
    const now = this.clock();
    const out: Array<{ dst: number; mtu: number; expiresInMs: number }> = [];
    for (const [dst, e] of [...this.entries].reverse()) {
      if (out.length >= limit) break;
      if (now < e.expires) out.push({ dst: dst >>> 0, mtu: e.mtu, expiresInMs: e.expires - now });
    }
    return out;
  }
}
