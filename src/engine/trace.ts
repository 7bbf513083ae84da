/**
 * The loop's tracer hook (`TunnelEngine.setTracer`): the point the engine fills for each packet
 * decision, reused, and the callback type. Reading a point into a record, and the text and pcapng
 * formats, are the daemon's (`daemon/trace-record.ts`, `daemon/pcapng.ts`).
 */
import { Verdict } from '../encap/result.js';

export const TraceDirection = {
  /** An IPv6 packet from the TUN (or one we originate, e.g. a keepalive probe). */
  Tx: 1,
  /** An IPv4 packet from the outer transport. */
  Rx: 2,
  /** An ICMPv4 error from the socket's error queue, about a packet we sent. */
  Icmp: 3,
} as const;
export type TraceDirection = (typeof TraceDirection)[keyof typeof TraceDirection];

/**
 * One packet decision. The engine reuses one object for every call, and `buf` is its arena: read
 * what you need (copy the bytes you keep) before the tracer returns.
 */
export class TracePoint {
  direction: TraceDirection = TraceDirection.Tx;
  verdict: Verdict = Verdict.Drop;
  /** Index into DROP_REASONS for a drop, and for a Packet Too Big (tx_too_big, verdict Reply); else -1. */
  reason = -1;
  /** Wall-clock milliseconds, fractional (microseconds). */
  time = 0;
  /**
   * Outer IPv4 addresses, unsigned: rx the received header's; tx ours and the destination chosen
   * (0 when the packet was dropped before one was); icmp ours and the destination of the packet
   * the error is about.
   */
  outerSrc = 0;
  outerDst = 0;
  /** icmp: the ICMPv4 type and code, and its next-hop MTU for "fragmentation needed". Else 0. */
  icmpType = 0;
  icmpCode = 0;
  icmpInfo = 0;
  /** tx Reply: the MTU the Packet Too Big announces. */
  ptbMtu = 0;
  /**
   * The packet the decision was about, buf[offset, offset+length): rx the outer IPv4 packet; tx
   * the inner IPv6 packet (for a Packet Too Big, what its quote kept of it); icmp the inner IPv6
   * packet the error quotes. `originalLength` is the whole packet's length (more than `length`
   * when only a quote survives); 0 bytes with an rx_truncated drop.
   */
  buf: Buffer = Buffer.alloc(0);
  offset = 0;
  length = 0;
  originalLength = 0;
}

/** Told about every packet decision of an engine; see TracePoint for what may be kept. */
export type Tracer = (point: TracePoint) => void;
