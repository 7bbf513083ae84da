/** IPv4 header (RFC 791) field offsets, the one header emitter, and a zero-copy view. */
import { checksum, fold } from './checksum.js';

export const IPV4 = {
  VER_IHL: 0,
  TOS: 1,
  TOTAL_LEN: 2,
  ID: 4,
  FLAGS_FRAG: 6,
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
  /** Minimum header length: IHL 5, no options (R01). */
  HEADER_LEN: 20,
} as const;

export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
export const IPV4_FRAG_OFFSET_MASK = 0x1fff;

/** IANA protocol numbers used here. */
export const PROTO_ICMP = 1;
export const PROTO_IPV6 = 41;
export const PROTO_ICMPV6 = 58;

/**
 * The per-packet outer fields a transport hands the kernel, which writes the IPv4 header itself:
 * TTL in bits 0–7, TOS in bits 8–15, DF in bit 16 — one number per packet, so a batch of them is
 * one Int32Array (the addon reads the same layout and exports it: test/native.test.ts compares).
 */
export const OUTER_DF = 0x10000;

export function packOuterFields(ttl: number, tos: number, df: boolean): number {
  return ttl | (tos << 8) | (df ? OUTER_DF : 0);
}
export const outerTtl = (fields: number): number => fields & 0xff;
export const outerTos = (fields: number): number => (fields >>> 8) & 0xff;
export const outerDf = (fields: number): boolean => (fields & OUTER_DF) !== 0;

/**
 * Writes a 20-byte IPv4 header (IHL 5, no options: R01) at buf[h], checksum included (R02), for a
 * packet of `totalLength` bytes from `src` to `dst` (unsigned or `| 0` form).
 */
export function writeIpv4Header(
  buf: Uint8Array,
  h: number,
  fields: number,
  totalLength: number,
  id: number,
  protocol: number,
  src: number,
  dst: number,
): void {
  const tos = outerTos(fields);
  const flags = outerDf(fields) ? IPV4_FLAG_DF : 0;
  const ttl = outerTtl(fields);
  buf[h + IPV4.VER_IHL] = 0x45;
  buf[h + IPV4.TOS] = tos;
  buf[h + IPV4.TOTAL_LEN] = totalLength >>> 8;
  buf[h + IPV4.TOTAL_LEN + 1] = totalLength & 0xff;
  buf[h + IPV4.ID] = id >>> 8;
  buf[h + IPV4.ID + 1] = id & 0xff;
  buf[h + IPV4.FLAGS_FRAG] = flags >>> 8;
  buf[h + IPV4.FLAGS_FRAG + 1] = 0;
  buf[h + IPV4.TTL] = ttl;
  buf[h + IPV4.PROTOCOL] = protocol;
  writeIpv4Address(buf, h + IPV4.SRC, src);
  writeIpv4Address(buf, h + IPV4.DST, dst);
  const sum =
    0x4500 + tos + totalLength + id + flags + (ttl << 8) + protocol + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  const ck = ~fold(sum) & 0xffff;
  buf[h + IPV4.CHECKSUM] = ck >>> 8;
  buf[h + IPV4.CHECKSUM + 1] = ck & 0xff;
}

export function writeIpv4Address(buf: Uint8Array, off: number, addr: number): void {
  buf[off] = addr >>> 24;
  buf[off + 1] = (addr >>> 16) & 0xff;
  buf[off + 2] = (addr >>> 8) & 0xff;
  buf[off + 3] = addr & 0xff;
}

/**
 * The IPv4 address at buf[off] as a signed 32-bit integer (`addr | 0` form). The hot path compares
 * addresses in this form: values above 2^31 as unsigned numbers would be boxed as heap doubles,
 * an allocation per packet.
 */
export function ipv4AtS32(buf: Uint8Array, off: number): number {
  return (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
}

/** Why a buffer is not a usable IPv4 packet. */
export const Ipv4Error = {
  None: 0,
  Truncated: 1,
  Version: 2,
  HeaderLength: 3,
  TotalLength: 4,
  Checksum: 5,
} as const;
export type Ipv4Error = (typeof Ipv4Error)[keyof typeof Ipv4Error];

/**
 * Validates the IPv4 header at buf[off] against the `len` bytes available. After `None`,
 * every accessor of `Ipv4View` is in bounds for the header and the total length.
 */
export function checkIpv4(buf: Uint8Array, off: number, len: number, verifyChecksum: boolean): Ipv4Error {
  if (len < IPV4.HEADER_LEN) return Ipv4Error.Truncated;
  const verIhl = buf[off];
  if (verIhl >> 4 !== 4) return Ipv4Error.Version;
  const ihl = (verIhl & 0x0f) << 2;
  if (ihl < IPV4.HEADER_LEN || ihl > len) return Ipv4Error.HeaderLength;
  const total = (buf[off + 2] << 8) | buf[off + 3];
  if (total < ihl || total > len) return Ipv4Error.TotalLength;
  if (verifyChecksum && checksum(buf, off, ihl) !== 0) return Ipv4Error.Checksum;
  return Ipv4Error.None;
}

/** A reusable view: `attach` it to a packet, then read or write fields in place. */
export class Ipv4View {
  buf: Buffer = Buffer.alloc(0);
  off = 0;

  attach(buf: Buffer, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  get version(): number { return this.buf[this.off] >> 4; }
  get headerLength(): number { return (this.buf[this.off] & 0x0f) << 2; }
  get tos(): number { return this.buf[this.off + IPV4.TOS]; }
  set tos(v: number) { this.buf[this.off + IPV4.TOS] = v; }
  get totalLength(): number { return this.buf.readUInt16BE(this.off + IPV4.TOTAL_LEN); }
  set totalLength(v: number) { this.buf.writeUInt16BE(v, this.off + IPV4.TOTAL_LEN); }
  get id(): number { return this.buf.readUInt16BE(this.off + IPV4.ID); }
  set id(v: number) { this.buf.writeUInt16BE(v, this.off + IPV4.ID); }
  get flagsFragment(): number { return this.buf.readUInt16BE(this.off + IPV4.FLAGS_FRAG); }
  set flagsFragment(v: number) { this.buf.writeUInt16BE(v, this.off + IPV4.FLAGS_FRAG); }
  get dontFragment(): boolean { return (this.flagsFragment & IPV4_FLAG_DF) !== 0; }
  get moreFragments(): boolean { return (this.flagsFragment & IPV4_FLAG_MF) !== 0; }
  get fragmentOffset(): number { return (this.flagsFragment & IPV4_FRAG_OFFSET_MASK) << 3; }
  get ttl(): number { return this.buf[this.off + IPV4.TTL]; }
  set ttl(v: number) { this.buf[this.off + IPV4.TTL] = v; }
  get protocol(): number { return this.buf[this.off + IPV4.PROTOCOL]; }
  set protocol(v: number) { this.buf[this.off + IPV4.PROTOCOL] = v; }
  get checksum(): number { return this.buf.readUInt16BE(this.off + IPV4.CHECKSUM); }
  set checksum(v: number) { this.buf.writeUInt16BE(v, this.off + IPV4.CHECKSUM); }
  /** Source address as an unsigned 32-bit number. */
  get src(): number { return this.buf.readUInt32BE(this.off + IPV4.SRC); }
  set src(v: number) { this.buf.writeUInt32BE(v >>> 0, this.off + IPV4.SRC); }
  get dst(): number { return this.buf.readUInt32BE(this.off + IPV4.DST); }
  set dst(v: number) { this.buf.writeUInt32BE(v >>> 0, this.off + IPV4.DST); }

  /** Recomputes the header checksum over the header's own length. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.buf, this.off, this.headerLength);
  }
}
