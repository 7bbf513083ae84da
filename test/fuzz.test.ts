/** The CI-sized fuzz run (the long one is `npm run fuzz -- --inputs 10000000`). */
import { describe, expect, it } from 'vitest';
import { fuzz } from './fuzz/harness.js';

describe('fuzzing decapsulation, encapsulation and ICMP handling', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: 100k mutated inputs, no exception, one counted outcome each, well-formed output`, () => {
      const s = fuzz(100_000, seed);
      expect(s.failures).toEqual([]);
      // the generator reaches the interesting paths, not just the first length check
      expect(s.outcomes.forward).toBeGreaterThan(1000);
      expect(s.outcomes.reply).toBeGreaterThan(100);
      expect(s.outcomes.consumed).toBeGreaterThan(100);
      const reasons = Object.entries(s.drops).filter(([, v]) => v > 0).map(([k]) => k);
      expect(reasons).toEqual(expect.arrayContaining(['rx_6to4_spoofed_source', 'icmp4_malformed', 'tx_too_big', 'rx_ipv4_fragment', 'rx_bad_ipv4_checksum']));
      expect(s.trimmed).toBeGreaterThan(0); // trailing bytes after the inner packet (forwarded, trimmed)
    }, 60_000);
  }
});
