/**
 * A broker's tunnels as the data path finds them: by the outer source of a received packet (one
 * hash lookup) and by the inner destination of a sent one (longest prefix over every tunnel's link
 * and routed prefixes: one hash lookup per prefix length in use, longest first, never a scan).
 * Each tunnel is a slot; what the data path reads and counts of it lives in typed arrays indexed
 * by slot, so an idle tunnel costs its spec and a few dozen bytes, and a lookup allocates nothing.
 */
import { DROP_REASONS, type DropReason } from '../encap/counters.js';
import { MTU_MAX } from '../encap/options.js';
import { formatIpv4, formatIpv6Prefix, ipv6PrefixMatch, parseIpv4, parseIpv6Prefix, type Ipv6Prefix } from '../packet/address.js';
import { ipv4AtS32 } from '../packet/ipv4.js';
import { KeyHash } from './key-hash.js';
import { BrokerTunnelError, checkBrokerTunnel, type BrokerTunnel, type BrokerTunnelStats, type TunnelDirectory } from './tunnel.js';

/** Drops each tunnel remembers (reason, time, outer source, first bytes), the oldest overwritten. */
export const DROP_RING_SIZE = 8;
/** Bytes of a dropped packet its ring keeps. */
export const DROP_SNAP_LEN = 128;

/** Per-slot traffic counters, TRAFFIC_STRIDE to a slot. */
export const TunnelTraffic = { txPackets: 0, txBytes: 1, rxPackets: 2, rxBytes: 3 } as const;
export const TRAFFIC_STRIDE = 4;
const META_STRIDE = 4;

/** A tunnel's drops, made at its first drop (an idle tunnel has none). */
class TunnelDrops {
  readonly counts = new Float64Array(DROP_REASONS.length);
  readonly bytes = Buffer.alloc(DROP_RING_SIZE * DROP_SNAP_LEN);
  /** Per entry: time (ms since the epoch), reason, outer source (unsigned; -1 none), bytes kept. */
  readonly meta = new Float64Array(DROP_RING_SIZE * META_STRIDE);
  next = 0;
  filled = 0;
}

export interface BrokerTableOptions {
  /** Prefixes every link and routed prefix must lie in (what is routed into the TUN); empty or absent: any. */
  pools?: readonly string[];
  /** The largest tunnel MTU the outer transport carries: 1480, or 1472 with FOU's UDP header. */
  maxMtu?: number;
}

interface Entry {
  hi: number;
  lo: number;
  len: number;
  field: string;
}

/** The high (hi) and low (lo) int32 masks of a prefix of `len` bits over the top 64. */
const MASK_HI = new Int32Array(65);
const MASK_LO = new Int32Array(65);
for (let len = 0; len <= 64; len++) {
  MASK_HI[len] = len === 0 ? 0 : len >= 32 ? -1 : -1 << (32 - len);
  MASK_LO[len] = len <= 32 ? 0 : len === 64 ? -1 : -1 << (64 - len);
}

export class BrokerTable implements TunnelDirectory {
  /** Per slot: the remote (`| 0` form; 0: parked or free), MTU, link /64 (top 64 bits), learnt path MTU and its expiry. */
  remote = new Int32Array(0);
  mtu = new Int32Array(0);
  linkHi = new Int32Array(0);
  linkLo = new Int32Array(0);
  pathMtu = new Int32Array(0);
  pathMtuExpires = new Float64Array(0);
  /** Per slot TRAFFIC_STRIDE counters (TunnelTraffic). */
  traffic = new Float64Array(0);
  private specs: Array<BrokerTunnel | undefined> = [];
  private drops: Array<TunnelDrops | undefined> = [];
  private readonly byId = new Map<string, number>();
  private readonly free: number[] = [];
  private used = 0;
  /** (remote, 0, 0) → slot. */
  private readonly byRemote = new KeyHash();
  /** (top 32 bits, next 32 bits, length) of each prefix → slot. */
  private readonly byPrefix = new KeyHash();
  /** Prefixes per length, and the lengths in use, longest first (`lengthCount` of them). */
  private readonly perLength = new Int32Array(65);
  private readonly lengths = new Int32Array(65);
  private lengthCount = 0;
  private readonly pools: Ipv6Prefix[];
  private readonly maxMtu: number;

  constructor(options: BrokerTableOptions = {}) {
    this.pools = (options.pools ?? []).map((p, i) => {
      const parsed = parseIpv6Prefix(p);
      if (!parsed || parsed.len > 64) throw new BrokerTunnelError(`pools.${i}`, `${JSON.stringify(p)} is not an IPv6 prefix of length 0–64 (e.g. 2001:db8:100::/40)`);
      return parsed;
    });
    this.maxMtu = options.maxMtu ?? MTU_MAX;
    this.grow(64);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The slot of the tunnel whose prefix holds the IPv6 address at buf[off] (longest prefix), or -1. */
  lookup(buf: Uint8Array, off: number): number {
    const hi = ipv4AtS32(buf, off);
    const lo = ipv4AtS32(buf, off + 4);
    const lengths = this.lengths;
    for (let i = 0; i < this.lengthCount; i++) {
      const len = lengths[i];
      const s = this.byPrefix.get(hi & MASK_HI[len], lo & MASK_LO[len], len);
      if (s >= 0) return s;
    }
    return -1;
  }

  /** The slot of the tunnel whose remote is `remote` (`| 0` form), or -1. */
  slotOfRemote(remote: number): number {
    return this.byRemote.get(remote, 0, 0);
  }

  slotOf(id: string): number {
    return this.byId.get(id) ?? -1;
  }

  idOf(slot: number): string | undefined {
    return this.specs[slot]?.id;
  }

  put(t: BrokerTunnel): void {
    const spec = checkBrokerTunnel(t);
    if (spec.mtu > this.maxMtu) throw new BrokerTunnelError('mtu', `${spec.mtu} does not fit this broker's transport; use ${this.maxMtu} or less (FOU's UDP header takes 8 bytes)`);
    const own = this.byId.get(spec.id) ?? -1;
    const entries = this.entriesOf(spec);
    for (const e of entries) {
      const holder = this.byPrefix.get(e.hi, e.lo, e.len);
      if (holder >= 0 && holder !== own) throw new BrokerTunnelError(e.field, `${this.prefixText(e)} is tunnel ${this.specs[holder]!.id}'s; a prefix belongs to one tunnel (delete it there first)`);
    }
    const remote = spec.remote === null ? 0 : parseIpv4(spec.remote)! | 0;
    if (remote !== 0) {
      const holder = this.byRemote.get(remote, 0, 0);
      if (holder >= 0 && holder !== own) throw new BrokerTunnelError('remote', `${spec.remote} is tunnel ${this.specs[holder]!.id}'s remote; one client IPv4 carries one tunnel (move or park that one first)`);
    }
    // Checked: from here on nothing throws, so the change is whole or none.
    const slot = own >= 0 ? own : this.allocate();
    if (own >= 0) this.unlink(slot);
    this.specs[slot] = Object.freeze({ ...spec, routed: Object.freeze([...spec.routed]) as string[] });
    this.byId.set(spec.id, slot);
    this.link(slot, spec, entries, remote);
  }

  delete(id: string): boolean {
    const slot = this.byId.get(id);
    if (slot === undefined) return false;
    this.unlink(slot);
    this.byId.delete(id);
    this.specs[slot] = undefined;
    this.drops[slot] = undefined;
    this.remote[slot] = 0;
    this.pathMtu[slot] = 0;
    this.traffic.fill(0, slot * TRAFFIC_STRIDE, (slot + 1) * TRAFFIC_STRIDE);
    this.free.push(slot);
    return true;
  }

  get(id: string): BrokerTunnel | undefined {
    const slot = this.byId.get(id);
    return slot === undefined ? undefined : copy(this.specs[slot]!);
  }

  list(): BrokerTunnel[] {
    const out: BrokerTunnel[] = [];
    for (const slot of this.byId.values()) out.push(copy(this.specs[slot]!));
    return out;
  }

  stats(id: string): BrokerTunnelStats | undefined {
    const slot = this.byId.get(id);
    if (slot === undefined) return undefined;
    const t = this.traffic;
    const k = slot * TRAFFIC_STRIDE;
    const d = this.drops[slot];
    const drops: Record<string, number> = {};
    const lastDrops: BrokerTunnelStats['lastDrops'] = [];
    if (d) {
      d.counts.forEach((n, r) => {
        if (n > 0) drops[DROP_REASONS[r]] = n;
      });
      for (let i = 0; i < d.filled; i++) {
        const e = (d.next - d.filled + i + DROP_RING_SIZE) % DROP_RING_SIZE;
        const m = d.meta.subarray(e * META_STRIDE, (e + 1) * META_STRIDE);
        lastDrops.push({
          time: new Date(m[0]).toISOString(),
          reason: DROP_REASONS[m[1]],
          outerSrc: m[2] < 0 ? null : formatIpv4(m[2]),
          bytes: d.bytes.toString('hex', e * DROP_SNAP_LEN, e * DROP_SNAP_LEN + m[3]),
        });
      }
    }
    return {
      counters: { txPackets: t[k + TunnelTraffic.txPackets], txBytes: t[k + TunnelTraffic.txBytes], rxPackets: t[k + TunnelTraffic.rxPackets], rxBytes: t[k + TunnelTraffic.rxBytes], drops },
      lastDrops,
    };
  }

  /** Packets each way of the tunnel in `slot` (status's busiest list). */
  packets(slot: number): number {
    return this.traffic[slot * TRAFFIC_STRIDE + TunnelTraffic.txPackets] + this.traffic[slot * TRAFFIC_STRIDE + TunnelTraffic.rxPackets];
  }

  /** Every live slot (status, which visits each tunnel once). */
  slots(): IterableIterator<number> {
    return this.byId.values();
  }

  /**
   * Counts a drop of the packet at buf[off, off+len) against the tunnel in `slot` and keeps it in
   * its ring; `outerSrc`: the outer source (unsigned), or -1 for a packet from the TUN.
   */
  recordDrop(slot: number, reason: number, outerSrc: number, buf: Buffer, off: number, len: number): void {
    const d = (this.drops[slot] ??= new TunnelDrops());
    d.counts[reason]++;
    const e = d.next;
    const kept = len < DROP_SNAP_LEN ? (len > 0 ? len : 0) : DROP_SNAP_LEN;
    buf.copy(d.bytes, e * DROP_SNAP_LEN, off, off + kept);
    const m = e * META_STRIDE;
    d.meta[m] = Date.now();
    d.meta[m + 1] = reason;
    d.meta[m + 2] = outerSrc;
    d.meta[m + 3] = kept;
    d.next = (e + 1) % DROP_RING_SIZE;
    if (d.filled < DROP_RING_SIZE) d.filled++;
  }

  /** The drop count of one reason for a tunnel (tests, status). */
  dropCount(id: string, reason: DropReason): number {
    const slot = this.byId.get(id);
    return slot === undefined ? 0 : (this.drops[slot]?.counts[DROP_REASONS.indexOf(reason)] ?? 0);
  }

  private entriesOf(spec: BrokerTunnel): Entry[] {
    const entries: Entry[] = [];
    const add = (text: string, field: string): void => {
      const p = parseIpv6Prefix(text)!;
      if (this.pools.length > 0 && !this.pools.some((pool) => pool.len <= p.len && ipv6PrefixMatch(pool.addr, 0, p.addr, 0, pool.len))) {
        throw new BrokerTunnelError(field, `${text} lies outside this broker's pools (${this.pools.map((x) => formatIpv6Prefix(x)).join(', ')}); give a prefix inside one, or add a pool`);
      }
      const e = { hi: p.addr.readInt32BE(0), lo: p.addr.readInt32BE(4), len: p.len, field };
      const twice = entries.find((x) => x.hi === e.hi && x.lo === e.lo && x.len === e.len);
      if (twice) throw new BrokerTunnelError(field, `${text} is given twice (also as ${twice.field})`);
      entries.push(e);
    };
    add(spec.link, 'link');
    spec.routed.forEach((r, i) => add(r, `routed.${i}`));
    return entries;
  }

  private prefixText(e: { hi: number; lo: number; len: number }): string {
    const addr = Buffer.alloc(16);
    addr.writeInt32BE(e.hi, 0);
    addr.writeInt32BE(e.lo, 4);
    return formatIpv6Prefix({ addr, len: e.len });
  }

  private link(slot: number, spec: BrokerTunnel, entries: Entry[], remote: number): void {
    for (const e of entries) {
      this.byPrefix.set(e.hi, e.lo, e.len, slot);
      if (this.perLength[e.len]++ === 0) this.indexLengths();
    }
    if (this.remote[slot] !== remote) {
      // another path: what was learnt about the old one does not hold
      this.pathMtu[slot] = 0;
      this.pathMtuExpires[slot] = 0;
    }
    this.remote[slot] = remote;
    if (remote !== 0) this.byRemote.set(remote, 0, 0, slot);
    this.mtu[slot] = spec.mtu;
    this.linkHi[slot] = entries[0].hi;
    this.linkLo[slot] = entries[0].lo;
  }

  /** Takes the tunnel in `slot` out of both hashes (its remote stays in `remote` for link's comparison). */
  private unlink(slot: number): void {
    const spec = this.specs[slot]!;
    for (const e of this.entriesOf(spec)) {
      this.byPrefix.delete(e.hi, e.lo, e.len);
      if (--this.perLength[e.len] === 0) this.indexLengths();
    }
    if (this.remote[slot] !== 0) this.byRemote.delete(this.remote[slot], 0, 0);
  }

  private indexLengths(): void {
    let n = 0;
    for (let len = 64; len >= 0; len--) if (this.perLength[len] > 0) this.lengths[n++] = len;
    this.lengthCount = n;
  }

  private allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.remote.length) this.grow(this.used * 2);
    return this.used++;
  }

  private grow(capacity: number): void {
    const int = (a: Int32Array): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(capacity);
      b.set(a);
      return b;
    };
    this.remote = int(this.remote);
    this.mtu = int(this.mtu);
    this.linkHi = int(this.linkHi);
    this.linkLo = int(this.linkLo);
    this.pathMtu = int(this.pathMtu);
    const expires = new Float64Array(capacity);
    expires.set(this.pathMtuExpires);
    this.pathMtuExpires = expires;
    const traffic = new Float64Array(capacity * TRAFFIC_STRIDE);
    traffic.set(this.traffic);
    this.traffic = traffic;
  }
}

function copy(t: BrokerTunnel): BrokerTunnel {
  return { ...t, routed: [...t.routed] };
}
