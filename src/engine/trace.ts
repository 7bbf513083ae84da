/**
 * Per-packet decisions as the engine sees them, for whoever asked to watch (`TunnelEngine.setTracer`):
 * the raw point handed to the tracer, and the plain record a person or a file reads.
 */
import { DROP_REASONS, DROP_RULE, type DropReason } from '../encap/counters.js';
import { Verdict } from '../encap/result.js';
import { formatIpv4, formatIpv6 } from '../packet/address.js';

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

export type TraceDirectionName = 'tx' | 'rx' | 'icmp';
export type TraceVerdictName = 'forward' | 'reply' | 'drop' | 'consumed';

const DIRECTION_NAME: Record<TraceDirection, TraceDirectionName> = { 1: 'tx', 2: 'rx', 3: 'icmp' };
const VERDICT_NAME: Record<Verdict, TraceVerdictName> = { 1: 'forward', 2: 'reply', 3: 'drop', 4: 'consumed' };

/** A decision as plain data (JSON-able), what `tun6in4 trace` prints or writes into a pcapng comment. */
export interface TraceRecord {
  /** ISO 8601 with microseconds. */
  time: string;
  tunnel?: string;
  direction: TraceDirectionName;
  verdict: TraceVerdictName;
  reason?: DropReason;
  /** The rule the drop enforces (DROP_RULE), when one does. */
  rule?: string;
  outerSrc?: string;
  outerDst?: string;
  innerSrc?: string;
  innerDst?: string;
  /** The inner next header (58 ICMPv6, 6 TCP, 17 UDP…). */
  innerProto?: number;
  /** Bytes of the packet the decision was about (see TracePoint.originalLength). */
  length: number;
  icmp?: { type: number; code: number; info: number };
  ptbMtu?: number;
}

/**
 * Where the inner IPv6 header starts in a point's bytes, or -1 when there is none to read: after
 * the IPv4 header of an outer packet, at the start of an inner one (tx, icmp, a failed TUN write).
 */
function innerAt(b: Buffer, len: number): number {
  let io = 0;
  if (len >= 20 && b[0] >> 4 === 4) io = (b[0] & 0x0f) << 2;
  return len - io >= 40 && b[io] >> 4 === 6 ? io : -1;
}

/** Reads a point (or a copy of one: `bytes` instead of its buffer) into a record. */
export function traceRecord(p: TracePoint, bytes: Buffer = p.buf.subarray(p.offset, p.offset + p.length)): TraceRecord {
  const r: TraceRecord = {
    time: isoMicros(p.time),
    direction: DIRECTION_NAME[p.direction],
    verdict: VERDICT_NAME[p.verdict],
    length: p.originalLength,
  };
  if (p.reason >= 0) {
    r.reason = DROP_REASONS[p.reason];
    const rule = DROP_RULE[r.reason];
    if (rule !== null) r.rule = rule;
  }
  if (p.outerSrc !== 0) r.outerSrc = formatIpv4(p.outerSrc);
  if (p.outerDst !== 0) r.outerDst = formatIpv4(p.outerDst);
  const io = innerAt(bytes, bytes.length);
  if (io >= 0) {
    r.innerSrc = formatIpv6(bytes, io + 8);
    r.innerDst = formatIpv6(bytes, io + 24);
    r.innerProto = bytes[io + 6];
  }
  if (p.direction === TraceDirection.Icmp) r.icmp = { type: p.icmpType, code: p.icmpCode, info: p.icmpInfo };
  if (p.ptbMtu !== 0) r.ptbMtu = p.ptbMtu;
  return r;
}

function isoMicros(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.round((ms - whole) * 1000) % 1000;
  return new Date(whole).toISOString().replace('Z', `${String(micros).padStart(3, '0')}Z`);
}

const PROTO: Record<number, string> = { 6: 'tcp', 17: 'udp', 58: 'icmp6', 0: 'hop-by-hop', 44: 'fragment' };

/** What happened to the packet: `forward`, `drop rx_6to4_spoofed_source (R29)`, `drop tx_too_big (R08), Packet Too Big mtu 1280 sent`… */
export function traceDecision(r: TraceRecord): string {
  const why = r.reason ? `${r.reason}${r.rule ? ` (${r.rule})` : ''}` : '';
  if (r.verdict === 'drop') return `drop ${why}`;
  if (r.verdict === 'reply' && r.direction === 'tx') return `drop ${why}, Packet Too Big mtu ${r.ptbMtu} sent back`;
  if (r.verdict === 'reply') return 'relayed as ICMPv6 to the inner source';
  if (r.verdict === 'consumed') return r.icmp?.type === 3 && r.icmp.code === 4 ? `path MTU ${r.icmp.info} noted` : 'consumed';
  return 'forward';
}

/**
 * One line: `12:00:00.123456 he rx 198.51.100.99 > 192.0.2.1 | 2001:db8:1::1 > 2001:db8:1::2 icmp6 len 124 | drop rx_wrong_outer_source (R14)`.
 * icmp lines name the ICMPv4 error and the destination of the packet it is about.
 */
export function formatTraceLine(r: TraceRecord): string {
  const clock = r.time.slice(11, 26);
  const outer =
    r.direction === 'icmp'
      ? `ICMPv4 ${r.icmp!.type}/${r.icmp!.code}${r.icmp!.info ? ` mtu ${r.icmp!.info}` : ''} about ${r.outerSrc ?? '?'} > ${r.outerDst ?? '?'}`
      : `${r.outerSrc ?? '-'} > ${r.outerDst ?? '-'}`;
  const inner = r.innerSrc ? `${r.innerSrc} > ${r.innerDst} ${PROTO[r.innerProto!] ?? `proto ${r.innerProto}`}` : 'no inner header';
  return `${clock} ${r.tunnel ? `${r.tunnel} ` : ''}${r.direction.padEnd(4)} ${outer} | ${inner} len ${r.length} | ${traceDecision(r)}`;
}
