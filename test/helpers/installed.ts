/**
 * The package as a user installs it: this checkout packed (scripts/pack.sh, from a copy, so the
 * checkout's dist/ is left alone) and the tarball installed into a fresh project with install
 * scripts off. Also how tests run the CLI as another user: that user may not be able to read
 * the checkout (a clone under /root is 0700), but it can read an installed copy made readable.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Packed {
  tarball: string;
  /** Paths inside the tarball, without its `package/` prefix. */
  contents: string[];
}

export function packTarball(dir: string): Packed {
  const tarball = execFileSync('bash', [join(ROOT, 'scripts/pack.sh'), join(dir, 'pack')], { encoding: 'utf8' }).trim();
  const contents = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
  return { tarball, contents };
}

/**
 * `npm install <tarball>` into a new project at `project` with scripts off. `offline`: npm may
 * not touch the network at all (each dependency's registry metadata must already be cached).
 */
export function installTarball(tarball: string, project: string, o: { offline?: boolean; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), '{"name":"user-project","version":"1.0.0","private":true}');
  return spawnSync('npm', ['install', o.offline ? '--offline' : '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], {
    cwd: project,
    env: o.env ?? process.env,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

export interface InstalledCopy {
  /** `node <bin> …` runs the installed `tun6in4` command. */
  bin: string;
  remove(): void;
}

/** Packs and installs into a temporary directory every user can read and search. */
export function installForAnyUser(): InstalledCopy {
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-installed-'));
  chmodSync(dir, 0o755);
  const { tarball } = packTarball(dir);
  const r = installTarball(tarball, join(dir, 'project'));
  if (r.status !== 0) throw new Error(`npm install of ${tarball} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { bin: join(dir, 'project/node_modules/tun6in4/bin/tun6in4.js'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
