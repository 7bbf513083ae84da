/**
 * A/B of whole checkouts, interleaved pair by pair (the machine's drift touches both alike): for
 * each tree, a 6in4 pair of its engines in two namespaces, one-stream TCP (4 s), UDP 64-byte
 * packets/s at the receiving TUN (4 s), ping RTT p50 (200 at 10 ms); then the medians.
 *   sudo node --import tsx bench/ab-pairs.ts <pairs> <checkout> <checkout>…
 * Each checkout needs its addon built (`npm run build:native` there). Used for issue 11's
 * before/after (bench/results/ab-issue11.txt).
 */
import { createInterface } from 'node:readline';
import { NamespaceSet } from '../src/lab/netns.js';
async function measure(tree: string) {
  const set = new NamespaceSet('abx');
  try {
    const a = await set.add('a'); const b = await set.add('b');
    await set.link(a, 'eth0', b, 'eth0');
    await a.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
    await b.ip(['addr', 'add', '192.0.2.2/24', 'dev', 'eth0']);
    const procs = [];
    for (const [ns, l, r, addr] of [[a, '192.0.2.1', '192.0.2.2', '2001:db8:1::2/64'], [b, '192.0.2.2', '192.0.2.1', '2001:db8:1::1/64']] as const) {
      const c = ns.spawn(process.execPath, ['--import', 'tsx', `${tree}/src/cli/main.ts`, 'run', '--mode', '6in4', '--dev', 'tun0', '--local', l, '--remote', r, '--address', addr, '--no-default-route', '--keepalive', 'off', '--control', `/run/tun6in4/${ns.name}.sock`]);
      procs.push(c);
      await new Promise<void>((res) => createInterface({ input: c.stderr! }).on('line', (x) => { if (/tunnel up/.test(x)) res(); }));
    }
    const srv = b.spawn('iperf3', ['-s', '-B', '2001:db8:1::1']);
    await new Promise((res) => setTimeout(res, 300));
    const tcp = JSON.parse(await a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', '4', '-J'], { timeoutMs: 30000 })).end.sum_received.bits_per_second / 1e9;
    const rx0 = JSON.parse(await b.ip(['-s', '-j', 'link', 'show', 'tun0']))[0].stats64.rx.packets;
    await a.exec('iperf3', ['-6', '-c', '2001:db8:1::1', '-t', '4', '-u', '-b', '0', '-l', '64', '-J'], { timeoutMs: 30000 });
    const udp = (JSON.parse(await b.ip(['-s', '-j', 'link', 'show', 'tun0']))[0].stats64.rx.packets - rx0) / 4;
    const p = await a.run('ping', ['-6', '-n', '-c', '200', '-i', '0.01', '2001:db8:1::1'], { timeoutMs: 60_000 });
    const rtts = [...p.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
    srv.kill(); for (const q of procs) q.kill('SIGTERM');
    await new Promise((res) => setTimeout(res, 300));
    return { tcp, udp, rtt: rtts[rtts.length >> 1] };
  } finally { await set.destroy(); }
}
const trees = process.argv.slice(3); const pairs = Number(process.argv[2]);
const res: Record<string, Array<{ tcp: number; udp: number; rtt: number }>> = Object.fromEntries(trees.map((t) => [t, []]));
for (let i = 0; i < pairs; i++) for (const t of trees) { const m = await measure(t); res[t].push(m); console.log(i, t, m.tcp.toFixed(3), (m.udp / 1000).toFixed(1), m.rtt); }
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
for (const t of trees) console.log(t, 'median tcp', med(res[t].map((m) => m.tcp)).toFixed(3), 'udp kpps', (med(res[t].map((m) => m.udp)) / 1000).toFixed(1), 'rtt', med(res[t].map((m) => m.rtt)));
