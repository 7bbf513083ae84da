/**
 * 6rd address maths (RFC 5969 §4), of which 6to4 (RFC 3056 §2) is the special case
 * prefix 2002::/16 with all 32 IPv4 bits embedded. A domain is (IPv6 prefix, prefix length,
 * IPv4 mask length): the low 32 - v4MaskLen bits of a CE's IPv4 address follow the prefix
 * bit for bit, giving a delegated prefix of prefixLen + 32 - v4MaskLen bits.
 */
import { ipv6PrefixMatch } from './address.js';

export interface SixRdDomain {
  /** 16 bytes; bits past prefixLen are ignored. */
  readonly prefix: Uint8Array;
  readonly prefixLen: number;
  /** Number of high IPv4 bits common to the whole domain (0 for 6to4). */
  readonly v4MaskLen: number;
}

export const SIX_TO_FOUR: SixRdDomain = Object.freeze({
  prefix: Uint8Array.of(0x20, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
  prefixLen: 16,
  v4MaskLen: 0,
});

/** Length of the prefix a CE derives (48 for 6to4). */
export function delegatedPrefixLength(d: SixRdDomain): number {
  return d.prefixLen + 32 - d.v4MaskLen;
}

/** Throws if the parameters cannot form a domain (RFC 5969 §4: the delegated prefix fits 64 bits here). */
export function validateDomain(d: SixRdDomain): void {
  if (d.prefix.length !== 16) throw new RangeError('6rd prefix must be 16 bytes');
  if (!Number.isInteger(d.prefixLen) || d.prefixLen < 0 || d.prefixLen > 64) {
    throw new RangeError(`6rd prefix length ${d.prefixLen} is outside 0..64`);
  }
  if (!Number.isInteger(d.v4MaskLen) || d.v4MaskLen < 0 || d.v4MaskLen > 32) {
    throw new RangeError(`6rd IPv4 mask length ${d.v4MaskLen} is outside 0..32`);
  }
  if (delegatedPrefixLength(d) > 64) {
    throw new RangeError(`6rd delegated prefix /${delegatedPrefixLength(d)} is longer than /64`);
  }
}

/** Is the address at buf[off] inside the domain's prefix? */
export function inDomain(d: SixRdDomain, buf: Uint8Array, off: number): boolean {
  return ipv6PrefixMatch(buf, off, d.prefix, 0, d.prefixLen);
}

/**
 * The IPv4 address embedded in the domain address at buf[off]. Its high v4MaskLen bits are
 * taken from `commonV4` (any address of the domain: ours or the border relay's).
 */
export function extractIpv4(d: SixRdDomain, buf: Uint8Array, off: number, commonV4: number): number {
  const n = 32 - d.v4MaskLen;
  if (n === 0) return commonV4 >>> 0;
  const bits = readBits(buf, off, d.prefixLen, n);
  const highMask = d.v4MaskLen === 0 ? 0 : (0xffffffff << n) >>> 0;
  return ((commonV4 & highMask) | bits) >>> 0;
}

/** Writes prefix + embedded IPv4 bits into out[outOff..+16); later bits are zero. */
export function embedIpv4(d: SixRdDomain, v4: number, out: Uint8Array, outOff: number): void {
  out.fill(0, outOff, outOff + 16);
  const whole = d.prefixLen >> 3;
  for (let i = 0; i < whole; i++) out[outOff + i] = d.prefix[i];
  const rest = d.prefixLen & 7;
  if (rest) out[outOff + whole] = d.prefix[whole] & ((0xff << (8 - rest)) & 0xff);
  const n = 32 - d.v4MaskLen;
  writeBits(out, outOff, d.prefixLen, n, n === 32 ? v4 >>> 0 : (v4 & ((1 << n) - 1)) >>> 0);
}

/** `n` (≤ 32) bits starting at bit `at` of the address at buf[off], as an unsigned number. */
function readBits(buf: Uint8Array, off: number, at: number, n: number): number {
  if ((at & 7) === 0 && n === 32) {
    const i = off + (at >> 3);
    return ((buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) | buf[i + 3]) >>> 0;
  }
  let v = 0;
  for (let i = 0; i < n; i++) {
    const bit = at + i;
    v = v * 2 + ((buf[off + (bit >> 3)] >> (7 - (bit & 7))) & 1);
  }
  return v;
}

function writeBits(buf: Uint8Array, off: number, at: number, n: number, value: number): void {
  for (let i = 0; i < n; i++) {
    const bit = at + i;
    const b = Math.floor(value / 2 ** (n - 1 - i)) & 1;
    const idx = off + (bit >> 3);
    const m = 1 << (7 - (bit & 7));
    buf[idx] = b ? buf[idx] | m : buf[idx] & ~m;
  }
}
