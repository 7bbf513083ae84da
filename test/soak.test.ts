/** The CI-sized soak (60 s); `npm run soak -- --seconds 600` is the documented long run. */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../bench/soak.js';
import { rootOrSkip } from './helpers/netlab.js';

const canRun = rootOrSkip();

/** Stated bounds: after warm-up, each engine grows by less than 16 MiB and opens no fd. */
const RSS_GROWTH_BOUND_KB = 16 * 1024;

describe.runIf(canRun)('soak', () => {
  it('60 s of mixed traffic: every transfer intact, memory and fds bounded', async () => {
    const r = await runSoak(60);
    expect(r.transfers).toBeGreaterThan(4);
    expect(r.transfersIntact).toBe(r.transfers);
    for (const k of ['client', 'broker'] as const) {
      expect(r.growth[k].rssKb).toBeLessThan(RSS_GROWTH_BOUND_KB);
      expect(r.growth[k].fds).toBe(0);
    }
  }, 180_000);
});
