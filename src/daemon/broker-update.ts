/**
 * Telling a tunnel broker our current IPv4 (Hurricane Electric's dyndns-style API):
 * GET <url>?hostname=<tunnel id>[&myip=<IPv4>] with basic auth. `good` and `nochg` succeed;
 * `badauth`, `nohost`, `!yours`, `notfqdn` and `abuse` are permanent (retrying cannot help and
 * `abuse` means the broker wants us to stop); anything else backs off and retries.
 * `myip` is sent only when the local IPv4 is public: behind a 1:1 NAT the broker must use the
 * address it sees. The key is never logged.
 */
import { readTrustedFile, UntrustedFileError } from './trusted-file.js';
import { classifyIpv4, formatIpv4 } from '../packet/address.js';

export const HE_UPDATE_URL = 'https://ipv4.tunnelbroker.net/nic/update';

export interface BrokerUpdateOptions {
  /** Default Hurricane Electric's. https only, unless `insecureHttp`; never with credentials in it. */
  url?: string;
  /** Allow a plain http:// URL (the key then crosses the network in cleartext): a broker on a trusted network only. */
  insecureHttp?: boolean;
  /** The broker's tunnel id (HE: the numeric "Tunnel ID"). */
  tunnelId: string;
  username: string;
  /** File holding the update key (HE: "Update Key" on the Advanced tab). */
  keyFile: string;
  /** Per request; default 10 s. */
  timeoutMs?: number;
  /** First retry delay; doubles up to an hour. Default 30 s. */
  retryBaseMs?: number;
  /**
   * Groups that may read the key file besides this process's own: the group the daemon drops to
   * (the daemon fills it in from `user`/`group`; not a file key).
   */
  keyGroups?: number[];
}

export type UpdateOutcome = 'pending' | 'good' | 'nochg' | 'permanent-failure' | 'retrying';

export interface UpdateStatus {
  outcome: UpdateOutcome;
  /** The broker's answer, first line (never the key). */
  response: string | null;
  detail: string;
  at: string | null;
  attempts: number;
  nextRetryAt: string | null;
}

/** An update key file that cannot be used: `detail` says why and the fix. */
export class UpdateKeyError extends Error {
  constructor(
    readonly keyFile: string,
    readonly detail: string,
  ) {
    super(`update key file ${keyFile}: ${detail}`);
    this.name = 'UpdateKeyError';
  }
}

/** The broker update key from its file, under the trusted-file rules; `check` reads it the same way. */
export function readUpdateKey(keyFile: string, keyGroups: readonly number[] = []): string {
  let key: string;
  try {
    key = readTrustedFile(keyFile, 'secret', { groups: [process.getgid?.() ?? 0, ...keyGroups] }).trim();
  } catch (e) {
    if (e instanceof UntrustedFileError) throw new UpdateKeyError(keyFile, e.problem);
    throw new UpdateKeyError(keyFile, `${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; create it with the broker's update key (chmod 600)`);
  }
  if (!key) throw new UpdateKeyError(keyFile, 'empty; put the broker\'s update key in it');
  return key;
}

const PERMANENT = new Set(['badauth', 'nohost', '!yours', 'notfqdn', 'abuse']);
const MAX_RETRY_MS = 60 * 60 * 1000;

export interface UpdateLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export class BrokerUpdater {
  private readonly key: string;
  private current: UpdateStatus = { outcome: 'pending', response: null, detail: 'not run yet', at: null, attempts: 0, nextRetryAt: null };
  private timer: NodeJS.Timeout | null = null;
  private generation = 0;

  constructor(
    private readonly opts: BrokerUpdateOptions,
    private readonly log: UpdateLog,
  ) {
    this.key = readUpdateKey(opts.keyFile, opts.keyGroups);
    const problem = updateUrlProblem(opts.url ?? HE_UPDATE_URL, opts.insecureHttp ?? false);
    if (problem) throw new Error(`update url: ${problem}`);
  }

  status(): UpdateStatus {
    return { ...this.current };
  }

  /** Starts updating for `local` (replacing any update in progress) and retries until it settles. */
  start(local: number): void {
    this.stop();
    const gen = ++this.generation;
    this.current = { ...this.current, attempts: 0 };
    void this.attempt(local, gen, this.opts.retryBaseMs ?? 30_000);
  }

  stop(): void {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One request; returns the outcome without scheduling anything. */
  async once(local: number): Promise<UpdateStatus> {
    const url = new URL(this.opts.url ?? HE_UPDATE_URL);
    url.searchParams.set('hostname', this.opts.tunnelId);
    if (classifyIpv4(local) === 'global') url.searchParams.set('myip', formatIpv4(local));
    const auth = Buffer.from(`${this.opts.username}:${this.key}`).toString('base64');
    const at = new Date().toISOString();
    const attempts = this.current.attempts + 1;
    try {
      const res = await fetch(url, { headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000) });
      const body = (await firstBytes(res, 4096)).trim().split('\n')[0].slice(0, 200);
      const word = body.split(/\s+/)[0];
      if (word === 'good' || word === 'nochg') return { outcome: word, response: body, detail: `broker accepted (${res.status})`, at, attempts, nextRetryAt: null };
      // A refused key stays refused: HTTP 401/403 are as final as the broker's own words.
      if (PERMANENT.has(word) || res.status === 401 || res.status === 403) {
        return { outcome: 'permanent-failure', response: body || null, detail: permanentHint(PERMANENT.has(word) ? word : 'badauth'), at, attempts, nextRetryAt: null };
      }
      return { outcome: 'retrying', response: body || null, detail: `unexpected answer (HTTP ${res.status})`, at, attempts, nextRetryAt: null };
    } catch (e) {
      const err = e as Error;
      const why = err.name === 'TimeoutError' ? `no answer within ${this.opts.timeoutMs ?? 10_000} ms` : err.message;
      return { outcome: 'retrying', response: null, detail: why, at, attempts, nextRetryAt: null };
    }
  }

  private async attempt(local: number, gen: number, delayMs: number): Promise<void> {
    const r = await this.once(local);
    if (gen !== this.generation) return;
    const where = { url: redactUrl(this.opts.url ?? HE_UPDATE_URL), tunnelId: this.opts.tunnelId, local: formatIpv4(local), response: r.response };
    if (r.outcome === 'retrying') {
      r.nextRetryAt = new Date(Date.now() + delayMs).toISOString();
      this.log.warn({ ...where, detail: r.detail, retryInMs: delayMs }, 'broker update failed; will retry');
      this.timer = setTimeout(() => void this.attempt(local, gen, Math.min(delayMs * 2, MAX_RETRY_MS)), delayMs);
      this.timer.unref();
    } else if (r.outcome === 'permanent-failure') {
      this.log.error({ ...where, detail: r.detail }, 'broker update refused; not retrying');
    } else {
      this.log.info(where, 'broker updated');
    }
    this.current = r;
  }
}

/** At most `limit` bytes of a response body, as text: the broker's answer is one short line. */
async function firstBytes(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  while (n < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
  }
  await reader.cancel().catch(() => undefined);
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/**
 * Why `url` cannot carry the update, or null. Credentials in the URL (the form some broker pages
 * show) would be logged and shown in status wherever the URL is; plain http sends the key in
 * cleartext.
 */
export function updateUrlProblem(url: string, insecureHttp: boolean): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.username || u.password) return 'no credentials in the URL: give the account as username and the key in keyFile (a URL is logged and shown in status; a key file is not)';
  if (u.protocol === 'http:' && !insecureHttp) return 'plain http sends the update key in cleartext; use https, or allow it explicitly for a broker on a trusted network (--update-insecure-http, update.insecureHttp)';
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'use an https:// URL';
  return null;
}

/** The URL without any user or password, for logs and status. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.href;
  } catch {
    return '(unparsable URL)';
  }
}

function permanentHint(word: string): string {
  switch (word) {
    case 'badauth':
      return 'the broker refused the username or update key; check username and the key file';
    case 'nohost':
    case 'notfqdn':
      return 'the broker does not know this tunnel id; check tunnelId';
    case '!yours':
      return 'this tunnel id belongs to another account; check tunnelId and username';
    case 'abuse':
      return 'the broker blocked updates for abuse; stop and contact the broker';
    default:
      return word;
  }
}
