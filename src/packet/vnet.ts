/**
 * TUN offload (IFF_VNET_HDR): every TUN read and write carries a 10-byte virtio_net_hdr in front
 * of the IP packet (linux/virtio_net.h; little-endian on the hosts we run on). With TUNSETOFFLOAD
 * the kernel hands us TCP super-packets up to 64 KiB ("GSO") with the TCP checksum left partial;
 * we cut them into tunnel-MTU segments (TX), and on the way in we merge consecutive segments of a
 * flow into one super-packet (GRO) so the kernel's stack runs once per ~40 segments.
 */
import { moveBytes } from './bytes.js';
import { fold, sum16 } from './checksum.js';
import { IPV6, upperLayerOffset } from './ipv6.js';
import { PROTO_TCP, TCP, TcpFlag, tcpHeaderLength } from './tcp.js';

export const VNET_HDR_LEN = 10;
export const VNET = { FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8 } as const;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_ECN = 0x80;

const { SEQ: TCP_SEQ, FLAGS: TCP_FLAGS, CHECKSUM: TCP_CHECKSUM } = TCP;
const { FIN, SYN, RST, PSH, URG, CWR } = TcpFlag;

/**
 * Completes a checksum the kernel left partial (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at
 * start+offset holds the pseudo-header sum; the one's complement of the sum from `start` to the
 * end is the checksum.
 */
export function completeChecksum(buf: Buffer, pkt: number, len: number, start: number, offset: number): boolean {
  const at = pkt + start + offset;
  if (start + offset + 2 > len) return false;
  const ck = ~fold(sum16(buf, pkt + start, len - start)) & 0xffff;
  buf[at] = ck >>> 8;
  buf[at + 1] = ck & 0xff;
  return true;
}

/**
 * Fills the virtio_net_hdr at o[h] for a GSO frame whose IPv6 header has no extensions: the
 * kernel cuts it into gsoSize-byte payloads behind hdrLen bytes of headers and finishes each
 * checksum (at IPv6 header + csumOffset) from the pseudo-header sum the caller leaves there.
 */
export function writeGsoHeader(o: Buffer, h: number, gsoType: number, hdrLen: number, gsoSize: number, csumOffset: number): void {
  o[h + VNET.FLAGS] = VNET_F_NEEDS_CSUM;
  o[h + VNET.GSO_TYPE] = gsoType;
  o.writeUInt16LE(hdrLen, h + VNET.HDR_LEN);
  o.writeUInt16LE(gsoSize, h + VNET.GSO_SIZE);
  o.writeUInt16LE(IPV6.HEADER_LEN, h + VNET.CSUM_START);
  o.writeUInt16LE(csumOffset, h + VNET.CSUM_OFFSET);
}

/** Sum of the IPv6 pseudo-header for a TCP segment of `tcpLen` bytes (not folded). */
function tcpPseudo(buf: Buffer, pkt: number, tcpLen: number): number {
  return sum16(buf, pkt + IPV6.SRC, 32, tcpLen + PROTO_TCP);
}

/**
 * TX: how many segments of `gsoSize` payload bytes the TCP/IPv6 super-packet at src[pkt, pkt+len)
 * cuts into, or -1 if it is not one we can cut. `tcpOff` is where its TCP header starts (the
 * virtio csum_start: past any extension headers, which every segment carries too).
 */
export function tcpSegmentCount(src: Buffer, pkt: number, len: number, tcpOff: number, gsoSize: number): number {
  if (gsoSize <= 0 || tcpOff + 20 > len || upperLayerOffset(src, pkt, len, PROTO_TCP) !== tcpOff) return -1;
  const tcpHdr = tcpHeaderLength(src, pkt + tcpOff);
  const hdrLen = tcpOff + tcpHdr;
  if (tcpHdr < 20 || hdrLen > len) return -1;
  return Math.max(1, Math.ceil((len - hdrLen) / gsoSize));
}

/**
 * TX: cuts segments `from`, `from + 1`, … (at most `maxSegments` of them) out of the super-packet
 * (see tcpSegmentCount). Segment from + i is written at dst[first + i * stride] with its payload
 * length, sequence number, flags and full checksum set. Returns how many were written, or -1 if
 * the packet is not a TCP super-packet we can cut. The source is only read, so a caller short of
 * room cuts the rest in a later call.
 *
 * The checksum field of a super-packet holds what the kernel put there for the device to finish
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM): the pseudo-header sum over the whole TCP length, with the
 * destination that RFC 8200 §8.1 calls for — the final one when a Routing header is present.
 * Each segment's pseudo-header sum is that one with the length swapped for its own, the
 * adjustment Linux's own software GSO makes, so no address is summed again here.
 */
export function segmentTcp6(
  src: Buffer,
  pkt: number,
  len: number,
  tcpOff: number,
  gsoSize: number,
  dst: Buffer,
  first: number,
  stride: number,
  maxSegments: number,
  from = 0,
): number {
  const n = tcpSegmentCount(src, pkt, len, tcpOff, gsoSize);
  if (n < 0) return -1;
  const tcp = pkt + tcpOff;
  const tcpHdr = tcpHeaderLength(src, tcp);
  const hdrLen = tcpOff + tcpHdr;
  // a segment longer than the stride would run into the next one (or past the buffer)
  if (hdrLen + gsoSize > stride && n > 1) return -1;
  if (first + (Math.min(n, from + maxSegments) - from - 1) * stride + hdrLen + Math.min(gsoSize, len - hdrLen) > dst.length) return -1;
  const payload = len - hdrLen;
  // sequence numbers as signed 32-bit integers (same bits, mod 2^32): half of them are above 2^31,
  // and an unsigned one passed to a call V8 did not inline would be a heap number per segment
  const seq0 = src.readInt32BE(tcp + TCP_SEQ);
  const flags = src[tcp + TCP_FLAGS];
  const fullLen = len - tcpOff;
  // the kernel's pseudo-header sum with the super-packet's TCP length taken out again
  const pseudoLess = ((src[tcp + TCP_CHECKSUM] << 8) | src[tcp + TCP_CHECKSUM + 1]) + (~(fullLen >>> 16) & 0xffff) + (~fullLen & 0xffff);
  const end = Math.min(n, from + maxSegments);
  for (let i = from; i < end; i++) {
    const o = first + (i - from) * stride;
    const chunk = Math.min(gsoSize, payload - i * gsoSize);
    moveBytes(src, pkt, pkt + hdrLen, dst, o);
    moveBytes(src, pkt + hdrLen + i * gsoSize, pkt + hdrLen + i * gsoSize + chunk, dst, o + hdrLen);
    dst.writeUInt16BE(hdrLen - IPV6.HEADER_LEN + chunk, o + IPV6.PAYLOAD_LEN);
    const t = o + tcpOff;
    dst.writeInt32BE((seq0 + i * gsoSize) | 0, t + TCP_SEQ);
    let f = flags;
    if (i < n - 1) f &= ~(FIN | PSH);
    if (i > 0) f &= ~CWR;
    dst[t + TCP_FLAGS] = f;
    dst[t + TCP_CHECKSUM] = 0;
    dst[t + TCP_CHECKSUM + 1] = 0;
    const ck = ~fold(sum16(dst, t, tcpHdr + chunk, pseudoLess + tcpHdr + chunk)) & 0xffff;
    dst[t + TCP_CHECKSUM] = ck >>> 8;
    dst[t + TCP_CHECKSUM + 1] = ck & 0xff;
  }
  return Math.max(0, end - from);
}

/** Largest IPv6 payload a merged packet may reach (the payload-length field is 16 bits). */
const MAX_MERGED = 65535;
/** The largest frame a merge can build: virtio_net_hdr, IPv6 header, the largest payload (F3). */
export const GRO_MAX_FRAME = VNET_HDR_LEN + IPV6.HEADER_LEN + MAX_MERGED;

/**
 * RX: merges consecutive TCP segments of one flow into a super-packet. `start` a run with a
 * segment, `tryAppend` later ones (true if taken), then `finish` to write the run out with its
 * virtio_net_hdr in front. Only plain data segments merge: same addresses, ports, header length
 * and options, ACK and window, traffic class and hop limit; sequence numbers contiguous; equal
 * sizes but for a shorter last one; no SYN/FIN/RST/URG; PSH only on the last.
 */
export class TcpCoalescer {
  /** Where the merged packet is built: out[base - VNET_HDR_LEN, ...]. */
  private out: Buffer = Buffer.alloc(0);
  private base = 0;
  /** The merged packet may not reach out[limit]: the end of the room it was given. */
  private limit = 0;
  private len = 0;
  private hdrLen = 0;
  private segSize = 0;
  private count = 0;
  private nextSeq = 0;
  private closed = false;

  /**
   * True if the IPv6 packet at buf[pkt, pkt+len) could start or join a run. Its TCP checksum must
   * be right: a merged packet goes to the kernel with the checksum left for it to fill in, so it
   * would never check the segments' own (Linux's GRO, too, merges only verified segments). A
   * segment with a bad checksum goes through unmerged, for the kernel to drop and count.
   */
  static eligible(buf: Buffer, pkt: number, len: number): boolean {
    if (buf[pkt + IPV6.NEXT_HEADER] !== PROTO_TCP || len < IPV6.HEADER_LEN + 20) return false;
    const tcp = pkt + IPV6.HEADER_LEN;
    const hdr = tcpHeaderLength(buf, tcp);
    if (hdr < 20 || IPV6.HEADER_LEN + hdr >= len) return false; // no payload: nothing to merge
    if ((buf[tcp + TCP_FLAGS] & (SYN | FIN | RST | URG)) !== 0) return false;
    return fold(sum16(buf, tcp, len - IPV6.HEADER_LEN, tcpPseudo(buf, pkt, len - IPV6.HEADER_LEN))) === 0xffff;
  }

  /**
   * Starts a run by copying the first segment to out[base] (base ≥ VNET_HDR_LEN); the run never
   * writes at or past out[limit] (default: the end of `out`). Throws if the segment does not fit.
   */
  start(out: Buffer, base: number, buf: Buffer, pkt: number, len: number, limit = out.length): void {
    if (base + len > limit || limit > out.length) throw new RangeError(`a ${len}-byte segment does not fit its GRO room`);
    moveBytes(buf, pkt, pkt + len, out, base);
    this.out = out;
    this.base = base;
    this.limit = limit;
    this.len = len;
    this.hdrLen = IPV6.HEADER_LEN + tcpHeaderLength(buf, pkt + IPV6.HEADER_LEN);
    this.segSize = len - this.hdrLen;
    this.count = 1;
    this.nextSeq = (buf.readInt32BE(pkt + IPV6.HEADER_LEN + TCP_SEQ) + this.segSize) | 0;
    this.closed = (buf[pkt + IPV6.HEADER_LEN + TCP_FLAGS] & PSH) !== 0;
  }

  /**
   * Whether the TCP/IPv6 packet at buf[pkt] belongs to this run's flow: addresses, ports and flow
   * label (Linux's IPv6 GRO keys flows by the label too; a different traffic class or hop limit is
   * the same flow but ends the run).
   */
  sameFlow(buf: Buffer, pkt: number): boolean {
    const o = this.out;
    const b = this.base;
    if ((buf[pkt + 1] & 0x0f) !== (o[b + 1] & 0x0f) || buf[pkt + 2] !== o[b + 2] || buf[pkt + 3] !== o[b + 3]) return false;
    return this.sameConnection(buf, pkt);
  }

  /**
   * Whether the TCP/IPv6 packet at buf[pkt] is of this run's connection: addresses and ports
   * only. Linux changes a connection's flow label on a retransmission timeout, so ordering
   * between a connection's packets cannot go by the label.
   */
  sameConnection(buf: Buffer, pkt: number): boolean {
    const o = this.out;
    const b = this.base;
    if (buf[pkt + IPV6.NEXT_HEADER] !== o[b + IPV6.NEXT_HEADER]) return false;
    for (let i = IPV6.SRC; i < IPV6.HEADER_LEN; i++) if (buf[pkt + i] !== o[b + i]) return false;
    const t = pkt + IPV6.HEADER_LEN;
    const ot = b + IPV6.HEADER_LEN;
    for (let i = 0; i < 4; i++) if (buf[t + i] !== o[ot + i]) return false;
    return true;
  }

  get segments(): number {
    return this.count;
  }

  tryAppend(buf: Buffer, pkt: number, len: number): boolean {
    if (this.closed || !TcpCoalescer.eligible(buf, pkt, len)) return false;
    const o = this.out;
    const b = this.base;
    const hl = this.hdrLen;
    const payload = len - hl;
    if (payload <= 0 || payload > this.segSize || this.len + payload - IPV6.HEADER_LEN > MAX_MERGED) return false;
    if (b + this.len + payload > this.limit) return false; // never past the room: it is another frame's
    // same flow, same header shape: IPv6 version/class/flow label, next header, hop limit, addresses
    for (let i = 0; i < 4; i++) if (buf[pkt + i] !== o[b + i]) return false;
    if (buf[pkt + 6] !== o[b + 6] || buf[pkt + 7] !== o[b + 7]) return false;
    for (let i = 8; i < 40; i++) if (buf[pkt + i] !== o[b + i]) return false;
    const t = pkt + IPV6.HEADER_LEN;
    const ot = b + IPV6.HEADER_LEN;
    if (tcpHeaderLength(buf, t) !== hl - IPV6.HEADER_LEN) return false;
    if (buf.readInt32BE(t + TCP_SEQ) !== this.nextSeq) return false;
    // ports, ack, data offset, window; flags may differ only by PSH; options byte for byte
    for (let i = 0; i < 4; i++) if (buf[t + i] !== o[ot + i]) return false;
    for (let i = 8; i < 13; i++) if (buf[t + i] !== o[ot + i]) return false;
    if ((buf[t + TCP_FLAGS] & ~PSH) !== (o[ot + TCP_FLAGS] & ~PSH)) return false;
    if (buf[t + 14] !== o[ot + 14] || buf[t + 15] !== o[ot + 15]) return false;
    for (let i = 20; i < hl - IPV6.HEADER_LEN; i++) if (buf[t + i] !== o[ot + i]) return false;
    moveBytes(buf, pkt + hl, pkt + len, o, b + this.len);
    this.len += payload;
    this.count++;
    this.nextSeq = (this.nextSeq + payload) | 0;
    if (buf[t + TCP_FLAGS] & PSH) {
      o[ot + TCP_FLAGS] |= PSH;
      this.closed = true;
    }
    if (payload < this.segSize) this.closed = true; // a short segment ends a run
    return true;
  }

  /**
   * Writes the run's virtio_net_hdr and lengths. Returns [offset, length] of the frame to write
   * (header included). A single segment goes out as it was, with an empty header.
   */
  finish(): [number, number] {
    const o = this.out;
    const b = this.base;
    const h = b - VNET_HDR_LEN;
    o.fill(0, h, b);
    if (this.count > 1) {
      const tcpLen = this.len - IPV6.HEADER_LEN;
      o.writeUInt16BE(tcpLen, b + IPV6.PAYLOAD_LEN);
      writeGsoHeader(o, h, VNET_GSO_TCPV6, this.hdrLen, this.segSize, TCP_CHECKSUM);
      // the kernel finishes the checksum: leave the pseudo-header sum in the field
      const ps = fold(tcpPseudo(o, b, tcpLen));
      o.writeUInt16BE(ps, b + IPV6.HEADER_LEN + TCP_CHECKSUM);
    }
    return [h, this.len + VNET_HDR_LEN];
  }
}
