/**
 * A hostile network, as root in namespaces these tests create: scapy sends spoofed, malformed and
 * RFC 3964-violating protocol 41, ICMPv4 errors with garbage quotes and floods of oversized
 * packets at running engines, while a legitimate TCP transfer completes with its integrity intact
 * and every drop counter equals what was sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { tcpTransfer } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { icmpv4Error, ipv4Packet, ipv6Packet } from './helpers/packets.js';
import { rootOrSkip, scapySendRaw } from './helpers/netlab.js';

const canRun = rootOrSkip();
const N = 50;
/** Record Route with room for two addresses: Linux fills it in on local delivery (RFC 791). */
const RECORD_ROUTE = Buffer.from([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const echoFrom = (src: string) => ipv6Packet({ src, dst: '2001:db8:1::2' });

describe.runIf(canRun)('6in4 under attack', () => {
  let lab: LabNetwork;
  beforeAll(async () => {
    await removeStaleNamespaces('hostile');
    // the client's engine: tunnel MTU 1400 under a 1480 interface, so oversized packets reach it
    lab = await LabNetwork.create('6in4', 'hostile', { engineArgs: { client: ['--mtu', '1400', '--icmp-rate', '10', '--icmp-burst', '10', '--keepalive', 'off'] } });
    await lab.host('client').ip(['link', 'set', 'tun0', 'mtu', '1480']);
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('drops exactly what is hostile, by reason, while TCP carries 32 MiB intact', async () => {
    const legit = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' });
    const toClient = (payload: Buffer, src = '198.51.100.1', protocol = 41) => ipv4Packet({ src, dst: '192.0.2.1', protocol, payload });
    // what the client really sends the broker, to quote in ICMP errors
    const ours = ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', payload: ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' }) });
    const garbageQuote = Buffer.concat([ours.subarray(0, 20), Buffer.alloc(30, 0x00)]);
    const attack = [
      { bytes: toClient(legit, '198.51.100.99'), count: N }, // spoofed outer source → rx_wrong_outer_source
      { bytes: toClient(ipv6Packet({ src: '::1', dst: '2001:db8:1::2' })), count: N }, // → rx_bogus_inner_source
      { bytes: toClient(ipv6Packet({ src: 'ff02::1', dst: '2001:db8:1::2' })), count: N }, // → rx_bogus_inner_source
      { bytes: toClient(legit.subarray(0, 30)), count: N }, // truncated inner → rx_malformed_ipv6
      { bytes: toClient(ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.1', payload: legit })), count: N }, // 41 in 41 → rx_malformed_ipv6
      { bytes: toClient(icmpv4Error(3, 1, 0, garbageQuote), '203.0.113.254', 1), count: N }, // ICMP quoting garbage → icmp4_malformed
      { bytes: toClient(icmpv4Error(3, 1, 0, Buffer.alloc(28, 0x45)), '203.0.113.254', 1), count: N }, // not about our packets: the kernel keeps it
      { bytes: ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.77', payload: legit }), count: N }, // not our address: never reaches us
      // legitimate, and delivered as Linux sit delivers them:
      { bytes: toClient(Buffer.concat([echoFrom('2001:db8:1::a1'), Buffer.alloc(11, 0xee)])), count: N }, // trailing bytes → trimmed
      { bytes: ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.1', options: RECORD_ROUTE, payload: echoFrom('2001:db8:1::a2') }), count: N }, // the kernel records into it, checksum left stale
    ];
    // count the echo requests that reach the client's stack through the tunnel
    await lab.host('client').exec('nft', ['-f', '-'], {
      input: `table ip6 t6count { chain in { type filter hook input priority 0; iifname "tun0" ip6 saddr 2001:db8:1::a1 icmpv6 type echo-request counter; iifname "tun0" ip6 saddr 2001:db8:1::a2 icmpv6 type echo-request counter; }; }`,
    });
    const [transfer] = await Promise.all([
      // broker → client: the client sends only ACKs, which fit its lowered tunnel MTU
      tcpTransfer(lab.host('broker'), lab.host('client'), '2001:db8:1::2', 32 << 20),
      scapySendRaw(lab.host('wan'), attack),
    ]);
    // a flood of oversized packets to 300 destinations from the client host itself: Packet Too Big is rate-limited
    const big = Array.from({ length: 300 }, (_, i) => ({ bytes: ipv6Packet({ src: '2001:db8:1::2', dst: `2001:db8:ffff::${(i + 1).toString(16)}`, payloadLen: 1410 }), count: 1 }));
    const t0 = Date.now();
    await scapySendRaw(lab.host('client'), big);
    const floodSeconds = (Date.now() - t0) / 1000;

    expect(transfer.ok).toBe(true);
    const delivered = [...(await lab.host('client').exec('nft', ['list', 'table', 'ip6', 't6count'])).matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    expect(delivered).toEqual([N, N]);
    const { down } = await lab.stopEngine('client');
    const d = down!.counters.drops;
    const tr = down!.counters.traffic;
    expect(d.rx_wrong_outer_source).toBe(N);
    expect(d.rx_bogus_inner_source).toBe(2 * N);
    expect(d.rx_malformed_ipv6).toBe(2 * N);
    expect(d.icmp4_malformed).toBe(N);
    expect(d.rx_wrong_outer_destination).toBe(0);
    expect(d.rx_bad_ipv4_checksum).toBe(0);
    expect(tr.rx_trailing_bytes_trimmed).toBe(N);
    expect(d.tx_too_big).toBe(300);
    expect(tr.icmp6_packet_too_big_sent + tr.icmp6_rate_limited).toBe(300);
    // burst 10, then 10 per second: the limit held
    expect(tr.icmp6_packet_too_big_sent).toBeLessThanOrEqual(10 + Math.ceil(10 * (floodSeconds + 1)));
    expect(tr.icmp6_rate_limited).toBeGreaterThan(0);
    expect(down!.code).toBe(0);
  }, 180_000);
});

describe.runIf(canRun)('6to4 under attack (RFC 3964)', () => {
  let lab: LabNetwork;
  beforeAll(async () => {
    lab = await LabNetwork.create('6to4', 'hostile6');
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('every RFC 3964 violation is dropped and counted while site-to-site TCP stays intact', async () => {
    const to = (src: string, inner: { src: string; dst: string }) => ipv4Packet({ src, dst: '192.0.2.1', payload: ipv6Packet(inner) });
    const attack = [
      { bytes: to('198.51.100.7', { src: '2002:cb00:7199::1', dst: '2002:c000:201::1' }), count: N }, // R29 spoofed 6to4 source
      { bytes: to('198.51.100.7', { src: '2001:db8:5::66', dst: '2002:c000:201::1' }), count: N }, // R29 native source not from the relay
      { bytes: to('198.51.100.7', { src: '2002:c633:6407::1', dst: '2002:c633:6407::2' }), count: N }, // R30 not our /48
      { bytes: to('198.51.100.7', { src: '2002:c633:6407::1', dst: '2001:db8:5::2' }), count: N }, // R30 transit to native
      { bytes: to('203.0.113.1', { src: 'fe80::1', dst: '2002:c000:201::1' }), count: N }, // R32 link-local source
      { bytes: to('198.51.100.7', { src: '2002:c633:6407::1', dst: 'ff02::1' }), count: N }, // R32 multicast destination
    ];
    const [transfer] = await Promise.all([
      tcpTransfer(lab.host('site2'), lab.host('site1'), '2002:c000:201::1', 16 << 20),
      scapySendRaw(lab.host('wan'), attack),
    ]);
    expect(transfer.ok).toBe(true);
    const { down } = await lab.stopEngine('site1');
    const d = down!.counters.drops;
    expect(d.rx_6to4_spoofed_source).toBe(N);
    expect(d.rx_6to4_not_from_relay).toBe(N);
    expect(d.rx_6to4_not_our_prefix).toBe(2 * N);
    expect(d.rx_6to4_bogus_inner_address).toBe(2 * N);
  }, 180_000);
});
