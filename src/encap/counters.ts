/**
 * Per-tunnel counters. Every dropped packet increments exactly one drop reason, like the
 * kernel's sit driver counts rx/tx errors, but named. Values live in one Float64Array (exact
 * to 2^53) so a snapshot, a metrics exporter or another thread can read them without locks.
 */

export const TRAFFIC_COUNTERS = [
  'rx_packets', // inner IPv6 packets delivered toward the TUN
  'rx_bytes',
  'tx_packets', // inner IPv6 packets encapsulated toward the IPv4 network
  'tx_bytes',
  'icmp6_packet_too_big_sent', // R08
  'icmp6_errors_relayed', // R11/R12
  'icmp6_rate_limited', // R23: ICMPv6 errors (PTB or relayed) suppressed by the token bucket; not itself a packet outcome
  'icmp4_frag_needed', // R07 input
  'path_mtu_updates', // R07: tunnel MTU lowered for a destination
  'path_mtu_evictions', // R07: a remembered path MTU dropped to keep the table bounded
  'tcp_mss_clamped', // --clamp-mss rewrote a SYN
  'tx_backpressure_waits', // the transport's socket was full: the rest of a batch waited for room (no packet lost); not itself a packet outcome
  'rx_trailing_bytes_trimmed', // bytes after the inner packet's payload length were cut off (RFC 8200); not itself a packet outcome
] as const;

export const DROP_REASONS = [
  // TX: IPv6 packets from the TUN side
  'tx_malformed_ipv6', // not IPv6, truncated, or payload length disagrees with the packet
  'no_headroom', // caller left fewer than ENCAP_HEADROOM bytes before the packet (a caller bug)
  'tx_too_big', // R08: larger than the tunnel MTU (answered with Packet Too Big when allowed)
  'tx_6to4_bogus_destination', // R32: inner destination 6to4 cannot carry (link-local, multicast…)
  'tx_6to4_bogus_embedded_ipv4', // R31: 2002:: destination embeds a bogus IPv4
  'tx_6to4_no_relay', // R28: non-6to4 destination and no relay configured
  'tx_gso_unsupported', // TUN offload: a GSO type other than TCPv6 (never asked for)
  'tx_gso_malformed', // TUN offload: a TCP super-packet that cannot be cut (no partial checksum at its TCP header)
  'tx_6rd_no_relay', // 6rd: destination outside the 6rd prefix on a BR (it forwards natively)
  // RX: IPv4 packets from the network side
  'rx_malformed_ipv4', // truncated, bad version, IHL or total length
  'rx_bad_ipv4_checksum',
  'rx_ipv4_fragment', // embedders must hand us reassembled packets (R06)
  'rx_not_protocol_41', // R14
  'rx_malformed_udp', // FOU (embedder's datagrams): UDP length outside the IPv4 payload
  'rx_wrong_udp_port', // FOU (embedder's datagrams): not to our encapPort
  'rx_bad_udp_checksum', // FOU (embedder's datagrams): a non-zero UDP checksum that is wrong
  'rx_wrong_outer_destination', // R14: not addressed to our IPv4
  'rx_wrong_outer_source', // R14: 6in4 outer source is not the configured remote
  'rx_malformed_ipv6', // inner packet not IPv6, or shorter than its payload length says
  'rx_bogus_inner_source', // R15
  'rx_6to4_bogus_outer_ipv4', // R31: outer source in a bogus IPv4 range
  'rx_6to4_bogus_inner_address', // R32
  'rx_6to4_spoofed_source', // R29: 2002:: source does not embed the outer source
  'rx_6to4_not_from_relay', // R29: native source, outer source is not a configured relay
  'rx_6to4_not_our_prefix', // R30: destination outside our own 6to4 /48 (no transit)
  'rx_6rd_spoofed_source', // 6rd (RFC 5969 §12): a source in the 6rd prefix does not embed the outer source
  'rx_6rd_not_from_relay', // 6rd: source outside the 6rd prefix, outer source is not our BR
  'rx_6rd_not_our_prefix', // 6rd: destination outside our delegated prefix (no transit)
  'rx_ecn_ce_on_not_ect', // R13, RFC 6040 §4.2: CE outer, Not-ECT inner
  // ICMPv4 errors about our own packets (R07/R11/R12)
  'icmp4_malformed', // quote too short to identify our packet or its inner IPv6 header
  'icmp4_not_ours', // quotes a packet this tunnel did not send
  'icmp4_ignored', // a type/code we do not relay (e.g. source route failed, redirect)
  'icmp4_not_relayable', // quoted inner packet is an ICMPv6 error or has a bogus source (RFC 4443 §2.4(e))
  'icmp4_relay_rate_limited', // R23: would have been relayed, but the ICMPv6 token bucket was empty
  // I/O, counted by the engine
  'tx_send_error', // the raw socket refused the packet (errno in the log)
  'rx_tun_write_error', // the TUN refused the packet
  'rx_truncated', // larger than a receive slot
] as const;

export type TrafficCounter = (typeof TRAFFIC_COUNTERS)[number];
export type DropReason = (typeof DROP_REASONS)[number];

function indexOf<T extends string>(names: readonly T[]): { readonly [K in T]: number } {
  const o: Record<string, number> = {};
  names.forEach((n, i) => (o[n] = i));
  return o as { readonly [K in T]: number };
}

/** Index of each traffic counter in `Counters.traffic`. */
export const Traffic = indexOf(TRAFFIC_COUNTERS);
/** Index of each drop reason in `Counters.drops`; also the `reason` of a dropped PacketResult. */
export const Drop = indexOf(DROP_REASONS);

export interface CountersSnapshot {
  traffic: Record<TrafficCounter, number>;
  drops: Record<DropReason, number>;
  dropsTotal: number;
}

export class Counters {
  readonly traffic: Float64Array;
  readonly drops: Float64Array;

  /** Pass a (Shared)ArrayBuffer of `Counters.BYTES` to share counters across threads. */
  constructor(storage: ArrayBufferLike = new ArrayBuffer(Counters.BYTES)) {
    this.traffic = new Float64Array(storage, 0, TRAFFIC_COUNTERS.length);
    this.drops = new Float64Array(storage, TRAFFIC_COUNTERS.length * 8, DROP_REASONS.length);
  }

  static readonly BYTES = (TRAFFIC_COUNTERS.length + DROP_REASONS.length) * 8;

  snapshot(): CountersSnapshot {
    const traffic = {} as Record<TrafficCounter, number>;
    const drops = {} as Record<DropReason, number>;
    TRAFFIC_COUNTERS.forEach((n, i) => (traffic[n] = this.traffic[i]));
    let dropsTotal = 0;
    DROP_REASONS.forEach((n, i) => {
      drops[n] = this.drops[i];
      dropsTotal += this.drops[i];
    });
    return { traffic, drops, dropsTotal };
  }
}
