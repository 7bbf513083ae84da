/**
 * Packet arenas (src/packet/arena.ts): the embedded WebAssembly is the assembled checksum-simd.wat,
 * this Node runs it, and a checksum over a packet in an arena equals RFC 1071's byte-pair sum at
 * any alignment and length, the largest packets and all-ones words (the most carries) included.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import wabtInit from 'wabt';
import { describe, expect, it } from 'vitest';
import { arenaSum, packetArena, simdArenas, SUM_WASM_BYTES } from '../src/packet/arena.js';
import { checksum, fold, sum16 } from '../src/packet/checksum.js';
import { refChecksum, refSum } from './helpers/packets.js';

describe('packet arenas', () => {
  it('embed checksum-simd.wat as assembled by wabt', async () => {
    const wabt = await wabtInit();
    const path = new URL('../src/packet/checksum-simd.wat', import.meta.url);
    const mod = wabt.parseWat('checksum-simd.wat', readFileSync(path, 'utf8'), { simd: true });
    expect(Buffer.from(mod.toBinary({}).buffer).toString('base64')).toBe(Buffer.from(SUM_WASM_BYTES).toString('base64'));
    mod.destroy();
  });

  it('are WebAssembly memories on this Node (the embedded module validates), plain Buffers are not', () => {
    expect(simdArenas).toBe(true);
    const arena = packetArena(100_000);
    expect(arena.length).toBe(100_000);
    expect(arena.every((b) => b === 0)).toBe(true);
    expect(arenaSum(arena)).not.toBeNull();
    expect(arenaSum(arena.subarray(4000))).not.toBeNull();
    expect(arenaSum(Buffer.alloc(100_000))).toBeNull();
  });

  const arena = packetArena(3 * 65536);
  it('sum a packet in them as RFC 1071 does, at any alignment, length and initial sum', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 3000, size: 'max' }),
        fc.integer({ min: 0, max: 65536 }),
        fc.integer({ min: 0, max: 0xfffff }),
        fc.constantFrom(0x00, 0xa5, 0xff),
        (bytes, off, initial, around) => {
          arena.fill(around, 0, off + bytes.length + 64);
          arena.set(bytes, off);
          expect(fold(sum16(arena, off, bytes.length, initial))).toBe(fold(initial + refSum(bytes)));
          // through a view of the arena too, as the coalescers' subarrays are
          const view = arena.subarray(off & ~7);
          expect(checksum(view, off & 7, bytes.length)).toBe(refChecksum(Buffer.from(bytes)));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('sum the largest packet of all-ones and of random bytes (lane carries) as RFC 1071 does', () => {
    for (const fill of ['ones', 'random'] as const) {
      for (const len of [65535 + 40, 65536 + 64, 128, 159, 160, 161]) {
        const bytes = fill === 'ones' ? new Uint8Array(len).fill(0xff) : Uint8Array.from({ length: len }, (_, i) => (i * 131 + 7) & 0xff);
        for (const off of [0, 1, 3, 64]) {
          arena.set(bytes, off);
          expect(fold(sum16(arena, off, len, 0))).toBe(fold(refSum(bytes)));
        }
      }
    }
  });
});
