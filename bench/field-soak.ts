/**
 * The field soak (DESIGN.md F1–F5): the 6in4 lab with the client's uplink as the field has it —
 * 20 Mbit/s (tc tbf, a 1 MB queue), MTU 1492 (PPPoE) — and, in rounds until the time is up:
 * a TCP upload at the link rate with integrity checks, request/response rounds (64 B up, 64 KiB
 * down) whose tail shows any packet left waiting for new traffic, the same rounds while a bulk
 * upload runs, a UDP flood far above the link, forged ICMPv4 errors and the engine's CPU while
 * idle after them. Samples each engine's RSS, fds and CPU.
 *   npm run soak:field -- --seconds 300 [--encap fou] [--encap-csum]
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6, requestResponse, tcpTransfer, udpFlood, type RequestResponseResult } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { icmpv4Error, ipv4Packet, ipv6Packet } from '../test/helpers/packets.js';

const SCAPY = fileURLToPath(new URL('../test/interop/scapy_tool.py', import.meta.url));

export interface FieldSoakReport {
  transport: string;
  seconds: number;
  rounds: number;
  uploads: number;
  uploadsIntact: number;
  uploadMbit: { min: number; median: number; max: number };
  /** Request/response on an idle tunnel, and while a bulk upload fills the uplink. */
  rrIdle: RequestResponseResult[];
  rrUnderLoad: RequestResponseResult[];
  floods: number;
  forgedErrors: number;
  /** Engine CPU (ms) over 10 pings (~2 s) right after each burst of forged errors. */
  idleCpuMsAfterForged: number[];
  alive: boolean;
  counters: { txBackpressureWaits: number; txLinkFull: number; txSendError: number; gsoFallbacks: number | null };
  rss: { firstKb: number; lastKb: number; peakKb: number };
  fds: { first: number; last: number };
}

export async function runFieldSoak(seconds: number, transportArgs: string[], say: (s: string) => void = () => undefined): Promise<FieldSoakReport> {
  await removeStaleNamespaces('fsoak');
  const args = ['--keepalive', 'off', ...transportArgs];
  const lab = await LabNetwork.create('6in4', 'fsoak', { engineArgs: { client: args, broker: args } });
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const rates: number[] = [];
  const rrIdle: RequestResponseResult[] = [];
  const rrUnderLoad: RequestResponseResult[] = [];
  const idleCpu: number[] = [];
  const rss: number[] = [];
  const fds: number[] = [];
  let rounds = 0;
  let uploads = 0;
  let intact = 0;
  let floods = 0;
  let forged = 0;
  const client = lab.host('client');
  const broker = lab.host('broker');
  const quote41 = ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 41, payload: ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1' }).subarray(0, 40) });
  const udp = Buffer.alloc(48);
  udp.writeUInt16BE(5555, 0);
  udp.writeUInt16BE(5555, 2);
  udp.writeUInt16BE(48, 4);
  const quoteUdp = ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 17, payload: udp });
  const forgedHex = [
    ipv4Packet({ src: '198.51.100.254', dst: '192.0.2.1', protocol: 1, payload: icmpv4Error(3, 2, 0, quote41) }),
    ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.1', protocol: 1, payload: icmpv4Error(3, 3, 0, quoteUdp) }),
    ipv4Packet({ src: '198.51.100.254', dst: '192.0.2.1', protocol: 1, payload: icmpv4Error(3, 4, 1200, quote41) }),
  ].map((p) => ({ hex: p.toString('hex'), count: 20 }));
  try {
    await client.exec('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kb', 'limit', '1mb']);
    await client.ip(['link', 'set', 'eth0', 'mtu', '1492']);
    await lab.host('wan').ip(['link', 'set', 'to-client', 'mtu', '1492']);
    while (elapsed() < seconds) {
      rounds++;
      const up = await tcpTransfer(client, broker, '2001:db8:1::1', 8 << 20);
      uploads++;
      if (up.ok) intact++;
      rates.push(up.mbitPerSecond);
      // the upload's tail drains from the uplink's queue (up to 0.4 s) before the idle rounds
      await ping6(client, '2001:db8:1::1', { count: 3 });
      rrIdle.push(await requestResponse(client, broker, '2001:db8:1::1', 200, 64 << 10));
      const bulk = tcpTransfer(client, broker, '2001:db8:1::1', 16 << 20, 5003);
      rrUnderLoad.push(await requestResponse(client, broker, '2001:db8:1::1', 100, 64 << 10));
      const b = await bulk;
      uploads++;
      if (b.ok) intact++;
      await udpFlood(client, broker, '2001:db8:1::1', 300, 24);
      floods++;
      await lab.host('wan').exec('/usr/bin/python3', [SCAPY], { input: JSON.stringify({ op: 'send_raw', packets: forgedHex }) });
      forged += 60;
      const before = lab.engineResources('client').cpuMs;
      await ping6(client, '2001:db8:1::1', { count: 10 });
      idleCpu.push(lab.engineResources('client').cpuMs - before);
      const r = lab.engineResources('client');
      rss.push(r.rssKb);
      fds.push(r.fds);
      const last = (xs: RequestResponseResult[]) => xs[xs.length - 1];
      say(`${elapsed().toFixed(0)} s: round ${rounds}: upload ${up.mbitPerSecond.toFixed(1)} Mbit/s ${up.ok ? 'intact' : 'BROKEN'}; rr p99 idle ${last(rrIdle).p99Ms.toFixed(1)} ms, under load ${last(rrUnderLoad).p99Ms.toFixed(1)} ms; idle CPU after forged errors ${idleCpu[idleCpu.length - 1]} ms; rss ${r.rssKb} kB`);
    }
    const s = ((await queryControl(lab.engines.get('client')!.control, 'status')) as DaemonStatus).tunnels[0];
    const sorted = [...rates].sort((a, b) => a - b);
    return {
      transport: transportArgs.join(' ') || 'protocol 41',
      seconds: elapsed(),
      rounds,
      uploads,
      uploadsIntact: intact,
      uploadMbit: { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] },
      rrIdle,
      rrUnderLoad,
      floods,
      forgedErrors: forged,
      idleCpuMsAfterForged: idleCpu,
      alive: lab.engines.get('client')!.child.exitCode === null,
      counters: {
        txBackpressureWaits: s.counters.traffic.tx_backpressure_waits,
        txLinkFull: s.counters.drops.tx_link_full,
        txSendError: s.counters.drops.tx_send_error,
        gsoFallbacks: s.transport.encap === 'fou' ? s.transport.gsoFallbacks : null,
      },
      rss: { firstKb: rss[0], lastKb: rss[rss.length - 1], peakKb: Math.max(...rss) },
      fds: { first: fds[0], last: fds[fds.length - 1] },
    };
  } finally {
    await lab.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '300' }, encap: { type: 'string', default: 'none' }, 'encap-csum': { type: 'boolean', default: false } } });
  const transport = values.encap === 'fou' ? ['--encap', 'fou', '--encap-dport', '5555', ...(values['encap-csum'] ? ['--encap-csum'] : [])] : [];
  const r = await runFieldSoak(Number(values.seconds), transport, (s) => console.error(s));
  const p = (xs: RequestResponseResult[], k: 'p50Ms' | 'p99Ms' | 'maxMs') => Math.max(...xs.map((x) => x[k])).toFixed(1);
  console.error(
    `field soak (${r.transport}), ${r.seconds.toFixed(0)} s, ${r.rounds} rounds: uploads ${r.uploadsIntact}/${r.uploads} intact, ` +
      `${r.uploadMbit.min.toFixed(1)}–${r.uploadMbit.max.toFixed(1)} Mbit/s (median ${r.uploadMbit.median.toFixed(1)}) over a 20 Mbit/s uplink; ` +
      `rr worst p99 idle ${p(r.rrIdle, 'p99Ms')} ms (max ${p(r.rrIdle, 'maxMs')}), under load ${p(r.rrUnderLoad, 'p99Ms')} ms (max ${p(r.rrUnderLoad, 'maxMs')}); ` +
      `idle CPU after forged errors max ${Math.max(...r.idleCpuMsAfterForged)} ms per 10 pings; engine alive ${r.alive}`,
  );
  const out = fileURLToPath(new URL(`./results/field-soak-${values.encap}${values['encap-csum'] ? '-csum' : ''}-latest.json`, import.meta.url));
  writeFileSync(out, `${JSON.stringify(r, null, 2)}\n`);
  console.log(JSON.stringify({ ...r, rrIdle: `${r.rrIdle.length} runs`, rrUnderLoad: `${r.rrUnderLoad.length} runs` }, null, 2));
}
