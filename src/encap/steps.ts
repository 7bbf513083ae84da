/**
 * Decisions every 6in4 tunnel takes alike, whoever holds the tunnel's state: the Encapsulator (one
 * tunnel, its fields) and a broker's table (thousands of tunnels, each a few numbers in typed
 * arrays) call the same functions, so each rule is written once. Each works in place on the
 * caller's buffer and reuses the caller's PacketResult.
 */
import { isBogusInnerSource } from '../packet/address.js';
import { Icmpv4Type, Icmpv4UnreachCode } from '../packet/icmpv4.js';
import { ICMPV6_ERROR_OVERHEAD, Icmpv6Type, Icmpv6UnreachCode, isIcmpv6ErrorPacket, writeIcmpv6ErrorInPlace } from '../packet/icmpv6.js';
import { IPV4, packOuterFields } from '../packet/ipv4.js';
import { IPV6, ipv6TrafficClass, setIpv6TrafficClass } from '../packet/ipv6.js';
import { Drop, Traffic } from './counters.js';
import { decapInnerEcn, ECN_DROP, encapOuterTos } from './ecn.js';
import { IPV4_MIN_MTU } from './path-mtu.js';
import { type PacketResult, Verdict } from './result.js';
import type { TokenBucket } from './token-bucket.js';

/** What the steps that may refuse a packet return when they do not: any other value is a Drop reason. */
export const PASS = -1;

/** R10, R13: the outer TTL, TOS and DF for the inner packet at buf[off]; `ttl`, `tos` -1: inherit. */
export function outerFieldsFor(buf: Uint8Array, off: number, ttl: number, tos: number, df: boolean): number {
  const tc = ipv6TrafficClass(buf, off);
  return packOuterFields(ttl < 0 ? buf[off + IPV6.HOP_LIMIT] : ttl, encapOuterTos(tos < 0 ? tc : tos, tc), df); // R09: hop limit untouched
}

/**
 * R19–R24: turns the packet at buf[off, off+len) (ENCAP_HEADROOM free before it) into an ICMPv6
 * error to its sender from src[srcOff, +16), when one may be sent: never to an unspecified or
 * multicast source, never about an error (RFC 4443 §2.4(e)), and only with a token from `bucket`
 * (R23; a refusal counts icmp6_rate_limited). True: `out` is the Reply and `sent` was counted.
 */
export function errorToSenderInPlace(
  buf: Buffer,
  off: number,
  len: number,
  type: number,
  code: number,
  param: number,
  src: Uint8Array,
  srcOff: number,
  bucket: TokenBucket,
  traffic: Float64Array,
  sent: number,
  out: PacketResult,
): boolean {
  if (isBogusInnerSource(buf, off + IPV6.SRC) || isIcmpv6ErrorPacket(buf, off, len)) return false;
  if (!bucket.take()) {
    traffic[Traffic.icmp6_rate_limited]++;
    return false;
  }
  out.length = writeIcmpv6ErrorInPlace(buf, off, len, type, code, param, src, srcOff);
  out.offset = off - ICMPV6_ERROR_OVERHEAD;
  out.verdict = Verdict.Reply;
  traffic[sent]++;
  return true;
}

/**
 * RFC 1191: whether a "fragmentation needed" naming next-hop MTU `info` can be about the packet
 * quoted at buf[io] (its inner IPv6 header's first 8 bytes at least): only a packet larger than
 * the next hop's MTU can have drawn it. `overhead`: the outer headers' bytes (20, or 28 with FOU).
 */
export function fragNeededFits(buf: Uint8Array, io: number, info: number, overhead: number): boolean {
  const sent = ((buf[io + 4] << 8) | buf[io + 5]) + IPV6.HEADER_LEN + overhead;
  return !(info >= IPV4_MIN_MTU && sent <= info);
}

/**
 * R11/R12: an ICMPv4 destination unreachable or time exceeded about our packet whose inner IPv6
 * is quoted at buf[io, io+ilen), relayed to the inner source as Linux's sit does (ICMPv6
 * destination unreachable code 3, time exceeded code 0), from src[srcOff, +16), with a token from
 * `bucket`. Returns PASS with `out` the Reply, or the reason to drop it for.
 */
export function relayIcmpv4InPlace(
  type: number,
  code: number,
  buf: Buffer,
  io: number,
  ilen: number,
  src: Uint8Array,
  srcOff: number,
  bucket: TokenBucket,
  traffic: Float64Array,
  out: PacketResult,
): number {
  let type6: number;
  let code6: number;
  if (type === Icmpv4Type.DestUnreachable && code !== Icmpv4UnreachCode.SourceRouteFailed) {
    type6 = Icmpv6Type.DestUnreachable;
    code6 = Icmpv6UnreachCode.AddressUnreachable;
  } else if (type === Icmpv4Type.TimeExceeded && code === 0) {
    type6 = Icmpv6Type.TimeExceeded;
    code6 = 0;
  } else {
    return Drop.icmp4_ignored;
  }
  if (io < ICMPV6_ERROR_OVERHEAD) return Drop.no_headroom;
  if (ilen < IPV6.HEADER_LEN || buf[io] >> 4 !== 6) return Drop.icmp4_malformed;
  // RFC 4443 §2.4(e): none about an error, to a source that cannot take one, or about a packet
  // sent to a multicast group (e.3; Linux's icmp6_send refuses those for sit as well).
  if (isBogusInnerSource(buf, io + IPV6.SRC) || buf[io + IPV6.DST] === 0xff || isIcmpv6ErrorPacket(buf, io, ilen)) return Drop.icmp4_not_relayable;
  if (!bucket.take()) {
    traffic[Traffic.icmp6_rate_limited]++;
    return Drop.icmp4_relay_rate_limited;
  }
  out.length = writeIcmpv6ErrorInPlace(buf, io, ilen, type6, code6, 0, src, srcOff);
  out.offset = io - ICMPV6_ERROR_OVERHEAD;
  out.verdict = Verdict.Reply;
  traffic[Traffic.icmp6_errors_relayed]++;
  return PASS;
}

/**
 * RFC 8200: the length of the inner IPv6 packet at buf[io] given `ilen` bytes of outer payload,
 * or -1 if it is not IPv6 or longer than what arrived. Bytes after it are trimmed and counted,
 * as Linux does.
 */
export function innerIpv6Length(buf: Uint8Array, io: number, ilen: number, traffic: Float64Array): number {
  if (ilen < IPV6.HEADER_LEN || buf[io] >> 4 !== 6) return -1;
  const declared = ((buf[io + 4] << 8) | buf[io + 5]) + IPV6.HEADER_LEN;
  if (declared > ilen) return -1;
  if (declared < ilen) traffic[Traffic.rx_trailing_bytes_trimmed]++;
  return declared;
}

/** R13, RFC 6040 §4.2: the outer ECN (outer header at buf[off]) into the inner packet at buf[io]; false: drop it. */
export function applyDecapEcn(buf: Uint8Array, off: number, io: number): boolean {
  const tc = ipv6TrafficClass(buf, io);
  const ecn = decapInnerEcn(buf[off + IPV4.TOS] & 0x03, tc & 0x03);
  if (ecn === ECN_DROP) return false;
  if (ecn !== (tc & 0x03)) setIpv6TrafficClass(buf, io, (tc & 0xfc) | ecn);
  return true;
}
