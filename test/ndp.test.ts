/**
 * Router Advertisement and Solicitation bytes (RFC 4861, RFC 8106), the advertisement schedule,
 * and the `advertise` options. The same bytes meet a real SLAAC client in advertise.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { buildRouterAdvertisement, buildRouterSolicitation, icmpv6Checksum, nextUnsolicitedDelayS, solicitedAnswerAtMs, validateRouterSolicitation, type RouterAdvertisement } from '../src/engine-api.js';
import { parseIpv6, resolveTunnelOptions, formatIpv6Prefix } from '../src/index.js';
import { BROKER, configErrorOf, SIX_TO_FOUR } from './helpers/tunnels.js';
import { ConfigFileError, parseDaemonConfigText } from '../src/daemon/config.js';
import { configFromFlags, FlagError } from '../src/cli/flags.js';

const MAC = Buffer.from([0x02, 0, 0x5e, 0x10, 0, 1]);
const RA: RouterAdvertisement = {
  curHopLimit: 64,
  routerLifetime: 1800,
  sourceLinkLayer: MAC,
  mtu: 1480,
  prefixes: [{ prefix: parseIpv6('2001:db8:2::')!, len: 64, validLifetime: 2592000, preferredLifetime: 604800 }],
  rdnss: [parseIpv6('2001:db8::53')!],
  rdnssLifetime: 1800,
};

describe('Router Advertisement bytes (RFC 4861 §4.2, §4.6; RFC 8106 §5.1)', () => {
  const b = buildRouterAdvertisement(RA);

  it('§4.2: type 134, code 0, hop limit, M and O clear, router lifetime', () => {
    expect([b[0], b[1], b[4], b[5]]).toEqual([134, 0, 64, 0]);
    expect(b.readUInt16BE(6)).toBe(1800);
    expect(b.readUInt32BE(8)).toBe(0); // reachable time unspecified
    expect(b.readUInt32BE(12)).toBe(0); // retrans timer unspecified
  });

  it('§4.6.1 source link-layer address, §4.6.4 MTU, §4.6.2 prefix with L and A, RFC 8106 RDNSS, in 8-byte units', () => {
    expect(b.length).toBe(16 + 8 + 8 + 32 + 24);
    expect([...b.subarray(16, 24)]).toEqual([1, 1, ...MAC]);
    expect([b[24], b[25]]).toEqual([5, 1]);
    expect(b.readUInt32BE(28)).toBe(1480);
    expect([b[32], b[33], b[34], b[35]]).toEqual([3, 4, 64, 0xc0]);
    expect(b.readUInt32BE(36)).toBe(2592000);
    expect(b.readUInt32BE(40)).toBe(604800);
    expect(b.subarray(48, 64).equals(parseIpv6('2001:db8:2::')!)).toBe(true);
    expect([b[64], b[65]]).toEqual([25, 3]);
    expect(b.readUInt32BE(68)).toBe(1800);
    expect(b.subarray(72, 88).equals(parseIpv6('2001:db8::53')!)).toBe(true);
  });

  it('without a MAC or DNS servers those options are left out', () => {
    const m = buildRouterAdvertisement({ ...RA, sourceLinkLayer: null, rdnss: [] });
    expect(m.length).toBe(16 + 8 + 32);
    expect(m[16]).toBe(5);
  });

  it('RFC 4443 §2.3: the checksum over the pseudo-header makes the message sum to zero', () => {
    const src = parseIpv6('fe80::1')!;
    const dst = parseIpv6('ff02::1')!;
    const m = Buffer.from(b);
    m.writeUInt16BE(icmpv6Checksum(m, src, dst), 2);
    expect(icmpv6Checksum(m, src, dst)).toBe(0);
  });
});

describe('Router Solicitation validation (RFC 4861 §6.1.1)', () => {
  it('accepts a well-formed solicitation and returns its source link-layer address', () => {
    const v = validateRouterSolicitation(buildRouterSolicitation(MAC), 255, false);
    expect(v.ok).toBe(true);
    expect(v.ok && Buffer.from(v.sourceLinkLayer!).equals(MAC)).toBe(true);
  });
  it('drops one whose hop limit is not 255 (it was forwarded)', () => {
    expect(validateRouterSolicitation(buildRouterSolicitation(null), 254, false)).toEqual({ ok: false, reason: 'hop_limit' });
  });
  it('drops a code other than 0, a short message, and an option of length 0 or past the end', () => {
    const coded = buildRouterSolicitation(null);
    coded[1] = 1;
    expect(validateRouterSolicitation(coded, 255, false)).toMatchObject({ reason: 'code' });
    expect(validateRouterSolicitation(coded.subarray(0, 7), 255, false)).toMatchObject({ reason: 'length' });
    const zero = buildRouterSolicitation(MAC);
    zero[9] = 0;
    expect(validateRouterSolicitation(zero, 255, false)).toMatchObject({ reason: 'option_length' });
    const long = buildRouterSolicitation(MAC);
    long[9] = 2;
    expect(validateRouterSolicitation(long, 255, false)).toMatchObject({ reason: 'option_length' });
  });
  it('drops one from the unspecified address that carries a source link-layer address', () => {
    expect(validateRouterSolicitation(buildRouterSolicitation(MAC), 255, true)).toMatchObject({ reason: 'unspecified_with_sllao' });
    expect(validateRouterSolicitation(buildRouterSolicitation(null), 255, true).ok).toBe(true);
  });
});

describe('the advertisement schedule (RFC 4861 §6.2.4, §6.2.6, §10)', () => {
  it('unsolicited: uniformly in [MinRtrAdvInterval, MaxRtrAdvInterval], the first three at most 16 s apart', () => {
    expect(nextUnsolicitedDelayS(0, 0)).toBe(16);
    expect(nextUnsolicitedDelayS(2, 0.99)).toBe(16);
    expect(nextUnsolicitedDelayS(3, 0)).toBe(198);
    expect(nextUnsolicitedDelayS(3, 0.5)).toBe(399);
    expect(nextUnsolicitedDelayS(10, 0.999999)).toBeCloseTo(600, 2);
  });
  it('answers: within MAX_RA_DELAY_TIME, never sooner than MIN_DELAY_BETWEEN_RAS after the last multicast RA', () => {
    expect(solicitedAnswerAtMs(10_000, null, 0.5)).toBe(10_250);
    expect(solicitedAnswerAtMs(10_000, 9_000, 0)).toBe(12_000);
    expect(solicitedAnswerAtMs(10_000, 1_000, 1)).toBe(10_500);
  });
});

describe('advertise options', () => {
  it('IFACE alone takes the first routed /64; IFACE=PREFIX a /64 inside a routed /48', () => {
    const c = resolveTunnelOptions({ ...BROKER, routed: ['2001:db8:3::/48', '2001:db8:2::/64'], advertise: ['br0', 'lxcbr0=2001:db8:3:5::/64'], advertiseDns: ['2001:db8::53'] });
    expect(c.advertise.map((a) => `${a.iface} ${formatIpv6Prefix(a.prefix)}`)).toEqual(['br0 2001:db8:2::/64', 'lxcbr0 2001:db8:3:5::/64']);
    expect(c.advertiseDns).toHaveLength(1);
    expect(resolveTunnelOptions(BROKER).advertise).toEqual([]);
  });
  it('6to4: a /64 of the site prefix may be advertised', () => {
    const c = resolveTunnelOptions({ ...SIX_TO_FOUR, advertise: [`br0=${'2002:c000:201:1::/64'}`] });
    expect(formatIpv6Prefix(c.advertise[0].prefix)).toBe('2002:c000:201:1::/64');
  });
  it('refuses, naming the field and the fix: no routed /64 to default to, a prefix not routed to us, not a /64, the tunnel link, a bridge twice, DNS without advertise, a bad name', () => {
    expect(configErrorOf({ ...BROKER, routed: ['2001:db8:3::/48'], advertise: ['br0'] }).message).toMatch(/^advertise\.0: .*first routed \/64.*br0=2001:db8:3::\/64/);
    expect(configErrorOf({ ...BROKER, routed: [], advertise: ['br0'] }).message).toMatch(/no routed prefix is configured/);
    expect(configErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'], advertise: ['br0=2001:db8:9::/64'] }).message).toMatch(/^advertise\.0: .*inside a routed prefix \(2001:db8:2::\/64\)/);
    expect(configErrorOf({ ...BROKER, routed: ['2001:db8:3::/48'], advertise: ['br0=2001:db8:3::/56'] }).message).toMatch(/SLAAC needs a \/64/);
    expect(configErrorOf({ ...BROKER, routed: ['2001:db8:1::/48'], advertise: ['br0=2001:db8:1::/64'] }).message).toMatch(/overlaps the tunnel link/);
    expect(configErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'], advertise: ['br0', 'br0'] }).message).toMatch(/^advertise\.1: .*listed twice/);
    expect(configErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'], advertiseDns: ['2001:db8::53'] }).field).toBe('advertiseDns');
    expect(configErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'], advertise: ['a bridge'] }).message).toMatch(/^advertise\.0: .*IFACE or IFACE=PREFIX/);
  });
});

describe('advertise in the configuration file and on the command line', () => {
  const toml = (advertise: string) => `[tunnels.he]\nmode = "6in4"\nlocal = "192.0.2.1"\nremote = "198.51.100.1"\naddress = "2001:db8:1::2/64"\nrouted = ["2001:db8:3::/48"]\nadvertise = ${advertise}\nadvertiseDns = ["2001:db8::53"]\n`;

  it('the key `advertise` takes the same strings as --advertise', () => {
    const c = parseDaemonConfigText(toml('["lxcbr0=2001:db8:3:5::/64"]'), 'toml', 'he.toml');
    expect(c.tunnels[0].spec.advertise).toEqual(['lxcbr0=2001:db8:3:5::/64']);
    expect(c.tunnels[0].spec.advertiseDns).toEqual(['2001:db8::53']);
  });

  it('a bad entry names its place in the file, or the flag, with the fix', () => {
    let e: unknown;
    try {
      parseDaemonConfigText(toml('["br0"]'), 'toml', 'he.toml');
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ConfigFileError);
    expect((e as ConfigFileError).path).toBe('tunnels.he.advertise.0');
    expect((e as Error).message).toMatch(/first routed \/64.*br0=2001:db8:3::\/64/);
    let f: unknown;
    try {
      configFromFlags({ mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64', routed: ['2001:db8:3::/48'], advertise: ['br0=2001:db8:9::/64'], control: '/run/x.sock' });
    } catch (x) {
      f = x;
    }
    expect(f).toBeInstanceOf(FlagError);
    expect((f as Error).message).toMatch(/^--advertise: .*inside a routed prefix \(2001:db8:3::\/48\)/);
  });
});
