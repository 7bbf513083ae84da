/**
 * A broker's table of tunnels in the data path, without root: lookups (longest prefix, outer
 * source), the policy the loop asks (RPF, unknown sources, parked tunnels, per-tunnel MTU and
 * path MTU, echo replies from the server address, the drop ring), through the real TunnelEngine
 * over the in-memory fakes, and changes to the table while traffic flows.
 */
import { describe, expect, it } from 'vitest';
import { BrokerPolicy, type BrokerPolicyOptions } from '../src/broker/policy.js';
import { BrokerTable } from '../src/broker/table.js';
import { BrokerTunnelError, type BrokerTunnel } from '../src/broker/tunnel.js';
import { Drop, Traffic, DROP_REASONS } from '../src/encap/counters.js';
import { PacketResult, Verdict } from '../src/encap/result.js';
import { TunnelEngine } from '../src/engine/engine.js';
import type { TunnelPolicy } from '../src/engine/policy.js';
import { formatIpv4, formatIpv6, parseIpv6 } from '../src/packet/address.js';
import { outerDf } from '../src/packet/ipv4.js';
import { FakeTransport, FakeTun } from '../src/testing.js';
import { settle } from './helpers/drain.js';
import { ip4, ipv4Packet, ipv6Packet, refChecksum, withHeadroom } from './helpers/packets.js';
import { ManualClock } from './helpers/tunnels.js';

const LOCAL = '192.0.2.1';
const POOL = '2001:db8::/32';
const A: BrokerTunnel = { id: 'a', remote: '198.51.100.1', link: '2001:db8:1::/64', routed: ['2001:db8:a0::/48'], mtu: 1480, user: null, keyHash: null };
const B: BrokerTunnel = { id: 'b', remote: '198.51.100.2', link: '2001:db8:2::/64', routed: ['2001:db8:a0:5::/64'], mtu: 1280, user: null, keyHash: null };

function policy(extra: Partial<BrokerPolicyOptions> = {}): BrokerPolicy {
  const p = new BrokerPolicy({ local: LOCAL, pools: [POOL], ...extra });
  p.tunnels.put(A);
  p.tunnels.put(B);
  return p;
}

function engine(p: BrokerPolicy) {
  const tun = new FakeTun();
  const sock = new FakeTransport(ip4(LOCAL));
  const e = new TunnelEngine(p, tun, sock, { batchSize: 8 });
  e.start();
  return { tun, sock, e };
}

/** `inner` as client `remote` sends it to the broker. */
function fromClient(remote: string, inner: Buffer, tos = 0): Buffer {
  return ipv4Packet({ src: remote, dst: LOCAL, payload: inner, tos });
}

function slotLookup(t: BrokerTable, addr: string): string | undefined {
  return t.idOf(t.lookup(parseIpv6(addr)!, 0));
}

describe('BrokerTable: lookups', () => {
  it('finds the longest prefix: a /64 inside a /48 routed to another tunnel is its own', () => {
    const t = new BrokerTable();
    t.put(A);
    t.put(B);
    expect(slotLookup(t, '2001:db8:a0:5::9')).toBe('b');
    expect(slotLookup(t, '2001:db8:a0:6::9')).toBe('a');
    expect(slotLookup(t, '2001:db8:1::2')).toBe('a');
    expect(slotLookup(t, '2001:db8:2::2')).toBe('b');
    expect(slotLookup(t, '2001:db8:3::2')).toBeUndefined();
    t.delete('b');
    expect(slotLookup(t, '2001:db8:a0:5::9')).toBe('a');
    expect(t.slotOfRemote(ip4('198.51.100.2') | 0)).toBe(-1);
  });

  it('a /32 and a /63 are found as well as a /64', () => {
    const t = new BrokerTable();
    t.put({ ...A, routed: ['2001:db9::/32', '2001:db8:b0::/63'] });
    expect(slotLookup(t, '2001:db9:ffff::1')).toBe('a');
    expect(slotLookup(t, '2001:db8:b0:1::1')).toBe('a');
    expect(slotLookup(t, '2001:db8:b0:2::1')).toBeUndefined();
  });

  it('10,000 tunnels from 198.18.0.0/15, half deleted: every lookup still finds its own, none finds a deleted one', () => {
    const t = new BrokerTable();
    const v4 = (i: number) => formatIpv4(((198 << 24) | (18 << 16)) + 1 + i);
    const link = (i: number) => `2001:db8:${(i >> 8).toString(16)}:${(i & 0xff).toString(16)}00::/64`;
    for (let i = 0; i < 10_000; i++) t.put({ id: `t${i}`, remote: v4(i), link: link(i), routed: [], mtu: 1480, user: null, keyHash: null });
    for (let i = 0; i < 10_000; i += 2) t.delete(`t${i}`);
    expect(t.size).toBe(5_000);
    for (let i = 0; i < 10_000; i++) {
      const want = i % 2 === 1 ? `t${i}` : undefined;
      expect(slotLookup(t, link(i).replace('::/64', '::2'))).toBe(want);
      expect(t.idOf(t.slotOfRemote(ip4(v4(i)) | 0))).toBe(want);
    }
  });
});

describe('BrokerTable: put', () => {
  it('refuses a prefix another tunnel holds, naming the field; the refused put changes nothing', () => {
    const t = new BrokerTable();
    t.put(A);
    t.put(B);
    const err = (() => {
      try {
        t.put({ ...B, routed: ['2001:db8:a1::/48', '2001:db8:a0::/48'] });
      } catch (e) {
        return e as BrokerTunnelError;
      }
    })();
    expect(err).toBeInstanceOf(BrokerTunnelError);
    expect(err!.field).toBe('routed.1');
    expect(err!.message).toMatch(/tunnel a's/);
    expect(t.get('b')).toEqual(B);
    expect(slotLookup(t, '2001:db8:a1::1')).toBeUndefined();
    expect(() => t.put({ ...B, remote: A.remote })).toThrow(/^remote: .*tunnel a's remote/);
    expect(() => t.put({ ...B, routed: [B.link] })).toThrow(/^routed\.0: .*given twice/);
  });

  it('refuses a prefix outside the pools and an MTU the transport cannot carry', () => {
    const t = new BrokerTable({ pools: ['2001:db8:100::/40'], maxMtu: 1472 });
    expect(() => t.put({ ...A, mtu: 1472, link: '2001:db8:100::/64', routed: ['2001:db9::/48'] })).toThrow(/^routed\.0: .*outside this broker's pools \(2001:db8:100::\/40\)/);
    expect(() => t.put({ ...A, link: '2001:db8:100::/64', routed: [], mtu: 1480 })).toThrow(/^mtu: /);
  });

  it("moves a tunnel's remote in one put: the new remote finds it, the old one nothing", () => {
    const t = new BrokerTable();
    t.put(A);
    t.put({ ...A, remote: '203.0.113.7' });
    expect(t.idOf(t.slotOfRemote(ip4('203.0.113.7') | 0))).toBe('a');
    expect(t.slotOfRemote(ip4(A.remote!) | 0)).toBe(-1);
    expect(slotLookup(t, '2001:db8:a0::1')).toBe('a');
    expect(t.size).toBe(1);
  });
});

describe('BrokerPolicy through the engine', () => {
  it('is a TunnelPolicy the loop takes as it is', () => {
    const p: TunnelPolicy = policy();
    expect(p.config.mode).toBe('6in4');
  });

  it('TX: each destination goes to its tunnel by longest prefix, with DF and TTL', async () => {
    const { tun, sock } = engine(policy());
    tun.inject(ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:a0:5::9' }), ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:a0:7::9' }), ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:1::2' }));
    await settle(tun, sock);
    expect(sock.sent.map((s) => formatIpv4(s.dst))).toEqual([B.remote, A.remote, A.remote]);
    expect(sock.sent.every((s) => outerDf(s.fields))).toBe(true);
    expect(sock.sent[0].bytes[8]).toBe(64);
  });

  it('TX: no tunnel for the destination is answered with destination unreachable (no route), rate-limited and counted', async () => {
    const clock = new ManualClock();
    const p = policy({ icmpBurst: 1, icmpRate: 1, clock: clock.fn });
    const { tun, sock } = engine(p);
    tun.inject(ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:3::9' }), ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:3::9' }));
    await settle(tun, sock);
    expect(sock.sent).toEqual([]);
    expect(tun.written).toHaveLength(1);
    const u = tun.written[0];
    expect([u[40], u[41]]).toEqual([1, 0]);
    expect(formatIpv6(u, 8)).toBe('2001:db8::1');
    expect(formatIpv6(u, 24)).toBe('2001:db8:ffff::1');
    expect(p.counters.drops[Drop.tx_no_tunnel]).toBe(2);
    expect(p.counters.traffic[Traffic.icmp6_unreachable_sent]).toBe(1);
    expect(p.counters.traffic[Traffic.icmp6_rate_limited]).toBe(1);
  });

  it('TX: a parked tunnel drops, counted against it', async () => {
    const p = policy();
    p.tunnels.put({ ...A, remote: null });
    const { tun, sock } = engine(p);
    tun.inject(ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:a0::9' }));
    await settle(tun, sock);
    expect(sock.sent).toEqual([]);
    expect(tun.written).toEqual([]);
    expect(p.tunnels.stats('a')!.counters.drops).toEqual({ tx_tunnel_parked: 1 });
    expect(p.tunnels.stats('a')!.lastDrops[0]).toMatchObject({ reason: 'tx_tunnel_parked', outerSrc: null });
  });

  it("TX: each tunnel's own MTU: 1300 bytes pass to a, and to b (1280) become Packet Too Big from b's server address", async () => {
    const p = policy();
    const { tun, sock } = engine(p);
    tun.inject(ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:1::2', payloadLen: 1260 }), ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:2::2', payloadLen: 1260 }));
    await settle(tun, sock);
    expect(sock.sent.map((s) => formatIpv4(s.dst))).toEqual([A.remote]);
    const ptb = tun.written[0];
    expect(ptb[40]).toBe(2);
    expect(ptb.readUInt32BE(44)).toBe(1280);
    expect(formatIpv6(ptb, 8)).toBe('2001:db8:2::1');
    expect(p.tunnels.stats('b')!.counters.drops).toEqual({ tx_too_big: 1 });
  });

  it("ICMPv4 fragmentation needed about a's packets lowers a's path MTU only", async () => {
    const p = policy();
    const { tun, sock } = engine(p);
    const quoted = ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:1::2', payloadLen: 1440 });
    sock.injectError({ type: 3, code: 4, info: 1400, originalDst: ip4(A.remote!), quoted });
    await settle(tun, sock);
    expect(p.counters.traffic[Traffic.path_mtu_updates]).toBe(1);
    expect(p.mtuOf('a')).toBe(1380);
    expect(p.mtuOf('b')).toBe(1280);
    p.tunnels.put({ ...B, mtu: 1480 });
    expect(p.mtuOf('b')).toBe(1480);
    // a report naming a's remote but quoting b's destination is not a's
    sock.injectError({ type: 3, code: 4, info: 1300, originalDst: ip4(A.remote!), quoted: ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:2::2', payloadLen: 1440 }) });
    await settle(tun, sock);
    expect(p.mtuOf('a')).toBe(1380);
    expect(p.tunnels.stats('a')!.counters.drops).toEqual({ icmp4_not_ours: 1 });
  });

  it("ICMPv4 destination unreachable about b's packet is relayed to the inner sender from b's server address", async () => {
    const p = policy();
    const { tun, sock } = engine(p);
    sock.injectError({ type: 3, code: 1, info: 0, originalDst: ip4(B.remote!), quoted: ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:2::2' }) });
    await settle(tun, sock);
    expect(tun.written).toHaveLength(1);
    const u = tun.written[0];
    expect([u[40], u[41]]).toEqual([1, 3]);
    expect([formatIpv6(u, 8), formatIpv6(u, 24)]).toEqual(['2001:db8:2::1', '2001:db8:ffff::1']);
    expect(p.counters.traffic[Traffic.icmp6_errors_relayed]).toBe(1);
  });

  it('over FOU a tunnel MTU above 1472 is refused, and the path MTU counts the UDP header', () => {
    const p = new BrokerPolicy({ local: LOCAL, pools: [POOL], transport: 'fou' });
    expect(() => p.tunnels.put(A)).toThrow(/^mtu: /);
    p.tunnels.put({ ...A, mtu: 1472 });
    const quoted = ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:1::2', payloadLen: 1400 });
    const [buf, off] = withHeadroom(quoted);
    expect(p.icmpv4Error(3, 4, 1400, ip4(A.remote!), buf, off, quoted.length, new PacketResult()).verdict).toBe(Verdict.Consumed);
    expect(p.mtuOf('a')).toBe(1372);
  });

  it("RX: a client's packets are delivered; one sending from another tunnel's prefix is dropped and kept in its ring", async () => {
    const p = policy();
    const { tun, sock } = engine(p);
    const good = ipv6Packet({ src: '2001:db8:a0:1::1', dst: '2001:db8:ffff::1' });
    const linkLocal = ipv6Packet({ src: 'fe80::c633:6401', dst: '2001:db8:ffff::1' });
    const spoof = ipv6Packet({ src: '2001:db8:a0:5::1', dst: '2001:db8:ffff::1' });
    sock.inject(fromClient(A.remote!, good), fromClient(A.remote!, linkLocal), fromClient(A.remote!, spoof));
    await settle(tun, sock);
    expect(tun.written).toEqual([good, linkLocal]);
    const s = p.tunnels.stats('a')!;
    expect(s.counters).toMatchObject({ rxPackets: 2, rxBytes: good.length + linkLocal.length, drops: { rx_source_not_tunnels: 1 } });
    expect(s.lastDrops).toHaveLength(1);
    expect(s.lastDrops[0]).toMatchObject({ reason: 'rx_source_not_tunnels', outerSrc: A.remote, bytes: fromClient(A.remote!, spoof).toString('hex') });
    expect(Date.parse(s.lastDrops[0].time)).toBeGreaterThan(0);
    expect(p.tunnels.stats('b')!.counters.drops).toEqual({});
  });

  it("the drop ring keeps a tunnel's last 8 drops, oldest first, each its first 128 bytes", () => {
    const p = policy();
    for (let i = 0; i < 10; i++) {
      const pkt = fromClient(A.remote!, ipv6Packet({ src: '2001:db8:a0:5::1', dst: '2001:db8:ffff::1', hopLimit: i + 1, payloadLen: 200 }));
      const [buf, off] = withHeadroom(pkt);
      expect(p.decapsulate(buf, off, pkt.length, new PacketResult()).verdict).toBe(Verdict.Drop);
    }
    const ring = p.tunnels.stats('a')!.lastDrops;
    expect(ring).toHaveLength(8);
    expect(ring.map((d) => parseInt(d.bytes.slice(27 * 2, 28 * 2), 16))).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    expect(ring.every((d) => d.bytes.length === 256)).toBe(true);
    expect(p.tunnels.stats('a')!.counters.drops).toEqual({ rx_source_not_tunnels: 10 });
  });

  it('RX: an unknown outer source is dropped silently, counted in the totals and no tunnel', async () => {
    const p = policy();
    const { tun, sock } = engine(p);
    sock.inject(fromClient('198.18.0.9', ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:ffff::1' })));
    await settle(tun, sock);
    expect(tun.written).toEqual([]);
    expect(sock.sent).toEqual([]);
    expect(p.counters.drops[Drop.rx_unknown_outer_source]).toBe(1);
    expect(p.tunnels.stats('a')!.counters.drops).toEqual({});
    expect(p.tunnels.stats('a')!.lastDrops).toEqual([]);
  });

  it("RX: an echo request to the client's server address (::1) is answered back through its tunnel", async () => {
    const p = policy();
    const { tun, sock } = engine(p);
    const ping = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1', payloadLen: 40 });
    sock.inject(fromClient(A.remote!, ping, 0x02));
    await settle(tun, sock);
    expect(tun.written).toEqual([]);
    expect(sock.sent).toHaveLength(1);
    const { dst, inner } = sock.sent[0];
    expect(formatIpv4(dst)).toBe(A.remote);
    expect([formatIpv6(inner, 8), formatIpv6(inner, 24), inner[40]]).toEqual(['2001:db8:1::1', '2001:db8:1::2', 129]);
    expect(inner.subarray(44)).toEqual(ping.subarray(44));
    const pseudo = Buffer.concat([inner.subarray(8, 40), Buffer.from([0, 0, 0, inner.length - 40, 0, 0, 0, 58])]);
    expect(refChecksum(Buffer.concat([pseudo, inner.subarray(40)]))).toBe(0);
    expect(p.counters.traffic[Traffic.icmp6_echo_replies_sent]).toBe(1);
    // anything else to the server address stays here
    sock.inject(fromClient(A.remote!, ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1', nextHeader: 17, payload: Buffer.alloc(8) })));
    await settle(tun, sock);
    expect(tun.written).toEqual([]);
    expect(p.tunnels.stats('a')!.counters.drops).toEqual({ server_address_not_echo: 1 });
  });

  it('put, delete and move during traffic lose no packet of the other tunnels', async () => {
    const p = policy();
    const { tun, sock } = engine(p);
    const toB = ipv6Packet({ src: '2001:db8:ffff::1', dst: '2001:db8:2::2' });
    const fromB = fromClient(B.remote!, ipv6Packet({ src: '2001:db8:2::2', dst: '2001:db8:ffff::1' }));
    for (let round = 0; round < 20; round++) {
      tun.inject(toB, toB, toB);
      sock.inject(fromB, fromB);
      if (round % 4 === 0) p.tunnels.put({ ...A, remote: `203.0.113.${round + 1}` });
      if (round % 4 === 1) p.tunnels.delete('a');
      if (round % 4 === 2) p.tunnels.put({ ...A, remote: null, routed: ['2001:db8:a0::/48', '2001:db8:c0::/48'] });
      if (round % 4 === 3) p.tunnels.put(A);
      await settle(tun, sock);
    }
    expect(sock.sent.filter((s) => formatIpv4(s.dst) === B.remote)).toHaveLength(60);
    expect(tun.written).toHaveLength(40);
    expect(p.tunnels.stats('b')!.counters).toMatchObject({ txPackets: 60, rxPackets: 40, drops: {} });
    expect(DROP_REASONS.filter((_, i) => p.counters.drops[i] > 0)).toEqual([]);
  });
});
