/**
 * The macro benchmark: two namespaces joined by a veth, a forwarder at each end, iperf3 through
 * the tunnel. For each forwarder: TCP single stream (Gbit/s) and UDP with 64-byte payloads
 * (tunnel packets/s counted at the receiving TUN, not by iperf3, which starves for CPU on 2
 * cores), with the forwarders' CPU time per packet. Medians of N runs with min–max, and ratios
 * to the baseline measured in the same run. Needs root.
 *
 *   npm run bench:macro [-- --runs 3 --seconds 5 --quick --json]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Namespace, NamespaceSet, removeStaleNamespaces, runCapture } from '../src/lab/netns.js';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});
const RUNS = flags.quick ? 1 : Number(flags.runs);
const SECONDS = flags.quick ? 2 : Number(flags.seconds);
const TSX = import.meta.resolve('tsx');
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

interface Forwarder {
  name: string;
  description: string;
  /** Command for one endpoint; resolves when it forwards. */
  start(ns: Namespace, end: End): Promise<ChildProcess>;
}

interface End {
  local: string;
  remote: string;
  address: string;
}

const A: End = { local: '192.0.2.1', remote: '192.0.2.2', address: '2001:db8:1::2/64' };
const B: End = { local: '192.0.2.2', remote: '192.0.2.1', address: '2001:db8:1::1/64' };

async function waitFor(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp, what: string): Promise<void> {
  const lines = createInterface({ input: child[stream]! });
  const seen: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not start: ${seen.join('\n')}`)), 20_000);
    lines.on('line', (l) => {
      seen.push(l);
      if (pattern.test(l)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.on('exit', () => reject(new Error(`${what} exited: ${seen.join('\n')}`)));
  });
}

const FORWARDERS: Forwarder[] = [
  {
    name: 'tun6in4',
    description: 'this engine: batched recvmmsg/sendmmsg, TUN drain loop, uv_poll readiness',
    async start(ns, e) {
      const c = ns.spawn(process.execPath, ['--import', TSX, here('../src/cli/main.ts'), 'run', '--mode', '6in4', '--dev', 'tun0', '--local', e.local, '--remote', e.remote, '--address', e.address, '--no-default-route']);
      await waitFor(c, 'stderr', /"tunnel up"/, 'tun6in4');
      return c;
    },
  },
  {
    name: 'naive-node',
    description: 'baseline: fs.read/fs.write on the TUN fd + the raw-socket package, one packet per call',
    async start(ns, e) {
      const c = ns.spawn(process.execPath, ['--import', TSX, here('baselines/naive-forwarder.ts'), '--dev', 'tun0', '--local', e.local, '--remote', e.remote, '--address', e.address]);
      await waitFor(c, 'stdout', /^ready$/, 'naive forwarder');
      return c;
    },
  },
];

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

async function tunRxPackets(ns: Namespace): Promise<number> {
  const j = JSON.parse(await ns.ip(['-s', '-j', 'link', 'show', 'tun0'])) as Array<{ stats64: { rx: { packets: number } } }>;
  return j[0].stats64.rx.packets;
}

interface Sample {
  tcpGbps: number;
  udpPps: number;
  udpCpuUsPerPacket: number;
  tcpCpuUsPerPacket: number;
}

async function measure(fw: Forwarder): Promise<Sample> {
  const set = new NamespaceSet('bench');
  const procs: ChildProcess[] = [];
  try {
    const a = await set.add('a');
    const b = await set.add('b');
    await set.link(a, 'eth0', b, 'eth0');
    await a.ip(['addr', 'add', `${A.local}/24`, 'dev', 'eth0']);
    await b.ip(['addr', 'add', `${B.local}/24`, 'dev', 'eth0']);
    procs.push(await fw.start(a, A), await fw.start(b, B));
    const server = b.spawn('iperf3', ['-s', '-B', '2001:db8:1::1']);
    procs.push(server);
    await new Promise((r) => setTimeout(r, 500));
    const cpu = () => procs.slice(0, 2).reduce((s, p) => s + cpuSeconds(p.pid!), 0);

    // TCP, one stream, A → B
    let rx0 = await tunRxPackets(b);
    let cpu0 = cpu();
    const tcp = JSON.parse(await a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 30) * 1000 }));
    const tcpPackets = (await tunRxPackets(b)) - rx0;
    const tcpCpu = cpu() - cpu0;
    // UDP, 64-byte payloads, unlimited rate
    rx0 = await tunRxPackets(b);
    cpu0 = cpu();
    const t0 = process.hrtime.bigint();
    await a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-u', '-b', '0', '-l', '64', '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 30) * 1000 });
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const udpPackets = (await tunRxPackets(b)) - rx0;
    const udpCpu = cpu() - cpu0;
    return {
      tcpGbps: tcp.end.sum_received.bits_per_second / 1e9,
      tcpCpuUsPerPacket: (tcpCpu * 1e6) / Math.max(1, tcpPackets * 2), // data packets one way, ACKs the other: roughly 2 forwards per data packet
      udpPps: udpPackets / Math.min(elapsed, SECONDS),
      udpCpuUsPerPacket: (udpCpu * 1e6) / Math.max(1, udpPackets),
    };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await set.destroy();
  }
}

interface Stat {
  median: number;
  min: number;
  max: number;
}
const stat = (xs: number[]): Stat => {
  const s = [...xs].sort((x, y) => x - y);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
};

if (process.getuid?.() !== 0) {
  console.error('bench:macro needs root (namespaces, TUN, raw sockets)');
  process.exit(2);
}
await removeStaleNamespaces('bench');
const chosen = FORWARDERS.filter((f) => !flags.only || flags.only.split(',').includes(f.name));
const samples = new Map<string, Sample[]>(chosen.map((f) => [f.name, []]));
// Interleave forwarders run by run, so drift in the machine's load touches all of them alike.
for (let run = 0; run < RUNS; run++) {
  for (const fw of chosen) {
    const s = await measure(fw);
    samples.get(fw.name)!.push(s);
    if (!flags.json) console.error(`run ${run + 1}/${RUNS} ${fw.name}: TCP ${s.tcpGbps.toFixed(3)} Gbit/s, UDP ${Math.round(s.udpPps)} pps`);
  }
}

const iperfVersion = (await runCapture('iperf3', ['--version'], { noThrow: true })).stdout.split('\n')[0].trim();
const results = chosen.map((f) => {
  const s = samples.get(f.name)!;
  return {
    forwarder: f.name,
    description: f.description,
    tcpGbps: stat(s.map((x) => x.tcpGbps)),
    udpPps: stat(s.map((x) => x.udpPps)),
    tcpCpuUsPerPacket: stat(s.map((x) => x.tcpCpuUsPerPacket)),
    udpCpuUsPerPacket: stat(s.map((x) => x.udpCpuUsPerPacket)),
  };
});
const base = results.find((r) => r.forwarder === 'naive-node');
const report = {
  environment: { cpu: cpus()[0]?.model, cores: cpus().length, kernel: release(), node: process.version, iperf3: iperfVersion, date: new Date().toISOString() },
  method: { runs: RUNS, seconds: SECONDS, topology: 'two network namespaces, one veth pair, 6in4 tunnel, iperf3 client → server through it' },
  results: results.map((r) => ({
    ...r,
    tcpRatioToBaseline: base ? r.tcpGbps.median / base.tcpGbps.median : null,
    udpRatioToBaseline: base ? r.udpPps.median / base.udpPps.median : null,
  })),
};

const md = [
  `# Macro benchmark (${report.environment.date})`,
  '',
  `${report.environment.cpu}, ${report.environment.cores} cores, Linux ${report.environment.kernel}, Node ${report.environment.node}, ${iperfVersion}.`,
  `Medians of ${RUNS} run(s) of ${SECONDS} s (min–max); ratios to the naive Node baseline from the same run.`,
  '',
  '| forwarder | TCP 1 stream Gbit/s | × baseline | UDP 64 B packets/s at the TUN | × baseline | CPU µs/packet (UDP) |',
  '|---|---:|---:|---:|---:|---:|',
  ...report.results.map(
    (r) =>
      `| ${r.forwarder} | ${r.tcpGbps.median.toFixed(3)} (${r.tcpGbps.min.toFixed(3)}–${r.tcpGbps.max.toFixed(3)}) | ${r.tcpRatioToBaseline?.toFixed(2) ?? '–'} | ${Math.round(r.udpPps.median)} (${Math.round(r.udpPps.min)}–${Math.round(r.udpPps.max)}) | ${r.udpRatioToBaseline?.toFixed(2) ?? '–'} | ${r.udpCpuUsPerPacket.median.toFixed(1)} |`,
  ),
  '',
].join('\n');

const dir = here('results');
mkdirSync(dir, { recursive: true });
const stamp = report.environment.date.replace(/[:.]/g, '-');
writeFileSync(`${dir}/macro-${stamp}.json`, JSON.stringify(report, null, 2));
writeFileSync(`${dir}/macro-${stamp}.md`, md);
writeFileSync(`${dir}/macro-latest.md`, md);
console.log(flags.json ? JSON.stringify(report, null, 2) : md);
