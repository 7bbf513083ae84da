/**
 * Micro benchmarks of the pure packet work (no I/O): packets/s for encapsulate, decapsulate and
 * the round trip at 80- and 1280-byte inner packets, and for the offload path's TSO segmentation
 * (a 64 000-byte TCP super-packet cut into 1428-byte segments) and GRO merging of those segments,
 * the same for UDP (USO: 50 datagrams of 1,200 bytes);
 * the engine's loop over batches of 64 with endpoints that do nothing (what the loop itself costs
 * per packet, 6in4 and 6to4, each way; and a broker of 10,000 tunnels with traffic over 1,000 of them); heap bytes allocated per packet over ≥ 1e6 packets.
 * Run: `npm run bench:micro` (`-- --json`, `-- --only engine`). `-- --heap-only` skips the timing
 * (each case is warmed up instead, so what is measured is optimised code); `-- --check` exits 1
 * when a case that must allocate nothing per packet allocated a byte or more per packet: a boxed
 * number is 16 bytes, so one per packet cannot hide under that bound.
 */
import type { PacketBatch } from '../src/io/batch.js';
import Benchmark from 'benchmark';
import { PerformanceObserver } from 'node:perf_hooks';
import { cpus } from 'node:os';
import { PacketResult, Encapsulator, Verdict } from '../src/index.js';
import { BrokerPolicy, TunnelEngine, type OuterTransport, type TunDevice } from '../src/engine-api.js';
import { packetArena } from '../src/packet/arena.js';
import { fold, ipv6PseudoHeaderSum } from '../src/packet/checksum.js';
import { PROTO_TCP } from '../src/packet/tcp.js';
import { PROTO_UDP } from '../src/packet/udp.js';
import { VNET_HDR_LEN } from '../src/packet/vnet.js';
import { TcpCoalescer, UdpCoalescer } from '../src/tun/coalesce.js';
import { cutSuperPacket } from '../src/tun/segment.js';

const json = process.argv.includes('--json');
const heapOnly = process.argv.includes('--heap-only');
const check = process.argv.includes('--check');
/** Heap bytes per packet at or above which a zero-allocation case fails `--check`. */
const ZERO_ALLOC_BOUND = 1;
const HEADROOM = 64;
/** Packets each case runs before heap is measured: enough for the optimising compiler to take over. */
const WARM_PACKETS = 300_000;

function innerPacket(size: number): Buffer {
  const buf = Buffer.alloc(HEADROOM + size);
  const p = buf.subarray(HEADROOM);
  p.writeUInt32BE(0x60000000, 0);
  p.writeUInt16BE(size - 40, 4);
  p[6] = 17;
  p[7] = 64;
  Buffer.from('20010db8000100000000000000000002', 'hex').copy(p, 8);
  Buffer.from('20010db8000100000000000000000001', 'hex').copy(p, 24);
  return buf;
}

const a = new Encapsulator({ mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' });
const b = new Encapsulator({ mode: '6in4', local: '198.51.100.1', remote: '192.0.2.1', address: '2001:db8:1::1/64' });
const out = new PacketResult();

interface Case {
  name: string;
  size: number;
  op: () => void;
  /** Packets one call of op handles (default 1). */
  packets?: number;
  /** Allocates per packet by design (not checked by --check). */
  allocates?: boolean;
}

function cases(size: number): Case[] {
  const txBuf = innerPacket(size);
  const rxBuf = innerPacket(size);
  a.encapsulate(rxBuf, HEADROOM, size, out); // rxBuf now holds a valid outer packet at HEADROOM-20
  const rtBuf = innerPacket(size);
  return [
    { name: 'encapsulate', size, op: () => void a.encapsulate(txBuf, HEADROOM, size, out) },
    { name: 'decapsulate', size, op: () => void b.decapsulate(rxBuf, HEADROOM - 20, size + 20, out) },
    {
      name: 'round trip',
      size,
      op: () => {
        a.encapsulate(rtBuf, HEADROOM, size, out);
        if (b.decapsulate(rtBuf, out.offset, out.length, out).verdict !== Verdict.Forward) throw new Error('round trip failed');
      },
    },
  ];
}

/**
 * A TCP/IPv6 super-packet as a TUN with TSO hands it over, cut into the engine's arena and merged
 * back into scratch room: three buffers, as in OffloadTun (frames read → slots → GRO scratch).
 * In packet arenas, as the engine's are (checksums in WebAssembly SIMD), and in plain Buffers
 * (checksums in JavaScript: what a caller with its own buffers gets, and issue 23's state).
 */
function offloadCases(total: number, mss: number, where: 'arena' | 'plain'): Case[] {
  const alloc = where === 'arena' ? packetArena : Buffer.alloc;
  const label = where === 'arena' ? '' : ' (plain Buffer)';
  const frames = alloc(HEADROOM + total);
  const arena = alloc(256 * 2048);
  const scratch = alloc(65536 + 2048);
  const p = innerPacket(total).subarray(HEADROOM);
  p[6] = 6; // TCP
  p[40 + 12] = 0x50; // data offset: 20 bytes
  p[40 + 13] = 0x10; // ACK
  for (let i = 60; i < total; i++) p[i] = i & 0xff;
  // the TCP checksum field as the kernel leaves it in a super-packet: the pseudo-header sum
  p.writeUInt16BE(fold(ipv6PseudoHeaderSum(p, 8, 24, total - 40, 6)), 40 + 16);
  p.copy(frames, HEADROOM);
  const segments = Math.ceil((total - 60) / mss);
  if (cutSuperPacket(frames, HEADROOM, total, PROTO_TCP, 40, mss, arena, 0, 2048, 256) !== segments) throw new Error('segmentation failed');
  const gro = new TcpCoalescer();
  const mergeAt = VNET_HDR_LEN + 64;
  const segLen = 60 + mss;
  return [
    { name: `TSO segment${label}`, size: total, packets: segments, op: () => void cutSuperPacket(frames, HEADROOM, total, PROTO_TCP, 40, mss, arena, 0, 2048, 256) },
    {
      name: `GRO merge${label}`,
      size: segLen,
      packets: segments,
      op: () => {
        gro.start(scratch, mergeAt, arena, 0, segLen);
        for (let i = 1; i < segments; i++) {
          const o = i * 2048;
          gro.tryAppend(arena, o, 40 + arena.readUInt16BE(o + 4));
        }
        if (gro.segments !== segments) throw new Error('GRO did not merge every segment');
        gro.finish();
      },
    },
  ];
}

/**
 * The same for UDP (USO on the TUN, as a QUIC sender's UDP_SEGMENT send arrives): a 60,048-byte
 * UDP/IPv6 super-packet cut into 50 datagrams of 1,200 bytes, and those merged back.
 */
function udpOffloadCases(datagrams: number, size: number): Case[] {
  const total = 48 + datagrams * size;
  const frames = packetArena(HEADROOM + total);
  const arena = packetArena(256 * 2048);
  const scratch = packetArena(65536 + 2048);
  const p = innerPacket(total).subarray(HEADROOM);
  p[6] = 17; // UDP
  p.writeUInt16BE(total - 40, 40 + 4);
  for (let i = 48; i < total; i++) p[i] = i & 0xff;
  // the UDP checksum field as the kernel leaves it in a super-packet: the pseudo-header sum
  p.writeUInt16BE(fold(ipv6PseudoHeaderSum(p, 8, 24, total - 40, 17)), 40 + 6);
  p.copy(frames, HEADROOM);
  const cut = () => cutSuperPacket(frames, HEADROOM, total, PROTO_UDP, 40, size, arena, 0, 2048, 256);
  if (cut() !== datagrams) throw new Error('UDP segmentation failed');
  const gro = new UdpCoalescer();
  const mergeAt = VNET_HDR_LEN + 64;
  return [
    { name: 'USO segment', size: total, packets: datagrams, op: () => void cut() },
    {
      name: 'UDP GRO merge',
      size: 48 + size,
      packets: datagrams,
      op: () => {
        gro.start(scratch, mergeAt, arena, 0, 48 + size);
        for (let i = 1; i < datagrams; i++) gro.tryAppend(arena, i * 2048, 48 + size);
        if (gro.segments !== datagrams) throw new Error('UDP GRO did not merge every datagram');
        gro.finish();
      },
    },
  ];
}

/**
 * Endpoints that cost nothing: every read hands back the same `batch` packets (written into the
 * engine's arena the first time it is seen; the loop forwards them unchanged), every send and
 * write succeeds. What remains is the engine's own per-packet work.
 */
class NullEnds implements TunDevice, OuterTransport {
  readonly name = 'null';
  private filled: Buffer | null = null;
  constructor(
    private readonly packet: Buffer,
    private readonly batch: number,
  ) {}
  protected hand(b: PacketBatch): number {
    if (this.filled !== b.arena) {
      for (let i = 0; i < this.batch; i++) this.packet.copy(b.arena, b.slot(i));
      this.filled = b.arena;
    }
    b.lens.fill(this.packet.length, 0, this.batch);
    return this.batch;
  }
  read(b: PacketBatch): number {
    return this.hand(b);
  }
  recv(b: PacketBatch): number {
    return this.hand(b);
  }
  recvErrors(): number {
    return 0;
  }
  write(_b: PacketBatch, n: number): number {
    return n;
  }
  send(_b: PacketBatch, n: number): number {
    return n;
  }
  holding(): boolean {
    return false;
  }
  watch(): void {}
  watchWritable(): void {}
  pause(): void {}
  resume(): void {}
  close(): void {}
}

/**
 * The TUN side of an RX case: what the engine writes goes nowhere, and the read it makes after a
 * write (for an answer the host's stack may have queued) finds nothing, as on a host that
 * answers none of it.
 */
class QuietTun extends NullEnds {
  override read(): number {
    return 0;
  }
}

/**
 * NullEnds over many packets: each read hands out the next `batch` of `packets` in turn (copied
 * into the engine's slots, as a device would write them), so consecutive packets belong to
 * different tunnels.
 */
class RotatingEnds extends NullEnds {
  private next = 0;
  constructor(
    private readonly packets: Buffer[],
    private readonly count: number,
  ) {
    super(packets[0], count);
  }
  protected override hand(b: PacketBatch): number {
    const all = this.packets;
    for (let i = 0; i < this.count; i++) {
      const p = all[this.next];
      this.next = this.next + 1 === all.length ? 0 : this.next + 1;
      b.arena.set(p, b.slot(i));
      b.lens[i] = p.length;
    }
    return this.count;
  }
}

/**
 * A broker's loop: 10,000 tunnels (clients in 198.18.0.0/15, each a link /64 and a routed /56, so
 * the longest-prefix lookup has two lengths to try), traffic over every tenth of them: TX half to
 * links and half to routed prefixes, RX from each client's link or routed prefix (the source check
 * looks it up too).
 */
function brokerCases(size: number): Case[] {
  const batch = 64;
  const p = new BrokerPolicy({ local: '192.0.2.1', pools: ['2001:db8::/32'] });
  const hex4 = (n: number) => n.toString(16).padStart(4, '0');
  const remote = (i: number) => `198.18.${(i + 1) >> 8}.${(i + 1) & 0xff}`;
  // link 2001:db8:0:i::/64, routed 2001:db8:1xx:yy00::/56
  const link = (i: number) => `20010db80000${hex4(i)}`;
  const routed = (i: number) => `20010db8${hex4(0x100 + (i >> 8))}${hex4((i & 0xff) << 8)}`;
  const text = (h: string, len: number) => `${h.match(/.{4}/g)!.join(':')}::/${len}`;
  for (let i = 0; i < 10_000; i++) p.tunnels.put({ id: `t${i}`, remote: remote(i), link: text(link(i), 64), routed: [text(routed(i), 56)], mtu: 1480, user: null, keyHash: null });
  const outside = '20010db8ffff00000000000000000001';
  const txPkts: Buffer[] = [];
  const rxPkts: Buffer[] = [];
  for (let k = 0; k < 1_000; k++) {
    const i = k * 10;
    const client = k % 2 === 0 ? `${link(i)}0000000000000002` : `${routed(i)}0000000000000009`;
    txPkts.push(Buffer.from(v6(outside, client, size)));
    rxPkts.push(v4(remote(i), '192.0.2.1', v6(client, outside, size)));
  }
  const tx = new TunnelEngine(p, new RotatingEnds(txPkts, batch), new RotatingEnds(txPkts, batch), { batchSize: batch, maxBatchesPerWake: 1 });
  tx.start();
  const rx = new TunnelEngine(p, new QuietTun(rxPkts[0], batch), new RotatingEnds(rxPkts, batch), { batchSize: batch, maxBatchesPerWake: 1 });
  rx.start();
  for (let i = 0; i < 2_000 / batch; i++) {
    tx.pumpTx();
    rx.pumpRx();
  }
  if (p.counters.drops.some((n) => n > 0)) throw new Error('broker: the engine bench dropped packets');
  return [
    { name: 'engine broker 10k tunnels, 1k busy tx', size, packets: batch, op: () => tx.pumpTx() },
    { name: 'engine broker 10k tunnels, 1k busy rx', size, packets: batch, op: () => rx.pumpRx() },
  ];
}

function v6(src: string, dst: string, size: number): Buffer {
  const p = innerPacket(size).subarray(HEADROOM);
  Buffer.from(src, 'hex').copy(p, 8);
  Buffer.from(dst, 'hex').copy(p, 24);
  return p;
}

/** `inner` behind the outer IPv4 header `src` would send it with. */
function v4(src: string, dst: string, inner: Buffer): Buffer {
  const sender = new Encapsulator({ mode: '6in4', local: src, remote: dst, address: '2001:db8:1::2/64' });
  const buf = Buffer.alloc(HEADROOM + inner.length);
  inner.copy(buf, HEADROOM);
  const r = sender.encapsulate(buf, HEADROOM, inner.length, new PacketResult());
  return Buffer.from(buf.subarray(r.offset, r.offset + r.length));
}

/** The loop itself: a batch of 64 packets from one end through the engine to the other. */
function engineCases(size: number): Case[] {
  const batch = 64;
  const sixToFour = { mode: '6to4', local: '192.0.2.1', relay: '203.0.113.1', allowNonGlobal: true } as const;
  const out: Case[] = [];
  const loop = (name: string, t: Encapsulator, txPkt: Buffer, rxPkt: Buffer) => {
    const tx = new TunnelEngine(t, new NullEnds(txPkt, batch), new NullEnds(txPkt, batch), { batchSize: batch, maxBatchesPerWake: 1 });
    tx.start();
    const rx = new TunnelEngine(t, new QuietTun(rxPkt, batch), new NullEnds(rxPkt, batch), { batchSize: batch, maxBatchesPerWake: 1 });
    rx.start();
    const before = t.counters.drops.reduce((a, b) => a + b, 0);
    tx.pumpTx();
    rx.pumpRx();
    if (t.counters.drops.reduce((a, b) => a + b, 0) !== before) throw new Error(`${name}: the engine bench dropped packets`);
    out.push({ name: `engine ${name} tx`, size, packets: batch, op: () => tx.pumpTx() });
    out.push({ name: `engine ${name} rx`, size, packets: batch, op: () => rx.pumpRx() });
  };
  const ours = '20010db8000100000000000000000002';
  const broker = '20010db8000100000000000000000001';
  loop('6in4', new Encapsulator({ mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' }), v6(ours, '20010db8000900000000000000000001', size), v4('198.51.100.1', '192.0.2.1', v6(broker, ours, size)));
  // site 2002:c000:201::/48 talking to the 6to4 site of 198.51.100.7 (2002:c633:6407::/48)
  const site = '2002c000020100000000000000000001';
  const peer = '2002c633640700000000000000000001';
  loop('6to4', new Encapsulator(sixToFour), v6(site, peer, size), v4('198.51.100.7', '192.0.2.1', v6(peer, site, size)));
  // 6rd, IPv4 mask length 25: the CE 192.0.2.1 (2001:db8:a020::/43) and the CE 192.0.2.66
  // (2001:db8:a840::/43) of one domain reach each other directly
  const ce = '20010db8a02000000000000000000001';
  const otherCe = '20010db8a84000000000000000000001';
  const sixrd = { mode: '6rd', local: '192.0.2.1', sixrdPrefix: '2001:db8:a000::/36', ipv4MaskLen: 25, relay: '192.0.2.126' } as const;
  loop('6rd', new Encapsulator(sixrd), v6(ce, otherCe, size), v4('192.0.2.66', '192.0.2.1', v6(otherCe, ce, size)));
  // 6in4 with a path MTU learnt from "fragmentation needed" (R07): egress looks it up per packet
  const dynamic = new Encapsulator({ mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64', pmtu: 'dynamic' });
  const quoted = v6(ours, '20010db8000900000000000000000001', 1480);
  dynamic.icmpv4Error(3, 4, 1400, 0xc6336401, quoted, 0, quoted.length, new PacketResult());
  if (dynamic.pathMtuCount() !== 1) throw new Error('the dynamic-PMTU bench learnt no path MTU');
  loop('6in4 pmtu dynamic', dynamic, v6(ours, '20010db8000900000000000000000001', size), v4('198.51.100.1', '192.0.2.1', v6(broker, ours, size)));
  return out;
}

// `--only TEXT`: just the cases whose name contains TEXT (e.g. `--only engine`)
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt > 0 ? process.argv[onlyAt + 1] : '';
const all = [...cases(80), ...cases(1280), ...offloadCases(64_000, 1428, 'arena'), ...offloadCases(64_000, 1428, 'plain'), ...udpOffloadCases(50, 1200), ...engineCases(80), ...brokerCases(80)].filter((c) => c.name.includes(only));

/**
 * Heap bytes per call of `op`: the median over GC-free chunks of 50,000 calls covering `calls`
 * (a chunk that saw a GC is retried). The median, because a one-off allocation (code being
 * optimised, an inline cache growing) lands in one chunk, while a per-packet one is in all.
 */
function allocatedPerCall(op: () => void, calls: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return NaN;
  let gcs = 0;
  const obs = new PerformanceObserver((l) => (gcs += l.getEntries().length));
  obs.observe({ entryTypes: ['gc'] });
  const chunk = Math.min(50_000, calls);
  const perCall: number[] = [];
  for (let tries = 0; perCall.length * chunk < calls && tries < 1000; tries++) {
    gc();
    const seen = gcs;
    const h0 = process.memoryUsage().heapUsed;
    for (let i = 0; i < chunk; i++) op();
    const h1 = process.memoryUsage().heapUsed;
    if (gcs !== seen) continue;
    perCall.push(Math.max(0, h1 - h0) / chunk);
  }
  obs.disconnect();
  perCall.sort((x, y) => x - y);
  return perCall[perCall.length >> 1];
}

interface Row {
  operation: string;
  innerBytes: number;
  packetsPerSecond: number;
  rme: number;
  bytesAllocatedPerPacket: number;
}

const rows: Row[] = [];
const heapRow = (c: Case, hz: number, rme: number): Row => ({
  operation: c.name,
  innerBytes: c.size,
  packetsPerSecond: Math.round(hz * (c.packets ?? 1)),
  rme: Number(rme.toFixed(2)),
  bytesAllocatedPerPacket: Number((allocatedPerCall(c.op, Math.ceil(1_000_000 / (c.packets ?? 1))) / (c.packets ?? 1)).toFixed(4)),
});
if (heapOnly) {
  // Every case warmed before any is measured, so each is measured in the state the timing run
  // reaches: code shared by several cases (the engine loop over 6in4, 6to4 and 6rd) has seen them
  // all before any is measured.
  for (const c of all) for (let i = 0; i < Math.ceil(WARM_PACKETS / (c.packets ?? 1)); i++) c.op();
  for (const c of all) rows.push(heapRow(c, NaN, NaN));
} else {
  const suite = new Benchmark.Suite();
  for (const c of all) suite.add(`${c.name} ${c.size}`, c.op, { minSamples: 20 });
  suite.on('cycle', (ev: Benchmark.Event) => {
    const bench = ev.target as unknown as Benchmark & { name: string };
    const c = all.find((x) => `${x.name} ${x.size}` === bench.name)!;
    rows.push(heapRow(c, bench.hz ?? 0, bench.stats?.rme ?? 0));
  });
  suite.run();
}

const env = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, v8: process.versions.v8, date: new Date().toISOString() };
if (json) {
  console.log(JSON.stringify({ environment: env, results: rows }, null, 2));
} else {
  console.log(`CPU: ${env.cpu} (${env.cores} cores); Node ${env.node}`);
  console.log('| operation | inner bytes | packets/s | ±% | heap bytes/packet (median of chunks, 1e6 packets) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.operation} | ${r.innerBytes} | ${heapOnly ? '–' : r.packetsPerSecond.toLocaleString('en-US')} | ${heapOnly ? '–' : r.rme} | ${Number.isNaN(r.bytesAllocatedPerPacket) ? 'run with --expose-gc' : r.bytesAllocatedPerPacket} |`);
  }
}
if (check) {
  const over = rows.filter((r) => !(all.find((c) => c.name === r.operation && c.size === r.innerBytes)?.allocates) && !(r.bytesAllocatedPerPacket < ZERO_ALLOC_BOUND));
  for (const r of over) console.error(`${r.operation} ${r.innerBytes}: ${r.bytesAllocatedPerPacket} heap bytes per packet (bound ${ZERO_ALLOC_BOUND})`);
  if (over.length > 0) process.exit(1);
}
