/**
 * One outer transport per local IPv4 address (raw protocol 41) or local port (FOU), shared by
 * every tunnel of the process that uses it. The kernel hands each raw socket a copy of every
 * protocol-41 packet, so two tunnels with their own sockets would each see — and count as
 * dropped — the other's traffic. The hub receives once and gives each packet to exactly one
 * tunnel: the 6in4 tunnel whose remote sent it, else the 6to4 tunnel, else the first tunnel (so a
 * spoofed packet is counted once). With a single tunnel a port passes straight through to the
 * transport: no copy.
 */
import { SLOT_HEADROOM as HUB_HEADROOM, SLOT_SIZE as HUB_SLOT, slotArena } from '../io/slots.js';
import { IPV4 } from '../packet/ipv4.js';
import type { ReceiveOwner } from './receive-filter.js';
import { ERROR_INFO_STRIDE, type OuterTransport } from './transport.js';

const HUB_BATCH = 64;

/** 6in4: the remote whose packets are the tunnel's, and its prefixes; remote 0: 6to4 or 6rd. */
export type PortRole = ReceiveOwner;

/**
 * The shared transports of one process (or of one test): a hub per key, e.g. local address and
 * path-MTU mode for raw sockets. openTunnel uses `HOST_TRANSPORTS` unless given its own.
 */
export class SharedTransports {
  private readonly hubs = new Map<string, TransportHub>();

  /** A port on the hub for `key`, whose transport `open` makes on first use. */
  attach(key: string, role: PortRole, open: () => OuterTransport): OuterTransport {
    let hub = this.hubs.get(key);
    if (!hub) {
      hub = new TransportHub(open(), () => this.hubs.delete(key));
      this.hubs.set(key, hub);
    }
    return hub.attach(role);
  }

  get size(): number {
    return this.hubs.size;
  }
}

/** The process's registry: every tunnel opened here on one local address shares its transport. */
export const HOST_TRANSPORTS = new SharedTransports();

export class TransportHub {
  private readonly ports: HubPort[] = [];
  private readonly arena = slotArena(HUB_BATCH, HUB_SLOT);
  private readonly lens = new Int32Array(HUB_BATCH);
  private readonly errInfo = new Int32Array(HUB_BATCH * ERROR_INFO_STRIDE);
  private readonly errLens = new Int32Array(HUB_BATCH);
  private readonly errArena = Buffer.alloc(HUB_BATCH * HUB_SLOT);
  private watching = false;
  /** A re-run of pump is queued: the transport held packets its fd will not announce (F2). */
  private again = false;
  private readonly rerun = (): void => {
    this.again = false;
    this.pump(false);
  };

  constructor(
    readonly transport: OuterTransport,
    private readonly onEmpty: () => void,
  ) {}

  attach(role: PortRole): HubPort {
    const port = new HubPort(this, role.remote >>> 0, role);
    this.ports.push(port);
    try {
      this.followOwners();
    } catch (e) {
      this.detach(port);
      throw e;
    }
    return port;
  }

  detach(port: HubPort): void {
    const i = this.ports.indexOf(port);
    if (i >= 0) this.ports.splice(i, 1);
    if (this.ports.length === 0) {
      this.transport.close();
      this.onEmpty();
    } else {
      this.followOwners();
    }
  }

  /** The socket takes what the tunnels on it now may own, no more (receive-filter.ts). */
  private followOwners(): void {
    this.transport.receiveOnlyFor?.(this.ports.map((p) => p.role));
  }

  /** More than one tunnel on this transport: the hub reads and hands packets out. */
  get shared(): boolean {
    return this.ports.length > 1;
  }

  /** A port asks to be told when it may have packets. */
  watchFor(): void {
    if (this.watching) return;
    this.watching = true;
    this.transport.watch((errorQueued) => this.pump(errorQueued));
  }

  /** Which port owns a packet from `src` (or an error about a packet sent to `src`). */
  private owner(src: number): HubPort {
    let fallback: HubPort | null = null;
    for (const p of this.ports) {
      if (p.remote === src) return p;
      if (p.remote === 0 && fallback === null) fallback = p;
    }
    return fallback ?? this.ports[0];
  }

  /**
   * Readiness: with one port it reads for itself; shared, the hub reads and hands out, at most 4
   * batches a wake-up, as the engine does. The error queue is read only when the wake-up may have
   * one (see OuterTransport.watch). What the transport still holds after that (the rest of a UDP
   * GRO burst) no readiness event will announce: the hub runs again before the loop sleeps.
   */
  private pump(errorQueued?: boolean): void {
    if (this.ports.length === 0) return;
    if (!this.shared) {
      this.ports[0].notify(errorQueued);
      return;
    }
    for (let round = 0; round < 4; round++) {
      const e = errorQueued === false ? 0 : this.transport.recvErrors(this.errArena, HUB_SLOT, HUB_HEADROOM, HUB_BATCH, this.errLens, this.errInfo);
      for (let i = 0; i < e; i++) this.owner(this.errInfo[i * ERROR_INFO_STRIDE + 4] >>> 0).pendingErrors.push(i);
      let n = this.transport.recv(this.arena, HUB_SLOT, HUB_HEADROOM, HUB_BATCH, this.lens);
      if (n < 0) n = 0; // an IP_RECVERR report: the errors were read above
      for (let i = 0; i < n; i++) {
        const off = i * HUB_SLOT + HUB_HEADROOM;
        const src = this.lens[i] >= IPV4.HEADER_LEN ? this.arena.readUInt32BE(off + IPV4.SRC) : 0;
        this.owner(src).pending.push(i);
      }
      // every port takes all of its share now: the next round reads into the same arena
      for (const p of this.ports) if (p.pending.length > 0 || p.pendingErrors.length > 0) p.notify();
      for (const p of this.ports) {
        p.pending.length = 0;
        p.pendingErrors.length = 0;
      }
      if (n < HUB_BATCH && e < HUB_BATCH) break;
    }
    if (!this.again && this.transport.holding()) {
      this.again = true;
      setImmediate(this.rerun);
    }
  }

  /** Copies this batch's packets for `port` into the caller's slots. */
  deliver(port: HubPort, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    let k = 0;
    while (k < max && port.cursor < port.pending.length) {
      const i = port.pending[port.cursor++];
      const len = this.lens[i];
      if (len < 0 || len > slotSize - headroom) {
        lens[k++] = -1;
        continue;
      }
      this.arena.copy(arena, k * slotSize + headroom, i * HUB_SLOT + HUB_HEADROOM, i * HUB_SLOT + HUB_HEADROOM + len);
      lens[k++] = len;
    }
    return k;
  }

  deliverErrors(port: HubPort, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number {
    let k = 0;
    while (k < max && port.errCursor < port.pendingErrors.length) {
      const i = port.pendingErrors[port.errCursor++];
      const len = Math.min(this.errLens[i], slotSize - headroom);
      this.errArena.copy(arena, k * slotSize + headroom, i * HUB_SLOT + HUB_HEADROOM, i * HUB_SLOT + HUB_HEADROOM + len);
      lens[k] = len;
      info.set(this.errInfo.subarray(i * ERROR_INFO_STRIDE, (i + 1) * ERROR_INFO_STRIDE), k * ERROR_INFO_STRIDE);
      k++;
    }
    return k;
  }
}

/** One tunnel's view of a shared transport. */
export class HubPort implements OuterTransport {
  readonly pending: number[] = [];
  readonly pendingErrors: number[] = [];
  cursor = 0;
  errCursor = 0;
  private cb: ((errorQueued?: boolean) => void) | null = null;
  private closed = false;

  constructor(
    private readonly hub: TransportHub,
    readonly remote: number,
    readonly role: PortRole,
  ) {}

  /**
   * Calls the tunnel back until it has taken every packet and error the hub set aside for it (its
   * loop takes a bounded number per call); stops early only if a call took nothing (it stopped).
   */
  notify(errorQueued?: boolean): void {
    this.cursor = 0;
    this.errCursor = 0;
    if (!this.hub.shared) {
      this.cb?.(errorQueued); // it reads the transport itself
      return;
    }
    while (this.cb !== null && (this.cursor < this.pending.length || this.errCursor < this.pendingErrors.length)) {
      const taken = this.cursor + this.errCursor;
      this.cb();
      if (this.cursor + this.errCursor === taken) return;
    }
  }

  /**
   * A shared transport's packets are all handed over inside notify(), and the hub runs again for
   * what its transport still holds; a lone port holds what its transport holds.
   */
  holding(): boolean {
    return !this.hub.shared && this.hub.transport.holding();
  }

  recv(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    if (!this.hub.shared) return this.hub.transport.recv(arena, slotSize, headroom, max, lens);
    return this.hub.deliver(this, arena, slotSize, headroom, max, lens);
  }

  recvErrors(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number {
    if (!this.hub.shared) return this.hub.transport.recvErrors(arena, slotSize, headroom, max, lens, info);
    return this.hub.deliverErrors(this, arena, slotSize, headroom, max, lens, info);
  }

  send(arena: Buffer, offs: Int32Array, lens: Int32Array, dsts: Int32Array, fields: Int32Array, n: number, errs: Int32Array): number {
    return this.hub.transport.send(arena, offs, lens, dsts, fields, n, errs);
  }

  watch(cb: (errorQueued?: boolean) => void): void {
    this.cb = cb;
    this.hub.watchFor();
  }

  watchWritable(cb: () => void): void {
    this.hub.transport.watchWritable(cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cb = null;
    this.hub.detach(this);
  }
}
