/**
 * The field network (DESIGN.md F1–F5), as root in namespaces these tests create: an uplink far
 * slower than the LAN (tc tbf), a hop with PPPoE's MTU of 1492, and a hostile sender (scapy
 * through a raw socket on the router) forging ICMPv4 errors and crafting 6to4 segments at the
 * offload size limits — over bare protocol 41 and Foo-over-UDP, with and without UDP GSO.
 * Rates and latencies are printed, never asserted; what is asserted is what must hold anywhere:
 * the engine lives, the bytes arrive intact, the counters say why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6, tcpTransfer, udpFlood } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { icmpv4Error, ipv4Packet, ipv6Packet, tcp6Segment } from './helpers/packets.js';
import { rootOrSkip, scapySendRaw, until } from './helpers/netlab.js';

const canRun = rootOrSkip();

const TRANSPORTS = [
  { name: 'protocol 41', args: [] as string[] },
  { name: 'FOU without checksums', args: ['--encap', 'fou', '--encap-dport', '5555'] },
  { name: 'FOU with checksums and UDP GSO', args: ['--encap', 'fou', '--encap-dport', '5555', '--encap-csum'] },
];

const statusOf = async (lab: LabNetwork, role: string) => ((await queryControl(lab.engines.get(role)!.control, 'status')) as DaemonStatus).tunnels[0];
const alive = (lab: LabNetwork, role: string) => lab.engines.get(role)!.child.exitCode === null && lab.engines.get(role)!.child.signalCode === null;

describe.runIf(canRun)('F1: an uplink far slower than the LAN (tbf 20 Mbit/s, queue larger than the socket buffer)', () => {
  for (const t of TRANSPORTS) {
    describe(t.name, () => {
      let lab: LabNetwork;
      beforeAll(async () => {
        await removeStaleNamespaces('field');
        const args = ['--keepalive', 'off', ...t.args];
        lab = await LabNetwork.create('6in4', 'field', { engineArgs: { client: args, broker: args } });
        // The queue holds more than the 4 MiB socket buffer: a flood fills the socket (EAGAIN)
        // before the qdisc drops anything, the back-pressure path that used to kill the tunnel.
        await lab.host('client').exec('tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kb', 'limit', '16mb']);
      }, 60_000);
      afterAll(async () => {
        await lab?.destroy();
      });

      it('a UDP flood at 15× the link rate fills the socket: back-pressure, never a dead tunnel; then TCP at the link rate arrives intact', async () => {
        await udpFlood(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 300, 24);
        expect(alive(lab, 'client')).toBe(true);
        const s = await statusOf(lab, 'client');
        expect(s.counters.traffic.tx_backpressure_waits).toBeGreaterThan(0);
        // the queue drains at the link's rate; then the tunnel carries on
        await until('a ping through the drained uplink', () => ping6(lab.host('client'), '2001:db8:1::1', { count: 1, timeoutS: 2 }), (p) => p.ok, 60_000, 100);
        const up = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 6 << 20);
        expect(up.ok).toBe(true);
        console.log(`field ${t.name}: TCP upload over a 20 Mbit/s uplink: ${up.mbitPerSecond.toFixed(1)} Mbit/s; back-pressure waits ${s.counters.traffic.tx_backpressure_waits}`);
        expect(alive(lab, 'client')).toBe(true);
        expect((await statusOf(lab, 'client')).counters.drops.tx_send_error).toBe(0);
      }, 180_000);

      it('the same flood into a short queue: what the qdisc drops is counted as tx_link_full, and the tunnel goes on', async () => {
        await lab.host('client').exec('tc', ['qdisc', 'change', 'dev', 'eth0', 'root', 'tbf', 'rate', '20mbit', 'burst', '32kb', 'limit', '64kb']);
        const before = (await statusOf(lab, 'client')).counters.drops.tx_link_full;
        await udpFlood(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 300, 24);
        expect(alive(lab, 'client')).toBe(true);
        const s = await statusOf(lab, 'client');
        expect(s.counters.drops.tx_link_full).toBeGreaterThan(before);
        expect(s.counters.drops.tx_send_error).toBe(0);
        const up = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 6 << 20);
        expect(up.ok).toBe(true);
        console.log(`field ${t.name}: short queue: ${s.counters.drops.tx_link_full - before} dropped by the qdisc; TCP then ${up.mbitPerSecond.toFixed(1)} Mbit/s`);
      }, 180_000);
    });
  }
});

describe.runIf(canRun)('F5: an uplink with PPPoE\'s MTU (1492) under the default tunnel MTU', () => {
  for (const t of TRANSPORTS) {
    it(`${t.name}: every TCP segment arrives, UDP GSO messages the link refuses go again packet by packet`, async () => {
      await removeStaleNamespaces('mtu');
      const args = ['--keepalive', 'off', ...t.args];
      const lab = await LabNetwork.create('6in4', 'mtu', { engineArgs: { client: args, broker: args } });
      try {
        await lab.host('client').ip(['link', 'set', 'eth0', 'mtu', '1492']);
        await lab.host('wan').ip(['link', 'set', 'to-client', 'mtu', '1492']);
        const up = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 8 << 20);
        expect(up.ok).toBe(true);
        const s = await statusOf(lab, 'client');
        expect(s.counters.drops.tx_send_error).toBe(0);
        if (s.transport.encap === 'fou' && s.transport.gso) expect(s.transport.gsoFallbacks).toBeGreaterThan(0);
        console.log(`field ${t.name} over MTU 1492: ${up.mbitPerSecond.toFixed(0)} Mbit/s, GSO fallbacks ${s.transport.encap === 'fou' ? s.transport.gsoFallbacks : '-'}`);
      } finally {
        await lab.destroy();
      }
    }, 180_000);
  }
});

describe.runIf(canRun)('F4: forged ICMPv4 errors cost nothing (FOU, which also listens for bare protocol 41)', () => {
  let lab: LabNetwork;
  beforeAll(async () => {
    await removeStaleNamespaces('forged');
    const args = ['--keepalive', 'off', '--encap', 'fou', '--encap-dport', '5555'];
    lab = await LabNetwork.create('6in4', 'forged', { engineArgs: { client: args, broker: args } });
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('protocol unreachable quoting a protocol-41 packet of ours: no busy loop, the tunnel still answers', async () => {
    const quoted = ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 41, payload: ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1' }).subarray(0, 40) });
    const forged = ipv4Packet({ src: '198.51.100.254', dst: '192.0.2.1', protocol: 1, payload: icmpv4Error(3, 2, 0, quoted) });
    await scapySendRaw(lab.host('wan'), [{ bytes: forged, count: 3 }]);
    // a loop that keeps waking for the undrained report burns CPU; an idle one next to nothing
    // while ten pings cross (~2 s)
    const before = lab.engineResources('client').cpuMs;
    const p = await ping6(lab.host('client'), '2001:db8:1::1', { count: 10 });
    const used = lab.engineResources('client').cpuMs - before;
    console.log(`field forged protocol-unreachable: engine CPU ${used} ms during 10 pings`);
    expect(p.ok).toBe(true);
    expect(used).toBeLessThan(250);
  }, 60_000);

  it('port unreachable quoting our UDP: the next sends are not failed by the report', async () => {
    const udp = Buffer.alloc(8 + 40);
    udp.writeUInt16BE(5555, 0);
    udp.writeUInt16BE(5555, 2);
    udp.writeUInt16BE(48, 4);
    const quoted = ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 17, payload: udp });
    const forged = ipv4Packet({ src: '198.51.100.1', dst: '192.0.2.1', protocol: 1, payload: icmpv4Error(3, 3, 0, quoted) });
    await scapySendRaw(lab.host('wan'), [{ bytes: forged, count: 5 }]);
    const p = await ping6(lab.host('client'), '2001:db8:1::1', { count: 5 });
    expect(p.ok).toBe(true);
    expect((await statusOf(lab, 'client')).counters.drops.tx_send_error).toBe(0);
  }, 60_000);
});

/** IPv4 fragments of one datagram (8-byte aligned pieces of at most `chunk` payload bytes). */
function fragments(src: string, dst: string, id: number, payload: Buffer, chunk = 1472): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < payload.length; off += chunk) {
    const last = off + chunk >= payload.length;
    out.push(ipv4Packet({ src, dst, id, flagsFragment: (last ? 0 : 0x2000) | (off >> 3), payload: payload.subarray(off, off + chunk) }));
  }
  return out;
}

describe.runIf(canRun)('F3: a hostile 6to4 site at the offload size limits', () => {
  let lab: LabNetwork;
  beforeAll(async () => {
    await removeStaleNamespaces('gro');
    lab = await LabNetwork.create('6to4', 'gro', { engineArgs: { site1: ['--keepalive', 'off'] } });
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('segments that merge to TCP length 65,535 change no byte of the packets after them, and stop nothing', async () => {
    // the router's own 6to4 /48 (203.0.113.254 → 2002:cb00:71fe::/48), sending to site1's
    const src = '2002:cb00:71fe::1';
    const dst = '2002:c000:201::1';
    const big = Buffer.alloc(65_515, 0x5a);
    const seg = (sport: number, seq: number, payload: Buffer) => tcp6Segment({ src, dst, seq, payload, sport });
    const v4 = (payload: Buffer) => ({ bytes: ipv4Packet({ src: '203.0.113.254', dst: '192.0.2.1', payload }), count: 1 });
    // One receive batch: 15 flows open a GRO run each (scratch slots 0..14), so the largest merge
    // lands in the last slot; a flow of two segments around it; then echo requests.
    const small = Array.from({ length: 15 }, (_, i) => v4(seg(7000 + i, 1, Buffer.alloc(100, i))));
    const bigSegs = [seg(4444, 1, big.subarray(0, 32_000)), seg(4444, 32_001, big.subarray(32_000, 64_000)), seg(4444, 64_001, big.subarray(64_000))];
    const fragmented = bigSegs.flatMap((s, i) => fragments('203.0.113.254', '192.0.2.1', 100 + i, s).map((bytes) => ({ bytes, count: 1 })));
    const echoes = Array.from({ length: 10 }, (_, i) => v4(ipv6Packet({ src, dst, payloadLen: 8 + i })));
    await lab.host('site1').exec('nft', ['-f', '-'], {
      input: `table ip6 grocount { chain in { type filter hook input priority 0; iifname "tun0" ip6 saddr ${src} icmpv6 type echo-request counter; }; }`,
    });
    // The engine stopped while the router sends: everything waits in its socket, read as one batch.
    const engine = lab.engines.get('site1')!.child;
    engine.kill('SIGSTOP');
    try {
      await scapySendRaw(lab.host('wan'), [...small, ...fragmented, ...echoes]);
    } finally {
      engine.kill('SIGCONT');
    }
    const counted = async () => Number(/counter packets (\d+)/.exec(await lab.host('site1').exec('nft', ['list', 'table', 'ip6', 'grocount']))?.[1] ?? 0);
    // every echo request reached site1's stack with its source intact (a corrupted one would not match)
    await until('10 intact echo requests at site1', counted, (n) => n >= 10, 30_000, 100);
    expect(await counted()).toBe(10);
    expect(alive(lab, 'site1')).toBe(true);
    expect((await ping6(lab.host('site1'), '2002:c633:6407::1')).ok).toBe(true);
  }, 120_000);
});
