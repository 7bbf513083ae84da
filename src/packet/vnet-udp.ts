/**
 * UDP offload on the TUN (TUN_F_USO6, VIRTIO_NET_HDR_GSO_UDP_L4, Linux ≥ 6.2): the kernel hands
 * over a UDP/IPv6 super-packet when a sender used UDP_SEGMENT (QUIC stacks do), and takes one
 * back for a run of equal-sized datagrams of one flow. Datagram boundaries survive both ways:
 * every segment but the last carries exactly gso_size bytes, as the sender's own sends did.
 */
import { moveBytes } from './bytes.js';
import { fold, sum16 } from './checksum.js';
import { IPV6, upperLayerOffset } from './ipv6.js';
import { PROTO_UDP, UDP } from './udp.js';
import { VNET_HDR_LEN, writeGsoHeader } from './vnet.js';

export const VNET_GSO_UDP_L4 = 5;
/**
 * The most datagrams one merged frame carries: Linux's UDP_MAX_SEGMENTS, the most a UDP_SEGMENT
 * send may hold, so no receiver meets a larger one than a local sender could make.
 */
export const UDP_MAX_SEGMENTS = 64;
const MAX_MERGED = 65535;
const UDP_HDR = UDP.HEADER_LEN;

/** Sum of the IPv6 pseudo-header for a UDP datagram of `udpLen` bytes (not folded). */
function udpPseudo(buf: Buffer, pkt: number, udpLen: number): number {
  return sum16(buf, pkt + IPV6.SRC, 32, udpLen + PROTO_UDP);
}

/**
 * TX: how many datagrams of `gsoSize` payload bytes the UDP/IPv6 super-packet at src[pkt, pkt+len)
 * cuts into, or -1 if it is not one we can cut. `udpOff` is where its UDP header starts (the
 * virtio csum_start: past any extension headers, which every datagram carries too).
 */
export function udpSegmentCount(src: Buffer, pkt: number, len: number, udpOff: number, gsoSize: number): number {
  if (gsoSize <= 0 || udpOff + UDP_HDR > len || upperLayerOffset(src, pkt, len, PROTO_UDP) !== udpOff) return -1;
  return Math.max(1, Math.ceil((len - udpOff - UDP_HDR) / gsoSize));
}

/**
 * TX: cuts datagrams `from`, `from + 1`, … (at most `maxSegments`) out of a UDP super-packet (see
 * udpSegmentCount). Datagram from + i is written at dst[first + i * stride] with its lengths and a
 * full checksum. Returns how many were written, or -1 if the packet cannot be cut into the room.
 *
 * The super-packet's checksum field holds the pseudo-header sum the kernel left for the device,
 * over the length in its UDP header; each datagram's is that sum with the length swapped for its
 * own, the adjustment Linux's __udp_gso_segment makes. A computed zero is sent as 0xffff: zero
 * means "no checksum", which IPv6 does not allow (RFC 8200 §8.1).
 */
export function segmentUdp6(
  src: Buffer,
  pkt: number,
  len: number,
  udpOff: number,
  gsoSize: number,
  dst: Buffer,
  first: number,
  stride: number,
  maxSegments: number,
  from = 0,
): number {
  const n = udpSegmentCount(src, pkt, len, udpOff, gsoSize);
  if (n < 0) return -1;
  const u = pkt + udpOff;
  const hdrLen = udpOff + UDP_HDR;
  if (hdrLen + gsoSize > stride && n > 1) return -1;
  if (first + (Math.min(n, from + maxSegments) - from - 1) * stride + hdrLen + Math.min(gsoSize, len - hdrLen) > dst.length) return -1;
  const payload = len - hdrLen;
  const superLen = (src[u + UDP.LENGTH] << 8) | src[u + UDP.LENGTH + 1];
  const pseudoLess = ((src[u + UDP.CHECKSUM] << 8) | src[u + UDP.CHECKSUM + 1]) + (~superLen & 0xffff);
  const end = Math.min(n, from + maxSegments);
  for (let i = from; i < end; i++) {
    const o = first + (i - from) * stride;
    const chunk = Math.min(gsoSize, payload - i * gsoSize);
    moveBytes(src, pkt, pkt + hdrLen, dst, o);
    moveBytes(src, pkt + hdrLen + i * gsoSize, pkt + hdrLen + i * gsoSize + chunk, dst, o + hdrLen);
    const plen = hdrLen - IPV6.HEADER_LEN + chunk;
    dst[o + IPV6.PAYLOAD_LEN] = plen >>> 8;
    dst[o + IPV6.PAYLOAD_LEN + 1] = plen & 0xff;
    const t = o + udpOff;
    const ulen = UDP_HDR + chunk;
    dst[t + UDP.LENGTH] = ulen >>> 8;
    dst[t + UDP.LENGTH + 1] = ulen & 0xff;
    dst[t + UDP.CHECKSUM] = 0;
    dst[t + UDP.CHECKSUM + 1] = 0;
    let ck = ~fold(sum16(dst, t, ulen, pseudoLess + ulen)) & 0xffff;
    if (ck === 0) ck = 0xffff;
    dst[t + UDP.CHECKSUM] = ck >>> 8;
    dst[t + UDP.CHECKSUM + 1] = ck & 0xff;
  }
  return Math.max(0, end - from);
}

/**
 * RX: merges consecutive datagrams of one UDP flow into a super-packet, as TcpCoalescer does for
 * TCP (same methods, so the device's runs hold either). Only datagrams right behind the IPv6
 * header with a checksum that verifies merge (the kernel will not check them again); all of a
 * run's datagrams are as long as its first, but for a shorter last one, which closes it.
 */
export class UdpCoalescer {
  private out: Buffer = Buffer.alloc(0);
  private base = 0;
  private limit = 0;
  private len = 0;
  private segSize = 0;
  private count = 0;
  private closed = false;

  /** True if the IPv6 packet at buf[pkt, pkt+len) could start or join a run. */
  static eligible(buf: Buffer, pkt: number, len: number): boolean {
    if (buf[pkt + IPV6.NEXT_HEADER] !== PROTO_UDP || len <= IPV6.HEADER_LEN + UDP_HDR) return false;
    const u = pkt + IPV6.HEADER_LEN;
    const ulen = len - IPV6.HEADER_LEN;
    if (((buf[u + UDP.LENGTH] << 8) | buf[u + UDP.LENGTH + 1]) !== ulen) return false;
    if (buf[u + UDP.CHECKSUM] === 0 && buf[u + UDP.CHECKSUM + 1] === 0) return false;
    return fold(sum16(buf, u, ulen, udpPseudo(buf, pkt, ulen))) === 0xffff;
  }

  /** Starts a run by copying the first datagram to out[base] (base ≥ VNET_HDR_LEN), never past out[limit]. */
  start(out: Buffer, base: number, buf: Buffer, pkt: number, len: number, limit = out.length): void {
    if (base + len > limit || limit > out.length) throw new RangeError(`a ${len}-byte datagram does not fit its GRO room`);
    moveBytes(buf, pkt, pkt + len, out, base);
    this.out = out;
    this.base = base;
    this.limit = limit;
    this.len = len;
    this.segSize = len - IPV6.HEADER_LEN - UDP_HDR;
    this.count = 1;
    this.closed = false;
  }

  /** Same addresses, ports and flow label (Linux's IPv6 GRO keys flows by the label too). */
  sameFlow(buf: Buffer, pkt: number): boolean {
    const o = this.out;
    const b = this.base;
    if ((buf[pkt + 1] & 0x0f) !== (o[b + 1] & 0x0f) || buf[pkt + 2] !== o[b + 2] || buf[pkt + 3] !== o[b + 3]) return false;
    return this.sameConnection(buf, pkt);
  }

  /** Same protocol, addresses and ports, whatever the flow label. */
  sameConnection(buf: Buffer, pkt: number): boolean {
    const o = this.out;
    const b = this.base;
    if (buf[pkt + IPV6.NEXT_HEADER] !== o[b + IPV6.NEXT_HEADER]) return false;
    for (let i = IPV6.SRC; i < IPV6.HEADER_LEN + 4; i++) if (buf[pkt + i] !== o[b + i]) return false;
    return true;
  }

  get segments(): number {
    return this.count;
  }

  tryAppend(buf: Buffer, pkt: number, len: number): boolean {
    if (this.closed || this.count >= UDP_MAX_SEGMENTS || !UdpCoalescer.eligible(buf, pkt, len)) return false;
    const o = this.out;
    const b = this.base;
    const payload = len - IPV6.HEADER_LEN - UDP_HDR;
    if (payload > this.segSize || this.len + payload - IPV6.HEADER_LEN > MAX_MERGED) return false;
    if (b + this.len + payload > this.limit) return false;
    // version, class, flow label; next header and hop limit; addresses and ports
    for (let i = 0; i < 4; i++) if (buf[pkt + i] !== o[b + i]) return false;
    if (buf[pkt + 6] !== o[b + 6] || buf[pkt + 7] !== o[b + 7]) return false;
    for (let i = IPV6.SRC; i < IPV6.HEADER_LEN + 4; i++) if (buf[pkt + i] !== o[b + i]) return false;
    moveBytes(buf, pkt + IPV6.HEADER_LEN + UDP_HDR, pkt + len, o, b + this.len);
    this.len += payload;
    this.count++;
    if (payload < this.segSize) this.closed = true;
    return true;
  }

  /**
   * Writes the run's virtio_net_hdr and lengths; returns [offset, length] of the frame (header
   * included). A lone datagram goes out as it was, with an empty header: the kernel refuses a UDP
   * GSO frame of one segment.
   */
  finish(): [number, number] {
    const o = this.out;
    const b = this.base;
    const h = b - VNET_HDR_LEN;
    o.fill(0, h, b);
    if (this.count > 1) {
      const udpLen = this.len - IPV6.HEADER_LEN;
      const u = b + IPV6.HEADER_LEN;
      o.writeUInt16BE(udpLen, b + IPV6.PAYLOAD_LEN);
      o.writeUInt16BE(udpLen, u + UDP.LENGTH);
      writeGsoHeader(o, h, VNET_GSO_UDP_L4, IPV6.HEADER_LEN + UDP_HDR, this.segSize, UDP.CHECKSUM);
      // the kernel finishes each datagram's checksum from the pseudo-header sum left here
      o.writeUInt16BE(fold(udpPseudo(o, b, udpLen)), u + UDP.CHECKSUM);
    }
    return [h, this.len + VNET_HDR_LEN];
  }
}
