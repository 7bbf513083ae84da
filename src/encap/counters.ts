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
  'icmp6_unreachable_sent', // broker: a destination no tunnel holds, answered with destination unreachable (no route)
  'icmp6_echo_replies_sent', // broker: an echo request to a link's server address (::1) answered back through its tunnel
] as const;

/**
 * Every drop reason, in counter order, with the rule it enforces (an id of DESIGN.md, or of
 * docs/rules.md for 6rd and FOU; null: no rule, just a packet we cannot handle). The one table
 * that trace lines, status and docs/rules.md name rules from.
 */
const DROP_TABLE = {
  // TX: IPv6 packets from the TUN side
  tx_malformed_ipv6: null, // not IPv6, truncated, or payload length disagrees with the packet
  no_headroom: null, // caller left fewer than ENCAP_HEADROOM bytes before the packet (a caller bug)
  tx_too_big: 'R08', // larger than the tunnel MTU (answered with Packet Too Big when allowed)
  tx_6to4_bogus_destination: 'R32', // inner destination 6to4 cannot carry (link-local, multicast…)
  tx_6to4_bogus_embedded_ipv4: 'R31', // 2002:: destination embeds a bogus IPv4
  tx_6to4_no_relay: 'R28', // non-6to4 destination and no relay configured
  tx_gso_unsupported: null, // TUN offload: a GSO type other than TCPv6 (never asked for)
  tx_gso_malformed: null, // TUN offload: a TCP super-packet that cannot be cut (no partial checksum at its TCP header)
  tx_6rd_no_relay: '6RD-7', // destination outside the 6rd prefix on a BR (it forwards natively)
  tx_6rd_not_customer: '6RD-10', // BR: the destination embeds an IPv4 outside sixrdCustomers (no open relay)
  // RX: IPv4 packets from the network side
  rx_malformed_ipv4: null, // truncated, bad version, IHL or total length
  rx_bad_ipv4_checksum: null,
  rx_ipv4_fragment: 'R06', // embedders must hand us reassembled packets
  rx_not_protocol_41: 'R14',
  rx_malformed_udp: 'FOU-1', // embedder's datagrams: UDP length outside the IPv4 payload
  rx_wrong_udp_port: 'FOU-1', // embedder's datagrams: not to our encapPort
  rx_bad_udp_checksum: 'FOU-2', // embedder's datagrams: a non-zero UDP checksum that is wrong
  rx_wrong_outer_destination: 'R14', // not addressed to our IPv4
  rx_wrong_outer_source: 'R14', // 6in4 outer source is not the configured remote
  rx_malformed_ipv6: null, // inner packet not IPv6, or shorter than its payload length says
  rx_bogus_inner_source: 'R15', // ::, ::1, multicast, IPv4-mapped/compatible
  rx_6to4_bogus_outer_ipv4: 'R31', // outer source in a bogus IPv4 range
  rx_6to4_bogus_inner_address: 'R32', // a bogus inner source or destination at the 6to4/6rd boundary
  rx_6to4_spoofed_source: 'R29', // 2002:: source does not embed the outer source
  rx_6to4_not_from_relay: 'R29', // native source, outer source is not a configured relay
  rx_6to4_not_our_prefix: 'R30', // destination outside our own 6to4 /48 (no transit)
  rx_6rd_spoofed_source: '6RD-4', // RFC 5969 §12: a source in the 6rd prefix does not embed the outer source
  rx_6rd_not_from_relay: '6RD-4', // source outside the 6rd prefix, outer source is not our BR
  rx_6rd_not_our_prefix: '6RD-5', // destination outside our delegated prefix (no transit)
  rx_6rd_not_customer: '6RD-10', // BR: outer source outside sixrdCustomers
  rx_ecn_ce_on_not_ect: 'R13', // RFC 6040 §4.2: CE outer, Not-ECT inner
  // ICMPv4 errors about our own packets (R07/R11/R12)
  icmp4_malformed: 'R11/R12', // quote too short to identify our packet or its inner IPv6 header
  icmp4_not_ours: 'R11/R12', // quotes a packet this tunnel did not send
  icmp4_ignored: 'R11/R12', // a type/code we do not relay (e.g. source route failed, redirect)
  icmp4_not_relayable: 'R20/R22', // quoted inner packet is an ICMPv6 error, has a bogus source, or went to a multicast group (RFC 4443 §2.4(e))
  icmp4_relay_rate_limited: 'R23', // would have been relayed, but the ICMPv6 token bucket was empty
  // I/O, counted by the engine
  tx_send_error: null, // the raw socket refused the packet (errno in the log)
  tx_link_full: 'F1', // the outgoing queue (qdisc) dropped it: the uplink is full, as a wire drops what it cannot carry
  rx_tun_write_error: null, // the TUN refused the packet
  rx_truncated: null, // larger than a receive slot
  // A broker's table of tunnels (src/broker)
  tx_no_tunnel: null, // no tunnel's link or routed prefix holds the destination (answered with unreachable, no route)
  tx_tunnel_parked: null, // the destination's tunnel has no remote yet (parked until its first update)
  rx_unknown_outer_source: 'R14', // no tunnel has this outer source as its remote (counted in the broker's totals only)
  rx_source_not_tunnels: null, // inner source outside the tunnel's link and routed prefixes: a client sending as another
  server_address_not_echo: null, // to a link's server address (::1) and not an echo request: the broker answers only pings
} as const satisfies Record<string, string | null>;

export type DropReason = keyof typeof DROP_TABLE;
export const DROP_REASONS = Object.keys(DROP_TABLE) as readonly DropReason[];
/** The rule id each drop reason enforces, or null. */
export const DROP_RULE: { readonly [K in DropReason]: (typeof DROP_TABLE)[K] } = DROP_TABLE;

/** `rx_6to4_spoofed_source (R29)`, or the bare name of a reason no rule names. */
export function describeDrop(reason: DropReason): string {
  const rule = DROP_RULE[reason];
  return rule === null ? reason : `${reason} (${rule})`;
}

export type TrafficCounter = (typeof TRAFFIC_COUNTERS)[number];

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
