/**
 * The daemon's local control socket (a Unix socket, mode 0600 or 0660): a client writes one
 * line — `status` — and reads one JSON document back. `tun6in4 status` is such a client.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';

export type ControlHandler = (command: string) => unknown;

/** Another live daemon answers on the control socket path we were given. */
export class ControlSocketBusyError extends Error {
  constructor(readonly path: string) {
    super(`another tun6in4 answers on ${path}; stop it or choose another control socket (--control)`);
    this.name = 'ControlSocketBusyError';
  }
}

export async function listenControl(path: string, mode: number, gid: number | undefined, handler: ControlHandler): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (existsSync(path)) {
    if (await isAlive(path)) throw new ControlSocketBusyError(path);
    unlinkSync(path); // stale: its daemon is gone
  }
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 4096) sock.destroy();
        return;
      }
      const cmd = buf.slice(0, nl).trim();
      let reply: unknown;
      try {
        reply = handler(cmd);
      } catch (e) {
        reply = { error: (e as Error).message };
      }
      sock.end(`${JSON.stringify(reply)}\n`);
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, mode);
  if (gid !== undefined) chownSync(path, process.getuid?.() ?? 0, gid);
  return server;
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Sends one command to a daemon's control socket and returns its JSON answer. */
export function queryControl(path: string, command: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d) => (buf += d));
    c.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf));
      } catch {
        reject(new Error(`bad answer from ${path}: ${buf.slice(0, 200)}`));
      }
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const fix = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'is the daemon running? (tun6in4 run / tun6in4 up)' : e.code === 'EACCES' ? 'run as root or as a member of the socket\'s group' : '';
      reject(new Error(`cannot reach the daemon at ${path}: ${e.code ?? e.message}${fix ? `; ${fix}` : ''}`));
    });
  });
}

/**
 * The socket `tun6in4 status` should ask: `wanted` when a daemon answers there; otherwise, when
 * `wanted` is missing, the only live socket beside it (a daemon that found the default taken).
 */
export async function findControlSocket(wanted: string): Promise<string> {
  if (existsSync(wanted) && (await isAlive(wanted))) return wanted;
  let others: string[] = [];
  try {
    others = readdirSync(dirname(wanted)).filter((n) => n.endsWith('.sock')).map((n) => join(dirname(wanted), n));
  } catch {
    return wanted;
  }
  const live: string[] = [];
  for (const p of others) if (p !== wanted && (await isAlive(p))) live.push(p);
  if (live.length === 1) return live[0];
  if (live.length > 1) throw new Error(`no daemon at ${wanted}, and several elsewhere: ${live.join(', ')}; pick one with --control`);
  return wanted;
}
