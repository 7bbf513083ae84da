/**
 * What a frame read from a TUN with offload needs before the loop may see it (TX): a TCP or UDP
 * super-packet (TSO, USO) cut into segments of gso_size payload bytes, or a plain packet's
 * checksum that the kernel left partial completed. One cutter serves both protocols: every
 * segment carries the super-packet's headers (extension headers too) and its share of the
 * payload; only the fields a segment changes differ (TCP: sequence number and flags; UDP: its
 * length), and how the super-packet's length is taken out of the kernel's pseudo-header sum.
 */
import { moveBytes } from '../packet/bytes.js';
import { fold, sum16 } from '../packet/checksum.js';
import { IPV6, upperLayerOffset } from '../packet/ipv6.js';
import { PROTO_TCP, TCP, TcpFlag, tcpHeaderLength } from '../packet/tcp.js';
import { UDP } from '../packet/udp.js';

const { FIN, PSH, CWR } = TcpFlag;
// offsets as module constants, which the compiler folds (as in coalesce.ts)
const { SEQ: TCP_SEQ, FLAGS: TCP_FLAGS, CHECKSUM: TCP_CHECKSUM, HEADER_LEN: TCP_HDR } = TCP;
const { LENGTH: UDP_LENGTH, CHECKSUM: UDP_CHECKSUM, HEADER_LEN: UDP_HDR } = UDP;
const { HEADER_LEN: IPV6_HDR, PAYLOAD_LEN: IPV6_PAYLOAD_LEN } = IPV6;

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

/** Where the payload of the super-packet starts (the headers every segment repeats), or -1. */
function headersLength(src: Buffer, pkt: number, len: number, proto: number, l4Off: number): number {
  if (proto === PROTO_TCP) {
    if (l4Off + TCP_HDR > len) return -1;
    const tcpHdr = tcpHeaderLength(src, pkt + l4Off);
    return tcpHdr < TCP_HDR || l4Off + tcpHdr > len ? -1 : l4Off + tcpHdr;
  }
  return l4Off + UDP_HDR > len ? -1 : l4Off + UDP_HDR;
}

/**
 * How many segments of `gsoSize` payload bytes the IPv6 super-packet at src[pkt, pkt+len) of
 * protocol `proto` (PROTO_TCP or PROTO_UDP) cuts into, or -1 if it is not one we can cut.
 * `l4Off` is where its TCP or UDP header starts (the virtio csum_start: past any extension
 * headers, which every segment carries too).
 */
export function superPacketSegments(src: Buffer, pkt: number, len: number, proto: number, l4Off: number, gsoSize: number): number {
  if (gsoSize <= 0 || upperLayerOffset(src, pkt, len, proto) !== l4Off) return -1;
  const hdrLen = headersLength(src, pkt, len, proto, l4Off);
  return hdrLen < 0 ? -1 : Math.max(1, Math.ceil((len - hdrLen) / gsoSize));
}

/**
 * Cuts segments `from`, `from + 1`, … (at most `maxSegments` of them) out of a super-packet (see
 * superPacketSegments). Segment from + i is written at dst[first + i * stride] with its lengths,
 * (TCP) sequence number and flags, and full checksum. Returns how many were written, or -1 if the
 * packet cannot be cut into the room. The source is only read, so a caller short of room cuts the
 * rest in a later call.
 *
 * The checksum field of a super-packet holds what the kernel left for the device to finish: the
 * pseudo-header sum, with the destination RFC 8200 §8.1 calls for (the final one when a Routing
 * header is present). Each segment's pseudo-header sum is that one with the length swapped for
 * its own, the adjustment Linux's own software GSO makes, so no address is summed again: for TCP
 * the kernel summed the TCP length (tcp_gso_segment takes out the 32-bit length), for UDP the
 * length in its header (__udp_gso_segment takes out that field). A UDP checksum computed as zero
 * is sent as 0xffff: zero means "no checksum", which IPv6 does not allow (RFC 8200 §8.1).
 */
export function cutSuperPacket(
  src: Buffer,
  pkt: number,
  len: number,
  proto: number,
  l4Off: number,
  gsoSize: number,
  dst: Buffer,
  first: number,
  stride: number,
  maxSegments: number,
  from = 0,
): number {
  const n = superPacketSegments(src, pkt, len, proto, l4Off, gsoSize);
  if (n < 0) return -1;
  const hdrLen = headersLength(src, pkt, len, proto, l4Off);
  // a segment longer than the stride would run into the next one (or past the buffer)
  if (hdrLen + gsoSize > stride && n > 1) return -1;
  const end = Math.min(n, from + maxSegments);
  if (first + (end - from - 1) * stride + hdrLen + Math.min(gsoSize, len - hdrLen) > dst.length) return -1;
  const tcp = proto === PROTO_TCP;
  const l4 = pkt + l4Off;
  const csumAt = tcp ? TCP_CHECKSUM : UDP_CHECKSUM;
  let pseudoLess = (src[l4 + csumAt] << 8) | src[l4 + csumAt + 1];
  if (tcp) {
    const whole = len - l4Off;
    pseudoLess += (~(whole >>> 16) & 0xffff) + (~whole & 0xffff);
  } else {
    pseudoLess += ~((src[l4 + UDP_LENGTH] << 8) | src[l4 + UDP_LENGTH + 1]) & 0xffff;
  }
  // sequence numbers as signed 32-bit integers (same bits, mod 2^32): half of them are above 2^31,
  // and an unsigned one passed to a call V8 did not inline would be a heap number per segment
  const seq0 = tcp ? src.readInt32BE(l4 + TCP_SEQ) : 0;
  const flags = tcp ? src[l4 + TCP_FLAGS] : 0;
  const payload = len - hdrLen;
  for (let i = from; i < end; i++) {
    const o = first + (i - from) * stride;
    const chunk = Math.min(gsoSize, payload - i * gsoSize);
    moveBytes(src, pkt, pkt + hdrLen, dst, o);
    moveBytes(src, pkt + hdrLen + i * gsoSize, pkt + hdrLen + i * gsoSize + chunk, dst, o + hdrLen);
    const plen = hdrLen - IPV6_HDR + chunk;
    dst[o + IPV6_PAYLOAD_LEN] = plen >>> 8;
    dst[o + IPV6_PAYLOAD_LEN + 1] = plen & 0xff;
    const t = o + l4Off;
    const l4Len = hdrLen - l4Off + chunk;
    if (tcp) {
      dst.writeInt32BE((seq0 + i * gsoSize) | 0, t + TCP_SEQ);
      let f = flags;
      if (i < n - 1) f &= ~(FIN | PSH);
      if (i > 0) f &= ~CWR;
      dst[t + TCP_FLAGS] = f;
    } else {
      dst[t + UDP_LENGTH] = l4Len >>> 8;
      dst[t + UDP_LENGTH + 1] = l4Len & 0xff;
    }
    dst[t + csumAt] = 0;
    dst[t + csumAt + 1] = 0;
    let ck = ~fold(sum16(dst, t, l4Len, pseudoLess + l4Len)) & 0xffff;
    if (ck === 0 && !tcp) ck = 0xffff;
    dst[t + csumAt] = ck >>> 8;
    dst[t + csumAt + 1] = ck & 0xff;
  }
  return Math.max(0, end - from);
}
