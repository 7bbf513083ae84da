/**
 * R07: IPv4 path MTU learnt from ICMPv4 "fragmentation needed" (RFC 1191), per outer
 * destination. Entries age out like Linux's (net.ipv4.route.mtu_expires, 10 minutes) so a
 * path that grows back is used again. Touched per packet only in dynamic mode, as one Map
 * lookup on a number key: no allocation.
 */
import type { Clock } from './token-bucket.js';

export const PMTU_EXPIRES_MS = 10 * 60 * 1000;
/** RFC 791: every IPv4 host must accept 68-byte datagrams unfragmented; smaller reports are bogus. */
export const IPV4_MIN_MTU = 68;

interface Entry {
  mtu: number;
  expires: number;
}

export class PathMtuTable {
  private readonly entries = new Map<number, Entry>();

  constructor(private readonly clock: Clock) {}

  /** Records a report; returns true if the path MTU to `dst` went down. */
  update(dst: number, mtu: number): boolean {
    if (mtu < IPV4_MIN_MTU) return false;
    const now = this.clock();
    const cur = this.get(dst);
    if (cur !== 0 && cur <= mtu) return false;
    const e = this.entries.get(dst);
    if (e) {
      e.mtu = mtu;
      e.expires = now + PMTU_EXPIRES_MS;
    } else {
      this.entries.set(dst, { mtu, expires: now + PMTU_EXPIRES_MS });
    }
    return true;
  }

  /** The learnt path MTU to `dst`, or 0 if none is known. */
  get(dst: number): number {
    if (this.entries.size === 0) return 0;
    const e = this.entries.get(dst);
    if (!e) return 0;
    if (this.clock() >= e.expires) {
      this.entries.delete(dst);
      return 0;
    }
    return e.mtu;
  }

  entriesForStatus(): Array<{ dst: number; mtu: number; expiresInMs: number }> {
    const now = this.clock();
    return [...this.entries].map(([dst, e]) => ({ dst, mtu: e.mtu, expiresInMs: Math.max(0, e.expires - now) }));
  }
}
