/**
 * Update keys at rest: salted scrypt (node:crypto), so a copied store or export gives no key,
 * and every comparison in constant time. The hash text names its parameters, so a later
 * release can raise them and still read the old ones.
 *
 *   scrypt$16384$8$1$<salt, base64>$<hash, base64>
 */
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * The scrypt paper's interactive-login cost (2^14, r 8, p 1: 16 MiB, tens of ms on one core):
 * a guess costs as much; repeated updates with the key already checked skip it (KeyChecker).
 */
const N = 16_384;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const SALT_LEN = 16;

function derive(key: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(key, salt, KEY_LEN, { ...opts, maxmem: 256 * opts.N! * opts.r! + 1024 * 1024 }, (e, out) => (e ? reject(e) : resolve(out))));
}

/** A fresh salted hash of `key` (off the main thread: scrypt runs in libuv's pool). */
export async function hashUpdateKey(key: string): Promise<string> {
  if (key.length === 0) throw new Error('an empty update key; give one of 1 or more characters');
  const salt = randomBytes(SALT_LEN);
  const hash = await derive(key, salt, { N, r: R, p: P });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Parses a stored hash, or null when it is not one of ours. */
function parseHash(text: string): { N: number; r: number; p: number; salt: Buffer; hash: Buffer } | null {
  const m = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/=]{4,64})\$([A-Za-z0-9+/=]{4,128})$/.exec(text);
  if (!m) return null;
  const [n, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // a power of two, and no cost that would stall the daemon (a hash from a hostile import)
  if (n < 2 || n > 1 << 20 || (n & (n - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  return { N: n, r, p, salt: Buffer.from(m[4], 'base64'), hash: Buffer.from(m[5], 'base64') };
}

/** Is `text` a hash `verifyUpdateKey` can check? (import and PUT refuse any other.) */
export function isUpdateKeyHash(text: string): boolean {
  return parseHash(text) !== null;
}

/** Does `key` match `stored`? Constant-time over the derived bytes; false for a malformed hash. */
export async function verifyUpdateKey(key: string, stored: string): Promise<boolean> {
  const h = parseHash(stored);
  if (!h) return false;
  const got = await derive(key, h.salt, { N: h.N, r: h.r, p: h.p });
  return got.length === h.hash.length && timingSafeEqual(got, h.hash);
}

/**
 * Checks keys against their stored hashes, remembering for each stored hash the last key that
 * matched as a digest under a secret of this process: a client updating every few minutes with
 * the same key costs one scrypt per daemon lifetime, not one per request (nic/update's p99).
 * Nothing it holds is a key or outlives the process.
 */
export class KeyChecker {
  private readonly pepper = randomBytes(32);
  private readonly known = new Map<string, Buffer>();

  /** At most this many remembered keys (one per tunnel that updated); the oldest goes first. */
  constructor(private readonly capacity = 200_000) {}

  private digest(key: string): Buffer {
    return createHash('sha256').update(this.pepper).update(key, 'utf8').digest();
  }

  async check(key: string, stored: string): Promise<boolean> {
    const d = this.digest(key);
    const seen = this.known.get(stored);
    if (seen && timingSafeEqual(seen, d)) return true;
    if (!(await verifyUpdateKey(key, stored))) return false;
    if (this.known.size >= this.capacity) this.known.delete(this.known.keys().next().value!);
    this.known.set(stored, d);
    return true;
  }
}

/** Constant-time equality of two secrets of any length (a bearer token against the configured one). */
export function sameSecret(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}
