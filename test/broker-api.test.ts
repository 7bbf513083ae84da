/**
 * The broker's HTTP API (src/brokerd/api.ts) on loopback, with Node's http client: each
 * nic/update answer as dyndns clients parse it, our own BrokerUpdater against it unchanged, a
 * wrong key changing nothing, the per-source limit on failures, the bearer-token JSON API, and
 * HTTPS with a certificate made here. The table is in memory; the store is a real file.
 */
import { execFileSync } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerTunnel } from '../src/broker/tunnel.js';
import { budgetKey, FAILURE_BURST, FAILURE_REFILL_MS, plainHttpProblem, startBrokerApi, type BrokerApi } from '../src/brokerd/api.js';
import { BrokerService } from '../src/brokerd/service.js';
import { TunnelStore } from '../src/brokerd/store.js';
import { hashUpdateKey } from '../src/brokerd/update-key.js';
import { BrokerUpdater } from '../src/daemon/broker-update.js';
import { parseIpv4 } from '../src/packet/address.js';
import { MemoryDirectory } from './helpers/memory-broker.js';

const dir = mkdtempSync(join(tmpdir(), 'tun6in4-api-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOKEN = 'a-token-of-more-than-sixteen-characters';
const KEY = 'alice-update-key';
let keyHash: string;
let n = 0;
let store: TunnelStore;
let table: MemoryDirectory;
let service: BrokerService;
let api: BrokerApi;
let now = 0;

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function get(path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: api.address.port, path, method, headers }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: b, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const basic = (user: string, key: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${key}`).toString('base64')}` });
const bearer = (t = TOKEN) => ({ authorization: `Bearer ${t}` });

const alice = (): BrokerTunnel => ({ id: 'alice', remote: '192.0.2.10', link: '2001:db8:1::/64', routed: ['2001:db8:100::/56'], mtu: 1480, user: 'alice', keyHash });

beforeEach(async () => {
  keyHash ??= await hashUpdateKey(KEY);
  store = TunnelStore.open(join(dir, `api-${n++}.sqlite`));
  table = new MemoryDirectory();
  service = new BrokerService('edge', store, table);
  service.put(alice());
  now = 0;
  api = await startBrokerApi({ listen: '127.0.0.1:0', token: TOKEN, service, clock: () => now });
});

afterEach(async () => {
  await api.close();
  store.close();
});

describe('nic/update', () => {
  it('good A: the remote changes (store and table), then nochg A for the same address', async () => {
    const r = await get('/nic/update?hostname=alice&myip=198.51.100.7', basic('alice', KEY));
    expect([r.status, r.body, r.headers['content-type']]).toEqual([200, 'good 198.51.100.7\n', 'text/plain; charset=utf-8']);
    expect(table.get('alice')!.remote).toBe('198.51.100.7');
    expect(store.load()[0].remote).toBe('198.51.100.7');
    const again = await get('/nic/update?hostname=alice&myip=198.51.100.7', basic('alice', KEY));
    expect(again.body).toBe('nochg 198.51.100.7\n');
  });

  it('without myip, the address the request came from (here loopback)', async () => {
    const r = await get('/nic/update?hostname=alice', basic('alice', KEY));
    expect(r.body).toBe('good 127.0.0.1\n');
  });

  it('a ddclient-style request (dyndns2 query, its user agent) gets the answer ddclient parses', async () => {
    const r = await get('/nic/update?system=dyndns&hostname=alice&myip=203.0.113.5&wildcard=NOCHG&mx=NOCHG&backmx=NOCHG', { ...basic('alice', KEY), 'user-agent': 'ddclient/3.11.2' });
    expect(r.body).toBe('good 203.0.113.5\n');
  });

  it('badauth for a wrong key or user, and the tunnel is not changed (store, table)', async () => {
    const before = table.changes.length;
    for (const auth of [basic('alice', 'wrong-key'), basic('bob', KEY)]) {
      const r = await get('/nic/update?hostname=alice&myip=198.51.100.9', auth);
      expect(r.body).toBe('badauth\n');
    }
    expect(table.changes.length).toBe(before);
    expect(table.get('alice')!.remote).toBe('192.0.2.10');
    expect(store.load()[0].remote).toBe('192.0.2.10');
  });

  it('no credentials: 401 with a Basic challenge (clients that wait for one then send theirs)', async () => {
    const r = await get('/nic/update?hostname=alice&myip=198.51.100.9');
    expect([r.status, r.body]).toEqual([401, 'badauth\n']);
    expect(r.headers['www-authenticate']).toMatch(/^Basic realm=/);
  });

  it('nohost for an id the broker does not have', async () => {
    const r = await get('/nic/update?hostname=mallory&myip=198.51.100.9', basic('alice', KEY));
    expect(r.body).toBe('nohost\n');
  });

  it('911 for a myip that is no IPv4 (nothing to set the remote to)', async () => {
    const r = await get('/nic/update?hostname=alice&myip=2001:db8::1', basic('alice', KEY));
    expect([r.status, r.body]).toEqual([400, '911\n']);
    expect(table.get('alice')!.remote).toBe('192.0.2.10');
  });

  it(`failed authentication is limited per source: ${FAILURE_BURST} at once, then 911 (429) even with the right key, one more each ${FAILURE_REFILL_MS / 1000} s`, async () => {
    for (let i = 0; i < FAILURE_BURST; i++) expect((await get('/nic/update?hostname=alice&myip=198.51.100.9', basic('alice', `guess${i}`))).body).toBe('badauth\n');
    const blocked = await get('/nic/update?hostname=alice&myip=198.51.100.9', basic('alice', KEY));
    expect([blocked.status, blocked.body, blocked.headers['retry-after']]).toEqual([429, '911\n', String(FAILURE_REFILL_MS / 1000)]);
    expect(table.get('alice')!.remote).toBe('192.0.2.10');
    now += FAILURE_REFILL_MS;
    expect((await get('/nic/update?hostname=alice&myip=198.51.100.9', basic('alice', KEY))).body).toBe('good 198.51.100.9\n');
  });

  it('an IPv6 source spends the budget of its /64 (one host may hold all of it), an IPv4 source its own', () => {
    expect(budgetKey('2001:db8:0:5::1')).toBe(budgetKey('2001:db8:0:5:ffff::2'));
    expect(budgetKey('2001:db8:0:5::1')).not.toBe(budgetKey('2001:db8:0:6::1'));
    expect(budgetKey('198.18.0.1')).not.toBe(budgetKey('198.18.0.2'));
  });

  it('our own BrokerUpdater (src/daemon/broker-update.ts) against it, unchanged: good, then nochg', async () => {
    const keyFile = join(dir, `alice-${n}.key`);
    writeFileSync(keyFile, `${KEY}\n`);
    chmodSync(keyFile, 0o600);
    const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const u = new BrokerUpdater({ url: `http://127.0.0.1:${api.address.port}/nic/update`, insecureHttp: true, tunnelId: 'alice', username: 'alice', keyFile }, log);
    // a documentation address is not global: the updater leaves myip out and the broker takes the source
    const first = await u.once(parseIpv4('192.0.2.99')!);
    expect([first.outcome, first.response]).toEqual(['good', 'good 127.0.0.1']);
    const second = await u.once(parseIpv4('192.0.2.99')!);
    expect([second.outcome, second.response]).toEqual(['nochg', 'nochg 127.0.0.1']);
    const wrong = new BrokerUpdater({ url: `http://127.0.0.1:${api.address.port}/nic/update`, insecureHttp: true, tunnelId: 'nobody', username: 'alice', keyFile }, log);
    expect((await wrong.once(parseIpv4('192.0.2.99')!)).outcome).toBe('permanent-failure');
  });
});

describe('JSON API behind a bearer token', () => {
  it('refuses a missing or wrong token (401), serves the right one', async () => {
    expect((await get('/tunnels')).status).toBe(401);
    expect((await get('/tunnels', bearer('not-the-token'))).status).toBe(401);
    const r = await get('/tunnels', bearer());
    expect(r.status).toBe(200);
    const list = JSON.parse(r.body) as Array<Record<string, unknown>>;
    expect(list.map((t) => t.id)).toEqual(['alice']);
    expect(list[0]).toMatchObject({ remote: '192.0.2.10', hasKey: true, counters: { rxPackets: 0 } });
    expect(r.body).not.toContain('scrypt');
  });

  it('PUT adds (201) and replaces (200), a plain key is hashed and then updates; DELETE removes', async () => {
    const bob = { remote: null, link: '2001:db8:2::/64', user: 'bob', key: 'bob-key' };
    const put = await get('/tunnels/bob', { ...bearer(), 'content-type': 'application/json' }, 'PUT', JSON.stringify(bob));
    expect(put.status).toBe(201);
    expect(JSON.parse(put.body)).toMatchObject({ id: 'bob', remote: null, hasKey: true });
    expect(store.load().find((t) => t.id === 'bob')!.keyHash).toMatch(/^scrypt\$/);
    expect((await get('/nic/update?hostname=bob&myip=198.51.100.20', basic('bob', 'bob-key'))).body).toBe('good 198.51.100.20\n');
    // a replace without key keeps the key
    const again = await get('/tunnels/bob', bearer(), 'PUT', JSON.stringify({ link: '2001:db8:2::/64', mtu: 1400 }));
    expect(again.status).toBe(200);
    expect(table.get('bob')).toMatchObject({ mtu: 1400, remote: '198.51.100.20', user: 'bob' });
    expect(table.get('bob')!.keyHash).toMatch(/^scrypt\$/);
    expect((await get('/tunnels/bob', bearer(), 'DELETE')).status).toBe(204);
    expect((await get('/tunnels/bob', bearer())).status).toBe(404);
    expect(store.load().map((t) => t.id)).toEqual(['alice']);
  });

  it('a bad PUT names the field (400); a prefix another tunnel holds is a conflict (409) and changes nothing', async () => {
    const bad = await get('/tunnels/bob', bearer(), 'PUT', JSON.stringify({ link: '2001:db8:2::/64', mtu: 1500 }));
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ field: 'mtu' });
    const taken = await get('/tunnels/bob', bearer(), 'PUT', JSON.stringify({ link: '2001:db8:1::/64' }));
    expect(taken.status).toBe(409);
    expect(store.load().map((t) => t.id)).toEqual(['alice']);
  });

  it('GET /tunnels/ID shows counters and last drops', async () => {
    table.statsOf.get('alice')!.lastDrops.push({ time: '2026-01-01T00:00:00.000Z', reason: 'spoofed_source', outerSrc: '192.0.2.10', bytes: '6000' });
    const r = JSON.parse((await get('/tunnels/alice', bearer())).body);
    expect(r).toMatchObject({ id: 'alice', lastDrops: [{ reason: 'spoofed_source' }] });
  });
});

describe('listening', () => {
  it('plain HTTP is refused on an address other than loopback, naming the fix', async () => {
    expect(plainHttpProblem('127.0.0.1:8641')).toBeNull();
    expect(plainHttpProblem('[::1]:8641')).toBeNull();
    expect(plainHttpProblem('192.0.2.1:8641')).toMatch(/not a loopback address.*give cert and key/);
    await expect(startBrokerApi({ listen: '0.0.0.0:8641', service })).rejects.toThrow(/^listen: 0\.0\.0\.0 is not a loopback address/);
  });

  it('serves HTTPS with the cert and key it is given (a self-signed certificate made here)', async () => {
    const key = join(dir, 'tls.key');
    const cert = join(dir, 'tls.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const tls = await startBrokerApi({ listen: '127.0.0.1:0', tls: { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') }, service });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port: tls.address.port, path: '/nic/update?hostname=alice&myip=198.51.100.30', ca: readFileSync(cert), headers: basic('alice', KEY) }, (res) => {
          let b = '';
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        });
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe('good 198.51.100.30\n');
    } finally {
      await tls.close();
    }
  }, 30_000);
});
