/**
 * Operating a tunnel, end to end as root in namespaces these tests create: a config file with
 * several tunnels and SIGHUP reloads, status over the control socket, Prometheus metrics,
 * keepalive and the tunnel state, --local auto following an address change, the broker update
 * against a server playing the broker, --clamp-mss, doctor, and running as an unprivileged user.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6, tcpTransfer } from '../src/lab/probes.js';
import { LabNetwork, type EngineProcess } from '../src/lab/topology.js';
import { installForAnyUser, type InstalledCopy } from './helpers/installed.js';
import { rootOrSkip, startCapture, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const FAKE_BROKER = fileURLToPath(new URL('./helpers/fake-broker.ts', import.meta.url));

describe.runIf(canRun)('operating a broker tunnel', () => {
  let lab: LabNetwork;
  let dir: string;
  let configPath: string;
  let client: EngineProcess;
  let control: string;
  let broker: ChildProcess;
  const brokerRequests: Array<{ url: string; auth: string | null }> = [];
  const he = {
    mode: '6in4',
    local: 'auto',
    remote: '198.51.100.1',
    address: '2001:db8:1::2/64',
    routed: ['2001:db8:2::/64'],
    dev: 'tun0',
    keepalive: 1,
    localCheckSeconds: 1,
    clampMss: true,
    update: { url: 'http://198.51.100.1:8080/nic/update', insecureHttp: true, tunnelId: '4242', username: 'lab', keyFile: '' },
  };
  const writeConfig = (tunnels: Record<string, unknown>) =>
    writeFileSync(configPath, JSON.stringify({ tunnels, control: { socket: control, mode: '0660' }, metrics: { listen: '127.0.0.1:9641' } }, null, 2));
  const status = () => queryControl(control, 'status') as Promise<DaemonStatus>;
  const tunnel = (s: DaemonStatus, name: string) => s.tunnels.find((t) => t.tunnel === name);

  beforeAll(async () => {
    await removeStaleNamespaces('op');
    lab = await LabNetwork.create('6in4', 'op', {
      skipEngines: ['client'],
      engineArgs: { broker: ['--keepalive', '1', '--user', 'nobody', '--routed', '2001:db8:99::/64'] },
    });
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-op-'));
    writeFileSync(join(dir, 'he.key'), 'lab-update-key\n', { mode: 0o600 });
    he.update.keyFile = join(dir, 'he.key');
    configPath = join(dir, 'tun6in4.json');
    control = `/run/tun6in4/${lab.host('client').name}-up.sock`;
    // the broker's update endpoint, in the broker's namespace
    broker = lab.host('broker').spawn(process.execPath, ['--import', import.meta.resolve('tsx'), FAKE_BROKER, '198.51.100.1', '8080', 'good 192.0.2.1', 'nochg 192.0.2.1']);
    createInterface({ input: broker.stdout! }).on('line', (l) => brokerRequests.push(JSON.parse(l)));
    await new Promise<void>((resolve) => createInterface({ input: broker.stderr! }).once('line', () => resolve()));
    writeConfig({ he });
    client = await lab.startTun6in4('client', ['up', '-c', configPath], control);
  }, 90_000);

  afterAll(async () => {
    broker?.kill('SIGKILL');
    await lab?.destroy();
  });

  it('status over the control socket: keepalive answered, state up, socket mode 0660', async () => {
    const s = await until('keepalive replies', status, (s) => (tunnel(s, 'he')?.keepalive?.received ?? 0) >= 2 && tunnel(s, 'he')?.health === 'up');
    const he0 = tunnel(s, 'he')!;
    expect(he0.keepalive!.rttMs.last).toBeGreaterThan(0);
    expect(he0.keepalive!.lossPercent).toBe(0);
    expect(statSync(control).mode & 0o777).toBe(0o660);
    const human = spawnSync(process.execPath, [BIN, 'status', '--control', control], { encoding: 'utf8' });
    expect(human.status).toBe(0);
    expect(human.stdout).toMatch(/he \(tun0\) 6in4 UP/);
    expect(human.stdout).toMatch(/keepalive every 1 s: rtt [\d.]+ ms/);
    // issue 22: the keepalive's replies are packets received ("rx … (last never)" before)
    expect(he0.lastRxAt).not.toBeNull();
    expect(human.stdout).toMatch(/he \(tun0\)[^]*?\n  rx \d+ packets \/ \d+ bytes \(last \d+ s ago\)/);
  }, 30_000);

  it('broker update: at start, with the tunnel id and basic auth; the result shows in status', async () => {
    const s = await until('broker update', status, (s) => tunnel(s, 'he')?.brokerUpdate?.outcome === 'good');
    expect(brokerRequests[0].url).toBe('/nic/update?hostname=4242');
    expect(brokerRequests[0].auth).toBe(`Basic ${Buffer.from('lab:lab-update-key').toString('base64')}`);
    expect(tunnel(s, 'he')!.brokerUpdate!.response).toBe('good 192.0.2.1');
  }, 30_000);

  it('Prometheus metrics on the opt-in listen address', async () => {
    const text = await lab.host('client').exec(process.execPath, ['-e', "fetch('http://127.0.0.1:9641/metrics').then(r => r.text()).then(t => process.stdout.write(t))"]);
    expect(text).toMatch(/^# TYPE tun6in4_rx_packets_total counter$/m);
    expect(text).toMatch(/^tun6in4_rx_packets_total\{tunnel="he"\} \d+$/m);
    expect(text).toMatch(/^tun6in4_drops_total\{tunnel="he",reason="rx_wrong_outer_source"\} 0$/m);
    expect(text).toMatch(/^tun6in4_up\{tunnel="he",health="up"\} 1$/m);
  }, 30_000);

  it('keepalive: when protocol 41 stops getting through, the state goes down, and comes back', async () => {
    const wan = lab.host('wan');
    await wan.exec('nft', ['-f', '-'], { input: 'table inet t6op {\n  chain drop41 {\n    type filter hook forward priority 0; policy accept;\n    ip protocol 41 drop\n  }\n}\n' });
    try {
      await until('state down', status, (s) => tunnel(s, 'he')?.health === 'down', 20_000);
    } finally {
      await wan.exec('nft', ['delete', 'table', 'inet', 't6op']);
    }
    const s = await until('state recovers', status, (s) => tunnel(s, 'he')?.health !== 'down', 20_000);
    expect(tunnel(s, 'he')!.keepalive!.lossPercent).toBeGreaterThan(0);
  }, 60_000);

  it('--clamp-mss: a SYN from a 1500-byte interface crosses with MSS 1420', async () => {
    await lab.host('client').ip(['link', 'set', 'tun0', 'mtu', '1500']);
    const cap = await startCapture(lab.host('broker'), 'tun0', 'ip6 and tcp and ip6[53] & 2 != 0', 1, 10_000);
    await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 1000, 5002);
    const [syn] = (await cap.result).packets;
    expect(syn).toBeDefined();
    // the first TCP option is the MSS: kind 2, length 4
    expect([syn[60], syn[61], syn.readUInt16BE(62)]).toEqual([2, 4, 1420]);
    await lab.host('client').ip(['link', 'set', 'tun0', 'mtu', '1480']);
  }, 30_000);

  it('--local auto: the tunnel follows a new source address without a restart and tells the broker', async () => {
    const c = lab.host('client');
    await c.ip(['addr', 'add', '192.0.2.5/24', 'dev', 'eth0']);
    await c.ip(['route', 'replace', 'default', 'via', '192.0.2.254', 'src', '192.0.2.5']);
    const before = brokerRequests.length;
    try {
      await until('local follows', status, (s) => tunnel(s, 'he')?.local === '192.0.2.5');
      await until('second broker update', async () => brokerRequests.length, (n) => n > before);
      const cap = await startCapture(lab.host('wan'), 'to-client', 'ip proto 41 and src host 192.0.2.5', 1, 5_000);
      await ping6(c, '2001:db8:1::1', { count: 1, timeoutS: 1 });
      expect((await cap.result).packets.length).toBe(1);
    } finally {
      await c.ip(['route', 'replace', 'default', 'via', '192.0.2.254', 'src', '192.0.2.1']);
    }
    await until('local follows back', status, (s) => tunnel(s, 'he')?.local === '192.0.2.1');
    expect((await ping6(c, '2001:db8:1::1', { count: 2 })).ok).toBe(true);
  }, 60_000);

  it('SIGHUP: an added tunnel starts, the unchanged one is not disturbed, a bad file keeps the old config, a removed tunnel stops', async () => {
    const c = lab.host('client');
    const ifindex = async (dev: string) => Number(/^(\d+):/.exec(await c.ip(['-o', 'link', 'show', dev]))?.[1]);
    const heIndex = await ifindex('tun0');
    const sentBefore = tunnel(await status(), 'he')!.keepalive!.sent;
    const second = { mode: '6in4', local: '192.0.2.1', remote: '203.0.113.9', address: '2001:db8:7::2/64', dev: 'tun1', keepalive: 'off', defaultRoute: false };
    writeConfig({ he, second });
    client.child.kill('SIGHUP');
    let s = await until('second tunnel', status, (s) => s.tunnels.length === 2);
    expect(await ifindex('tun0')).toBe(heIndex);
    expect(tunnel(s, 'he')!.keepalive!.sent).toBeGreaterThanOrEqual(sentBefore);
    expect(tunnel(s, 'second')!.name).toBe('tun1');
    // both tunnels use 192.0.2.1: one shared socket, so 'second' never sees (nor counts) he's traffic
    expect((await ping6(c, '2001:db8:1::1', { count: 3 })).ok).toBe(true);
    s = await status();
    // its own router solicitation toward a remote with no tunnel draws an unreachable (not relayed)
    expect(tunnel(s, 'second')!.counters.drops.rx_wrong_outer_source ?? 0).toBe(0);
    expect(tunnel(s, 'second')!.counters.traffic.rx_packets).toBe(0);

    writeConfig({ he: { ...he, mtu: 9000 }, second });
    client.child.kill('SIGHUP');
    s = await until('reload refused', status, (s) => s.lastReload?.ok === false);
    expect(s.lastReload!.error).toMatch(/tunnels\.he\.mtu: 9000 is not valid/);
    expect(s.tunnels.map((t) => t.tunnel).sort()).toEqual(['he', 'second']);

    writeConfig({ he });
    client.child.kill('SIGHUP');
    s = await until('second removed', status, (s) => s.tunnels.length === 1 && s.lastReload?.ok === true);
    expect(await c.ip(['-o', 'link', 'show'])).not.toMatch(/tun1/);
    expect(await ifindex('tun0')).toBe(heIndex);
  }, 60_000);

  it('least privilege: the broker runs as nobody with only CAP_NET_ADMIN and CAP_NET_RAW, forwards, and cleans up', async () => {
    const proc = lab.engines.get('broker')!;
    const st = readFileSync(`/proc/${proc.child.pid}/status`, 'utf8');
    expect(st).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    expect(st).toMatch(/^CapEff:\s+0000000000003000$/m);
    expect(st).toMatch(/^CapBnd:\s+0000000000003000$/m); // nothing else can be regained
    expect(st).toMatch(/^NoNewPrivs:\s+1$/m);
    expect((await ping6(lab.host('client'), '2001:db8:1::1', { count: 2 })).ok).toBe(true);
    expect(await lab.host('broker').ip(['-6', 'route', 'show', 'table', 'all'])).toMatch(/unreachable 2001:db8:99::\/64/);
    const down = await lab.stopEngine('broker');
    expect(down.down?.code).toBe(0);
    expect(await lab.host('broker').ip(['-6', 'route', 'show', 'table', 'all'])).not.toMatch(/unreachable 2001:db8:99::\/64|tun0/);
  }, 30_000);
});

describe.runIf(canRun)('tun6in4 doctor', () => {
  let lab: LabNetwork;
  // nobody may not be able to read this checkout (a clone under /root is 0700): it runs an
  // installed copy in a directory it can read.
  let installed: InstalledCopy;
  beforeAll(async () => {
    lab = await LabNetwork.create('6in4', 'doc', { skipEngines: ['client', 'broker'] });
    installed = installForAnyUser();
  }, 120_000);
  afterAll(async () => {
    installed?.remove();
    await lab?.destroy();
  });

  const doctor = async (args: string[], asNobody = false) => {
    const r = asNobody
      ? await lab.host('client').run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, installed.bin, 'doctor', ...args], { timeoutMs: 30_000 })
      : await lab.host('client').run(process.execPath, [BIN, 'doctor', ...args], { timeoutMs: 30_000 });
    // A doctor that could not start prints nothing on stdout: show why.
    if (r.code !== 0 && r.code !== 1) throw new Error(`doctor exited ${r.code}: ${r.stderr}`);
    return r;
  };

  it('passes where a tunnel can run, and says what it found', async () => {
    const r = await doctor(['--mode', '6in4', '--remote', '198.51.100.1']);
    expect(r.stdout).toMatch(/^ok {3}raw socket \(protocol 41\): opens$/m);
    expect(r.stdout).toMatch(/^ok {3}CAP_NET_ADMIN/m);
    expect(r.stdout).toMatch(/local IPv4: 192\.0\.2\.1/);
    expect(r.code).toBe(0);
  }, 30_000);

  it('fails 6to4 on a non-global IPv4, with the fix', async () => {
    const r = await doctor(['--mode', '6to4', '--local', '192.0.2.1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL local IPv4 class: 192\.0\.2\.1 is documentation space/);
    expect(r.stdout).toMatch(/fix: .*tunnel broker/);
  }, 30_000);

  it('FOU: says whether the UDP port is free and what the kernel grants; a port in use fails with the fix', async () => {
    const ok = await doctor(['--mode', '6in4', '--remote', '198.51.100.1', '--encap', 'fou', '--encap-port', '5555']);
    expect(ok.stdout).toMatch(/^ok {3}UDP port 5555 \(FOU\): free to bind$/m);
    expect(ok.stdout).toMatch(/UDP offloads \(FOU\): UDP GSO (available|refused)/);
    expect(ok.stdout).toMatch(/MTU: eth0 MTU 1500 carries a 1472-byte tunnel MTU/);
    // a socket holding the port in the same namespace
    const holder = lab.host('client').spawn('/usr/bin/python3', ['-c', 'import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5555)); print("bound", flush=True); time.sleep(120)']);
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.once('data', () => resolve());
        holder.once('exit', (c) => reject(new Error(`port holder exited ${c}`)));
      });
      const busy = await doctor(['--encap', 'fou', '--encap-port', '5555']);
      expect(busy.code).toBe(1);
      expect(busy.stdout).toMatch(/FAIL UDP port 5555 \(FOU\)/);
      expect(busy.stdout).toMatch(/fix: another socket holds it/);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 30_000);

  it('fails without the capabilities, and says how to grant them', async () => {
    const r = await doctor([], true);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL CAP_NET_ADMIN: missing/);
    expect(r.stdout).toMatch(/AmbientCapabilities/);
  }, 30_000);
});

describe.runIf(canRun)('defaults that must not collide', () => {
  let lab: LabNetwork;
  beforeAll(async () => {
    lab = await LabNetwork.create('6in4', 'dflt', { skipEngines: ['client', 'broker'] });
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('two daemons on the default control socket (in two namespaces, /run is shared) both run; status in each namespace finds its own; an existing default route is left alone', async () => {
    await lab.host('client').ip(['-6', 'route', 'add', 'default', 'dev', 'lo', 'metric', '1024']);
    const a = await lab.startTun6in4('client', ['run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64', '--dev', 'tun0', '--keepalive', 'off'], '');
    const b = await lab.startTun6in4('broker', ['run', '--mode', '6in4', '--local', '198.51.100.1', '--remote', '192.0.2.1', '--address', '2001:db8:1::1/64', '--dev', 'tun0', '--keepalive', 'off', '--no-default-route'], '');
    expect(a.logs.join('\n')).toMatch(/no default route through the tunnel: an IPv6 default route with metric 1024 already exists/);
    expect(await lab.host('client').ip(['-6', 'route', 'show', 'default'])).toMatch(/default dev lo metric 1024/);
    expect(b.logs.join('\n')).toMatch(/tun6in4\.sock is in use by another tun6in4; this one answers on \/run\/tun6in4\/tun6in4-\d+\.sock/);
    expect((await ping6(lab.host('broker'), '2001:db8:1::2', { count: 2 })).ok).toBe(true);
    const inClient = await lab.host('client').run(process.execPath, [BIN, 'status', '--json'], { timeoutMs: 30_000 });
    expect(inClient.code, inClient.stderr).toBe(0);
    expect((JSON.parse(inClient.stdout) as DaemonStatus).tunnels[0].address).toBe('2001:db8:1::2/64');
    const inBroker = await lab.host('broker').run(process.execPath, [BIN, 'status', '--json'], { timeoutMs: 30_000 });
    expect(inBroker.code, inBroker.stderr).toBe(0);
    expect((JSON.parse(inBroker.stdout) as DaemonStatus).tunnels[0].address).toBe('2001:db8:1::1/64');
    // From the root namespace neither is ours: status says where they are instead of picking one.
    const here = spawnSync(process.execPath, [BIN, 'status'], { encoding: 'utf8' });
    expect(here.status).not.toBe(0);
    expect(here.stderr).toMatch(/no tun6in4 runs in this network namespace; \d+ in other namespaces answer on/);
    // issue 22: it names the namespaces ("none here" named none)
    expect(here.stderr).toContain(`(netns ${lab.host('client').name})`);
    expect(here.stderr).toMatch(/run status inside that namespace \(ip netns exec t6-\S+ tun6in4 status\)/);
  }, 60_000);
});
