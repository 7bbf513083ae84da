/**
 * ICMPv6 (RFC 4443): header offsets and types, and the one place messages we originate get their
 * header and checksum: the in-place error builder, the echo request (keepalive probes), and the
 * checksum of a bare message (Neighbor Discovery, src/packet/ndp.ts).
 */
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
  // The quoted source becomes our destination; our header ends where the quote starts, so
  // writing it overwrites nothing of the quote.
  buf.copyWithin(start + IPV6.DST, quotedOff + IPV6.SRC, quotedOff + IPV6.SRC + 16);
  buf.set(srcBuf.subarray(srcOff, srcOff + 16), start + IPV6.SRC);
  return finishIcmpv6Packet(buf, start, quote, type, code, param);
}

/**
 * An ICMPv6 echo request (RFC 4443 §4.1) from `src` to `dst` written at buf[off]: IPv6 header,
 * identifier, sequence number, `data`, checksum. Returns the packet's length.
 */
export function writeIcmpv6EchoRequest(buf: Buffer, off: number, src: Uint8Array, dst: Uint8Array, id: number, seq: number, data: Uint8Array): number {
  buf.set(src.subarray(0, 16), off + IPV6.SRC);
  buf.set(dst.subarray(0, 16), off + IPV6.DST);
  buf.set(data, off + IPV6.HEADER_LEN + ICMPV6.HEADER_LEN);
  return finishIcmpv6Packet(buf, off, data.length, Icmpv6Type.EchoRequest, 0, ((id & 0xffff) << 16) | (seq & 0xffff));
}

/**
 * Completes an ICMPv6 packet we originate at buf[start] whose addresses are in place and whose
 * `bodyLen` bytes of body follow the 8-byte ICMPv6 header: the rest of the IPv6 header, type,
 * code, the 32 bits after the checksum (`rest`), and the checksum. Returns the packet's length.
 */
function finishIcmpv6Packet(buf: Buffer, start: number, bodyLen: number, type: number, code: number, rest: number): number {
  const icmpLen = ICMPV6.HEADER_LEN + bodyLen;
  buf.writeUInt32BE(0x60000000, start);
  buf.writeUInt16BE(icmpLen, start + IPV6.PAYLOAD_LEN);
  buf[start + IPV6.NEXT_HEADER] = PROTO_ICMPV6;
  buf[start + IPV6.HOP_LIMIT] = ICMPV6_HOP_LIMIT;
  const icmp = start + IPV6.HEADER_LEN;
  buf[icmp + ICMPV6.TYPE] = type;
  buf[icmp + ICMPV6.CODE] = code;
  buf.writeUInt16BE(0, icmp + ICMPV6.CHECKSUM);
  buf.writeUInt32BE(rest >>> 0, icmp + ICMPV6.REST);
  const pseudo = ipv6PseudoHeaderSum(buf, start + IPV6.SRC, start + IPV6.DST, icmpLen, PROTO_ICMPV6);
  buf.writeUInt16BE(checksum(buf, icmp, icmpLen, pseudo), icmp + ICMPV6.CHECKSUM);
  return IPV6.HEADER_LEN + icmpLen;
}

/**
 * The checksum field of an ICMPv6 message `msg` (from its type byte, no IPv6 header) sent from
 * `src` to `dst` (RFC 4443 §2.3); 0 for a message that already carries its right checksum. For
 * messages a raw ICMPv6 socket sends, whose checksum the kernel fills: tests and captures.
 */
export function icmpv6Checksum(msg: Uint8Array, src: Uint8Array, dst: Uint8Array): number {
  const addresses = new Uint8Array(32);
  addresses.set(src.subarray(0, 16), 0);
  addresses.set(dst.subarray(0, 16), 16);
  return checksum(msg, 0, msg.length, ipv6PseudoHeaderSum(addresses, 0, 16, msg.length, PROTO_ICMPV6));
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
