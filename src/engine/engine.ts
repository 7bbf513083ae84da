/**
 * The forwarding loops of one tunnel: TUN → encapsulate → raw socket, and raw socket (and its
 * error queue) → decapsulate → TUN. Batched: one native call per batch of packets, one arena
 * per direction allocated up front, no allocation per packet. Readiness is level-triggered, so
 * each wake-up drains at most `maxBatchesPerWake` batches and yields, keeping timers on time.
 */
import { constants as osConstants } from 'node:os';
import { Drop, Counters } from '../encap/counters.js';
import { PacketResult, Verdict } from '../encap/result.js';
import type { Tunnel } from '../encap/tunnel.js';
import { Icmpv4Type, Icmpv4UnreachCode } from '../packet/icmpv4.js';
import { ErrorOrigin, ERROR_INFO_STRIDE, MAX_BATCH, SLOT_HEADROOM, SLOT_SIZE, type TunDevice, type TunnelSocket } from '../io/types.js';
import { IPV6 } from '../packet/ipv6.js';
import { TCP } from '../packet/tcp.js';
import {
  completeChecksum,
  segmentTcp6,
  TcpCoalescer,
  VNET,
  VNET_F_NEEDS_CSUM,
  VNET_GSO_ECN,
  VNET_GSO_NONE,
  VNET_GSO_TCPV6,
  VNET_HDR_LEN,
} from '../packet/vnet.js';

export { SLOT_HEADROOM, SLOT_SIZE };

const { EMSGSIZE } = osConstants.errno;

export interface EngineOptions {
  /** Packets per native call (1..MAX_BATCH, 256); default 64. */
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
}

/**
 * Sees each decapsulated packet before the TUN does; returning true consumes it. The keepalive
 * uses this to take its own echo replies.
 */
export type RxInterceptor = (buf: Buffer, off: number, len: number) => boolean;

/** TX with offload: room to cut super-packets into tunnel-MTU segments before a send. */
const SEG_SLOTS = 256;
const SEG_SLOT = 2048;

class Direction {
  readonly arena: Buffer;
  readonly lens: Int32Array;
  readonly outOffs = new Int32Array(MAX_BATCH);
  readonly outLens = new Int32Array(MAX_BATCH);
  readonly tunOffs = new Int32Array(MAX_BATCH);
  readonly tunLens = new Int32Array(MAX_BATCH);
  readonly errs = new Int32Array(MAX_BATCH);
  out = 0;
  toTun = 0;
  /** Start of the extra region after the batch slots (segments on TX, merged frames on RX). */
  readonly extra: number;
  constructor(batch: number, extraBytes: number) {
    this.extra = batch * SLOT_SIZE;
    this.arena = Buffer.alloc(this.extra + extraBytes);
    this.lens = new Int32Array(batch);
  }
}

export class TunnelEngine {
  readonly counters: Counters;
  /** Wall-clock ms of the last packet each way (0: never). */
  lastRxAt = 0;
  lastTxAt = 0;
  private readonly batch: number;
  private readonly maxBatches: number;
  private readonly tx: Direction;
  private readonly rx: Direction;
  private readonly errInfo: Int32Array;
  private readonly result = new PacketResult();
  private readonly localResult = new PacketResult();
  private readonly localErrs = new Int32Array(1);
  private readonly localOffs = new Int32Array(1);
  private readonly localLens = new Int32Array(1);
  private running = false;
  private interceptor: RxInterceptor | null = null;
  /** TUN offload: frames carry a virtio_net_hdr of `vh` bytes; TX cuts super-packets, RX merges. */
  private readonly offload: boolean;
  private readonly vh: number;
  private readonly coalescer = new TcpCoalescer();

  constructor(
    readonly tunnel: Tunnel,
    private readonly tun: TunDevice,
    private socket: TunnelSocket,
    private readonly options: EngineOptions = {},
  ) {
    this.counters = tunnel.counters;
    this.batch = Math.max(1, Math.min(MAX_BATCH, options.batchSize ?? 64));
    this.maxBatches = Math.max(1, options.maxBatchesPerWake ?? 4);
    this.offload = tun.offload === true;
    this.vh = this.offload ? VNET_HDR_LEN : 0;
    this.tx = new Direction(this.batch, this.offload ? SEG_SLOTS * SEG_SLOT : 0);
    this.rx = new Direction(this.batch, this.offload ? this.batch * SLOT_SIZE : 0);
    this.errInfo = new Int32Array(this.batch * ERROR_INFO_STRIDE);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.tun.watch(() => this.guard(this.pumpTx));
    this.socket.watch(() => this.guard(this.pumpRx));
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

  /** Swaps in a new socket (e.g. bound to a new local address) and closes the old one. */
  replaceSocket(socket: TunnelSocket): void {
    const old = this.socket;
    this.socket = socket;
    if (this.running) socket.watch(() => this.guard(this.pumpRx));
    old.close();
  }

  setRxInterceptor(fn: RxInterceptor | null): void {
    this.interceptor = fn;
  }

  /**
   * Encapsulates and sends one IPv6 packet we originate (not read from the TUN), sitting at
   * buf[off, off+len) with ENCAP_HEADROOM before it. Returns the send errno, or -1 if the
   * encapsulator did not forward it.
   */
  sendOwn(buf: Buffer, off: number, len: number): number {
    const r = this.tunnel.encapsulate(buf, off, len, this.localResult);
    if (r.verdict !== Verdict.Forward) return -1;
    this.localOffs[0] = r.offset;
    this.localLens[0] = r.length;
    this.socket.send(buf, this.localOffs, this.localLens, 1, this.localErrs);
    if (this.localErrs[0] !== 0) this.counters.drops[Drop.tx_send_error]++;
    return this.localErrs[0];
  }

  /** Stops both loops and closes both endpoints. Idempotent. */
  stop(): void {
    this.running = false;
    this.tun.close();
    this.socket.close();
  }

  /** TUN → network. Public so a caller with its own readiness source can drive it. */
  pumpTx(): void {
    const d = this.tx;
    const vh = this.vh;
    for (let b = 0; b < this.maxBatches && this.running; b++) {
      const n = this.tun.read(d.arena, SLOT_SIZE, SLOT_HEADROOM - vh, this.batch, d.lens);
      if (n === 0) break;
      let segUsed = 0;
      for (let i = 0; i < n; i++) {
        const off = i * SLOT_SIZE + SLOT_HEADROOM;
        const len = d.lens[i] - vh;
        if (vh !== 0) {
          const h = off - vh;
          const gso = d.arena[h + VNET.GSO_TYPE] & ~VNET_GSO_ECN;
          if (gso === VNET_GSO_TCPV6) {
            const gsoSize = d.arena.readUInt16LE(h + VNET.GSO_SIZE);
            const need = gsoSize > 0 ? Math.ceil(len / gsoSize) : SEG_SLOTS + 1;
            if (segUsed + need > SEG_SLOTS) {
              this.flushTx();
              segUsed = 0;
            }
            const base = d.extra + SLOT_HEADROOM;
            // a super-packet always comes with its TCP checksum left partial: that is what tells us where TCP starts
            const partial = (d.arena[h + VNET.FLAGS] & VNET_F_NEEDS_CSUM) !== 0 && d.arena.readUInt16LE(h + VNET.CSUM_OFFSET) === TCP.CHECKSUM;
            const tcpOff = partial ? d.arena.readUInt16LE(h + VNET.CSUM_START) : -1;
            const k = tcpOff < 0 ? -1 : segmentTcp6(d.arena, off, len, tcpOff, gsoSize, d.arena, base + segUsed * SEG_SLOT, SEG_SLOT, SEG_SLOTS - segUsed);
            if (k < 0) {
              this.counters.drops[Drop.tx_malformed_ipv6]++;
              continue;
            }
            for (let j = 0; j < k; j++) {
              const so = base + (segUsed + j) * SEG_SLOT;
              this.txOne(so, IPV6.HEADER_LEN + d.arena.readUInt16BE(so + IPV6.PAYLOAD_LEN));
            }
            segUsed += k;
            continue;
          }
          if (gso !== VNET_GSO_NONE) {
            this.counters.drops[Drop.tx_malformed_ipv6]++;
            continue;
          }
          if ((d.arena[h + VNET.FLAGS] & VNET_F_NEEDS_CSUM) !== 0) {
            completeChecksum(d.arena, off, len, d.arena.readUInt16LE(h + VNET.CSUM_START), d.arena.readUInt16LE(h + VNET.CSUM_OFFSET));
          }
        }
        this.txOne(off, len);
      }
      this.flushTx();
      if (n < this.batch) break; // a short batch means the device is drained
    }
  }

  /** Encapsulates one packet of the TX arena and queues what comes out. */
  private txOne(off: number, len: number): void {
    const d = this.tx;
    const r = this.tunnel.encapsulate(d.arena, off, len, this.result);
    if (r.verdict === Verdict.Forward) {
      d.outOffs[d.out] = r.offset;
      d.outLens[d.out++] = r.length;
      if (d.out === MAX_BATCH) this.flushTx();
    } else if (r.verdict === Verdict.Reply) {
      this.queueTun(d, r.offset, r.length);
    }
  }

  private flushTx(): void {
    const d = this.tx;
    if (d.out > 0) {
      const sent = this.socket.send(d.arena, d.outOffs, d.outLens, d.out, d.errs);
      if (sent < d.out) this.countErrors(d.errs, d.out, Drop.tx_send_error, 'send');
      d.out = 0;
      this.lastTxAt = Date.now();
    }
    this.flushTun(d);
  }

  /** Network → TUN, ICMPv4 errors first. */
  pumpRx(): void {
    const d = this.rx;
    const t = this.tunnel;
    const r = this.result;
    this.drainErrors();
    for (let b = 0; b < this.maxBatches && this.running; b++) {
      const n = this.socket.recv(d.arena, SLOT_SIZE, SLOT_HEADROOM, this.batch, d.lens);
      if (n < 0) {
        // IP_RECVERR reports a queued ICMP error once as a socket error: read the queue, go on.
        this.drainErrors();
        continue;
      }
      if (n === 0) break;
      let merging = false;
      let groUsed = 0;
      for (let i = 0; i < n; i++) {
        if (d.lens[i] < 0) {
          this.counters.drops[Drop.rx_truncated]++;
          continue;
        }
        // the kernel checked the IPv4 header before the raw socket got it
        t.decapsulate(d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r, true);
        if (r.verdict !== Verdict.Forward && r.verdict !== Verdict.Reply) continue;
        if (r.verdict === Verdict.Forward && this.interceptor !== null && this.interceptor(d.arena, r.offset, r.length)) continue;
        if (this.offload) {
          // GRO: consecutive segments of one flow become one super-packet for the kernel
          if (merging && this.coalescer.tryAppend(d.arena, r.offset, r.length)) continue;
          if (merging) this.finishMerge(d);
          merging = false;
          if (r.verdict === Verdict.Forward && TcpCoalescer.eligible(d.arena, r.offset, r.length)) {
            this.coalescer.start(d.arena, d.extra + groUsed++ * SLOT_SIZE + SLOT_HEADROOM, d.arena, r.offset, r.length);
            merging = true;
            continue;
          }
        }
        this.queueTun(d, r.offset, r.length);
      }
      if (merging) this.finishMerge(d);
      if (d.toTun > 0) {
        this.flushTun(d);
        this.lastRxAt = Date.now();
      }
      if (n < this.batch) break;
    }
  }

  private finishMerge(d: Direction): void {
    const [off, len] = this.coalescer.finish();
    if (d.toTun === MAX_BATCH) this.flushTun(d);
    d.tunOffs[d.toTun] = off;
    d.tunLens[d.toTun++] = len;
  }

  /** Queues an IPv6 packet for the TUN, behind an empty virtio_net_hdr when offload is on. */
  private queueTun(d: Direction, off: number, len: number): void {
    if (d.toTun === MAX_BATCH) this.flushTun(d);
    const vh = this.vh;
    // ten stores inline: Buffer#fill is a call into the runtime, per packet
    for (let i = off - vh; i < off; i++) d.arena[i] = 0;
    d.tunOffs[d.toTun] = off - vh;
    d.tunLens[d.toTun++] = len + vh;
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
    for (;;) {
      const n = this.socket.recvErrors(d.arena, SLOT_SIZE, SLOT_HEADROOM, this.batch, d.lens, info);
      if (n === 0) return;
      for (let i = 0; i < n; i++) {
        const k = i * ERROR_INFO_STRIDE;
        const origin = info[k];
        let type = info[k + 1];
        let code = info[k + 2];
        const dst = info[k + 4] >>> 0;
        if (origin === ErrorOrigin.Local) {
          // A local "message too long" carries the MTU the kernel knows; treat it as RFC 1191's report.
          if (info[k + 5] !== EMSGSIZE) continue;
          type = Icmpv4Type.DestUnreachable;
          code = Icmpv4UnreachCode.FragmentationNeeded;
        } else if (origin !== ErrorOrigin.Icmp) {
          continue;
        }
        this.tunnel.icmpv4Error(type, code, info[k + 3], dst, d.arena, i * SLOT_SIZE + SLOT_HEADROOM, d.lens[i], r);
        if (r.verdict === Verdict.Reply) this.queueTun(d, r.offset, r.length);
      }
      this.flushTun(d);
      if (n < this.batch) return;
    }
  }

  private countErrors(errs: Int32Array, n: number, reason: number, where: 'send' | 'tun-write'): void {
    let first = 0;
    for (let i = 0; i < n; i++) {
      if (errs[i] !== 0) {
        this.counters.drops[reason]++;
        if (first === 0) first = errs[i];
      }
    }
    if (first !== 0) this.options.onIoError?.(where, first);
  }
}
