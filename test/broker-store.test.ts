/**
 * The broker's tunnel store (src/brokerd/store.ts) and the service that changes store and table
 * together (src/brokerd/service.ts): an acknowledged change outlives SIGKILL, a change the table
 * refuses leaves the store as it was, one process at a time, and export/import lines.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerTunnelError, type BrokerTunnel } from '../src/broker/tunnel.js';
import { BrokerService } from '../src/brokerd/service.js';
import { TunnelStore, TunnelStoreError } from '../src/brokerd/store.js';
import { exportLine, parseImportLine, resolveTunnel } from '../src/brokerd/tunnel-input.js';
import { hashUpdateKey, isUpdateKeyHash, KeyChecker, verifyUpdateKey } from '../src/brokerd/update-key.js';
import { MemoryDirectory } from './helpers/memory-broker.js';

const dir = mkdtempSync(join(tmpdir(), 'tun6in4-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WRITER = fileURLToPath(new URL('./helpers/store-writer.ts', import.meta.url));

const tunnel = (id: string, n: number, more: Partial<BrokerTunnel> = {}): BrokerTunnel => ({
  id,
  remote: `192.0.2.${n}`,
  link: `2001:db8:${n}::/64`,
  routed: [`2001:db8:${n}00::/56`],
  mtu: 1480,
  user: null,
  keyHash: null,
  ...more,
});

describe('tunnel store', () => {
  it('every change acknowledged before a SIGKILL is there when the store opens again', async () => {
    const path = join(dir, 'killed.sqlite');
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked: string[] = [];
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        acked.push(...lines);
        // killed in the middle of a stream of changes, not between two of them on purpose
        if (acked.length >= 300 && child.exitCode === null) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', (code) => code !== null && reject(new Error(`the writer exited (${code}) before 300 changes: ${stderr}`)));
    });
    expect(await exited).toBe('SIGKILL');
    const store = TunnelStore.open(path);
    try {
      const ids = new Set(store.load().map((t) => t.id));
      expect(acked.filter((id) => !ids.has(id))).toEqual([]);
      expect(ids.size).toBeGreaterThanOrEqual(acked.length);
    } finally {
      store.close();
    }
  }, 60_000);

  it('is WAL-mode SQLite, and its file is readable by its owner only (it holds key hashes)', () => {
    const path = join(dir, 'mode.sqlite');
    const store = TunnelStore.open(path);
    store.change({ puts: [tunnel('a', 1)], deletes: [] }, () => undefined, () => undefined);
    try {
      expect(statSync(`${path}-wal`).isFile()).toBe(true);
      expect(statSync(path).mode & 0o077).toBe(0);
    } finally {
      store.close();
    }
  });

  it('refuses a second opener while one has it (each broker its own store)', () => {
    const path = join(dir, 'busy.sqlite');
    const first = TunnelStore.open(path);
    try {
      expect(() => TunnelStore.open(path)).toThrow(/another process has it open .*give each broker its own store file/);
    } finally {
      first.close();
    }
    TunnelStore.open(path).close();
  });

  it('a change the table refuses leaves the store and the table as they were', () => {
    const path = join(dir, 'refused.sqlite');
    const store = TunnelStore.open(path);
    const table = new MemoryDirectory();
    const service = new BrokerService('b', store, table);
    service.put(tunnel('alice', 1));
    // bob asks for alice's link
    expect(() => service.put(tunnel('bob', 2, { link: '2001:db8:1::/64' }))).toThrow(BrokerTunnelError);
    // an import with one bad tunnel is refused whole
    expect(() => service.putMany([tunnel('carol', 3), tunnel('dave', 4, { routed: ['2001:db8:100::/56'] })])).toThrow(/held by tunnel alice/);
    expect(table.list().map((t) => t.id)).toEqual(['alice']);
    expect(store.load().map((t) => t.id)).toEqual(['alice']);
    store.close();
  });

  it('loads what it stored, in canonical form, after a clean close', () => {
    const path = join(dir, 'reopen.sqlite');
    const s1 = new BrokerService('b', TunnelStore.open(path), new MemoryDirectory());
    s1.put(tunnel('alice', 1, { remote: null, link: '2001:DB8:1:0::/64', user: 'alice' }));
    s1.put(tunnel('bob', 2));
    s1.delete('bob');
    s1.store.close();
    const table = new MemoryDirectory();
    const s2 = new BrokerService('b', TunnelStore.open(path), table);
    expect(s2.loadStored()).toBe(1);
    expect(table.get('alice')).toEqual({ id: 'alice', remote: null, link: '2001:db8:1::/64', routed: ['2001:db8:100::/56'], mtu: 1480, user: 'alice', keyHash: null });
    s2.store.close();
  });

  it('an unreadable store names the path and the fix', () => {
    expect(() => TunnelStore.open('/proc/version/x.sqlite')).toThrow(TunnelStoreError);
  });
});

describe('update keys and export lines', () => {
  it('hashes a key with salted scrypt: two hashes of one key differ, both verify, a wrong key does not', async () => {
    const a = await hashUpdateKey('s3cret-key');
    const b = await hashUpdateKey('s3cret-key');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(a).not.toContain('s3cret');
    expect(isUpdateKeyHash(a)).toBe(true);
    expect(await verifyUpdateKey('s3cret-key', b)).toBe(true);
    expect(await verifyUpdateKey('s3cret-kez', a)).toBe(false);
    expect(await verifyUpdateKey('s3cret-key', 'scrypt$16$8$1$AAAA$AAAA')).toBe(false);
    const checker = new KeyChecker();
    expect(await checker.check('s3cret-key', a)).toBe(true);
    expect(await checker.check('s3cret-key', a)).toBe(true);
    expect(await checker.check('other', a)).toBe(false);
  });

  it('an export line carries the fields of list --json and keyHash, and imports back as it was', async () => {
    const { keyHash: _none, ...plain } = tunnel('alice', 1, { user: 'alice' });
    const t = await resolveTunnel({ ...plain, key: 'k1' });
    expect(t.keyHash).toMatch(/^scrypt\$/);
    const line = exportLine(t);
    expect(Object.keys(JSON.parse(line))).toEqual(['id', 'remote', 'link', 'routed', 'mtu', 'user', 'keyHash']);
    expect(line).not.toContain('"k1"');
    expect(await resolveTunnel(parseImportLine(line, 1))).toEqual(t);
    // a line of list --json imports too: its read-only fields are passed over
    expect(parseImportLine(JSON.stringify({ ...JSON.parse(line), hasKey: true, counters: {} }), 1)).not.toHaveProperty('counters');
  });

  it('an import line that is wrong names its line and field', () => {
    expect(() => parseImportLine('{"id":"a","mtuu":1400}', 7)).toThrow(/^line 7: mtuu: unknown field/);
    expect(() => parseImportLine('{"id":"a"', 3)).toThrow(/^line 3: not JSON/);
    expect(() => parseImportLine('{"id":"a","keyHash":"md5$x"}', 2)).toThrow(/^line 2: keyHash: not a hash this release wrote/);
    expect(() => parseImportLine('{"id":"a","key":"x","keyHash":null}', 2)).toThrow(/give key \(plain\) or keyHash, not both/);
  });
});
