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
