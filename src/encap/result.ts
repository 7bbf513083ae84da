/** What the encapsulator or decapsulator decided about one packet. Reused: never allocated per packet. */

export const Verdict = {
  /** Send buf[offset, offset+length): the inner IPv6 packet (egress, decap) or the outer IPv4 packet (encapsulate). */
  Forward: 1,
  /** Write buf[offset, offset+length), an ICMPv6 error we built in place, back toward the TUN. */
  Reply: 2,
  /** Dropped; `reason` indexes `DROP_REASONS` and the counter has been incremented. */
  Drop: 3,
  /** Absorbed with nothing to send (e.g. an ICMPv4 "fragmentation needed" that updated the path MTU). */
  Consumed: 4,
  /**
   * decapsulate: send buf[offset, offset+length), an inner packet we built in answer (a broker's
   * echo reply), back out through the transport to outerDst with outerFields, as egress's Forward.
   */
  Answer: 5,
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export class PacketResult {
  verdict: Verdict = Verdict.Drop;
  offset = 0;
  length = 0;
  /** Egress/encap Forward, decapsulate Answer: the outer IPv4 destination. */
  outerDst = 0;
  /** Egress/encap Forward, decapsulate Answer: the outer TTL, TOS and DF (packOuterFields in src/packet/ipv4.ts). */
  outerFields = 0;
  /** Drop: index into DROP_REASONS. */
  reason = 0;
}
