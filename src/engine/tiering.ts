/**
 * When V8 compiles the loop with its optimising compilers. By default a function is optimised
 * only after it has run a good while: on Node 20 three ticks of a 66 KiB "interrupt budget" of
 * bytecode executed, plus one tick per 150 bytes of its own bytecode; on Node 22 and later 400
 * calls for Maglev and 3,000 for TurboFan. A forwarder's loop runs once per wake-up, so a tunnel
 * carrying a ping every quarter second ran its packets through baseline code (property loads as
 * inline-cache calls) for its first thousand or so: on a pair of engines, each hop of a round
 * trip took 160–200 µs against 110–120 µs once optimised (perf tracepoints on the TUN and veth,
 * docs/performance.md "The idle round trip"). Smaller thresholds optimise the loop within its
 * first hundred packets. The flags are process-wide; an optimised function deoptimises and
 * re-optimises as usual if later packets take paths the early ones did not.
 */
import { setFlagsFromString } from 'node:v8';

/** Node 20 (V8 11): the interrupt budget, 1/66 of V8's default. */
const BUDGET_FLAGS = ['--interrupt-budget=1024'];
/** Node 22 and later (V8 12+): invocation counts, about 1/30 of V8's defaults. */
const INVOCATION_FLAGS = ['--invocation-count-for-maglev=16', '--invocation-count-for-turbofan=100', '--minimum-invocations-after-ic-update=16'];

let applied: string[] | null = null;

/**
 * Lowers V8's tier-up thresholds for this process, once; returns the flags set (none where the
 * runtime is not V8, or takes no flags at run time: Bun, or Deno refusing them).
 */
export function tierUpEarly(): readonly string[] {
  if (applied) return applied;
  const v8 = process.versions.v8;
  const isNode = typeof process.versions.node === 'string' && !process.versions.bun && !process.versions.deno;
  if (!v8 || !isNode) return (applied = []);
  const major = Number(v8.split('.')[0]);
  const flags = major >= 12 ? INVOCATION_FLAGS : BUDGET_FLAGS;
  try {
    for (const f of flags) setFlagsFromString(f);
    applied = flags;
  } catch {
    applied = [];
  }
  return applied;
}
