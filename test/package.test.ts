/**
 * The package as a user gets it: `npm pack`, then `npm install <tarball>` into a fresh project
 * with install scripts off, no compiler on PATH and npm offline. The tarball must carry working
 * prebuilt binaries; nothing may be compiled or downloaded at install time.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script shared with the prebuild, no declarations
import { NATIVE_SOURCES } from '../scripts/native-sources.mjs';
import { installTarball, packTarball } from './helpers/installed.js';
import { rootOrSkip } from './helpers/netlab.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tun6in4-pack-'));
const project = join(dir, 'project');
const noCompiler = join(dir, 'bin');
const PREBUILDS = ['native/prebuilds/linux-x64/tun6in4_native.napi.glibc.node', 'native/prebuilds/linux-arm64/tun6in4_native.napi.glibc.node'];

/** Every command of the usual bin directories but compilers, linkers, make and node-gyp. */
function pathWithoutCompilers(): string {
  mkdirSync(noCompiler);
  const compiler = /^(cc|c\+\+|c89|c99|cpp.*|gcc.*|g\+\+.*|.*-gcc.*|.*-g\+\+.*|clang.*|make|gmake|ld|ld\..*|.*-ld|as|.*-as|node-gyp)$/;
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) if (!compiler.test(n) && !existsSync(join(noCompiler, n))) symlinkSync(join(d, n), join(noCompiler, n));
  }
  return noCompiler;
}

const env = () => ({ ...process.env, PATH: noCompiler, npm_config_ignore_scripts: 'true', npm_config_audit: 'false', npm_config_fund: 'false' });
function inProject(cmd: string, args: string[], timeout = 60_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: project, env: env(), encoding: 'utf8', timeout });
}
function expectOk(r: SpawnSyncReturns<string>, what: string): void {
  expect(r.status, `${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`).toBe(0);
}

let tarball: string;
let contents: string[];
let installMs: number;

beforeAll(() => {
  ({ tarball, contents } = packTarball(dir));
  // The measured install is offline. npm needs each dependency's registry metadata in its cache
  // for that, so an install allowed to reach the registry fills the cache first.
  const warm = installTarball(tarball, join(dir, 'warm'));
  expectOk(warm, 'npm install of the tarball (filling the cache)');
  pathWithoutCompilers();
  const start = performance.now();
  const r = installTarball(tarball, project, { offline: true, env: env() });
  installMs = performance.now() - start;
  expectOk(r, 'npm install --offline of the tarball');
}, 300_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the npm tarball', () => {
  it('carries both prebuilt binaries, every native source, LICENSE, the CHANGELOG, the systemd unit, the example config and every doc a message points to; no source maps, no install script', () => {
    for (const f of [...PREBUILDS, 'LICENSE', 'CHANGELOG.md', 'contrib/tun6in4.service', 'examples/he-tunnel.json', 'dist/index.js', 'dist/engine-api.js', 'dist/engine-api.d.ts', 'dist/testing.js', 'bin/tun6in4.js']) expect(contents).toContain(f);
    // An error or a help text that says "see docs/systemd.md" must find it in the installed copy.
    const named = new Set(readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => [...readFileSync(join(ROOT, 'src', f), 'utf8').matchAll(/\bdocs\/[\w-]+\.md\b/g)].map((m) => m[0])));
    expect(named.size).toBeGreaterThan(0);
    for (const doc of named) expect(contents, doc).toContain(doc);
    expect(contents.filter((f) => f.endsWith('.map'))).toEqual([]);
    // what `tun6in4 build-native` compiles where no prebuild fits: binding.gyp's sources and headers
    expect((NATIVE_SOURCES as string[]).filter((f) => !contents.includes(f))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(project, 'node_modules/tun6in4/package.json'), 'utf8')) as { scripts?: Record<string, string> };
    for (const hook of ['preinstall', 'install', 'postinstall']) expect(pkg.scripts?.[hook], hook).toBeUndefined();
  });

  it('installs with scripts off, no compiler on PATH and npm offline', () => {
    expect(spawnSync('sh', ['-c', 'command -v gcc || command -v g++ || command -v cc || command -v make'], { env: env() }).status).not.toBe(0);
    // Nothing was built: the installed package has no build directory, only the prebuilds.
    expect(existsSync(join(project, 'node_modules/tun6in4/native/build'))).toBe(false);
    console.info(`npm install --offline of ${basename(tarball)}: ${Math.round(installMs)} ms`);
  });

  it('imports with import and with require; the pure library encapsulates with no native code loaded', () => {
    const esm = inProject('node', [
      '--input-type=module',
      '-e',
      `import { readFileSync } from 'node:fs';
       import { Encapsulator } from 'tun6in4';
       const t = new Encapsulator({ mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' });
       console.log(t.config.mtu, readFileSync('/proc/self/maps', 'utf8').includes('tun6in4_native') ? 'addon loaded' : 'no addon');`,
    ]);
    expectOk(esm, 'import');
    expect(esm.stdout.trim()).toBe('1480 no addon');
    const cjs = inProject('node', ['-e', `const t = require('tun6in4'); console.log(typeof t.Encapsulator, typeof t.openTunnel, typeof t.Daemon, typeof t.runDoctor, typeof t.FakeTun, typeof require('tun6in4/testing').FakeTun)`]);
    expectOk(cjs, 'require');
    // what the CLI does is importable; the test doubles live apart, in tun6in4/testing
    expect(cjs.stdout.trim()).toBe('function function function function undefined function');
  });

  it('tun6in4/engine imports with import and with require: the loop and its parts, the same classes tun6in4 still offers deprecated, and 0.1\'s engine members', () => {
    const esm = inProject('node', [
      '--input-type=module',
      '-e',
      `import { TunnelEngine, LinuxTun, RawTransport, FouTransport, OffloadTun, SLOT_SIZE, packOuterFields } from 'tun6in4/engine';
       import * as main from 'tun6in4';
       console.log(typeof TunnelEngine, typeof LinuxTun, typeof RawTransport, typeof FouTransport, typeof OffloadTun, SLOT_SIZE > 0, typeof packOuterFields,
         main.TunnelEngine === TunnelEngine, typeof TunnelEngine.prototype.replaceSocket);`,
    ]);
    expectOk(esm, 'import tun6in4/engine');
    expect(esm.stdout.trim()).toBe('function function function function function true function true function');
    const cjs = inProject('node', ['-e', `const e = require('tun6in4/engine'); console.log(typeof e.TunnelEngine, typeof e.PeerTable, typeof e.pcapngPacket, typeof e.Encapsulator, require('tun6in4').TunnelEngine === e.TunnelEngine)`]);
    expectOk(cjs, 'require tun6in4/engine');
    // the Encapsulator is the main entry's, not repeated here
    expect(cjs.stdout.trim()).toBe('function function function undefined true');
  });

  it('runs tun6in4 --version and doctor, which finds the prebuilt addon', () => {
    const version = inProject('npx', ['--offline', 'tun6in4', '--version']);
    expectOk(version, 'tun6in4 --version');
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    const doctor = inProject('npx', ['--offline', 'tun6in4', 'doctor', '--json']);
    const findings = JSON.parse(doctor.stdout) as Array<{ check: string; level: string; detail: string }>;
    const addon = findings.find((f) => f.check === 'native addon');
    expect(addon?.level, doctor.stdout).toBe('ok');
    expect(addon?.detail).toMatch(new RegExp(`prebuilt binary from the package .*prebuilds/linux-${process.arch}/`));
  });

  it('as root: npx tun6in4 lab brings up a tunnel pair in namespaces from the installed copy and passes', () => {
    if (!rootOrSkip()) return;
    const lab = inProject('npx', ['--offline', 'tun6in4', 'lab', '--json', '--transfer-mib', '8'], 180_000);
    expectOk(lab, 'tun6in4 lab');
    const report = JSON.parse(lab.stdout) as { passed: boolean; steps: Array<{ name: string; ok: boolean }> };
    expect(report.passed).toBe(true);
    expect(report.steps.find((s) => s.name === 'engines up')?.ok).toBe(true);
  }, 200_000);

  it('as root: run as an ordinary user first says it needs root or the two capabilities', () => {
    if (!rootOrSkip()) return;
    chmodSync(dir, 0o755); // let nobody reach the installed copy
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, join(project, 'node_modules/tun6in4/bin/tun6in4.js'),
      'run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64', '--control', join(dir, 'nobody.sock')], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^tun6in4: a tunnel needs root, or CAP_NET_ADMIN and CAP_NET_RAW \(CAP_NET_ADMIN and CAP_NET_RAW missing here\)/);
  });

  // Last: it removes the prebuilds from the installed copy, as on a platform we do not prebuild for.
  it('without a binary for the host, the library still imports and works, and the addon error names the fix', () => {
    rmSync(join(project, 'node_modules/tun6in4/native/prebuilds'), { recursive: true });
    const r = inProject('node', [
      '--input-type=module',
      '-e',
      `import { Encapsulator, NativeAddonError, nativeAddonInfo } from 'tun6in4';
       const t = new Encapsulator({ mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' });
       try {
         console.log('loaded?!', nativeAddonInfo().path);
       } catch (e) {
         console.log(t.config.mtu, e instanceof NativeAddonError, e.code, e.message);
       }`,
    ]);
    expectOk(r, 'import without the addon');
    expect(r.stdout).toMatch(/^1480 true NATIVE_NOT_FOUND no native addon for linux-\w+ glibc [\d.]+: .*looked in .*; fix: npx tun6in4 build-native/);
    const doctor = inProject('npx', ['--offline', 'tun6in4', 'doctor', '--json']);
    expect(doctor.status).not.toBe(0);
    const addon = (JSON.parse(doctor.stdout) as Array<{ check: string; level: string; fix?: string }>).find((f) => f.check === 'native addon');
    expect(addon).toMatchObject({ level: 'fail', fix: expect.stringMatching(/^npx tun6in4 build-native/) });
  });
});
