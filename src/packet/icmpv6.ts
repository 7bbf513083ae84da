/** ICMPv6 (RFC 4443) header offsets, types, and the in-place error builder. */
import { checksum, ipv6PseudoHeaderSum } from './checksum.js';
import { EXT_DEST_OPTS, EXT_FRAGMENT, EXT_HOP_BY_HOP, EXT_ROUTING, IPV6, IPV6_MIN_MTU } from './ipv6.js';
import { PROTO_ICMPV6 } from './ipv4.js';

export const ICMPV6 = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  /** MTU (Packet Too Big), pointer (Parameter Problem), id+seq (Echo). */
  REST: 4,
  HEADER_LEN: 8,
} as const;

export const Icmpv6Type = {
  DestUnreachable: 1,
  PacketTooBig: 2,
  TimeExceeded: 3,
  ParameterProblem: 4,
  EchoRequest: 128,
  EchoReply: 129,
} as const;

export const Icmpv6UnreachCode = {
  NoRoute: 0,
  AdminProhibited: 1,
  BeyondScope: 2,
  AddressUnreachable: 3,
  PortUnreachable: 4,
} as const;

/** Bytes an ICMPv6 error puts in front of the packet it quotes: IPv6 header + ICMPv6 header. */
export const ICMPV6_ERROR_OVERHEAD = IPV6.HEADER_LEN + ICMPV6.HEADER_LEN;

/** Hop limit for messages we originate (the Linux default route hop limit). */
export const ICMPV6_HOP_LIMIT = 64;

/** RFC 4443 §2.1: types 0..127 are errors. */
export function isIcmpv6Error(type: number): boolean {
  return type < 128;
}

/**
 * Writes an ICMPv6 error in place around a quoted packet that already sits at buf[quotedOff]:
 * the 48 header bytes go into the headroom just before it and the quote is cut so the whole
 * message fits the IPv6 minimum MTU (RFC 4443 §2.4(c)). Nothing is copied.
 *
 * `src` is read from srcBuf[srcOff]; the destination is the quoted packet's own source.
 * Returns the total length; the message starts at quotedOff - ICMPV6_ERROR_OVERHEAD.
 */
export function writeIcmpv6ErrorInPlace(
  buf: Buffer,
  quotedOff: number,
  quotedLen: number,
  type: number,
  code: number,
  param: number,
  srcBuf: Uint8Array,
  srcOff: number,
): number {
  const start = quotedOff - ICMPV6_ERROR_OVERHEAD;
  const quote = Math.min(quotedLen, IPV6_MIN_MTU - ICMPV6_ERROR_OVERHEAD);
  const icmpLen = ICMPV6.HEADER_LEN + quote;
  // The quoted source becomes our destination; copy it before the header overwrites nothing of
  // the quote (the quote starts after our header, so the order is safe).
  buf.copyWithin(start + IPV6.DST, quotedOff + IPV6.SRC, quotedOff + IPV6.SRC + 16);
  buf.set(srcBuf.subarray(srcOff, srcOff + 16), start + IPV6.SRC);
  buf.writeUInt32BE(0x60000000, start);
  buf.writeUInt16BE(icmpLen, start + IPV6.PAYLOAD_LEN);
  buf[start + IPV6.NEXT_HEADER] = PROTO_ICMPV6;
  buf[start + IPV6.HOP_LIMIT] = ICMPV6_HOP_LIMIT;
  const icmp = start + IPV6.HEADER_LEN;
  buf[icmp + ICMPV6.TYPE] = type;
  buf[icmp + ICMPV6.CODE] = code;
  buf.writeUInt16BE(0, icmp + ICMPV6.CHECKSUM);
  buf.writeUInt32BE(param >>> 0, icmp + ICMPV6.REST);
  const pseudo = ipv6PseudoHeaderSum(buf, start + IPV6.SRC, start + IPV6.DST, icmpLen, PROTO_ICMPV6);
  buf.writeUInt16BE(checksum(buf, icmp, icmpLen, pseudo), icmp + ICMPV6.CHECKSUM);
  return IPV6.HEADER_LEN + icmpLen;
}

/**
 * RFC 4443 §2.4(e): an error must not answer an ICMPv6 error. Walks the extension-header chain
 * within the bytes we have; if the chain or the ICMPv6 type lies beyond them, the packet is
 * treated as an error (the safe answer: send nothing).
 */
export function isIcmpv6ErrorPacket(buf: Uint8Array, off: number, len: number): boolean {
  let next = buf[off + IPV6.NEXT_HEADER];
  let at = off + IPV6.HEADER_LEN;
  const end = off + len;
  for (;;) {
    if (next === PROTO_ICMPV6) return at >= end || isIcmpv6Error(buf[at]);
    if (!isExtensionHeader(next)) return false;
    if (at + 2 > end) return true;
    const extLen = next === EXT_FRAGMENT ? 8 : (buf[at + 1] + 1) << 3;
    next = buf[at];
    at += extLen;
  }
}

function isExtensionHeader(nh: number): boolean {
  return nh === EXT_HOP_BY_HOP || nh === EXT_ROUTING || nh === EXT_FRAGMENT || nh === EXT_DEST_OPTS;
}
