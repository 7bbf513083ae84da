/**
 * Router advertisements' own room, src/advertise: when they are sent (RFC 4861 §6.2.4, §6.2.6),
 * and the `advertise` options, defined in the shape of the host options and resolved against the
 * tunnel's prefixes, in a program, a configuration file and on the command line. The bytes are
 * ndp.test.ts's; a real SLAAC client is advertise.test.ts's.
 */
import { describe, expect, it } from 'vitest';
import { formatIpv6Prefix, nextUnsolicitedDelayS, resolveTunnelOptions, solicitedAnswerAtMs, ConfigError, type TunnelOptions } from '../src/index.js';
import { resolveAdvertiseOptions, type AdvertiseOptions } from '../src/advertise/options.js';
import { BROKER, configErrorOf, SIX_TO_FOUR } from './helpers/tunnels.js';
import { ConfigFileError, parseDaemonConfigText } from '../src/daemon/config.js';
import { configFromFlags, FlagError } from '../src/cli/flags.js';

/** The advertise options resolved against the tunnel `t` resolves to. */
const resolve = (t: TunnelOptions, a: AdvertiseOptions) => resolveAdvertiseOptions(a, resolveTunnelOptions(t));

function advertiseErrorOf(t: TunnelOptions, a: AdvertiseOptions): ConfigError {
  try {
    resolve(t, a);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

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
    const c = resolve({ ...BROKER, routed: ['2001:db8:3::/48', '2001:db8:2::/64'] }, { advertise: ['br0', 'lxcbr0=2001:db8:3:5::/64'], advertiseDns: ['2001:db8::53'] });
    expect(c.targets.map((a) => `${a.iface} ${formatIpv6Prefix(a.prefix)}`)).toEqual(['br0 2001:db8:2::/64', 'lxcbr0 2001:db8:3:5::/64']);
    expect(c.rdnss).toHaveLength(1);
    expect(resolve(BROKER, {})).toEqual({ targets: [], rdnss: [] });
  });
  it('6to4: a /64 of the site prefix may be advertised', () => {
    const c = resolve(SIX_TO_FOUR, { advertise: [`br0=${'2002:c000:201:1::/64'}`] });
    expect(formatIpv6Prefix(c.targets[0].prefix)).toBe('2002:c000:201:1::/64');
  });
  it('refuses, naming the field and the fix: no routed /64 to default to, a prefix not routed to us, not a /64, the tunnel link, a bridge twice, DNS without advertise, a bad name, a string for a list', () => {
    expect(advertiseErrorOf({ ...BROKER, routed: ['2001:db8:3::/48'] }, { advertise: ['br0'] }).message).toMatch(/^advertise\.0: .*first routed \/64.*br0=2001:db8:3::\/64/);
    expect(advertiseErrorOf({ ...BROKER, routed: [] }, { advertise: ['br0'] }).message).toMatch(/no routed prefix is configured/);
    expect(advertiseErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'] }, { advertise: ['br0=2001:db8:9::/64'] }).message).toMatch(/^advertise\.0: .*inside a routed prefix \(2001:db8:2::\/64\)/);
    expect(advertiseErrorOf({ ...BROKER, routed: ['2001:db8:3::/48'] }, { advertise: ['br0=2001:db8:3::/56'] }).message).toMatch(/SLAAC needs a \/64/);
    expect(advertiseErrorOf({ ...BROKER, routed: ['2001:db8:1::/48'] }, { advertise: ['br0=2001:db8:1::/64'] }).message).toMatch(/overlaps the tunnel link/);
    expect(advertiseErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'] }, { advertise: ['br0', 'br0'] }).message).toMatch(/^advertise\.1: .*listed twice/);
    expect(advertiseErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'] }, { advertiseDns: ['2001:db8::53'] }).field).toBe('advertiseDns');
    expect(advertiseErrorOf({ ...BROKER, routed: ['2001:db8:2::/64'] }, { advertise: ['a bridge'] }).message).toMatch(/^advertise\.0: "a bridge" is not valid; use IFACE or IFACE=PREFIX/);
    expect(advertiseErrorOf(BROKER, { advertiseDns: ['2001:db8::53/64'] }).message).toMatch(/^advertiseDns\.0: "2001:db8::53\/64" is not valid; use IPv6 addresses of DNS servers without prefix length/);
    expect(advertiseErrorOf(BROKER, { advertise: 'br0' as unknown as string[] }).message).toBe('advertise: "br0" is not valid; advertise is a list, even of one: write advertise = ["br0"] (in JSON: "advertise": ["br0"])');
  });
  it('the Encapsulator\'s configuration carries no bridge: advertise and advertiseDns are not tunnel options', () => {
    expect(Object.keys(resolveTunnelOptions({ ...BROKER, routed: ['2001:db8:2::/64'] }))).not.toContain('advertise');
    expect(configErrorOf({ ...BROKER, advertise: ['br0'] } as TunnelOptions).message).toMatch(/^advertise: .*unknown option/);
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
