import { readdirSync, readFileSync } from 'node:fs';
import { configDefaults, defineConfig } from 'vitest/config';

// Two projects, so a run without root says what it covered: `unprivileged` needs nothing
// (`npx vitest run --project unprivileged` runs all of it as any user), `needs-root` holds every
// suite with a part that needs root (namespaces, TUN, raw sockets). A suite needs root when it asks
// `rootOrSkip` (test/helpers/netlab.ts), read here from the files themselves so a new suite cannot
// land in the wrong project; those parts skip only without root and without CI.
const TEST_DIR = new URL('./test/', import.meta.url);
const NEEDS_ROOT = readdirSync(TEST_DIR)
  .filter((f) => f.endsWith('.test.ts') && /\brootOrSkip\(/.test(readFileSync(new URL(f, TEST_DIR), 'utf8')))
  .map((f) => `test/${f}`);

// Deadlines for a loaded machine, not measurements: CI runs the namespace suites (labs, a booted
// systemd, dockerd) two files at a time on two cores, where a CLI start that takes 1 s alone took
// 6–9 s. No test waits on time; a test that hangs still fails, at these limits.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'unprivileged', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...NEEDS_ROOT] } },
      { extends: true, test: { name: 'needs-root', include: NEEDS_ROOT } },
    ],
  },
});
