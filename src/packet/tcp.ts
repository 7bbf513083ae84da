/** TCP header (RFC 9293 §3.1) offsets and flag bits, for the few places that touch TCP (MSS clamp, offload). */

export const PROTO_TCP = 6;

export const TCP = {
  SEQ: 4,
  ACK: 8,
  DATA_OFFSET: 12,
  FLAGS: 13,
  WINDOW: 14,
  CHECKSUM: 16,
  HEADER_LEN: 20,
} as const;

export const TcpFlag = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export const TcpOption = { END: 0, NOP: 1, MSS: 2 } as const;

/** Header length in bytes of the TCP header at buf[tcp]. */
export function tcpHeaderLength(buf: Uint8Array, tcp: number): number {
  return (buf[tcp + TCP.DATA_OFFSET] >> 4) << 2;
}
