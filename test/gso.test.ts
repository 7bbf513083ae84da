/** Which packets share a UDP GSO message: the decision, over plain arrays (no socket, no root). */
import { describe, expect, it } from 'vitest';
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS, gsoRuns } from '../src/transport/gso.js';

function runsOf(lens: number[], dsts?: number[], fields?: number[]): number[] {
  const n = lens.length;
  const out = new Int32Array(Math.max(1, n));
  const k = gsoRuns(Int32Array.from(lens), Int32Array.from(dsts ?? lens.map(() => 1)), Int32Array.from(fields ?? lens.map(() => 64)), n, out);
  return [...out.subarray(0, k)];
}

describe('FOU-5: UDP GSO runs', () => {
  it('equal sizes to one peer form one run; a shorter packet ends it', () => {
    expect(runsOf([1400, 1400, 1400, 600, 1400])).toEqual([4, 1]);
  });

  it('a larger packet, another destination or other outer fields start a new run', () => {
    expect(runsOf([600, 1400, 1400])).toEqual([1, 2]);
    expect(runsOf([1400, 1400, 1400], [1, 1, 2])).toEqual([2, 1]);
    expect(runsOf([1400, 1400, 1400], [1, 1, 1], [64, 0x10040, 0x10040])).toEqual([1, 2]);
  });

  it(`at most ${GSO_MAX_SEGMENTS} segments and ${GSO_MAX_BYTES} bytes a message, never an empty packet in a run`, () => {
    expect(runsOf(Array(130).fill(100))).toEqual([64, 64, 2]);
    // 1,472-byte segments: 44 fit 65,507 bytes
    expect(runsOf(Array(50).fill(1472))).toEqual([44, 6]);
    expect(runsOf([1400, 0, 1400])).toEqual([1, 1, 1]);
  });

  it('covers every packet exactly once, in order', () => {
    const lens = Array.from({ length: 256 }, (_, i) => (i % 7 === 3 ? 500 : 1200));
    const runs = runsOf(lens);
    expect(runs.reduce((a, b) => a + b, 0)).toBe(256);
    expect(runs.every((r) => r >= 1 && r <= GSO_MAX_SEGMENTS)).toBe(true);
  });
});
