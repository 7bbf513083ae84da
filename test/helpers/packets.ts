/** Test-only packet builders: readable, allocating, and independent of the code under test's writers. */
import { parseIpv4, parseIpv6 } from '../../src/packet/address.js';
import { packetArena } from '../../src/packet/arena.js';
import { MAX_BATCH, SLOT_SIZE } from '../../src/io/slots.js';

export const HEADROOM = 64;

function ip6(text: string): Buffer {
  const b = parseIpv6(text);
  if (!b) throw new Error(`bad IPv6 in test: ${text}`);
  return b;
}

export function ip4(text: string): number {
  const n = parseIpv4(text);
  if (n === null) throw new Error(`bad IPv4 in test: ${text}`);
  return n;
}

/** Internet checksum, written out plainly so it does not share code with src/packet. */
/** RFC 1071's sum by byte pairs (an odd last byte padded with zero), unfolded. */
export function refSum(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  return s;
}

export function refChecksum(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i] << 8) + (i + 1 < bytes.length ? bytes[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return ~s & 0xffff;
}

/**
 * Turns the full TCP (or, with csumField 6, UDP) checksum of an IPv6 packet into what a TUN with
 * TSO/USO hands over for a super-packet: the pseudo-header sum alone (VIRTIO_NET_HDR_F_NEEDS_CSUM),
 * over the whole length.
 */
export function asKernelHandsIt(pkt: Buffer, tcpOff: number, csumField = 16): void {
  const at = tcpOff + csumField;
  const full = pkt.readUInt16BE(at);
  pkt.writeUInt16BE(0, at);
  let body = 0;
  for (let i = tcpOff; i < pkt.length; i += 2) body += (pkt[i] << 8) + (i + 1 < pkt.length ? pkt[i + 1] : 0);
  while (body > 0xffff) body = (body & 0xffff) + Math.floor(body / 65536);
  // full = ~(pseudo + body), so pseudo = ~full - body in one's complement
  let pseudo = (~full & 0xffff) + (~body & 0xffff);
  while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + (pseudo >>> 16);
  pkt.writeUInt16BE(pseudo, at);
}

export interface Ipv6Spec {
  src: string;
  dst: string;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  nextHeader?: number;
  payload?: Buffer;
}

/** An IPv6 packet; with no payload given, an ICMPv6 echo request with a correct checksum. */
export function ipv6Packet(spec: Ipv6Spec & { payloadLen?: number }): Buffer {
  let nh = spec.nextHeader ?? 58;
  let payload = spec.payload;
  const src = ip6(spec.src);
  const dst = ip6(spec.dst);
  if (!payload) {
    nh = 58;
    const n = spec.payloadLen ?? 16;
    payload = Buffer.alloc(Math.max(8, n));
    payload[0] = 128;
    payload.writeUInt32BE(0x12340001, 4);
    for (let i = 8; i < payload.length; i++) payload[i] = i & 0xff;
    const pseudo = Buffer.concat([src, dst, u32(payload.length), Buffer.from([0, 0, 0, 58])]);
    payload.writeUInt16BE(refChecksum(Buffer.concat([pseudo, payload])), 2);
  }
  const h = Buffer.alloc(40);
  const tc = spec.trafficClass ?? 0;
  h.writeUInt32BE(((6 << 28) | (tc << 20) | (spec.flowLabel ?? 0)) >>> 0, 0);
  h.writeUInt16BE(payload.length, 4);
  h[6] = nh;
  h[7] = spec.hopLimit ?? 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return Buffer.concat([h, payload]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  protocol?: number;
  ttl?: number;
  tos?: number;
  id?: number;
  flagsFragment?: number;
  /** IPv4 options (a multiple of 4 bytes), e.g. Record Route. */
  options?: Buffer;
  payload: Buffer;
}

/** An IPv4 packet with a correct header checksum. */
export function ipv4Packet(spec: Ipv4Spec): Buffer {
  const options = spec.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + options.length);
  h[0] = 0x40 | (h.length >> 2);
  options.copy(h, 20);
  h[1] = spec.tos ?? 0;
  h.writeUInt16BE(h.length + spec.payload.length, 2);
  h.writeUInt16BE(spec.id ?? 1, 4);
  h.writeUInt16BE(spec.flagsFragment ?? 0, 6);
  h[8] = spec.ttl ?? 64;
  h[9] = spec.protocol ?? 41;
  h.writeUInt32BE(ip4(spec.src), 12);
  h.writeUInt32BE(ip4(spec.dst), 16);
  h.writeUInt16BE(refChecksum(h), 10);
  return Buffer.concat([h, spec.payload]);
}

/** An ICMPv4 error quoting `quoted` (an IPv4 packet), with a correct checksum. */
export function icmpv4Error(type: number, code: number, rest: number, quoted: Buffer): Buffer {
  const m = Buffer.alloc(8 + quoted.length);
  m[0] = type;
  m[1] = code;
  m.writeUInt32BE(rest >>> 0, 4);
  quoted.copy(m, 8);
  m.writeUInt16BE(refChecksum(m), 2);
  return m;
}

/** Places `pkt` in a fresh buffer with `headroom` spare bytes in front; returns [buf, off]. */
export function withHeadroom(pkt: Buffer, headroom = HEADROOM, tailroom = 0): [Buffer, number] {
  const buf = Buffer.alloc(headroom + pkt.length + tailroom, 0xee);
  pkt.copy(buf, headroom);
  return [buf, headroom];
}

export interface TcpSegmentSpec {
  seq: number;
  payload: Buffer;
  /** TCP flags; default ACK. */
  flags?: number;
  options?: Buffer;
  sport?: number;
  src?: string;
  dst?: string;
  flowLabel?: number;
}

/** A TCP/IPv6 segment (ports sport → 40000, ack 777, window 512) with a correct checksum. */
export function tcp6Segment(t: TcpSegmentSpec): Buffer {
  const options = t.options ?? Buffer.alloc(0);
  const tcp = Buffer.alloc(20 + options.length);
  tcp.writeUInt16BE(t.sport ?? 5001, 0);
  tcp.writeUInt16BE(40000, 2);
  tcp.writeUInt32BE(t.seq >>> 0, 4);
  tcp.writeUInt32BE(777, 8);
  tcp[12] = ((20 + options.length) / 4) << 4;
  tcp[13] = t.flags ?? 0x10;
  tcp.writeUInt16BE(512, 14);
  options.copy(tcp, 20);
  const pkt = ipv6Packet({ src: t.src ?? '2001:db8:1::2', dst: t.dst ?? '2001:db8:1::1', nextHeader: 6, flowLabel: t.flowLabel, payload: Buffer.concat([tcp, t.payload]) });
  pkt.writeUInt16BE(0, 56);
  pkt.writeUInt16BE(refTcp6Checksum(pkt), 56);
  return pkt;
}

/** The TCP checksum of a TCP/IPv6 packet (no extension headers) as its field would hold it. */
function refTcp6Checksum(p: Buffer): number {
  const len = p.length - 40;
  const pseudo = Buffer.concat([p.subarray(8, 40), Buffer.from([len >> 24, (len >> 16) & 255, (len >> 8) & 255, len & 255, 0, 0, 0, 6])]);
  return refChecksum(Buffer.concat([pseudo, p.subarray(40)]));
}

export function tcpChecksumOk(p: Buffer): boolean {
  return refTcp6Checksum(p) === 0;
}

export interface UdpDatagramSpec {
  payload: Buffer;
  sport?: number;
  dport?: number;
  src?: string;
  dst?: string;
  flowLabel?: number;
}

/** A UDP/IPv6 datagram (ports sport → 4433) with a correct checksum. */
export function udp6Datagram(u: UdpDatagramSpec): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(u.sport ?? 5001, 0);
  udp.writeUInt16BE(u.dport ?? 4433, 2);
  udp.writeUInt16BE(8 + u.payload.length, 4);
  const pkt = ipv6Packet({ src: u.src ?? '2001:db8:1::2', dst: u.dst ?? '2001:db8:1::1', nextHeader: 17, flowLabel: u.flowLabel, payload: Buffer.concat([udp, u.payload]) });
  const ck = refUdp6Checksum(pkt);
  pkt.writeUInt16BE(ck === 0 ? 0xffff : ck, 46);
  return pkt;
}

/** The UDP checksum of a UDP/IPv6 packet (no extension headers) over its bytes as they are. */
function refUdp6Checksum(p: Buffer): number {
  const len = p.length - 40;
  const body = Buffer.from(p.subarray(40));
  body.writeUInt16BE(0, 6);
  const pseudo = Buffer.concat([p.subarray(8, 40), Buffer.from([len >> 24, (len >> 16) & 255, (len >> 8) & 255, len & 255, 0, 0, 0, 17])]);
  return refChecksum(Buffer.concat([pseudo, body]));
}

/** True if the datagram's UDP checksum is the one its bytes call for (and not zero). */
export function udpChecksumOk(p: Buffer): boolean {
  const ck = refUdp6Checksum(p);
  return p.readUInt16BE(46) === (ck === 0 ? 0xffff : ck);
}

/**
 * A zeroed stretch of one shared packet arena (src/packet/arena.ts), as the engine's arenas are:
 * checksums over packets in it take the WebAssembly SIMD path. One arena serves every call, so a
 * fuzzer's thousands of calls do not each reserve a WebAssembly memory.
 */
export function testArena(bytes: number): Buffer {
  if (bytes > sharedArena.length) sharedArena = packetArena(bytes);
  return sharedArena.subarray(0, bytes).fill(0);
}
let sharedArena = packetArena(MAX_BATCH * SLOT_SIZE);
