/**
 * scripts/setup.sh installs a set per job: `npm run lab` (`setup.sh lab`) gets what the lab runs,
 * plus the toolchain only when that run compiles something; `npm test` (no argument) gets
 * everything the suites use. Run against a copy of the script with apt-get, dpkg-query, npm and
 * sudo replaced by stubs that record what they were asked, so nothing is installed.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const SETUP = fileURLToPath(new URL('../scripts/setup.sh', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 't6-setup-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const STUBS: Record<string, string> = {
  // nothing is installed
  'dpkg-query': 'exit 1',
  'apt-get': 'echo "apt-get $*" >> "$LOG"',
  npm: 'echo "npm $*" >> "$LOG"',
  sudo: 'shift; exec "$@"',
};

/** Runs setup.sh [set] in a checkout of the given shape; returns the commands it ran. */
function setup(args: string[], checkout: { installed: boolean }): { code: number | null; stderr: string; ran: string[] } {
  const dir = mkdtempSync(join(scratch, 'checkout-'));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(SETUP, join(dir, 'scripts/setup.sh'));
  writeFileSync(join(dir, 'package-lock.json'), '{}');
  if (checkout.installed) {
    mkdirSync(join(dir, 'node_modules'));
    writeFileSync(join(dir, 'node_modules/.package-lock.json'), '{}');
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'node_modules/.package-lock.json'), later, later);
  }
  const bin = join(dir, 'stubs');
  mkdirSync(bin);
  for (const [name, body] of Object.entries(STUBS)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const log = join(dir, 'ran.log');
  const r = spawnSync('bash', [join(dir, 'scripts/setup.sh'), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, LOG: log },
  });
  return { code: r.status, stderr: r.stderr, ran: existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [] };
}

const installed = (ran: string[]) => ran.find((l) => l.startsWith('apt-get install'))?.split(' ').filter((w) => !w.startsWith('-')).slice(2) ?? [];

describe('scripts/setup.sh', () => {
  it('lab, already installed: only what the lab runs (ip, ping, sysctl; nft and openssl for the broker lab), no npm ci', () => {
    const r = setup(['lab'], { installed: true });
    expect(r.code, r.stderr).toBe(0);
    expect(installed(r.ran)).toEqual(['iproute2', 'iputils-ping', 'procps', 'nftables', 'openssl']);
    expect(r.ran.some((l) => l.startsWith('npm ci'))).toBe(false);
  });

  it('lab in a fresh clone: adds the toolchain npm ci compiles with, then runs npm ci', () => {
    const r = setup(['lab'], { installed: false });
    expect(r.code, r.stderr).toBe(0);
    expect(installed(r.ran)).toEqual(['iproute2', 'iputils-ping', 'procps', 'nftables', 'openssl', 'build-essential', 'python3', 'libpcap-dev']);
    expect(r.ran).toContain('npm ci --no-audit --no-fund');
  });

  it('no argument (npm test): everything the suites use, docker.io and debootstrap among them', () => {
    const r = setup([], { installed: true });
    expect(r.code, r.stderr).toBe(0);
    const all = installed(r.ran);
    expect(all).toEqual(expect.arrayContaining(['iproute2', 'iputils-ping', 'build-essential', 'docker.io', 'debootstrap', 'tshark']));
    expect(all.length).toBeGreaterThan(15);
  });

  it('an unknown set exits 2 naming the sets it has', () => {
    const r = setup(['labb'], { installed: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('setup: unknown set "labb"; use lab, bench, or none (everything npm test needs)\n');
    expect(r.ran).toEqual([]);
  });
});
