/**
 * Broker mode against issue 37's targets, in namespaces this bench creates (prefix `bbr`): a
 * broker namespace running `tun6in4 up -c` with one `[broker.bench]` table, and a client
 * namespace running one real `tun6in4 run` client, joined by a veth.
 *
 *   sudo node --import tsx bench/broker.ts [--only bringup,forwarding,memory,changes,traffic] [--tunnels N] [--runs R] [--seconds S]
 *   node --import tsx bench/broker.ts --render     (broker-latest.md again from the JSON)
 *
 * - bringup: N tunnels (the real client's and N-1 others, remotes in 198.18.0.0/15) written to
 *   the store through its own API (TunnelStore.change, one transaction), then the time from
 *   spawning `tun6in4 up -c` to the first echo reply the client gets through its tunnel from the
 *   broker host's own address (polled with one-probe pings: the kernel routed the reply into the
 *   TUN, so the store is loaded, the table built, TUN and routes up).
 * - memory: the daemon's VmRSS a second after bring-up, with 1 tunnel and with N.
 * - forwarding: iperf3 through the real client's tunnel, with 1 tunnel and with N in the table,
 *   A/B/A/B: UDP 64 B unlimited (datagrams counted at the receiving namespace's UDP layer) and one
 *   TCP stream, both directions. Traffic spread over 1,000 tunnels is not played here: see the
 *   broker rows of bench/micro.ts.
 * - changes: add/set/del 1,000 each as `broker {…}` requests on the control socket (what
 *   `tun6in4 broker` sends; the CLI's own Node start-up is left out), and nic/update over HTTP
 *   (the first check of each key, scrypt, apart from 1,000 with keys already checked).
 * - traffic: ping every 10 ms through the real client's tunnel for 10 s while this process makes
 *   100 changes a second (add, move, set mtu, del) on other tunnels; lost echoes counted.
 *
 * Each section is stored with its date, command and load in bench/results/broker-latest.json
 * (sections of earlier runs not run again are kept) and rendered to broker-latest.md.
 */
import { type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BrokerTunnel } from '../src/broker/tunnel.js';
import { TunnelStore } from '../src/brokerd/store.js';
import { hashUpdateKey } from '../src/brokerd/update-key.js';
import { queryControl } from '../src/daemon/control.js';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { formatIpv4 } from '../src/packet/address.js';

const { values: flags } = parseArgs({
  options: {
    only: { type: 'string' },
    tunnels: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '4' },
    /** Only rewrite broker-latest.md from broker-latest.json (no root, nothing measured). */
    render: { type: 'boolean', default: false },
    /** Internal: the nic/update probe, run inside the broker's namespace. */
    probe: { type: 'string' },
  },
});

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const TSX = import.meta.resolve('tsx');
const NODE = process.execPath;

interface Latencies {
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}
function latencies(ms: number[]): Latencies {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: s[s.length - 1] };
}
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** GET /nic/update with Basic auth on a fresh connection (as ddclient makes one per update). */
function nicUpdate(base: string, id: string, user: string, key: string, myip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/nic/update?hostname=${id}&myip=${myip}`, { agent: false, headers: { authorization: `Basic ${Buffer.from(`${user}:${key}`).toString('base64')}` } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body.trim()));
    });
    req.on('error', reject);
    req.end();
  });
}

if (flags.probe) {
  // inside the broker's namespace: the API listens on its loopback
  const p = JSON.parse(flags.probe) as { base: string; creds: Array<{ id: string; user: string; key: string }>; n: number };
  const first: number[] = [];
  const checked: number[] = [];
  const answers = new Map<string, number>();
  // each tunnel its own pair of addresses (a remote belongs to one tunnel), alternated: every answer a move
  const ask = async (c: { id: string; user: string; key: string }, k: number, round: number, into: number[]) => {
    const t0 = nowMs();
    const a = await nicUpdate(p.base, c.id, c.user, c.key, `198.19.${200 + k}.${(round % 2) + 1}`);
    into.push(nowMs() - t0);
    const word = a.split(' ')[0];
    answers.set(word, (answers.get(word) ?? 0) + 1);
  };
  for (const [k, c] of p.creds.entries()) await ask(c, k, 0, first);
  for (let i = 0; i < p.n; i++) await ask(p.creds[i % p.creds.length], i % p.creds.length, Math.floor(i / p.creds.length) + 1, checked);
  console.log(JSON.stringify({ firstCheck: latencies(first), keyChecked: latencies(checked), answers: Object.fromEntries(answers) }));
  process.exit(0);
}

const N = Number(flags.tunnels);
const RUNS = Number(flags.runs);
const SECONDS = Number(flags.seconds);
const SECTIONS = ['bringup', 'memory', 'forwarding', 'changes', 'traffic'] as const;
type Section = (typeof SECTIONS)[number];
const only = flags.only ? flags.only.split(',') : [...SECTIONS];
for (const o of only) if (!(SECTIONS as readonly string[]).includes(o)) throw new Error(`--only: unknown part ${o}; use ${SECTIONS.join(', ')}`);
const want = (s: Section) => only.includes(s);

const BROKER_V4 = '192.0.2.1';
const CLIENT_V4 = '192.0.2.2';
/** The broker host's own IPv6, outside the pool: the client pings it and iperf3 serves on it. */
const BROKER_V6 = '2001:db8:ffff::1';
const POOL = '2001:db8::/33';
const REAL: BrokerTunnel = { id: 'real', remote: CLIENT_V4, link: '2001:db8:7fff:1::/64', routed: [], mtu: 1480, user: null, keyHash: null };
/** Tunnel i of the many: remote 198.18.0.0/15 from .1, a /64 under 2001:db8:1000::/36. */
const many = (i: number): BrokerTunnel => ({ id: `t${i}`, remote: formatIpv4((((198 << 24) | (18 << 16)) >>> 0) + 1 + i), link: `2001:db8:${(0x1000 + (i >> 16)).toString(16)}:${(i & 0xffff).toString(16)}::/64`, routed: [], mtu: 1480, user: null, keyHash: null });

const load = () => loadavg().map((l) => Number(l.toFixed(2)));
const environment = () => ({ date: new Date().toISOString(), cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, kernel: release(), load: load() });
const command = `sudo node --import tsx bench/broker.ts ${process.argv.slice(2).join(' ')}`.trim();

if (flags.render) {
  const r = JSON.parse(readFileSync(here('results/broker-latest.json'), 'utf8')) as Results;
  writeFileSync(here('results/broker-latest.md'), renderMarkdown(r));
  console.log(renderMarkdown(r));
  process.exit(0);
}

if (process.getuid?.() !== 0) {
  console.error('bench/broker.ts needs root (namespaces, TUN, raw sockets)');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'tun6in4-bbr-'));
const set = new NamespaceSet('bbr');
const daemons = new Set<ChildProcess>();
let client: ChildProcess | null = null;
async function cleanup(): Promise<void> {
  for (const d of daemons) d.kill('SIGKILL');
  client?.kill('SIGKILL');
  await set.destroy();
  rmSync(dir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

/** Writes `tunnels` to a new store file through the store's own API, in one transaction. */
function writeStore(name: string, tunnels: BrokerTunnel[]): { path: string; writeMs: number } {
  const path = join(dir, `${name}.sqlite`);
  const t0 = nowMs();
  const store = TunnelStore.open(path);
  store.change({ puts: tunnels, deletes: [] }, () => undefined, () => undefined);
  store.close();
  return { path, writeMs: nowMs() - t0 };
}

const SOCKET = join(dir, 'd.sock');
const API_PORT = 8641;
const TOKEN = join(dir, 'api.token');
writeFileSync(TOKEN, 'b'.repeat(40), { mode: 0o600 });

function configFor(store: string): string {
  const file = join(dir, `up-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ control: { socket: SOCKET, mode: '0600' }, log: { level: 'warn' }, broker: { bench: { local: BROKER_V4, pools: [POOL], store, api: { listen: `127.0.0.1:${API_PORT}`, tokenFile: TOKEN } } } }));
  chmodSync(file, 0o600);
  return file;
}

function rssKiB(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

/** Starts the daemon on `store`; resolves once the client's ping through its tunnel is answered. */
async function startDaemon(b: Namespace, c: Namespace, store: string): Promise<{ proc: ChildProcess; upMs: number; pings: number }> {
  const cfg = configFor(store);
  const t0 = nowMs();
  const proc = b.spawn(NODE, ['--import', TSX, here('../src/cli/main.ts'), 'up', '-c', cfg]);
  daemons.add(proc);
  const logs: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => logs.length < 100 && logs.push(l));
  createInterface({ input: proc.stdout! }).on('line', (l) => logs.length < 100 && logs.push(l));
  let exited = false;
  proc.once('exit', () => (exited = true));
  let pings = 0;
  for (;;) {
    if (exited) throw new Error(`tun6in4 up exited:\n${logs.join('\n')}`);
    if (nowMs() - t0 > 180_000) throw new Error(`no forwarding after 180 s:\n${logs.join('\n')}`);
    pings++;
    const r = await c.run('ping', ['-6', '-n', '-c', '1', '-W', '0.2', BROKER_V6], { timeoutMs: 5_000 });
    if (r.code === 0) return { proc, upMs: nowMs() - t0, pings };
  }
}

async function stopDaemon(proc: ChildProcess): Promise<void> {
  if (proc.exitCode === null) {
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }
  daemons.delete(proc);
}

async function udpDatagramsIn(ns: Namespace): Promise<number> {
  const t = await ns.exec('cat', ['/proc/net/snmp6']);
  const field = (k: string) => Number(new RegExp(`^${k}\\s+(\\d+)`, 'm').exec(t)?.[1] ?? NaN);
  return field('Udp6InDatagrams') + field('Udp6InErrors');
}

interface Forwarding {
  udpUpPps: number;
  udpDownPps: number;
  tcpUpGbps: number;
  tcpDownGbps: number;
}
/** iperf3 from the client to the broker host's own address: up = client → broker, down = -R. */
async function forwarding(b: Namespace, c: Namespace): Promise<Forwarding> {
  const server = b.spawn('iperf3', ['-s', '-B', BROKER_V6]);
  try {
    for (let i = 0; ; i++) {
      const r = await c.run('iperf3', ['-6', '-c', BROKER_V6, '-t', '1', '-u', '-b', '1M'], { timeoutMs: 10_000 });
      if (r.code === 0) break;
      if (i > 50) throw new Error(`iperf3 server did not answer: ${r.stderr}`);
    }
    const iperf = (args: string[]) => c.exec('iperf3', ['-6', '-c', BROKER_V6, '-t', String(SECONDS), '-J', ...args], { timeoutMs: (SECONDS + 30) * 1000 });
    const udp = async (rev: boolean) => {
      const rx = rev ? c : b;
      const before = await udpDatagramsIn(rx);
      const t0 = nowMs();
      await iperf(['-u', '-b', '0', '-l', '64', ...(rev ? ['-R'] : [])]);
      const s = Math.min((nowMs() - t0) / 1000, SECONDS);
      return ((await udpDatagramsIn(rx)) - before) / s;
    };
    const tcp = async (rev: boolean) => (JSON.parse(await iperf(rev ? ['-R'] : [])) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
    return { udpUpPps: await udp(false), udpDownPps: await udp(true), tcpUpGbps: await tcp(false), tcpDownGbps: await tcp(true) };
  } finally {
    server.kill('SIGKILL');
  }
}

const ask = async (req: Record<string, unknown>): Promise<Record<string, unknown>> => {
  const a = (await queryControl(SOCKET, `broker ${JSON.stringify(req)}`)) as Record<string, unknown>;
  if (a.error) throw new Error(`broker ${req.op}: ${String(a.error)}`);
  return a;
};
async function timed(req: Record<string, unknown>): Promise<number> {
  const t0 = nowMs();
  await ask(req);
  return nowMs() - t0;
}
const extra = (i: number): BrokerTunnel => ({ id: `x${i}`, remote: formatIpv4((((198 << 24) | (19 << 16) | (100 << 8)) >>> 0) + i), link: `2001:db8:6000:${i.toString(16)}::/64`, routed: [], mtu: 1480, user: null, keyHash: null });

interface Stamp {
  date: string;
  command: string;
  load: number[];
}
interface Results {
  environment?: ReturnType<typeof environment>;
  [bringup: `bringup-${number}`]: Stamp & { tunnels: number; storeWriteS: number; storeWrittenBy: string; upS: number[]; medianS: number; targetS: number | null; pass: boolean; loads: number[][] };
  memory?: Stamp & { tunnels: number; rssKiB1Tunnel: number; rssKiBAllTunnels: number; bytesPerTunnel: number; targetBytes: number; pass: boolean; samples: Array<{ tunnels: number; rssKiB: number; load: number[] }> };
  forwarding?: Stamp & { tunnels: number; seconds: number; oneTunnel: Forwarding; allTunnels: Forwarding; oneTunnelRange: Record<keyof Forwarding, number[]>; allTunnelsRange: Record<keyof Forwarding, number[]>; ratio: Forwarding; pairRatios: Record<keyof Forwarding, number[]>; target: number; pass: boolean; spread: string; samples: Array<Partial<Forwarding> & { tunnels: number; load: number[] }> };
  changes?: Stamp & { loadBefore: number[]; tunnels: number; path: string; add: Latencies; set: Latencies; del: Latencies; refusedNoCommit: Latencies; targetP99Ms: number; pass: boolean };
  nicUpdate?: Stamp & { loadBefore: number[]; tunnels: number; path: string; firstCheck: Latencies; keyChecked: Latencies; answers: Record<string, number>; targetP99Ms: number; pass: boolean };
  traffic?: Stamp & { loadBefore: number[]; tunnels: number; stream: string; changes: number; changesPerSecond: number; changesLate: number; changeLatency: Latencies; pingsSent: number; pingsReceived: number; lost: number; target: number; pass: boolean };
}
const results: Results = existsSync(here('results/broker-latest.json')) ? (JSON.parse(readFileSync(here('results/broker-latest.json'), 'utf8')) as Results) : {};
const stamp = (): Stamp => ({ date: new Date().toISOString(), command, load: load() });

try {
  await removeStaleNamespaces('bbr');
  const b = await set.add('b');
  const c = await set.add('c');
  await set.link(b, 'v0', c, 'v0');
  await b.ip(['addr', 'add', `${BROKER_V4}/24`, 'dev', 'v0']);
  await c.ip(['addr', 'add', `${CLIENT_V4}/24`, 'dev', 'v0']);
  await b.ip(['-6', 'addr', 'add', `${BROKER_V6}/128`, 'dev', 'lo']);

  const [cmd, pre] = [NODE, ['--import', TSX, here('../src/cli/main.ts')]];
  client = c.spawn(cmd, [...pre, 'run', '--mode', '6in4', '--local', CLIENT_V4, '--remote', BROKER_V4, '--address', REAL.link.replace('::/64', '::2/64'), '--dev', 'tun0', '--keepalive', 'off', '--control', `/run/tun6in4/${c.name}.sock`]);
  await new Promise<void>((resolve, reject) => {
    const logs: string[] = [];
    client!.once('exit', (code) => reject(new Error(`client exited (${code}):\n${logs.join('\n')}`)));
    createInterface({ input: client!.stderr! }).on('line', (l) => {
      logs.push(l);
      if (/"msg":"tunnel up"/.test(l)) resolve();
    });
  });

  const big = writeStore(`n${N}`, [REAL, ...Array.from({ length: N - 1 }, (_, i) => many(i))]);
  console.error(`store of ${N} tunnels written in ${(big.writeMs / 1000).toFixed(2)} s (load ${load().join(' ')})`);

  if (want('bringup') || want('memory') || want('forwarding')) {
    const one = writeStore('n1', [REAL]);
    const sizes = want('memory') || want('forwarding') ? [1, N] : [N];
    const samples: Array<{ tunnels: number; upMs: number; pings: number; rssKiB: number; load: number[]; forwarding?: Forwarding }> = [];
    // A/B/A/B: the machine's drift touches both table sizes alike
    for (let run = 0; run < RUNS; run++) {
      for (const size of sizes) {
        const { proc, upMs, pings } = await startDaemon(b, c, size === 1 ? one.path : big.path);
        await new Promise((r) => setTimeout(r, 1000));
        const loaded = ((await queryControl(SOCKET, 'status')) as { brokers: Array<{ tunnels: number }> }).brokers[0].tunnels;
        if (loaded !== size) throw new Error(`the daemon has ${loaded} tunnels loaded, not ${size}`);
        const sample: (typeof samples)[number] = { tunnels: size, upMs, pings, rssKiB: rssKiB(proc.pid!), load: load() };
        if (want('forwarding')) sample.forwarding = await forwarding(b, c);
        await stopDaemon(proc);
        samples.push(sample);
        console.error(`run ${run + 1} ${size} tunnels: up in ${(upMs / 1000).toFixed(2)} s, RSS ${(sample.rssKiB / 1024).toFixed(1)} MiB${sample.forwarding ? `, UDP ${Math.round(sample.forwarding.udpUpPps)}/${Math.round(sample.forwarding.udpDownPps)} pps, TCP ${sample.forwarding.tcpUpGbps.toFixed(3)}/${sample.forwarding.tcpDownGbps.toFixed(3)} Gbit/s` : ''} (load ${sample.load.join(' ')})`);
      }
    }
    const of = (size: number) => samples.filter((s) => s.tunnels === size);
    const median = (xs: number[]) => {
      const s = [...xs].sort((x, y) => x - y);
      const m = s.length >> 1;
      return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
    };
    if (want('bringup')) {
      const ups = of(N).map((s) => s.upMs / 1000);
      const target = N >= 100_000 ? 60 : 10;
      results[`bringup-${N}`] = { ...stamp(), tunnels: N, storeWriteS: big.writeMs / 1000, storeWrittenBy: 'TunnelStore.change, one transaction', upS: ups, medianS: median(ups), targetS: N <= 10_000 || N === 100_000 ? target : null, pass: median(ups) <= target, loads: of(N).map((s) => s.load) };
    }
    if (want('memory')) {
      const base = median(of(1).map((s) => s.rssKiB));
      const full = median(of(N).map((s) => s.rssKiB));
      results.memory = { ...stamp(), tunnels: N, rssKiB1Tunnel: base, rssKiBAllTunnels: full, bytesPerTunnel: ((full - base) * 1024) / (N - 1), targetBytes: 1024, pass: ((full - base) * 1024) / (N - 1) <= 1024, samples: samples.map((s) => ({ tunnels: s.tunnels, rssKiB: s.rssKiB, load: s.load })) };
    }
    if (want('forwarding')) {
      const keys = ['udpUpPps', 'udpDownPps', 'tcpUpGbps', 'tcpDownGbps'] as const;
      const med = (size: number) => Object.fromEntries(keys.map((k) => [k, median(of(size).map((s) => s.forwarding![k]))])) as unknown as Forwarding;
      const a = med(1);
      const z = med(N);
      const ratio = Object.fromEntries(keys.map((k) => [k, z[k] / a[k]])) as unknown as Forwarding;
      // each run's N-tunnel sample over the 1-tunnel sample just before it: the drift between pairs cancels
      const pairRatios = Object.fromEntries(keys.map((k) => [k, of(N).map((s, i) => s.forwarding![k] / of(1)[i].forwarding![k])])) as unknown as Record<keyof Forwarding, number[]>;
      const range = (size: number) => Object.fromEntries(keys.map((k) => [k, [Math.min(...of(size).map((s) => s.forwarding![k])), Math.max(...of(size).map((s) => s.forwarding![k]))]])) as Record<keyof Forwarding, number[]>;
      results.forwarding = { ...stamp(), tunnels: N, seconds: SECONDS, oneTunnel: a, allTunnels: z, oneTunnelRange: range(1), allTunnelsRange: range(N), ratio, pairRatios, target: 0.9, pass: keys.every((k) => ratio[k] >= 0.9), spread: 'not played here (one real client); bench/micro.ts has it in its broker rows', samples: samples.map((s) => ({ tunnels: s.tunnels, load: s.load, ...s.forwarding })) };
    }
  }

  if (want('changes') || want('traffic')) {
    const store = join(dir, 'changes.sqlite');
    copyFileSync(big.path, store);
    const { proc } = await startDaemon(b, c, store);
    try {
      if (want('changes')) {
        const l0 = load();
        const add: number[] = [];
        const setMs: number[] = [];
        const del: number[] = [];
        // the socket and both processes' scheduling without a change: a del of an id that is not there (refused, nothing committed)
        const refused: number[] = [];
        for (let i = 0; i < 1000; i++) {
          const t0 = nowMs();
          await queryControl(SOCKET, `broker ${JSON.stringify({ op: 'del', id: `absent${i}` })}`);
          refused.push(nowMs() - t0);
        }
        for (let i = 0; i < 1000; i++) add.push(await timed({ op: 'add', tunnel: extra(i) }));
        for (let i = 0; i < 1000; i++) setMs.push(await timed({ op: 'set', id: `x${i}`, fields: { remote: formatIpv4((((198 << 24) | (19 << 16) | (120 << 8)) >>> 0) + i) } }));
        for (let i = 0; i < 1000; i++) del.push(await timed({ op: 'del', id: `x${i}` }));
        results.changes = { ...stamp(), loadBefore: l0, tunnels: N, path: 'one `broker {…}` request per change on the control socket (a new connection each, as tun6in4 broker makes), timed in this process; the CLI\'s Node start-up is not included', add: latencies(add), set: latencies(setMs), del: latencies(del), refusedNoCommit: latencies(refused), targetP99Ms: 1, pass: [add, setMs, del].every((x) => latencies(x).p99Ms <= 1) };
        console.error(`changes: add ${JSON.stringify(latencies(add))} set ${JSON.stringify(latencies(setMs))} del ${JSON.stringify(latencies(del))} (load ${load().join(' ')})`);

        const creds = await Promise.all(Array.from({ length: 10 }, async (_, i) => ({ id: `u${i}`, user: `u${i}`, key: `bench-key-${i}`, keyHash: await hashUpdateKey(`bench-key-${i}`) })));
        await ask({ op: 'import', tunnels: creds.map((k, i) => ({ id: k.id, remote: null, link: `2001:db8:6001:${i.toString(16)}::/64`, routed: [], mtu: 1480, user: k.user, keyHash: k.keyHash })) });
        const l1 = load();
        const r = await b.exec(NODE, ['--import', TSX, here('broker.ts'), '--probe', JSON.stringify({ base: `http://127.0.0.1:${API_PORT}`, creds: creds.map(({ id, user, key }) => ({ id, user, key })), n: 1000 })], { timeoutMs: 120_000 });
        const probe = JSON.parse(r.trim().split('\n').pop()!) as { firstCheck: Latencies; keyChecked: Latencies; answers: Record<string, number> };
        results.nicUpdate = { ...stamp(), loadBefore: l1, tunnels: N, path: 'GET /nic/update with Basic auth over HTTP on the broker namespace\'s loopback, a new connection per request, every request a move (myip alternates)', ...probe, targetP99Ms: 5, pass: probe.keyChecked.p99Ms <= 5 };
        console.error(`nic/update: first ${JSON.stringify(probe.firstCheck)} checked ${JSON.stringify(probe.keyChecked)} ${JSON.stringify(probe.answers)} (load ${load().join(' ')})`);
      }

      if (want('traffic')) {
        const l0 = load();
        const PINGS = 1000;
        const pinging = c.run('ping', ['-6', '-n', '-c', String(PINGS), '-i', '0.01', '-W', '1', BROKER_V6], { timeoutMs: 60_000 });
        // 100 a second, each awaited (acknowledged) before the next is due
        const ops: Array<(k: number) => Record<string, unknown>> = [
          (k) => ({ op: 'add', tunnel: { ...extra(2000 + k), id: `y${k}` } }),
          (k) => ({ op: 'set', id: `y${k}`, fields: { remote: formatIpv4((((198 << 24) | (19 << 16) | (140 << 8)) >>> 0) + (k % 250)) } }),
          (k) => ({ op: 'set', id: `y${k}`, fields: { mtu: 1400 } }),
          (k) => ({ op: 'del', id: `y${k}` }),
        ];
        const t0 = nowMs();
        let done = 0;
        let late = 0;
        const changeMs: number[] = [];
        let finished = false;
        void pinging.then(() => (finished = true));
        while (!finished) {
          const due = t0 + done * 10;
          const wait = due - nowMs();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          else if (wait < -10) late++;
          changeMs.push(await timed(ops[done % 4](Math.floor(done / 4))));
          done++;
        }
        const elapsedS = (nowMs() - t0) / 1000;
        const p = await pinging;
        const m = /(\d+) packets transmitted, (\d+) received/.exec(p.stdout);
        const sent = Number(m?.[1] ?? NaN);
        const received = Number(m?.[2] ?? NaN);
        results.traffic = { ...stamp(), loadBefore: l0, tunnels: N, stream: `ping -6 -i 0.01 -c ${PINGS} through the real client's tunnel to the broker host`, changes: done, changesPerSecond: done / elapsedS, changesLate: late, changeLatency: latencies(changeMs), pingsSent: sent, pingsReceived: received, lost: sent - received, target: 0, pass: sent === received && done / elapsedS >= 90 };
        console.error(`traffic: ${done} changes in ${elapsedS.toFixed(1)} s, ping ${received}/${sent} (load ${load().join(' ')})`);
      }
    } finally {
      await stopDaemon(proc);
    }
  }
} finally {
  await cleanup();
}

results.environment = environment();
const out = here('results/broker-latest.json');
writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(here('results/broker-latest.md'), renderMarkdown(results));
console.log(renderMarkdown(results));

function renderMarkdown(r: Results): string {
  const e = r.environment!;
  const ok = (p: boolean) => (p ? 'pass' : 'miss');
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const rows: string[] = [];
  for (const k of (Object.keys(r).filter((k) => k.startsWith('bringup-')) as Array<`bringup-${number}`>).sort((x, y) => r[x].tunnels - r[y].tunnels)) {
    const s = r[k];
    rows.push(`| ${s.tunnels.toLocaleString('en')} tunnels, store → forwarding | ≤ ${s.targetS ?? '–'} s | ${f(s.medianS)} s (runs ${s.upS.map((x) => f(x)).join(', ')}; store written in ${f(s.storeWriteS)} s) | ${ok(s.pass)} | ${s.loads.map((l) => l[0]).join(', ')} | \`${s.command}\` |`);
  }
  if (r.changes) {
    for (const op of ['add', 'set', 'del'] as const) rows.push(`| broker ${op}, control socket, p50 / p99 (n=${r.changes[op].n}) | p99 ≤ 1 ms | ${f(r.changes[op].p50Ms, 3)} / ${f(r.changes[op].p99Ms, 3)} ms (max ${f(r.changes[op].maxMs)}) | ${ok(r.changes[op].p99Ms <= 1)} | ${r.changes.loadBefore[0]} | \`${r.changes.command}\` |`);
    if (r.changes.refusedNoCommit) rows.push(`| (for comparison) a refused del, nothing stored, p50 / p99 | – | ${f(r.changes.refusedNoCommit.p50Ms, 3)} / ${f(r.changes.refusedNoCommit.p99Ms, 3)} ms (max ${f(r.changes.refusedNoCommit.maxMs)}) | – | ${r.changes.loadBefore[0]} | \`${r.changes.command}\` |`);
  }
  if (r.nicUpdate) {
    rows.push(`| nic/update, key checked before, p50 / p99 (n=${r.nicUpdate.keyChecked.n}) | p99 ≤ 5 ms | ${f(r.nicUpdate.keyChecked.p50Ms, 3)} / ${f(r.nicUpdate.keyChecked.p99Ms, 3)} ms | ${ok(r.nicUpdate.pass)} | ${r.nicUpdate.loadBefore[0]} | \`${r.nicUpdate.command}\` |`);
    rows.push(`| nic/update, first check of a key (scrypt), p50 / max (n=${r.nicUpdate.firstCheck.n}) | – | ${f(r.nicUpdate.firstCheck.p50Ms)} / ${f(r.nicUpdate.firstCheck.maxMs)} ms | – | ${r.nicUpdate.loadBefore[0]} | \`${r.nicUpdate.command}\` |`);
  }
  if (r.traffic) {
    const t = r.traffic;
    rows.push(`| ${f(t.changesPerSecond, 0)} changes/s (${t.changes}) during a ping every 10 ms | 0 lost | ${t.lost} lost of ${t.pingsSent}; changes p99 ${f(t.changeLatency.p99Ms, 3)} ms | ${ok(t.pass)} | ${t.loadBefore[0]} | \`${t.command}\` |`);
  }
  if (r.forwarding) {
    const w = r.forwarding;
    const span = (xs: number[], d: number) => `${f(xs[0], d)}–${f(xs[1], d)}`;
    const line = (name: string, k: keyof Forwarding, d: number, unit: string) => `| ${name}, ${w.tunnels.toLocaleString('en')} vs 1 tunnel | ≥ 0.9× | ${f(w.allTunnels[k], d)} (${span(w.allTunnelsRange[k], d)}) vs ${f(w.oneTunnel[k], d)} (${span(w.oneTunnelRange[k], d)}) ${unit} = ${f(w.ratio[k], 3)}×; per A/B pair ${w.pairRatios[k].map((x) => f(x)).join(', ')} | ${ok(w.ratio[k] >= 0.9)} | ${w.samples.map((s) => s.load[0]).join(', ')} | \`${w.command}\` |`;
    rows.push(line('UDP 64 B client → broker', 'udpUpPps', 0, 'pps'), line('UDP 64 B broker → client', 'udpDownPps', 0, 'pps'), line('TCP 1 stream client → broker', 'tcpUpGbps', 3, 'Gbit/s'), line('TCP 1 stream broker → client', 'tcpDownGbps', 3, 'Gbit/s'));
  }
  if (r.memory) {
    const m = r.memory;
    rows.push(`| daemon RSS per idle tunnel (${m.tunnels.toLocaleString('en')} vs 1 loaded) | ≤ 1024 B | ${f(m.bytesPerTunnel, 0)} B (${f(m.rssKiB1Tunnel / 1024, 1)} → ${f(m.rssKiBAllTunnels / 1024, 1)} MiB) | ${ok(m.pass)} | ${m.samples.map((s) => s.load[0]).join(', ')} | \`${m.command}\` |`);
  }
  return [
    `# Broker benchmark (${e.date})`,
    '',
    `${e.cpu}, ${e.cores} cores, Linux ${e.kernel}, Node ${e.node}; load average at the end ${e.load.join(' ')}. Each row keeps the command and the 1-minute load of its own run; the Node programs run from source through tsx.`,
    '',
    '| target | wanted | measured | | load (1 min) | command |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    r.forwarding ? `Forwarding: one real tun6in4 client, iperf3 to the broker host's own address; medians of A/B/A/B runs of ${r.forwarding.seconds} s (min–max), and each pair's ratio; UDP counted at the receiving namespace's UDP layer. Traffic spread over 1,000 tunnels: ${r.forwarding.spread}.` : '',
    '',
  ].join('\n');
}
