/**
 * Neighbor Discovery messages a router sends and hears on a LAN (RFC 4861): the Router
 * Advertisement we build (§4.2) with its options (source link-layer address §4.6.1, prefix
 * information §4.6.2, MTU §4.6.4, RDNSS RFC 8106 §5.1), and the Router Solicitation we validate
 * (§6.1.1). These are the ICMPv6 message bytes a raw ICMPv6 socket sends and receives (no IPv6
 * header); the kernel fills the checksum on send (icmpv6Checksum in ./icmpv6.ts computes it for
 * tests and captures).
 */

export const NdpType = {
  RouterSolicitation: 133,
  RouterAdvertisement: 134,
} as const;

/** RFC 4861 §4.6 option types; RDNSS from RFC 8106 §5.1. */
export const NdpOption = {
  SourceLinkLayerAddress: 1,
  PrefixInformation: 3,
  Mtu: 5,
  Rdnss: 25,
} as const;

/** §4.2 field offsets of a Router Advertisement (from the ICMPv6 type byte). */
export const RA = {
  CUR_HOP_LIMIT: 4,
  FLAGS: 5,
  ROUTER_LIFETIME: 6,
  REACHABLE_TIME: 8,
  RETRANS_TIMER: 12,
  HEADER_LEN: 16,
} as const;

/** §4.6.2 prefix information flags. */
export const PREFIX_FLAG_ON_LINK = 0x80;
export const PREFIX_FLAG_AUTONOMOUS = 0x40;

export interface RouterAdvertisement {
  /** Cur Hop Limit for hosts; 0 leaves theirs unchanged. */
  curHopLimit: number;
  /** Seconds hosts may use us as a default router; 0 = not a default router (the final RA, §6.2.5). */
  routerLifetime: number;
  /** The router's 6-byte MAC on this link, or null to leave the option out. */
  sourceLinkLayer: Uint8Array | null;
  /** The link MTU hosts must use (§4.6.4): the tunnel MTU, so guests never send what it cannot carry. */
  mtu: number;
  prefixes: Array<{ prefix: Uint8Array; len: number; validLifetime: number; preferredLifetime: number }>;
  /** RFC 8106 recursive DNS servers, and how long hosts may use them (seconds). */
  rdnss: Uint8Array[];
  rdnssLifetime: number;
}

/** Bytes the message takes (§4.2 header plus each option, in 8-byte units). */
export function routerAdvertisementLength(ra: RouterAdvertisement): number {
  return RA.HEADER_LEN + (ra.sourceLinkLayer ? 8 : 0) + 8 + 32 * ra.prefixes.length + (ra.rdnss.length ? 8 + 16 * ra.rdnss.length : 0);
}

/** The Router Advertisement's ICMPv6 bytes, checksum left 0 (the kernel fills it on a raw ICMPv6 socket). */
export function buildRouterAdvertisement(ra: RouterAdvertisement): Buffer {
  const b = Buffer.alloc(routerAdvertisementLength(ra));
  b[0] = NdpType.RouterAdvertisement;
  b[RA.CUR_HOP_LIMIT] = ra.curHopLimit;
  b[RA.FLAGS] = 0; // M and O clear: addresses by SLAAC, no DHCPv6
  b.writeUInt16BE(ra.routerLifetime, RA.ROUTER_LIFETIME);
  let o = RA.HEADER_LEN;
  if (ra.sourceLinkLayer) {
    b[o] = NdpOption.SourceLinkLayerAddress;
    b[o + 1] = 1;
    b.set(ra.sourceLinkLayer.subarray(0, 6), o + 2);
    o += 8;
  }
  b[o] = NdpOption.Mtu;
  b[o + 1] = 1;
  b.writeUInt32BE(ra.mtu, o + 4);
  o += 8;
  for (const p of ra.prefixes) {
    b[o] = NdpOption.PrefixInformation;
    b[o + 1] = 4;
    b[o + 2] = p.len;
    b[o + 3] = PREFIX_FLAG_ON_LINK | PREFIX_FLAG_AUTONOMOUS;
    b.writeUInt32BE(p.validLifetime, o + 4);
    b.writeUInt32BE(p.preferredLifetime, o + 8);
    b.set(p.prefix.subarray(0, 16), o + 16);
    o += 32;
  }
  if (ra.rdnss.length) {
    b[o] = NdpOption.Rdnss;
    b[o + 1] = 1 + 2 * ra.rdnss.length;
    b.writeUInt32BE(ra.rdnssLifetime, o + 4);
    o += 8;
    for (const a of ra.rdnss) {
      b.set(a.subarray(0, 16), o);
      o += 16;
    }
  }
  return b;
}

export type RsVerdict =
  | { ok: true; sourceLinkLayer: Uint8Array | null }
  | { ok: false; reason: 'hop_limit' | 'type' | 'code' | 'length' | 'option_length' | 'unspecified_with_sllao' };

/**
 * RFC 4861 §6.1.1: a Router Solicitation is silently discarded unless its hop limit is 255 (it
 * was not forwarded), its code is 0, it is at least 8 bytes, every option has a length above 0,
 * and, from the unspecified address, it carries no source link-layer address option. (The
 * ICMP checksum is checked by the kernel before a raw ICMPv6 socket sees the packet.)
 */
export function validateRouterSolicitation(msg: Uint8Array, hopLimit: number, sourceUnspecified: boolean): RsVerdict {
  if (hopLimit !== 255) return { ok: false, reason: 'hop_limit' };
  if (msg.length < 8) return { ok: false, reason: 'length' };
  if (msg[0] !== NdpType.RouterSolicitation) return { ok: false, reason: 'type' };
  if (msg[1] !== 0) return { ok: false, reason: 'code' };
  let sll: Uint8Array | null = null;
  for (let o = 8; o < msg.length; ) {
    if (o + 2 > msg.length) return { ok: false, reason: 'option_length' };
    const units = msg[o + 1];
    if (units === 0 || o + units * 8 > msg.length) return { ok: false, reason: 'option_length' };
    if (msg[o] === NdpOption.SourceLinkLayerAddress) sll = msg.subarray(o + 2, o + units * 8);
    o += units * 8;
  }
  if (sll && sourceUnspecified) return { ok: false, reason: 'unspecified_with_sllao' };
  return { ok: true, sourceLinkLayer: sll };
}

/** One Router Solicitation's bytes (for tests and probes): code 0, optional source link-layer address. */
export function buildRouterSolicitation(sourceLinkLayer: Uint8Array | null): Buffer {
  const b = Buffer.alloc(sourceLinkLayer ? 16 : 8);
  b[0] = NdpType.RouterSolicitation;
  if (sourceLinkLayer) {
    b[8] = NdpOption.SourceLinkLayerAddress;
    b[9] = 1;
    b.set(sourceLinkLayer.subarray(0, 6), 10);
  }
  return b;
}
