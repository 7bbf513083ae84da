/**
 * A/B of whole checkouts, interleaved pair by pair (the machine's drift touches both alike): for
 * each tree, a 6in4 pair of its engines in two namespaces, one-stream TCP (4 s), UDP 64-byte
 * datagrams/s at the receiver's UDP layer (4 s), 1200-byte datagrams one per send (iperf3, no GSO, 4 s),
 * inner UDP bulk (1200-byte datagrams sent with
 * UDP_SEGMENT, 4 s), ping RTT p50/p99 (200 at 10 ms) idle and beside one TCP stream; then the
 * medians. The measuring code is this tree's; the engines are each checkout's.
 *   sudo node --import tsx bench/ab-pairs.ts <pairs> <checkout> <checkout>… [-- engine flags]
 * Each checkout needs its addon built (`npm run build:native` there). Used for issue 11's
 * before/after (bench/results/ab-issue11.txt) and issue 23's (ab-issue23.txt).
 */
import { createInterface } from 'node:readline';
import { NamespaceSet } from '../src/lab/netns.js';
import { udpBulk } from '../src/lab/probes.js';
const dashes = process.argv.indexOf('--');
const engineFlags = dashes > 0 ? process.argv.slice(dashes + 1) : [];
const argv = dashes > 0 ? process.argv.slice(0, dashes) : process.argv;
async function measure(tree: string) {
  const set = new NamespaceSet('abx');
  try {
    const a = await set.add('a'); const b = await set.add('b');
    await set.link(a, 'eth0', b, 'eth0');
    await a.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
    await b.ip(['addr', 'add', '192.0.2.2/24', 'dev', 'eth0']);
    const procs = [];
    for (const [ns, l, r, addr] of [[a, '192.0.2.1', '192.0.2.2', '2001:db8:1::2/64'], [b, '192.0.2.2', '192.0.2.1', '2001:db8:1::1/64']] as const) {
      const c = ns.spawn(process.execPath, ['--import', 'tsx', `${tree}/src/cli/main.ts`, 'run', '--mode', '6in4', '--dev', 'tun0', '--local', l, '--remote', r, '--address', addr, '--no-default-route', '--keepalive', 'off', '--control', `/run/tun6in4/${ns.name}.sock`, ...engineFlags]);
      procs.push(c);
      const said: string[] = [];
      await new Promise<void>((res, rej) => {
        createInterface({ input: c.stderr! }).on('line', (x) => { said.push(x); if (/tunnel up/.test(x)) res(); });
        c.once('exit', (code) => rej(new Error(`${tree}'s engine exited ${code} before the tunnel was up:\n${said.join('\n')}`)));
      });
    }
    const srv = b.spawn('iperf3', ['-s', '-B', '2001:db8:1::1']);
    await new Promise((res) => setTimeout(res, 300));
    const tcp = JSON.parse(await a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', '4', '-J'], { timeoutMs: 30000 })).end.sum_received.bits_per_second / 1e9;
    // datagrams at the receiver's UDP layer: a merging engine hands tun0 one frame for up to 64
    const udpIn = async () => {
      const t = await b.exec('cat', ['/proc/net/snmp6']);
      const f = (k: string) => Number(new RegExp(`^${k}\\s+(\\d+)`, 'm').exec(t)?.[1] ?? NaN);
      return f('Udp6InDatagrams') + f('Udp6InErrors');
    };
    const rx0 = await udpIn();
    await a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', '4', '-u', '-b', '0', '-l', '64', '-J'], { timeoutMs: 30000 });
    const udp = ((await udpIn()) - rx0) / 4;
    // 1200-byte datagrams, one per send (no GSO): Mbit/s reaching the receiver's UDP layer
    const big0 = await udpIn();
    await a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', '4', '-u', '-b', '0', '-l', '1200', '-J'], { timeoutMs: 30000 });
    const udp1200 = (((await udpIn()) - big0) * 1200 * 8) / 4 / 1e6;
    const bulk = (await udpBulk(a, b, '2001:db8:1::1', { datagrams: 0, size: 1200, gso: true, gro: true, seconds: 4, idleS: 1 })).receivedMbitPerSecond;
    const pings = async () => {
      const p = await a.run('ping', ['-6', '-n', '-c', '200', '-i', '0.01', '2001:db8:1::1'], { timeoutMs: 60_000 });
      return [...p.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
    };
    const rtts = await pings();
    const load = a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', '4'], { timeoutMs: 30000 });
    const loaded = await pings();
    await load;
    srv.kill(); for (const q of procs) q.kill('SIGTERM');
    await new Promise((res) => setTimeout(res, 300));
    const at = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];
    return { tcp, udp, udp1200, bulk, rtt: at(rtts, 0.5), rtt99: at(rtts, 0.99), loadRtt: at(loaded, 0.5), loadRtt99: at(loaded, 0.99) };
  } finally { await set.destroy(); }
}
const trees = argv.slice(3); const pairs = Number(argv[2]);
type M = Awaited<ReturnType<typeof measure>>;
const res: Record<string, M[]> = Object.fromEntries(trees.map((t) => [t, []]));
for (let i = 0; i < pairs; i++) for (const t of trees) { const m = await measure(t); res[t].push(m); console.log(i, t, JSON.stringify(m)); }
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const col = (t: string, k: keyof M) => med(res[t].map((m) => m[k]));
console.log(`engine flags: ${engineFlags.join(' ') || '(none)'}; medians of ${pairs} interleaved pairs`);
console.log('| checkout | TCP 1 stream Gbit/s | UDP 64 B kpps | UDP 1200 B one per send Mbit/s | UDP 1200 B GSO Mbit/s | RTT p50 / p99 ms | RTT beside TCP p50 / p99 ms |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const t of trees) console.log(`| ${t} | ${col(t, 'tcp').toFixed(3)} | ${(col(t, 'udp') / 1000).toFixed(1)} | ${col(t, 'udp1200').toFixed(0)} | ${col(t, 'bulk').toFixed(0)} | ${col(t, 'rtt')} / ${col(t, 'rtt99')} | ${col(t, 'loadRtt')} / ${col(t, 'loadRtt99')} |`);
