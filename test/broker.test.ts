/**
 * Broker mode on a real TUN and raw socket, as root in namespaces this suite creates: a broker
 * (openBroker) behind a router, two real tun6in4 clients pinging and pinged both ways (their ::2,
 * their routed prefix, the server address, each other), and scapy playing 1,000 clients with
 * outer sources in 198.18.0.0/15 from one veth: every echo reply from a server address goes back
 * to its own client, and a client sending with another's prefix is dropped and counted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerTunnel, BrokerTunnelStats } from '../src/broker/tunnel.js';
import type { BrokerStatus } from '../src/host/broker.js';
import { formatIpv4, formatIpv6, parseIpv6 } from '../src/packet/address.js';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { nodeProgram } from '../src/lab/scripts.js';
import { tcpTransfer } from '../src/lab/probes.js';
import { ipv4Packet, ipv6Packet } from './helpers/packets.js';
import { rootOrSkip, scapySendRaw, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const BROKER_V4 = '192.0.2.1';
const POOL = '2001:db8::/36';
/** The broker host's own IPv6, outside the pool: what it pings from, and clients ping. */
const BROKER_V6 = '2001:db8:ffff::1';
const CLIENTS = 1_000;
const SCAPY_TOOL = fileURLToPath(new URL('./interop/scapy_tool.py', import.meta.url));
const BROKER_HOST = fileURLToPath(new URL('./helpers/broker-host.ts', import.meta.url));

const tunnel = (id: string, remote: string, link: string, routed: string[] = []): BrokerTunnel => ({ id, remote, link, routed, mtu: 1480, user: null, keyHash: null });
const REAL = [tunnel('c1', '198.51.100.1', '2001:db8:1::/64', ['2001:db8:100::/48']), tunnel('c2', '198.51.100.129', '2001:db8:2::/64', ['2001:db8:200::/48'])];
/** scapy's clients: 198.18.0.1… each with the link 2001:db8:f:i::/64. */
const played = (i: number) => ({ remote: formatIpv4((((198 << 24) | (18 << 16)) >>> 0) + i + 1), link: `2001:db8:f:${i.toString(16)}::` });

/** The broker process in its namespace, asked one JSON line at a time. */
class BrokerProcess {
  private readonly answers: string[] = [];
  private waiting: ((line: string) => void) | null = null;
  readonly logs: string[] = [];
  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(l);
      } else this.answers.push(l);
    });
    createInterface({ input: child.stderr! }).on('line', (l) => this.logs.push(l));
    child.stdin!.on('error', () => undefined); // gone: next() reports how it ended
  }
  next(): Promise<Record<string, unknown>> {
    const line = this.answers.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line));
    return new Promise((resolve, reject) => {
      this.waiting = (l) => resolve(JSON.parse(l));
      this.child.once('exit', (code) => reject(new Error(`broker exited (${code}):\n${this.logs.join('\n')}`)));
    });
  }
  async ask<T>(cmd: Record<string, unknown>): Promise<T> {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    const a = await this.next();
    if ('error' in a) throw new Error(String(a.error));
    return a.result as T;
  }
}

/** `tun6in4 run` for one real client, up when it says so. */
async function startClient(ns: Namespace, t: BrokerTunnel, extra: string[] = []): Promise<ChildProcess> {
  const [cmd, pre] = nodeProgram('cli/main');
  const argv = ['run', '--mode', '6in4', '--local', t.remote!, '--remote', BROKER_V4, '--address', t.link.replace('::/64', '::2/64'), '--routed', t.routed[0], '--dev', 'tun0', '--keepalive', 'off', '--control', `/run/tun6in4/${ns.name}.sock`, ...extra];
  const child = ns.spawn(cmd, [...pre, ...argv]);
  const logs: string[] = [];
  await new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`client ${t.id} exited (${code}):\n${logs.join('\n')}`)));
    createInterface({ input: child.stderr! }).on('line', (l) => {
      logs.push(l);
      if (/"msg":"tunnel up"/.test(l)) resolve();
    });
  });
  return child;
}

/**
 * The suites' network: a router, the broker host (192.0.2.1, its own IPv6 on lo, forwarding), two
 * clients in 198.51.100.0/24, and with `scapy` a host behind which 198.18.0.0/15 lives.
 */
async function brokerNetwork(set: NamespaceSet, scapy: boolean): Promise<{ r: Namespace; b: Namespace; c1: Namespace; c2: Namespace; s: Namespace | null }> {
  const r = await set.add('r');
  const b = await set.add('b');
  const c1 = await set.add('c1');
  const c2 = await set.add('c2');
  const s = scapy ? await set.add('s') : null;
  await r.sysctl('net.ipv4.ip_forward', '1');
  await r.sysctl('net.ipv4.conf.all.rp_filter', '0');
  const wire = async (ns: Namespace, iface: string, ours: string, theirs: string, len: number) => {
    await set.link(ns, 'v0', r, iface);
    await ns.ip(['addr', 'add', `${ours}/${len}`, 'dev', 'v0']);
    await r.ip(['addr', 'add', `${theirs}/${len}`, 'dev', iface]);
    await ns.ip(['route', 'add', 'default', 'via', theirs]);
  };
  await wire(b, 'vb', BROKER_V4, '192.0.2.254', 24);
  await wire(c1, 'vc1', '198.51.100.1', '198.51.100.126', 25);
  await wire(c2, 'vc2', '198.51.100.129', '198.51.100.254', 25);
  if (s) {
    await wire(s, 'vs', '203.0.113.1', '203.0.113.254', 24);
    // scapy's clients live behind s: their replies come back to its veth
    await r.ip(['route', 'add', '198.18.0.0/15', 'via', '203.0.113.1']);
  }
  // the broker host routes between clients, and has an IPv6 of its own to ping from
  await b.sysctl('net.ipv6.conf.all.forwarding', '1');
  await b.ip(['-6', 'addr', 'add', `${BROKER_V6}/128`, 'dev', 'lo']);
  return { r, b, c1, c2, s };
}

/** openBroker in the broker host's namespace (test/helpers/broker-host.ts), once it forwards. */
async function startBroker(b: Namespace, options: Record<string, unknown>): Promise<BrokerProcess> {
  const child = spawn('ip', ['netns', 'exec', b.name, process.execPath, '--import', import.meta.resolve('tsx'), BROKER_HOST, JSON.stringify({ local: BROKER_V4, pools: [POOL], ...options })], { stdio: ['pipe', 'pipe', 'pipe'] });
  const broker = new BrokerProcess(child);
  expect(await broker.next()).toHaveProperty('up.dev', `t6b-${String(options.name)}`);
  return broker;
}

const ping = (ns: Namespace, to: string) => ns.run('ping', ['-6', '-c', '2', '-w', '10', to]);

describe.runIf(canRun)('broker mode: one TUN, many tunnels', () => {
  const set = new NamespaceSet('brk');
  let broker: BrokerProcess;
  let r: Namespace, b: Namespace, c1: Namespace, c2: Namespace, s: Namespace;

  beforeAll(async () => {
    await removeStaleNamespaces('brk');
    ({ r, b, c1, c2, s } = (await brokerNetwork(set, true)) as { r: Namespace; b: Namespace; c1: Namespace; c2: Namespace; s: Namespace });
    broker = await startBroker(b, { name: 'lab', transport: 'raw' });
    const tunnels = [...REAL, ...Array.from({ length: CLIENTS }, (_, i) => tunnel(`s${i}`, played(i).remote, `${played(i).link}/64`))];
    expect(await broker.ask<number>({ op: 'put', tunnels })).toBe(CLIENTS + 2);
    for (const [ns, t] of [[c1, REAL[0]], [c2, REAL[1]]] as const) {
      await startClient(ns, t);
      // an address in the routed prefix, to ping
      await ns.ip(['-6', 'addr', 'add', `${t.routed[0].replace('::/48', '::1')}/128`, 'dev', 'lo']);
    }
  }, 90_000);

  afterAll(async () => {
    if (broker && broker.child.exitCode === null) await broker.ask({ op: 'close' }).catch(() => undefined);
    await set.destroy();
  });

  it('the broker host reaches each client at its ::2 and in its routed prefix; each client reaches the broker, its server address and the other client', async () => {
    for (const to of ['2001:db8:1::2', '2001:db8:100::1', '2001:db8:2::2', '2001:db8:200::1']) expect((await ping(b, to)).code, `broker → ${to}`).toBe(0);
    for (const [ns, server] of [[c1, '2001:db8:1::1'], [c2, '2001:db8:2::1']] as const) {
      expect((await ping(ns, BROKER_V6)).code, `${ns.name} → broker`).toBe(0);
      expect((await ping(ns, server)).code, `${ns.name} → ${server}`).toBe(0);
    }
    expect((await ping(c1, '2001:db8:200::1')).code, 'c1 → c2 routed').toBe(0);
    const st = await broker.ask<BrokerTunnelStats>({ op: 'stats', id: 'c1' });
    expect(st.counters.rxPackets).toBeGreaterThanOrEqual(8);
    expect(st.counters.txPackets).toBeGreaterThanOrEqual(8);
    expect(st.counters.drops).toEqual({});
    const status = await broker.ask<BrokerStatus>({ op: 'status', busiest: 2 });
    expect(status.busiest.map((x) => x.id).sort()).toEqual(['c1', 'c2']);
  }, 120_000);

  it('1,000 clients played by scapy from spoofed sources each get their echo reply, at their own outer address', async () => {
    const clients = Array.from({ length: CLIENTS }, (_, i) => ({ outer_src: played(i).remote, inner_src: `${played(i).link}2`, inner_dst: `${played(i).link}1`, id: i }));
    const out = await s.exec('/usr/bin/python3', [SCAPY_TOOL], { input: JSON.stringify({ op: 'broker_clients', iface: 'v0', broker: BROKER_V4, clients, timeout: 60 }), timeoutMs: 120_000 });
    const { replies } = JSON.parse(out) as { replies: Array<{ outer_dst: string; inner_src: string; inner_dst: string; type: number; id: number; checksum_ok: boolean }> };
    const { counters } = await broker.ask<BrokerStatus>({ op: 'status' });
    const nonzero = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v > 0));
    expect(replies.length, JSON.stringify({ traffic: nonzero(counters.traffic), drops: nonzero(counters.drops) })).toBe(CLIENTS);
    const wrong = replies.filter((r) => {
      const c = clients[r.id];
      const same = (a: string, b: string) => formatIpv6(parseIpv6(a)!) === formatIpv6(parseIpv6(b)!);
      return r.type !== 129 || !r.checksum_ok || r.outer_dst !== c.outer_src || !same(r.inner_dst, c.inner_src) || !same(r.inner_src, c.inner_dst);
    });
    expect(wrong).toEqual([]);
    expect(new Set(replies.map((r) => r.id)).size).toBe(CLIENTS);
    expect((await broker.ask<BrokerTunnelStats>({ op: 'stats', id: 's999' })).counters).toMatchObject({ rxPackets: 1, txPackets: 1 });
  }, 180_000);

  it("a client sending with another client's prefix is dropped and counted against it, kept in its ring", async () => {
    const spoof = ipv4Packet({ src: played(0).remote, dst: BROKER_V4, payload: ipv6Packet({ src: `${played(1).link}2`, dst: '2001:db8:1::2' }) });
    await scapySendRaw(s, [{ bytes: spoof, count: 1 }]);
    const st = await until(
      'the spoofed packet counted',
      () => broker.ask<BrokerTunnelStats>({ op: 'stats', id: 's0' }),
      (x) => (x.counters.drops.rx_source_not_tunnels ?? 0) >= 1,
    );
    expect(st.counters.drops).toEqual({ rx_source_not_tunnels: 1 });
    expect(st.lastDrops).toMatchObject([{ reason: 'rx_source_not_tunnels', outerSrc: played(0).remote }]);
    expect(st.lastDrops[0].bytes.slice(20 * 2, 20 * 2 + 80)).toBe(spoof.subarray(20, 60).toString('hex'));
    expect((await broker.ask<BrokerTunnelStats>({ op: 'stats', id: 's1' })).counters.drops).toEqual({});
  }, 60_000);

  it('on field links: a tunnel whose path holds 1400 bytes learns it from the router\'s ICMPv4 error and answers Packet Too Big 1380 while the other keeps 1480; TCP over a 20 Mbit/s uplink (tbf) arrives whole', async () => {
    await r.ip(['link', 'set', 'vc2', 'mtu', '1400']);
    await c2.ip(['link', 'set', 'v0', 'mtu', '1400']);
    await r.exec('tc', ['qdisc', 'add', 'dev', 'vc1', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kbit', 'latency', '400ms']);
    try {
      // 1480-byte packets toward c2 leave with DF; the router's "fragmentation needed, MTU 1400"
      // lowers that tunnel's path MTU (R07), and the next such packet is answered with PTB 1400 − 20
      const tooBig = await until(
        'Packet Too Big 1380 for c2\'s prefix',
        () => b.run('ping', ['-6', '-n', '-c', '1', '-W', '2', '-s', '1432', '-M', 'do', '2001:db8:200::1']),
        (x) => /mtu[ =]1380/.test(x.stdout + x.stderr),
        30_000,
      );
      expect(tooBig.code).not.toBe(0);
      expect((await b.run('ping', ['-6', '-n', '-c', '2', '-W', '5', '-s', '1332', '-M', 'do', '2001:db8:200::1'])).code, 'c2 at its path MTU').toBe(0);
      expect((await b.run('ping', ['-6', '-n', '-c', '2', '-W', '5', '-s', '1432', '-M', 'do', '2001:db8:100::1'])).code, 'c1 keeps 1480').toBe(0);
      const t = await tcpTransfer(c1, b, BROKER_V6, 8 << 20);
      expect(t.ok, JSON.stringify(t)).toBe(true);
      expect((await broker.ask<BrokerTunnelStats>({ op: 'stats', id: 'c1' })).counters.drops).toEqual({});
    } finally {
      await r.exec('tc', ['qdisc', 'del', 'dev', 'vc1', 'root']).catch(() => undefined);
      await c2.ip(['link', 'set', 'v0', 'mtu', '1500']);
      await r.ip(['link', 'set', 'vc2', 'mtu', '1500']);
    }
  }, 180_000);

  it('a flood from sources no tunnel has costs the known tunnels nothing: each packet dropped silently and counted in the totals, while c1 pings through', async () => {
    const unknown = async () => (await broker.ask<BrokerStatus>({ op: 'status' })).counters.drops.rx_unknown_outer_source;
    const before = await unknown();
    // 50 sources outside every tunnel (198.19.0.x), 200 packets each, toward a client's prefix
    const flood = Array.from({ length: 50 }, (_, i) => ({ bytes: ipv4Packet({ src: `198.19.0.${i + 1}`, dst: BROKER_V4, payload: ipv6Packet({ src: '2001:db8:dead::2', dst: '2001:db8:1::2' }) }), count: 200 }));
    const c1Before = (await broker.ask<BrokerTunnelStats>({ op: 'stats', id: 'c1' })).counters;
    const pinging = c1.run('ping', ['-6', '-n', '-c', '100', '-i', '0.05', '-W', '5', BROKER_V6], { timeoutMs: 60_000 });
    await scapySendRaw(s, flood);
    const p = await pinging;
    expect(p.stdout, p.stdout).toMatch(/100 packets transmitted, 100 received/);
    const after = await until('every flood packet counted', unknown, (n) => n - before >= 50 * 200);
    expect(after - before).toBe(50 * 200);
    const c1After = (await broker.ask<BrokerTunnelStats>({ op: 'stats', id: 'c1' })).counters;
    expect(c1After.drops).toEqual(c1Before.drops);
    expect(c1After.rxPackets - c1Before.rxPackets).toBeGreaterThanOrEqual(100); // the echoes, and whatever else c1 sent meanwhile (neighbour discovery)
  }, 180_000);

  it('close deletes the TUN, and the pool routes go with it', async () => {
    expect(await broker.ask<boolean>({ op: 'close' })).toBe(true);
    expect((await b.run('ip', ['link', 'show', 't6b-lab'])).code).not.toBe(0);
    expect((await b.exec('ip', ['-6', 'route', 'show', POOL])).trim()).toBe('');
  });
});

describe.runIf(canRun)('broker mode over Foo-over-UDP: one UDP port for every tunnel', () => {
  const set = new NamespaceSet('brkfou');
  let broker: BrokerProcess;
  let b: Namespace, c1: Namespace, c2: Namespace;
  const FOU_PORT = 5555;
  const fou = ['--encap', 'fou', '--encap-dport', String(FOU_PORT)];

  beforeAll(async () => {
    await removeStaleNamespaces('brkfou');
    ({ b, c1, c2 } = await brokerNetwork(set, false));
    broker = await startBroker(b, { name: 'fou', transport: 'fou', port: FOU_PORT });
    // FOU's 8 more bytes of header: the tunnels' MTU at most 1472
    const fouTunnels = REAL.map((t) => ({ ...t, mtu: 1472 }));
    expect(await broker.ask<number>({ op: 'put', tunnels: fouTunnels })).toBe(2);
    for (const [ns, t] of [[c1, fouTunnels[0]], [c2, fouTunnels[1]]] as const) {
      await startClient(ns, t, [...fou, '--mtu', '1472']);
      await ns.ip(['-6', 'addr', 'add', `${t.routed[0].replace('::/48', '::1')}/128`, 'dev', 'lo']);
    }
  }, 90_000);

  afterAll(async () => {
    if (broker && broker.child.exitCode === null) await broker.ask({ op: 'close' }).catch(() => undefined);
    await set.destroy();
  });

  it('each client reaches the broker and the other client, the broker each client, a full-MTU packet included; all on the one UDP port', async () => {
    for (const to of ['2001:db8:1::2', '2001:db8:100::1', '2001:db8:2::2', '2001:db8:200::1']) expect((await ping(b, to)).code, `broker → ${to}`).toBe(0);
    expect((await ping(c1, BROKER_V6)).code, 'c1 → broker').toBe(0);
    expect((await ping(c1, '2001:db8:200::1')).code, 'c1 → c2 routed').toBe(0);
    // 1472-byte IPv6 packets: 1424 bytes of ICMPv6 payload, DF on the outer datagram
    expect((await c2.run('ping', ['-6', '-c', '2', '-w', '10', '-s', '1424', '-M', 'do', BROKER_V6])).code, 'c2 → broker at the MTU').toBe(0);
    const st = await broker.ask<BrokerTunnelStats>({ op: 'stats', id: 'c2' });
    expect(st.counters.rxPackets).toBeGreaterThanOrEqual(4);
    expect(st.counters.drops).toEqual({});
    const sockets = await b.exec('ss', ['-uln']);
    expect(sockets).toMatch(new RegExp(`${BROKER_V4.replace(/\./g, '\\.')}:${FOU_PORT}\\b`));
  }, 120_000);
});

