/**
 * Issue 22 item 7: who may use the control socket for what. The socket's mode and group decide
 * who connects; trace (the first bytes of every packet) is only for root and the daemon's own
 * user, told apart by the kernel's SO_PEERCRED, unless control.trace = "group". A socket every
 * local user can reach is refused, and setting the socket up follows no symlink a racer put in
 * its place. The clients here are real processes running as another user (`nobody`).
 */
import { chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { daemonConfigToFile, parseDaemonConfig } from '../src/daemon/config.js';
import { listenControl, queryControl, type ControlListener, type ControlPeer } from '../src/daemon/control.js';
import { Daemon } from '../src/daemon/daemon.js';
import type { DaemonConfig } from '../src/daemon/config.js';
import type { TunnelSpec } from '../src/daemon/managed-tunnel.js';
import type { Tracer } from '../src/engine/trace.js';
import { pino } from 'pino';
import { NamespaceSet, runCapture } from '../src/lab/netns.js';
import { installForAnyUser, type InstalledCopy } from './helpers/installed.js';
import { rootOrSkip } from './helpers/netlab.js';

const NOBODY = 65534;
const TUNNELS = { t: { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true } };
const isTrace = (cmd: string) => cmd === 'trace' || cmd.startsWith('trace ');

/** One command from a python client running as nobody (group nogroup), its one answer line. */
async function askAsNobody(path: string, command: string): Promise<Record<string, unknown>> {
  const client = 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2]+"\\n").encode()); print(s.makefile().readline())';
  const r = await runCapture('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/usr/bin/python3', '-c', client, path, command], { timeoutMs: 10_000 });
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('control socket settings in the file', () => {
  it('a mode others can reach is refused with the fix', () => {
    for (const mode of ['0666', '0604', '0662', '0601']) {
      expect(() => parseDaemonConfig({ tunnels: TUNNELS, control: { mode } })).toThrow(/control\.mode: a socket others can reach .*use "0600", or "0660" with control\.group/);
    }
    expect(parseDaemonConfig({ tunnels: TUNNELS, control: { mode: '0660' } }).control.mode).toBe(0o660);
  });

  it('control.trace is "owner" unless set to "group", and show prints what was set', () => {
    expect(parseDaemonConfig({ tunnels: TUNNELS }).control.trace).toBeUndefined();
    const c = parseDaemonConfig({ tunnels: TUNNELS, control: { trace: 'group' } });
    expect(c.control.trace).toBe('group');
    expect(daemonConfigToFile(c).control.trace).toBe('group');
    expect(() => parseDaemonConfig({ tunnels: TUNNELS, control: { trace: 'everyone' } })).toThrow(/control\.trace: use "owner"/);
  });

  it('a library caller cannot open a world-accessible socket either', async () => {
    const d = mkdtempSync(join(tmpdir(), 'tun6in4-ctl-mode-'));
    try {
      await expect(listenControl(join(d, 'c.sock'), 0o666, undefined, () => ({}))).rejects.toThrow(/mode 0666 lets every local user connect/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe.runIf(rootOrSkip())('trace only for root and the daemon\'s user (SO_PEERCRED)', () => {
  let dir: string;
  const open: ControlListener[] = [];
  const seen: Array<ControlPeer | null> = [];
  const handler = (cmd: string, peer: ControlPeer | null) => {
    seen.push(peer);
    return isTrace(cmd) ? { packets: 'the first 256 bytes of every packet' } : { status: 'ok' };
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-ctl-access-'));
    chmodSync(dir, 0o755);
  });
  afterEach(async () => {
    for (const l of open.splice(0)) await l.close();
    vi.restoreAllMocks();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the socket\'s group gets status but not trace; root gets both; the handler sees who asked', async () => {
    const path = join(dir, 'owner.sock');
    open.push(await listenControl(path, 0o660, NOBODY, handler, undefined, { restricted: isTrace }));
    expect(statSync(path).gid).toBe(NOBODY);
    expect(await askAsNobody(path, 'status')).toEqual({ status: 'ok' });
    expect(seen.at(-1)).toMatchObject({ uid: NOBODY, gid: NOBODY });
    const refused = await askAsNobody(path, 'trace --tunnel t');
    expect(refused.packets).toBeUndefined();
    expect(refused.error).toMatch(/"trace" shows packet bytes: only root or the daemon's user \(uid 0\) may run it, not uid 65534.*control\.trace = "group"/);
    expect(await queryControl(path, 'trace')).toEqual({ packets: 'the first 256 bytes of every packet' });
    expect(seen.at(-1)).toMatchObject({ uid: 0, pid: process.pid });
  });

  it('control.trace = "group" lets everyone who can connect trace', async () => {
    const path = join(dir, 'group.sock');
    open.push(await listenControl(path, 0o660, NOBODY, handler, undefined, { restricted: isTrace, forGroup: true }));
    expect(await askAsNobody(path, 'trace')).toEqual({ packets: 'the first 256 bytes of every packet' });
  });

  it('a symlink put in the socket\'s place after bind is neither chmod\'ed nor chown\'ed through; the start fails', async () => {
    const path = join(dir, 'raced.sock');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'x\n', { mode: 0o644 });
    chmodSync(victim, 0o644);
    // What a racer who can write the directory does between bind and the daemon's next step.
    const realListen = Server.prototype.listen;
    vi.spyOn(Server.prototype, 'listen').mockImplementationOnce(function (this: Server, ...args: unknown[]) {
      const cb = args.at(-1) as () => void;
      return realListen.call(this, args[0] as string, () => {
        unlinkSync(path);
        symlinkSync(victim, path);
        cb();
      });
    } as typeof Server.prototype.listen);
    await expect(listenControl(path, 0o600, NOBODY, handler)).rejects.toThrow(/was replaced while the control socket was being set up/);
    const st = statSync(victim);
    expect(st.mode & 0o777).toBe(0o644);
    expect(st.gid).toBe(0);
    expect(lstatSync(path, { throwIfNoEntry: false })).toBeUndefined();
  });
});


describe.runIf(rootOrSkip())('a reload that narrows control.trace', () => {
  it('ends the traces of the group\'s users that were running, telling them why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-ctl-narrow-'));
    chmodSync(dir, 0o755);
    const socket = join(dir, 'd.sock');
    const spec: TunnelSpec = { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true };
    const config = (trace: 'owner' | 'group'): DaemonConfig => ({ tunnels: [{ name: 't', spec }], control: { socket, mode: 0o660, trace }, metrics: {}, logLevel: 'info' });
    // A tunnel as far as trace and reload see one (no TUN needed): it says when it is watched.
    let watched: () => void = () => undefined;
    const watching = new Promise<void>((r) => (watched = r));
    let unwatched = false;
    const tunnel = {
      name: 't',
      spec,
      watch: (_t: Tracer, _end: (why: string) => void) => (watched(), () => (unwatched = true)),
      close: async () => undefined,
    };
    const daemon = new Daemon(pino({ level: 'silent' }));
    try {
      await daemon.start({ ...config('group'), tunnels: [] }, NOBODY);
      (daemon.tunnels as Map<string, unknown>).set('t', tunnel);
      const client = 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"trace {}\\n"); [print(l, end="", flush=True) for l in s.makefile()]';
      const traced = runCapture('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/usr/bin/python3', '-c', client, socket], { timeoutMs: 30_000 });
      await watching;
      await daemon.reload(() => config('owner'));
      const lines = (await traced).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({ trace: { tunnels: ['t'] } });
      expect(lines.at(-1)!.end).toMatch(/^a reload narrowed who may run it: "trace" shows packet bytes: only root or the daemon's user \(uid 0\) may run it, not uid 65534/);
      expect(unwatched).toBe(true);
      // the tunnel itself was not touched
      expect(daemon.tunnels.get('t')).toBe(tunnel);
    } finally {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(rootOrSkip())('the documented unprivileged start (setpriv, docs/operating.md)', () => {
  const set = new NamespaceSet('ctlpriv');
  // nobody may not be able to read this checkout (CI's clone is in a 0700 directory): it runs an
  // installed copy in a directory it can read
  let installed: InstalledCopy;
  beforeAll(() => {
    installed = installForAnyUser();
  }, 120_000);
  afterAll(async () => {
    installed?.remove();
    await set.destroy();
  });

  it('without a directory of its own for the control socket it names the lock file and the fix; with one (install -d) it gets past it', async () => {
    const ns = await set.add('ns');
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-setpriv-'));
    chmodSync(dir, 0o755);
    const run = join(dir, 'run');
    mkdirSync(run, { mode: 0o755 });
    const socket = join(run, 'tun6in4.sock');
    const conf = join(dir, 'tun6in4.json');
    writeFileSync(conf, JSON.stringify({ tunnels: { he: { mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' } }, control: { socket } }), { mode: 0o644 });
    const bin = installed.bin;
    const setpriv = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--init-groups', '--inh-caps=+net_admin,+net_raw', '--ambient-caps=+net_admin,+net_raw', process.execPath, bin, 'up', '-c', conf];
    try {
      const refused = await ns.run('setpriv', setpriv, { timeoutMs: 60_000 });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        `tun6in4: cannot create the control socket's lock file ${socket}.lock (EACCES): this user (nobody, uid ${NOBODY}) cannot write ${run}; make the directory its own first (sudo install -d -o nobody -m 0750 ${run}; under systemd RuntimeDirectory=tun6in4 does it), or choose a control socket in a directory it can write (--control PATH, control.socket)`,
      );
      // what the message says to do
      chownSync(run, NOBODY, 0);
      chmodSync(run, 0o750);
      const started = await ns.run('setpriv', setpriv, { timeoutMs: 60_000 });
      // past the control socket: the tunnel itself is what fails here (this namespace has no 192.0.2.1)
      expect(started.stderr).not.toContain('lock file');
      expect(started.stderr).toMatch(/he: local: "192\.0\.2\.1" is not valid; it is not an address of this host/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
