/**
 * The forwarding loops of one tunnel policy: TUN → egress → outer transport, and outer transport
 * (and its error queue) → decapsulate → TUN. The loop sees batches of plain packets only: offloads
 * live in the TUN device and the transport, observation (peer table, tracer) in observer.ts.
 * Batched: one native call per batch of packets, one PacketBatch per direction allocated up front,
 * no allocation per packet. Readiness is level-triggered, so each wake-up drains at most
 * `maxBatchesPerWake` batches and yields, keeping timers on time.
 */
import { constants as osConstants } from 'node:os';
import { Drop, type Counters, Traffic } from '../encap/counters.js';
import { PacketResult, Verdict } from '../encap/result.js';
import type { Encapsulator } from '../encap/encapsulator.js';
import { ERROR_INFO_STRIDE, PacketBatch } from '../io/batch.js';
import { MAX_BATCH, SLOT_HEADROOM, SLOT_SIZE } from '../io/slots.js';
import type { TunDevice } from '../tun/device.js';
import { ErrorOrigin, type OuterTransport } from '../transport/transport.js';
import { LoopObserver } from './observer.js';
import { PEER_TABLE_SIZE, PeerTable } from './peers.js';
import type { TunnelPolicy } from './policy.js';
import type { Tracer } from './trace.js';
import { tierUpEarly } from './tiering.js';

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
  /**
   * Lower V8's tier-up thresholds for the whole process when the engine starts (default true), so
   * the loop is optimised within its first hundred packets rather than its first thousand
   * (tiering.ts). False leaves the embedding process's V8 flags alone.
   */
  tierUpEarly?: boolean;
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
 * An arena's pages stay untouched until a slot is used, so the larger arena costs little memory.
 */
const TX_BATCH_DEFAULT = 256;

/**
 * One direction's packets. `batch` is read into, slot by slot; what goes on to the transport is
 * listed in its own columns, packet k at offs[k] (k never passes the slot being read, so the list
 * overwrites only entries already read). `toTun` lists, over the same arena, what goes to the TUN.
 */
class Direction {
  readonly batch: PacketBatch;
  readonly toTun: PacketBatch;
  out = 0;
  tunCount = 0;
  constructor(slots: number) {
    this.batch = new PacketBatch(slots);
    this.toTun = this.batch.sharing();
  }
}

export class TunnelEngine<P extends TunnelPolicy = Encapsulator> {
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
  private readonly result = new PacketResult();
  private readonly localResult = new PacketResult();
  /** A packet we originate (sendOwn), in a one-slot batch of its own. */
  private readonly own = new PacketBatch(1);
  private running = false;
  private interceptor: RxInterceptor | null = null;
  /** The peer table and the tracer; the loops call in only while `observed`. */
  private readonly observer: LoopObserver;
  /**
   * Someone looks at every packet (the peer table, a tracer). The loops test only this, once per
   * packet, so a 6in4 tunnel nobody traces pays one untaken branch.
   */
  private observed: boolean;
  /**
   * Back-pressure: the transport's buffer was full. The packets it did not take wait in the TX
   * batch (tx.out of them, at the front of its list); the TUN is not read until they are sent.
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
  /** This receive wrote into the TUN: read the TUN before going back to sleep. */
  private wroteTun = false;
  /**
   * Error-queue batches this wake-up may still read: as many as its receive batches, so a flood of
   * (forged) ICMPv4 errors cannot hold the loop (F4). The rest keep the socket's POLLERR up and
   * are read on the next wake-ups.
   */
  private errorBatchesLeft = 0;

  /** `encapsulator`: the tunnel policy, one tunnel's Encapsulator or anything that decides as one (TunnelPolicy). */
  constructor(
    readonly encapsulator: P,
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
    const peerSize = options.peerTableSize ?? PEER_TABLE_SIZE;
    const peers = encapsulator.config.mode !== '6in4' && peerSize > 0 ? new PeerTable(peerSize) : null;
    this.observer = new LoopObserver(peers, () => encapsulator.localAddress);
    this.observed = this.observer.watching;
  }

  /** 6to4 and 6rd: the remote IPv4s we exchange traffic with. None for 6in4: it has one remote, which the tunnel's own counters already describe. */
  get peers(): PeerTable | null {
    return this.observer.peers;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.options.tierUpEarly !== false) tierUpEarly();
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
    this.observer.tracer = fn;
    this.observed = this.observer.watching;
  }

  /**
   * Encapsulates and sends one IPv6 packet we originate (not read from the TUN), sitting at
   * buf[off, off+len). Returns the send errno, or -1 if the policy did not forward it.
   */
  sendOwn(buf: Buffer, off: number, len: number): number {
    const b = this.own;
    const at = b.slot(0);
    if (len > b.slotSize - b.headroom) return -1;
    buf.copy(b.arena, at, off, off + len);
    const r = this.encapsulator.egress(b.arena, at, len, this.localResult);
    if (this.observed) {
      this.observer.batch();
      this.observer.tx(b.arena, at, len, r);
    }
    if (r.verdict !== Verdict.Forward) return -1;
    b.offs[0] = r.offset;
    b.lens[0] = r.length;
    b.dsts[0] = r.outerDst;
    b.fields[0] = r.outerFields;
    this.transport.send(b, 1);
    const e = b.errs[0];
    if (e !== 0) {
      this.counters.drops[e === ENOBUFS ? Drop.tx_link_full : Drop.tx_send_error]++;
      if (this.observed) this.observer.sendError(b.arena, r.offset, r.length, r.outerDst, e === ENOBUFS);
    }
    return e;
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
    const b = d.batch;
    const arena = b.arena;
    const t = this.encapsulator;
    const r = this.result;
    for (let round = 0; round < this.maxBatches && this.running && !this.txBlocked; round++) {
      const n = this.tun.read(b, this.txBatch);
      if (n === 0) break;
      const watch = this.observed;
      if (watch) this.observer.batch();
      for (let i = 0; i < n; i++) {
        const off = i * SLOT_SIZE + SLOT_HEADROOM;
        const len = b.lens[i];
        t.egress(arena, off, len, r);
        if (watch) this.observer.tx(arena, off, len, r);
        if (r.verdict === Verdict.Forward) {
          this.listSend(d, r);
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

  /**
   * Lists what `r` sends through the transport in the direction's batch's own columns: entry k
   * never passes the slot being read, so it overwrites only entries already read.
   */
  private listSend(d: Direction, r: PacketResult): void {
    const b = d.batch;
    const k = d.out++;
    b.offs[k] = r.offset;
    b.lens[k] = r.length;
    b.dsts[k] = r.outerDst;
    b.fields[k] = r.outerFields;
  }

  private flushTx(): void {
    const d = this.tx;
    if (d.out > 0) {
      const n = d.out;
      const b = d.batch;
      const sent = this.transport.send(b, n);
      d.out = 0;
      this.lastTxAt = Date.now();
      if (sent < n) {
        this.countErrors(b.errs, n, Drop.tx_send_error, 'send');
        if (this.observed) {
          for (let i = 0; i < n; i++) {
            const e = b.errs[i];
            if (e !== 0 && e !== EAGAIN) this.observer.sendError(b.arena, b.offs[i], b.lens[i], b.dsts[i], e === ENOBUFS);
          }
        }
        this.holdUnsent(n);
      }
    }
    this.flushTun(d);
  }

  /**
   * Keeps the packets the transport answered EAGAIN (a full socket) for a later send: they move
   * to the front of the list, the TUN is paused, and the transport calls back when writable.
   */
  private holdUnsent(n: number): void {
    const d = this.tx;
    const b = d.batch;
    let k = 0;
    for (let i = 0; i < n; i++) {
      if (b.errs[i] !== EAGAIN) continue;
      b.offs[k] = b.offs[i];
      b.lens[k] = b.lens[i];
      b.dsts[k] = b.dsts[i];
      b.fields[k++] = b.fields[i];
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
    const b = d.batch;
    const arena = b.arena;
    const t = this.encapsulator;
    const r = this.result;
    this.errorBatchesLeft = this.maxBatches;
    if (this.errorQueueFirst) this.drainErrors();
    for (let round = 0; round < this.maxBatches && this.running; round++) {
      const n = this.transport.recv(b, this.batch);
      if (n < 0) {
        // IP_RECVERR reports a queued ICMP error once as a socket error: read the queue, go on.
        this.drainErrors();
        continue;
      }
      if (n === 0) break;
      const watch = this.observed;
      if (watch) this.observer.batch();
      for (let i = 0; i < n; i++) {
        const len = b.lens[i];
        if (len < 0) {
          this.counters.drops[Drop.rx_truncated]++;
          if (watch) this.observer.truncated(arena);
          continue;
        }
        const off = i * SLOT_SIZE + SLOT_HEADROOM;
        // the kernel checked the IPv4 header before the raw socket got it
        t.decapsulate(arena, off, len, r, true);
        if (watch) this.observer.rx(arena, off, len, r);
        if (r.verdict === Verdict.Answer) {
          this.listSend(d, r);
          continue;
        }
        if (r.verdict !== Verdict.Forward && r.verdict !== Verdict.Reply) continue;
        if (r.verdict === Verdict.Forward && this.interceptor !== null && this.interceptor(arena, r.offset, r.length)) continue;
        this.queueTun(d, r.offset, r.length);
      }
      if (d.tunCount > 0) {
        this.flushTun(d);
        this.lastRxAt = Date.now();
        this.wroteTun = true;
      }
      if (d.out > 0) this.sendAnswers(d);
      if (n < this.batch) break;
    }
    if (this.running && !this.rxAgain && this.transport.holding()) {
      this.rxAgain = true;
      setImmediate(this.rerunRx);
    }
    // What we just wrote into the TUN is often answered at once: the host's stack replies to an
    // echo or ACKs a segment inside our write. Reading now sends the answer without a trip
    // through the poller (the wake-up, the callback, one more turn of Node's loop).
    if (this.wroteTun) {
      this.wroteTun = false;
      this.pumpTx();
    }
  }

  /**
   * Answers the policy built to received packets (Verdict.Answer), sent before the next receive
   * reuses their slots. They do not wait for room as TX does: a full socket drops them, counted.
   */
  private sendAnswers(d: Direction): void {
    const n = d.out;
    d.out = 0;
    const b = d.batch;
    if (this.transport.send(b, n) === n) return;
    for (let i = 0; i < n; i++) {
      const e = b.errs[i];
      if (e !== 0) this.counters.drops[e === ENOBUFS || e === EAGAIN ? Drop.tx_link_full : Drop.tx_send_error]++;
    }
  }

  private queueTun(d: Direction, off: number, len: number): void {
    if (d.tunCount === MAX_BATCH) this.flushTun(d);
    d.toTun.offs[d.tunCount] = off;
    d.toTun.lens[d.tunCount++] = len;
  }

  private flushTun(d: Direction): void {
    const n = d.tunCount;
    if (n === 0) return;
    const written = this.tun.write(d.toTun, n);
    if (written < n) this.countErrors(d.toTun.errs, n, Drop.rx_tun_write_error, 'tun-write');
    d.tunCount = 0;
  }

  private drainErrors(): void {
    const d = this.rx;
    const b = d.batch;
    const info = b.info;
    const r = this.result;
    while (this.errorBatchesLeft > 0) {
      this.errorBatchesLeft--;
      const n = this.transport.recvErrors(b, this.batch);
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
        const off = i * SLOT_SIZE + SLOT_HEADROOM;
        this.encapsulator.icmpv4Error(type, code, info[k + 3], dst, b.arena, off, b.lens[i], r);
        if (this.observed) this.observer.icmp(type, code, info[k + 3], dst, b.arena, off, b.lens[i], r);
        if (r.verdict === Verdict.Reply) this.queueTun(d, r.offset, r.length);
      }
      this.flushTun(d);
      if (n < this.batch) return;
    }
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
