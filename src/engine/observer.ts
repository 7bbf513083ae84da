/**
 * What watches the loop: the 6to4/6rd peer table and the tracer. The loop calls in only when
 * someone watches (`watching`), once per packet decision; here each decision becomes a peer-table
 * entry and a TracePoint, reused from call to call.
 */
import { performance } from 'node:perf_hooks';
import { Drop } from '../encap/counters.js';
import { type PacketResult, Verdict } from '../encap/result.js';
import { ICMPV6_ERROR_OVERHEAD } from '../packet/icmpv6.js';
import { IPV4 } from '../packet/ipv4.js';
import { PeerTable } from './peers.js';
import { TraceDirection, TracePoint, type Tracer } from './trace.js';

export class LoopObserver {
  tracer: Tracer | null = null;
  private readonly point = new TracePoint();

  constructor(
    /** 6to4 and 6rd: the remote IPv4s the tunnel exchanges traffic with; null for one remote. */
    readonly peers: PeerTable | null,
    /** Our outer address, unsigned (the policy's). */
    private readonly localAddress: () => number,
  ) {}

  /** Someone looks at every packet: the loop calls in only while this is true. */
  get watching(): boolean {
    return this.tracer !== null || this.peers !== null;
  }

  /** A batch begins: the peer table's clock, read once per batch rather than per packet. */
  batch(): void {
    if (this.peers !== null) this.peers.now = Date.now();
  }

  /** The TX decision about buf[off, off+len) (now `r`). */
  tx(buf: Buffer, off: number, len: number, r: PacketResult): void {
    if (this.peers !== null && r.verdict === Verdict.Forward) this.peers.tx(r.outerDst | 0, r.length);
    const fn = this.tracer;
    if (fn === null) return;
    const p = this.begin(TraceDirection.Tx, r);
    p.outerSrc = this.localAddress();
    p.originalLength = len;
    if (r.verdict === Verdict.Forward) {
      p.outerDst = r.outerDst >>> 0;
      this.bytes(buf, r.offset, r.length);
    } else if (r.verdict === Verdict.Reply) {
      // the packet became its own Packet Too Big: what survives of it is the quote
      p.ptbMtu = buf.readUInt32BE(r.offset + 44);
      this.bytes(buf, r.offset + ICMPV6_ERROR_OVERHEAD, r.length - ICMPV6_ERROR_OVERHEAD);
    } else {
      this.bytes(buf, off, len);
    }
    fn(p);
  }

  /** The RX decision about the IPv4 packet at buf[off, off+len). */
  rx(buf: Buffer, off: number, len: number, r: PacketResult): void {
    const src = len >= IPV4.HEADER_LEN ? buf.readInt32BE(off + IPV4.SRC) : 0;
    const peers = this.peers;
    if (peers !== null && src !== 0) {
      if (r.verdict === Verdict.Forward) peers.rx(src, r.length);
      else if (r.verdict === Verdict.Drop) peers.drop(src, r.reason);
    }
    const fn = this.tracer;
    if (fn === null) return;
    const p = this.begin(TraceDirection.Rx, r);
    p.outerSrc = src >>> 0;
    p.outerDst = len >= IPV4.HEADER_LEN ? buf.readUInt32BE(off + IPV4.DST) : 0;
    p.originalLength = len;
    this.bytes(buf, off, len);
    fn(p);
  }

  /** An ICMPv4 error about the packet we sent to `dst`, whose inner IPv6 it quotes at buf[off, off+len). */
  icmp(type: number, code: number, info: number, dst: number, buf: Buffer, off: number, len: number, r: PacketResult): void {
    if (this.peers !== null) {
      this.peers.now = Date.now();
      this.peers.icmpError(dst);
    }
    const fn = this.tracer;
    if (fn === null) return;
    const p = this.begin(TraceDirection.Icmp, r);
    p.outerSrc = this.localAddress();
    p.outerDst = dst >>> 0;
    p.icmpType = type;
    p.icmpCode = code;
    p.icmpInfo = info;
    p.originalLength = len;
    // a relayed error was built around the quote, cut to fit 1280 bytes
    this.bytes(buf, off, r.verdict === Verdict.Reply ? Math.min(len, r.length - ICMPV6_ERROR_OVERHEAD) : len);
    fn(p);
  }

  /** A received packet larger than a slot (tracer only). */
  truncated(buf: Buffer): void {
    const fn = this.tracer;
    if (fn === null) return;
    const p = this.begin(TraceDirection.Rx, null);
    p.reason = Drop.rx_truncated;
    p.originalLength = 0;
    this.bytes(buf, 0, 0);
    fn(p);
  }

  /** A send that failed (tracer only); `linkFull`: the outgoing queue dropped it (ENOBUFS). */
  sendError(buf: Buffer, off: number, len: number, dst: number, linkFull: boolean): void {
    const fn = this.tracer;
    if (fn === null) return;
    const p = this.begin(TraceDirection.Tx, null);
    p.reason = linkFull ? Drop.tx_link_full : Drop.tx_send_error;
    p.outerSrc = this.localAddress();
    p.outerDst = dst >>> 0;
    p.originalLength = len;
    this.bytes(buf, off, len);
    fn(p);
  }

  /** The reused point, reset for a new decision (`r` null: an I/O drop). */
  private begin(direction: TraceDirection, r: PacketResult | null): TracePoint {
    const p = this.point;
    p.direction = direction;
    p.verdict = r === null ? Verdict.Drop : r.verdict;
    p.reason = r === null ? -1 : r.verdict === Verdict.Drop || (r.verdict === Verdict.Reply && direction === TraceDirection.Tx) ? r.reason : -1;
    p.time = performance.timeOrigin + performance.now();
    p.outerSrc = p.outerDst = p.icmpType = p.icmpCode = p.icmpInfo = p.ptbMtu = 0;
    return p;
  }

  private bytes(buf: Buffer, off: number, len: number): void {
    const p = this.point;
    p.buf = buf;
    p.offset = off;
    p.length = len;
  }
}
