/** IPv6 header (RFC 8200 §3) field offsets, the extension-header walk and the validity gate. */

export const IPV6 = {
  VER_TC_FLOW: 0,
  PAYLOAD_LEN: 4,
  NEXT_HEADER: 6,
  HOP_LIMIT: 7,
  SRC: 8,
  DST: 24,
  HEADER_LEN: 40,
} as const;

/** Extension headers (RFC 8200 §4) that may stand between the fixed header and the upper layer. */
export const EXT_HOP_BY_HOP = 0;
export const EXT_ROUTING = 43;
export const EXT_FRAGMENT = 44;
export const EXT_DEST_OPTS = 60;

/**
 * Offset (from `off`) of the `proto` header of the IPv6 packet at buf[off, off+len), past any
 * Hop-by-Hop, Routing and Destination Options headers; -1 if the chain ends elsewhere, is cut
 * short, or holds a Fragment header (then there is no whole upper-layer packet here).
 */
export function upperLayerOffset(buf: Uint8Array, off: number, len: number, proto: number): number {
  let next = buf[off + IPV6.NEXT_HEADER];
  let at = IPV6.HEADER_LEN;
  while (next !== proto) {
    if ((next !== EXT_HOP_BY_HOP && next !== EXT_ROUTING && next !== EXT_DEST_OPTS) || at + 2 > len) return -1;
    next = buf[off + at];
    at += (buf[off + at + 1] + 1) << 3;
  }
  return at <= len ? at : -1;
}

/** RFC 8200 §5: every link must carry this; also the ceiling for ICMPv6 errors (RFC 4443 §2.4(c)). */
export const IPV6_MIN_MTU = 1280;

export const Ipv6Error = {
  None: 0,
  Truncated: 1,
  Version: 2,
  PayloadLength: 3,
} as const;
export type Ipv6Error = (typeof Ipv6Error)[keyof typeof Ipv6Error];

/**
 * Validates the fixed header at buf[off] against exactly `len` bytes: the payload length must
 * account for every byte (a tunnel carries whole packets, so anything else is malformed).
 */
export function checkIpv6(buf: Uint8Array, off: number, len: number): Ipv6Error {
  if (len < IPV6.HEADER_LEN) return Ipv6Error.Truncated;
  if (buf[off] >> 4 !== 6) return Ipv6Error.Version;
  if (((buf[off + 4] << 8) | buf[off + 5]) + IPV6.HEADER_LEN !== len) return Ipv6Error.PayloadLength;
  return Ipv6Error.None;
}

/** Traffic class of the IPv6 header at buf[off]. */
export function ipv6TrafficClass(buf: Uint8Array, off: number): number {
  return ((buf[off] & 0x0f) << 4) | (buf[off + 1] >> 4);
}

export function setIpv6TrafficClass(buf: Uint8Array, off: number, tc: number): void {
  buf[off] = 0x60 | (tc >> 4);
  buf[off + 1] = ((tc & 0x0f) << 4) | (buf[off + 1] & 0x0f);
}
