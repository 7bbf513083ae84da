/**
 * The forwarding loops of one tunnel: TUN → egress → outer transport, and outer transport (and
 * its error queue) → decapsulate → TUN. The loop sees batches of plain packets only: offloads
 * live in the TUN device and the transport. Batched: one native call per batch of packets, one arena
 * per direction allocated up front, no allocation per packet. Readiness is level-triggered, so
 * each wake-up drains at most `maxBatchesPerWake` batches and yields, keeping timers on time.
 */
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Drop, Counters, Traffic } from '../encap/counters.js';
import { PacketResult, Verdict } from '../encap/result.js';
import type { Encapsulator } from '../encap/encapsulator.js';
import { ICMPV6_ERROR_OVERHEAD } from '../packet/icmpv6.js';
import { IPV4 } from '../packet/ipv4.js';
import { PEER_TABLE_SIZE, PeerTable } from './peers.js';
import { TraceDirection, TracePoint, type Tracer } from './trace.js';
import { MAX_BATCH, SLOT_HEADROOM, SLOT_SIZE, slotArena } from '../io/slots.js';
import type { TunDevice } from '../tun/device.js';
import { ErrorOrigin, ERROR_INFO_STRIDE, type OuterTransport } from '../transport/transport.js';

export { SLOT_HEADROOM, SLOT_SIZE };

const { EAGAIN, ENOBUFS } = osConstants.errno;

export interface EngineOptions {
  /** Packets per native call (1..MAX_BATCH, 256); default 256 from the TUN, 64 from the network. */
  batchSize?: number;
  /** Batches handled per readiness callback before yielding to the event loop; default 4. */
  maxBatchesPerWake?: number;
  /** Told about I/O errors (errno), at most once per batch. */
  onIoError?: (where: 'send' | 'tun-write' | 'recv', errno: number) => void;
  /**
   * Told when an endpoint fails for good (e.g. the TUN interface was deleted underneath us: reads
   * fail with EBADFD). The engine has stopped and closed both endpoints by then.
   */
  onFatal?: (error: Error) => void;
  /** 6to4 and 6rd: how many remote IPv4s the peer table remembers (default 256; 0: no table). */
  peerTableSize?: number;
}

/**
 * Sees each decapsulated packet before the TUN does; returning true consumes it. The keepalive
 * uses this to take its own echo replies.
 */
export type RxInterceptor = (buf: Buffer, off: number, len: number) => boolean;

/**
 * From the TUN, 256 packets a read: with offload a TSO super-packet is cut into ~45 segments, so
 * 64 slots held barely one: one-stream TCP ran at 2.12 Gbit/s with 64, 2.35 with 256, 2.39 for
 * the engine before offload moved behind the device (medians of 4 interleaved runs each).
 * Buffer.alloc's pages stay untouched until a slot is used, so the larger arena costs little memory.
 */
const TX_BATCH_DEFAULT = 256;

class Direction {
  readonly arena: Buffer;
  readonly lens: Int32Array;
  /** Packets queued for the transport: inner packet, outer destination and fields. */
  readonly outOffs = new Int32Array(MAX_BATCH);
  readonly outLens = new Int32Array(MAX_BATCH);
  readonly outDsts = new Int32Array(MAX_BATCH);
  readonly outFields = new Int32Array(MAX_BATCH);
  readonly tunOffs = new Int32Array(MAX_BATCH);
  readonly tunLens = new Int32Array(MAX_BATCH);
  readonly errs = new Int32Array(MAX_BATCH);
  out = 0;
  toTun = 0;
  constructor(batch: number) {
    this.arena = slotArena(batch);
    this.lens = new Int32Array(batch);
  }
}

export class TunnelEngine {
  readonly counters: Counters;
  /** Wall-clock ms of the last packet each way (0: never). */
  lastRxAt = 0;
  lastTxAt = 0;
  /** Packets per native call from the network side (and the error queue). */
  private readonly batch: number;
  /** Packets per read from the TUN: larger, since one TSO super-packet alone cuts into ~45. */
  private readonly txBatch: number;
  private readonly maxBatches: number;
  private readonly tx: Direction;
  private readonly rx: Direction;
  private readonly errInfo: Int32Array;
  private readonly result = new PacketResult();
  private readonly localResult = new PacketResult();
  private readonly localErrs = new Int32Array(1);
  private readonly localOffs = new Int32Array(1);
  private readonly localLens = new Int32Array(1);
  private readonly localDsts = new Int32Array(1);
  private readonly localFields = new Int32Array(1);
  private running = false;
  private interceptor: RxInterceptor | null = null;
  /**
   * 6to4 and 6rd: the remote IPv4s we exchange traffic with. None for 6in4: it has one remote,
   * which the tunnel's own counters already describe.
   */
  readonly peers: PeerTable | null;
  private tracer: Tracer | null = null;
  private readonly point = new TracePoint();
  /**
   * Someone looks at every packet (the peer table, a tracer). The loops test only this, once per
   * packet, so a 6in4 tunnel nobody traces pays one untaken branch.
   */
  private observed: boolean;
  /**
   * Back-pressure: the transport's buffer was full. The packets it did not take wait in the TX
   * arena (tx.out of them, at the front of the out arrays); the TUN is not read until they are sent.
   */
  private txBlocked = false;
  /** A re-run of a pump is queued: its endpoint held packets the fd will not announce (F2). */
  private txAgain = false;
  private rxAgain = false;
  private readonly rerunTx = (): void => {
    this.txAgain = false;
    this.guard(this.pumpTx);
  };
  private readonly rerunRx = (): void => {
    this.rxAgain = false;
    this.guard(this.pumpRx);
  };
  /**
   * The transport's wake-up. Only one that may have an error queued (POLLERR, or a transport that
   * cannot tell) reads the error queue first: the rest save a syscall and a native call each.
   * An error queued after the poll is not lost: the next poll reports it, and a receive that
   * meets the socket's error reads the queue then.
   */
  private readonly rxWake = (errorQueued?: boolean): void => {
    this.errorQueueFirst = errorQueued !== false;
    this.guard(this.pumpRx);
    this.errorQueueFirst = true;
  };
  private errorQueueFirst = true;
  /**
   * Error-queue batches this wake-up may still read: as many as its receive batches, so a flood of
   * (forged) ICMPv4 errors cannot hold the loop (F4). The rest keep the socket's POLLERR up and
   * are read on the next wake-ups.
   */
  private errorBatchesLeft = 0;

  constructor(
    readonly encapsulator: Encapsulator,
    private readonly tun: TunDevice,
    private transport: OuterTransport,
    private readonly options: EngineOptions = {},
  ) {
    this.counters = encapsulator.counters;
    this.batch = Math.max(1, Math.min(MAX_BATCH, options.batchSize ?? 64));
    this.txBatch = Math.max(1, Math.min(MAX_BATCH, options.batchSize ?? TX_BATCH_DEFAULT));
    this.maxBatches = Math.max(1, options.maxBatchesPerWake ?? 4);
    this.tx = new Direction(this.txBatch);
    this.rx = new Direction(this.batch);
    this.errInfo = new Int32Array(this.batch * ERROR_INFO_STRIDE);
    const peerSize = options.peerTableSize ?? PEER_TABLE_SIZE;
    this.peers = encapsulator.config.mode !== '6in4' && peerSize > 0 ? new PeerTable(peerSize) : null;
    this.observed = this.peers !== null;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.tun.watch(() => this.guard(this.pumpTx));
    this.transport.watch(this.rxWake);
  }

  /** Runs a pump; an exception from an endpoint stops the engine instead of the process. */
  private guard(pump: () => void): void {
    try {
      pump.call(this);
    } catch (e) {
      if (!this.running) return;
      this.stop();
      const err = e instanceof Error ? e : new Error(String(e));
      if (this.options.onFatal) this.options.onFatal(err);
      else throw err;
    }
  }

  /** Swaps in a new transport (e.g. bound to a new local address) and closes the old one. */
  replaceTransport(transport: OuterTransport): void {
    const old = this.transport;
    this.transport = transport;
    if (this.running) transport.watch(this.rxWake);
    // packets waiting for room in the old transport go out through the new one
    if (this.txBlocked) transport.watchWritable(() => this.guard(this.resumeTx));
    old.close();
  }

  /** @deprecated use replaceTransport */ replaceSocket(socket: OuterTransport): void { this.replaceTransport(socket); }

  /** @deprecated use encapsulator */ get tunnel(): Encapsulator { return this.encapsulator; }

  setRxInterceptor(fn: RxInterceptor | null): void {
    this.interceptor = fn;
  }

  /**
   * Tells `fn` about every packet decision from now on (null: stop): each packet read from the
   * TUN or the transport, each ICMPv4 error, each packet we originate, each send that failed.
   * It runs inside the loop, on a point the engine reuses: copy what you keep, and return quickly
   * (a slow tracer slows forwarding; the daemon's trace copies into a bounded ring and returns).
   */
  setTracer(fn: Tracer | null): void {
    this.tracer = fn;
    this.observed = fn !== null || this.peers !== null;
  }

  /**
   * Encapsulates and sends one IPv6 packet we originate (not read from the TUN), sitting at
   * buf[off, off+len) with ENCAP_HEADROOM before it. Returns the send errno, or -1 if the
   * encapsulator did not forward it.
   */
  sendOwn(buf: Buffer, off: number, len: number): number {
    const r = this.encapsulator.egress(buf, off, len, this.localResult);
    if (this.observed) {
      if (this.peers !== null) this.peers.now = Date.now();
      this.observeTx(buf, off, len, r);
    }
    if (r.verdict !== Verdict.Forward) return -1;
    this.localOffs[0] = r.offset;
    this.localLens[0] = r.length;
    this.localDsts[0] = r.outerDst;
    this.localFields[0] = r.outerFields;
    this.transport.send(buf, this.localOffs, this.localLens, this.localDsts, this.localFields, 1, this.localErrs);
    if (this.localErrs[0] !== 0) {
      this.counters.drops[this.localErrs[0] === ENOBUFS ? Drop.tx_link_full : Drop.tx_send_error]++;
      if (this.tracer !== null) this.traceSendError(buf, r.offset, r.length, r.outerDst, this.localErrs[0]);
    }
    return this.localErrs[0];
  }

  /** Stops both loops and closes both endpoints. Idempotent. */
  stop(): void {
    this.running = false;
    this.tun.close();
    this.transport.close();
  }

  /** TUN → network. Public so a caller with its own readiness source can drive it. */
  pumpTx(): void {
    const d = this.tx;
    const t = this.encapsulator;
    const r = this.result;
    for (let b = 0; b < this.maxBatches && this.running && !this.txBlocked; b++) {
      const n = this.tun.read(d.arena, SLOT_SIZE, SLOT_HEADROOM, this.txBatch, d.lens);
      if (n === 0) break;
      const watch = this.observed;
      if (watch && this.peers !== null) this.peers.now = Date.now();
      for (let i = 0; i < n; i++) {
        t.egress(d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r);
        if (watch) this.observeTx(d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r);
        if (r.verdict === Verdict.Forward) {
          d.outOffs[d.out] = r.offset;
          d.outLens[d.out] = r.length;
          d.outDsts[d.out] = r.outerDst;
          d.outFields[d.out++] = r.outerFields;
        } else if (r.verdict === Verdict.Reply) {
          this.queueTun(d, r.offset, r.length);
        }
      }
      this.flushTx();
      if (n < this.txBatch) break; // a short batch means the device is drained
    }
    // Segments the device cut but did not hand out yet: no readiness event will come for them.
    if (this.running && !this.txBlocked && !this.txAgain && this.tun.holding()) {
      this.txAgain = true;
      setImmediate(this.rerunTx);
    }
  }

  private flushTx(): void {
    const d = this.tx;
    if (d.out > 0) {
      const n = d.out;
      const sent = this.transport.send(d.arena, d.outOffs, d.outLens, d.outDsts, d.outFields, n, d.errs);
      d.out = 0;
      this.lastTxAt = Date.now();
      if (sent < n) {
        this.countErrors(d.errs, n, Drop.tx_send_error, 'send');
        if (this.tracer !== null) {
          for (let i = 0; i < n; i++) if (d.errs[i] !== 0 && d.errs[i] !== EAGAIN) this.traceSendError(d.arena, d.outOffs[i], d.outLens[i], d.outDsts[i], d.errs[i]);
        }
        this.holdUnsent(n);
      }
    }
    this.flushTun(d);
  }

  /**
   * Keeps the packets the transport answered EAGAIN (a full socket) for a later send: they move
   * to the front of the out arrays, the TUN is paused, and the transport calls back when writable.
   */
  private holdUnsent(n: number): void {
    const d = this.tx;
    let k = 0;
    for (let i = 0; i < n; i++) {
      if (d.errs[i] !== EAGAIN) continue;
      d.outOffs[k] = d.outOffs[i];
      d.outLens[k] = d.outLens[i];
      d.outDsts[k] = d.outDsts[i];
      d.outFields[k++] = d.outFields[i];
    }
    if (k === 0) return;
    d.out = k;
    this.counters.traffic[Traffic.tx_backpressure_waits]++;
    if (this.txBlocked) return;
    this.txBlocked = true;
    this.tun.pause();
    this.transport.watchWritable(() => this.guard(this.resumeTx));
  }

  /** The transport has room again: send what waited, then read the TUN again. */
  private resumeTx(): void {
    if (!this.running) return;
    this.txBlocked = false;
    this.flushTx();
    if (this.txBlocked) return;
    this.tun.resume();
    this.pumpTx();
  }

  /** Network → TUN; ICMPv4 errors first when the wake-up may have one queued (rxWake). */
  pumpRx(): void {
    const d = this.rx;
    const t = this.encapsulator;
    const r = this.result;
    this.errorBatchesLeft = this.maxBatches;
    if (this.errorQueueFirst) this.drainErrors();
    for (let b = 0; b < this.maxBatches && this.running; b++) {
      const n = this.transport.recv(d.arena, SLOT_SIZE, SLOT_HEADROOM, this.batch, d.lens);
      if (n < 0) {
        // IP_RECVERR reports a queued ICMP error once as a socket error: read the queue, go on.
        this.drainErrors();
        continue;
      }
      if (n === 0) break;
      const watch = this.observed;
      if (watch && this.peers !== null) this.peers.now = Date.now();
      for (let i = 0; i < n; i++) {
        if (d.lens[i] < 0) {
          this.counters.drops[Drop.rx_truncated]++;
          if (this.tracer !== null) this.traceTruncated();
          continue;
        }
        // the kernel checked the IPv4 header before the raw socket got it
        t.decapsulate(d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r, true);
        if (watch) this.observeRx(d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r);
        if (r.verdict !== Verdict.Forward && r.verdict !== Verdict.Reply) continue;
        if (r.verdict === Verdict.Forward && this.interceptor !== null && this.interceptor(d.arena, r.offset, r.length)) continue;
        this.queueTun(d, r.offset, r.length);
      }
      if (d.toTun > 0) {
        this.flushTun(d);
        this.lastRxAt = Date.now();
      }
      if (n < this.batch) break;
    }
    if (this.running && !this.rxAgain && this.transport.holding()) {
      this.rxAgain = true;
      setImmediate(this.rerunRx);
    }
  }

  private queueTun(d: Direction, off: number, len: number): void {
    if (d.toTun === MAX_BATCH) this.flushTun(d);
    d.tunOffs[d.toTun] = off;
    d.tunLens[d.toTun++] = len;
  }

  private flushTun(d: Direction): void {
    if (d.toTun === 0) return;
    const written = this.tun.write(d.arena, d.tunOffs, d.tunLens, d.toTun, d.errs);
    if (written < d.toTun) this.countErrors(d.errs, d.toTun, Drop.rx_tun_write_error, 'tun-write');
    d.toTun = 0;
  }

  private drainErrors(): void {
    const d = this.rx;
    const info = this.errInfo;
    const r = this.result;
    while (this.errorBatchesLeft > 0) {
      this.errorBatchesLeft--;
      const n = this.transport.recvErrors(d.arena, SLOT_SIZE, SLOT_HEADROOM, this.batch, d.lens, info);
      if (n === 0) return;
      for (let i = 0; i < n; i++) {
        const k = i * ERROR_INFO_STRIDE;
        const origin = info[k];
        const type = info[k + 1];
        const code = info[k + 2];
        const dst = info[k + 4] >>> 0;
        // Local errors (SO_EE_ORIGIN_LOCAL) quote no packet of ours, only an IPv4 header:
        // with IP_PMTUDISC_DONT or WANT the kernel fragments rather than refuse a send locally.
        if (origin !== ErrorOrigin.Icmp) continue;
        this.encapsulator.icmpv4Error(type, code, info[k + 3], dst, d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r);
        if (this.observed) this.observeIcmp(type, code, info[k + 3], dst, d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r);
        if (r.verdict === Verdict.Reply) this.queueTun(d, r.offset, r.length);
      }
      this.flushTun(d);
      if (n < this.batch) return;
    }
  }

  /** The TX decision about buf[off, off+len) (now `r`): into the peer table and to the tracer. */
  private observeTx(buf: Buffer, off: number, len: number, r: PacketResult): void {
    if (this.peers !== null && r.verdict === Verdict.Forward) this.peers.tx(r.outerDst | 0, r.length);
    const fn = this.tracer;
    if (fn === null) return;
    const p = this.begin(TraceDirection.Tx, r);
    p.outerSrc = this.encapsulator.localAddress;
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
  private observeRx(buf: Buffer, off: number, len: number, r: PacketResult): void {
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
  private observeIcmp(type: number, code: number, info: number, dst: number, buf: Buffer, off: number, len: number, r: PacketResult): void {
    if (this.peers !== null) {
      this.peers.now = Date.now();
      this.peers.icmpError(dst);
    }
    const fn = this.tracer;
    if (fn === null) return;
    const p = this.begin(TraceDirection.Icmp, r);
    p.outerSrc = this.encapsulator.localAddress;
    p.outerDst = dst >>> 0;
    p.icmpType = type;
    p.icmpCode = code;
    p.icmpInfo = info;
    p.originalLength = len;
    // a relayed error was built around the quote, cut to fit 1280 bytes
    this.bytes(buf, off, r.verdict === Verdict.Reply ? Math.min(len, r.length - ICMPV6_ERROR_OVERHEAD) : len);
    fn(p);
  }

  private traceTruncated(): void {
    const p = this.begin(TraceDirection.Rx, null);
    p.reason = Drop.rx_truncated;
    p.originalLength = 0;
    this.bytes(this.rx.arena, 0, 0);
    this.tracer!(p);
  }

  private traceSendError(buf: Buffer, off: number, len: number, dst: number, errno: number): void {
    const p = this.begin(TraceDirection.Tx, null);
    p.reason = errno === ENOBUFS ? Drop.tx_link_full : Drop.tx_send_error;
    p.outerSrc = this.encapsulator.localAddress;
    p.outerDst = dst >>> 0;
    p.originalLength = len;
    this.bytes(buf, off, len);
    this.tracer!(p);
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

  /**
   * Counts each failed packet under `reason`. On a send, EAGAIN is not a failure (the packet
   * waits, see holdUnsent), and ENOBUFS is the outgoing queue dropping it: a link full as a wire
   * is full, counted as tx_link_full and not reported as an I/O error.
   */
  private countErrors(errs: Int32Array, n: number, reason: number, where: 'send' | 'tun-write'): void {
    let first = 0;
    for (let i = 0; i < n; i++) {
      const e = errs[i];
      if (e === 0) continue;
      if (where === 'send' && e === EAGAIN) continue;
      if (where === 'send' && e === ENOBUFS) {
        this.counters.drops[Drop.tx_link_full]++;
        continue;
      }
      this.counters.drops[reason]++;
      if (first === 0) first = e;
    }
    if (first !== 0) this.options.onIoError?.(where, first);
  }
}
