/** The broker endpoint update against a small HTTP server on loopback that plays the broker. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerUpdater } from '../src/daemon/broker-update.js';
import { ip4 } from './helpers/packets.js';

const KEY = 'sEcReTkEy-42';
let server: Server;
let url: string;
let answer: (req: IncomingMessage) => { status: number; body: string; delayMs?: number } = () => ({ status: 200, body: 'good' });
const requests: Array<{ url: string; auth: string | undefined }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push({ url: req.url!, auth: req.headers.authorization });
    const a = answer(req);
    setTimeout(() => res.writeHead(a.status).end(a.body), a.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address() as { port: number };
  url = `http://127.0.0.1:${addr.port}/nic/update`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function updater(logs: string[], extra: Partial<ConstructorParameters<typeof BrokerUpdater>[0]> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-key-'));
  writeFileSync(join(dir, 'key'), `${KEY}\n`, { mode: 0o600 });
  const log = (level: string) => (obj: object, msg: string) => logs.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  return new BrokerUpdater({ url, insecureHttp: true, tunnelId: '123456', username: 'alice', keyFile: join(dir, 'key'), timeoutMs: 300, retryBaseMs: 50, ...extra }, { info: log('info'), warn: log('warn'), error: log('error') });
}

const waitFor = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
};

describe('broker update (HE dyndns-style)', () => {
  it('sends hostname=<tunnel id> with basic auth; no myip for a non-public local IPv4', async () => {
    requests.length = 0;
    answer = () => ({ status: 200, body: 'good 192.0.2.10' });
    const r = await updater([]).once(ip4('192.0.2.10'));
    expect(r.outcome).toBe('good');
    expect(requests[0].url).toBe('/nic/update?hostname=123456');
    expect(requests[0].auth).toBe(`Basic ${Buffer.from(`alice:${KEY}`).toString('base64')}`);
  });

  it('good and nochg succeed', async () => {
    answer = () => ({ status: 200, body: 'nochg 192.0.2.10' });
    expect((await updater([]).once(ip4('192.0.2.10'))).outcome).toBe('nochg');
  });

  for (const word of ['badauth', 'nohost', '!yours', 'notfqdn', 'abuse']) {
    it(`${word} is permanent: no retry, said in status and logs, the key never logged`, async () => {
      requests.length = 0;
      answer = () => ({ status: word === 'badauth' ? 401 : 200, body: word });
      const logs: string[] = [];
      const u = updater(logs);
      u.start(ip4('192.0.2.10'));
      await waitFor(() => u.status().outcome !== 'pending');
      await new Promise((r) => setTimeout(r, 200)); // time for retries, were there any
      expect(u.status().outcome).toBe('permanent-failure');
      expect(u.status().response).toBe(word);
      expect(requests).toHaveLength(1);
      expect(logs.some((l) => l.startsWith('error broker update refused'))).toBe(true);
      expect(logs.join('\n')).not.toContain(KEY);
      u.stop();
    });
  }

  it('garbage answers back off and retry until the broker accepts', async () => {
    requests.length = 0;
    let n = 0;
    answer = () => (++n < 3 ? { status: 500, body: '<html>oops</html>' } : { status: 200, body: 'good 192.0.2.10' });
    const logs: string[] = [];
    const u = updater(logs);
    u.start(ip4('192.0.2.10'));
    await waitFor(() => u.status().outcome === 'good');
    expect(u.status().outcome).toBe('good');
    expect(requests).toHaveLength(3);
    expect(logs.filter((l) => l.startsWith('warn'))).toHaveLength(2);
    expect(logs.join('\n')).not.toContain(KEY);
  });

  it('a slow broker times out and is retried', async () => {
    let n = 0;
    answer = () => (++n === 1 ? { status: 200, body: 'good', delayMs: 1000 } : { status: 200, body: 'nochg 192.0.2.10' });
    const u = updater([]);
    u.start(ip4('192.0.2.10'));
    await waitFor(() => u.status().outcome === 'retrying');
    expect(u.status().detail).toMatch(/no answer within 300 ms/);
    await waitFor(() => u.status().outcome === 'nochg');
    expect(u.status().outcome).toBe('nochg');
    u.stop();
  });

  it('an HTTP 401 with no known word is a refused key too: permanent, not retried forever', async () => {
    requests.length = 0;
    answer = () => ({ status: 401, body: '' });
    const logs: string[] = [];
    const u = updater(logs);
    u.start(ip4('192.0.2.10'));
    await waitFor(() => u.status().outcome !== 'pending');
    expect(u.status().outcome).toBe('permanent-failure');
    expect(u.status().detail).toMatch(/refused the username or update key/);
    expect(requests).toHaveLength(1);
    u.stop();
  });

  it('a URL carrying credentials is refused before anything is sent, and the key in it never appears', () => {
    const withKey = url.replace('http://', `http://alice:${KEY}@`);
    let message = '';
    try {
      updater([], { url: withKey });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/update url: no credentials in the URL/);
    expect(message).not.toContain(KEY);
  });

  it('plain http is refused unless allowed explicitly', () => {
    expect(() => updater([], { insecureHttp: false })).toThrow(/plain http sends the update key in cleartext; use https/);
  });

  it('a key file others can read, or one owned by another user, is refused with the fix; group-readable is fine', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-key-'));
    const open = join(dir, 'open.key');
    writeFileSync(open, `${KEY}\n`, { mode: 0o644 });
    chmodSync(open, 0o644);
    expect(() => updater([], { keyFile: open })).toThrow(/open\.key: readable by others or writable by group or others \(mode 0644\); chmod 600/);
    chmodSync(open, 0o640); // its group may read it (a service user's group)
    expect(() => updater([], { keyFile: open })).not.toThrow();
    if (process.getuid?.() === 0) {
      const theirs = join(dir, 'theirs.key');
      writeFileSync(theirs, `${KEY}\n`, { mode: 0o600 });
      chownSync(theirs, 65534, 65534);
      expect(() => updater([], { keyFile: theirs })).toThrow(/owned by uid 65534, not by root or this user/);
    }
  });

  it('reads only the start of the answer: a broker that never stops talking still gets its first line read', async () => {
    const endless = createServer((_req, res) => {
      res.writeHead(200);
      res.write('good 192.0.2.10\n');
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    await new Promise<void>((r) => endless.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (endless.address() as { port: number }).port;
      // an unbounded read would run into the 300 ms timeout and be retried
      const r = await updater([], { url: `http://127.0.0.1:${port}/nic/update` }).once(ip4('192.0.2.10'));
      expect(r.outcome).toBe('good');
    } finally {
      endless.closeAllConnections();
      await new Promise<void>((r) => endless.close(() => r()));
    }
  });

  it('a missing key file is a clear error', () => {
    expect(() => updater([], { keyFile: '/nonexistent/key' })).toThrow(/update key file \/nonexistent\/key: ENOENT/);
  });
});
