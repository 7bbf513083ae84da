/**
 * Router advertisements (`--advertise`) against a real SLAAC client: a guest namespace behind a
 * bridge on the 6in4 lab's client takes our RAs with its own kernel (accept_ra), gets an address
 * in the routed /64, a default route and the tunnel MTU, and reaches the far end of the tunnel.
 * scapy reads the advertisement as captured on the guest's link.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../src/doctor/doctor.js';
import { queryControl } from '../src/daemon/control.js';
import { renderMetrics } from '../src/daemon/metrics.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { ping6 } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { rootOrSkip, startCapture, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const TUNNEL_MTU = 1400;
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

describe.runIf(canRun)('--advertise: a guest behind a bridge configures itself from our router advertisements', () => {
  let lab: LabNetwork;
  let guest: Namespace;
  let firstRa: Promise<{ packets: Buffer[] }>;

  const status = async () => ((await queryControl(lab.engines.get('client')!.control, 'status')) as DaemonStatus).tunnels[0];
  const guestAddress = async () => {
    // only once duplicate address detection is over: a tentative address is no source yet
    const out = await guest.ip(['-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global', '-tentative']);
    return /inet6 (2001:db8:2:0:[0-9a-f:]+)\/64/.exec(out)?.[1] ?? null;
  };

  beforeAll(async () => {
    await removeStaleNamespaces('adv');
    lab = await LabNetwork.create('6in4', 'adv', { skipEngines: ['client'] });
    const client = lab.host('client');
    guest = await lab.set.add('guest');
    await lab.set.link(client, 'gw0', guest, 'eth0');
    await client.ip(['link', 'add', 'br0', 'type', 'bridge']);
    await client.ip(['link', 'set', 'gw0', 'master', 'br0']);
    await client.ip(['link', 'set', 'br0', 'up']);
    await client.sysctl('net.ipv6.conf.all.forwarding', '1');
    // a host, not a router: its kernel takes router advertisements and configures SLAAC
    await guest.sysctl('net.ipv6.conf.all.forwarding', '0');
    await guest.sysctl('net.ipv6.conf.eth0.accept_ra', '1');
    await guest.sysctl('net.ipv6.conf.eth0.autoconf', '1');
    // the bridge's link-local must be usable before our first advertisement leaves from it
    await until('a link-local address on br0', () => client.ip(['-6', '-o', 'addr', 'show', 'dev', 'br0', 'scope', 'link']), (o) => o.includes('fe80') && !o.includes('tentative'), 15_000);
    firstRa = (await startCapture(guest, 'eth0', 'icmp6 and ip6[40] = 134', 1, 30_000)).result;
    await lab.startEngine('client', [
      '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64',
      '--routed', '2001:db8:2::/64', '--mtu', String(TUNNEL_MTU), '--advertise', 'br0', '--advertise-dns', '2001:db8:1::53',
    ]);
  }, 90_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('RFC 4861 §6.3.4 / RFC 4862: the guest gets a SLAAC address in the routed /64 and a default route via our link-local', async () => {
    const addr = await until('a SLAAC address on the guest', guestAddress, (a) => a !== null, 30_000);
    expect(addr).toMatch(/^2001:db8:2:0:/);
    const route = await until('a default route from the RA', () => guest.ip(['-6', 'route', 'show', 'default']), (o) => o.includes('proto ra'), 15_000);
    expect(route).toMatch(/default via fe80::\S+ dev eth0 proto ra/);
    const s = await status();
    expect(s.advertise).toHaveLength(1);
    expect(s.advertise![0]).toMatchObject({ iface: 'br0', prefix: '2001:db8:2::/64', mtu: TUNNEL_MTU, rdnss: ['2001:db8:1::53'], state: 'advertising', onLinkRoute: 'added' });
    expect(s.advertise![0].counters.traffic.ra_sent).toBeGreaterThan(0);
  }, 60_000);

  it('RFC 4861 §4.6.4: the MTU option is the tunnel MTU, and it is what the guest\'s route uses', async () => {
    await until('the RA MTU on the guest link', () => guest.exec('cat', ['/proc/sys/net/ipv6/conf/eth0/mtu']), (o) => o.trim() === String(TUNNEL_MTU), 15_000);
    const got = await guest.ip(['-6', 'route', 'get', '2001:db8:1::1']);
    expect(got).toMatch(new RegExp(`mtu ${TUNNEL_MTU}\\b`));
    // a packet the tunnel cannot carry is refused by the guest itself, not lost in the tunnel
    const tooBig = await ping6(guest, '2001:db8:1::1', { count: 1, size: TUNNEL_MTU - 48 + 1, dontFragment: true, timeoutS: 2 });
    expect(tooBig.ok).toBe(false);
    expect(tooBig.output).toMatch(/message too long/i); // refused at the guest, before any Packet Too Big
  }, 30_000);

  it('the guest reaches the far end of the tunnel from its own address, with full-size packets', async () => {
    const from = await guestAddress();
    const seen = await startCapture(lab.host('broker'), 'tun0', `icmp6 and ip6 src ${from} and ip6[40] = 128`, 1, 10_000);
    const r = await ping6(guest, '2001:db8:1::1', { count: 3, size: TUNNEL_MTU - 48, dontFragment: true });
    expect(r.ok, r.output).toBe(true);
    const [echo] = (await seen.result).packets;
    expect(echo.length).toBe(TUNNEL_MTU);
  }, 30_000);

  it('RFC 4861 §4.2 / RFC 8106 as scapy reads them: hop limit 255, link-local source, prefix with A and L, MTU, RDNSS, a valid checksum', async () => {
    const cap = await firstRa;
    expect(cap.packets.length).toBe(1);
    const script = [
      'import sys, json',
      'from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptMTU, ICMPv6NDOptRDNSS, ICMPv6NDOptSrcLLAddr, in6_chksum',
      'p = Ether(bytes.fromhex(sys.stdin.read().strip()))',
      'ra = p[ICMPv6ND_RA]',
      'raw = bytes(ra); body = raw[:2] + b"\\0\\0" + raw[4:]',
      'ok = in6_chksum(58, p[IPv6], body) == ra.cksum',
      'pi = p[ICMPv6NDOptPrefixInfo]',
      'print(json.dumps({"hlim": p[IPv6].hlim, "src": p[IPv6].src, "dst": p[IPv6].dst, "routerlifetime": ra.routerlifetime, "M": ra.M, "O": ra.O,',
      '  "prefix": pi.prefix, "prefixlen": pi.prefixlen, "L": pi.L, "A": pi.A, "mtu": p[ICMPv6NDOptMTU].mtu, "dns": list(p[ICMPv6NDOptRDNSS].dns),',
      '  "lladdr": p[ICMPv6NDOptSrcLLAddr].lladdr, "ethsrc": p[Ether].src, "checksum_ok": ok}))',
    ].join('\n');
    const out = JSON.parse(await guest.exec('/usr/bin/python3', ['-c', script], { input: cap.packets[0].toString('hex'), timeoutMs: 30_000 }));
    expect(out).toMatchObject({ hlim: 255, dst: 'ff02::1', routerlifetime: 1800, M: 0, O: 0, prefix: '2001:db8:2::', prefixlen: 64, L: 1, A: 1, mtu: TUNNEL_MTU, dns: ['2001:db8:1::53'], checksum_ok: true });
    expect(out.src).toMatch(/^fe80::/);
    expect(out.lladdr).toBe(out.ethsrc);
  }, 30_000);

  it('RFC 4861 §6.2.6: a solicitation from the guest is answered', async () => {
    const before = (await status()).advertise![0].counters.traffic;
    // the guest's kernel solicits when its link comes back
    await guest.ip(['link', 'set', 'eth0', 'down']);
    await guest.ip(['link', 'set', 'eth0', 'up']);
    const after = await until('a solicited advertisement', async () => (await status()).advertise![0].counters, (c) => c.traffic.ra_solicited > before.ra_solicited, 20_000);
    expect(after.traffic.rs_received).toBeGreaterThan(before.rs_received);
    expect(after.dropsTotal).toBe(0);
    expect(Object.values(after.drops).every((n) => n === 0)).toBe(true);
    await until('the guest configured again', guestAddress, (a) => a !== null, 30_000);
  }, 40_000);

  it('an advertiser counts in the shape of the tunnel\'s counters (traffic, drops by reason, their total), the flat names of before beside them for one release', async () => {
    const c = (await status()).advertise![0].counters;
    expect(Object.keys(c.traffic)).toEqual(['ra_sent', 'ra_solicited', 'rs_received', 'send_errors']);
    expect(Object.keys(c.drops)).toEqual(['hop_limit', 'type', 'code', 'length', 'option_length', 'unspecified_with_sllao']);
    expect(c.dropsTotal).toBe(Object.values(c.drops).reduce((a, b) => a + b, 0));
    // @deprecated copies, one release
    expect({ ra_sent: c.ra_sent, ra_solicited: c.ra_solicited, rs_received: c.rs_received, send_errors: c.send_errors }).toEqual(c.traffic);
    expect(c.rs_dropped).toEqual(c.drops);
  }, 30_000);

  it('status and metrics show each bridge\'s advertisements and solicitations', async () => {
    const control = lab.engines.get('client')!.control;
    const text = await lab.host('client').exec(process.execPath, [BIN, 'status', '--control', control]);
    expect(text).toMatch(new RegExp(`advertising 2001:db8:2::/64 on br0 \\(mtu ${TUNNEL_MTU}, dns 2001:db8:1::53\\): \\d+ RAs \\(\\d+ answering \\d+ RSs\\)`));
    const d = (await queryControl(control, 'status')) as DaemonStatus;
    const metrics = renderMetrics(d.tunnels);
    const c = d.tunnels[0].advertise![0].counters.traffic;
    expect(metrics).toContain(`tun6in4_ra_sent_total{tunnel="${d.tunnels[0].tunnel}",iface="br0",solicited="true"} ${c.ra_solicited}`);
    expect(metrics).toContain(`tun6in4_rs_received_total{tunnel="${d.tunnels[0].tunnel}",iface="br0"} ${c.rs_received}`);
  }, 30_000);

  it('doctor: the guest turned router (forwarding on) keeps accept_ra 1 on its RA-configured uplink: named, with the fix; 2 passes', async () => {
    const doctor = async () => {
      const r = await guest.run(process.execPath, [BIN, 'doctor', '--json', '--routed', '2001:db8:2::/64'], { timeoutMs: 60_000 });
      return (JSON.parse(r.stdout) as Finding[]).filter((f) => f.check === 'accept_ra on eth0');
    };
    await guest.sysctl('net.ipv6.conf.all.forwarding', '1');
    await guest.sysctl('net.ipv6.conf.eth0.accept_ra', '1');
    const bad = await doctor();
    expect(bad).toMatchObject([{ level: 'fail' }]);
    // Linux drops RA default routes the moment forwarding goes on; the SLAAC address is what is left to see
    expect(await guest.ip(['-6', 'route', 'show', 'default'])).toBe('');
    expect(bad[0].detail).toMatch(/SLAAC addresses from router advertisements, and accept_ra is 1/);
    expect(bad[0].fix).toMatch(/sysctl -w net\.ipv6\.conf\.eth0\.accept_ra=2/);
    await guest.sysctl('net.ipv6.conf.eth0.accept_ra', '2');
    // the fix works: the guest solicits again on link-up and takes our answer despite forwarding
    await guest.ip(['link', 'set', 'eth0', 'down']);
    await guest.ip(['link', 'set', 'eth0', 'up']);
    await until('the RA default route back with accept_ra 2', () => guest.ip(['-6', 'route', 'show', 'default']), (o) => o.includes('proto ra'), 20_000);
    const good = await doctor();
    expect(good).toMatchObject([{ level: 'ok' }]);
    expect(good[0].detail).toMatch(/default route from router advertisements and accept_ra is 2/);
  }, 60_000);

  it('RFC 4861 §6.2.5: on exit the final advertisement (router lifetime 0) takes the guest\'s default route away, and our on-link route is removed', async () => {
    expect(await guest.ip(['-6', 'route', 'show', 'default'])).toMatch(/proto ra/);
    await lab.stopEngine('client');
    await until('the default route gone', () => guest.ip(['-6', 'route', 'show', 'default']), (o) => o.trim() === '', 15_000);
    expect((await lab.host('client').ip(['-6', 'route', 'show', 'exact', '2001:db8:2::/64', 'dev', 'br0'])).trim()).toBe('');
  }, 30_000);

  it('a bridge that does not exist stops the start with the fix, and leaves no interface or route behind', async () => {
    const client = lab.host('client');
    const start = lab.startEngine('client', ['--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64', '--routed', '2001:db8:2::/64', '--advertise', 'nosuch0']);
    await expect(start).rejects.toThrow(/advertise on nosuch0: interface nosuch0 does not exist here .*create the bridge first \(ip link add nosuch0 type bridge\)/);
    expect(await client.ip(['-o', 'link', 'show'])).not.toMatch(/tun0/);
    expect(await client.ip(['-6', 'route', 'show', 'table', 'all'])).not.toMatch(/unreachable 2001:db8:2::\/64/);
  }, 40_000);
});
