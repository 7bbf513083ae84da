/**
 * An in-memory OuterTransport (the TUN's is `tun/fake.ts`), so the whole engine runs in unit tests
 * without root: inject what the kernel would deliver, queue ICMP error reports, refuse or hold
 * sends (errno, a full buffer), and read back each packet as the kernel would have put it on the
 * wire. Copies are fine here: this is the test double, not the data path.
 */
import type { PacketBatch } from '../io/batch.js';
import { PROTO_IPV6, writeIpv4Header, IPV4 } from '../packet/ipv4.js';
import { constants as osConstants } from 'node:os';
import { Watchable } from '../io/fake-readiness.js';
import { ErrorOrigin, ERROR_INFO_STRIDE, type OuterTransport } from './transport.js';

const { EAGAIN } = osConstants.errno;

export interface SentPacket {
  /**
   * The protocol-41 packet as the kernel would put it on the wire: an IPv4 header (no options)
   * from the transport's local address with the destination, TTL, TOS and DF we passed, the
   * Identification counting up from 1, then the inner packet.
   */
  bytes: Buffer;
  /** Outer destination as an unsigned number. */
  dst: number;
  /** The inner IPv6 packet as handed to send. */
  inner: Buffer;
  /** The packOuterFields value passed with it. */
  fields: number;
}

export interface QueuedError {
  origin: number;
  type: number;
  code: number;
  info: number;
  originalDst: number;
  errno: number;
  /** What the kernel keeps: the offending packet past its IPv4 header. */
  quoted: Buffer;
}

export class FakeTransport extends Watchable implements OuterTransport {
  readonly inbound: Buffer[] = [];
  private ipId = 0;

  /** `local`: the IPv4 source the kernel would put on what we send (unsigned or `| 0`). */
  constructor(readonly local = 0) {
    super();
  }

  readonly errors: QueuedError[] = [];
  readonly sent: SentPacket[] = [];
  /** errno to fail each send with, in order (0 = succeed); empty: always succeed. */
  readonly sendFailures: number[] = [];
  /** Room left in the "socket buffer": null = unlimited; at 0 every send meets EAGAIN until makeWritable(). */
  room: number | null = null;
  private writableCbs: Array<() => void> = [];

  inject(...pkts: Buffer[]): void {
    this.inbound.push(...pkts);
    this.kick();
  }

  injectError(e: Omit<QueuedError, 'origin' | 'errno'> & Partial<Pick<QueuedError, 'origin' | 'errno'>>): void {
    this.errors.push({ origin: ErrorOrigin.Icmp, errno: 0, ...e });
    this.kick();
  }

  holding(): boolean {
    return false;
  }

  protected pending(): boolean {
    return this.inbound.length > 0 || this.errors.length > 0;
  }

  protected override errorQueued(): boolean {
    return this.errors.length > 0;
  }

  /** How many times the error queue was read (each a syscall on a real socket). */
  errorQueueReads = 0;

  recv(b: PacketBatch, max: number): number {
    let n = 0;
    while (n < max && this.inbound.length > 0) {
      const p = this.inbound.shift()!;
      if (p.length > b.slotSize - b.headroom) {
        b.lens[n++] = -1;
        continue;
      }
      p.copy(b.arena, b.slot(n));
      b.lens[n++] = p.length;
    }
    return n;
  }

  watchWritable(cb: () => void): void {
    this.writableCbs.push(cb);
  }

  /** The buffer drained: `room` more packets (default unlimited), and whoever waits to write is told. */
  makeWritable(room: number | null = null): void {
    this.room = room;
    const cbs = this.writableCbs.splice(0);
    setImmediate(() => cbs.forEach((f) => f()));
  }

  recvErrors(b: PacketBatch, max: number): number {
    this.errorQueueReads++;
    let n = 0;
    while (n < max && this.errors.length > 0) {
      const e = this.errors.shift()!;
      e.quoted.copy(b.arena, b.slot(n));
      b.lens[n] = e.quoted.length;
      b.info.set([e.origin, e.type, e.code, e.info, e.originalDst | 0, e.errno], n * ERROR_INFO_STRIDE);
      n++;
    }
    return n;
  }

  send(b: PacketBatch, n: number): number {
    const { arena, offs, lens, dsts, fields, errs } = b;
    let ok = 0;
    for (let i = 0; i < n; i++) {
      if (this.room === 0) {
        // full, as a kernel socket: the rest of the batch is EAGAIN, in order
        for (let j = i; j < n; j++) errs[j] = EAGAIN;
        return ok;
      }
      const fail = this.sendFailures.length > 0 ? this.sendFailures.shift()! : 0;
      errs[i] = fail;
      if (fail) continue;
      if (this.room !== null) this.room--;
      const inner = Buffer.from(arena.subarray(offs[i], offs[i] + lens[i]));
      const bytes = Buffer.alloc(IPV4.HEADER_LEN + inner.length);
      this.ipId = (this.ipId + 1) & 0xffff;
      writeIpv4Header(bytes, 0, fields[i], bytes.length, this.ipId, PROTO_IPV6, this.local, dsts[i]);
      inner.copy(bytes, IPV4.HEADER_LEN);
      this.sent.push({ bytes, dst: dsts[i] >>> 0, inner, fields: fields[i] });
      ok++;
    }
    return ok;
  }
}
