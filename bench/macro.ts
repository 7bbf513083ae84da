/**
 * The macro benchmark: two namespaces joined by a veth, a forwarder at each end, iperf3 through
 * the tunnel. Forwarders: this engine; the obvious Node forwarder (bench/baselines/); a minimal C
 * forwarder, per-packet and batched (bench/reference/, built here); and the kernel's own IPv6
 * straight over the veth, with and without offloads, as the ceiling. For each: TCP 1 and 4
 * streams, UDP with 64-byte payloads (datagrams/s counted at the receiving host's UDP layer, not by
 * iperf3, which starves for CPU on 2 cores), forwarder CPU and syscalls per packet, our engine's
 * heap allocation per packet, and ping RTT p50/p99. Medians of N runs with min–max; ratios to the
 * baseline and to the batched C reference from the same run. Output: Markdown, JSON and an SVG
 * chart in bench/results/. Needs root.
 *
 *   npm run bench:macro [-- --runs 3 --seconds 5 --quick --only tun6in4,naive-node --json --out DIR --node PATH]
 *
 * `--node PATH` runs the Node forwarders (ours and the naive baseline) under that node (e.g. one
 * scripts/runtime.sh fetched); the harness itself stays on the Node that started it.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { NamespaceSet, removeStaleNamespaces, runCapture, type Namespace } from '../src/lab/netns.js';
import { udpBulk } from '../src/lab/probes.js';
import { crossings, forwarders, gcLog, startPair, type Forwarder } from './forwarders.js';
import { renderChart } from './chart.js';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
    only: { type: 'string' },
    node: { type: 'string' },
  },
});
/** The node our engines and the naive baseline run under. */
const NODE = flags.node ?? process.execPath;
const NODE_VERSION = execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim();
const RUNS = flags.quick ? 1 : Number(flags.runs);
const SECONDS = flags.quick ? 2 : Number(flags.seconds);
const PINGS = flags.quick ? 50 : 200;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * UDP datagrams that reached the receiving host's UDP layer: read by the application, or dropped
 * at its socket (Udp6InDatagrams + Udp6InErrors). Counted there, not as packets on the interface,
 * because a forwarder that merges datagrams into UDP GSO frames hands the interface one frame for
 * up to 64 of them.
 */
async function udpDatagramsIn(ns: Namespace): Promise<number> {
  const t = await ns.exec('cat', ['/proc/net/snmp6']);
  const field = (k: string) => Number(new RegExp(`^${k}\\s+(\\d+)`, 'm').exec(t)?.[1] ?? NaN);
  return field('Udp6InDatagrams') + field('Udp6InErrors');
}

/** Bytes allocated on the V8 heap per packet, from --trace-gc lines between two marks. */
function heapPerPacket(lines: string[], from: number, packets: number, seconds: number): { bytesPerPacket: number | null; scavenges: number } {
  const gcs = lines.slice(from).map((l) => /(\d+(?:\.\d+)?) \(\d+(?:\.\d+)?\) -> (\d+(?:\.\d+)?) \(\d+(?:\.\d+)?\) MB/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  const timed = lines.slice(from).map((l) => /(\d+) ms: /.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  if (gcs.length < 2) {
    // fewer than two GCs: less than one young generation (16 MiB) was allocated in the window
    return { bytesPerPacket: gcs.length === 0 ? 0 : null, scavenges: gcs.length };
  }
  let allocated = 0;
  for (let i = 1; i < gcs.length; i++) allocated += (Number(gcs[i][1]) - Number(gcs[i - 1][2])) * 1024 * 1024;
  const spanS = (Number(timed[timed.length - 1][1]) - Number(timed[0][1])) / 1000;
  return { bytesPerPacket: spanS > 0 ? allocated / spanS / (packets / seconds) : null, scavenges: gcs.length };
}

async function syscallsPerPacket(pids: number[], measure: () => Promise<number>): Promise<number | null> {
  const perf = runCapture('perf', ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter', '-p', pids.join(','), '--', 'sleep', String(SECONDS)], { noThrow: true });
  const packets = await measure();
  const r = await perf;
  const m = /^(\d+),/m.exec(r.stderr);
  return m && packets > 0 ? Number(m[1]) / packets : null;
}

interface Sample {
  tcp1Gbps: number;
  tcp4Gbps: number;
  udpPps: number;
  udpCpuUsPerPacket: number | null;
  syscallsPerPacket: number | null;
  /** Syscalls of both forwarders per KiB of TCP payload delivered in the one-stream run. */
  syscallsPerTcpKiB: number | null;
  heapBytesPerPacket: number | null;
  /** Our engine: JS/addon crossings (calls and callbacks) of both ends per UDP packet delivered. */
  crossingsPerPacket: number | null;
  rttP50Ms: number;
  rttP99Ms: number;
  /** Ping RTT while one TCP stream fills the path: what the queues on the way add. */
  rttLoadP50Ms: number;
  rttLoadP99Ms: number;
  /** Inner UDP, 1200-byte datagrams sent with UDP_SEGMENT (as QUIC stacks do): Mbit/s received. */
  udpBulkMbps: number;
  /** Inner UDP, 1200-byte datagrams one per send (iperf3 -u -l 1200 -b 0): Mbit/s received. */
  udp1200Mbps: number;
}

async function measure(fw: Forwarder, withSyscalls: boolean): Promise<Sample> {
  const set = new NamespaceSet('bench');
  const procs: ChildProcess[] = [];
  try {
    const { a, b } = await startPair(set, fw, procs);
    const server = b.spawn('iperf3', ['-s', '-B', '2001:db8:1::1']);
    await new Promise((r) => setTimeout(r, 500));
    const iperf = (args: string[]) => a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', String(SECONDS), '-J', ...args], { timeoutMs: (SECONDS + 30) * 1000 });
    const cpu = () => procs.reduce((s, p) => s + cpuSeconds(p.pid!), 0);

    let tcp1: { end: { sum_received: { bits_per_second: number; bytes: number } } } = { end: { sum_received: { bits_per_second: 0, bytes: 0 } } };
    const tcp1Run = async () => {
      tcp1 = JSON.parse(await iperf([]));
      return tcp1.end.sum_received.bytes / 1024;
    };
    const sysTcp = withSyscalls && procs.length ? await syscallsPerPacket(procs.map((p) => p.pid!), tcp1Run) : (await tcp1Run(), null);
    const tcp4 = JSON.parse(await iperf(['-P', '4']));
    // UDP 64-byte payloads, unlimited rate; packets counted where they come out
    const rx0 = await udpDatagramsIn(b);
    const cpu0 = cpu();
    const gcFrom = procs.map((p) => gcLog.get(p)?.length ?? 0);
    const crossings0 = await crossings(procs);
    const t0 = process.hrtime.bigint();
    const udpRun = async () => {
      await iperf(['-u', '-b', '0', '-l', '64']);
      return (await udpDatagramsIn(b)) - rx0;
    };
    let sys: number | null = null;
    let udpPackets: number;
    if (withSyscalls && procs.length) {
      sys = await syscallsPerPacket(procs.map((p) => p.pid!), udpRun);
      udpPackets = (await udpDatagramsIn(b)) - rx0;
    } else {
      udpPackets = await udpRun();
    }
    const elapsed = Math.min(Number(process.hrtime.bigint() - t0) / 1e9, SECONDS);
    const crossings1 = crossings0 === null ? null : await crossings(procs);
    const udpCpu = procs.length ? ((cpu() - cpu0) * 1e6) / Math.max(1, udpPackets) : null;
    const heaps = procs.map((p, i) => (gcLog.has(p) ? heapPerPacket(gcLog.get(p)!, gcFrom[i], udpPackets, elapsed) : null)).filter((h) => h !== null);
    const heap = heaps.length ? heaps.reduce((s, h) => (s === null || h!.bytesPerPacket === null ? null : s + h!.bytesPerPacket), 0 as number | null) : null;
    // 1200-byte datagrams from a sender without GSO (one datagram per send, as DNS, games, VoIP
    // and many QUIC stacks send): Mbit/s of datagrams reaching the receiving host's UDP layer
    const big0 = await udpDatagramsIn(b);
    const tBig = process.hrtime.bigint();
    await iperf(['-u', '-b', '0', '-l', '1200']);
    const bigS = Math.min(Number(process.hrtime.bigint() - tBig) / 1e9, SECONDS);
    const udp1200Mbps = (((await udpDatagramsIn(b)) - big0) * 1200 * 8) / bigS / 1e6;
    server.kill('SIGKILL');

    // inner UDP bulk: 1200-byte datagrams, 32 a send with UDP_SEGMENT, counted by the receiver
    const bulk = await udpBulk(a, b, '2001:db8:1::1', { datagrams: 0, size: 1200, gso: true, gro: true, seconds: SECONDS, idleS: 1 });

    // latency: ping through the path, one probe every 10 ms; idle, then beside one TCP stream
    const pings = async () => {
      const ping = await a.run('ping', ['-6', '-n', '-c', String(PINGS), '-i', '0.01', '2001:db8:1::1'], { timeoutMs: 60_000 });
      return [...ping.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
    };
    const pctOf = (rtts: number[], q: number) => rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))] ?? NaN;
    const rtts = await pings();
    const pct = (q: number) => pctOf(rtts, q);
    const server2 = b.spawn('iperf3', ['-s', '-1', '-B', '2001:db8:1::1', '-p', '5202']);
    await new Promise((r) => setTimeout(r, 300));
    const loadRun = a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-p', '5202', '-t', String(Math.max(SECONDS, Math.ceil(PINGS / 100) + 2))], { timeoutMs: (SECONDS + 40) * 1000 });
    const loaded = await pings();
    await loadRun;
    server2.kill('SIGKILL');
    return {
      rttLoadP50Ms: pctOf(loaded, 0.5),
      rttLoadP99Ms: pctOf(loaded, 0.99),
      udpBulkMbps: bulk.receivedMbitPerSecond,
      udp1200Mbps,
      tcp1Gbps: tcp1.end.sum_received.bits_per_second / 1e9,
      tcp4Gbps: tcp4.end.sum_received.bits_per_second / 1e9,
      udpPps: udpPackets / elapsed,
      udpCpuUsPerPacket: udpCpu,
      syscallsPerPacket: sys,
      syscallsPerTcpKiB: sysTcp,
      heapBytesPerPacket: heap,
      crossingsPerPacket: crossings0 === null || crossings1 === null ? null : (crossings1 - crossings0) / Math.max(1, udpPackets),
      rttP50Ms: pct(0.5),
      rttP99Ms: pct(0.99),
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
const stat = (xs: Array<number | null>): Stat | null => {
  const s = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((x, y) => x - y);
  return s.length ? { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] } : null;
};

if (process.getuid?.() !== 0) {
  console.error('bench:macro needs root (namespaces, TUN, raw sockets)');
  process.exit(2);
}
await removeStaleNamespaces('bench');
const chosen = forwarders(NODE).filter((f) => !flags.only || flags.only.split(',').includes(f.name));
const samples = new Map<string, Sample[]>(chosen.map((f) => [f.name, []]));
// Interleave forwarders run by run, so drift in the machine's load touches all of them alike.
for (let run = 0; run < RUNS; run++) {
  for (const fw of chosen) {
    const s = await measure(fw, run === 0);
    samples.get(fw.name)!.push(s);
    if (!flags.json) console.error(`run ${run + 1}/${RUNS} ${fw.name}: TCP ${s.tcp1Gbps.toFixed(3)} / ${s.tcp4Gbps.toFixed(3)} Gbit/s, UDP ${Math.round(s.udpPps)} pps, rtt p50 ${s.rttP50Ms} ms`);
  }
}

const versions = {
  iperf3: (await runCapture('iperf3', ['--version'], { noThrow: true })).stdout.split('\n')[0].trim(),
  gcc: (await runCapture('gcc', ['--version'], { noThrow: true })).stdout.split('\n')[0].trim(),
};
/**
 * Whether the kernel's DAMON monitor samples this machine's memory, and how often. On the
 * machine these figures come from, the sandbox runs DAMON over all physical memory with a
 * 500 ms sampling interval, and each sampling pass delays the next packet through an engine
 * that has a large resident set (our Node engines, not the C ones) by 1-2 ms. That is the
 * periodic idle p99 tail; see docs/performance.md.
 */
function damonSampling(): string {
  const root = '/sys/kernel/mm/damon/admin/kdamonds';
  try {
    const n = Number(readFileSync(`${root}/nr_kdamonds`, 'utf8'));
    const on: string[] = [];
    for (let k = 0; k < n; k++) {
      if (readFileSync(`${root}/${k}/state`, 'utf8').trim() !== 'on') continue;
      const us = Number(readFileSync(`${root}/${k}/contexts/0/monitoring_attrs/intervals/sample_us`, 'utf8'));
      on.push(`kdamond ${k} samples every ${us / 1000} ms`);
    }
    return on.length ? on.join(', ') : 'off';
  } catch {
    return 'not present';
  }
}

const results = chosen.map((f) => {
  const s = samples.get(f.name)!;
  return {
    forwarder: f.name,
    description: f.description,
    tcp1Gbps: stat(s.map((x) => x.tcp1Gbps))!,
    tcp4Gbps: stat(s.map((x) => x.tcp4Gbps))!,
    udpPps: stat(s.map((x) => x.udpPps))!,
    udpCpuUsPerPacket: stat(s.map((x) => x.udpCpuUsPerPacket)),
    syscallsPerPacket: stat(s.map((x) => x.syscallsPerPacket)),
    syscallsPerTcpKiB: stat(s.map((x) => x.syscallsPerTcpKiB)),
    heapBytesPerPacket: stat(s.map((x) => x.heapBytesPerPacket)),
    crossingsPerPacket: stat(s.map((x) => x.crossingsPerPacket)),
    rttP50Ms: stat(s.map((x) => x.rttP50Ms))!,
    rttP99Ms: stat(s.map((x) => x.rttP99Ms))!,
    rttLoadP50Ms: stat(s.map((x) => x.rttLoadP50Ms)),
    rttLoadP99Ms: stat(s.map((x) => x.rttLoadP99Ms)),
    udpBulkMbps: stat(s.map((x) => x.udpBulkMbps)),
    udp1200Mbps: stat(s.map((x) => x.udp1200Mbps)),
  };
});
const base = results.find((r) => r.forwarder === 'naive-node');
const cref = results.find((r) => r.forwarder === 'c-batched');
// the strongest protocol-41 C yardstick (TSO cut + verified GRO), and the C FOU one with the same offloads
const coff = results.find((r) => r.forwarder === 'c-offload');
const cfou = results.find((r) => r.forwarder === 'c-fou-offload');
const ratio = (a: Stat, b: Stat | undefined) => (b ? a.median / b.median : null);
const report = {
  environment: { cpu: cpus()[0]?.model, cores: cpus().length, kernel: release(), node: NODE_VERSION, harnessNode: process.version, ...versions, damon: damonSampling(), date: new Date().toISOString() },
  method: {
    runs: RUNS,
    seconds: SECONDS,
    topology: 'two network namespaces, one veth pair; a 6in4 tunnel between them (or plain IPv6 for the kernel ceilings); iperf3 client → server',
    udp: 'iperf3 -u -b 0 -l 64; datagrams counted where they reach the receiving host\'s UDP layer (Udp6InDatagrams + Udp6InErrors), not by iperf3, which starves for CPU on 2 cores',
    cpu: 'user+system time of both forwarder processes per UDP packet delivered',
    syscalls: 'perf stat raw_syscalls:sys_enter on both forwarders during the first UDP run, per packet delivered; and during the first one-stream TCP run, per KiB of payload delivered',
    heap: 'our engine only: V8 heap allocated per packet, from --trace-gc between scavenges during the UDP run (young generation capped at 1 MiB; 0 = not one scavenge, – = one)',
    udp1200: 'inner UDP: iperf3 -u -b 0 -l 1200, one datagram per send, Mbit/s of datagrams reaching the receiving host\'s UDP layer',
    udpBulk: 'inner UDP: 1200-byte datagrams, 32 per send with UDP_SEGMENT (Python sender, as QUIC stacks send), Mbit/s of datagrams the UDP_GRO receiver got',
    rttUnderLoad: 'ping every 10 ms while one iperf3 TCP stream runs through the same path',
    crossings: 'our engine: calls into the addon and its readiness callbacks (the addon counts them; status nativeCrossings) of both ends during the UDP 64 B run, per packet delivered',
  },
  results: results.map((r) => ({
    ...r,
    tcp1RatioToBaseline: ratio(r.tcp1Gbps, base?.tcp1Gbps),
    tcp1RatioToCBatched: ratio(r.tcp1Gbps, cref?.tcp1Gbps),
    udpRatioToBaseline: ratio(r.udpPps, base?.udpPps),
    udpRatioToCBatched: ratio(r.udpPps, cref?.udpPps),
    tcp1RatioToCOffload: ratio(r.tcp1Gbps, coff?.tcp1Gbps),
    tcp1RatioToCFouOffload: ratio(r.tcp1Gbps, cfou?.tcp1Gbps),
    udpRatioToCOffload: ratio(r.udpPps, coff?.udpPps),
    rttP50RatioToCBatched: ratio(r.rttP50Ms, cref?.rttP50Ms),
    rttP50RatioToCOffload: ratio(r.rttP50Ms, coff?.rttP50Ms),
    udpBulkRatioToCOffload: r.udpBulkMbps && coff?.udpBulkMbps ? r.udpBulkMbps.median / coff.udpBulkMbps.median : null,
    udp1200RatioToCOffload: r.udp1200Mbps && coff?.udp1200Mbps ? r.udp1200Mbps.median / coff.udp1200Mbps.median : null,
    udp1200RatioToCFouOffload: r.udp1200Mbps && cfou?.udp1200Mbps ? r.udp1200Mbps.median / cfou.udp1200Mbps.median : null,
  })),
};

const f = (s: Stat | null, d = 3) => (s ? `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})` : '–');
const x = (v: number | null) => (v === null ? '–' : `${v.toFixed(2)}×`);
const md = [
  `# Macro benchmark (${report.environment.date})`,
  '',
  `${report.environment.cpu}, ${report.environment.cores} cores, Linux ${report.environment.kernel}, Node ${report.environment.node}, ${versions.iperf3}, ${versions.gcc}; DAMON: ${report.environment.damon}.`,
  `Medians of ${RUNS} run(s) of ${SECONDS} s each (min–max); ratios from the same run. ${report.method.udp}.`,
  '',
  '| forwarder | TCP 1 stream Gbit/s | × naive | × C batched | TCP 4 streams Gbit/s | UDP 64 B kpps | × naive | × C batched | CPU µs/pkt | syscalls/pkt | heap B/pkt | RTT p50 / p99 ms |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...report.results.map(
    (r) =>
      `| ${r.forwarder} | ${f(r.tcp1Gbps)} | ${x(r.tcp1RatioToBaseline)} | ${x(r.tcp1RatioToCBatched)} | ${f(r.tcp4Gbps)} | ${(r.udpPps.median / 1000).toFixed(1)} (${(r.udpPps.min / 1000).toFixed(1)}–${(r.udpPps.max / 1000).toFixed(1)}) | ${x(r.udpRatioToBaseline)} | ${x(r.udpRatioToCBatched)} | ${r.udpCpuUsPerPacket ? r.udpCpuUsPerPacket.median.toFixed(1) : '–'} | ${r.syscallsPerPacket ? r.syscallsPerPacket.median.toFixed(2) : '–'} | ${r.heapBytesPerPacket ? r.heapBytesPerPacket.median.toFixed(1) : '–'} | ${r.rttP50Ms.median.toFixed(3)} / ${r.rttP99Ms.median.toFixed(3)} |`,
  ),
  '',
  '| forwarder | TCP 1 × c-offload | TCP 1 × c-fou-offload | UDP 64 B × c-offload | UDP 1200 B one per send Mbit/s | × c-offload | × c-fou-offload | UDP 1200 B GSO Mbit/s | × c-offload | RTT p50 × c-batched | RTT p50 × c-offload | RTT under 1 TCP stream p50 / p99 ms | syscalls / KiB TCP | N-API crossings / pkt |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...report.results.map(
    (r) =>
      `| ${r.forwarder} | ${x(r.tcp1RatioToCOffload)} | ${x(r.tcp1RatioToCFouOffload)} | ${x(r.udpRatioToCOffload)} | ${f(r.udp1200Mbps, 0)} | ${x(r.udp1200RatioToCOffload)} | ${x(r.udp1200RatioToCFouOffload)} | ${f(r.udpBulkMbps, 0)} | ${x(r.udpBulkRatioToCOffload)} | ${x(r.rttP50RatioToCBatched)} | ${x(r.rttP50RatioToCOffload)} | ${r.rttLoadP50Ms && r.rttLoadP99Ms ? `${r.rttLoadP50Ms.median.toFixed(2)} / ${r.rttLoadP99Ms.median.toFixed(2)}` : '–'} | ${r.syscallsPerTcpKiB ? r.syscallsPerTcpKiB.median.toFixed(3) : '–'} | ${r.crossingsPerPacket ? r.crossingsPerPacket.median.toFixed(4) : '–'} |`,
  ),
  '',
  ...chosen.map((fw) => `- **${fw.name}**: ${fw.description}`),
  `- CPU: ${report.method.cpu}. Syscalls: ${report.method.syscalls}. Heap: ${report.method.heap}.`,
  `- UDP 1200 B one per send: ${report.method.udp1200}. UDP 1200 B GSO: ${report.method.udpBulk}. RTT under load: ${report.method.rttUnderLoad}. N-API crossings: ${report.method.crossings}.`,
  '',
  '![throughput chart](macro-latest.svg)',
  '',
].join('\n');

const dir = flags.out ?? here('results');
mkdirSync(dir, { recursive: true });
const stamp = report.environment.date.replace(/[:.]/g, '-');
writeFileSync(`${dir}/macro-${stamp}.json`, JSON.stringify(report, null, 2));
writeFileSync(`${dir}/macro-latest.json`, JSON.stringify(report, null, 2));
writeFileSync(`${dir}/macro-latest.md`, md);
writeFileSync(`${dir}/macro-latest.svg`, renderChart(report.results.map((r) => ({ name: r.forwarder, tcp1: r.tcp1Gbps.median, udpKpps: r.udpPps.median / 1000 })), report.environment));
console.log(flags.json ? JSON.stringify(report, null, 2) : md);
