/** Several tunnels on one local IPv4 share one raw socket: each packet reaches exactly one tunnel. */
import { batchOver } from './helpers/batch.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Encapsulator } from '../src/index.js';
import { TunnelEngine } from '../src/engine-api.js';
import { FakeTransport, FakeTun } from '../src/testing.js';
import { SharedTransports } from '../src/transport/shared-transports.js';
import { ReceiveAlso } from '../src/transport/receive-also.js';
import { BPF_INSN_INTS, receiveFilter } from '../src/transport/receive-filter.js';
import { parseIpv6Prefix } from '../src/packet/address.js';
import { NamespaceSet, type Namespace } from '../src/lab/netns.js';
import { rootOrSkip, runScenario } from './helpers/netlab.js';
import { ip4, ipv4Packet, ipv6Packet } from './helpers/packets.js';

function engineOn(local: string, remote: string, address: string, fake: FakeTransport, sockets: SharedTransports) {
  const tunnel = new Encapsulator({ mode: '6in4', local, remote, address });
  const tun = new FakeTun();
  const port = sockets.attach(`${local}/static`, { remote: ip4(remote) }, () => fake);
  const engine = new TunnelEngine(tunnel, tun, port);
  engine.start();
  return { tunnel, tun, engine };
}

describe('a shared raw socket per local address', () => {
  it('gives each 6in4 tunnel its own remote\'s packets, and a spoofed packet to one tunnel only', async () => {
    const fake = new FakeTransport();
    const sockets = new SharedTransports();
    const a = engineOn('192.0.2.50', '198.51.100.1', '2001:db8:1::2/64', fake, sockets);
    const b = engineOn('192.0.2.50', '198.51.100.2', '2001:db8:2::2/64', fake, sockets);
    const toA = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' });
    const toB = ipv6Packet({ src: '2001:db8:2::1', dst: '2001:db8:2::2' });
    fake.inject(
      ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.50', payload: toA }),
      ipv4Packet({ src: '198.51.100.2', dst: '192.0.2.50', payload: toB }),
      ipv4Packet({ src: '203.0.113.9', dst: '192.0.2.50', payload: toA }),
    );
    await fake.drained(); // the hub hands packets out before returning: no waiting on time
    expect(a.tun.written).toEqual([toA]);
    expect(b.tun.written).toEqual([toB]);
    const drops = [a, b].map((x) => x.tunnel.counters.snapshot().drops.rx_wrong_outer_source);
    expect(drops[0] + drops[1]).toBe(1);

    // ICMP errors go to the tunnel whose remote the quoted packet was sent to
    fake.injectError({ type: 3, code: 1, info: 0, originalDst: ip4('198.51.100.2'), quoted: ipv6Packet({ src: '2001:db8:2::2', dst: '2001:db8:9::1' }) });
    await fake.drained(); // the hub hands packets out before returning: no waiting on time
    expect(b.tun.written).toHaveLength(2);
    expect(a.tun.written).toHaveLength(1);

    // alone again, the remaining tunnel reads the socket itself
    b.engine.stop();
    fake.inject(ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.50', payload: toA }));
    await fake.drained(); // the hub hands packets out before returning: no waiting on time
    expect(a.tun.written).toHaveLength(2);
    a.engine.stop();
    expect(fake.closed).toBe(true);
    expect(sockets.size).toBe(0);
  });
});

describe('F2: a shared socket hands over everything it read', () => {
  it('a tunnel that takes 4 packets a wake still gets all 40 the hub read for it, none left behind', async () => {
    const fake = new FakeTransport();
    const sockets = new SharedTransports();
    const mk = (remote: string, address: string) => {
      const tunnel = new Encapsulator({ mode: '6in4', local: '192.0.2.50', remote, address });
      const tun = new FakeTun();
      const engine = new TunnelEngine(tunnel, tun, sockets.attach('192.0.2.50/static', { remote: ip4(remote) }, () => fake), { batchSize: 4, maxBatchesPerWake: 1 });
      engine.start();
      return { tun, engine };
    };
    const a = mk('198.51.100.1', '2001:db8:1::2/64');
    const b = mk('198.51.100.2', '2001:db8:2::2/64');
    const pkts = Array.from({ length: 40 }, (_, i) => ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2', payloadLen: 10 + i }));
    fake.inject(...pkts.map((p) => ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.50', payload: p })));
    await fake.drained();
    expect(a.tun.written).toEqual(pkts);
    expect(b.tun.written).toEqual([]);
    a.engine.stop();
    b.engine.stop();
  });
});

describe('the kernel filter on a raw socket (receive-filter.ts)', () => {
  const prefix = (text: string) => parseIpv6Prefix(text)!;
  it('filters nothing when a 6to4 or 6rd tunnel is on the socket, or when the tunnels do not fit one program', () => {
    expect(receiveFilter([{ remote: ip4('198.51.100.1') }, { remote: 0 }])).toBeNull();
    const many = Array.from({ length: 700 }, (_, i) => ({ remote: ip4('198.51.100.1') + i, innerDestinations: [prefix(`2001:db8:${i.toString(16)}::/64`)] }));
    expect(receiveFilter(many)).toBeNull();
    expect(receiveFilter(many.slice(0, 100))!.length).toBeLessThanOrEqual(4096 * BPF_INSN_INTS);
  });
});

describe('F4: a FOU tunnel\'s second socket (bare protocol 41 from the remote)', () => {
  it('its error queue, about nothing the tunnel sent, is read and let go one batch a call, never in an unbounded loop', () => {
    const udp = new FakeTransport();
    const raw = new FakeTransport();
    const both = new ReceiveAlso(udp, raw);
    for (let i = 0; i < 1000; i++) raw.injectError({ type: 3, code: 2, info: 0, originalDst: ip4('198.51.100.1'), quoted: ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1' }) });
    expect(both.recvErrors(batchOver(Buffer.alloc(64 * 2048), 2048, 64), 64)).toBe(0);
    expect(raw.errorQueueReads).toBe(1);
    expect(raw.errors).toHaveLength(1000 - 64);
  });
});

describe.runIf(rootOrSkip())('on real sockets (as root, in a namespace)', () => {
  const set = new NamespaceSet('shared');
  let ns: Namespace;
  beforeAll(async () => {
    ns = await set.add('fou');
    for (const a of ['192.0.2.1', '198.51.100.1', '198.51.100.2', '203.0.113.9']) await ns.ip(['addr', 'add', `${a}/32`, 'dev', 'lo']);
  }, 30_000);
  afterAll(() => set.destroy());

  it('F2: two FOU tunnels on one local port: a UDP GRO burst far beyond one wake (4 × 64) reaches its tunnel whole, with no datagram after it', async () => {
    const r = await runScenario(ns, 'shared-fou-burst', { local: '192.0.2.1', remoteA: '198.51.100.1', remoteB: '198.51.100.2', port: 5555, segments: 1600 });
    expect(r).toMatchObject({ deliveredA: 1600, inOrder: true, deliveredB: 0, rxA: 1600 });
  }, 60_000);

  it('two daemons with 6in4 tunnels on one IPv4 (their own raw sockets) see only their own packets; R14 still counts a wrong source sent to a tunnel\'s prefixes', async () => {
    const r = await runScenario(ns, 'two-daemons', { local: '192.0.2.1', remoteA: '198.51.100.11', remoteB: '198.51.100.12', stranger: '203.0.113.19' });
    // A: its 21, and the stranger's 5 to its routed prefix; the stranger's 7 to nobody's prefix reach neither
    expect(r).toEqual({ A: { rx: 21, wrongSource: 5 }, B: { rx: 31, wrongSource: 0 } });
  }, 60_000);
});
