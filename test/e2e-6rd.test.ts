/**
 * 6rd end to end, as root, in the lab's namespaces (created and removed here): two CEs of a
 * domain with IPv4 mask length 25, our engine as their border relay, a native IPv6 host behind
 * it. Outer headers are captured on the router; hostile packets come from scapy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import type { ManagedStatus } from '../src/daemon/managed-tunnel.js';
import { runLab } from '../src/lab/lab.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6, tcpTransfer } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { rootOrSkip, scapySend, startCapture, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const ETH = 14;
const CE1 = '192.0.2.10';
const CE2 = '192.0.2.20';
const BR = '203.0.113.1';
/** A BR that option 212 lists first but that nobody answers for. */
const DEAD_BR = '203.0.113.9';
const v4 = (f: Buffer, at: number) => [0, 1, 2, 3].map((i) => f[ETH + at + i]).join('.');
const innerDst = (f: Buffer) => f.subarray(ETH + 20 + 24, ETH + 20 + 40).toString('hex');

describe.runIf(canRun)('6rd lab', () => {
  beforeAll(() => removeStaleNamespaces('lab'));

  it('every step passes: CE↔CE direct (the BR carries none of it), CE↔native via the BR, TCP intact, clean exit', async () => {
    const r = await runLab({ mode: '6rd', transferBytes: 16 << 20 });
    expect(r.steps.filter((s) => !s.ok)).toEqual([]);
    expect(r.counters.ce2!.traffic.rx_packets).toBeGreaterThan(10_000);
    expect(r.counters.br!.traffic.rx_packets).toBeLessThan(100);
  }, 120_000);
});

describe.runIf(canRun)('6rd engines against the kernel', () => {
  let lab: LabNetwork;
  const status = async (host: string): Promise<ManagedStatus> =>
    ((await queryControl(lab.engines.get(host)!.control, 'status')) as DaemonStatus).tunnels[0];

  beforeAll(async () => {
    await removeStaleNamespaces('e2e6rd');
    lab = await LabNetwork.create('6rd', 'e2e6rd', {
      engineArgs: {
        // ce1 from option 212 alone, its first BR dead; keepalive through the BR to the native host
        ce1: ['--6rd-dhcp', `25 36 2001:db8:a000:: ${DEAD_BR} ${BR}`, '--peer', '2001:db8:5::2', '--keepalive', '1'],
      },
    });
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('6RD-8: keepalive finds the first BR dead and fails over to the next; native IPv6 then works', async () => {
    const s = await until('ce1 to fail over', () => status('ce1'), (t) => t.relay === BR && t.health === 'up', 30_000);
    expect(s.relayFailovers).toBe(1);
    expect(s.sixrd?.relays).toEqual([DEAD_BR, BR]);
    expect((await ping6(lab.host('ce1'), '2001:db8:5::2')).ok).toBe(true);
  }, 40_000);

  it('6RD-9: status shows the derivation from option 212: prefix, mask length, delegated prefix, BR', async () => {
    const s = await status('ce1');
    expect(s).toMatchObject({ mode: '6rd', local: CE1, address: '2001:db8:a140::1/36', mtu: 1480, relay: BR });
    expect(s.sixrd).toEqual({ prefix: '2001:db8:a000::/36', ipv4MaskLen: 25, delegatedPrefix: '2001:db8:a140::/43', relays: [DEAD_BR, BR] });
    expect((await status('br')).sixrd).toMatchObject({ ipv4Prefix: '192.0.2.0/25', relays: [] });
  });

  it('6RD-3: CE to CE goes straight to the other CE\'s IPv4 (captured), never to the BR', async () => {
    const wan = lab.host('wan');
    const toCe2 = await startCapture(wan, 'to-ce2', `ip proto 41 and src ${CE1}`, 2, 10_000);
    // (ce1's keepalive probes do go to the BR: only packets for ce2 count here)
    const toBr = await startCapture(wan, 'to-br', `ip proto 41 and src ${CE1} and ip[44:4] = 0x20010db8 and ip[48:2] = 0xa280`, 1, 3_000);
    expect((await ping6(lab.host('ce1'), '2001:db8:a280::1', { count: 2 })).ok).toBe(true);
    const direct = (await toCe2.result).packets;
    expect(direct).toHaveLength(2);
    for (const f of direct) {
      expect(v4(f, 16)).toBe(CE2);
      expect(f[ETH + 9]).toBe(41);
      expect(innerDst(f)).toBe('20010db8a28000000000000000000001');
    }
    expect((await toBr.result).packets).toHaveLength(0);
  }, 30_000);

  it('6RD-3: a native destination goes to the BR (captured), and the BR carries it on natively', async () => {
    const cap = await startCapture(lab.host('wan'), 'to-br', `ip proto 41 and src ${CE1}`, 2, 10_000);
    // the keepalive probes go this way too: count echo requests to native only
    const before = (await status('br')).counters.traffic.rx_packets;
    expect((await ping6(lab.host('ce2'), '2001:db8:5::2', { count: 2 })).ok).toBe(true);
    expect((await ping6(lab.host('ce1'), '2001:db8:5::2', { count: 2 })).ok).toBe(true);
    const frames = (await cap.result).packets;
    expect(frames.length).toBeGreaterThanOrEqual(2);
    for (const f of frames) expect(v4(f, 16)).toBe(BR);
    expect((await status('br')).counters.traffic.rx_packets - before).toBeGreaterThanOrEqual(4);
  }, 30_000);

  it('6RD-7: the border relay carries TCP both ways between a CE and native IPv6, intact', async () => {
    expect((await tcpTransfer(lab.host('ce2'), lab.host('native'), '2001:db8:5::2', 8 << 20)).ok).toBe(true);
    expect((await tcpTransfer(lab.host('native'), lab.host('ce2'), '2001:db8:a280::1', 8 << 20)).ok).toBe(true);
  }, 60_000);

  it('6RD-4/6RD-5/6RD-7: spoofed embedded sources, native sources not from the BR and foreign destinations are dropped and counted', async () => {
    const wan = lab.host('wan');
    // ce2's address from an IPv4 that is not ce2 (to ce1, and to the BR)
    await scapySend(wan, { outer_src: '192.0.2.30', outer_dst: CE1, inner_src: '2001:db8:a280::1', inner_dst: '2001:db8:a140::1', echo_id: 0x6a01, count: 3 });
    await scapySend(wan, { outer_src: '192.0.2.30', outer_dst: BR, inner_src: '2001:db8:a280::1', inner_dst: '2001:db8:5::2', echo_id: 0x6a02, count: 2 });
    // a native source from someone other than the BR
    await scapySend(wan, { outer_src: '198.51.100.9', outer_dst: CE1, inner_src: '2001:db8:99::1', inner_dst: '2001:db8:a140::1', echo_id: 0x6a03, count: 2 });
    // from ce2 itself, but to a prefix of the domain that is not ce1's
    await scapySend(wan, { outer_src: CE2, outer_dst: CE1, inner_src: '2001:db8:a280::1', inner_dst: '2001:db8:a300::5', echo_id: 0x6a04, count: 4 });
    // scapy returns once it has sent; the engines count on their own time
    const drops = (d: ManagedStatus['counters']['drops']) => [d.rx_6rd_spoofed_source, d.rx_6rd_not_from_relay, d.rx_6rd_not_our_prefix];
    await until('ce1 to count the drops', async () => drops((await status('ce1')).counters.drops), (d) => d.join() === '3,2,4');
    await until('the BR to count the spoof', async () => (await status('br')).counters.drops.rx_6rd_spoofed_source, (n) => n === 2);
    // the same packet from ce2's real IPv4 does reach ce1 (so the drops above were the checks)
    const ok = await startCapture(lab.host('ce1'), 'tun0', 'icmp6 and ip6[40] = 128 and ip6[44:2] = 0x6a05', 1, 5_000);
    await scapySend(wan, { outer_src: CE2, outer_dst: CE1, inner_src: '2001:db8:a280::1', inner_dst: '2001:db8:a140::1', echo_id: 0x6a05, count: 1 });
    expect((await ok.result).packets).toHaveLength(1);
  }, 60_000);

  it('SIGTERM: every engine exits 0 with its counters, leaving no interface or route behind', async () => {
    for (const host of ['ce1', 'ce2', 'br']) {
      const proc = await lab.stopEngine(host);
      expect(proc.down?.code, host).toBe(0);
      expect(proc.down?.counters.traffic.rx_packets, host).toBeGreaterThan(0);
      expect(await lab.host(host).ip(['-o', 'link', 'show'])).not.toMatch(/tun0/);
      expect(await lab.host(host).ip(['-6', 'route', 'show', 'table', 'all'])).not.toMatch(/tun0|2001:db8:a|^default/m);
    }
  }, 30_000);
});
