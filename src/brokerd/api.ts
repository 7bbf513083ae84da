/**
 * A broker's HTTP API. Two parts on one listener:
 * - `GET /nic/update?hostname=ID&myip=A` with HTTP Basic auth (the tunnel's user and update key),
 *   answered as dyndns clients parse it (ddclient, inadyn, OpenWrt's 6in4, our BrokerUpdater):
 *   `good A`, `nochg A`, `badauth`, `nohost`, `911`, text/plain. No `myip`: the request's source.
 * - JSON for a provisioning system behind `Authorization: Bearer <token>`: `GET /tunnels`,
 *   `GET|PUT|DELETE /tunnels/ID`.
 * Failed authentication (a wrong key, an unknown id, a wrong token) is limited per source
 * address (an IPv6 source per /64): a burst of FAILURE_BURST, then one more each FAILURE_REFILL_MS; a source over it is
 * answered `911` (HTTP 429, Retry-After) without its credentials being checked. Keys and tokens
 * are never logged. Plain HTTP is served only on a loopback address.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { BrokerTunnelError, type BrokerTunnel } from '../broker/tunnel.js';
import { formatIpv4, parseIpv4, parseIpv6 } from '../packet/address.js';
import { viewOf, type BrokerService } from './service.js';
import { resolveTunnel } from './tunnel-input.js';
import { KeyChecker, sameSecret } from './update-key.js';

/** Failures a source may have at once before it must wait. */
export const FAILURE_BURST = 10;
/** One failure forgiven each this long (10 a minute once the burst is spent). */
export const FAILURE_REFILL_MS = 6_000;
/** Sources remembered; past this the oldest is forgotten (a spread of forged sources cannot grow memory). */
const MAX_SOURCES = 65_536;
/** A PUT body larger than this is refused: a tunnel is a few hundred bytes. */
const MAX_BODY = 64 * 1024;

/** A setting the API cannot run with: which field of `[broker.NAME.api]`, and the fix. */
export class BrokerApiError extends Error {
  constructor(
    readonly field: 'listen' | 'cert' | 'key' | 'tokenFile',
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = 'BrokerApiError';
  }
}

export interface ApiLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface BrokerApiOptions {
  /** host:port; an IPv6 host in brackets. */
  listen: string;
  /** PEM contents (the daemon reads the files); without them only a loopback address is served. */
  tls?: { cert: string; key: string };
  /** The bearer token of the JSON API; none: the JSON API answers 404. */
  token?: string | null;
  service: BrokerService;
  log?: ApiLog;
  /** Milliseconds, monotonic; tests pass their own. */
  clock?: () => number;
}

export interface BrokerApi {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** host and port of `listen`, or a BrokerApiError naming the fix. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) throw new BrokerApiError('listen', `${JSON.stringify(listen)} is not host:port; e.g. "127.0.0.1:8641", or "[::1]:8641"`);
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || /^::ffff:127\./i.test(host);
}

/** Why plain HTTP may not listen on `listen`, or null (a loopback address). */
export function plainHttpProblem(listen: string): string | null {
  const { host } = parseListen(listen);
  if (isLoopbackHost(host)) return null;
  return `${host} is not a loopback address, and plain HTTP would carry update keys and the token in cleartext; give cert and key (PEM files) for HTTPS, or listen on 127.0.0.1 behind a TLS proxy`;
}

/** Per-source failure budget: a token bucket that only failures draw from. */
class FailureLimiter {
  private readonly sources = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly clock: () => number) {}

  private bucket(source: string): { tokens: number; at: number } {
    const src = budgetKey(source);
    const now = this.clock();
    let b = this.sources.get(src);
    if (!b) {
      if (this.sources.size >= MAX_SOURCES) this.sources.delete(this.sources.keys().next().value!);
      b = { tokens: FAILURE_BURST, at: now };
      this.sources.set(src, b);
    }
    b.tokens = Math.min(FAILURE_BURST, b.tokens + (now - b.at) / FAILURE_REFILL_MS);
    b.at = now;
    return b;
  }

  /** Milliseconds until `src` may try again, or 0. */
  waitFor(src: string): number {
    const b = this.bucket(src);
    return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) * FAILURE_REFILL_MS);
  }

  failed(src: string): void {
    this.bucket(src).tokens -= 1;
  }
}

/** The client's address as text, IPv4-mapped IPv6 as the IPv4. */
function sourceOf(req: IncomingMessage): string {
  return (req.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

/** Whom the failure budget belongs to: an IPv4 address, or an IPv6 /64 (one host has all of it). */
export function budgetKey(src: string): string {
  const v6 = src.includes(':') ? parseIpv6(src) : null;
  return v6 ? `${v6.subarray(0, 8).toString('hex')}/64` : src;
}

function basicAuth(req: IncomingMessage): { user: string; key: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!m) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? null : { user: text.slice(0, i), key: text.slice(i + 1) };
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers }).end(`${body}\n`);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (status === 204) {
    res.writeHead(204, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(`${JSON.stringify(body)}\n`);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY) {
        reject(new BrokerTunnelError('body', `larger than ${MAX_BODY} bytes; send one tunnel`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startBrokerApi(o: BrokerApiOptions): Promise<BrokerApi> {
  const { host, port } = parseListen(o.listen);
  if (!o.tls) {
    const problem = plainHttpProblem(o.listen);
    if (problem) throw new BrokerApiError('listen', problem);
  }
  const limiter = new FailureLimiter(o.clock ?? (() => performance.now()));
  const keys = new KeyChecker();
  const service = o.service;
  const log = o.log;

  /** Answers 911 when `src` has spent its failures; true when it did. */
  const limited = (res: ServerResponse, src: string, kind: 'nic' | 'json'): boolean => {
    const wait = limiter.waitFor(src);
    if (wait === 0) return false;
    const headers = { 'retry-after': String(Math.ceil(wait / 1000)) };
    if (kind === 'nic') text(res, 429, '911', headers);
    else json(res, 429, { error: `too many failed authentications from ${src}; retry in ${Math.ceil(wait / 1000)} s` }, headers);
    return true;
  };

  async function nicUpdate(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const src = sourceOf(req);
    if (limited(res, src, 'nic')) return;
    const auth = basicAuth(req);
    // No credentials at all: the challenge, which clients that wait for one answer (not a failure).
    if (!auth) return text(res, 401, 'badauth', { 'www-authenticate': 'Basic realm="tun6in4 broker", charset="UTF-8"' });
    const id = url.searchParams.get('hostname') ?? '';
    const t = service.get(id);
    if (!t) {
      limiter.failed(src);
      log?.warn({ source: src, hostname: id.slice(0, 64) }, 'nic/update: unknown tunnel');
      return text(res, 200, 'nohost');
    }
    const ok = t.user !== null && t.keyHash !== null && sameSecret(auth.user, t.user) && (await keys.check(auth.key, t.keyHash));
    if (!ok) {
      limiter.failed(src);
      log?.warn({ source: src, tunnel: id }, 'nic/update: wrong user or update key');
      return text(res, 200, 'badauth');
    }
    const given = url.searchParams.get('myip');
    const addr = parseIpv4(given ?? src);
    if (addr === null || addr === 0) {
      // an IPv6 source without myip, or a myip that is no IPv4: nothing to set the remote to
      log?.warn({ source: src, tunnel: id, myip: given?.slice(0, 64) ?? null }, 'nic/update: no IPv4 to set (give myip=A.B.C.D)');
      return text(res, 400, '911');
    }
    const remote = formatIpv4(addr);
    // the tunnel as it is now: a change since the check above is not undone
    const current = service.get(id);
    if (!current) return text(res, 200, 'nohost');
    if (current.remote === remote) return text(res, 200, `nochg ${remote}`);
    try {
      service.put({ ...current, remote });
    } catch (e) {
      log?.warn({ tunnel: id, remote, error: (e as Error).message }, 'nic/update: change not stored');
      return text(res, 500, '911');
    }
    log?.info({ tunnel: id, remote, was: current.remote }, 'nic/update: remote changed');
    text(res, 200, `good ${remote}`);
  }

  async function tunnels(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const src = sourceOf(req);
    if (!o.token) return json(res, 404, { error: 'the JSON API is off on this broker; set its api.tokenFile to turn it on' });
    if (limited(res, src, 'json')) return;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m || !sameSecret(m[1], o.token)) {
      if (m) limiter.failed(src);
      return json(res, 401, { error: 'give the broker\'s token: Authorization: Bearer <token> (api.tokenFile)' }, { 'www-authenticate': 'Bearer realm="tun6in4 broker"' });
    }
    if (path === '/tunnels') {
      if (req.method !== 'GET') return json(res, 405, { error: 'GET /tunnels lists; PUT or DELETE /tunnels/ID changes one' }, { allow: 'GET' });
      return json(res, 200, service.views());
    }
    let id: string;
    try {
      id = decodeURIComponent(path.slice('/tunnels/'.length));
    } catch {
      return json(res, 400, { error: 'the tunnel id in the path is not valid percent-encoding', field: 'id' });
    }
    if (req.method === 'GET') {
      const t = service.get(id);
      if (!t) return json(res, 404, { error: `no tunnel ${id}` });
      const stats = service.stats(id);
      return json(res, 200, { ...viewOf(t, stats), lastDrops: stats?.lastDrops ?? [] });
    }
    if (req.method === 'DELETE') {
      try {
        return service.delete(id) ? json(res, 204, null) : json(res, 404, { error: `no tunnel ${id}` });
      } catch (e) {
        return json(res, 500, { error: (e as Error).message });
      }
    }
    if (req.method === 'PUT') {
      let tunnel: BrokerTunnel;
      try {
        const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
        if (body !== null && typeof body === 'object' && body.id !== undefined && body.id !== id) throw new BrokerTunnelError('id', `the body's id ${JSON.stringify(body.id)} is not the path's ${JSON.stringify(id)}; leave it out or make them one`);
        tunnel = await resolveTunnel({ ...body, id }, service.get(id));
      } catch (e) {
        if (e instanceof BrokerTunnelError) return json(res, 400, { error: e.message, field: e.field });
        return json(res, 400, { error: `the body is not a JSON tunnel (${(e as Error).message})` });
      }
      try {
        const isNew = service.put(tunnel);
        log?.info({ tunnel: id, remote: tunnel.remote }, isNew ? 'api: tunnel added' : 'api: tunnel replaced');
        return json(res, isNew ? 201 : 200, viewOf(tunnel, service.stats(id)));
      } catch (e) {
        if (e instanceof BrokerTunnelError) return json(res, 409, { error: e.message, field: e.field });
        return json(res, 500, { error: (e as Error).message });
      }
    }
    return json(res, 405, { error: 'GET, PUT or DELETE /tunnels/ID' }, { allow: 'GET, PUT, DELETE' });
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://broker');
    } catch {
      return text(res, 400, 'bad request');
    }
    const route = url.pathname === '/nic/update' ? (req.method === 'GET' ? nicUpdate(req, res, url) : Promise.resolve(text(res, 405, '911', { allow: 'GET' }))) : url.pathname === '/tunnels' || url.pathname.startsWith('/tunnels/') ? tunnels(req, res, url.pathname) : Promise.resolve(json(res, 404, { error: 'GET /nic/update, or /tunnels with a bearer token' }));
    route.catch((e: Error) => {
      log?.warn({ error: e.message }, 'api: request failed');
      if (!res.headersSent) text(res, 500, '911');
    });
  };

  let server: Server;
  try {
    server = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, handle) : createHttpServer(handle);
  } catch (e) {
    throw new BrokerApiError('cert', `cert and key are not a usable PEM certificate and its private key (${(e as Error).message}); give the files your CA (or openssl req -x509) wrote`);
  }
  // requests are small: a slow client holds nothing for long
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) => reject(new BrokerApiError('listen', `cannot listen on ${o.listen}: ${e.code ?? e.message}; choose a free port (ss -ltn shows the taken ones) or an address of this host`));
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
