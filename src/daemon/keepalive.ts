/**
 * Keepalive for a configured tunnel: an ICMPv6 echo to the peer through the tunnel every N
 * seconds. It keeps NAT/conntrack state for protocol 41 alive (a 1:1 NAT forgets it after minutes
 * of silence) and measures the tunnel: RTT, loss, and from them the tunnel's state. Probes are
 * built and sent by us, not by the kernel, and their replies are taken off the RX path before
 * the TUN, so the host sees neither.
 */
import { ENCAP_HEADROOM } from '../encap/encapsulator.js';
import type { Encapsulator } from '../encap/encapsulator.js';
import { IPV6 } from '../packet/ipv6.js';
import { ICMPV6, Icmpv6Type, writeIcmpv6EchoRequest } from '../packet/icmpv6.js';
import { PROTO_ICMPV6 } from '../packet/ipv4.js';
import { ipv6Equal } from '../packet/address.js';
import type { Clock } from '../encap/token-bucket.js';

export type TunnelHealth = 'starting' | 'up' | 'degraded' | 'down' | 'idle';

/** How many recent probes the loss figure covers. */
export const KEEPALIVE_WINDOW = 10;
/** Consecutive lost probes, with no traffic received meanwhile, that make a tunnel down. */
export const DOWN_AFTER_LOST = 3;

/** What a probe carries: 16 bytes that name us in a capture on the peer's side. */
const PROBE_DATA = Buffer.from('tun6in4 keepaliv', 'latin1');
const PROBE_LEN = IPV6.HEADER_LEN + ICMPV6.HEADER_LEN + PROBE_DATA.length;

export interface KeepaliveStats {
  intervalSeconds: number;
  sent: number;
  received: number;
  /** Loss over the last KEEPALIVE_WINDOW finished probes, percent. */
  lossPercent: number | null;
  rttMs: { last: number | null; average: number | null };
  lastReplyAt: string | null;
}

export class Keepalive {
  private readonly buf = Buffer.alloc(ENCAP_HEADROOM + PROBE_LEN);
  private readonly id = (Math.random() * 0x10000) & 0xffff;
  private seq = 0;
  private pendingSeq = -1;
  private pendingSentAt = 0;
  /** Wall-clock send time, comparable with the engine's lastRxAt. */
  private pendingSentWall = 0;
  private pendingAnswered = false;
  /** Finished probes, oldest first: true answered, false lost. */
  private readonly window: boolean[] = [];
  private sent = 0;
  private received = 0;
  private lastRtt: number | null = null;
  private rttAvg: number | null = null;
  private lastReplyAt = 0;
  /** Wall-clock send time of the first probe of the current run of lost ones (0: none lost). */
  private lostRunStartedAt = 0;
  private lostBeforeFirstReply = 0;

  constructor(
    private readonly tunnel: Encapsulator,
    readonly intervalSeconds: number,
    private readonly clock: Clock,
  ) {}

  /**
   * Closes the previous probe (answered or lost) and builds the next one in place; returns
   * [buf, off, len] for the engine to send.
   */
  nextProbe(): [Buffer, number, number] {
    this.finishPending();
    const c = this.tunnel.config;
    this.seq = (this.seq + 1) & 0xffff;
    writeIcmpv6EchoRequest(this.buf, ENCAP_HEADROOM, c.address.addr, c.peer!, this.id, this.seq, PROBE_DATA);
    this.pendingSeq = this.seq;
    this.pendingSentAt = this.clock();
    this.pendingSentWall = Date.now();
    this.pendingAnswered = false;
    this.sent++;
    return [this.buf, ENCAP_HEADROOM, PROBE_LEN];
  }

  /** RX hook: consumes our own echo replies (from the peer, with our id); records the RTT. */
  readonly intercept = (buf: Buffer, off: number, len: number): boolean => {
    if (buf[off + IPV6.NEXT_HEADER] !== PROTO_ICMPV6 || len < IPV6.HEADER_LEN + ICMPV6.HEADER_LEN) return false;
    const icmp = off + IPV6.HEADER_LEN;
    if (buf[icmp + ICMPV6.TYPE] !== Icmpv6Type.EchoReply || ((buf[icmp + 4] << 8) | buf[icmp + 5]) !== this.id) return false;
    if (!ipv6Equal(buf, off + IPV6.SRC, this.tunnel.config.peer!, 0)) return false;
    const seq = (buf[icmp + 6] << 8) | buf[icmp + 7];
    if (seq === this.pendingSeq && !this.pendingAnswered) {
      const now = this.clock();
      this.pendingAnswered = true;
      this.received++;
      this.lastRtt = now - this.pendingSentAt;
      this.rttAvg = this.rttAvg === null ? this.lastRtt : this.rttAvg * 0.8 + this.lastRtt * 0.2;
      this.lastReplyAt = now;
    }
    return true;
  };

  private finishPending(): void {
    if (this.pendingSeq < 0) return;
    if (this.received === 0) {
      // Before the peer ever answered (it may come up after us) losses do not make history:
      // they only decide between "starting" and "down".
      this.lostBeforeFirstReply++;
      this.pendingSeq = -1;
      return;
    }
    this.window.push(this.pendingAnswered);
    if (this.window.length > KEEPALIVE_WINDOW) this.window.shift();
    if (this.pendingAnswered) this.lostRunStartedAt = 0;
    else if (this.lostRunStartedAt === 0) this.lostRunStartedAt = this.pendingSentWall;
    this.pendingSeq = -1;
  }

  /**
   * The tunnel's health: down when the last DOWN_AFTER_LOST probes were lost and nothing came in
   * since the first of them; degraded when any probe in the window was lost; up otherwise, once
   * a probe was answered. `lastRxAt` is wall-clock ms of the last packet received (0: never).
   */
  health(lastRxAt: number): TunnelHealth {
    if (this.received === 0) return this.lostBeforeFirstReply >= DOWN_AFTER_LOST ? 'down' : 'starting';
    const w = this.pendingAnswered ? [...this.window, true] : this.window;
    if (w.length === 0) return 'up';
    const tail = w.slice(-DOWN_AFTER_LOST);
    if (!this.pendingAnswered && tail.length === DOWN_AFTER_LOST && tail.every((x) => !x) && lastRxAt < this.lostRunStartedAt) return 'down';
    if (w.some((x) => !x)) return 'degraded';
    return 'up';
  }

  stats(): KeepaliveStats {
    // An answered probe counts at once, as in health(): "1/1 answered" is 0 % loss, not "-".
    const w = this.pendingAnswered ? [...this.window, true] : this.window;
    const lost = w.filter((x) => !x).length;
    return {
      intervalSeconds: this.intervalSeconds,
      sent: this.sent,
      received: this.received,
      lossPercent: w.length ? Math.round((lost / w.length) * 1000) / 10 : null,
      rttMs: { last: round(this.lastRtt), average: round(this.rttAvg) },
      lastReplyAt: this.lastReplyAt ? new Date(Date.now() - (this.clock() - this.lastReplyAt)).toISOString() : null,
    };
  }
}

function round(x: number | null): number | null {
  return x === null ? null : Math.round(x * 1000) / 1000;
}
