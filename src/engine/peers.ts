/**
 * The remote IPv4s a 6to4 or 6rd tunnel exchanges traffic with (direct peers, relays, CEs): per
 * peer packets and bytes each way, last seen, drops by reason and ICMPv4 errors about packets we
 * sent it. 6to4 return traffic comes from whichever relay is nearest the far host and stateful
 * filters only let replies in from recent peers; this table is where that becomes visible.
 *
 * Bounded and allocation-free on the data path: fixed typed arrays, a chained hash over the
 * addresses and a least-recently-seen list threaded through the same slots, so a lookup, an
 * insert and an eviction are each O(1). A flood of forged sources therefore costs evictions
 * (counted), never memory. Addresses are signed 32-bit integers throughout (`| 0`): an unsigned
 * one above 2^31 is not a small integer, so passing it to a call V8 did not inline boxes it, a
 * heap number per packet.
 */
import { DROP_REASONS, type DropReason } from '../encap/counters.js';
import { formatIpv4 } from '../packet/address.js';

export const PEER_TABLE_SIZE = 256;

const NONE = -1;
const REASONS = DROP_REASONS.length;

export interface PeerEntry {
  ipv4: string;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Packets from this peer we dropped, by reason (non-zero ones only). */
  drops: Partial<Record<DropReason, number>>;
  dropsTotal: number;
  /** ICMPv4 errors about packets we sent to this peer. */
  icmpErrors: number;
  /** ISO time of the last packet either way (or the last error about one). */
  lastSeen: string;
}

export class PeerTable {
  readonly capacity: number;
  /** Peers forgotten to make room for new ones since the table was made. */
  evictions = 0;
  /** Wall-clock ms stamped on what is counted next; the engine sets it once per batch. */
  now = 0;
  private size = 0;
  private readonly addr: Int32Array;
  private readonly buckets: Int32Array;
  private readonly bucketShift: number;
  private readonly chain: Int32Array;
  /** Least-recently-seen list: `newest` is touched last, `oldest` goes first. */
  private readonly newer: Int32Array;
  private readonly older: Int32Array;
  private newest = NONE;
  private oldest = NONE;
  private readonly rxPackets: Float64Array;
  private readonly rxBytes: Float64Array;
  private readonly txPackets: Float64Array;
  private readonly txBytes: Float64Array;
  private readonly icmp: Float64Array;
  private readonly lastSeen: Float64Array;
  private readonly drops: Float64Array;
  /** Consecutive packets mostly share a peer: skip the hash for a repeat. */
  private lastAddr = 0;
  private lastSlot = NONE;

  constructor(capacity = PEER_TABLE_SIZE) {
    this.capacity = Math.max(1, capacity | 0);
    const c = this.capacity;
    this.addr = new Int32Array(c);
    this.buckets = new Int32Array(nextPowerOfTwo(c * 2)).fill(NONE);
    this.bucketShift = 32 - Math.log2(this.buckets.length);
    this.chain = new Int32Array(c).fill(NONE);
    this.newer = new Int32Array(c).fill(NONE);
    this.older = new Int32Array(c).fill(NONE);
    this.rxPackets = new Float64Array(c);
    this.rxBytes = new Float64Array(c);
    this.txPackets = new Float64Array(c);
    this.txBytes = new Float64Array(c);
    this.icmp = new Float64Array(c);
    this.lastSeen = new Float64Array(c);
    this.drops = new Float64Array(c * REASONS);
  }

  /** How many peers are remembered now. */
  get count(): number {
    return this.size;
  }

  /** `v4`: the peer's IPv4 as a signed 32-bit integer (`readInt32BE`, or `| 0`). */
  rx(v4: number, bytes: number): void {
    const s = this.slot(v4);
    this.rxPackets[s]++;
    this.rxBytes[s] += bytes;
  }

  tx(v4: number, bytes: number): void {
    const s = this.slot(v4);
    this.txPackets[s]++;
    this.txBytes[s] += bytes;
  }

  drop(v4: number, reason: number): void {
    this.drops[this.slot(v4) * REASONS + reason]++;
  }

  icmpError(v4: number): void {
    this.icmp[this.slot(v4)]++;
  }

  /** The slot of `v4`, made the newest; a new peer takes a free slot or the oldest one's. */
  private slot(v4: number): number {
    v4 |= 0;
    let s: number;
    if (v4 === this.lastAddr && this.lastSlot !== NONE) {
      s = this.lastSlot;
    } else {
      s = this.find(v4);
      if (s === NONE) s = this.insert(v4);
      else this.makeNewest(s);
      this.lastAddr = v4;
      this.lastSlot = s;
    }
    this.lastSeen[s] = this.now;
    return s;
  }

  private bucketOf(v4: number): number {
    // Knuth's multiplicative hash: neighbouring addresses (one /24 of sites) spread out
    return Math.imul(v4, 0x9e3779b1) >>> this.bucketShift;
  }

  private find(v4: number): number {
    for (let s = this.buckets[this.bucketOf(v4)]; s !== NONE; s = this.chain[s]) if (this.addr[s] === v4) return s;
    return NONE;
  }

  private insert(v4: number): number {
    let s: number;
    if (this.size < this.capacity) {
      s = this.size++;
    } else {
      s = this.oldest;
      this.unlinkList(s);
      this.unlinkChain(s);
      this.evictions++;
      this.rxPackets[s] = this.rxBytes[s] = this.txPackets[s] = this.txBytes[s] = this.icmp[s] = 0;
      this.drops.fill(0, s * REASONS, (s + 1) * REASONS);
    }
    this.addr[s] = v4;
    const b = this.bucketOf(v4);
    this.chain[s] = this.buckets[b];
    this.buckets[b] = s;
    this.pushNewest(s);
    return s;
  }

  private unlinkChain(s: number): void {
    const b = this.bucketOf(this.addr[s]);
    if (this.buckets[b] === s) {
      this.buckets[b] = this.chain[s];
      return;
    }
    for (let p = this.buckets[b]; p !== NONE; p = this.chain[p]) {
      if (this.chain[p] === s) {
        this.chain[p] = this.chain[s];
        return;
      }
    }
  }

  private makeNewest(s: number): void {
    if (this.newest === s) return;
    this.unlinkList(s);
    this.pushNewest(s);
  }

  private unlinkList(s: number): void {
    const n = this.newer[s];
    const o = this.older[s];
    if (n !== NONE) this.older[n] = o;
    else this.newest = o;
    if (o !== NONE) this.newer[o] = n;
    else this.oldest = n;
    this.newer[s] = this.older[s] = NONE;
  }

  private pushNewest(s: number): void {
    this.older[s] = this.newest;
    this.newer[s] = NONE;
    if (this.newest !== NONE) this.newer[this.newest] = s;
    this.newest = s;
    if (this.oldest === NONE) this.oldest = s;
  }

  /** The `limit` busiest peers (packets both ways plus drops), busiest first. */
  top(limit: number): PeerEntry[] {
    const weight = (s: number) => this.rxPackets[s] + this.txPackets[s] + this.dropsOf(s);
    const slots = Array.from({ length: this.size }, (_, s) => s);
    slots.sort((a, b) => weight(b) - weight(a) || this.lastSeen[b] - this.lastSeen[a]);
    return slots.slice(0, Math.max(0, limit)).map((s) => this.entry(s));
  }

  private dropsOf(s: number): number {
    let n = 0;
    for (let r = 0; r < REASONS; r++) n += this.drops[s * REASONS + r];
    return n;
  }

  private entry(s: number): PeerEntry {
    const drops: Partial<Record<DropReason, number>> = {};
    for (let r = 0; r < REASONS; r++) if (this.drops[s * REASONS + r] > 0) drops[DROP_REASONS[r]] = this.drops[s * REASONS + r];
    return {
      ipv4: formatIpv4(this.addr[s]),
      rxPackets: this.rxPackets[s],
      rxBytes: this.rxBytes[s],
      txPackets: this.txPackets[s],
      txBytes: this.txBytes[s],
      drops,
      dropsTotal: this.dropsOf(s),
      icmpErrors: this.icmp[s],
      lastSeen: new Date(this.lastSeen[s]).toISOString(),
    };
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 2;
  while (p < n) p <<= 1;
  return p;
}
