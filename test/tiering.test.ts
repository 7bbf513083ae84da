/** tierUpEarly: the engine's loop is optimised within its first packets, not its first thousand. */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const probe = fileURLToPath(new URL('./helpers/tier-probe.ts', import.meta.url));
const run = (mode: 'early' | 'default', calls: number) =>
  JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--allow-natives-syntax', '--no-concurrent-recompilation', probe, mode, String(calls)], { encoding: 'utf8' })) as { flags: string[]; optimized: boolean };

describe('tierUpEarly', () => {
  it('a function called 300 times is optimised after tierUpEarly() and not with V8\'s defaults', () => {
    const early = run('early', 300);
    expect(early.flags.length).toBeGreaterThan(0);
    expect(early.optimized).toBe(true);
    expect(run('default', 300).optimized).toBe(false);
  });
});
