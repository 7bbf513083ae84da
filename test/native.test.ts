/**
 * The addon on its own, no root needed: batched TUN-style reads and writes over a FIFO (the
 * calls only read() and write() the fd, as on a TUN), end of batch on EAGAIN, per-packet errors,
 * argument checks, and the lock that owns a control socket.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative } from '../src/io/native.js';
import { MAX_BATCH } from '../src/io/slots.js';

const native = loadNative();
const dir = mkdtempSync(join(tmpdir(), 'tun6in4-native-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fifo(name: string): { r: number; w: number } {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  const r = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const w = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  return { r, w };
}

/** Waits for a condition, a turn of the event loop at a time (bounded). */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !ok(); i++) await new Promise((r) => setTimeout(r, 1));
  expect(ok()).toBe(true);
}

const SLOT = 2048;
const HEAD = 64;

describe('native addon (no root)', () => {
  it('moves at most as many packets per call as the engine sizes its arrays for', () => {
    expect(native.MAX_BATCH).toBe(MAX_BATCH);
  });

  for (const ring of [false, true]) {
    it(`tunWrite writes each packet of a batch, tunRead takes what is there and stops at EAGAIN (${ring ? 'io_uring' : 'read/write'})`, () => {
      const { r, w } = fifo(`rw-${ring}`);
      const arena = Buffer.alloc(4 * SLOT);
      const sizes = [100, 200, 300];
      const offs = Int32Array.from(sizes.map((_, i) => i * SLOT + HEAD));
      const lens = Int32Array.from(sizes);
      sizes.forEach((n, i) => arena.fill(i + 1, offs[i], offs[i] + n));
      const errs = new Int32Array(3);
      expect(native.tunWrite(w, arena, offs, lens, 3, errs, ring)).toBe(3);
      expect([...errs]).toEqual([0, 0, 0]);

      // a FIFO keeps no packet boundaries: the first read takes all 600 bytes, the next finds
      // nothing (EAGAIN), which ends the batch instead of blocking
      const inArena = Buffer.alloc(4 * SLOT);
      const got = new Int32Array(4);
      expect(native.tunRead(r, inArena, SLOT, HEAD, 4, got, ring)).toBe(1);
      expect(got[0]).toBe(600);
      expect(inArena.subarray(HEAD, HEAD + 600)).toEqual(Buffer.concat(sizes.map((n, i) => Buffer.alloc(n, i + 1))));
      expect(native.tunRead(r, inArena, SLOT, HEAD, 4, got, ring)).toBe(0);
      closeSync(r);
      closeSync(w);
    });
  }

  it('a write the fd refuses is reported per packet, with its errno, and counted out of the total', () => {
    const { r, w } = fifo('epipe');
    closeSync(r); // no reader: every write fails with EPIPE (Node ignores SIGPIPE)
    const arena = Buffer.alloc(2 * SLOT);
    const errs = new Int32Array(2);
    expect(native.tunWrite(w, arena, Int32Array.from([HEAD, SLOT + HEAD]), Int32Array.from([40, 40]), 2, errs, false)).toBe(0);
    expect([...errs]).toEqual([osConstants.errno.EPIPE, osConstants.errno.EPIPE]);
    closeSync(w);
  });

  it('a write batch reaching outside the arena or its arrays is refused before anything is written; a read batch is cut to the slots there are', () => {
    const { r, w } = fifo('args');
    const arena = Buffer.alloc(SLOT);
    const errs = new Int32Array(1);
    expect(() => native.tunWrite(w, arena, Int32Array.from([SLOT - 10]), Int32Array.from([100]), 1, errs, false)).toThrow(/slot outside arena/);
    expect(() => native.tunWrite(w, arena, Int32Array.from([0]), Int32Array.from([10]), 5, errs, false)).toThrow(TypeError); // n beyond the arrays
    expect(() => readSync(r, Buffer.alloc(1), 0, 1, null)).toThrow(/EAGAIN/); // nothing was written
    writeSync(w, Buffer.alloc(10, 7));
    const lens = new Int32Array(4);
    expect(native.tunRead(r, arena, SLOT, HEAD, 4, lens, false)).toBe(1); // one slot fits the arena
    expect(lens[0]).toBe(10);
    closeSync(r);
    closeSync(w);
  });

  it('a negative batch size is refused, not clamped into a huge one', () => {
    const { r, w } = fifo('negative');
    const lens = new Int32Array(4);
    expect(() => native.tunRead(r, Buffer.alloc(4 * SLOT), SLOT, HEAD, -1, lens, false)).toThrow(TypeError);
    expect(() => native.rawRecv(r, Buffer.alloc(4 * SLOT), SLOT, HEAD, -5, lens)).toThrow(TypeError);
    closeSync(r);
    closeSync(w);
  });

  it('F1: one poll handle per fd serves reading and writing at once (libuv refuses a second)', async () => {
    const { r, w } = fifo('poll');
    const seen: number[] = [];
    const poller = new native.Poller(w, (ev) => seen.push(ev));
    poller.start(native.POLL_WRITABLE);
    await until(() => seen.length > 0);
    expect(seen[0] & native.POLL_WRITABLE).toBe(native.POLL_WRITABLE);
    poller.start(native.POLL_READABLE | native.POLL_WRITABLE); // a new mask on the same handle
    expect(() => new native.Poller(w, () => undefined)).toThrow(/uv_poll_init/); // what the old second handle met
    poller.close();
    closeSync(r);
    closeSync(w);
  });

  it('F4: a send right after an ICMP error about an earlier one is not failed by that report (UDP, IP_RECVERR)', async () => {
    const lo = 0x7f000001;
    const { fd } = native.openUdpSocket(lo, 0, 0, 1 << 20, true, false);
    const sink = createSocket('udp4');
    await new Promise<void>((res) => sink.bind(0, '127.0.0.1', () => res()));
    const got: Buffer[] = [];
    sink.on('message', (m) => got.push(m));
    const closed = createSocket('udp4');
    await new Promise<void>((res) => closed.bind(0, '127.0.0.1', () => res()));
    const closedPort = closed.address().port;
    await new Promise<void>((res) => closed.close(() => res()));
    // a datagram to a closed port: the kernel answers port unreachable, which the socket keeps
    // in its error queue and, as a pending error, for its next send
    let reported = false;
    const poller = new native.Poller(fd, (ev) => {
      if (ev < 0) reported = true;
    });
    poller.start(native.POLL_READABLE);
    const arena = Buffer.alloc(SLOT);
    arena.write('first', HEAD);
    const errs = new Int32Array(1);
    const one = (port: number) => native.sendBatch(fd, arena, Int32Array.from([HEAD]), Int32Array.from([5]), 1, errs, Int32Array.from([lo]), Int32Array.from([64]), port);
    expect(one(closedPort)).toBe(1);
    await until(() => reported);
    poller.close();
    expect(one(sink.address().port)).toBe(1);
    expect(errs[0]).toBe(0);
    await until(() => got.length === 1);
    sink.close();
    closeSync(fd);
  });

  it('lockFile: a second holder is turned away until the first lets go', () => {
    const path = join(dir, 'x.lock');
    const a = native.lockFile(path);
    expect(a).toBeGreaterThanOrEqual(0);
    expect(native.lockFile(path)).toBe(-1);
    closeSync(a);
    const b = native.lockFile(path);
    expect(b).toBeGreaterThanOrEqual(0);
    writeSync(b, 'x');
    closeSync(b);
  });
});
