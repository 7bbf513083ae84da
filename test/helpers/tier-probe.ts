/**
 * Run as its own process (test/tiering.test.ts): calls one straight-line function `calls` times,
 * after tierUpEarly() when asked, and prints whether V8 optimised it. Needs
 * --allow-natives-syntax (read through the `%` call below, built at run time so this file still
 * parses as TypeScript) and --no-concurrent-recompilation (the compile finishes before the answer).
 */
import { tierUpEarly } from '../../src/engine/tiering.js';

const [mode, calls] = [process.argv[2], Number(process.argv[3])];
const flags = mode === 'early' ? tierUpEarly() : [];
function work(a: Int32Array, i: number): number {
  const x = a[i & 7] + a[(i + 1) & 7] * 3;
  const y = (x ^ a[(i + 2) & 7]) | 0;
  const z = y > 100 ? y - a[(i + 3) & 7] : y + a[(i + 4) & 7];
  a[(i + 5) & 7] = (z + x + y) & 0xffff;
  a[(i + 6) & 7] = (a[(i + 6) & 7] + z * 7) & 0xffff;
  return a[(i + 7) & 7] + z;
}
const a = new Int32Array(8).fill(3);
let s = 0;
for (let i = 0; i < calls; i++) s += work(a, i);
const status = new Function('f', 'return %GetOptimizationStatus(f)') as (f: unknown) => number;
// optimised: bit 4 (kOptimized), 5 (kMaglevved) or 6 (kTurboFanned); V8 12+ sets only the
// last two for a function Maglev or TurboFan compiled
console.log(JSON.stringify({ flags, optimized: (status(work) & 0x70) !== 0, status: status(work), s }));
