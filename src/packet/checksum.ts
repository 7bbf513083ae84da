/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 * Sums are kept unfolded as plain numbers: a 64 KiB packet sums to < 2^32, so
 * no intermediate overflow is possible before `fold`.
 */

import { endianness } from 'node:os';
import { arenaSum, SIMD_SUM_MAX, type ArenaSum } from './arena.js';

/**
 * Sums of 128 bytes or more read 32-bit words: RFC 1071 §2(B) lets the sum be taken in the host's
 * byte order and swapped once at the end, and four bytes per load run ~4× faster than two
 * single-byte loads per 16-bit word. The word view covers the whole ArrayBuffer behind the packet
 * (packets sit in one long-lived arena), so it is made again only when the arena changes.
 */
const WIDE_MIN = 128;
const WIDE = endianness() === 'LE';
let wideBacking: ArrayBufferLike | null = null;
let wideBytes: Uint8Array = new Uint8Array(0);
let wideWords: Int32Array = new Int32Array(0);

/**
 * The buffer last summed and its SIMD sum (null: not a packet arena). The data path sums one or
 * two long-lived arenas, so asking the arena table once per change of buffer is enough. It keeps
 * that one buffer alive until another is summed.
 */
let simdBuf: Uint8Array | null = null;
let simdSum: ArenaSum | null = null;

/** One's-complement sum of the 16-bit big-endian words in buf[off, off+len); not folded. */
export function sum16(buf: Uint8Array, off: number, len: number, initial = 0): number {
  if (len >= WIDE_MIN) {
    if (buf !== simdBuf) {
      simdBuf = buf;
      simdSum = arenaSum(buf);
    }
    if (simdSum !== null && len <= SIMD_SUM_MAX) return initial + sumSimd(simdSum, buf, off, len);
    if (WIDE) return initial + sumWide(buf, off, len);
  }
  let sum = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (len & 1) sum += buf[off + len - 1] << 8;
  return sum;
}

const swap16 = (x: number): number => ((x & 0xff) << 8) | (x >>> 8);

/** A packet in an arena: whole 32-byte blocks in WebAssembly, the last < 32 bytes here. */
function sumSimd(simd: ArenaSum, buf: Uint8Array, off: number, len: number): number {
  const bulk = len & ~31;
  // the WebAssembly sum reads little-endian words (RFC 1071 §2(B)): one swap makes it big-endian
  let s = swap16(simd(buf.byteOffset + off, bulk));
  const end = off + (len & ~1);
  for (let i = off + bulk; i < end; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (len & 1) s += buf[off + len - 1] << 8;
  return s;
}

function sumWide(buf: Uint8Array, off: number, len: number): number {
  if (buf.buffer !== wideBacking) {
    wideBacking = buf.buffer;
    wideBytes = new Uint8Array(buf.buffer);
    wideWords = new Int32Array(buf.buffer, 0, buf.buffer.byteLength >>> 2);
  }
  const bytes = wideBytes;
  const words = wideWords;
  const start = buf.byteOffset + off;
  const end = start + len;
  // `s` sums 16-bit words aligned to even addresses of the ArrayBuffer (even address = high byte)
  let s = 0;
  let a = start;
  for (; a < end && (a & 3) !== 0; a++) s += (a & 1) === 0 ? bytes[a] << 8 : bytes[a];
  const lastWord = end >>> 2;
  // a 32-bit word is ≡ its two halves added (2^16 ≡ 1 in one's-complement arithmetic); the halves
  // keep the sums small integers, and four words a step keep the loop short
  let lo = 0;
  let hi = 0;
  let k = a >>> 2;
  for (; k + 4 <= lastWord; k += 4) {
    const w0 = words[k];
    const w1 = words[k + 1];
    const w2 = words[k + 2];
    const w3 = words[k + 3];
    lo += (w0 & 0xffff) + (w1 & 0xffff) + (w2 & 0xffff) + (w3 & 0xffff);
    hi += (w0 >>> 16) + (w1 >>> 16) + (w2 >>> 16) + (w3 >>> 16);
  }
  for (; k < lastWord; k++) {
    lo += words[k] & 0xffff;
    hi += words[k] >>> 16;
  }
  if (a < lastWord << 2) a = lastWord << 2;
  s += swap16(fold(lo + hi));
  for (; a < end; a++) s += (a & 1) === 0 ? bytes[a] << 8 : bytes[a];
  // a packet starting at an odd address has its high bytes on the odd addresses
  return (start & 1) === 0 ? s : swap16(fold(s));
}

/** Folds carries back into 16 bits. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for buf[off, off+len) with `initial` (e.g. a pseudo-header sum) folded in. */
export function checksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  return ~fold(sum16(buf, off, len, initial)) & 0xffff;
}

/** RFC 1624 eqn. 3: the new checksum after one 16-bit word changes from `oldWord` to `newWord`. */
export function checksumAdjust(oldChecksum: number, oldWord: number, newWord: number): number {
  return ~fold((~oldChecksum & 0xffff) + (~oldWord & 0xffff) + newWord) & 0xffff;
}

/** Sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet of `upperLen` bytes. */
export function ipv6PseudoHeaderSum(
  buf: Uint8Array,
  srcOff: number,
  dstOff: number,
  upperLen: number,
  nextHeader: number,
): number {
  return sum16(buf, srcOff, 16, sum16(buf, dstOff, 16, (upperLen >>> 16) + (upperLen & 0xffff) + nextHeader));
}
