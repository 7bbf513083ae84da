/**
 * What the device does with the loop's packets on the way to the kernel (RX): consecutive TCP
 * segments or UDP datagrams of one flow merged into one super-packet (GRO), with the
 * virtio_net_hdr that tells the kernel how to cut it again, so its stack runs once per run
 * instead of once per segment. The mechanism is one (FlowCoalescer: where a run is built, its
 * flow key, appending, the finished frame); TcpCoalescer and UdpCoalescer say which packets may
 * start a run and what a packet must match to join one.
 */
import { moveBytes } from '../packet/bytes.js';
import { fold, sum16 } from '../packet/checksum.js';
import { IPV6 } from '../packet/ipv6.js';
import { PROTO_TCP, TCP, TcpFlag, tcpHeaderLength } from '../packet/tcp.js';
import { PROTO_UDP, UDP } from '../packet/udp.js';
import { VNET_GSO_TCPV6, VNET_GSO_UDP_L4, VNET_HDR_LEN, writeGsoHeader } from '../packet/vnet.js';

const { SYN, FIN, RST, PSH, URG } = TcpFlag;
// offsets as module constants, which the compiler folds: read as TCP.X / IPV6.X inside the merge
// checks they made TCP GRO ~10% slower (CPU time per segment, measured when this file was made)
const { SEQ: TCP_SEQ, ACK: TCP_ACK, FLAGS: TCP_FLAGS, WINDOW: TCP_WINDOW, CHECKSUM: TCP_CHECKSUM, HEADER_LEN: TCP_HDR } = TCP;
const { HEADER_LEN: IPV6_HDR, SRC: IPV6_SRC, NEXT_HEADER: IPV6_NEXT_HEADER, PAYLOAD_LEN: IPV6_PAYLOAD_LEN } = IPV6;

/** Largest IPv6 payload a merged packet may reach (the payload-length field is 16 bits). */
const MAX_MERGED = 65535;
/** The largest frame a merge can build: virtio_net_hdr, IPv6 header, the largest payload (F3). */
export const GRO_MAX_FRAME = VNET_HDR_LEN + IPV6.HEADER_LEN + MAX_MERGED;
/**
 * The most datagrams one merged UDP frame carries: Linux's UDP_MAX_SEGMENTS, the most a
 * UDP_SEGMENT send may hold, so no receiver meets a larger one than a local sender could make.
 */
export const UDP_MAX_SEGMENTS = 64;

/** Sum of the IPv6 pseudo-header for `l4Len` bytes of protocol `proto` (not folded). */
function pseudoHeaderSum(buf: Buffer, pkt: number, l4Len: number, proto: number): number {
  return sum16(buf, pkt + IPV6_SRC, 32, l4Len + proto);
}

/**
 * A run of one flow being merged. `start` it with a packet, `tryAppend` later ones (true if
 * taken), then `finish` to write it out with its virtio_net_hdr in front. A packet may start a
 * run only if its protocol's `eligible` says so.
 */
export interface Coalescer {
  /** Starts a run by copying the packet to out[base] (base ≥ VNET_HDR_LEN); the run never writes at or past out[limit]. */
  start(out: Buffer, base: number, buf: Buffer, pkt: number, len: number, limit?: number): void;
  /**
   * Starts a run on the packet where it lies (VNET_HDR_LEN free before it), for a gather write:
   * later packets' payloads are not copied behind it, the caller lists them (from `headerLength`
   * on) after the first packet's frame, and finish() edits the first packet's headers in place.
   */
  startInPlace(buf: Buffer, pkt: number, len: number): void;
  /** Bytes of headers at the front of every packet of the run (IPv6 and TCP or UDP). */
  readonly headerLength: number;
  /** Whether the packet at buf[pkt] is of this run's flow: addresses, ports and flow label. */
  sameFlow(buf: Buffer, pkt: number): boolean;
  /** Whether the packet at buf[pkt] is of this run's connection: addresses and ports, whatever the label. */
  sameConnection(buf: Buffer, pkt: number): boolean;
  /** Appends the packet's payload if it may join the run; false (and nothing written) if not. */
  tryAppend(buf: Buffer, pkt: number, len: number): boolean;
  /**
   * tryAppend for a packet the caller has just found `eligible` (its checksum verified): the same
   * but for summing it a second time.
   */
  tryAppendEligible(buf: Buffer, pkt: number, len: number): boolean;
  /** Writes the run's virtio_net_hdr and lengths; returns [offset, length] of the frame, header included. */
  finish(): [number, number];
  /** Packets in the run. */
  readonly segments: number;
}

/**
 * The merging both protocols share. A run's packets have the IPv6 header of its first but for
 * the payload length (same version, class, flow label, next header, hop limit, addresses, so a
 * different traffic class or hop limit is the same flow but ends the run), the same size but for
 * a shorter last one (which closes it), and together no more than 65,535 bytes of payload. A
 * lone packet goes out as it was, with an empty header.
 */
abstract class FlowCoalescer implements Coalescer {
  /** Where the merged packet is built: out[base - VNET_HDR_LEN, ...]. */
  protected out: Buffer = Buffer.alloc(0);
  protected base = 0;
  /** The merged packet may not reach out[limit]: the end of the room it was given. */
  private limit = 0;
  private len = 0;
  /** Bytes of headers at the front of every packet of the run (IPv6 and TCP or UDP). */
  protected hdrLen = 0;
  private segSize = 0;
  private count = 0;
  protected closed = false;
  /** The run is built where its first packet lies; later payloads are the caller's to gather. */
  private inPlace = false;

  /**
   * @param proto PROTO_TCP or PROTO_UDP
   * @param gsoType the virtio GSO type the kernel cuts a merged frame by
   * @param csumAt where the checksum field is in the protocol's header
   * @param maxSegments the most packets one run may hold
   * @param unit what a packet is called in an error
   */
  protected constructor(
    private readonly proto: number,
    private readonly gsoType: number,
    private readonly csumAt: number,
    private readonly maxSegments: number,
    private readonly unit: string,
  ) {}

  /** The protocol's `eligible`: whether the packet could start or join a run. */
  protected abstract accepts(buf: Buffer, pkt: number, len: number): boolean;
  /** Takes in the protocol state of a run's first packet; returns its header length (IPv6 and L4). */
  protected abstract begin(buf: Buffer, pkt: number, len: number): number;
  /** Whether the L4 header at buf[t] fits the run's first (at out[ot]) for the packet to join. */
  protected abstract joins(buf: Buffer, t: number, ot: number): boolean;
  /** Takes in the protocol state of a packet that joined (its L4 header at buf[t]). */
  protected abstract joined(buf: Buffer, t: number, ot: number, payload: number): void;
  /** Writes what the protocol's header says of the merged length (`l4Len` bytes of L4) at out[ot]. */
  protected abstract merged(ot: number, l4Len: number): void;

  start(out: Buffer, base: number, buf: Buffer, pkt: number, len: number, limit = out.length): void {
    if (base + len > limit || limit > out.length) throw new RangeError(`a ${len}-byte ${this.unit} does not fit its GRO room`);
    moveBytes(buf, pkt, pkt + len, out, base);
    this.inPlace = false;
    this.begun(out, base, len, limit);
  }

  startInPlace(buf: Buffer, pkt: number, len: number): void {
    if (pkt < VNET_HDR_LEN) throw new RangeError(`no room for a virtio_net_hdr before a ${this.unit} at ${pkt}`);
    this.inPlace = true;
    this.begun(buf, pkt, len, Number.MAX_SAFE_INTEGER);
  }

  get headerLength(): number {
    return this.hdrLen;
  }

  private begun(out: Buffer, base: number, len: number, limit: number): void {
    this.out = out;
    this.base = base;
    this.limit = limit;
    this.len = len;
    this.count = 1;
    this.closed = false;
    this.hdrLen = this.begin(out, base, len);
    this.segSize = len - this.hdrLen;
  }

  sameFlow(buf: Buffer, pkt: number): boolean {
    const o = this.out;
    const b = this.base;
    if ((buf[pkt + 1] & 0x0f) !== (o[b + 1] & 0x0f) || buf[pkt + 2] !== o[b + 2] || buf[pkt + 3] !== o[b + 3]) return false;
    return this.sameConnection(buf, pkt);
  }

  /**
   * Linux changes a connection's flow label on a retransmission timeout, so ordering between a
   * connection's packets cannot go by the label.
   */
  sameConnection(buf: Buffer, pkt: number): boolean {
    const o = this.out;
    const b = this.base;
    if (buf[pkt + IPV6_NEXT_HEADER] !== o[b + IPV6_NEXT_HEADER]) return false;
    // addresses, then the ports at the front of the TCP or UDP header
    for (let i = IPV6_SRC; i < IPV6_HDR + 4; i++) if (buf[pkt + i] !== o[b + i]) return false;
    return true;
  }

  get segments(): number {
    return this.count;
  }

  tryAppend(buf: Buffer, pkt: number, len: number): boolean {
    return this.accepts(buf, pkt, len) && this.tryAppendEligible(buf, pkt, len);
  }

  tryAppendEligible(buf: Buffer, pkt: number, len: number): boolean {
    if (this.closed || this.count >= this.maxSegments) return false;
    const o = this.out;
    const b = this.base;
    const payload = len - this.hdrLen;
    if (payload <= 0 || payload > this.segSize || this.len + payload - IPV6_HDR > MAX_MERGED) return false;
    if (b + this.len + payload > this.limit) return false; // never past the room: it is another frame's
    // version, class, flow label; next header and hop limit; addresses
    for (let i = 0; i < 4; i++) if (buf[pkt + i] !== o[b + i]) return false;
    if (buf[pkt + 6] !== o[b + 6] || buf[pkt + 7] !== o[b + 7]) return false;
    for (let i = IPV6_SRC; i < IPV6_HDR; i++) if (buf[pkt + i] !== o[b + i]) return false;
    const t = pkt + IPV6_HDR;
    const ot = b + IPV6_HDR;
    if (!this.joins(buf, t, ot)) return false;
    if (!this.inPlace) moveBytes(buf, pkt + this.hdrLen, pkt + len, o, b + this.len);
    this.len += payload;
    this.count++;
    this.joined(buf, t, ot, payload);
    if (payload < this.segSize) this.closed = true; // a short segment ends a run
    return true;
  }

  finish(): [number, number] {
    const o = this.out;
    const b = this.base;
    const h = b - VNET_HDR_LEN;
    o.fill(0, h, b);
    if (this.count > 1) {
      const l4Len = this.len - IPV6_HDR;
      o.writeUInt16BE(l4Len, b + IPV6_PAYLOAD_LEN);
      this.merged(b + IPV6_HDR, l4Len);
      writeGsoHeader(o, h, this.gsoType, this.hdrLen, this.segSize, this.csumAt);
      // the kernel finishes each segment's checksum from the pseudo-header sum left in the field
      o.writeUInt16BE(fold(pseudoHeaderSum(o, b, l4Len, this.proto)), b + IPV6_HDR + this.csumAt);
    }
    return [h, this.len + VNET_HDR_LEN];
  }
}

/**
 * TCP segments: only plain data segments merge, right behind the IPv6 header: same ports, header
 * length and options, ACK and window; sequence numbers contiguous; no SYN/FIN/RST/URG; PSH only
 * on the last.
 */
export class TcpCoalescer extends FlowCoalescer {
  private nextSeq = 0;

  constructor() {
    // a run of one-byte segments meets the 65,535-byte bound first: no count of its own
    super(PROTO_TCP, VNET_GSO_TCPV6, TCP_CHECKSUM, MAX_MERGED, 'segment');
  }

  /**
   * True if the IPv6 packet at buf[pkt, pkt+len) could start or join a run. Its TCP checksum must
   * be right: a merged packet goes to the kernel with the checksum left for it to fill in, so it
   * would never check the segments' own (Linux's GRO, too, merges only verified segments). A
   * segment with a bad checksum goes through unmerged, for the kernel to drop and count.
   */
  static eligible(buf: Buffer, pkt: number, len: number): boolean {
    if (buf[pkt + IPV6_NEXT_HEADER] !== PROTO_TCP || len < IPV6_HDR + TCP_HDR) return false;
    const tcp = pkt + IPV6_HDR;
    const hdr = tcpHeaderLength(buf, tcp);
    if (hdr < TCP_HDR || IPV6_HDR + hdr >= len) return false; // no payload: nothing to merge
    if ((buf[tcp + TCP_FLAGS] & (SYN | FIN | RST | URG)) !== 0) return false;
    return fold(sum16(buf, tcp, len - IPV6_HDR, pseudoHeaderSum(buf, pkt, len - IPV6_HDR, PROTO_TCP))) === 0xffff;
  }

  protected accepts(buf: Buffer, pkt: number, len: number): boolean {
    return TcpCoalescer.eligible(buf, pkt, len);
  }

  protected begin(buf: Buffer, pkt: number, len: number): number {
    const t = pkt + IPV6_HDR;
    const hdrLen = IPV6_HDR + tcpHeaderLength(buf, t);
    this.nextSeq = (buf.readInt32BE(t + TCP_SEQ) + len - hdrLen) | 0;
    this.closed = (buf[t + TCP_FLAGS] & PSH) !== 0;
    return hdrLen;
  }

  protected joins(buf: Buffer, t: number, ot: number): boolean {
    const o = this.out;
    const tcpHdr = this.hdrLen - IPV6_HDR;
    if (tcpHeaderLength(buf, t) !== tcpHdr) return false;
    if (buf.readInt32BE(t + TCP_SEQ) !== this.nextSeq) return false;
    // ports, ack, data offset, window; flags may differ only by PSH; options byte for byte
    for (let i = 0; i < 4; i++) if (buf[t + i] !== o[ot + i]) return false;
    for (let i = TCP_ACK; i < TCP_FLAGS; i++) if (buf[t + i] !== o[ot + i]) return false;
    if ((buf[t + TCP_FLAGS] & ~PSH) !== (o[ot + TCP_FLAGS] & ~PSH)) return false;
    if (buf[t + TCP_WINDOW] !== o[ot + TCP_WINDOW] || buf[t + TCP_WINDOW + 1] !== o[ot + TCP_WINDOW + 1]) return false;
    for (let i = TCP_HDR; i < tcpHdr; i++) if (buf[t + i] !== o[ot + i]) return false;
    return true;
  }

  protected joined(buf: Buffer, t: number, ot: number, payload: number): void {
    this.nextSeq = (this.nextSeq + payload) | 0;
    if (buf[t + TCP_FLAGS] & PSH) {
      this.out[ot + TCP_FLAGS] |= PSH;
      this.closed = true;
    }
  }

  protected merged(): void {
    // TCP's header holds no length: the IPv6 payload length says it
  }
}

/**
 * UDP datagrams: only datagrams right behind the IPv6 header, whose length field matches the
 * packet and whose checksum verifies (the kernel will not check them again), of the same ports;
 * at most UDP_MAX_SEGMENTS of them.
 */
export class UdpCoalescer extends FlowCoalescer {
  constructor() {
    super(PROTO_UDP, VNET_GSO_UDP_L4, UDP.CHECKSUM, UDP_MAX_SEGMENTS, 'datagram');
  }

  /** True if the IPv6 packet at buf[pkt, pkt+len) could start or join a run. */
  static eligible(buf: Buffer, pkt: number, len: number): boolean {
    if (buf[pkt + IPV6_NEXT_HEADER] !== PROTO_UDP || len <= IPV6_HDR + UDP.HEADER_LEN) return false;
    const u = pkt + IPV6_HDR;
    const ulen = len - IPV6_HDR;
    if (((buf[u + UDP.LENGTH] << 8) | buf[u + UDP.LENGTH + 1]) !== ulen) return false;
    if (buf[u + UDP.CHECKSUM] === 0 && buf[u + UDP.CHECKSUM + 1] === 0) return false;
    return fold(sum16(buf, u, ulen, pseudoHeaderSum(buf, pkt, ulen, PROTO_UDP))) === 0xffff;
  }

  protected accepts(buf: Buffer, pkt: number, len: number): boolean {
    return UdpCoalescer.eligible(buf, pkt, len);
  }

  protected begin(): number {
    return IPV6_HDR + UDP.HEADER_LEN;
  }

  protected joins(buf: Buffer, t: number, ot: number): boolean {
    const o = this.out;
    for (let i = 0; i < 4; i++) if (buf[t + i] !== o[ot + i]) return false; // ports
    return true;
  }

  protected joined(): void {
    // a datagram carries no state a later one must continue
  }

  protected merged(ot: number, l4Len: number): void {
    this.out.writeUInt16BE(l4Len, ot + UDP.LENGTH);
  }
}
