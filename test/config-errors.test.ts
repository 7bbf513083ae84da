/**
 * Issue 22 item 6: a misspelt or mistyped configuration gets answers that fix it: "did you mean"
 * for every key the file may hold (the daemon's per-tunnel keys too), one mistake reported once
 * (`tunnelID` is not also a missing `tunnelId`), a fix for each type error instead of zod's text,
 * and every problem of the file at once.
 */
import { describe, expect, it } from 'vitest';
import { closestKey, ConfigFileError, parseDaemonConfig } from '../src/daemon/config.js';

const he = { mode: '6in4', local: 'auto', remote: '198.51.100.1', address: '2001:db8:1::2/64' };

function problemsOf(raw: unknown): Array<{ path: string; detail: string }> {
  try {
    parseDaemonConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigFileError);
    return (e as ConfigFileError).problems;
  }
  throw new Error('expected a ConfigFileError');
}

describe('misspelt keys', () => {
  const cases: Array<[string, string]> = [
    ['Dev', 'dev'],
    ['keepAlive', 'keepalive'],
    ['updat', 'update'],
    ['defaultroute', 'defaultRoute'],
    ['offlaod', 'offload'],
    ['ioURing', 'ioUring'],
    ['mtuu', 'mtu'],
    ['sixrdprefix', 'sixrdPrefix'],
  ];
  for (const [typo, meant] of cases) {
    it(`tunnels.he.${typo}: did you mean "${meant}"?`, () => {
      expect(problemsOf({ tunnels: { he: { ...he, [typo]: true } } })).toContainEqual({ path: `tunnels.he.${typo}`, detail: `unknown key; did you mean "${meant}"?` });
    });
  }

  it('tunnelID is one mistake, a misspelt tunnelId, not also a missing one', () => {
    const p = problemsOf({ tunnels: { he: { ...he, update: { tunnelID: '1', username: 'u', keyFile: '/k' } } } });
    expect(p).toEqual([{ path: 'tunnels.he.update.tunnelID', detail: 'unknown key; did you mean "tunnelId"?' }]);
  });

  it('outside tunnels too: metric, [control] sock, [log] lvl', () => {
    const p = problemsOf({ tunnels: { he }, metric: {}, control: { sock: '/x' }, log: { lvl: 'info' } });
    expect(p).toEqual(
      expect.arrayContaining([
        { path: 'metric', detail: 'unknown key; did you mean "metrics"?' },
        { path: 'control.sock', detail: 'unknown key; did you mean "socket"?' },
        { path: 'log.lvl', detail: 'unknown key; did you mean "level"?' },
      ]),
    );
  });

  it('a key like nothing known lists what is known, tunnel and daemon keys alike', () => {
    const [p] = problemsOf({ tunnels: { he: { ...he, zzzzzzzz: 1 } } });
    expect(p.detail).toMatch(/^unknown key; remove it or use one of mode, .*, dev, defaultRoute, offload, ioUring, .*keepalive, .*update$/);
  });

  it('closestKey ignores case and allows a few edits, not more', () => {
    expect(closestKey('MTU', ['mtu', 'ttl'])).toBe('mtu');
    expect(closestKey('qqqqqqqqq', ['mtu', 'ttl'])).toBeUndefined();
  });
});

describe('type errors say what to write', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['control.socket a number', { tunnels: { he }, control: { socket: 5 } }, 'control.socket', /^number 5 is not valid; use a path such as "\/run\/tun6in4\/tun6in4\.sock"$/],
    ['log.level unknown', { tunnels: { he }, log: { level: 'loud' } }, 'log.level', /^string "loud" is not valid; use one of "trace", .*"fatal"$/],
    ['user a number', { tunnels: { he }, user: 1000 }, 'user', /^number 1000 is not valid; use a user name such as "tun6in4"$/],
    ['metrics a string', { tunnels: { he }, metrics: '127.0.0.1:9641' }, 'metrics', /^string "127\.0\.0\.1:9641" is not valid; use a table: \[metrics\] with listen$/],
    ['dev a number', { tunnels: { he: { ...he, dev: 7 } } }, 'tunnels.he.dev', /^number 7 is not valid; use an interface name in quotes/],
    ['update without username', { tunnels: { he: { ...he, update: { tunnelId: '1', keyFile: '/k' } } } }, 'tunnels.he.update.username', /^missing; add it: the broker account name in quotes$/],
  ];
  for (const [what, raw, path, detail] of cases) {
    it(what, () => {
      const p = problemsOf(raw);
      expect(p.map((x) => x.path)).toContain(path);
      expect(p.find((x) => x.path === path)!.detail).toMatch(detail);
      for (const x of p) expect(x.detail).not.toMatch(/Invalid input|expected \w+, received/);
    });
  }
});

describe('every problem at once', () => {
  it('a file with five mistakes in three places reports all five, one line each', () => {
    const raw = {
      tunnels: {
        he: { ...he, mtu: 9000, keepAlive: 30 },
        six: { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true, ttl: 999 },
      },
      control: { mode: '0666' },
      log: { level: 'loud' },
    };
    let e: ConfigFileError | undefined;
    try {
      parseDaemonConfig(raw);
    } catch (x) {
      e = x as ConfigFileError;
    }
    expect(e?.problems.map((p) => p.path).sort()).toEqual(['control.mode', 'log.level', 'tunnels.he.keepAlive', 'tunnels.he.mtu', 'tunnels.six.ttl']);
    expect(e?.message.split('\n')).toHaveLength(5);
    expect(e?.within('/etc/tun6in4/x.toml').message.split('\n').every((l) => l.startsWith('/etc/tun6in4/x.toml: '))).toBe(true);
  });
});

describe('messages that name the problem there is (issue 33)', () => {
  it('routed as a string, not a list: the fix is the same value in brackets, not the value again', () => {
    const [p] = problemsOf({ tunnels: { he: { ...he, routed: '2001:db8:2::/64' } } });
    expect(p).toEqual({ path: 'tunnels.he.routed', detail: '"2001:db8:2::/64" is not valid; routed is a list, even of one: write routed = ["2001:db8:2::/64"] (in JSON: "routed": ["2001:db8:2::/64"])' });
  });

  it('a bad sixrdDhcp is the one problem: not also a missing sixrdPrefix or relay', () => {
    const p = problemsOf({ tunnels: { isp: { mode: '6rd', local: '192.0.2.10', sixrdDhcp: '25 36 2001:db8:a000::' } } });
    expect(p.map((x) => x.path)).toEqual(['tunnels.isp.sixrdDhcp']);
    // without sixrdDhcp, sixrdPrefix is missing indeed
    expect(problemsOf({ tunnels: { isp: { mode: '6rd', local: '192.0.2.10' } } }).map((x) => x.path)).toEqual(['tunnels.isp.sixrdPrefix']);
  });

  it('a missing local says "auto" too', () => {
    const { local: _local, ...noLocal } = he;
    expect(problemsOf({ tunnels: { he: noLocal } })).toEqual([{ path: 'tunnels.he.local', detail: expect.stringMatching(/^missing; use a dotted-quad IPv4 address of this host such as 192\.0\.2\.10, or "auto" \(.*1:1 NAT\)$/) }]);
  });

  it('a dev name too long shows it and its length; one with a bad character shows it', () => {
    expect(problemsOf({ tunnels: { he: { ...he, dev: 'he-ipv6-tunnel-one' } } })).toEqual([{ path: 'tunnels.he.dev', detail: '"he-ipv6-tunnel-one" is 18 characters; Linux allows 15: use a shorter name, such as "he-ipv6"' }]);
    expect(problemsOf({ tunnels: { he: { ...he, dev: 'he ipv6' } } })[0].detail).toMatch(/^"he ipv6" is not valid; use an interface name of 1\.\.15 letters/);
  });
});
