/**
 * The committed prebuilt binaries (native/prebuilds, made by `npm run build:prebuilds`): built
 * from the sources as they are now, loadable on old glibc, no shared liburing, and the arm64
 * one actually working (under qemu-user, see scripts/verify-arm64.sh).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script shared with the prebuild, no declarations
import { nativeSourcesHash } from '../scripts/native-sources.mjs';
import { rootOrSkip } from './helpers/netlab.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const manifest = JSON.parse(readFileSync(`${ROOT}native/prebuilds/MANIFEST.json`, 'utf8')) as {
  sources: string;
  binaries: Record<string, { sha256: string }>;
};
const MACHINE: Record<string, RegExp> = { 'linux-x64': /X86-64/, 'linux-arm64': /AArch64/ };
/** glibc 2.28 (Debian 10, RHEL 8, Ubuntu 18.10): the oldest we promise. */
const GLIBC_CEILING = [2, 28];
/** libstdc++ of GCC 6 (GLIBCXX_3.4.22, std::thread's): the README's floor. */
const GLIBCXX_CEILING = 22;

function newestGlibc(file: string): number[] {
  const syms = execFileSync('readelf', ['-W', '--dyn-syms', file], { encoding: 'utf8' });
  const versions = [...syms.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  return versions.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a), [0, 0]);
}

describe('prebuilt binaries', () => {
  it('were built from the native sources as they are now (else run npm run build:prebuilds and commit)', () => {
    expect(manifest.sources).toBe(nativeSourcesHash());
  });

  for (const [tuple, machine] of Object.entries(MACHINE)) {
    const rel = `${tuple}/tun6in4_native.napi.glibc.node`;
    const file = `${ROOT}native/prebuilds/${rel}`;
    it(`${tuple}: the manifest's binary, for the right machine, glibc <= ${GLIBC_CEILING.join('.')}, GLIBCXX <= 3.4.${GLIBCXX_CEILING}, liburing linked in`, () => {
      expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(manifest.binaries[rel]?.sha256);
      expect(execFileSync('readelf', ['-h', file], { encoding: 'utf8' })).toMatch(machine);
      const [major, minor] = newestGlibc(file);
      expect(major * 1000 + minor).toBeLessThanOrEqual(GLIBC_CEILING[0] * 1000 + GLIBC_CEILING[1]);
      const syms = execFileSync('readelf', ['-W', '--dyn-syms', file], { encoding: 'utf8' });
      const cxx = Math.max(0, ...[...syms.matchAll(/GLIBCXX_3\.4\.(\d+)/g)].map((m) => Number(m[1])));
      expect(cxx, 'a newer libstdc++ symbol would raise the floor the README promises').toBeLessThanOrEqual(GLIBCXX_CEILING);
      const needed = execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
      expect(needed).not.toMatch(/liburing/);
      expect(needed).toMatch(/Shared library: \[libc\.so\.6\]/);
    });
  }

  it('as root: the arm64 prebuild from the tarball loads under qemu-user and forwards 6in4 with an x64 engine', () => {
    if (!rootOrSkip()) return;
    const out = execFileSync('bash', [`${ROOT}scripts/verify-arm64.sh`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 540_000 });
    expect(out).toMatch(/loaded native\/prebuilds\/linux-arm64\/tun6in4_native\.napi\.glibc\.node \| MAX_BATCH 256 \| io_uring compiled in: true/);
    expect(out.match(/3 packets transmitted, 3 received/g)).toHaveLength(2);
    expect(out).toMatch(/verify-arm64: OK/);
  }, 600_000);
});
