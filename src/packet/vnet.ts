/**
 * The virtio_net_hdr (linux/virtio_net.h) every read and write of a TUN opened with
 * IFF_VNET_HDR carries in front of the IP packet: 10 bytes, little-endian on the hosts we run on,
 * saying whether the packet is a super-packet to cut (its GSO type and segment size) and where a
 * checksum left partial is to be finished. Cutting and merging by it is the device's work
 * (src/tun/segment.ts, src/tun/coalesce.ts).
 */
import { IPV6 } from './ipv6.js';

export const VNET_HDR_LEN = 10;
export const VNET = { FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8 } as const;
/** VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum at csum_start + csum_offset holds only the pseudo-header sum. */
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV6 = 4;
/** VIRTIO_NET_HDR_GSO_UDP_L4 (Linux ≥ 6.2, TUN_F_USO6): a UDP super-packet cut into datagrams. */
export const VNET_GSO_UDP_L4 = 5;
export const VNET_GSO_ECN = 0x80;

/**
 * Fills the virtio_net_hdr at o[h] for a GSO frame whose IPv6 header has no extensions: the
 * kernel cuts it into gsoSize-byte payloads behind hdrLen bytes of headers and finishes each
 * checksum (at IPv6 header + csumOffset) from the pseudo-header sum the caller leaves there.
 */
export function writeGsoHeader(o: Buffer, h: number, gsoType: number, hdrLen: number, gsoSize: number, csumOffset: number): void {
  o[h + VNET.FLAGS] = VNET_F_NEEDS_CSUM;
  o[h + VNET.GSO_TYPE] = gsoType;
  o.writeUInt16LE(hdrLen, h + VNET.HDR_LEN);
  o.writeUInt16LE(gsoSize, h + VNET.GSO_SIZE);
  o.writeUInt16LE(IPV6.HEADER_LEN, h + VNET.CSUM_START);
  o.writeUInt16LE(csumOffset, h + VNET.CSUM_OFFSET);
}
