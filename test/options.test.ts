import { describe, expect, expectTypeOf, it } from 'vitest';
import { formatIpv6, resolveTunnelOptions, type OpenTunnelOptions, type TunnelSpec } from '../src/index.js';
import type { EngineOptions } from '../src/engine-api.js';
import { BROKER, configErrorOf, SIX_TO_FOUR } from './helpers/tunnels.js';
import { OPTIONS, TUNNEL_OPTION_KEYS, type OptionDefinition } from '../src/encap/options.js';
import { HOST_OPTIONS } from '../src/host/options.js';
import { ADVERTISE_OPTIONS } from '../src/advertise/options.js';
import { ConfigFileError, DAEMON_TUNNEL_OPTIONS, parseDaemonConfig, UPDATE_OPTIONS } from '../src/daemon/config.js';
import { FLAG_FOR_FIELD, RUN_FLAGS } from '../src/cli/flags.js';

/** Every table of options, by where its keys sit in a tunnel's configuration. */
const TABLES: Array<[string, Record<string, OptionDefinition>]> = [
  ['', OPTIONS],
  ['', ADVERTISE_OPTIONS],
  ['', HOST_OPTIONS],
  ['', DAEMON_TUNNEL_OPTIONS],
  ['update.', UPDATE_OPTIONS],
];
const ROWS = TABLES.flatMap(([prefix, table]) => Object.entries(table).map(([k, d]) => ({ key: `${prefix}${k}`, d })));
const TUNNEL_ROWS = ROWS.filter((r) => !r.key.includes('.'));
const he = { mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' };

function problemsOf(raw: unknown): Array<{ path: string; detail: string }> {
  try {
    parseDaemonConfig(raw);
    return [];
  } catch (e) {
    if (!(e instanceof ConfigFileError)) throw e;
    return e.problems;
  }
}

describe('one definition per option', () => {
  it('no key is in two tables', () => {
    const keys = ROWS.map((r) => r.key);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('the library\'s openTunnel takes exactly the tunnel, advertise and host options (and the loop\'s); a daemon tunnel adds exactly its own', () => {
    // checked by `npm run typecheck`: a key added to the type and not to a table (or back) fails it
    type Loop = keyof EngineOptions | 'sharedTransports';
    expectTypeOf<Exclude<keyof OpenTunnelOptions, Loop>>().toEqualTypeOf<keyof typeof OPTIONS | keyof typeof ADVERTISE_OPTIONS | keyof typeof HOST_OPTIONS>();
    expectTypeOf<Exclude<keyof TunnelSpec, keyof OpenTunnelOptions>>().toEqualTypeOf<keyof typeof DAEMON_TUNNEL_OPTIONS>();
    expect(TUNNEL_OPTION_KEYS).toEqual(Object.keys(OPTIONS));
  });

  it('a config file\'s tunnel takes exactly the keys of the tables, in table order', () => {
    const [p] = problemsOf({ tunnels: { he: { ...he, zzzzzzzz: 1 } } });
    const known = /^unknown key; remove it or use one of (.*)$/.exec(p.detail)![1].split(', ');
    expect(known).toEqual(TUNNEL_ROWS.map((r) => r.key));
    const [u] = problemsOf({ tunnels: { he: { ...he, update: { tunnelId: '1', username: 'u', keyFile: '/k', zzzzzzzz: 1 } } } });
    expect(u.detail).toBe(`unknown key; remove it or use one of ${Object.keys(UPDATE_OPTIONS).join(', ')}`);
  });

  it('every row with a flag is set by exactly that `run` flag, which names it in errors; the rows without one are these', () => {
    for (const { key, d } of ROWS) {
      const setters = RUN_FLAGS.filter((f) => f.to === key);
      if (d.flag === null) {
        expect(setters, key).toEqual([]);
        continue;
      }
      expect(setters.map((f) => f.spec), key).toEqual(d.negatedHelp === undefined ? [d.flag] : [d.flag, d.flag.replace(/^--/, '--no-')]);
      expect(setters.map((f) => f.help), key).toEqual(d.negatedHelp === undefined ? [d.help] : [d.help, d.negatedHelp]);
      expect(FLAG_FOR_FIELD[key.replace(/^update\./, '')], key).toBe(d.flag.split(' ')[0]);
    }
    expect(ROWS.filter((r) => r.d.flag === null).map((r) => r.key)).toEqual(['localCheckSeconds', 'update', 'update.timeoutMs']);
  });

  it('every `run` flag comes from a row, or is one of the daemon\'s own file keys', () => {
    const rowKeys = new Set(ROWS.map((r) => r.key));
    const own = RUN_FLAGS.filter((f) => !rowKeys.has(f.to));
    expect(own.map((f) => f.to)).toEqual(['@control', '@metrics.listen', '@user', '@group']);
    for (const f of own) {
      // the file knows the key: a wrong value there is a problem of its value, not an unknown key
      const path = f.to.slice(1).replace(/^control$/, 'control.socket').split('.');
      const raw: Record<string, unknown> = { tunnels: { he } };
      let at = raw;
      for (const k of path.slice(0, -1)) at = (at[k] = {}) as Record<string, unknown>;
      at[path[path.length - 1]] = 7;
      const problems = problemsOf(raw);
      expect(problems.map((p) => p.path), f.spec).toContain(path.join('.'));
      expect(problems.find((p) => p.path === path.join('.'))!.detail, f.spec).not.toMatch(/unknown key/);
    }
  });

  it('a row\'s schema decides how its flag reads text: numbers, lists, choices, switches', () => {
    const flag = (spec: string) => RUN_FLAGS.find((f) => f.spec === spec)!;
    expect(flag('--mode <mode>').choices).toEqual(['6in4', '6to4', '6rd']);
    expect(flag('--encap <kind>').choices).toEqual(['none', 'fou']);
    expect((flag('--mtu <bytes>').parse as (t: string) => unknown)('1400')).toBe(1400);
    expect(() => (flag('--mtu <bytes>').parse as (t: string) => unknown)('14x')).toThrow(/whole number/);
    expect((flag('--ttl <1..255|inherit>').parse as (t: string) => unknown)('inherit')).toBe('inherit');
    expect((flag('--keepalive <seconds|off>').parse as (t: string) => unknown)('off')).toBe('off');
    expect((flag('--routed <prefix>').parse as (t: string, p: string[]) => unknown)('2001:db8:3::/64', ['2001:db8:2::/64'])).toEqual(['2001:db8:2::/64', '2001:db8:3::/64']);
    expect([flag('--no-offload').negate, flag('--clamp-mss').parse, flag('--no-encap-csum').negate]).toEqual([true, undefined, undefined]);
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
    // issue 33: values that read but cannot be meant
    ['remote 0.0.0.0', { ...BROKER, remote: '0.0.0.0' }, 'remote', /^remote: "0\.0\.0\.0" is not valid; it is in 0\.0\.0\.0\/8 \("this network"\), which no host has; use the broker's "Server IPv4 Address"/],
    ['remote loopback', { ...BROKER, remote: '127.0.0.1' }, 'remote', /it is a loopback address \(127\.0\.0\.0\/8\): this host itself; use the broker's "Server IPv4 Address"/],
    ['remote multicast', { ...BROKER, remote: '239.1.2.3' }, 'remote', /it is a multicast address \(224\.0\.0\.0\/4\), not one host; use the broker's/],
    ['remote broadcast', { ...BROKER, remote: '255.255.255.255' }, 'remote', /it is the broadcast address, not one host; use the broker's/],
    ['remote equal to local', { ...BROKER, remote: BROKER.local }, 'remote', /it is local too, so the tunnel would send to itself; use the broker's "Server IPv4 Address"/],
    ['address a bare prefix', { ...BROKER, address: '2001:db8:1::/64' }, 'address', /it is the link's prefix \(its host part is zero\), not an address on it; use this end's address on that link, e\.g\. 2001:db8:1::2\/64/],
    ['address link-local', { ...BROKER, address: 'fe80::2/64' }, 'address', /it is link-local \(fe80::\/10\), which the tunnel sets by itself .*use the global address the broker gave this end/],
    ['address multicast', { ...BROKER, address: 'ff0e::2/64' }, 'address', /it is a multicast address; use this end's unicast address/],
    ['peer equal to address', { ...BROKER, peer: '2001:db8:1::2' }, 'peer', /it is this end's own address \(address\); use the other end's, the broker's "Server IPv6 Address", or leave it out for 2001:db8:1::1/],
    ['routed with host bits', { ...BROKER, routed: ['2001:db8:2::1/64'] }, 'routed.0', /^routed\.0: "2001:db8:2::1\/64" is not valid; it has bits set past \/64; use the prefix itself: 2001:db8:2::\/64$/],
  ];
  it('the values around those refusals still pass: a /127 link\'s zero address, documentation space, a lab\'s non-global remote (198.18/15)', () => {
    expect(() => resolveTunnelOptions({ ...BROKER, address: '2001:db8:1::/127', peer: '2001:db8:1::1' })).not.toThrow();
    expect(() => resolveTunnelOptions({ ...BROKER, remote: '198.18.1.3', routed: ['2001:db8:2::/64', '2001:db8:3::/48'] })).not.toThrow();
  });
  it('FOU: MTU default 1472, encapPort defaults to encapDport, checksums off, 28 bytes of outer headers', () => {
    const c = resolveTunnelOptions({ ...BROKER, encap: 'fou', encapDport: 5555 });
    expect([c.mtu, c.encapPort, c.encapDport, c.encapCsum, c.outerOverhead]).toEqual([1472, 5555, 5555, 'gso', 28]);
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
