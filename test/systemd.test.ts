/**
 * systemd `Type=notify` (sd_notify(3)): the messages, the notify socket's address forms and the
 * watchdog interval without root; the addon's datagram reaching a path and an abstract socket;
 * and, as root, a daemon in a namespace this test creates talking to a fake NOTIFY_SOCKET:
 * READY=1 once its tunnels are up or failed, STATUS= on a health change, RELOADING=1 with
 * MONOTONIC_USEC then READY=1 around SIGHUP (applied and refused), WATCHDOG=1, STOPPING=1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { formatNotify, healthSummary, HEALTH_POLL_MS, monotonicUsec, notifySocketAddress, SystemdNotifier, watchdogIntervalMs } from '../src/daemon/systemd.js';
import { loadNative } from '../src/io/native.js';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { FakeNotifySocket, parseNotification } from './helpers/notify-socket.js';
import { isolatedDaemonHost, rootOrSkip } from './helpers/netlab.js';

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const NOTIFY_PY = fileURLToPath(new URL('./helpers/notify-socket.py', import.meta.url));

function fakeLog() {
  const log = { warn: vi.fn(), debug: vi.fn(), info: vi.fn(), error: vi.fn() };
  return { log, logger: log as unknown as Logger };
}

const tunnelStatus = (tunnel: string, health: string) => ({ tunnel, health }) as DaemonStatus['tunnels'][number];

describe('sd_notify messages', () => {
  it('NOTIFY_SOCKET: an absolute path or @abstract name; unset or empty means no notification; anything else is refused', () => {
    expect(notifySocketAddress('/run/systemd/notify')).toBe('/run/systemd/notify');
    expect(notifySocketAddress('@/org/freedesktop/systemd1/notify/42')).toBe('@/org/freedesktop/systemd1/notify/42');
    expect(notifySocketAddress(undefined)).toBeNull();
    expect(notifySocketAddress('')).toBeNull();
    for (const bad of ['run/notify', '@', 'vsock:2:1234']) expect(() => notifySocketAddress(bad)).toThrow(/not an absolute path or an @abstract socket name/);
  });

  it('WATCHDOG=1 every WATCHDOG_USEC/2, only when WATCHDOG_PID is unset or ours', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '200000' }, 7)).toBe(100);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 7)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '200000', WATCHDOG_PID: '8' }, 7)).toBeNull();
    expect(watchdogIntervalMs({}, 7)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 7)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '1e6' }, 7)).toBeNull();
  });

  it('one KEY=value line per field, in order; a value never spans lines', () => {
    expect(formatNotify({ READY: 1, STATUS: '1 tunnel: he up' })).toBe('READY=1\nSTATUS=1 tunnel: he up');
    expect(formatNotify({ STATUS: 'bad\nREADY=1' })).toBe('STATUS=bad READY=1');
    expect(formatNotify({ RELOADING: 1, MONOTONIC_USEC: 123n })).toBe('RELOADING=1\nMONOTONIC_USEC=123');
  });

  it('MONOTONIC_USEC is CLOCK_MONOTONIC in µs (the clock python\'s time.monotonic reads)', async () => {
    const before = monotonicUsec();
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
      const c = spawn('/usr/bin/python3', ['-c', 'import time; print(time.monotonic_ns() // 1000)']);
      let stdout = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.on('error', reject);
      c.on('close', () => resolve({ stdout }));
    });
    const python = BigInt(stdout.trim());
    expect(python).toBeGreaterThanOrEqual(before);
    expect(python).toBeLessThanOrEqual(monotonicUsec());
  });

  it('health summary: each tunnel by name with its health, failed ones "failed", a refused reload added', () => {
    const st = { tunnels: [tunnelStatus('lab', 'down'), tunnelStatus('he', 'up')], failed: [], lastReload: null };
    expect(healthSummary(st)).toBe('2 tunnels: he up, lab down');
    expect(healthSummary({ ...st, tunnels: [tunnelStatus('he', 'starting')], failed: [{ tunnel: 'six', error: 'x' }] })).toBe('2 tunnels: he starting, six failed');
    expect(healthSummary({ ...st, tunnels: [tunnelStatus('he', 'idle')] })).toBe('1 tunnel: he idle');
    expect(healthSummary({ tunnels: [], failed: [], lastReload: null })).toBe('no tunnels');
    const refused = healthSummary({ ...st, lastReload: { at: '', ok: false, error: 'tunnels.he.mtu: 9000 is not valid\nuse 1280..1480' } });
    expect(refused).toBe('2 tunnels: he up, lab down; last reload refused: tunnels.he.mtu: 9000 is not valid use 1280..1480');
    const long = healthSummary({ ...st, lastReload: { at: '', ok: false, error: 'x'.repeat(500) } });
    expect(long.length).toBeLessThan(220);
    expect(long.endsWith('…')).toBe(true);
  });
});

describe('SystemdNotifier (a fake socket, fake timers)', () => {
  afterEach(() => void vi.useRealTimers());

  it('reads the environment once and removes it, so no child inherits it; no NOTIFY_SOCKET, no notifier', () => {
    const { logger, log } = fakeLog();
    const env: Record<string, string | undefined> = { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: String(process.pid), PATH: '/usr/bin' };
    const n = SystemdNotifier.fromEnvironment(logger, env, () => undefined);
    expect(n?.address).toBe('@x');
    expect(n?.watchdogMs).toBe(500);
    n?.close();
    expect(env).toEqual({ PATH: '/usr/bin' });
    expect(SystemdNotifier.fromEnvironment(logger, { WATCHDOG_USEC: '1000000' }, () => undefined)).toBeNull();
    expect(SystemdNotifier.fromEnvironment(logger, { NOTIFY_SOCKET: 'vsock:2:9' }, () => undefined)).toBeNull();
    expect(log.warn).toHaveBeenCalledWith({ error: expect.stringContaining('vsock:2:9') }, 'not notifying systemd');
  });

  it('READY with STATUS, STATUS on each health change (not while reloading), RELOADING/READY, WATCHDOG, STOPPING; in order', () => {
    vi.useFakeTimers();
    const sent: string[] = [];
    const { logger } = fakeLog();
    const n = new SystemdNotifier('@x', 100, logger, (a, m) => void sent.push(`${a} ${m}`));
    let health = 'starting';
    n.ready(() => `1 tunnel: he ${health}`);
    expect(sent).toEqual(['@x READY=1\nSTATUS=1 tunnel: he starting']);
    vi.advanceTimersByTime(HEALTH_POLL_MS);
    expect(sent.filter((m) => !m.endsWith('WATCHDOG=1'))).toHaveLength(1);
    expect(sent.filter((m) => m === '@x WATCHDOG=1')).toHaveLength(HEALTH_POLL_MS / 100);
    health = 'up';
    vi.advanceTimersByTime(HEALTH_POLL_MS);
    expect(sent.filter((m) => !m.endsWith('WATCHDOG=1')).at(-1)).toBe('@x STATUS=1 tunnel: he up');
    sent.length = 0;
    n.reloading();
    health = 'down';
    vi.advanceTimersByTime(HEALTH_POLL_MS);
    n.ready(() => `1 tunnel: he ${health}`);
    n.stopping('stopping (SIGTERM)');
    vi.advanceTimersByTime(10 * HEALTH_POLL_MS);
    const events = sent.filter((m) => !m.endsWith('WATCHDOG=1')).map((m) => parseNotification(m.slice(3)));
    expect(events).toEqual([
      { RELOADING: '1', MONOTONIC_USEC: expect.stringMatching(/^\d+$/), STATUS: 'reloading the configuration' },
      { READY: '1', STATUS: '1 tunnel: he down' },
      { STOPPING: '1', STATUS: 'stopping (SIGTERM)' },
    ]);
    expect(sent.at(-1)).toBe('@x STOPPING=1\nSTATUS=stopping (SIGTERM)');
  });

  it('a failure to notify never throws: logged once as a warning, then at debug level', () => {
    const { logger, log } = fakeLog();
    const n = new SystemdNotifier('/run/nothing', null, logger, () => {
      throw Object.assign(new Error('sendto NOTIFY_SOCKET: Connection refused'), { errno: 111 });
    });
    n.ready(() => 'no tunnels');
    n.reloading();
    n.ready(() => 'no tunnels');
    n.stopping('stopping (SIGTERM)');
    n.close();
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn.mock.calls[0][0]).toEqual({ socket: '/run/nothing', error: 'sendto NOTIFY_SOCKET: Connection refused' });
    expect(log.debug).toHaveBeenCalledTimes(3);
  });
});

describe('notifySocket (the addon): one datagram to a path or an abstract socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-notify-'));
  const sockets: FakeNotifySocket[] = [];
  afterAll(() => {
    for (const s of sockets) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reaches a receiver bound to a filesystem path', async () => {
    const path = join(dir, 'notify.sock');
    const s = await FakeNotifySocket.listen(path);
    sockets.push(s);
    loadNative().notifySocket(path, 'READY=1\nSTATUS=1 tunnel: he up');
    expect((await s.next('READY', () => true, 10_000)).message).toBe('READY=1\nSTATUS=1 tunnel: he up');
  });

  it('reaches a receiver in the abstract namespace ("@" first, no trailing NUL in the address)', async () => {
    const name = `@tun6in4-test/notify/${process.pid}`;
    const s = await FakeNotifySocket.listen(name);
    sockets.push(s);
    loadNative().notifySocket(name, 'WATCHDOG=1');
    expect((await s.next('WATCHDOG', () => true, 10_000)).message).toBe('WATCHDOG=1');
  });

  it('says why it could not send, with errno: nobody listening, a name too long', () => {
    const native = loadNative();
    expect(() => native.notifySocket(join(dir, 'absent.sock'), 'READY=1')).toThrow(expect.objectContaining({ errno: 2 }));
    expect(() => native.notifySocket(`/${'x'.repeat(120)}`, 'READY=1')).toThrow(expect.objectContaining({ errno: 36 }));
  });

  it('never blocks on a receiver that stopped reading: EAGAIN once its queue is full', async () => {
    const path = join(dir, 'full.sock');
    const holder = spawn('/usr/bin/python3', [NOTIFY_PY, path, 'hold'], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve) => createInterface({ input: holder.stdout }).once('line', () => resolve()));
      const native = loadNative();
      let error: { errno?: number } | null = null;
      for (let i = 0; i < 100_000 && !error; i++) {
        try {
          native.notifySocket(path, 'WATCHDOG=1');
        } catch (e) {
          error = e as { errno?: number };
        }
      }
      expect(error?.errno).toBe(11);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('the units in contrib/', () => {
  const unit = (name: string) => readFileSync(fileURLToPath(new URL(`../contrib/${name}`, import.meta.url)), 'utf8');
  const directives = (text: string, key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);

  it('Type=notify for the main process only, with a watchdog; reload checks the file before the signal', () => {
    for (const [name, config] of [
      ['tun6in4.service', '/etc/tun6in4/tun6in4.toml'],
      ['tun6in4@.service', '/etc/tun6in4/%i.toml'],
    ]) {
      const text = unit(name);
      expect(directives(text, 'Type'), name).toEqual(['notify']);
      expect(directives(text, 'NotifyAccess'), name).toEqual(['main']);
      expect(directives(text, 'WatchdogSec'), name).toEqual(['30s']);
      // the shell's kill: /bin/kill is procps, absent from minimal images (test/systemd-boot.test.ts boots one)
      expect(directives(text, 'ExecReload'), name).toEqual([`/usr/bin/env tun6in4 check -c ${config}`, "/bin/sh -c 'kill -HUP $$MAINPID'"]);
      expect(directives(text, 'ExecStartPre'), name).toEqual([expect.stringMatching(/^\+\/bin\/sh -c .*= 600:0:0 \]; then chgrp tun6in4 \/dev\/net\/tun && chmod 0660 \/dev\/net\/tun/)]);
      // /run/tun6in4 outlives a stop: the instances' sockets share it
      expect(directives(text, 'RuntimeDirectoryPreserve'), name).toEqual(['yes']);
      // The 6rd hook's state is in /run/tun6in4-6rd (root's alone), never the service's /run/tun6in4.
      expect(text.split('\n').filter((l) => /6rd/.test(l) && /\/run\/tun6in4(?!-6rd)/.test(l)), name).toEqual([]);
      expect(directives(text, 'ExecStart')[0], name).toMatch(new RegExp(`^/usr/bin/env tun6in4 up -c ${config.replace(/\./g, '\\.')}`));
    }
    const template = unit('tun6in4@.service');
    expect(directives(template, 'ExecStart')).toEqual(['/usr/bin/env tun6in4 up -c /etc/tun6in4/%i.toml --control /run/tun6in4/%i.sock']);
  });

  it('ExecStartPre=+ changes only the devtmpfs default: 0600 root:root becomes 0660 for group tun6in4, not 0666; any other mode or owner is left alone', (ctx) => {
    if (!rootOrSkip()) return ctx.skip();
    // The command as systemd runs it: "$$" and "%%" unescaped; pointed at files of ours instead of
    // the device, and at a numeric group where this host may have no group tun6in4.
    const GID = 4242;
    const command = directives(unit('tun6in4.service'), 'ExecStartPre')[0].replace(/^\+\/bin\/sh -c '(.*)'$/, '$1').replace(/\$\$/g, '$').replace(/%%/g, '%').replace('chgrp tun6in4', `chgrp ${GID}`);
    expect(directives(unit('tun6in4@.service'), 'ExecStartPre')[0]).toBe(directives(unit('tun6in4.service'), 'ExecStartPre')[0]);
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-startpre-'));
    try {
      const cases = [
        { name: 'devtmpfs', mode: 0o600, uid: 0, gid: 0, after: 0o660, gidAfter: GID },
        { name: 'chosen-group', mode: 0o660, uid: 0, gid: 1, after: 0o660 },
        { name: 'group-root', mode: 0o640, uid: 0, gid: 0, after: 0o640 },
        { name: 'other-owner', mode: 0o600, uid: 1, gid: 0, after: 0o600 },
      ];
      for (const c of cases) {
        const path = join(dir, c.name);
        writeFileSync(path, '');
        chownSync(path, c.uid, c.gid);
        chmodSync(path, c.mode);
        const r = spawnSync('/bin/sh', ['-c', command.replaceAll('/dev/net/tun', path)], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        expect(statSync(path).mode & 0o777, c.name).toBe(c.after);
        expect(statSync(path).gid, c.name).toBe(c.gidAfter ?? c.gid);
        expect(r.stdout, c.name).toBe(c.after === c.mode ? '' : `${path} was 0600 root:root; made it 0660 root:tun6in4 so this service (group tun6in4) can open it; other users still cannot\n`);
      }
      // No device at all: nothing to do, and no error (the daemon then says the device is missing).
      expect(spawnSync('/bin/sh', ['-c', command.replaceAll('/dev/net/tun', join(dir, 'absent'))]).status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('systemd-analyze verify accepts both (where systemd is installed)', (ctx) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) return ctx.skip();
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-units-'));
    try {
      writeFileSync(join(dir, 'tun6in4.service'), unit('tun6in4.service'));
      writeFileSync(join(dir, 'tun6in4@he.service'), unit('tun6in4@.service'));
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', './tun6in4.service', './tun6in4@he.service'], { cwd: dir, encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' } });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const canRun = rootOrSkip();

describe.runIf(canRun)('Type=notify: a daemon in a namespace and a fake NOTIFY_SOCKET', () => {
  const set = new NamespaceSet('sdnotify');
  let ns: Namespace;
  let daemon: ChildProcess;
  let notify: FakeNotifySocket;
  let exited: Promise<number | null>;
  const logs: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-sdnotify-'));
  const configPath = join(dir, 'tun6in4.toml');
  let control: string;
  let address: string;
  const status = () => queryControl(control, 'status') as Promise<DaemonStatus>;
  const he = ['[tunnels.he]', 'mode = "6in4"', 'local = "192.0.2.1"', 'remote = "198.51.100.1"', 'address = "2001:db8:1::2/64"', 'dev = "he0"', 'keepalive = 1', 'defaultRoute = false'];
  // A tunnel that cannot open: its interface name is taken (the veth), and a TUN is never attached to.
  const lab = ['[tunnels.lab]', 'mode = "6in4"', 'local = "192.0.2.1"', 'remote = "203.0.113.9"', 'address = "2001:db8:7::2/64"', 'dev = "v0"', 'keepalive = "off"', 'defaultRoute = false'];
  // No [control] in the file: `up --control`, as the template unit runs it, names the socket.
  const writeConfig = (...tunnels: string[][]) => writeFileSync(configPath, [...tunnels.flat(), ''].join('\n'), { mode: 0o600 });
  const events: string[] = [];
  const nextEvent = async (what: string) => {
    const n = await notify.nextEvent(what).catch((e) => {
      throw new Error(`${(e as Error).message}\ndaemon log:\n${logs.join('\n')}`);
    });
    events.push(Object.keys(n.fields).join('+'));
    return n;
  };

  beforeAll(async () => {
    await removeStaleNamespaces('sdnotify');
    // nothing answers there: the keepalive goes unanswered, so the tunnel's health moves from
    // starting to down on its own
    ns = await isolatedDaemonHost(set);
    control = `/run/tun6in4/${ns.name}.sock`;
    writeConfig(he, lab);
    // Abstract socket names belong to a network namespace: the receiver runs in the daemon's.
    address = `@tun6in4-test/${ns.name}/notify`;
    notify = await FakeNotifySocket.listen(address, (cmd, args) => ns.spawn(cmd, args));
    // `ip netns exec` and sh exec in place, so $$ is the daemon's pid: WATCHDOG_PID names it, as systemd does.
    daemon = spawn('ip', ['netns', 'exec', ns.name, '/bin/sh', '-c', 'export WATCHDOG_PID=$$; exec "$@"', 'sh', process.execPath, BIN, 'up', '-c', configPath, '--control', control], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: address, WATCHDOG_USEC: '200000', TUN6IN4_LOG_LEVEL: 'debug' },
    });
    createInterface({ input: daemon.stderr! }).on('line', (l) => logs.push(l));
    daemon.stdout!.resume();
    exited = new Promise((resolve) => daemon.once('exit', (code) => resolve(code)));
  }, 60_000);

  afterAll(async () => {
    daemon?.kill('SIGKILL');
    notify?.close();
    await set.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('READY=1 once every tunnel is up or has failed and been logged, with STATUS naming each', async () => {
    const ready = await nextEvent('READY=1');
    expect(ready.fields).toEqual({ READY: '1', STATUS: '2 tunnels: he starting, lab failed' });
    // When READY arrives the daemon already answers status, with the tunnel open and the failure recorded.
    const s = await status();
    expect(s.tunnels.map((t) => [t.tunnel, t.name])).toEqual([['he', 'he0']]);
    expect(s.failed.map((f) => f.tunnel)).toEqual(['lab']);
    expect(await ns.ip(['-o', 'link', 'show', 'he0'])).toMatch(/he0/);
    expect(logs.some((l) => /"tunnel":"lab".*tunnel failed to start/.test(l))).toBe(true);
  }, 60_000);

  it('STATUS= when health changes: the unanswered keepalive takes he down', async () => {
    const change = await nextEvent('STATUS he down');
    expect(change.fields).toEqual({ STATUS: '2 tunnels: he down, lab failed' });
    expect((await status()).tunnels[0].health).toBe('down');
  }, 60_000);

  it('WATCHDOG=1 every WATCHDOG_USEC/2 (WATCHDOG_PID is the daemon)', async () => {
    const pings = await notify.count('WATCHDOG=1', (n) => n.message === 'WATCHDOG=1', 10);
    // setInterval(100 ms) never fires early, but the receiver may read one late: a bound on the
    // whole run, not on each gap; the upper end depends on the machine's load, so none.
    const last = pings.length - 1;
    expect(pings[last].at - pings[0].at).toBeGreaterThanOrEqual(BigInt(last) * 80_000n);
  }, 60_000);

  it('SIGHUP: RELOADING=1 with MONOTONIC_USEC first, then READY=1 once the new file is applied', async () => {
    writeConfig(he);
    const asked = monotonicUsec();
    daemon.kill('SIGHUP');
    const reloading = await nextEvent('RELOADING=1');
    expect(Object.keys(reloading.fields)).toEqual(['RELOADING', 'MONOTONIC_USEC', 'STATUS']);
    const usec = BigInt(reloading.fields.MONOTONIC_USEC);
    expect(usec).toBeGreaterThanOrEqual(asked);
    expect(usec).toBeLessThanOrEqual(reloading.at);
    const ready = await nextEvent('READY=1 after reload');
    expect(ready.fields).toEqual({ READY: '1', STATUS: '1 tunnel: he down' });
    // Still on the --control socket: the reloaded file has no [control] either.
    const s = await status();
    expect(s.lastReload?.ok).toBe(true);
    expect(s.failed).toEqual([]);
  }, 60_000);

  it('SIGHUP with an invalid file: RELOADING=1, then READY=1 all the same, STATUS saying it was refused', async () => {
    writeFileSync(configPath, '[tunnels.he]\nmode = "6in4"\nmtu = 9000\n', { mode: 0o600 });
    daemon.kill('SIGHUP');
    expect((await nextEvent('RELOADING=1')).fields.RELOADING).toBe('1');
    const ready = await nextEvent('READY=1 after refused reload');
    expect(ready.fields.READY).toBe('1');
    expect(ready.fields.STATUS).toMatch(/^1 tunnel: he down; last reload refused: tunnels\.he\./);
    expect((await status()).tunnels.map((t) => t.tunnel)).toEqual(['he']);
  }, 60_000);

  it('a daemon that opens no tunnel: STATUS says why, no READY=1, exit 2', async () => {
    const only = join(dir, 'lab-only.toml');
    writeFileSync(only, [...lab, ''].join('\n'), { mode: 0o600 });
    const other = `${address}-failing`;
    const watcher = await FakeNotifySocket.listen(other, (cmd, args) => ns.spawn(cmd, args));
    try {
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const c = spawn('ip', ['netns', 'exec', ns.name, process.execPath, BIN, 'up', '-c', only, '--control', `${control}.failing`], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: other } });
        let stderr = '';
        c.stderr.on('data', (d) => (stderr += d));
        c.on('close', (code) => resolve({ code, stderr }));
      });
      expect(r.code).toBe(2);
      const n = await watcher.next('STATUS', () => true);
      expect(n.fields).toEqual({ STATUS: expect.stringMatching(/^failed to start: lab: /) });
      expect(r.stderr).toContain(n.fields.STATUS.slice('failed to start: '.length));
      // Our own datagram next: nothing else (no READY=1) came from the daemon.
      await ns.exec('/usr/bin/python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"TEST=end", "\\0" + sys.argv[1][1:])', other]);
      expect((await watcher.next('our own datagram', () => true)).message).toBe('TEST=end');
    } finally {
      watcher.close();
    }
  }, 60_000);

  it('SIGTERM: STOPPING=1, then the daemon exits 0; every message came in order', async () => {
    daemon.kill('SIGTERM');
    const stopping = await nextEvent('STOPPING=1');
    expect(stopping.fields).toEqual({ STOPPING: '1', STATUS: 'stopping (SIGTERM)' });
    expect(await exited).toBe(0);
    expect(events).toEqual(['READY+STATUS', 'STATUS', 'RELOADING+MONOTONIC_USEC+STATUS', 'READY+STATUS', 'RELOADING+MONOTONIC_USEC+STATUS', 'READY+STATUS', 'STOPPING+STATUS']);
    // Nothing after STOPPING (no watchdog ping, no status line): a datagram of our own, sent after
    // the daemon exited, is the next thing the receiver reads.
    await ns.exec('/usr/bin/python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"TEST=end", "\\0" + sys.argv[1][1:])', address]);
    expect((await notify.next('our own datagram', () => true)).message).toBe('TEST=end');
    // The interface went with the daemon.
    expect((await ns.run('ip', ['link', 'show', 'he0'])).code).not.toBe(0);
  }, 60_000);
});
