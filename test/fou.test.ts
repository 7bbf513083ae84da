/**
 * Foo-over-UDP end to end, as root, in namespaces these tests create: the Linux FOU wire format
 * (IPv4 + UDP + the IPv6 packet, UDP checksum zero or correct) read back by scapy, datagrams built
 * by scapy from any source port with zero, correct and wrong checksums, wrong sources dropped and
 * counted, path MTU from ICMPv4 "fragmentation needed" about our UDP packets (PTB says m − 28),
 * TCP integrity with offloads on and off, and the lab over FOU.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { LAB_FOU_PORT, labFouArgs, runLab } from '../src/lab/lab.js';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { ping6, tcpTransfer } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { rootOrSkip, runScenario, scapyParse, scapySend, scapySendFou, startCapture, until, type Capture } from './helpers/netlab.js';

const canRun = rootOrSkip();
const ETH = 14;

const statusOf = (lab: LabNetwork, role: string) => queryControl(lab.engines.get(role)!.control, 'status') as Promise<DaemonStatus>;

describe.runIf(canRun)('the lab over FOU', () => {
  beforeAll(() => removeStaleNamespaces('lab'));

  it('passes every step (ping6 both ways, a packet filling the 1472-byte MTU with DF, TCP integrity) and exits cleanly', async () => {
    const r = await runLab({ mode: '6in4', encap: 'fou', transferBytes: 16 << 20 });
    expect(r.steps.filter((s) => !s.ok)).toEqual([]);
    expect(r.steps.map((s) => s.name)).toContain('ping6 filling the 1472-byte FOU MTU, DF');
    expect(r.cleanShutdown).toEqual({ client: true, broker: true });
    expect(r.counters.broker!.traffic.rx_packets).toBeGreaterThan(10_000);
  }, 120_000);
});

describe.runIf(canRun)('6in4 over FOU against the kernel and scapy', () => {
  let lab: LabNetwork;

  beforeAll(async () => {
    await removeStaleNamespaces('fou');
    lab = await LabNetwork.create('6in4', 'fou', { engineArgs: labFouArgs(['--keepalive', 'off']), skipEngines: ['client'] });
    // the client sends UDP checksums (and may use UDP GSO), with its own TTL/TOS and path MTU discovery
    await lab.startEngine('client', [...clientArgs(), '--encap-csum', '--ttl', '33', '--tos', '40', '--pmtu', 'dynamic']);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  const clientArgs = () => ['--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64', '--routed', '2001:db8:2::/64', ...labFouArgs(['--keepalive', 'off']).client];

  it('puts the Linux FOU format on the wire: UDP 5555 → 5555 around the untouched IPv6 packet, checksum as configured', async () => {
    const wan = lab.host('wan');
    // veth leaves UDP checksums for "hardware" to fill in (what a capture sees is the partial sum);
    // with checksum offload off on the senders' links, the kernel writes them as it would for a NIC without it
    const txOffload = (on: 'on' | 'off') => Promise.all(['client', 'broker'].map((h) => lab.host(h).exec('ethtool', ['-K', 'eth0', 'tx', on])));
    await txOffload('off');
    let cap: Capture;
    try {
      const done = await startCapture(wan, 'to-client', `udp port ${LAB_FOU_PORT}`, 4, 10_000);
      await ping6(lab.host('client'), '2001:db8:1::1', { count: 2 });
      cap = await done.result;
    } finally {
      // the rest of the suite runs with the links as veth makes them (UDP GRO needs offloaded checksums)
      await txOffload('on');
    }
    const frames = Object.fromEntries(cap.packets.map((f, i) => [`p${i}`, f.subarray(ETH)]));
    const parsed = Object.values(await scapyParse(wan, frames));
    const fromClient = parsed.filter((p) => p.src === '192.0.2.1');
    const fromBroker = parsed.filter((p) => p.src === '198.51.100.1');
    expect(fromClient.length).toBeGreaterThan(0);
    expect(fromBroker.length).toBeGreaterThan(0);
    for (const p of parsed) {
      expect([p.proto, p.ihl, p.udp_sport, p.udp_dport]).toEqual([17, 5, LAB_FOU_PORT, LAB_FOU_PORT]);
      expect(p.udp_len).toBe((p.len as number) - 20);
      expect([p.ip_checksum_ok, p.udp_checksum_ok]).toEqual([true, true]);
      // the inner packet is exactly the payload: no FOU/GUE header in between
      expect((p.udp_payload as string).slice(0, 1)).toBe('6');
    }
    // --encap-csum sends real checksums; the broker (default, as Linux noencap-csum) sends zero
    expect(fromClient.every((p) => p.udp_chksum !== 0)).toBe(true);
    expect(fromBroker.every((p) => p.udp_chksum === 0)).toBe(true);
    // R10/R13/R05 as for protocol 41: TTL 33, TOS 40 (ECN bits of Not-ECT inner stay 0), DF with --pmtu dynamic
    expect(fromClient.every((p) => p.ttl === 33 && p.tos === 40 && ((p.flags as number) & 2) === 2)).toBe(true);
    expect(fromClient.map((p) => p.inner_dst)).toContain('2001:db8:1::1');
  }, 30_000);

  it('takes datagrams from the remote from any source port with a zero or correct checksum; a wrong one never reaches the TUN', async () => {
    // the wrong checksum goes first: had it reached the TUN, it would be among the two captured
    const done = await startCapture(lab.host('client'), 'tun0', 'icmp6 and ip6[40] = 128', 2, 60_000);
    const base = { outer_src: '198.51.100.1', outer_dst: '192.0.2.1', sport: 40_000, dport: LAB_FOU_PORT, inner_src: '2001:db8:1::1', inner_dst: '2001:db8:1::2', count: 1 };
    await scapySendFou(lab.host('wan'), { ...base, csum: 'bad', echo_id: 0x7003 });
    await scapySendFou(lab.host('wan'), { ...base, csum: 'zero', echo_id: 0x7001 });
    await scapySendFou(lab.host('wan'), { ...base, csum: 'good', echo_id: 0x7002, sport: 33_333 });
    const ids = (await done.result).packets.map((f) => f.readUInt16BE(44));
    expect(ids.sort()).toEqual([0x7001, 0x7002]);
  }, 90_000);

  it('still takes bare protocol 41 from the remote, as Linux\'s sit with encap fou does', async () => {
    const done = await startCapture(lab.host('client'), 'tun0', 'icmp6 and ip6[40] = 128 and ip6[44:2] = 0x7200', 1, 60_000);
    await scapySend(lab.host('wan'), { outer_src: '198.51.100.1', outer_dst: '192.0.2.1', inner_src: '2001:db8:1::1', inner_dst: '2001:db8:1::2', echo_id: 0x7200, count: 1 });
    expect((await done.result).packets).toHaveLength(1);
  }, 90_000);

  it('drops and counts datagrams from any other IPv4 source; they never reach the TUN', async () => {
    const before = (await statusOf(lab, 'client')).tunnels[0].counters.drops.rx_wrong_outer_source;
    // then one from the remote: the first echo the TUN sees must be that one
    const done = await startCapture(lab.host('client'), 'tun0', 'icmp6 and ip6[40] = 128 and (ip6[44:2] = 0x7100 or ip6[44:2] = 0x7101)', 1, 60_000);
    await scapySendFou(lab.host('wan'), {
      outer_src: '203.0.113.66',
      outer_dst: '192.0.2.1',
      sport: LAB_FOU_PORT,
      dport: LAB_FOU_PORT,
      csum: 'good',
      inner_src: '2001:db8:1::1',
      inner_dst: '2001:db8:1::2',
      echo_id: 0x7100,
      count: 4,
    });
    await scapySendFou(lab.host('wan'), { outer_src: '198.51.100.1', outer_dst: '192.0.2.1', sport: LAB_FOU_PORT, dport: LAB_FOU_PORT, csum: 'good', inner_src: '2001:db8:1::1', inner_dst: '2001:db8:1::2', echo_id: 0x7101, count: 1 });
    expect((await done.result).packets.map((f) => f.readUInt16BE(44))).toEqual([0x7101]);
    const after = await until('the drops counted', () => statusOf(lab, 'client'), (s) => s.tunnels[0].counters.drops.rx_wrong_outer_source >= before + 4);
    expect(after.tunnels[0].counters.drops.rx_wrong_outer_source).toBe(before + 4);
  }, 90_000);

  it('R07: "fragmentation needed, MTU 1400" about our UDP packets gives Packet Too Big 1372 (m − 28)', async () => {
    await lab.host('wan').ip(['link', 'set', 'to-broker', 'mtu', '1400']);
    try {
      const client = lab.host('client');
      await ping6(client, '2001:db8:1::1', { count: 1, size: 1424, dontFragment: true, timeoutS: 1 });
      const after = await ping6(client, '2001:db8:1::1', { count: 2, size: 1424, dontFragment: true, timeoutS: 1 });
      expect(after.output).toMatch(/mtu[=:] ?1372/);
      expect((await ping6(client, '2001:db8:1::1', { count: 2, size: 1372 - 48, dontFragment: true })).ok).toBe(true);
    } finally {
      await lab.host('wan').ip(['link', 'set', 'to-broker', 'mtu', '1500']);
    }
  }, 30_000);

  it('UDP GRO: with GRO on the links the kernel coalesces our datagrams; split again, TCP arrives intact', async () => {
    for (const h of ['broker', 'client']) await lab.host(h).exec('ethtool', ['-K', 'eth0', 'gro', 'on']);
    for (const i of ['to-broker', 'to-client']) await lab.host('wan').exec('ethtool', ['-K', i, 'gro', 'on']);
    try {
      const t = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 16 << 20, 5004);
      expect(t.ok).toBe(true);
      const tr = (await statusOf(lab, 'broker')).tunnels[0].transport;
      expect(tr).toMatchObject({ encap: 'fou', gro: true });
      expect(tr.encap === 'fou' && tr.groCoalesced).toBeGreaterThan(0);
    } finally {
      for (const h of ['broker', 'client']) await lab.host(h).exec('ethtool', ['-K', 'eth0', 'gro', 'off']);
      for (const i of ['to-broker', 'to-client']) await lab.host('wan').exec('ethtool', ['-K', i, 'gro', 'off']);
    }
  }, 60_000);

  it('by default (checksums "gso") a lone datagram goes with a zero checksum, as Linux\'s, and a bulk flow\'s GSO sends with valid ones', async () => {
    const tr = (await statusOf(lab, 'broker')).tunnels[0].transport;
    expect(tr).toMatchObject({ encap: 'fou', checksum: 'gso', gso: true });
    const wan = lab.host('wan');
    await lab.host('broker').exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
    let cap: Capture;
    try {
      // 2 echo replies, then the start of a download: the first 300 datagrams the broker sends
      const done = await startCapture(wan, 'to-client', `udp port ${LAB_FOU_PORT} and src host 198.51.100.1`, 300, 20_000);
      await ping6(lab.host('client'), '2001:db8:1::1', { count: 2 });
      const down = await tcpTransfer(lab.host('broker'), lab.host('client'), '2001:db8:1::2', 4 << 20, 5010);
      expect(down.ok).toBe(true);
      cap = await done.result;
    } finally {
      await lab.host('broker').exec('ethtool', ['-K', 'eth0', 'tx', 'on']);
    }
    const parsed = Object.values(await scapyParse(wan, Object.fromEntries(cap.packets.map((f, i) => [`p${i}`, f.subarray(ETH)]))));
    for (const p of parsed) expect(p.udp_checksum_ok).toBe(true);
    const replies = parsed.filter((p) => (p.udp_len as number) < 200);
    // (earlier tests may have taught the TCP sender a smaller path MTU: full-size is 1000 and up)
    const full = parsed.filter((p) => (p.udp_len as number) > 1000);
    expect(replies.length).toBeGreaterThan(0);
    const echoes = replies.filter((p) => (p.udp_payload as string).slice(12, 14) === '3a'); // inner next header: ICMPv6
    expect(echoes.length).toBeGreaterThan(0);
    expect(echoes.every((p) => p.udp_chksum === 0)).toBe(true);
    // full-size segments of the download went out as GSO runs, so with checksums
    expect(full.length).toBeGreaterThan(0);
    expect(full.filter((p) => p.udp_chksum !== 0).length).toBeGreaterThan(0);
    expect((await statusOf(lab, 'broker')).tunnels[0].counters.drops.tx_send_error).toBe(0);
  }, 60_000);

  it('TCP both ways arrives intact with offloads on (client with UDP checksums and GSO), then with them off', async () => {
    const s = (await statusOf(lab, 'client')).tunnels[0];
    expect(s.transport).toMatchObject({ encap: 'fou', port: LAB_FOU_PORT, dport: LAB_FOU_PORT, checksum: true, gso: true });
    const up = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 16 << 20);
    const down = await tcpTransfer(lab.host('broker'), lab.host('client'), '2001:db8:1::2', 16 << 20, 5002);
    expect([up.ok, down.ok]).toEqual([true, true]);
    await lab.stopEngine('client');
    await lab.startEngine('client', [...clientArgs(), '--no-offload']);
    const plain = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 16 << 20, 5003);
    expect(plain.ok).toBe(true);
    const stopped = await lab.stopEngine('client');
    expect(stopped.down?.code).toBe(0);
  }, 120_000);
});

describe.runIf(canRun)('R05/R07 over FOU: one DF policy per tunnel, whatever the batching', () => {
  const set = new NamespaceSet('foudf');
  let ns: Namespace;
  beforeAll(async () => {
    ns = await set.add('df');
    // a 1500-byte route, as on a real link: a GSO message is larger than it, its segments are not
    await ns.ip(['link', 'set', 'lo', 'mtu', '1500']);
    await ns.ip(['addr', 'add', '192.0.2.1/32', 'dev', 'lo']);
  }, 30_000);
  afterAll(() => set.destroy());

  it('--pmtu dynamic: a UDP GSO run leaves with DF set, as a lone datagram does (a smaller hop must report, not fragment); DF-clear packets stay clear', async () => {
    const done = await startCapture(ns, 'lo', 'udp dst port 5555', 3, 20_000);
    const r = await runScenario<{ errs: number[][]; gso: boolean; gsoFallbacks: number }>(ns, 'fou-send', {
      local: '192.0.2.1',
      port: 5554,
      dport: 5555,
      batches: [
        { lens: [1000, 1000, 1000], df: true },
        { lens: [500], df: true },
        { lens: [1000, 1000, 1000], df: false },
        // segments over the route MTU: the message is refused and resent packet by packet, which
        // IPv4 may fragment (as a lone datagram that size), none lost
        { lens: [1480, 1480], df: true },
      ],
    });
    expect(r.gso).toBe(true);
    expect(r.errs.flat().every((e) => e === 0)).toBe(true);
    expect(r.gsoFallbacks).toBe(1);
    // loopback carries a GSO message whole: one frame per message, its header what every segment gets
    const frames = (await done.result).packets.map((f) => ({ len: f.readUInt16BE(ETH + 2), df: (f[ETH + 6] & 0x40) !== 0 }));
    expect(frames).toEqual([
      { len: 20 + 8 + 3000, df: true },
      { len: 20 + 8 + 500, df: true },
      { len: 20 + 8 + 3000, df: false },
    ]);
  }, 60_000);
});
