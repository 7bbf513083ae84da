/** An in-memory TunDevice for tests without root: inject what the kernel would hand us, read what we wrote. */
import { Watchable } from '../io/fake-readiness.js';
import type { TunDevice } from './device.js';

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

  holding(): boolean {
    return false;
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

