/**
 * Foo-over-UDP (Linux net/ipv4/fou, `ip fou add port P ipproto 41`): the IPv6 packet is the UDP
 * payload, with nothing in between. One UDP socket bound to local:encapPort sends to the peer's
 * encapDport and receives from any source port. UDP GSO carries a run of equal-sized segments to
 * one peer in one send (with checksums: the kernel refuses GSO without them); UDP GRO hands over
 * coalesced datagrams, split here. The loop sees what the raw transport gives it: IPv4 packets of
 * protocol 41, each given a header with the datagram's addresses and TOS (R13's ECN needs it).
 */
import { IPV4, packOuterFields, PROTO_IPV6, writeIpv4Header } from '../packet/ipv4.js';
import { moveBytes } from '../packet/bytes.js';
import type { PacketBatch } from '../io/batch.js';
import { FdEndpoint } from '../io/fd-endpoint.js';
import { loadNative, IP_PMTUDISC_DONT, IP_PMTUDISC_WANT } from '../io/native.js';
import { MAX_BATCH, SLOT_SIZE, slotArena } from '../io/slots.js';
import { gsoRuns } from './gso.js';
import type { OuterTransport } from './transport.js';

/** Sends without GSO after a GSO message was refused (about a second of bulk traffic). */
const GSO_REST_SENDS = 1024;

/** Ints per datagram in udpRecv's info: source address, source port, TOS, GRO segment size (the addon's UDP_INFO_STRIDE). */
export const UDP_INFO_STRIDE = 4;

export interface FouOptions {
  local: number;
  /** The local port bound, sent from and received on. */
  port: number;
  /** The peer's port: every datagram goes there. */
  dport: number;
  pmtu: 'static' | 'dynamic';
  /**
   * UDP checksums: true on every datagram; false on none (Linux FOU's default, noencap-csum; no UDP
   * GSO then); 'gso' on the datagrams sent as UDP GSO messages only, the rest with zero, as Linux.
   */
  checksum: boolean | 'gso';
  /** Use UDP GSO / GRO where the kernel allows; default true. */
  gso?: boolean;
  gro?: boolean;
  bufferBytes?: number;
}

export class FouTransport extends FdEndpoint implements OuterTransport {
  /** What the kernel granted, and the checksums allow: UDP_SEGMENT sends and UDP_GRO receives. */
  readonly gso: boolean;
  readonly gro: boolean;
  /** `| 0` form: an unsigned address above 2^31 is a heap number, boxed again for every call it is passed to. */
  private readonly local: number;
  /** Datagrams from a GRO-coalesced one on, set aside: split into the caller's slots from here. */
  private rxArena: Buffer = Buffer.alloc(0);
  private readonly rxLens = new Int32Array(MAX_BATCH);
  private readonly rxInfo = new Int32Array(MAX_BATCH * UDP_INFO_STRIDE);
  private rxCount = 0;
  /** Datagrams UDP GRO had coalesced, handed out as their segments (for status). */
  groCoalesced = 0;
  private gsoRest = 0;
  private readonly runs = new Int32Array(MAX_BATCH);
  /** The addon adds each GSO message it had to resend packet by packet to stats[0] (the socket's send options). */
  private readonly stats: Int32Array;
  private rxNext = 0;
  private rxSegNext = 0;

  private constructor(fd: number, o: FouOptions, gso: boolean, gro: boolean, stats: Int32Array) {
    super(fd);
    this.gso = gso;
    this.gro = gro;
    this.local = o.local | 0;
    this.stats = stats;
  }

  static open(o: FouOptions): FouTransport {
    const native = loadNative();
    const r = native.openUdpSocket(o.local, o.port, o.pmtu === 'dynamic' ? IP_PMTUDISC_WANT : IP_PMTUDISC_DONT, o.bufferBytes ?? 4 << 20, o.checksum === true, o.gro ?? true);
    const stats = new Int32Array(1);
    // Dynamic path MTU: DF is per socket, and a second socket could not share the port, so DF-clear runs switch this one's.
    native.setSendOptions(r.fd, { port: o.dport, toggleDf: o.pmtu === 'dynamic', checksumGsoOnly: o.checksum === 'gso', stats });
    return new FouTransport(r.fd, o, r.gso && o.checksum !== false && (o.gso ?? true), r.gro, stats);
  }

  /**
   * With GSO, runs of packets go as one message each (gsoRuns). A message the path refuses as a
   * whole (a segment over the route MTU: a smaller link, or a path MTU report) is resent packet
   * by packet by the addon and counted; GSO then rests for GSO_REST_SENDS sends, so a lasting
   * cause does not cost every batch a refused message.
   */
  send(b: PacketBatch, n: number): number {
    const native = loadNative();
    if (!this.gso || this.gsoRest > 0) {
      if (this.gsoRest > 0) this.gsoRest--;
      return native.sendBatch(this.fd, b, n);
    }
    gsoRuns(b.lens, b.dsts, b.fields, n, this.runs);
    const refused = this.stats[0];
    const sent = native.sendBatch(this.fd, b, n, this.runs);
    if (this.stats[0] !== refused) this.gsoRest = GSO_REST_SENDS;
    return sent;
  }

  /** GSO messages the path refused as a whole, sent again packet by packet (for status). */
  get gsoFallbacks(): number {
    return this.stats[0];
  }

  recvErrors(b: PacketBatch, max: number): number {
    return loadNative().recvErrors(this.fd, b.arena, b.slotSize, b.headroom, max, b.lens, b.info);
  }

  holding(): boolean {
    return this.rxNext < this.rxCount;
  }

  /**
   * Datagrams go straight into the caller's slots. Only when UDP GRO coalesced one do the
   * datagrams from it on move aside, to be handed out segment by segment (now and in later calls).
   */
  recv(b: PacketBatch, max: number): number {
    const { arena, slotSize, headroom, lens } = b;
    if (this.rxNext < this.rxCount) return this.split(arena, slotSize, headroom, max, lens, 0);
    const n = this.recvDirect(arena, slotSize, headroom, max, lens);
    if (!this.gro || n <= 0) return n;
    const info = this.rxInfo;
    let first = 0;
    while (first < n && !(lens[first] > 0 && info[first * UDP_INFO_STRIDE + 3] > 0 && info[first * UDP_INFO_STRIDE + 3] < lens[first] - IPV4.HEADER_LEN)) first++;
    if (first === n) return n;
    if (this.rxArena.length < (n - first) * SLOT_SIZE) this.rxArena = slotArena(Math.max(n - first, 64));
    for (let i = first; i < n; i++) {
      const j = i - first;
      const len = lens[i] < 0 ? -1 : lens[i] - IPV4.HEADER_LEN;
      if (len > 0) {
        const from = i * slotSize + headroom + IPV4.HEADER_LEN;
        moveBytes(arena, from, from + len, this.rxArena, j * SLOT_SIZE + IPV4.HEADER_LEN);
      }
      this.rxLens[j] = len;
      for (let f = 0; f < UDP_INFO_STRIDE; f++) info[j * UDP_INFO_STRIDE + f] = info[i * UDP_INFO_STRIDE + f];
    }
    this.rxCount = n - first;
    this.rxNext = 0;
    this.rxSegNext = 0;
    return this.split(arena, slotSize, headroom, max, lens, first);
  }

  /** Every datagram into the caller's slots, behind the IPv4 header the decapsulator reads. */
  private recvDirect(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    const info = this.rxInfo;
    const n = loadNative().udpRecv(this.fd, arena, slotSize, headroom + IPV4.HEADER_LEN, max, lens, info);
    for (let i = 0; i < n; i++) {
      if (lens[i] < 0) continue;
      const k = i * UDP_INFO_STRIDE;
      writeIpv4Header(arena, i * slotSize + headroom, packOuterFields(0, info[k + 2], false), lens[i] + IPV4.HEADER_LEN, 0, PROTO_IPV6, info[k], this.local);
      lens[i] += IPV4.HEADER_LEN;
    }
    return n;
  }

  /** Hands out received datagrams, GRO-coalesced ones segment by segment, each behind its IPv4 header. */
  private split(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, out: number): number {
    const info = this.rxInfo;
    while (this.rxNext < this.rxCount && out < max) {
      const i = this.rxNext;
      const len = this.rxLens[i];
      const k = i * UDP_INFO_STRIDE;
      if (len < 0) {
        lens[out++] = -1;
        this.rxNext++;
        continue;
      }
      const seg = info[k + 3] > 0 && info[k + 3] < len ? info[k + 3] : len;
      const from = this.rxSegNext * seg;
      const chunk = Math.min(seg, len - from);
      const src = i * SLOT_SIZE + IPV4.HEADER_LEN + from;
      const o = out * slotSize + headroom;
      moveBytes(this.rxArena, src, src + chunk, arena, o + IPV4.HEADER_LEN);
      writeIpv4Header(arena, o, packOuterFields(0, info[k + 2], false), chunk + IPV4.HEADER_LEN, 0, PROTO_IPV6, info[k], this.local);
      lens[out++] = chunk + IPV4.HEADER_LEN;
      if (from + chunk >= len) {
        if (from > 0) this.groCoalesced++;
        this.rxNext++;
        this.rxSegNext = 0;
      } else {
        this.rxSegNext++;
      }
    }
    return out;
  }
}
