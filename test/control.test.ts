/**
 * Who owns a control socket: an flock on `<path>.lock` held for the daemon's lifetime. A stale
 * socket file is reclaimed, a live daemon's socket is never unlinked, and daemons started at the
 * same moment all come up (the losers on per-process sockets) and leave nothing behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createConnection, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ControlSocketBusyError, listenControl, queryControl, type ControlListener } from '../src/daemon/control.js';
import { DEFAULT_CONTROL_SOCKET } from '../src/daemon/config.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { NamespaceSet, type Namespace } from '../src/lab/netns.js';
import { ping6 } from '../src/lab/probes.js';
import { rootOrSkip } from './helpers/netlab.js';

const dir = mkdtempSync(join(tmpdir(), 'tun6in4-control-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('claiming a control socket', () => {
  const open: ControlListener[] = [];
  const listen = async (path: string, answer = 'a') => {
    const l = await listenControl(path, 0o600, undefined, () => ({ answer }));
    open.push(l);
    return l;
  };
  afterEach(async () => {
    for (const l of open.splice(0)) await l.close();
  });

  it('a stale socket file (its process gone) is reclaimed', async () => {
    const path = join(dir, 'stale.sock');
    // python binds and exits without unlinking: a socket file nobody answers on, as a crash leaves
    expect(spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`]).status).toBe(0);
    expect(existsSync(path)).toBe(true);
    await listen(path);
    expect(await queryControl(path, 'status')).toEqual({ answer: 'a' });
  });

  it('a live daemon\'s socket is never unlinked: the second claimant is told it is busy', async () => {
    const path = join(dir, 'live.sock');
    await listen(path, 'first');
    await expect(listenControl(path, 0o600, undefined, () => ({ answer: 'second' }))).rejects.toBeInstanceOf(ControlSocketBusyError);
    expect(await queryControl(path, 'status')).toEqual({ answer: 'first' });
    expect(readFileSync(`${path}.lock`, 'utf8').trim()).toBe(String(process.pid));
  });

  it('a socket answered by a process that holds no lock (an older daemon) is left alone too', async () => {
    const path = join(dir, 'legacy.sock');
    const legacy = [
      'import socket',
      `s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)}); s.listen(); print('ready', flush=True)`,
      'while True:',
      '    c, _ = s.accept()',
      '    try:',
      '        if c.recv(100): c.sendall(b\'{"answer":"legacy"}\\n\')',
      '    except OSError: pass',
      '    c.close()',
    ].join('\n');
    const server = spawn('python3', ['-c', legacy], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => createInterface({ input: server.stdout! }).once('line', () => resolve()));
      await expect(listenControl(path, 0o600, undefined, () => ({}))).rejects.toBeInstanceOf(ControlSocketBusyError);
      expect(await queryControl(path, 'status')).toEqual({ answer: 'legacy' });
      expect(existsSync(`${path}.lock`)).toBe(false);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('a path that is not a socket is refused, not removed', async () => {
    const path = join(dir, 'file.sock');
    writeFileSync(path, 'not a socket');
    await expect(listenControl(path, 0o600, undefined, () => ({}))).rejects.toThrow(/exists and is not a socket/);
    expect(readFileSync(path, 'utf8')).toBe('not a socket');
  });

  it('a client that says nothing is let go, and clients beyond the cap are turned away', async () => {
    const path = join(dir, 'limits.sock');
    const l = await listenControl(path, 0o600, undefined, () => ({ answer: 'a' }), { idleMs: 50, maxConnections: 1 });
    open.push(l);
    const closed = (c: Socket) => new Promise<void>((resolve) => c.once('close', () => resolve()));
    const silent = createConnection(path);
    await new Promise((resolve) => silent.once('connect', resolve));
    const extra = createConnection(path); // the second at once: over the cap of one
    await closed(extra);
    await closed(silent); // idle past 50 ms: the server hangs up (the test's own timeout bounds this wait)
    expect(await queryControl(path, 'status')).toEqual({ answer: 'a' }); // room again
  });

  it('closing removes the socket and its lock file, and the path can be claimed again', async () => {
    const path = join(dir, 'again.sock');
    const l = await listenControl(path, 0o600, undefined, () => ({}));
    await l.close();
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.lock`)).toBe(false);
    await listen(path);
    expect(existsSync(path)).toBe(true);
  });
});

const canRun = rootOrSkip();
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

describe.runIf(canRun)('daemons started at the same moment (default control socket, in namespaces)', () => {
  const set = new NamespaceSet('ctl');
  const ns: Namespace[] = [];
  // two tunnels: n0 <-> n1 and n2 <-> n3, each over its own veth
  const ends = [
    { local: '192.0.2.1', remote: '192.0.2.2', address: '2001:db8:1::1/64', peer: '2001:db8:1::2' },
    { local: '192.0.2.2', remote: '192.0.2.1', address: '2001:db8:1::2/64', peer: '2001:db8:1::1' },
    { local: '198.51.100.1', remote: '198.51.100.2', address: '2001:db8:2::1/64', peer: '2001:db8:2::2' },
    { local: '198.51.100.2', remote: '198.51.100.1', address: '2001:db8:2::2/64', peer: '2001:db8:2::1' },
  ];
  beforeAll(async () => {
    for (let i = 0; i < 4; i++) ns.push(await set.add(`n${i}`));
    for (const [a, b] of [[0, 1], [2, 3]]) {
      await set.link(ns[a], 'v0', ns[b], 'v0');
      await ns[a].ip(['addr', 'add', `${ends[a].local}/24`, 'dev', 'v0']);
      await ns[b].ip(['addr', 'add', `${ends[b].local}/24`, 'dev', 'v0']);
    }
  }, 60_000);
  afterAll(() => set.destroy());

  /** Starts a daemon; resolves with its control socket once it logged "tunnel up". */
  function start(i: number): { child: ChildProcess; up: Promise<string> } {
    const e = ends[i];
    const child = ns[i].spawn(process.execPath, [BIN, 'run', '--mode', '6in4', '--local', e.local, '--remote', e.remote, '--address', e.address, '--peer', e.peer, '--dev', 'tun0', '--keepalive', 'off', '--no-default-route']);
    const logs: string[] = [];
    const up = new Promise<string>((resolve, reject) => {
      let control = DEFAULT_CONTROL_SOCKET;
      createInterface({ input: child.stderr! }).on('line', (line) => {
        logs.push(line);
        const rec = JSON.parse(line) as { msg: string; control?: string };
        if (rec.control) control = rec.control;
        if (rec.msg === 'tunnel up') resolve(control);
      });
      child.once('exit', (code) => reject(new Error(`daemon ${i} exited ${code} before coming up:\n${logs.join('\n')}`)));
    });
    return { child, up };
  }

  it('4 daemons at once, 20 times: all come up, every tunnel pings, each status answers, no socket file is left', async () => {
    for (let round = 0; round < 20; round++) {
      const daemons = [0, 1, 2, 3].map(start);
      try {
        const controls = await Promise.all(daemons.map((d) => d.up));
        expect(new Set(controls).size, `round ${round}: ${controls.join(', ')}`).toBe(4);
        expect((await ping6(ns[0], '2001:db8:1::2', { count: 1 })).ok, `round ${round}: tunnel n0-n1`).toBe(true);
        expect((await ping6(ns[3], '2001:db8:2::1', { count: 1 })).ok, `round ${round}: tunnel n2-n3`).toBe(true);
        for (let i = 0; i < 4; i++) {
          const s = (await queryControl(controls[i], 'status')) as DaemonStatus;
          expect(s.tunnels[0]?.address, `round ${round}: daemon ${i} at ${controls[i]}`).toBe(ends[i].address);
        }
        const pids = daemons.map((d) => String(d.child.pid));
        await Promise.all(daemons.map((d) => new Promise((resolve) => (d.child.once('exit', resolve), d.child.kill('SIGTERM')))));
        for (const c of controls) {
          // (the default path may already be another test's daemon's: then the lock names it)
          const owner = existsSync(`${c}.lock`) ? readFileSync(`${c}.lock`, 'utf8').trim() : null;
          expect(owner !== null && pids.includes(owner), `round ${round}: ${c}.lock left behind`).toBe(false);
          if (owner === null) expect(existsSync(c), `round ${round}: ${c} left behind`).toBe(false);
        }
      } finally {
        for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
      }
    }
  }, 600_000);
});
