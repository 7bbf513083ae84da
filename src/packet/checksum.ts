/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 * Sums are kept unfolded as plain numbers: a 64 KiB packet sums to < 2^32, so
 * no intermediate overflow is possible before `fold`.
 */

/** One's-complement sum of the 16-bit big-endian words in buf[off, off+len); not folded. */
export function sum16(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (len & 1) sum += buf[off + len - 1] << 8;
  return sum;
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
