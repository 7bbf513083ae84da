/**
 * Issue 22 item 1: what a reload does with the settings outside `tunnels`. It applies log.level,
 * metrics.listen and control.trace at once; user, group and the control socket's path, mode and
 * group need a restart, so it keeps the old ones, names them in status and the log, and the
 * running configuration (what `show` prints) says what runs, not what the file says. No tunnel is
 * needed for any of this, so the daemon runs here with none, as an unprivileged test.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDaemonConfig, type DaemonConfig } from '../src/daemon/config.js';
import { queryControl } from '../src/daemon/control.js';
import { Daemon, type RunningConfig } from '../src/daemon/daemon.js';
import { formatStatus } from '../src/cli/status-format.js';

/** A port nothing listens on right now (the kernel's pick for a listener we close again). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves with the HTTP status of GET /metrics, or the connection error's code. */
function scrape(port: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });
}

describe('reload: settings outside tunnels', () => {
  let dir: string;
  let daemon: Daemon;
  let first: DaemonConfig;
  let ports: number[];
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(s) });
  const sock = () => join(dir, 'd.sock');
  const config = (over: Partial<DaemonConfig> = {}): DaemonConfig => ({
    tunnels: [],
    control: { socket: sock(), mode: 0o660 },
    metrics: { listen: `127.0.0.1:${ports[0]}` },
    logLevel: 'info',
    ...over,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-reload-'));
    ports = [await freePort(), await freePort()];
    daemon = new Daemon(log);
    first = config();
    await daemon.start(first);
  });
  afterAll(async () => {
    await daemon?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a tightened socket mode (0660 → 0600) needs a restart: the socket keeps 0660, status and show say so', async () => {
    await daemon.reload(() => config({ control: { socket: sock(), mode: 0o600 } }));
    expect(statSync(sock()).mode & 0o777).toBe(0o660);
    const st = daemon.status();
    expect(st.lastReload).toMatchObject({ ok: true, restartNeeded: ['control.mode'] });
    expect(formatStatus(st)).toMatch(/last reload .*: ok; control\.mode changed: restart to apply \(running on with the old values\)/);
    const shown = (await queryControl(sock(), 'config')) as RunningConfig;
    expect(shown.config.control.mode).toBe('0660');
    expect(lines.join('')).toMatch(/control\.mode changed in the file but take effect only on a restart/);
  });

  it('user, group and the socket\'s path and group are restart-only too, and show keeps the running ones', async () => {
    await daemon.reload(() => config({ user: 'nobody', group: 'nogroup', control: { socket: join(dir, 'other.sock'), mode: 0o660, group: 'nogroup' } }));
    expect(daemon.status().lastReload?.restartNeeded).toEqual(['user', 'group', 'control.socket', 'control.group']);
    const shown = daemon.runningConfig().config;
    expect(shown.user).toBeUndefined();
    expect(shown.group).toBeUndefined();
    expect(shown.control).toEqual({ socket: sock(), mode: '0660' });
  });

  it('metrics.listen moves at once: the new port answers, the old one is closed', async () => {
    expect(await scrape(ports[0])).toBe(200);
    await daemon.reload(() => config({ metrics: { listen: `127.0.0.1:${ports[1]}` } }));
    expect(daemon.status().lastReload).toEqual({ at: expect.any(String), ok: true });
    expect(await scrape(ports[1])).toBe(200);
    expect(await scrape(ports[0])).toBe('ECONNREFUSED');
    expect(daemon.runningConfig().config.metrics).toEqual({ listen: `127.0.0.1:${ports[1]}` });
  });

  it('a metrics address that cannot be bound keeps the old listener and says why', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(ports[0], '127.0.0.1', () => r()));
    try {
      await daemon.reload(() => config({ metrics: { listen: `127.0.0.1:${ports[0]}` } }));
      expect(daemon.status().lastReload?.error).toMatch(new RegExp(`metrics\\.listen: cannot listen on 127\\.0\\.0\\.1:${ports[0]}: EADDRINUSE; choose a free port.*; still on 127\\.0\\.0\\.1:${ports[1]}`));
      expect(await scrape(ports[1])).toBe(200);
      expect(daemon.runningConfig().config.metrics).toEqual({ listen: `127.0.0.1:${ports[1]}` });
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });

  it('log.level applies at once, and control.trace too', async () => {
    await daemon.reload(() => config({ metrics: { listen: `127.0.0.1:${ports[1]}` }, logLevel: 'warn', control: { socket: sock(), mode: 0o660, trace: 'group' } }));
    expect(log.level).toBe('warn');
    const shown = daemon.runningConfig().config;
    expect(shown.log).toEqual({ level: 'warn' });
    expect(shown.control.trace).toBe('group');
    expect(daemon.status().lastReload).toEqual({ at: expect.any(String), ok: true });
  });
});

describe('issue 22 item 4: a metrics address up cannot use', () => {
  it('check refuses a port outside 1..65535 (and takes an IPv6 host in brackets)', () => {
    const tunnels = { t: { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true } };
    for (const listen of ['127.0.0.1:99999', '127.0.0.1:0', '127.0.0.1:65536']) {
      expect(() => parseDaemonConfig({ tunnels, metrics: { listen } })).toThrow(/metrics\.listen: the port must be 1\.\.65535/);
    }
    expect(parseDaemonConfig({ tunnels, metrics: { listen: '[::1]:9641' } }).metrics.listen).toBe('[::1]:9641');
  });

  it('a taken port fails the start naming the file and the field, and leaves no control socket or lock file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-metrics-'));
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    const socket = join(dir, 'd.sock');
    try {
      const d = new Daemon(pino({ level: 'silent' }));
      const start = d.start({ file: '/etc/tun6in4/tun6in4.toml', tunnels: [], control: { socket, mode: 0o600 }, metrics: { listen: `127.0.0.1:${port}` }, logLevel: 'info' });
      await expect(start).rejects.toThrow(new RegExp(`^/etc/tun6in4/tun6in4\\.toml: metrics\\.listen: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE; choose a free port`));
      expect(existsSync(socket)).toBe(false);
      expect(existsSync(`${socket}.lock`)).toBe(false);
    } finally {
      await new Promise((r) => busy.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a library caller handing up an out-of-range port gets the same kind of message, not Node\'s RangeError', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-metrics-'));
    try {
      const d = new Daemon(pino({ level: 'silent' }));
      await expect(d.start({ tunnels: [], control: { socket: join(dir, 'd.sock'), mode: 0o600 }, metrics: { listen: '127.0.0.1:99999' }, logLevel: 'info' })).rejects.toThrow(
        /^metrics\.listen: cannot listen on 127\.0\.0\.1:99999: ERR_SOCKET_BAD_PORT; choose a free port/,
      );
      expect(existsSync(join(dir, 'd.sock.lock'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
