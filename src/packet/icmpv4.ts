/** ICMPv4 (RFC 792, RFC 1191) header offsets and the message types a tunnel endpoint handles. */

export const ICMPV4 = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  /** Unused / pointer / next-hop MTU word (RFC 1191 §4: MTU in the low 16 bits for code 4). */
  REST: 4,
  NEXT_HOP_MTU: 6,
  HEADER_LEN: 8,
} as const;

export const Icmpv4Type = {
  EchoReply: 0,
  DestUnreachable: 3,
  Redirect: 5,
  Echo: 8,
  TimeExceeded: 11,
  ParameterProblem: 12,
} as const;

export const Icmpv4UnreachCode = {
  Net: 0,
  Host: 1,
  Protocol: 2,
  Port: 3,
  FragmentationNeeded: 4,
  SourceRouteFailed: 5,
} as const;

/** True for the ICMPv4 error types (which quote the offending datagram); false for queries. */
export function isIcmpv4Error(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}
