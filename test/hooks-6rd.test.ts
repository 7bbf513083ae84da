/**
 * The DHCP hooks in contrib/, as root. First what they must refuse: a run directory, pid file or
 * symlink planted by another user (`nobody`, as the units' service user could), a stale pid of an
 * unrelated process. Then, inside lab namespaces made here, udhcpc's script run the way udhcpc
 * runs it (an event argument, the lease in the environment): it must bring a 6rd CE up from
 * $ip6rd alone, leave it alone on an unchanged renewal, replace it when option 212 changes, say
 * when it fails, and remove it when the lease goes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces, runCapture } from '../src/lab/netns.js';
import { ping6 } from '../src/lab/probes.js';
import { LAB_6RD_DHCP, LabNetwork } from '../src/lab/topology.js';
import { rootOrSkip, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const HOOK = fileURLToPath(new URL('../contrib/tun6in4-6rd', import.meta.url));
const UDHCPC_HOOK = fileURLToPath(new URL('../contrib/udhcpc-6rd.sh', import.meta.url));
const DHCLIENT_HOOK = fileURLToPath(new URL('../contrib/dhclient-6rd', import.meta.url));
const CLI = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const NOBODY = 65534;

/** Runs a command as `nobody` (what another local user, or the service user, can do). */
const asNobody = (cmd: string, args: string[]) => runCapture('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args]);

describe.runIf(canRun)('contrib/tun6in4-6rd runs as root and trusts nothing another user planted', () => {
  let base: string;
  let victim: ChildProcess;
  const alive = () => victim.exitCode === null && victim.signalCode === null;
  /** Not signalled to death, even if Node has not reaped it yet (a zombie is state Z). */
  const running = () => alive() && !/^\S+ \(.*\) [ZX]/.test(readFileSync(`/proc/${victim.pid}/stat`, 'utf8'));
  const hook = (run: string, args: string[], env: Record<string, string> = {}) =>
    runCapture('env', [`TUN6IN4_RUN_DIR=${run}`, 'TUN6IN4_6RD_USER=nobody', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), HOOK, ...args], { noThrow: true, timeoutMs: 30_000 });
  /** A directory owned by nobody, as the units make /run/tun6in4 for their service user. */
  const plantedDir = (name: string) => {
    const d = join(base, name);
    mkdirSync(d, { mode: 0o750 });
    chownSync(d, NOBODY, NOBODY);
    return d;
  };

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'tun6in4-hookperm-'));
    chmodSync(base, 0o755);
    // An unrelated process: what a planted or stale pid file points at.
    victim = spawn('sleep', ['infinity'], { stdio: 'ignore' });
  });

  afterAll(() => {
    if (victim?.pid && alive()) victim.kill('SIGKILL');
    if (base) rmSync(base, { recursive: true, force: true });
  });

  it('refuses a run directory owned by another user and kills nothing its pid file names', async () => {
    const run = plantedDir('owned-by-nobody');
    await asNobody('sh', ['-c', `echo ${victim.pid} > ${run}/6rd-eth0.pid`]);
    const r = await hook(run, ['down', 'eth0']);
    // The old hook sent SIGTERM to whatever pid the file held (and waited for it to die).
    expect(running()).toBe(true);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${run} is owned by uid ${NOBODY}, not root`));
  });

  it('writes through no symlink another user planted (log, pid file)', async () => {
    const run = plantedDir('symlinks');
    const target = join(base, 'precious');
    writeFileSync(target, 'root\'s file\n', { mode: 0o600 });
    await asNobody('ln', ['-s', target, join(run, '6rd-eth0.log')]);
    await asNobody('ln', ['-s', target, join(run, '6rd-eth0.pid')]);
    // /bin/echo stands in for the tunnel: whatever it prints lands in the log.
    const r = await hook(run, ['up', 'eth0', '192.0.2.10', LAB_6RD_DHCP], { TUN6IN4: '/bin/echo' });
    // Had the hook started the command in the background, let it finish writing before we look.
    const started = existsSync(join(run, '6rd-eth0.pid')) ? readFileSync(join(run, '6rd-eth0.pid'), 'utf8').split(' ')[0].trim() : null;
    if (started) await until('the command the hook started to exit', async () => existsSync(`/proc/${started}`), (e) => !e);
    expect(readFileSync(target, 'utf8')).toBe('root\'s file\n');
    expect(r.code).toBe(1);
  });

  it('refuses a run directory that is a symlink, or under a directory another user can write', async () => {
    const real = join(base, 'real');
    mkdirSync(real, { mode: 0o755 });
    const parent = plantedDir('parent-of-nobody');
    chmodSync(parent, 0o755);
    await asNobody('ln', ['-s', real, join(parent, 'link')]);
    const viaLink = await hook(join(parent, 'link'), ['down', 'eth0']);
    expect(viaLink.code).toBe(1);
    expect(viaLink.stderr).toMatch(/is a symbolic link/);
    // root's own directory, but nobody could rename it away and put another in its place
    mkdirSync(join(parent, 'rootdir'), { mode: 0o755 });
    const under = await hook(join(parent, 'rootdir'), ['down', 'eth0']);
    expect(under.code).toBe(1);
    expect(under.stderr).toMatch(new RegExp(`${parent} is owned by uid ${NOBODY}`));
    const groupWritable = join(base, 'group-writable');
    mkdirSync(groupWritable);
    chmodSync(groupWritable, 0o775);
    const gw = await hook(groupWritable, ['down', 'eth0']);
    expect(gw.code).toBe(1);
    expect(gw.stderr).toMatch(/writable by group or others \(mode 775\)/);
  });

  it('creates a missing run directory root-owned and not writable by others', async () => {
    const run = join(base, 'fresh', 'run');
    mkdirSync(join(base, 'fresh'), { mode: 0o755 });
    expect((await hook(run, ['down', 'eth0'])).code).toBe(0);
    const st = lstatSync(run);
    expect(st.isDirectory()).toBe(true);
    expect(st.uid).toBe(0);
    expect(st.mode & 0o022).toBe(0);
  });

  it('a stale pid (the process it names is not the tunnel it started) is not killed', async () => {
    const run = join(base, 'stale');
    mkdirSync(run, { mode: 0o755 });
    // What a failed start leaves: a pid since reused by an unrelated process.
    writeFileSync(join(run, '6rd-eth0.pid'), `${victim.pid} 1\n`);
    const r = await hook(run, ['down', 'eth0']);
    expect(running()).toBe(true);
    expect(r.code).toBe(0);
    expect(existsSync(join(run, '6rd-eth0.pid'))).toBe(false);
  });

  it('returns the real outcome: a tunnel that cannot start fails the hook with its error', async () => {
    const run = join(base, 'outcome');
    mkdirSync(run, { mode: 0o755 });
    const r = await hook(run, ['up', 'eth0', '192.0.2.10', LAB_6RD_DHCP], { TUN6IN4: '/bin/false' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the tunnel 6rd-eth0 did not start/);
    const asRoot = await hook(run, ['up', 'eth0', '192.0.2.10', LAB_6RD_DHCP], { TUN6IN4_6RD_USER: 'root' });
    expect(asRoot.code).toBe(1);
    expect(asRoot.stderr).toMatch(/is root \(uid 0\): name an unprivileged user/);
  });

  it('the dhclient hook passes the failure on in exit_status, which dhclient-script reports', async () => {
    const run = plantedDir('dhclient');
    const r = await runCapture('env', [`TUN6IN4_RUN_DIR=${run}`, `TUN6IN4_6RD=${HOOK}`, 'reason=EXPIRE', 'interface=eth0', 'sh', '-c', `exit_status=0; . ${DHCLIENT_HOOK}; echo "exit_status=$exit_status"`], { noThrow: true });
    expect(r.stdout.trim()).toBe('exit_status=1');
  });

  it('derives a tunnel name Linux and tun6in4 accept from any interface name, the same each time', async () => {
    const name = async (iface: string) => (await hook(base, ['name', iface])).stdout.trim();
    expect(await name('eth0')).toBe('6rd-eth0');
    const names = await Promise.all(['enx00e04c680001', 'enx00e04c680002', 'eth0.100', 'wlp0s20f3u1'].map(name));
    for (const n of names) expect(n).toMatch(/^[a-zA-Z0-9_-]{1,15}$/);
    expect(new Set(names).size).toBe(names.length);
    expect(await name('eth0.100')).toBe(names[2]);
  });
});

describe.runIf(canRun)('contrib/udhcpc-6rd.sh: a CE from udhcpc\'s $ip6rd alone', () => {
  let lab: LabNetwork;
  let run: string;
  const sock = (name = '6rd-eth0') => join(run, `${name}.sock`);
  const pid = (name = '6rd-eth0') => readFileSync(join(run, `${name}.pid`), 'utf8').trim().split(' ')[0];
  const udhcpc = (event: string, lease: Record<string, string>, iface = 'eth0') =>
    lab.host('ce1').run('env', [`TUN6IN4=${CLI}`, `TUN6IN4_RUN_DIR=${run}`, 'TUN6IN4_6RD_USER=nobody', `interface=${iface}`, ...Object.entries(lease).map(([k, v]) => `${k}=${v}`), UDHCPC_HOOK, event], { timeoutMs: 60_000 });
  const status = async (name?: string) => ((await queryControl(sock(name), 'status')) as DaemonStatus).tunnels[0];

  beforeAll(async () => {
    await removeStaleNamespaces('hook6rd');
    run = mkdtempSync(join(tmpdir(), 'tun6in4-hook-'));
    lab = await LabNetwork.create('6rd', 'hook6rd', { skipEngines: ['ce1'] });
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
    if (run) rmSync(run, { recursive: true, force: true });
  });

  it('bound: the hook returns once the tunnel is up, with the derived prefix, as the unprivileged user', async () => {
    const r = await udhcpc('bound', { ip: '192.0.2.10', ip6rd: LAB_6RD_DHCP });
    expect(r).toMatchObject({ code: 0 });
    const s = await status();
    expect(s).toMatchObject({ name: '6rd-eth0', state: 'running', address: '2001:db8:a140::1/36', relay: '203.0.113.1', sixrd: { delegatedPrefix: '2001:db8:a140::/43' } });
    const uid = await until('the tunnel to drop privileges', async () => readFileSync(`/proc/${pid()}/status`, 'utf8'), (t) => /^Uid:\s+65534\s/m.test(t));
    expect(uid).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    expect((await ping6(lab.host('ce1'), '2001:db8:a280::1')).ok).toBe(true);
    expect((await ping6(lab.host('ce1'), '2001:db8:5::2')).ok).toBe(true);
  }, 60_000);

  it('renew with the same lease leaves the tunnel running; a changed option 212 replaces it', async () => {
    const first = pid();
    expect((await udhcpc('renew', { ip: '192.0.2.10', ip6rd: LAB_6RD_DHCP })).code).toBe(0);
    expect(pid()).toBe(first);
    expect((await udhcpc('renew', { ip: '192.0.2.10', ip6rd: `${LAB_6RD_DHCP} 203.0.113.2` })).code).toBe(0);
    expect(pid()).not.toBe(first);
    const s = await until('the replaced tunnel to answer status', () => status(), (t) => t.sixrd?.relays.length === 2);
    expect(s.sixrd?.relays).toEqual(['203.0.113.1', '203.0.113.2']);
  }, 60_000);

  it('deconfig: the tunnel exits and its interface, socket and pid file are gone', async () => {
    expect((await udhcpc('deconfig', {})).code).toBe(0);
    expect(await lab.host('ce1').ip(['-o', 'link', 'show'])).not.toMatch(/6rd-eth0/);
    expect(() => pid()).toThrow(/ENOENT/);
    expect(existsSync(sock())).toBe(false);
  }, 30_000);

  it('a USB adapter\'s 15-character name (enx<MAC>) still gets a tunnel, under a short name', async () => {
    const iface = 'enx00e04c680001';
    const name = (await runCapture(HOOK, ['name', iface])).stdout.trim();
    expect(name.length).toBeLessThanOrEqual(15);
    expect((await udhcpc('bound', { ip: '192.0.2.10', ip6rd: LAB_6RD_DHCP }, iface)).code).toBe(0);
    expect(await status(name)).toMatchObject({ name, state: 'running' });
    expect((await udhcpc('deconfig', {}, iface)).code).toBe(0);
    expect(await lab.host('ce1').ip(['-o', 'link', 'show'])).not.toMatch(new RegExp(name));
  }, 60_000);

  it('a lease whose option 212 the tunnel refuses fails the hook with the reason on stderr', async () => {
    const r = await udhcpc('bound', { ip: '192.0.2.10', ip6rd: '25 36 2001:db8:a000:: 0.0.0.0' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/did not start: .*border relay/);
    expect(await lab.host('ce1').ip(['-o', 'link', 'show'])).not.toMatch(/6rd-eth0/);
  }, 60_000);
});
