/**
 * 6rd (RFC 5969): the address maths, the options and option 212, and the CE and BR policies of
 * the pure tunnel. Rule ids 6RD-1… are listed in docs/rules.md.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, DROP_REASONS, formatIpv6, PacketResult, resolveTunnelOptions, Encapsulator, Verdict, type TunnelOptions } from '../src/index.js';
import { delegatedPrefixLength, embedIpv4, extractIpv4 } from '../src/packet/sixrd.js';
import { parseIpv4, parseIpv6 } from '../src/packet/address.js';
import { parseSixRdDhcp } from '../src/encap/sixrd-dhcp.js';
import { interfacePlan } from '../src/host/open.js';
import { sixRdStatus } from '../src/host/status.js';
import { formatStatus } from '../src/cli/status-format.js';
import { ipv4Packet, ipv6Packet } from './helpers/packets.js';
import { configErrorOf, runTunnel } from './helpers/tunnels.js';

/** The lab's domain: /36 prefix, IPv4 mask length 25, so 7 embedded bits and a /43 per CE. */
const CE1_V4 = '192.0.2.10'; // → 2001:db8:a140::/43
const CE2_V4 = '192.0.2.20'; // → 2001:db8:a280::/43
const BR = '203.0.113.1';
const CE: TunnelOptions = { mode: '6rd', local: CE1_V4, sixrdPrefix: '2001:db8:a000::/36', ipv4MaskLen: 25, relay: BR };
const BR_OPTS: TunnelOptions = { mode: '6rd', role: 'relay', local: BR, sixrdPrefix: '2001:db8:a000::/36', ipv4MaskLen: 25, sixrdIpv4Prefix: '192.0.2.0/25' };

const errorOf = configErrorOf;

function dhcpError(text: string): ConfigError {
  try {
    parseSixRdDhcp(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(text)}`);
}

const run = (t: Encapsulator, kind: 'encap' | 'decap', pkt: Buffer): PacketResult => runTunnel(t, kind, pkt).r;

const tunnelled = (outerSrc: string, outerDst: string, src: string, dst: string) => ipv4Packet({ src: outerSrc, dst: outerDst, payload: ipv6Packet({ src, dst }) });

function dropReason(r: PacketResult): string {
  expect(r.verdict).toBe(Verdict.Drop);
  return DROP_REASONS[r.reason];
}

describe('6RD-1: delegated prefix = 6rd prefix ‖ the low 32 − IPv4MaskLen bits of the IPv4 (RFC 5969 §4)', () => {
  // Expected values computed independently (Python's ipaddress), bit-exact at every alignment.
  const GOLDEN: Array<[prefix: string, prefixLen: number, maskLen: number, v4: string, delegated: string]> = [
    // Linux sit 6rd, observed (../shared/reference/linux-sit/6rd.log): 6rd-prefix /36, relay_prefix /24
    ['2001:db8:a000::', 36, 24, '192.0.2.2', '2001:db8:a020::/44'],
    // 6to4 is the 6rd domain 2002::/16, mask 0 (RFC 3056 §2)
    ['2002::', 16, 0, '192.0.2.1', '2002:c000:201::/48'],
    // non-byte-aligned prefix and mask, the lab's domain
    ['2001:db8:a000::', 36, 25, CE1_V4, '2001:db8:a140::/43'],
    ['2001:db8:a000::', 36, 25, CE2_V4, '2001:db8:a280::/43'],
    // all 32 bits after a /32: a /64 per CE (the common ISP layout)
    ['2001:db8::', 32, 0, '203.0.113.77', '2001:db8:cb00:714d::/64'],
    ['2001:db8:fe00::', 39, 7, '198.51.100.129', '2001:db8:fe33:6481::/64'],
    ['2001:db8:8000::', 33, 1, '203.0.113.255', '2001:db8:cb00:71ff::/64'],
    ['2001:db8::', 32, 31, '192.0.2.3', '2001:db8:8000::/33'],
    ['2001:db8:ab00::', 41, 9, '192.0.2.200', '2001:db8:ab00:2c8::/64'],
    ['2001:db8:1230::', 60, 28, '198.51.100.5', '2001:db8:1230:5::/64'],
    ['2001:db8::', 32, 8, '10.100.101.102', '2001:db8:6465:6600::/56'], // private 10/8 domains are common in 6rd
    ['2001:db8:abc0::', 42, 21, '203.0.113.254', '2001:db8:abcf:f000::/53'],
  ];
  for (const [prefix, prefixLen, maskLen, v4, delegated] of GOLDEN) {
    it(`${prefix}/${prefixLen}, mask ${maskLen}, ${v4} → ${delegated}`, () => {
      const domain = { prefix: parseIpv6(prefix)!, prefixLen, v4MaskLen: maskLen };
      const out = Buffer.alloc(16);
      embedIpv4(domain, parseIpv4(v4)!, out, 0);
      expect(`${formatIpv6(out)}/${delegatedPrefixLength(domain)}`).toBe(delegated);
      // and back: the CE's IPv4 from any address of its prefix, the high bits from the domain
      out[15] = 0x42;
      expect(extractIpv4(domain, out, 0, parseIpv4(v4)! ^ ((1 << (32 - maskLen)) - 1))).toBe(parseIpv4(v4));
    });
  }

  it('the CE resolves its delegated prefix, its address <delegated>::1/<6rd prefix length> and MTU 1480', () => {
    const c = resolveTunnelOptions(CE);
    expect(`${formatIpv6(c.sitePrefix!.addr)}/${c.sitePrefix!.len}`).toBe('2001:db8:a140::/43');
    expect(`${formatIpv6(c.address.addr)}/${c.address.len}`).toBe('2001:db8:a140::1/36');
    expect(c.mtu).toBe(1480);
    expect(c.relays).toEqual([parseIpv4(BR)]);
  });

  it('6RD-2: the interface carries the whole 6rd prefix (other CEs on-link) and the default route; our prefix is ours', () => {
    const c = resolveTunnelOptions(CE);
    const plan = interfacePlan(c, c.local);
    expect(plan.addresses.map((a) => `${formatIpv6(a.addr)}/${a.len}`)).toEqual(['2001:db8:a140::1/36', 'fe80::c000:20a/64']);
    expect(plan.defaultRoute).toEqual({ via: null, metric: 1024 });
    expect(plan.ownPrefixes.map((a) => `${formatIpv6(a.addr)}/${a.len}`)).toEqual(['2001:db8:a140::/43']);
    expect(plan.multicast).toBe(false);
    expect(plan.mtu).toBe(1480);
    // a keepalive peer is probed through the BR, not used as a gateway
    const probing = resolveTunnelOptions({ ...CE, peer: '2001:db8:5::2' });
    expect(interfacePlan(probing, probing.local).defaultRoute).toEqual({ via: null, metric: 1024 });
  });

  it('6RD-1: a delegated prefix longer than /64 is a ConfigError naming both fields', () => {
    const e = errorOf({ ...CE, sixrdPrefix: '2001:db8:a000::/40', ipv4MaskLen: 7 });
    expect(e.field).toBe('sixrdPrefix');
    expect(e.message).toMatch(/^sixrdPrefix: .*6rd prefix length 40 and ipv4MaskLen 7 .*\/65, longer than \/64/);
  });
});

describe('6rd options', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['missing 6rd prefix', { ...CE, sixrdPrefix: undefined }, 'sixrdPrefix', /6rd needs it/],
    ['6rd prefix without length', { ...CE, sixrdPrefix: '2001:db8:a000::' }, 'sixrdPrefix', /with its length/],
    ['mask length 32', { ...CE, ipv4MaskLen: 32 }, 'ipv4MaskLen', /0\.\.31/],
    ['mask length negative', { ...CE, ipv4MaskLen: -1 }, 'ipv4MaskLen', /0\.\.31/],
    ['CE without a BR', { ...CE, relay: undefined }, 'relay', /needs its border relay/],
    ['remote on 6rd', { ...CE, remote: '198.51.100.1' }, 'remote', /no single remote/],
    ['address on a CE', { ...CE, address: '2001:db8:a140::5/36' }, 'address', /derived: 2001:db8:a140::1\/36/],
    ['keepalive target inside the domain', { ...CE, peer: '2001:db8:a280::1' }, 'peer', /through the BR/],
    ['option 212 and a prefix', { mode: '6rd', local: CE1_V4, sixrdDhcp: `25 36 2001:db8:a000:: ${BR}`, sixrdPrefix: '2001:db8:a000::/36' }, 'sixrdPrefix', /either sixrdDhcp or/],
    ['6rd keys on 6to4', { mode: '6to4', local: CE1_V4, relay: BR, allowNonGlobal: true, ipv4MaskLen: 8 }, 'ipv4MaskLen', /6rd only/],
    ['BR without the CEs\' IPv4 prefix', { ...BR_OPTS, sixrdIpv4Prefix: undefined }, 'sixrdIpv4Prefix', /needs the CEs' IPv4 prefix/],
    ['BR prefix length disagrees', { ...BR_OPTS, sixrdIpv4Prefix: '192.0.2.0/24' }, 'sixrdIpv4Prefix', /equal ipv4MaskLen \(25\)/],
    ['BR with a BR', { ...BR_OPTS, relay: '203.0.113.2' }, 'relay', /does not use another relay/],
    // issue 22: flags are held to option 212's rules
    ['a link-local 6rd prefix', { ...CE, sixrdPrefix: 'fe80::/36' }, 'sixrdPrefix', /link-local \(fe80::\/10\).*global unicast prefix/],
    ['a multicast 6rd prefix on a BR', { ...BR_OPTS, sixrdPrefix: 'ff0e::/36' }, 'sixrdPrefix', /multicast/],
    ['an IPv4-mapped 6rd prefix', { ...CE, sixrdPrefix: '::ffff:0:0/32', ipv4MaskLen: 0 }, 'sixrdPrefix', /unspecified/],
    ['a BR in 0.0.0.0/8', { ...CE, relay: '0.0.0.1' }, 'relay', /this-network space, not a usable unicast/],
    ['a link-local BR', { ...CE, relay: '169.254.0.1' }, 'relay', /link-local space/],
  ];
  for (const [what, options, field, fix] of cases) {
    it(`names the field and the fix: ${what}`, () => {
      const e = errorOf(options);
      expect(e.field).toBe(field);
      expect(e.message.startsWith(`${field}: `)).toBe(true);
      expect(e.message).toMatch(fix);
    });
  }

  it('private and shared IPv4 space is normal in an ISP\'s 6rd domain: no global-unicast check', () => {
    const c = resolveTunnelOptions({ mode: '6rd', local: '100.64.1.2', sixrdPrefix: '2001:db8::/32', ipv4MaskLen: 10, relay: '100.64.0.1' });
    expect(`${formatIpv6(c.sitePrefix!.addr)}/${c.sitePrefix!.len}`).toBe('2001:db8:4:800::/54');
  });
});

describe('6RD-6: DHCPv4 option 212 as udhcpc exports $ip6rd', () => {
  it('reads IPv4MaskLen, 6rdPrefixLen, 6rdPrefix and every BR, in order', () => {
    expect(parseSixRdDhcp(`25 36 2001:db8:a000:: ${BR} 203.0.113.2`)).toEqual({
      ipv4MaskLen: 25,
      prefix: { addr: parseIpv6('2001:db8:a000::'), len: 36 },
      relays: [parseIpv4(BR), parseIpv4('203.0.113.2')],
    });
  });

  it('clears prefix bits past the length; takes dhclient\'s comma-joined BRs and stray whitespace', () => {
    const p = parseSixRdDhcp('  0 32 2001:db8:ffff:: 198.51.100.1,198.51.100.2\n');
    expect(formatIpv6(p.prefix.addr)).toBe('2001:db8::');
    expect(p.relays).toHaveLength(2);
  });

  it('a CE comes up from the option alone: the same config as the hand-written flags', () => {
    const fromDhcp = resolveTunnelOptions({ mode: '6rd', local: CE1_V4, sixrdDhcp: `25 36 2001:db8:a000:: ${BR} 203.0.113.2` });
    const byHand = resolveTunnelOptions(CE);
    expect(fromDhcp.address).toEqual(byHand.address);
    expect(fromDhcp.sitePrefix).toEqual(byHand.sitePrefix);
    expect(fromDhcp.domain).toEqual(byHand.domain);
    expect(fromDhcp.relay).toBe(parseIpv4(BR));
    expect(fromDhcp.relays).toEqual([parseIpv4(BR), parseIpv4('203.0.113.2')]);
  });

  const MALFORMED: Array<[string, RegExp]> = [
    ['', /0 fields, at least 4/],
    ['25 36 2001:db8:a000::', /3 fields/],
    ['x 36 2001:db8:a000:: 203.0.113.1', /IPv4MaskLen "x"/],
    ['32 32 2001:db8:: 203.0.113.1', /IPv4MaskLen "32" .*0\.\.31/],
    ['0 0 2001:db8:: 203.0.113.1', /6rdPrefixLen "0"/],
    ['0 65 2001:db8:: 203.0.113.1', /6rdPrefixLen "65"/],
    ['0 32 2001:db8::/32 203.0.113.1', /6rdPrefix "2001:db8::\/32" is not an IPv6 address/],
    ['0 32 203.0.113.1 203.0.113.1', /6rdPrefix "203.0.113.1"/],
    ['0 32 2001:db8:: 203.0.113', /border relay "203.0.113"/],
    ['0 32 2001:db8:: 2001:db8::1', /border relay "2001:db8::1"/],
    ['0 32 2001:db8:: 224.0.0.1', /unicast/],
    // issue 22: what a rogue or broken server sent, which came up (fe80:: took the default route)
    ['0 32 fe80:: 203.0.113.1', /6rdPrefix fe80::\/32 is link-local \(fe80::\/10\).*inside 2000::\/3/],
    ['0 32 :: 203.0.113.1', /6rdPrefix ::\/32 is the unspecified address/],
    ['31 63 ::ffff:c000:200 203.0.113.1', /6rdPrefix ::\/63 is the unspecified address/],
    ['0 32 ff02:: 203.0.113.1', /multicast/],
    ['0 32 fd00:: 203.0.113.1', /unique local/],
    ['0 32 fec0:: 203.0.113.1', /site-local/],
    ['0 32 4000:: 203.0.113.1', /outside global unicast space/],
    ['0 2 2000:: 203.0.113.1', /wider than global unicast space/],
    ['0 32 2001:db8:: 0.1.2.3', /border relay 0\.1\.2\.3 is this-network space/],
    ['0 32 2001:db8:: 203.0.113.1 169.254.1.1', /border relay 169\.254\.1\.1 is link-local space/],
    ['0 32 2001:db8:: 127.0.0.1', /loopback/],
    ['0 32 2001:db8:: 240.0.0.1', /reserved/],
    ['0 32 2001:db8:: 255.255.255.255', /broadcast/],
    // lengths: the delegated prefix would exceed 64 bits
    ['0 40 2001:db8:: 203.0.113.1', /6rd prefix length 40 and ipv4MaskLen 0 .*\/72, longer than \/64/],
    ['8 48 2001:db8:: 203.0.113.1', /\/72, longer than \/64/],
    // more BRs than option 212 has bytes for, and a string no server could send
    [`0 32 2001:db8:: ${Array.from({ length: 60 }, () => BR).join(' ')}`, /at most 59/],
    [`0 32 2001:db8:: ${'203.0.113.1 '.repeat(400)}`, /far longer than option 212/],
  ];
  for (const [text, why] of MALFORMED) {
    it(`refuses ${JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}…` : text)} with a ConfigError naming sixrdDhcp`, () => {
      const e = dhcpError(text);
      expect(e.field).toBe('sixrdDhcp');
      expect(e.message).toMatch(why);
      expect(e.message).toMatch(/udhcpc exports it in \$ip6rd|6rdPrefixLen \+ 32/);
    });
  }

  it('as an option: the ConfigError is the tunnel\'s, naming sixrdDhcp', () => {
    expect(errorOf({ mode: '6rd', local: CE1_V4, sixrdDhcp: 'garbage' }).field).toBe('sixrdDhcp');
    expect(errorOf({ mode: '6rd', role: 'relay', local: BR, sixrdDhcp: `0 32 2001:db8:: ${BR}` }).message).toMatch(/configures a CE/);
  });
});

describe('6rd CE (RFC 5969 §7, §12)', () => {
  const ce = (o: Partial<TunnelOptions> = {}) => new Encapsulator({ ...CE, ...o }, { initialIpId: 0x1233 });

  it('6RD-3: another CE of the domain is reached directly at its embedded IPv4; the rest via the BR', () => {
    const t = ce();
    const direct = run(t, 'encap', ipv6Packet({ src: '2001:db8:a140::1', dst: '2001:db8:a280::1' }));
    expect(direct.verdict).toBe(Verdict.Forward);
    expect(direct.outerDst).toBe(parseIpv4(CE2_V4));
    const native = run(t, 'encap', ipv6Packet({ src: '2001:db8:a140::1', dst: '2001:db8:5::2' }));
    expect(native.outerDst).toBe(parseIpv4(BR));
    // the Linux quirk (a cached first route for every destination) is not copied: each packet is
    // mapped by its own destination, whatever went before
    expect(run(t, 'encap', ipv6Packet({ src: '2001:db8:a140::1', dst: '2001:db8:99::1' })).outerDst).toBe(parseIpv4(BR));
    expect(run(t, 'encap', ipv6Packet({ src: '2001:db8:a140::1', dst: '2001:db8:a280::9' })).outerDst).toBe(parseIpv4(CE2_V4));
  });

  it('6RD-4: accepts a CE whose source embeds the outer IPv4, and native sources from the BR', () => {
    const t = ce();
    expect(run(t, 'decap', tunnelled(CE2_V4, CE1_V4, '2001:db8:a280::1', '2001:db8:a140::1')).verdict).toBe(Verdict.Forward);
    expect(run(t, 'decap', tunnelled(BR, CE1_V4, '2001:db8:99::1', '2001:db8:a140::1')).verdict).toBe(Verdict.Forward);
  });

  it('6RD-4: drops and counts a domain source that does not embed the outer IPv4, even from the BR', () => {
    const t = ce();
    expect(dropReason(run(t, 'decap', tunnelled('192.0.2.30', CE1_V4, '2001:db8:a280::1', '2001:db8:a140::1')))).toBe('rx_6rd_spoofed_source');
    // high bits outside the domain's IPv4 prefix: same low 7 bits (20), not a CE of ours
    expect(dropReason(run(t, 'decap', tunnelled('192.0.2.148', CE1_V4, '2001:db8:a280::1', '2001:db8:a140::1')))).toBe('rx_6rd_spoofed_source');
    expect(dropReason(run(t, 'decap', tunnelled(BR, CE1_V4, '2001:db8:a280::1', '2001:db8:a140::1')))).toBe('rx_6rd_spoofed_source');
    expect(t.counters.snapshot().drops.rx_6rd_spoofed_source).toBe(3);
  });

  it('6RD-4: a native source from anyone but the BR is dropped (stricter than Linux\'s 6rd CE)', () => {
    const t = ce();
    expect(dropReason(run(t, 'decap', tunnelled('198.51.100.9', CE1_V4, '2001:db8:99::1', '2001:db8:a140::1')))).toBe('rx_6rd_not_from_relay');
  });

  it('6RD-5: the inner destination must be in our delegated prefix', () => {
    const t = ce();
    // another CE's prefix, the domain outside any CE of ours, and a native address
    expect(dropReason(run(t, 'decap', tunnelled(CE2_V4, CE1_V4, '2001:db8:a280::1', '2001:db8:a300::5')))).toBe('rx_6rd_not_our_prefix');
    expect(dropReason(run(t, 'decap', tunnelled(BR, CE1_V4, '2001:db8:99::1', '2001:db8:a160::1')))).toBe('rx_6rd_not_our_prefix');
    expect(dropReason(run(t, 'decap', tunnelled(BR, CE1_V4, '2001:db8:99::1', '2001:db8:99::2')))).toBe('rx_6rd_not_our_prefix');
  });

  it('6RD-8: fails over to the next BR: packets go there and come only from there', () => {
    const t = new Encapsulator({ mode: '6rd', local: CE1_V4, sixrdDhcp: `25 36 2001:db8:a000:: ${BR} 203.0.113.2` });
    expect(t.relayAddress).toBe(parseIpv4(BR));
    t.setRelay(parseIpv4('203.0.113.2')!);
    expect(run(t, 'encap', ipv6Packet({ src: '2001:db8:a140::1', dst: '2001:db8:5::2' })).outerDst).toBe(parseIpv4('203.0.113.2'));
    expect(run(t, 'decap', tunnelled('203.0.113.2', CE1_V4, '2001:db8:99::1', '2001:db8:a140::1')).verdict).toBe(Verdict.Forward);
    expect(dropReason(run(t, 'decap', tunnelled(BR, CE1_V4, '2001:db8:99::1', '2001:db8:a140::1')))).toBe('rx_6rd_not_from_relay');
    expect(() => t.setRelay(parseIpv4('198.51.100.9')!)).toThrow(/not one of/);
  });

  it('6RD-9: status shows the derivation: prefix, mask length, delegated prefix, BRs', () => {
    const c = resolveTunnelOptions({ mode: '6rd', local: CE1_V4, sixrdDhcp: `25 36 2001:db8:a000:: ${BR} 203.0.113.2` });
    const s = sixRdStatus(c)!;
    expect(s).toEqual({ prefix: '2001:db8:a000::/36', ipv4MaskLen: 25, delegatedPrefix: '2001:db8:a140::/43', relays: [BR, '203.0.113.2'] });
    const text = formatStatus({
      pid: 1,
      startedAt: 'now',
      uid: 0,
      lastReload: null,
      failed: [],
      tunnels: [
        {
          tunnel: 'isp', name: 'tun0', mode: '6rd', health: 'up', address: '2001:db8:a140::1/36', mtu: 1480, pmtu: 'static', local: CE1_V4, relay: BR, sixrd: s,
          tunIo: { offload: true, udpOffload: true, ioUring: true }, keepalive: null, counters: new Encapsulator(CE).counters.snapshot(), lastRxAt: null, lastTxAt: null, pathMtu: [], pathMtuCount: 0,
        },
      ],
    } as never);
    expect(text).toContain('6rd prefix 2001:db8:a000::/36, IPv4 mask length 25; local 192.0.2.10 → delegated 2001:db8:a140::/43; BR 203.0.113.1 (of 203.0.113.1, 203.0.113.2)');
  });
});

describe('6RD-7: 6rd border relay (RFC 5969 §8)', () => {
  const br = () => new Encapsulator(BR_OPTS, { initialIpId: 1 });

  it('its address sits in the slot of the domain\'s IPv4 network address, which no CE has', () => {
    const c = resolveTunnelOptions(BR_OPTS);
    expect(`${formatIpv6(c.address.addr)}/${c.address.len}`).toBe('2001:db8:a000::1/36');
    expect(sixRdStatus(c)).toMatchObject({ ipv4Prefix: '192.0.2.0/25', relays: [] });
  });

  it('decapsulates for any CE of the domain whose source embeds the outer IPv4, toward native IPv6', () => {
    const t = br();
    expect(run(t, 'decap', tunnelled(CE1_V4, BR, '2001:db8:a140::1', '2001:db8:5::2')).verdict).toBe(Verdict.Forward);
    expect(run(t, 'decap', tunnelled(CE2_V4, BR, '2001:db8:a280::7', '2001:db8:5::2')).verdict).toBe(Verdict.Forward);
    expect(dropReason(run(t, 'decap', tunnelled(CE1_V4, BR, '2001:db8:a280::7', '2001:db8:5::2')))).toBe('rx_6rd_spoofed_source');
    // outside the CEs' IPv4 prefix (same low bits): not a CE of this domain
    expect(dropReason(run(t, 'decap', tunnelled('198.51.100.10', BR, '2001:db8:a140::1', '2001:db8:5::2')))).toBe('rx_6rd_spoofed_source');
    // native sources arrive natively, never tunnelled; CE to CE goes direct, not through the BR
    expect(dropReason(run(t, 'decap', tunnelled(CE1_V4, BR, '2001:db8:99::1', '2001:db8:5::2')))).toBe('rx_6rd_not_from_relay');
    expect(dropReason(run(t, 'decap', tunnelled(CE1_V4, BR, '2001:db8:a140::1', '2001:db8:a280::1')))).toBe('rx_6rd_not_our_prefix');
  });

  it('encapsulates toward the CE embedded in the destination', () => {
    const t = br();
    expect(run(t, 'encap', ipv6Packet({ src: '2001:db8:5::2', dst: '2001:db8:a280::1' })).outerDst).toBe(parseIpv4(CE2_V4));
    expect(run(t, 'encap', ipv6Packet({ src: '2001:db8:5::2', dst: '2001:db8:a140::1' })).outerDst).toBe(parseIpv4(CE1_V4));
    expect(dropReason(run(t, 'encap', ipv6Packet({ src: '2001:db8:a000::1', dst: '2001:db8:5::2' })))).toBe('tx_6rd_no_relay');
  });
});

describe('6RD-10: a border relay serves its customers only (issue 22: ipv4MaskLen 0 was an open relay)', () => {
  // ipv4MaskLen 0: every IPv4 embeds, private space included (6rd allows non-global IPv4)
  const OPEN: TunnelOptions = { mode: '6rd', role: 'relay', local: BR, sixrdPrefix: '2001:db8::/32' };
  // a native host outside the 6rd prefix (2001:db8::/32 is all of it): a 6to4 address of 198.51.100.1
  const NATIVE = '2002:c633:6401::2';
  const embedding = (v4: string) => {
    const a = Buffer.alloc(16);
    embedIpv4({ prefix: parseIpv6('2001:db8::')!, prefixLen: 32, v4MaskLen: 0 }, parseIpv4(v4)!, a, 0);
    a[15] = 1;
    return formatIpv6(a);
  };

  it('without sixrdCustomers a BR tunnels to any IPv4 an address embeds (documented: an open relay)', () => {
    const privateV4 = '10.1.2.3'; // a private IPv4 an open BR would relay to; pure code, nothing is sent
    const r = run(new Encapsulator(OPEN), 'encap', ipv6Packet({ src: NATIVE, dst: embedding(privateV4) }));
    expect(r.outerDst).toBe(parseIpv4(privateV4));
  });

  it('with sixrdCustomers it tunnels to them only, and accepts only from them', () => {
    const t = new Encapsulator({ ...OPEN, sixrdCustomers: ['192.0.2.0/24'] });
    expect(run(t, 'encap', ipv6Packet({ src: NATIVE, dst: embedding('192.0.2.10') })).outerDst).toBe(parseIpv4('192.0.2.10'));
    expect(dropReason(run(t, 'encap', ipv6Packet({ src: NATIVE, dst: embedding('10.1.2.3') })))).toBe('tx_6rd_not_customer');
    expect(dropReason(run(t, 'encap', ipv6Packet({ src: NATIVE, dst: embedding('198.51.100.7') })))).toBe('tx_6rd_not_customer');
    expect(run(t, 'decap', tunnelled('192.0.2.10', BR, embedding('192.0.2.10'), NATIVE)).verdict).toBe(Verdict.Forward);
    expect(dropReason(run(t, 'decap', tunnelled('10.1.2.3', BR, embedding('10.1.2.3'), NATIVE)))).toBe('rx_6rd_not_customer');
  });

  it('names the field: not on a CE, not an empty list, prefixes only', () => {
    expect(errorOf({ ...CE, sixrdCustomers: ['192.0.2.0/24'] }).message).toMatch(/^sixrdCustomers: .*for a border relay/);
    expect(errorOf({ ...OPEN, sixrdCustomers: [] }).field).toBe('sixrdCustomers');
    expect(errorOf({ ...OPEN, sixrdCustomers: ['192.0.2.1'] }).field).toMatch(/^sixrdCustomers/);
  });
});
