/**
 * Building the addon from source on this host (`tun6in4 build-native`), for platforms without a
 * prebuilt binary (musl, other architectures) or to link against this host's liburing. It uses
 * this host's Node headers and npm's own node-gyp, so it never downloads anything.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { nativeDir } from './native.js';

/** What a build from source needs and does not have here, with what to install. */
export class NativeBuildError extends Error {
  constructor(
    readonly reason: 'no-headers' | 'no-toolchain' | 'no-node-gyp' | 'build-failed',
    message: string,
  ) {
    super(message);
    this.name = 'NativeBuildError';
  }
}

export interface NativeBuildOptions {
  /** Where node-gyp's output goes; default this process's stderr. */
  output?: (chunk: string) => void;
}

/** The directory that holds Node's headers (`include/node/common.gypi`), or null. */
export function findNodeHeaders(): string | null {
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath)), '/usr', '/usr/local'];
  for (const dir of candidates) if (dir && existsSync(join(dir, 'include/node/common.gypi')) && existsSync(join(dir, 'include/node/node_api.h'))) return dir;
  return null;
}

/** Where `cmd` is on PATH, or null. */
function onPath(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(delimiter)) if (d && existsSync(join(d, cmd))) return join(d, cmd);
  return null;
}

/** npm's bundled node-gyp (every npm has one), else one on PATH. */
function findNodeGyp(): string | null {
  const fromNpm = (root: string) => join(root, 'npm/node_modules/node-gyp/bin/node-gyp.js');
  const candidates = [process.env.npm_config_node_gyp, fromNpm(join(dirname(dirname(process.execPath)), 'lib/node_modules'))];
  try {
    candidates.push(fromNpm(execFileSync('npm', ['root', '-g'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()));
  } catch {
    // no npm on PATH: the other candidates stand
  }
  for (const c of candidates) if (c && existsSync(c)) return c;
  return onPath('node-gyp');
}

/**
 * Builds `native/build/Release/tun6in4_native.node` for this host; the loader prefers it to a
 * prebuild from then on. Throws NativeBuildError naming what is missing and how to get it.
 */
export async function buildNativeAddon(o: NativeBuildOptions = {}): Promise<void> {
  const headers = findNodeHeaders();
  if (!headers) {
    throw new NativeBuildError(
      'no-headers',
      `Node's headers for ${process.version} are not on this host (looked for include/node/common.gypi beside ${process.execPath} and in /usr, /usr/local); ` +
        'install them (official Node tarballs and NodeSource packages include them; Debian/Ubuntu: apt install libnode-dev) or set npm_config_nodedir to their directory',
    );
  }
  const missing = ['make', 'python3'].filter((c) => !onPath(c));
  if (!onPath('g++') && !onPath('c++')) missing.unshift('a C++ compiler (g++)');
  if (missing.length) {
    throw new NativeBuildError(
      'no-toolchain',
      `building the addon needs ${missing.join(', ')}; install them (Debian/Ubuntu: apt install build-essential python3 liburing-dev; Alpine: apk add build-base python3 linux-headers liburing-dev) and run this again`,
    );
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) throw new NativeBuildError('no-node-gyp', 'node-gyp was not found (npm ships one; install npm, or npm install -g node-gyp)');
  const args = nodeGyp.endsWith('.js') ? [nodeGyp] : [];
  const out = o.output ?? ((chunk: string) => process.stderr.write(chunk));
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(args.length ? process.execPath : nodeGyp, [...args, 'rebuild', `--nodedir=${headers}`], { cwd: nativeDir(), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => out(d.toString()));
    child.stderr.on('data', (d: Buffer) => out(d.toString()));
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new NativeBuildError('build-failed', `node-gyp rebuild in ${nativeDir()} exited ${code} (its output is above)`);
}
