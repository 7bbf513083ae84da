/**
 * A broker in the daemon: `[broker.NAME]` checked like tunnels (errors name `broker.NAME.field`
 * with did-you-mean), `up` opening store, table (an in-memory one handed in, so no root) and
 * API, the stored tunnels back after a restart, the `broker` control commands and who may run
 * them, status and metrics, and `tun6in4 broker`'s flag errors.
 */
import { execFile, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { createConnection } from 'node:net';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDaemonConfig, parseDaemonConfigText, type DaemonConfig } from '../src/daemon/config.js';
import { queryControl } from '../src/daemon/control.js';
import { Daemon, restartKeysChanged } from '../src/daemon/daemon.js';
import { hashUpdateKey } from '../src/brokerd/update-key.js';
import { brokerCommandRestriction } from '../src/brokerd/commands.js';
import { healthSummary } from '../src/daemon/systemd.js';
import { importTunnels } from '../src/cli/broker-command.js';
import { memoryBrokerOpener } from './helpers/memory-broker.js';
import { Drop } from '../src/encap/counters.js';
import { TraceDirection, TracePoint } from '../src/engine/trace.js';
import { runCapture } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';

const NOBODY = 65534;

const dir = mkdtempSync(join(tmpdir(), 'tun6in4-brokerd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

const edge = (more: Record<string, unknown> = {}) => ({ local: '203.0.113.1', pools: ['2001:db8:4000::/36'], store: join(dir, 'edge.sqlite'), ...more });
const problemsOf = (raw: unknown): string => {
  try {
    parseDaemonConfig(raw);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

describe('[broker.NAME] in the configuration', () => {
  it('a broker alone is a configuration (no tunnels needed), with raw transport by default', () => {
    const c = parseDaemonConfig({ broker: { edge: edge() } });
    expect(c.tunnels).toEqual([]);
    expect(c.brokers).toEqual([{ name: 'edge', local: '203.0.113.1', pools: ['2001:db8:4000::/36'], store: join(dir, 'edge.sqlite'), storeSync: 'normal', transport: 'raw' }]);
  });

  it.each([
    ['a misspelt key, with did-you-mean', { edge: edge({ trasnport: 'raw' }) }, /broker\.edge\.trasnport: unknown key; did you mean "transport"\?/],
    ['a misspelt api key', { edge: edge({ api: { listen: '127.0.0.1:8641', tokenfile: '/t' } }) }, /broker\.edge\.api\.tokenfile: unknown key; did you mean "tokenFile"\?/],
    ['no store', { edge: { local: '203.0.113.1', pools: ['2001:db8:4000::/36'] } }, /broker\.edge\.store: missing; add it: the path of the tunnel store/],
    ['a bad local', { edge: edge({ local: '203.0.113' }) }, /broker\.edge\.local: use our IPv4 .* or "auto"/],
    ['no local', { edge: { pools: ['2001:db8:4000::/36'], store: '/s' } }, /broker\.edge\.local: missing; add it: our IPv4 in quotes/],
    ['no api listen', { edge: edge({ api: { tokenFile: '/t' } }) }, /broker\.edge\.api\.listen: missing; add it: host:port/],
    ['a pool that is no prefix', { edge: edge({ pools: ['2001:db8::/80'] }) }, /broker\.edge\.pools\.0: each pool is an IPv6 prefix of length 16–64/],
    ['fou without a port', { edge: edge({ transport: 'fou' }) }, /broker\.edge\.port: missing; transport "fou" needs the UDP port/],
    ['a port on raw', { edge: edge({ port: 5555 }) }, /broker\.edge\.port: only for transport = "fou"/],
    ['plain HTTP on an address other than loopback', { edge: edge({ api: { listen: '192.0.2.1:8641' } }) }, /broker\.edge\.api\.listen: 192\.0\.2\.1 is not a loopback address.*give cert and key/],
    ['cert without key', { edge: edge({ api: { listen: '192.0.2.1:8641', cert: '/c.pem' } }) }, /broker\.edge\.api\.key: missing; HTTPS needs cert and key together/],
    ['a listen that is no host:port', { edge: edge({ api: { listen: '8641' } }) }, /broker\.edge\.api\.listen: "8641" is not host:port/],
    ['two brokers on one store', { a: edge(), b: edge() }, /broker: two brokers use store/],
  ])('%s', (_what, broker, expected) => {
    expect(problemsOf({ broker })).toMatch(expected);
  });

  it('a broker with a problem is that problem only, not also "no tunnel configured"', () => {
    expect(problemsOf({ broker: { edge: edge({ transport: 'fou' }) } })).not.toMatch(/no tunnel configured/);
  });

  it('relative store and API files are beside the configuration file', () => {
    const c = parseDaemonConfigText('[broker.edge]\nlocal = "auto"\npools = ["2001:db8:4000::/36"]\nstore = "edge.sqlite"\n[broker.edge.api]\nlisten = "127.0.0.1:8641"\ntokenFile = "edge.token"\n', 'toml', '/etc/tun6in4/b.toml');
    expect(c.brokers![0]).toMatchObject({ store: '/etc/tun6in4/edge.sqlite', api: { tokenFile: '/etc/tun6in4/edge.token' } });
  });

  it('a reload cannot change a broker: it is named as needing a restart', () => {
    const a = parseDaemonConfig({ broker: { edge: edge() } });
    const b = parseDaemonConfig({ broker: { edge: edge({ pools: ['2001:db8:8000::/36'] }) } });
    expect(restartKeysChanged(a, b)).toEqual(['broker.edge']);
    expect(restartKeysChanged(a, a)).toEqual([]);
  });

  it('check -c reads the token file under the trusted-file rules', () => {
    const token = join(dir, 'loose.token');
    writeFileSync(token, 'x'.repeat(40));
    chmodSync(token, 0o644);
    const file = join(dir, 'check.json');
    writeFileSync(file, JSON.stringify({ broker: { edge: edge({ store: join(dir, 'check.sqlite'), api: { listen: '127.0.0.1:8641', tokenFile: token } }) } }));
    chmodSync(file, 0o644);
    const r = spawnSync(process.execPath, [BIN, 'check', '-c', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/broker\.edge\.api\.tokenFile: .*loose\.token: readable by others .*chmod 600/);
  }, 60_000);
});

describe('a broker in the daemon', () => {
  const socket = join(dir, 'd.sock');
  const token = join(dir, 'edge.token');
  writeFileSync(token, 'y'.repeat(40));
  chmodSync(token, 0o600);
  const config = (): DaemonConfig => ({
    ...parseDaemonConfig({ broker: { edge: edge({ store: join(dir, 'daemon.sqlite'), api: { listen: '127.0.0.1:0', tokenFile: token } }) } }),
    control: { socket, mode: 0o600 },
    logLevel: 'warn',
  });
  const ask = (req: Record<string, unknown>) => queryControl(socket, `broker ${JSON.stringify(req)}`) as Promise<Record<string, unknown>>;

  it('up opens the store and the table, the control commands change both, and a restart loads them back', async () => {
    const opener = memoryBrokerOpener();
    const d1 = new Daemon(pino({ level: 'silent' }), undefined, undefined, { openBroker: opener.open });
    await d1.start(config());
    try {
      expect(opener.opened[0].options).toEqual({ name: 'edge', local: '203.0.113.1', pools: ['2001:db8:4000::/36'], transport: 'raw' });
      const keyHash = await hashUpdateKey('k');
      expect(await ask({ op: 'add', tunnel: { id: 'alice', remote: '192.0.2.10', link: '2001:db8:4000::/64', user: 'alice', keyHash } })).toEqual({ broker: 'edge', added: 'alice' });
      expect(await ask({ op: 'add', tunnel: { id: 'bob', remote: null, link: '2001:db8:4001::/64', routed: ['2001:db8:4100::/56'] } })).toEqual({ broker: 'edge', added: 'bob' });
      expect(await ask({ op: 'add', tunnel: { id: 'bob', remote: null, link: '2001:db8:4002::/64' } })).toMatchObject({ field: 'id', error: expect.stringMatching(/exists.*broker set/) });
      expect(await ask({ op: 'set', id: 'bob', fields: { mtu: 1400 } })).toEqual({ broker: 'edge', changed: 'bob' });
      expect(await ask({ op: 'set', id: 'bob', fields: { mtu: 9000 } })).toMatchObject({ field: 'mtu' });
      expect(await ask({ op: 'add', tunnel: { id: 'carol', remote: null, link: '2001:db8:4003::/64', key: 'plain' } })).toMatchObject({ field: 'key', error: expect.stringMatching(/keyHash only/) });
      expect(await ask({ op: 'import', tunnels: [{ id: 'carol', remote: '192.0.2.30', link: '2001:db8:4003::/64' }, { id: 'dave', remote: '192.0.2.40', link: '2001:db8:4004::/64' }] })).toEqual({ broker: 'edge', imported: 2 });
      expect(await ask({ op: 'del', id: 'dave' })).toEqual({ broker: 'edge', deleted: 'dave' });
      const list = (await ask({ op: 'list' })).tunnels as Array<Record<string, unknown>>;
      expect(list.map((t) => [t.id, t.remote, t.mtu, t.hasKey])).toEqual([
        ['alice', '192.0.2.10', 1480, true],
        ['bob', null, 1400, false],
        ['carol', '192.0.2.30', 1480, false],
      ]);
      expect(JSON.stringify(list)).not.toContain('scrypt');
      const exported = (await ask({ op: 'export' })).lines as string[];
      expect(exported.map((l) => JSON.parse(l).id)).toEqual(['alice', 'bob', 'carol']);
      expect(JSON.parse(exported[0]).keyHash).toBe(keyHash);
      const status = d1.status().brokers[0];
      expect(status).toMatchObject({ name: 'edge', tunnels: 3, store: join(dir, 'daemon.sqlite'), api: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
      expect(healthSummary(d1.status())).toBe('broker edge: 3 tunnels');
      const metrics = (await queryControl(socket, 'metrics')) as { text: string };
      expect(metrics.text).toMatch(/^tun6in4_broker_tunnels\{broker="edge"\} 3$/m);
    } finally {
      await d1.stop();
    }
    expect(opener.opened[0].closed).toBe(true);
    const again = memoryBrokerOpener();
    const d2 = new Daemon(pino({ level: 'silent' }), undefined, undefined, { openBroker: again.open });
    await d2.start(config());
    try {
      expect(again.opened[0].tunnels.list().map((t) => t.id).sort()).toEqual(['alice', 'bob', 'carol']);
      expect(again.opened[0].tunnels.get('bob')!.mtu).toBe(1400);
    } finally {
      await d2.stop();
    }
  });

  it('trace {"tunnel": BROKER} streams the broker loop\'s decisions, and ends when the daemon stops', async () => {
    const opener = memoryBrokerOpener();
    const d = new Daemon(pino({ level: 'silent' }), undefined, undefined, { openBroker: opener.open });
    await d.start(config());
    const lines: string[] = [];
    let ended = false;
    const c = createConnection(socket);
    const got = (n: number) => new Promise<void>((resolve) => {
      const check = () => (lines.length >= n ? resolve() : c.once('data', check));
      check();
    });
    let buf = '';
    c.on('data', (x) => {
      buf += String(x);
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    c.on('close', () => (ended = true));
    try {
      c.write('trace {"tunnel":"edge"}\n');
      await got(1);
      expect(JSON.parse(lines[0]).trace.tunnels).toEqual(['edge']);
      const broker = opener.opened[0];
      expect(broker.tracer).not.toBeNull();
      const p = new TracePoint();
      p.direction = TraceDirection.Rx;
      p.reason = Drop.rx_source_not_tunnels;
      p.time = Date.now();
      p.outerSrc = 0xc0000a0a;
      p.buf = Buffer.alloc(60, 0x45);
      p.length = p.originalLength = 60;
      broker.tracer!(p);
      await got(2);
      expect(JSON.parse(lines[1]).event).toMatchObject({ tunnel: 'edge', direction: 'rx', verdict: 'drop', reason: 'rx_source_not_tunnels', outerSrc: '192.0.10.10' });
    } finally {
      await d.stop();
    }
    await new Promise<void>((resolve) => (ended ? resolve() : c.once('close', () => resolve())));
    expect(opener.opened[0].tracer).toBeNull();
  });

  it('a broker that cannot start stops the daemon from starting, naming the field', async () => {
    const bad = { ...config(), brokers: [{ ...config().brokers![0], api: { listen: '127.0.0.1:0', tokenFile: join(dir, 'missing.token') } }] };
    const d = new Daemon(pino({ level: 'silent' }), undefined, undefined, { openBroker: memoryBrokerOpener().open });
    await expect(d.start(bad)).rejects.toThrow(/broker\.edge\.api\.tokenFile: .*missing\.token/);
  });

  it.runIf(rootOrSkip())('another user who may connect (and trace, with control.trace = "group") may list, but not change the broker', async () => {
    const shared = mkdtempSync(join(tmpdir(), 'tun6in4-brokerd-group-'));
    chmodSync(shared, 0o755);
    const path = join(shared, 'g.sock');
    const d = new Daemon(pino({ level: 'silent' }), undefined, undefined, { openBroker: memoryBrokerOpener().open });
    const asNobody = async (command: string) => {
      const client = 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2]+"\\n").encode()); print(s.makefile().readline())';
      const r = await runCapture('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '/usr/bin/python3', '-c', client, path, command], { timeoutMs: 10_000 });
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    try {
      await d.start({ ...config(), brokers: [{ ...config().brokers![0], store: join(shared, 'g.sqlite'), api: undefined }], control: { socket: path, mode: 0o660, trace: 'group' } }, NOBODY);
      const add = await asNobody(`broker ${JSON.stringify({ op: 'add', tunnel: { id: 'x', remote: null, link: '2001:db8:4000::/64' } })}`);
      expect(add.error).toMatch(/^"broker" changes the broker's tunnels: only root or the daemon's user \(uid 0\) may, not uid 65534/);
      expect(await asNobody('broker {"op":"list"}')).toEqual({ broker: 'edge', tunnels: [] });
      expect(await asNobody('broker {"op":"export"}')).toMatchObject({ error: expect.stringMatching(/hashes/) });
    } finally {
      await d.stop();
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it('changes, export and show (packet bytes) are for root and the daemon\'s user; list is for anyone who can connect', () => {
    const cmd = (op: string) => `broker ${JSON.stringify({ op })}`;
    expect(brokerCommandRestriction(cmd('list'))).toBeNull();
    for (const op of ['add', 'set', 'del', 'import']) expect(brokerCommandRestriction(cmd(op))).toMatch(/changes the broker's tunnels/);
    expect(brokerCommandRestriction(cmd('export'))).toMatch(/hashes/);
    expect(brokerCommandRestriction(cmd('show'))).toMatch(/packet bytes/);
    // an op inside a field does not pass for the command's own
    expect(brokerCommandRestriction('broker {"fields":{"op":"list"},"op":"set","id":"a"}')).toMatch(/changes/);
  });
});

describe('tun6in4 broker against a running daemon', () => {
  /** The CLI in a child (this process runs the daemon, so never spawnSync here). */
  const cli = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'broker', ...args], { encoding: 'utf8', timeout: 60_000 }, (e, stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });

  it('add (a key file hashed by the command), list, show, import, export, del; the hashed key then passes nic/update', async () => {
    const socket = join(dir, 'cli.sock');
    const key = join(dir, 'alice.key');
    writeFileSync(key, 'alice-key\n');
    chmodSync(key, 0o600);
    const lines = join(dir, 'import.jsonl');
    writeFileSync(lines, '{"id":"bob","remote":null,"link":"2001:db8:4001::/64","user":"bob","key":"bob-key"}\n');
    const d = new Daemon(pino({ level: 'silent' }), undefined, undefined, { openBroker: memoryBrokerOpener().open });
    await d.start({ ...parseDaemonConfig({ broker: { edge: edge({ store: join(dir, 'cli.sqlite'), api: { listen: '127.0.0.1:0' } }) } }), control: { socket, mode: 0o600 }, logLevel: 'warn' });
    try {
      const c = ['--control', socket];
      expect(await cli('add', 'alice', '--remote', '192.0.2.10', '--link', '2001:db8:4000::/64', '--routed', '2001:db8:4100::/48', '--user', 'alice', '--key-file', key, ...c)).toMatchObject({ code: 0, stdout: 'added alice to broker edge\n' });
      expect(await cli('import', lines, ...c)).toMatchObject({ code: 0, stdout: 'imported 1 tunnel\n' });
      expect(await cli('set', 'bob', '--mtu', '1500', ...c)).toMatchObject({ code: 2, stderr: expect.stringMatching(/^tun6in4: --mtu: 1500 is not valid/) });
      expect(await cli('set', 'bob', '--link', '2001:db8:4000::/64', ...c)).toMatchObject({ code: 2, stderr: expect.stringMatching(/^tun6in4: --link: .*held by tunnel alice/) });
      const list = JSON.parse((await cli('list', '--json', ...c)).stdout) as Array<Record<string, unknown>>;
      expect(list.map((t) => [t.id, t.remote, t.hasKey])).toEqual([
        ['alice', '192.0.2.10', true],
        ['bob', null, true],
      ]);
      expect((await cli('show', 'alice', ...c)).stdout).toMatch(/^alice on broker edge\n {2}remote 192\.0\.2\.10\n {2}link 2001:db8:4000::\/64 .*\n {2}routed 2001:db8:4100::\/48\n/);
      const exported = (await cli('export', ...c)).stdout.trim().split('\n');
      expect(exported.map((l) => JSON.parse(l).id)).toEqual(['alice', 'bob']);
      expect(exported.join('\n')).not.toMatch(/alice-key|bob-key/);
      expect(await cli('del', 'bob', ...c)).toMatchObject({ code: 0, stdout: 'removed bob from broker edge\n' });
      const port = Number(d.status().brokers[0].api!.split(':').at(-1));
      const answer = await new Promise<string>((resolve, reject) =>
        request({ host: '127.0.0.1', port, path: '/nic/update?hostname=alice&myip=198.51.100.7', headers: { authorization: `Basic ${Buffer.from('alice:alice-key').toString('base64')}` } }, (r) => {
          let b = '';
          r.on('data', (x) => (b += x));
          r.on('end', () => resolve(b));
        })
          .on('error', reject)
          .end(),
      );
      expect(answer).toBe('good 198.51.100.7\n');
    } finally {
      await d.stop();
    }
  }, 120_000);
});

describe('tun6in4 broker', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'broker', ...args], { encoding: 'utf8', timeout: 60_000 });

  it.each([
    ['an MTU out of range', ['add', 'a', '--remote', '192.0.2.1', '--link', '2001:db8:1::/64', '--mtu', '1500'], /^tun6in4: --mtu: 1500 is not valid; use an integer in 1280\.\.1480/],
    ['a remote that is no IPv4', ['add', 'a', '--remote', '192.0.2', '--link', '2001:db8:1::/64'], /^tun6in4: --remote: "192\.0\.2" is not an IPv4 address; give the client's public IPv4, or none to park/],
    ['a link that is no /64', ['add', 'a', '--remote', '192.0.2.1', '--link', '2001:db8:1::/48'], /^tun6in4: --link: .*prefix of length 64/],
    ['a routed prefix too long', ['add', 'a', '--remote', 'none', '--link', '2001:db8:1::/64', '--routed', '2001:db8:2::/80'], /^tun6in4: --routed: .*length 32–64/],
    ['no link', ['add', 'a', '--remote', '192.0.2.1'], /required option '--link <prefix>' not specified/],
    ['a set with nothing to change', ['set', 'a'], /^tun6in4: set: nothing to change; give --remote/],
  ])('%s: exit 2 naming the flag and the fix', (_what, args, expected) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(expected);
  }, 60_000);

  it('import hashes a plain key and names the line of a bad one', async () => {
    const [t] = await importTunnels('# from the old broker\n{"id":"a","remote":null,"link":"2001:db8:1::/64","user":"a","key":"k"}\n');
    expect(t.keyHash).toMatch(/^scrypt\$/);
    await expect(importTunnels('{"id":"a","link":"2001:db8:1::/64"}\n\n{"id":"b","link":"2001:db8:2::/64","mtu":9000}\n')).rejects.toThrow(/^line 3: mtu:/);
  });
});
