/**
 * Soak: a bounded mixed-traffic run through the 6in4 lab (TCP both ways with integrity checks,
 * pings, bursts of hostile packets) sampling each engine's resident memory and open fds.
 *   npm run soak -- --seconds 600      (the documented 10-minute run; CI runs 60 s)
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6, tcpTransfer } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { ipv4Packet, ipv6Packet } from '../test/helpers/packets.js';

export interface SoakSample {
  atSeconds: number;
  client: { rssKb: number; fds: number };
  broker: { rssKb: number; fds: number };
}

export interface SoakReport {
  seconds: number;
  iterations: number;
  transfers: number;
  transfersIntact: number;
  bytes: number;
  hostilePackets: number;
  samples: SoakSample[];
  /** Growth from the end of the warm-up (first quarter) to the end, per engine. */
  growth: { client: { rssKb: number; fds: number }; broker: { rssKb: number; fds: number } };
  peakRssKb: number;
}

const SCAPY = fileURLToPath(new URL('../test/interop/scapy_tool.py', import.meta.url));

export async function runSoak(seconds: number, say: (s: string) => void = () => undefined): Promise<SoakReport> {
  await removeStaleNamespaces('soak');
  const lab = await LabNetwork.create('6in4', 'soak', { engineArgs: { client: ['--keepalive', '5'], broker: ['--keepalive', '5'] } });
  const samples: SoakSample[] = [];
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const sample = () => samples.push({ atSeconds: elapsed(), client: lab.engineResources('client'), broker: lab.engineResources('broker') });
  const sampler = setInterval(sample, 2000);
  let iterations = 0;
  let transfers = 0;
  let intact = 0;
  let bytes = 0;
  let hostile = 0;
  const spoofed = ipv4Packet({ src: '198.51.100.99', dst: '192.0.2.1', payload: ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' }) }).toString('hex');
  try {
    sample();
    while (elapsed() < seconds) {
      iterations++;
      for (const [from, to, addr] of [['client', 'broker', '2001:db8:1::1'], ['broker', 'client', '2001:db8:1::2']] as const) {
        const t = await tcpTransfer(lab.host(from), lab.host(to), addr, 4 << 20);
        transfers++;
        if (t.ok) intact++;
        bytes += t.bytes;
      }
      await ping6(lab.host('client'), '2001:db8:1::1', { count: 5 });
      if (iterations % 5 === 0) {
        await lab.host('wan').exec('/usr/bin/python3', [SCAPY], { input: JSON.stringify({ op: 'send_raw', packets: [{ hex: spoofed, count: 200 }] }) });
        hostile += 200;
      }
      say(`${elapsed().toFixed(0)} s: ${iterations} rounds, client rss ${samples.at(-1)!.client.rssKb} kB, fds ${samples.at(-1)!.client.fds}`);
    }
    sample();
  } finally {
    clearInterval(sampler);
    await lab.destroy();
  }
  const warm = samples[Math.floor(samples.length / 4)];
  const last = samples[samples.length - 1];
  const g = (k: 'client' | 'broker') => ({ rssKb: last[k].rssKb - warm[k].rssKb, fds: last[k].fds - warm[k].fds });
  return {
    seconds: elapsed(),
    iterations,
    transfers,
    transfersIntact: intact,
    bytes,
    hostilePackets: hostile,
    samples,
    growth: { client: g('client'), broker: g('broker') },
    peakRssKb: Math.max(...samples.flatMap((s) => [s.client.rssKb, s.broker.rssKb])),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '600' } } });
  const r = await runSoak(Number(values.seconds), (s) => console.error(s));
  console.log(JSON.stringify({ ...r, samples: `${r.samples.length} samples` }, null, 2));
}
