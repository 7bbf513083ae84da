/**
 * TCP MSS clamping (`--clamp-mss`): lower the MSS option of TCP SYNs crossing the tunnel so that
 * segments fit its MTU. MTU black holes (PMTUD broken by filtered ICMP) are the first thing
 * broker users hit. Only SYNs directly after the IPv6 header are touched; the TCP checksum is
 * fixed incrementally (RFC 1624).
 */
import { checksumAdjust } from '../packet/checksum.js';
import { IPV6 } from '../packet/ipv6.js';
import { PROTO_TCP, TCP, TcpFlag, TcpOption, tcpHeaderLength } from '../packet/tcp.js';

const { FLAGS: TCP_FLAGS, CHECKSUM: TCP_CHECKSUM } = TCP;
const { END: OPT_END, NOP: OPT_NOP, MSS: OPT_MSS } = TcpOption;

/** The largest MSS a tunnel MTU allows: the MTU less the IPv6 (40) and TCP (20) headers. */
export function mssForMtu(mtu: number): number {
  return mtu - IPV6.HEADER_LEN - 20;
}

/** Clamps the MSS of a TCP SYN in the IPv6 packet at buf[off, off+len) to `maxMss`; true if changed. */
export function clampMss(buf: Buffer, off: number, len: number, maxMss: number): boolean {
  if (buf[off + IPV6.NEXT_HEADER] !== PROTO_TCP) return false;
  const tcp = off + IPV6.HEADER_LEN;
  const end = off + len;
  if (tcp + 20 > end || (buf[tcp + TCP_FLAGS] & TcpFlag.SYN) === 0) return false;
  const dataOff = tcpHeaderLength(buf, tcp);
  const optEnd = Math.min(tcp + dataOff, end);
  for (let i = tcp + 20; i < optEnd; ) {
    const kind = buf[i];
    if (kind === OPT_END) return false;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= optEnd) return false;
    const optLen = buf[i + 1];
    if (optLen < 2 || i + optLen > optEnd) return false;
    if (kind === OPT_MSS && optLen === 4) {
      const mss = (buf[i + 2] << 8) | buf[i + 3];
      if (mss <= maxMss) return false;
      buf[i + 2] = maxMss >>> 8;
      buf[i + 3] = maxMss & 0xff;
      const ck = (buf[tcp + TCP_CHECKSUM] << 8) | buf[tcp + TCP_CHECKSUM + 1];
      const fixed = checksumAdjust(ck, mss, maxMss);
      buf[tcp + TCP_CHECKSUM] = fixed >>> 8;
      buf[tcp + TCP_CHECKSUM + 1] = fixed & 0xff;
      return true;
    }
    i += optLen;
  }
  return false;
}
