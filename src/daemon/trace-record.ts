/**
 * A packet decision as plain data, read out of the engine's reused TracePoint: what the daemon's
 * trace stream sends as JSON, and the one-line text `tun6in4 trace` prints. Here, not in the
 * engine, because only the daemon and the CLI (which imports the daemon) read it.
 */
import { DROP_REASONS, DROP_RULE, type DropReason } from '../encap/counters.js';
import { Verdict } from '../encap/result.js';
import { TraceDirection, type TracePoint } from '../engine/trace.js';
import { formatIpv4, formatIpv6 } from '../packet/address.js';
import { IPV4 } from '../packet/ipv4.js';
import { IPV6 } from '../packet/ipv6.js';

export type TraceDirectionName = 'tx' | 'rx' | 'icmp';
export type TraceVerdictName = 'forward' | 'reply' | 'drop' | 'consumed' | 'answer';

const DIRECTION_NAME: Record<TraceDirection, TraceDirectionName> = { 1: 'tx', 2: 'rx', 3: 'icmp' };
const VERDICT_NAME: Record<Verdict, TraceVerdictName> = { 1: 'forward', 2: 'reply', 3: 'drop', 4: 'consumed', 5: 'answer' };

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
  if (len >= IPV4.HEADER_LEN && b[0] >> 4 === 4) io = (b[0] & 0x0f) << 2;
  return len - io >= IPV6.HEADER_LEN && b[io] >> 4 === 6 ? io : -1;
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
    r.innerSrc = formatIpv6(bytes, io + IPV6.SRC);
    r.innerDst = formatIpv6(bytes, io + IPV6.DST);
    r.innerProto = bytes[io + IPV6.NEXT_HEADER];
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
  if (r.verdict === 'answer') return 'answered back through the tunnel';
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
