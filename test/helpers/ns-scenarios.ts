/**
 * Data-path scenarios on real sockets, run inside a namespace a test made (a namespace belongs to
 * a process, so they run in a child): `ip netns exec NS node --import tsx ns-scenarios.ts <name>
 * <json args>`. Each prints one JSON line with what it saw. The engines here use in-memory TUNs:
 * what is under test is the outer side.
 */
import { batchOver } from './batch.js';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { closeSync } from 'node:fs';
import { Encapsulator, openTunnel } from '../../src/index.js';
import { TunnelEngine } from '../../src/engine-api.js';
import { FakeTun } from '../../src/testing.js';
import { loadNative, IP_PMTUDISC_DONT } from '../../src/io/native.js';
import { packOuterFields } from '../../src/packet/ipv4.js';
import { FouTransport } from '../../src/transport/fou.js';
import { SharedTransports } from '../../src/transport/shared-transports.js';
import { settleWhen } from './drain.js';
import { ip4, ipv6Packet } from './packets.js';

const HEAD = 64;
const native = loadNative();

/** Sends each batch through one UDP socket (UDP GSO runs of `run` packets when > 1), from `from` to `to`:`port`. */
function sendUdp(from: number, to: number, port: number, batches: Buffer[][], run: number): void {
  const { fd } = native.openUdpSocket(from, 0, IP_PMTUDISC_DONT, 8 << 20, true, false);
  for (const pkts of batches) {
    const n = pkts.length;
    const arena = Buffer.alloc(n * 2048);
    const offs = Int32Array.from(pkts, (_, i) => i * 2048 + HEAD);
    pkts.forEach((p, i) => p.copy(arena, offs[i]));
    const runs = Int32Array.from({ length: Math.ceil(n / run) }, (_, i) => Math.min(run, n - i * run));
    const b = batchOver(arena, 2048, HEAD, { offs, lens: pkts.map((p) => p.length), dsts: new Int32Array(n).fill(to | 0), fields: new Int32Array(n).fill(packOuterFields(64, 0, false)) });
    native.setSendOptions(fd, { port });
    const sent = native.sendBatch(fd, b, n, runs);
    if (sent !== n) throw new Error(`sender: ${sent} of ${n} sent (errnos ${[...b.errs.subarray(0, n)]})`);
  }
}

/** Sends protocol-41 packets through a raw socket bound to `from` (its source), to `to`. */
function sendProto41(from: number, to: number, pkts: Buffer[]): void {
  const fd = native.openRawSocket(from, IP_PMTUDISC_DONT, 1 << 20);
  for (let i = 0; i < pkts.length; i += 64) {
    const batch = pkts.slice(i, i + 64);
    const n = batch.length;
    const arena = Buffer.alloc(n * 2048);
    const offs = Int32Array.from(batch, (_, k) => k * 2048 + HEAD);
    batch.forEach((p, k) => p.copy(arena, offs[k]));
    const b = batchOver(arena, 2048, HEAD, { offs, lens: batch.map((p) => p.length), dsts: new Int32Array(n).fill(to | 0), fields: new Int32Array(n).fill(packOuterFields(64, 0, false)) });
    native.setSendOptions(fd, {});
    const sent = native.sendBatch(fd, b, n);
    if (sent !== n) throw new Error(`protocol 41 from ${from}: ${sent} of ${n} sent (errnos ${[...b.errs.subarray(0, n)]})`);
  }
  closeSync(fd);
}

const scenarios: Record<string, (a: Record<string, unknown>) => Promise<unknown>> = {
  /**
   * Batches sent through a FOU transport with the given lengths and DF, one send() each; a sink
   * takes them on `dport`. The test captures what left.
   */
  async 'fou-send'(a) {
    const local = ip4(a.local as string);
    const sink = createSocket('udp4');
    await new Promise<void>((r) => sink.bind(a.dport as number, a.local as string, () => r()));
    const t = FouTransport.open({ local, port: a.port as number, dport: a.dport as number, pmtu: 'dynamic', checksum: 'gso' });
    const results: number[][] = [];
    for (const b of a.batches as Array<{ lens: number[]; df: boolean }>) {
      const n = b.lens.length;
      const arena = Buffer.alloc(n * 2048);
      const offs = Int32Array.from(b.lens, (_, i) => i * 2048 + HEAD);
      b.lens.forEach((len, i) => ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1', payloadLen: len - 40 }).copy(arena, offs[i]));
      const batch = batchOver(arena, 2048, HEAD, { offs, lens: b.lens, dsts: new Int32Array(n).fill(local | 0), fields: new Int32Array(n).fill(packOuterFields(64, 0, b.df)) });
      t.send(batch, n);
      results.push([...batch.errs.subarray(0, n)]);
    }
    t.close();
    sink.close();
    return { errs: results, gso: t.gso, gsoFallbacks: t.gsoFallbacks };
  },

  /**
   * Two 6in4 tunnels over FOU on one local port (one process, one shared socket). A burst of UDP
   * GSO messages from tunnel A's remote waits in the socket before the engines start, so UDP GRO
   * hands it over as coalesced datagrams: far more segments than one wake takes.
   */
  async 'shared-fou-burst'(a) {
    const [local, remoteA, remoteB] = [a.local, a.remoteA, a.remoteB] as string[];
    const port = a.port as number;
    const segments = a.segments as number;
    const transports = new SharedTransports();
    const open = () => FouTransport.open({ local: ip4(local), port, dport: port, pmtu: 'static', checksum: 'gso' });
    const mk = (remote: string, address: string) => {
      const tun = new FakeTun();
      const tunnel = new Encapsulator({ mode: '6in4', local, remote, address, encap: 'fou', encapDport: port });
      const transport = transports.attach(`fou/${local}/${port}`, { remote: ip4(remote) }, open);
      return { tun, tunnel, transport };
    };
    const A = mk(remoteA, '2001:db8:1::2/64');
    const B = mk(remoteB, '2001:db8:2::2/64');
    const pkts = Array.from({ length: segments }, (_, i) => {
      const p = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2', payloadLen: 800 });
      p.writeUInt32BE(i, 48); // which one
      return p;
    });
    for (let i = 0; i < segments; i += 256) sendUdp(ip4(remoteA), ip4(local), port, [pkts.slice(i, i + 256)], 64);
    const engines = [A, B].map((t) => new TunnelEngine(t.tunnel, t.tun, t.transport));
    for (const e of engines) e.start();
    await settleWhen(() => A.tun.written.length >= segments, 5000);
    for (const e of engines) e.stop();
    const seen = A.tun.written.map((p) => p.readUInt32BE(48));
    return {
      deliveredA: A.tun.written.length,
      inOrder: seen.every((v, i) => v === i),
      deliveredB: B.tun.written.length,
      rxA: A.tunnel.counters.snapshot().traffic.rx_packets,
      dropsA: A.tunnel.counters.snapshot().drops,
    };
  },
};

Object.assign(scenarios, {
  /**
   * Two 6in4 tunnels on one local IPv4 as two daemons would run them: each with its own shared
   * transports, so each its own raw socket, which the kernel gives a copy of every protocol-41
   * packet. Each remote sends its tunnel packets; a stranger sends to one tunnel's routed prefix
   * and to nobody's; then one last packet from each remote, after which every earlier one was read.
   */
  async 'two-daemons'(a: Record<string, unknown>) {
    const [local, remoteA, remoteB, stranger] = [a.local, a.remoteA, a.remoteB, a.stranger] as string[];
    const open = (dev: string, remote: string, address: string, routed: string[]) =>
      openTunnel({ mode: '6in4', local, remote, address, routed, dev, defaultRoute: false, offload: false, sharedTransports: new SharedTransports() });
    const A = await open('t6a', remoteA, '2001:db8:1::2/64', ['2001:db8:11::/64']);
    const B = await open('t6b', remoteB, '2001:db8:2::2/64', []);
    try {
      // the senders' addresses go on lo only now that the tunnels are up: a remote that is an
      // address of this host is refused at start (it would send to itself)
      for (const v4 of [remoteA, remoteB, stranger]) execFileSync('ip', ['addr', 'add', `${v4}/32`, 'dev', 'lo']);
      const to = (src: string, dst: string, n: number) => Array.from({ length: n }, () => ipv6Packet({ src, dst }));
      sendProto41(ip4(remoteB), ip4(local), to('2001:db8:2::1', '2001:db8:2::2', 30));
      sendProto41(ip4(stranger), ip4(local), to('2001:db8:77::1', '2001:db8:11::5', 5));
      sendProto41(ip4(stranger), ip4(local), to('2001:db8:77::1', '2001:db8:99::1', 7));
      sendProto41(ip4(remoteA), ip4(local), to('2001:db8:1::1', '2001:db8:1::2', 21));
      sendProto41(ip4(remoteB), ip4(local), to('2001:db8:2::1', '2001:db8:2::2', 1));
      const rx = (t: typeof A) => t.status().counters.traffic.rx_packets;
      await settleWhen(() => rx(A) >= 21 && rx(B) >= 31, 10_000);
      const seen = (t: typeof A) => ({ rx: rx(t), wrongSource: t.status().counters.drops.rx_wrong_outer_source });
      return { A: seen(A), B: seen(B) };
    } finally {
      await A.close();
      await B.close();
    }
  },
});

const [name, json] = process.argv.slice(2);
const run = scenarios[name];
if (!run) throw new Error(`no scenario ${name}; there are ${Object.keys(scenarios).join(', ')}`);
run(JSON.parse(json ?? '{}')).then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`, () => process.exit(0)),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
