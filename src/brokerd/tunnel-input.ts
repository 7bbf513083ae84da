/**
 * A tunnel as people and programs hand it in — an import line, a PUT body, `broker set` — and
 * as `export` writes it: the fields of BrokerTunnel, the update key as `key` (plain, hashed here,
 * never stored or logged) or `keyHash` (as export wrote it). What `list --json` adds
 * (`counters`, `hasKey`) is read-only and passed over, so a listed tunnel imports as it is.
 */
import { BrokerTunnelError, checkBrokerTunnel, type BrokerTunnel } from '../broker/tunnel.js';
import { hashUpdateKey, isUpdateKeyHash } from './update-key.js';

const FIELDS = ['id', 'remote', 'link', 'routed', 'mtu', 'user', 'key', 'keyHash'] as const;
const READ_ONLY = ['counters', 'hasKey'];

/** An export line: every field, the key only as its hash. */
export function exportLine(t: BrokerTunnel): string {
  return JSON.stringify({ id: t.id, remote: t.remote, link: t.link, routed: t.routed, mtu: t.mtu, user: t.user, keyHash: t.keyHash });
}

/**
 * The input's fields, checked for shape (unknown fields refused, naming the field); `key`
 * left plain for `resolveKey`. `keyHash` must be one this release can verify.
 */
export function tunnelFields(input: unknown): Record<string, unknown> & { key?: unknown } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new BrokerTunnelError('tunnel', 'give a JSON object with id, remote, link, routed, mtu, user and key or keyHash');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (READ_ONLY.includes(k)) continue;
    if (!(FIELDS as readonly string[]).includes(k)) throw new BrokerTunnelError(k, `unknown field; use ${FIELDS.join(', ')}`);
    out[k] = v;
  }
  if (out.key !== undefined && out.keyHash !== undefined) throw new BrokerTunnelError('key', 'give key (plain) or keyHash, not both');
  if (out.key !== undefined && out.key !== null && (typeof out.key !== 'string' || out.key.length === 0 || out.key.length > 256)) {
    throw new BrokerTunnelError('key', 'the update key as a string of 1–256 characters, or null for none');
  }
  if (out.keyHash !== undefined && out.keyHash !== null && (typeof out.keyHash !== 'string' || !isUpdateKeyHash(out.keyHash))) {
    throw new BrokerTunnelError('keyHash', 'not a hash this release wrote (scrypt$N$r$p$salt$hash); give the plain key as key instead');
  }
  return out;
}

/**
 * The stored tunnel for `input` over `existing` (fields not given keep their value there; with
 * no existing tunnel, BrokerTunnel's defaults). A plain `key` is hashed (scrypt, off the main
 * thread); `key: null` or `keyHash: null` removes the key.
 */
export async function resolveTunnel(input: unknown, existing?: BrokerTunnel): Promise<BrokerTunnel> {
  const { key, ...fields } = tunnelFields(input);
  const merged: Record<string, unknown> = { ...(existing ?? {}), ...fields };
  if (key !== undefined) merged.keyHash = key === null ? null : await hashUpdateKey(key as string);
  return checkBrokerTunnel(merged);
}

/** One JSON line of an import; the error names the line and the field. */
export function parseImportLine(line: string, lineNo: number): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new BrokerTunnelError(`line ${lineNo}`, `not JSON (${(e as Error).message}); give one tunnel object per line, as broker export writes`);
  }
  try {
    return tunnelFields(v);
  } catch (e) {
    if (e instanceof BrokerTunnelError) throw new BrokerTunnelError(`line ${lineNo}: ${e.field}`, e.detail);
    throw e;
  }
}
