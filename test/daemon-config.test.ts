import { mkdtempSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { checkDaemonConfig } from '../src/daemon/check.js';
import { formatCheck } from '../src/cli/config-commands.js';
import { ConfigFileError, daemonConfigToFile, formatDaemonConfig, loadDaemonConfig, parseDaemonConfig, parseDaemonConfigText, type DaemonConfig } from '../src/daemon/config.js';

const he = { mode: '6in4', local: 'auto', remote: '198.51.100.1', address: '2001:db8:1::2/64' };

function errorOf(raw: unknown): ConfigFileError {
  try {
    parseDaemonConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigFileError);
    return e as ConfigFileError;
  }
  throw new Error('expected a ConfigFileError');
}

describe('daemon configuration file', () => {
  it('local "auto" with remote 192.0.2.1 is valid (the stand-in address "auto" is checked with is not that remote)', () => {
    const c = parseDaemonConfig({ tunnels: { nat: { ...he, remote: '192.0.2.1' } } });
    expect(c.tunnels[0].spec).toMatchObject({ local: 'auto', remote: '192.0.2.1' });
  });

  it('reads several tunnels with daemon settings and defaults', () => {
    const c = parseDaemonConfig({
      tunnels: { he: { ...he, dev: 'he-ipv6', keepalive: 30 }, six: { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true, relay: '203.0.113.1', dev: 'tun6to4' } },
      metrics: { listen: '127.0.0.1:9641' },
    });
    expect(c.tunnels.map((t) => t.name)).toEqual(['he', 'six']);
    expect(c.tunnels[0].spec).toMatchObject({ dev: 'he-ipv6', keepalive: 30, remote: '198.51.100.1' });
    expect(c.control).toEqual({ socket: '/run/tun6in4/tun6in4.sock', mode: 0o600, group: undefined });
    expect(c.metrics.listen).toBe('127.0.0.1:9641');
  });

  // Every error names the tunnel and the field.
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['no tunnels', { tunnels: {} }, 'tunnels', /add at least one/],
    ['tunnel field out of range', { tunnels: { he: { ...he, mtu: 1500 } } }, 'tunnels.he.mtu', /1280\.\.1480/],
    ['unknown tunnel key', { tunnels: { he: { ...he, mtuu: 1400 } } }, 'tunnels.he.mtuu', /unknown key; did you mean "mtu"\?/],
    ['unknown top-level key', { tunnels: { he }, tunels: {} }, 'tunels', /unknown key/],
    ['6to4 private local', { tunnels: { s: { mode: '6to4', local: '10.0.0.1' } } }, 'tunnels.s.local', /global unicast.*private/],
    ['bad keepalive', { tunnels: { he: { ...he, keepalive: 0 } } }, 'tunnels.he.keepalive', /seconds|"off"/],
    ['update without key file', { tunnels: { he: { ...he, update: { tunnelId: '1', username: 'u' } } } }, 'tunnels.he.update.keyFile', /./],
    ['update key inline', { tunnels: { he: { ...he, update: { tunnelId: '1', username: 'u', keyFile: '/k', key: 'secret' } } } }, 'tunnels.he.update.key', /unknown key/],
    ['bad tunnel name', { tunnels: { 'he tunnel': he } }, 'tunnels.he tunnel', /tunnel names/],
    ['two tunnels one dev', { tunnels: { a: { ...he, dev: 'x' }, b: { ...he, dev: 'x' } } }, 'tunnels', /dev "x"/],
    ['bad metrics address', { tunnels: { he }, metrics: { listen: '9641' } }, 'metrics.listen', /host:port/],
    ['bad socket mode', { tunnels: { he }, control: { mode: 'rw' } }, 'control.mode', /octal/],
  ];
  for (const [what, raw, path, message] of cases) {
    it(`names the place and the fix: ${what}`, () => {
      const e = errorOf(raw);
      expect(e.path).toBe(path);
      expect(e.message).toMatch(message);
    });
    it(`TOML and JSON give the same error: ${what}`, () => {
      const fromText = (text: string, format: 'toml' | 'json') => {
        try {
          parseDaemonConfigText(text, format, `f.${format}`);
        } catch (e) {
          return e as ConfigFileError;
        }
        throw new Error('expected a ConfigFileError');
      };
      const t = fromText(toToml(raw), 'toml');
      const j = fromText(JSON.stringify(raw), 'json');
      expect([t.path, t.message]).toEqual([j.path, j.message]);
      expect(t.path).toBe(path);
    });
  }

  it('a missing, unreadable or non-JSON file is an error naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-cfg-'));
    expect(() => loadDaemonConfig(join(dir, 'nope.json'))).toThrow(/nope\.json: cannot read it \(ENOENT\); check the path/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "tunnels": ');
    expect(() => loadDaemonConfig(bad)).toThrow(/bad\.json: not valid JSON/);
    const toml = join(dir, 'toml.json');
    writeFileSync(toml, '[tunnels.he]\nmode = "6in4"\n');
    expect(() => loadDaemonConfig(toml)).toThrow(/toml\.json: not valid JSON .*looks like TOML: name the file \*\.toml/);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.json');
      writeFileSync(locked, '{}');
      chmodSync(locked, 0);
      expect(() => loadDaemonConfig(locked)).toThrow(/EACCES/);
    }
  });
});

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));
const withoutFile = ({ file: _file, ...rest }: DaemonConfig) => rest;

describe('TOML configuration files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-toml-'));
  const write = (name: string, text: string, mode = 0o600) => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode });
    chmodSync(p, mode);
    return p;
  };

  it('every file in examples/ loads', () => {
    const files = readdirSync(EXAMPLES);
    expect(files.filter((f) => f.endsWith('.toml')).length).toBeGreaterThanOrEqual(2);
    for (const f of files) expect(() => loadDaemonConfig(join(EXAMPLES, f)), f).not.toThrow();
  });

  it('the TOML broker example (with its comments) is the same configuration as the JSON one', () => {
    const toml = loadDaemonConfig(join(EXAMPLES, 'he-tunnel.toml'));
    const json = loadDaemonConfig(join(EXAMPLES, 'he-tunnel.json'));
    expect(toml.file).toMatch(/he-tunnel\.toml$/);
    expect(withoutFile(toml)).toEqual(withoutFile(json));
  });

  it('a TOML syntax error names the file, the line and the column', () => {
    const p = write('broken.toml', '[tunnels.he]\nmode = "6in4"\nmtu = = 1480\n');
    expect(() => loadDaemonConfig(p)).toThrow(new ConfigFileError(p, 'not valid TOML at line 3, column 7: invalid value'));
    const twice = write('twice.toml', '[tunnels.he]\nmode = "6in4"\nmode = "6to4"\n');
    expect(() => loadDaemonConfig(twice)).toThrow(/twice\.toml: not valid TOML at line 3, column 1: .*already defined/);
  });

  it('the file form of a configuration reads back as the same configuration, in TOML and in JSON', () => {
    const config = parseDaemonConfig({
      tunnels: {
        he: { ...he, routed: ['2001:db8:2::/64'], ttl: 'inherit', tos: 0, keepalive: 'off', dev: 'he-ipv6', defaultRoute: false, update: { tunnelId: '1', username: 'u', keyFile: '/etc/tun6in4/he.key', timeoutMs: 5000 } },
        six: { mode: '6to4', local: '192.0.2.1', allowNonGlobal: true, relay: '203.0.113.1', pmtu: 'dynamic', mtu: 1400 },
      },
      control: { socket: '/run/tun6in4/x.sock', mode: '660', group: 'tun6in4' },
      metrics: { listen: '127.0.0.1:9641' },
      user: 'tun6in4',
      log: { level: 'debug' },
    });
    for (const format of ['toml', 'json'] as const) {
      const text = formatDaemonConfig(daemonConfigToFile(config), format, ['a comment']);
      expect(withoutFile(parseDaemonConfigText(text, format, `shown.${format}`))).toEqual(config);
    }
    expect(formatDaemonConfig(daemonConfigToFile(config), 'toml', ['a comment'])).toMatch(/^# a comment\n\nuser = "tun6in4"\n\n\[tunnels\.he\]\nmode = "6in4"/);
  });

  it('the file form carries the update key file, never a key, even one a program put in the spec', () => {
    const config = parseDaemonConfig({ tunnels: { he: { ...he, update: { tunnelId: '1', username: 'u', keyFile: '/k' } } } });
    (config.tunnels[0].spec.update as unknown as Record<string, unknown>).key = 'sEcReT';
    const shown = formatDaemonConfig(daemonConfigToFile(config), 'toml');
    expect(shown).toMatch(/keyFile = "\/k"/);
    expect(shown).not.toMatch(/sEcReT/);
  });
});

describe('check: a configuration and its key files, validated without touching the system', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-check-'));
  const key = join(dir, 'he.key');
  writeFileSync(key, 'the-update-key\n', { mode: 0o600 });
  const config = (tunnel: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
    const p = join(dir, `c${Math.random().toString(36).slice(2)}.toml`);
    writeFileSync(p, toToml({ tunnels: { he: { ...he, ...tunnel } }, ...extra }), { mode: 0o600 });
    return p;
  };
  const problem = (p: string) => {
    try {
      checkDaemonConfig(p);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigFileError);
      return e as ConfigFileError;
    }
    throw new Error('expected a ConfigFileError');
  };

  it('a good file: the configuration, its format and the key files read', () => {
    const p = config({ update: { tunnelId: '1', username: 'u', keyFile: key } }, { user: 'nobody', control: { group: 'root' } });
    const c = checkDaemonConfig(p);
    expect(c.format).toBe('toml');
    expect(c.keyFiles).toEqual([key]);
    expect(c.config.tunnels[0].spec.update?.keyFile).toBe(key);
  });

  it('a missing, empty or world-readable key file names tunnels.NAME.update.keyFile and the fix', () => {
    const missing = problem(config({ update: { tunnelId: '1', username: 'u', keyFile: join(dir, 'nope.key') } }));
    expect(missing.path).toBe('tunnels.he.update.keyFile');
    expect(missing.detail).toMatch(/nope\.key: ENOENT; create it/);
    const empty = join(dir, 'empty.key');
    writeFileSync(empty, '\n', { mode: 0o600 });
    expect(problem(config({ update: { tunnelId: '1', username: 'u', keyFile: empty } })).detail).toMatch(/empty\.key: empty; put the broker's update key in it/);
    const open = join(dir, 'open.key');
    writeFileSync(open, 'k\n');
    chmodSync(open, 0o644);
    const e = problem(config({ update: { tunnelId: '1', username: 'u', keyFile: open } }));
    expect(e.path).toBe('tunnels.he.update.keyFile');
    expect(e.detail).toMatch(/readable by others .*mode 0644.*chmod 600/);
  });

  it('a relative keyFile is beside the configuration file, wherever the daemon was started', () => {
    const p = config({ update: { tunnelId: '1', username: 'u', keyFile: 'he.key' } });
    expect(process.cwd()).not.toBe(dir);
    const c = checkDaemonConfig(p);
    expect(c.keyFiles).toEqual([key]);
    expect(c.config.tunnels[0].spec.update?.keyFile).toBe(key);
    expect(problem(config({ update: { tunnelId: '1', username: 'u', keyFile: 'sub/nope.key' } })).detail).toContain(`${join(dir, 'sub', 'nope.key')}: ENOENT`);
  });

  it('a local this host does not have (a 1:1 NAT\'s public IPv4) passes with a note that says "auto"; one it has, or auto, without', () => {
    const nat = checkDaemonConfig(config({ local: '203.0.113.99' }));
    expect(nat.notes).toEqual(['tunnels.he.local: 203.0.113.99 is not an address of this host now, so `up` here would refuse it; behind a 1:1 NAT (a cloud VM\'s public IPv4) use local = "auto"']);
    expect(formatCheck(nat)).toContain(`\nnote: ${nat.notes[0]}\n`);
    const mine = Object.values(networkInterfaces()).flat().find((a) => a?.family === 'IPv4')!.address;
    expect(checkDaemonConfig(config({ local: mine, remote: mine === '198.51.100.1' ? '198.51.100.2' : '198.51.100.1' })).notes).toEqual([]);
    expect(checkDaemonConfig(config({})).notes).toEqual([]);
  });

  it('a user or group that does not exist is named with the fix', () => {
    expect(problem(config({}, { user: 'no-such-user-t6' }))).toMatchObject({ path: 'user', detail: expect.stringMatching(/no user named "no-such-user-t6".*useradd/) });
    expect(problem(config({}, { control: { group: 'no-such-group-t6' } }))).toMatchObject({ path: 'control.group', detail: expect.stringMatching(/no group named/) });
  });

  it('schema errors keep their place in the file', () => {
    expect(problem(config({ mtu: 9000 }))).toMatchObject({ path: 'tunnels.he.mtu', detail: expect.stringMatching(/9000 is not valid; use an integer in 1280\.\.1480/) });
  });
});
