/** UDP header (RFC 768) offsets, the header emitter and its IPv4 checksum. */
import { fold, sum16 } from './checksum.js';

export const PROTO_UDP = 17;
export const UDP = { SRC_PORT: 0, DST_PORT: 2, LENGTH: 4, CHECKSUM: 6, HEADER_LEN: 8 } as const;

/**
 * The UDP checksum over IPv4 of the datagram at buf[u, u+len) (header and payload, its checksum
 * field counted as it is), from src to dst; 0xffff stands for a computed zero (RFC 768).
 */
export function udp4Checksum(buf: Uint8Array, u: number, len: number, src: number, dst: number): number {
  const pseudo = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + PROTO_UDP + len;
  const ck = ~fold(sum16(buf, u, len, pseudo)) & 0xffff;
  return ck === 0 ? 0xffff : ck;
}

/**
 * Writes a UDP header at buf[u] for `len` bytes of datagram (header included). With `checksum`,
 * the checksum over the payload already in place; without, zero ("no checksum", as Linux FOU's
 * default noencap-csum).
 */
export function writeUdpHeader(buf: Uint8Array, u: number, srcPort: number, dstPort: number, len: number, checksum: boolean, src: number, dst: number): void {
  buf[u + UDP.SRC_PORT] = srcPort >>> 8;
  buf[u + UDP.SRC_PORT + 1] = srcPort & 0xff;
  buf[u + UDP.DST_PORT] = dstPort >>> 8;
  buf[u + UDP.DST_PORT + 1] = dstPort & 0xff;
  buf[u + UDP.LENGTH] = len >>> 8;
  buf[u + UDP.LENGTH + 1] = len & 0xff;
  buf[u + UDP.CHECKSUM] = 0;
  buf[u + UDP.CHECKSUM + 1] = 0;
  if (!checksum) return;
  const ck = udp4Checksum(buf, u, len, src, dst);
  buf[u + UDP.CHECKSUM] = ck >>> 8;
  buf[u + UDP.CHECKSUM + 1] = ck & 0xff;
}
