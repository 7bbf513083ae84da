import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigFileError, loadDaemonConfig, parseDaemonConfig } from '../src/daemon/config.js';

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
    ['unknown tunnel key', { tunnels: { he: { ...he, mtuu: 1400 } } }, 'tunnels.he.mtuu', /unknown option/],
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
  }

  it('a missing, unreadable or non-JSON file is an error naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-cfg-'));
    expect(() => loadDaemonConfig(join(dir, 'nope.json'))).toThrow(/nope\.json: cannot read it \(ENOENT\); check the path/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "tunnels": ');
    expect(() => loadDaemonConfig(bad)).toThrow(/bad\.json: not valid JSON/);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.json');
      writeFileSync(locked, '{}');
      chmodSync(locked, 0);
      expect(() => loadDaemonConfig(locked)).toThrow(/EACCES/);
    }
  });
});
