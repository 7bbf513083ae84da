/**
 * In-memory TunDevice and TunnelSocket, so the whole engine runs in unit tests without root.
 * Copies are fine here: this is the test double, not the data path.
 */
import { ErrorOrigin, ERROR_INFO_STRIDE, type TunDevice, type TunnelSocket } from './types.js';

abstract class Watchable {
  private cb: (() => void) | null = null;
  private scheduled = false;
  closed = false;
  watch(cb: () => void): void {
    this.cb = cb;
    this.kick();
  }
  /** Like a level-triggered poller: calls back (once, soon) while something is waiting. */
  protected kick(): void {
    if (this.scheduled || !this.cb || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.cb && !this.closed && this.pending()) {
        this.cb();
        if (this.pending()) this.kick();
      }
    });
  }
  protected abstract pending(): boolean;

  /**
   * Resolves once the engine has taken everything injected. The engine handles what it takes
   * before its callback returns, so its output is complete then too: wait on this, not on time.
   */
  async drained(): Promise<void> {
    while (this.scheduled || (this.cb && !this.closed && this.pending())) await new Promise((r) => setImmediate(r));
  }

  close(): void {
    this.closed = true;
  }
}

export class FakeTun extends Watchable implements TunDevice {
  readonly name = 'fake0';
  /** Packets the kernel side hands us (waiting to be read). */
  readonly inbound: Buffer[] = [];
  /** Packets we wrote toward the kernel side. */
  readonly written: Buffer[] = [];

  inject(...pkts: Buffer[]): void {
    this.inbound.push(...pkts);
    this.kick();
  }

  protected pending(): boolean {
    return this.inbound.length > 0;
  }

  read(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    let n = 0;
    while (n < max && this.inbound.length > 0) {
      const p = this.inbound.shift()!;
      p.copy(arena, n * slotSize + headroom, 0, Math.min(p.length, slotSize - headroom));
      lens[n++] = Math.min(p.length, slotSize - headroom);
    }
    return n;
  }

  write(arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number {
    for (let i = 0; i < n; i++) {
      this.written.push(Buffer.from(arena.subarray(offs[i], offs[i] + lens[i])));
      errs[i] = 0;
    }
    return n;
  }
}

export interface SentPacket {
  /** The outer packet exactly as handed to send (header included). */
  bytes: Buffer;
  dst: number;
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

export class FakeSocket extends Watchable implements TunnelSocket {
  readonly inbound: Buffer[] = [];
  readonly errors: QueuedError[] = [];
  readonly sent: SentPacket[] = [];
  /** errno to fail each send with, in order (0 = succeed); empty: always succeed. */
  readonly sendFailures: number[] = [];

  inject(...pkts: Buffer[]): void {
    this.inbound.push(...pkts);
    this.kick();
  }

  injectError(e: Omit<QueuedError, 'origin' | 'errno'> & Partial<Pick<QueuedError, 'origin' | 'errno'>>): void {
    this.errors.push({ origin: ErrorOrigin.Icmp, errno: 0, ...e });
    this.kick();
  }

  protected pending(): boolean {
    return this.inbound.length > 0 || this.errors.length > 0;
  }

  recv(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    let n = 0;
    while (n < max && this.inbound.length > 0) {
      const p = this.inbound.shift()!;
      if (p.length > slotSize - headroom) {
        lens[n++] = -1;
        continue;
      }
      p.copy(arena, n * slotSize + headroom);
      lens[n++] = p.length;
    }
    return n;
  }

  recvErrors(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number {
    let n = 0;
    while (n < max && this.errors.length > 0) {
      const e = this.errors.shift()!;
      e.quoted.copy(arena, n * slotSize + headroom);
      lens[n] = e.quoted.length;
      info.set([e.origin, e.type, e.code, e.info, e.originalDst | 0, e.errno], n * ERROR_INFO_STRIDE);
      n++;
    }
    return n;
  }

  send(arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const fail = this.sendFailures.length > 0 ? this.sendFailures.shift()! : 0;
      errs[i] = fail;
      if (fail) continue;
      const bytes = Buffer.from(arena.subarray(offs[i], offs[i] + lens[i]));
      this.sent.push({ bytes, dst: bytes.readUInt32BE(16) });
      ok++;
    }
    return ok;
  }
}
