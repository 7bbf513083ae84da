/**
 * Waiting for work in flight to be done, and moving a batch through a TUN device as the engine
 * does: what the suites used to write each for itself.
 */
import { SLOT_HEADROOM, SLOT_SIZE } from '../../src/io/slots.js';
import type { FakeTransport, FakeTun } from '../../src/testing.js';
import type { OffloadTun } from '../../src/tun/offload.js';
import { batchOver } from './batch.js';
import { testArena } from './packets.js';

/** Resolves once the engine has taken everything injected into these fakes (and so handled it). */
export function settle(...fakes: Array<FakeTun | FakeTransport>): Promise<unknown> {
  return Promise.all(fakes.map((f) => f.drained()));
}

/**
 * Resolves once `done()` holds, checked after each round of I/O; gives up (resolves) after
 * `limitMs`, so the caller reports what it saw. For real sockets, whose arrivals nothing announces.
 */
export async function settleWhen(done: () => boolean, limitMs: number): Promise<void> {
  const end = Date.now() + limitMs;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}

/** Reads everything the device has, `batch` slots at a time, as the engine does. */
export function readAll(dev: OffloadTun, batch: number): Buffer[] {
  const b = batchOver(testArena(batch * SLOT_SIZE), SLOT_SIZE, SLOT_HEADROOM);
  const { arena, lens } = b;
  const out: Buffer[] = [];
  for (;;) {
    const n = dev.read(b, batch);
    for (let i = 0; i < n; i++) out.push(Buffer.from(arena.subarray(i * SLOT_SIZE + SLOT_HEADROOM, i * SLOT_SIZE + SLOT_HEADROOM + lens[i])));
    if (n === 0) return out;
  }
}

/** Writes packets as the engine does (each in a slot with headroom); returns the frames the device got. */
export function writeAll(dev: OffloadTun, fake: FakeTun, pkts: Buffer[]): { frames: Buffer[]; errs: number[]; written: number } {
  const arena = testArena(pkts.length * 2048 + 64);
  const offs = new Int32Array(pkts.length);
  const lens = new Int32Array(pkts.length);
  pkts.forEach((p, i) => {
    offs[i] = i * 2048 + 64;
    lens[i] = p.length;
    p.copy(arena, offs[i]);
  });
  const b = batchOver(arena, 2048, 64, { offs, lens });
  b.errs.fill(-1);
  const written = dev.write(b, pkts.length);
  return { frames: fake.written.splice(0), errs: [...b.errs.subarray(0, pkts.length)], written };
}
