import { defineConfig } from 'vitest/config';

// Deadlines for a loaded machine, not measurements: CI runs the namespace suites (labs, a booted
// systemd, dockerd) two files at a time on two cores, where a CLI start that takes 1 s alone took
// 6–9 s. No test waits on time; a test that hangs still fails, at these limits.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
