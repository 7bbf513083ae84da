/** An in-memory TunDevice for tests without root: inject what the kernel would hand us, read what we wrote. */
import type { PacketBatch } from '../io/batch.js';
import { Watchable } from '../io/fake-readiness.js';
import type { TunDevice } from './device.js';

export class FakeTun extends Watchable implements TunDevice {
  readonly name = 'fake0';
  /** Packets the kernel side hands us (waiting to be read). */
  readonly inbound: Buffer[] = [];
  /** Packets we wrote toward the kernel side. */
  readonly written: Buffer[] = [];

  /**
   * `gather: false` makes a device without writeFrames, as a TUN over an addon that predates
   * it: an OffloadTun over it copies merged frames together instead.
   */
  constructor(options: { gather?: boolean } = {}) {
    super();
    if (options.gather !== false) {
      this.writeFrames = (b, entries, pieces) => {
        let e = 0;
        let f = 0;
        while (e < entries && pieces[f] > 0) {
          const parts: Buffer[] = [];
          for (const end = e + pieces[f]; e < end; e++) parts.push(b.arena.subarray(b.offs[e], b.offs[e] + b.lens[e]));
          this.written.push(Buffer.concat(parts));
          b.errs[f++] = 0;
        }
        return f;
      };
    }
  }

  writeFrames?: (b: PacketBatch, entries: number, pieces: Int32Array) => number;

  inject(...pkts: Buffer[]): void {
    this.inbound.push(...pkts);
    this.kick();
  }

  holding(): boolean {
    return false;
  }

  protected pending(): boolean {
    return this.inbound.length > 0;
  }

  read(b: PacketBatch, max: number): number {
    let n = 0;
    const room = b.slotSize - b.headroom;
    while (n < max && this.inbound.length > 0) {
      const p = this.inbound.shift()!;
      p.copy(b.arena, b.slot(n), 0, Math.min(p.length, room));
      b.lens[n++] = Math.min(p.length, room);
    }
    return n;
  }

  write(b: PacketBatch, n: number): number {
    for (let i = 0; i < n; i++) {
      this.written.push(Buffer.from(b.arena.subarray(b.offs[i], b.offs[i] + b.lens[i])));
      b.errs[i] = 0;
    }
    return n;
  }
}

