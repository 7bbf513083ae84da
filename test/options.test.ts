import { describe, expect, it } from 'vitest';
import { formatIpv6, resolveTunnelOptions } from '../src/index.js';
import { BROKER, configErrorOf, SIX_TO_FOUR } from './helpers/tunnels.js';
import { TUNNEL_OPTION_KEYS } from '../src/encap/options.js';
import { FLAG_FOR_FIELD, RUN_FLAGS } from '../src/cli/flags.js';

describe('one definition per option', () => {
  it('every library option has exactly one `run` flag that sets it (and a flag names it in errors)', () => {
    for (const k of TUNNEL_OPTION_KEYS) {
      const setters = RUN_FLAGS.filter((f) => f.to === k && !f.spec.startsWith('--no-'));
      expect(setters.map((f) => f.spec), k).toHaveLength(1);
      expect(FLAG_FOR_FIELD[k], k).toBe(setters[0].spec.split(' ')[0]);
    }
  });
});

const errorOf = configErrorOf;

describe('tunnel options', () => {
  it('resolves a broker tunnel with defaults: peer ::1, MTU 1480, static PMTU, TTL 64, TOS 0', () => {
    const c = resolveTunnelOptions(BROKER);
    expect(formatIpv6(c.peer!)).toBe('2001:db8:1::1');
    expect([c.mtu, c.pmtu, c.ttl, c.tos]).toEqual([1480, 'static', 64, 0]);
    expect(c.routed.map((r) => `${formatIpv6(r.addr)}/${r.len}`)).toEqual(['2001:db8:2::/64']);
  });

  it('the server end of a lab (::1) defaults its peer to ::2', () => {
    const c = resolveTunnelOptions({ ...BROKER, address: '2001:db8:1::1/64' });
    expect(formatIpv6(c.peer!)).toBe('2001:db8:1::2');
  });

  // Each bad option: the field named, the value shown, the fix said.
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['bad mode', { ...BROKER, mode: 'sit' }, 'mode', /"sit".*"6in4".*"6to4"/],
    ['bad local', { ...BROKER, local: '192.0.2' }, 'local', /dotted-quad/],
    ['missing remote', { ...BROKER, remote: undefined }, 'remote', /6in4 needs it/],
    ['missing address', { ...BROKER, address: undefined }, 'address', /Client IPv6 Address/],
    ['address without length', { ...BROKER, address: '2001:db8:1::2' }, 'address', /prefix length/],
    ['peer off-link', { ...BROKER, peer: '2001:db8:9::1' }, 'peer', /inside 2001:db8:1::\/64/],
    ['bad routed', { ...BROKER, routed: ['2001:db8:2::/64', 'nonsense'] }, 'routed.1', /IPv6 prefixes/],
    ['mtu too big', { ...BROKER, mtu: 1500 }, 'mtu', /1280\.\.1480/],
    ['mtu as text', { ...BROKER, mtu: '1480' }, 'mtu', /integer/],
    ['bad pmtu', { ...BROKER, pmtu: 'auto' }, 'pmtu', /"static".*"dynamic"/],
    ['bad tos', { ...BROKER, tos: 300 }, 'tos', /0\.\.255 or "inherit"/],
    ['unknown key', { ...BROKER, mtuu: 1400 }, 'mtuu', /unknown option/],
    ['relay on 6in4', { ...BROKER, relay: '203.0.113.1' }, 'relay', /6to4 only/],
    ['remote on 6to4', { ...SIX_TO_FOUR, remote: '198.51.100.1' }, 'remote', /no single remote/],
    ['6to4 private local', { ...SIX_TO_FOUR, local: '192.168.1.10', allowNonGlobal: false }, 'local', /global unicast.*private/],
    ['6to4 address outside site', { ...SIX_TO_FOUR, address: '2002:c000:202::1/16' }, 'address', /2002:c000:201::\/48/],
    ['6to4 anycast relay', { ...SIX_TO_FOUR, relay: '192.88.99.1' }, 'relay', /RFC 7526/],
    ['FOU without its port', { ...BROKER, encap: 'fou' }, 'encapDport', /peer's UDP port/],
    ['FOU MTU past 1472', { ...BROKER, encap: 'fou', encapDport: 5555, mtu: 1480 }, 'mtu', /1280\.\.1472/],
    ['FOU on 6to4', { ...SIX_TO_FOUR, encap: 'fou', encapDport: 5555 }, 'encap', /6in4 tunnels only/],
    ['FOU port without FOU', { ...BROKER, encapDport: 5555 }, 'encapDport', /encap "fou" only/],
    ['FOU port out of range', { ...BROKER, encap: 'fou', encapDport: 70000 }, 'encapDport', /1\.\.65535/],
  ];
  it('FOU: MTU default 1472, encapPort defaults to encapDport, checksums off, 28 bytes of outer headers', () => {
    const c = resolveTunnelOptions({ ...BROKER, encap: 'fou', encapDport: 5555 });
    expect([c.mtu, c.encapPort, c.encapDport, c.encapCsum, c.outerOverhead]).toEqual([1472, 5555, 5555, false, 28]);
    const d = resolveTunnelOptions(BROKER);
    expect([d.mtu, d.encap, d.outerOverhead]).toEqual([1480, 'none', 20]);
  });

  for (const [what, options, field, fix] of cases) {
    it(`names the field and the fix: ${what}`, () => {
      const e = errorOf(options);
      expect(e.field).toBe(field);
      expect(e.message.startsWith(`${field}: `)).toBe(true);
      expect(e.message).toMatch(fix);
    });
  }
});
