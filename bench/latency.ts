/**
 * Round-trip latency through a pair of forwarders, the way a quiet link sees it: pings 250 ms
 * apart (every probe finds both forwarders asleep: the idle round trip), then pings 5 ms apart
 * (a busy interactive flow: the tail is what matters). Same topology as bench/macro.ts, one pair
 * at a time, forwarders interleaved run by run; medians of the runs' percentiles and ratios to
 * the batched C forwarder of the same transport (c-batched for protocol 41, c-fou for FOU).
 *
 *   sudo node --import tsx bench/latency.ts [--runs 3] [--idle 60] [--busy 400] [--warm 300]
 *        [--only tun6in4,c-batched] [--engine-flags "--x --y"] [--tree DIR] [--base DIR] [--out DIR] [--json]
 *
 * `--warm N` sends N pings 10 ms apart first, so the engines' hot paths are compiled before
 * anything is measured (V8 reaches TurboFan after ~200 packets; a 60-probe idle run alone would
 * measure the interpreter). `--engine-flags` go to every tun6in4 forwarder; `--tree` runs the
 * engines from another checkout; `--base DIR` adds `base:tun6in4` and `base:tun6in4-fou`, the
 * engines of the checkout at DIR, interleaved with the rest (a before/after pair in one run).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { engineRuns, forwarders, startEngine, startPair, type Forwarder } from './forwarders.js';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    idle: { type: 'string', default: '60' },
    busy: { type: 'string', default: '400' },
    warm: { type: 'string', default: '300' },
    only: { type: 'string', default: 'tun6in4,c-batched,tun6in4-fou,c-fou,naive-node' },
    'engine-flags': { type: 'string', default: '' },
    tree: { type: 'string' },
    base: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const RUNS = Number(flags.runs);
const IDLE = Number(flags.idle);
const BUSY = Number(flags.busy);
const WARM = Number(flags.warm);
engineRuns.measureHeap = false;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const tree = flags.tree ?? here('..');
const extra = flags['engine-flags'].split(' ').filter(Boolean);

const all = forwarders(process.execPath, tree).map((f): Forwarder =>
  f.name.startsWith('tun6in4') && extra.length
    ? { ...f, start: (ns, e) => startEngine(process.execPath, tree, ns, e, [...(f.name.includes('fou') ? ['--encap', 'fou', '--encap-dport', '5555'] : []), ...extra]) }
    : f,
);
if (flags.base) {
  for (const f of forwarders(process.execPath, flags.base)) if (f.name === 'tun6in4' || f.name === 'tun6in4-fou') all.push({ ...f, name: `base:${f.name}` });
}
const chosen = [...flags.only.split(','), ...(flags.base ? ['base:tun6in4', 'base:tun6in4-fou'] : [])].map((n) => {
  const f = all.find((x) => x.name === n);
  if (!f) throw new Error(`--only: no forwarder "${n}"; known: ${all.map((x) => x.name).join(', ')}`);
  return f;
});

async function pings(ns: Namespace, count: number, intervalS: number): Promise<number[]> {
  const p = await ns.run('ping', ['-6', '-n', '-c', String(count), '-i', String(intervalS), '2001:db8:1::1'], { timeoutMs: (count * intervalS + 30) * 1000 });
  return [...p.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

interface Sample {
  idleP50: number;
  idleP90: number;
  busyP50: number;
  busyP99: number;
  lost: number;
}

async function measure(fw: Forwarder): Promise<Sample> {
  const set = new NamespaceSet('lat');
  const procs: ChildProcess[] = [];
  try {
    const { a } = await startPair(set, fw, procs);
    if (WARM) await pings(a, WARM, 0.01);
    const idle = await pings(a, IDLE, 0.25);
    const busy = await pings(a, BUSY, 0.005);
    return { idleP50: pct(idle, 0.5), idleP90: pct(idle, 0.9), busyP50: pct(busy, 0.5), busyP99: pct(busy, 0.99), lost: IDLE + BUSY - idle.length - busy.length };
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await set.destroy();
  }
}

if (process.getuid?.() !== 0) {
  console.error('bench/latency.ts needs root (namespaces, TUN, raw sockets)');
  process.exit(2);
}
await removeStaleNamespaces('lat');
const samples = new Map<string, Sample[]>(chosen.map((f) => [f.name, []]));
for (let run = 0; run < RUNS; run++) {
  for (const fw of chosen) {
    const s = await measure(fw);
    samples.get(fw.name)!.push(s);
    if (!flags.json) console.error(`run ${run + 1}/${RUNS} ${fw.name}: idle p50 ${s.idleP50} p90 ${s.idleP90}, busy p50 ${s.busyP50} p99 ${s.busyP99} ms${s.lost ? `, ${s.lost} lost` : ''}`);
  }
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const col = (n: string, k: keyof Sample) => med(samples.get(n)!.map((s) => s[k]));
const span = (n: string, k: keyof Sample) => {
  const xs = samples.get(n)!.map((s) => s[k]);
  return `${Math.min(...xs)}–${Math.max(...xs)}`;
};
/** The batched C forwarder of the same transport, when it ran. */
const yardstick = (n: string) => (n.includes('fou') ? 'c-fou' : 'c-batched');
const ratio = (n: string, k: keyof Sample) => (samples.has(yardstick(n)) ? col(n, k) / col(yardstick(n), k) : null);
const x = (v: number | null) => (v === null ? '–' : `${v.toFixed(2)}×`);
const environment = { cpu: cpus()[0]?.model, cores: cpus().length, kernel: release(), node: process.version, date: new Date().toISOString(), tree, base: flags.base ?? null, engineFlags: extra.join(' ') };
const md = [
  `# Latency (${environment.date})`,
  '',
  `${environment.cpu}, ${environment.cores} cores, Linux ${environment.kernel}, Node ${environment.node}. ${RUNS} run(s) interleaved; per run ${WARM} warm-up pings 10 ms apart, ${IDLE} pings 250 ms apart (idle), ${BUSY} pings 5 ms apart (busy). Medians over runs (min–max), ratios to the batched C forwarder of the same transport.${flags.base ? ` base: = the engines of ${flags.base}.` : ''}${extra.length ? ` Engine flags: ${extra.join(' ')}.` : ''}`,
  '',
  '| forwarder | idle p50 ms | × C | idle p90 ms | busy p50 ms | busy p99 ms | × C |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...chosen.map((f) => `| ${f.name} | ${col(f.name, 'idleP50')} (${span(f.name, 'idleP50')}) | ${x(ratio(f.name, 'idleP50'))} | ${col(f.name, 'idleP90')} | ${col(f.name, 'busyP50')} | ${col(f.name, 'busyP99')} (${span(f.name, 'busyP99')}) | ${x(ratio(f.name, 'busyP99'))} |`),
  '',
].join('\n');
if (flags.out) {
  mkdirSync(flags.out, { recursive: true });
  writeFileSync(`${flags.out}/latency-latest.md`, md);
  writeFileSync(`${flags.out}/latency-latest.json`, JSON.stringify({ environment, runs: Object.fromEntries(samples) }, null, 2));
}
console.log(flags.json ? JSON.stringify({ environment, runs: Object.fromEntries(samples) }, null, 2) : md);
