/**
 * The daemon's local control socket (a Unix socket, mode 0600 or 0660): a client writes one
 * line — `status` — and reads one JSON document back. `tun6in4 status` is such a client.
 * A command may instead answer with a stream of JSON lines (`trace`): that connection stays open
 * until either side ends it.
 */
import { closeSync, constants, existsSync, openSync, fstatSync, ftruncateSync, lstatSync, mkdirSync, readdirSync, lchownSync, readFileSync, readlinkSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { constants as osConstants, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { loadNative } from '../io/native.js';

/**
 * An answer that is a stream of lines rather than one document. Its connection is exempt from the
 * idle timeout (a trace may be quiet for hours) and lives until the client closes it, the stream
 * ends it, or the daemon stops; `open` starts writing to the socket and returns what stops it.
 */
export class ControlStream {
  constructor(readonly open: (socket: Socket) => { close(): void }) {}
}

/** Who is asking: the client's credentials from the kernel (SO_PEERCRED). */
export interface ControlPeer {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * What a command answers: a JSON-able document, or a ControlStream. `peer` is null when the addon
 * cannot tell (one built before native/peercred.cc).
 */
export type ControlHandler = (command: string, peer: ControlPeer | null) => unknown;

/**
 * Commands that show more than status (trace: the first bytes of every packet). The socket's mode
 * and group decide who may connect; these are for root and the daemon's own user only, unless
 * `forGroup` lets everyone who can connect run them.
 */
export interface ControlAccess {
  restricted(command: string): boolean;
  forGroup?: boolean;
  /**
   * Commands for root and the daemon's own user only, whatever `forGroup` says (a broker's
   * changes): what the command does, for the refusal, or null for any other command.
   */
  ownerOnly?(command: string): string | null;
}

/** May `peer` run a restricted command? Root, or the user the daemon runs as now. */
export function mayRunRestricted(peer: ControlPeer | null): boolean {
  return peer !== null && (peer.uid === 0 || peer.uid === (process.geteuid?.() ?? 0));
}

function restrictedRefusal(command: string, peer: ControlPeer | null): string {
  const name = command.split(/\s/)[0];
  const me = process.geteuid?.() ?? 0;
  if (peer === null) return `"${name}" is refused: this build of the native addon cannot tell who is asking (no SO_PEERCRED); rebuild it (npm run build:native)`;
  return `"${name}" shows packet bytes: only root or the daemon's user (uid ${me}) may run it, not uid ${peer.uid}; run it as one of them (sudo), or set control.trace = "group" to let everyone who can reach the socket`;
}

function ownerOnlyRefusal(command: string, what: string, peer: ControlPeer | null): string {
  const name = command.split(/\s/)[0];
  const me = process.geteuid?.() ?? 0;
  if (peer === null) return `"${name}" is refused: this build of the native addon cannot tell who is asking (no SO_PEERCRED); rebuild it (npm run build:native)`;
  return `"${name}" ${what}: only root or the daemon's user (uid ${me}) may, not uid ${peer.uid}; run it as one of them (sudo)`;
}

/** SO_PEERCRED of an accepted connection, or null if the addon cannot say. */
function peerOf(sock: Socket): ControlPeer | null {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const native = loadNative();
  if (typeof fd !== 'number' || fd < 0 || !native.peerCredentials) return null;
  try {
    return native.peerCredentials(fd);
  } catch {
    return null;
  }
}

/** A client that sends no full command within this long is disconnected. */
const CONTROL_IDLE_MS = 10_000;
/** Status is for operators and scrapers, not for crowds: more at once are refused. */
const CONTROL_MAX_CONNECTIONS = 16;
/**
 * Streams hold their connection for as long as they run: at most this many at once, so that
 * status and metrics scrapers always find a free connection among the rest.
 */
const CONTROL_MAX_STREAMS = 4;

/** Another live daemon answers on the control socket path we were given. */
export class ControlSocketBusyError extends Error {
  constructor(readonly path: string) {
    super(`another tun6in4 answers on ${path}; stop it or choose another control socket (--control)`);
    this.name = 'ControlSocketBusyError';
  }
}

/** A control socket this daemon owns; `close` gives it up (socket file and lock removed). */
export interface ControlListener {
  readonly path: string;
  /**
   * The ControlAccess changed (a reload narrowed `forGroup`): streams whose client may no longer
   * run their command are told why and ended.
   */
  accessChanged(): void;
  close(): Promise<void>;
}

/**
 * Who owns a control socket path is decided by an exclusive flock on `<path>.lock`, held for the
 * daemon's lifetime: taking it is atomic, and the kernel drops it when the owner exits, however
 * it exits. So the owner may replace a socket file left by a dead one, nobody ever unlinks a live
 * daemon's socket, and the lock file holds the owner's pid for `status` to find its namespace.
 */
function claim(path: string): number | null {
  const lockPath = `${path}.lock`;
  const native = loadNative();
  for (;;) {
    // opened here, so fstat, write and close below are on an fd this runtime's fs knows
    const fd = openSync(lockPath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    if (!native.flock(fd)) {
      closeSync(fd);
      return null;
    }
    // The previous owner removes its lock file on the way out; if that happened between our open
    // and our flock, we hold a file nobody else will open: take the one now at the path instead.
    let current: number | undefined;
    try {
      current = statSync(lockPath).ino;
    } catch {
      // removed: retry
    }
    if (current === fstatSync(fd).ino) {
      ftruncateSync(fd);
      writeSync(fd, `${process.pid}\n`, 0);
      return fd;
    }
    closeSync(fd);
  }
}

/**
 * The socket's directory (or the lock file in it) could not be made: usually a daemon started
 * unprivileged (setpriv, User=) where /run/tun6in4 is root's or missing. Says where, and the fix.
 */
function unwritableDirectory(path: string, e: NodeJS.ErrnoException): Error {
  const code = e.code ?? (e.errno !== undefined ? (Object.entries(osConstants.errno).find(([, v]) => v === e.errno)?.[0] ?? `errno ${e.errno}`) : e.message);
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return e;
  const dir = dirname(path);
  const uid = process.getuid?.() ?? 0;
  let user = String(uid);
  try {
    user = userInfo().username;
  } catch {
    // a uid without a passwd entry: install -o takes the number
  }
  return new Error(
    `cannot create the control socket's lock file ${path}.lock (${code}): this user (${user}, uid ${uid}) cannot write ${dir}; ` +
      `make the directory its own first (sudo install -d -o ${user} -m 0750 ${dir}; under systemd RuntimeDirectory=tun6in4 does it), or choose a control socket in a directory it can write (--control PATH, control.socket)`,
  );
}

/** How long a client may idle, and how many may be connected at once. */
export interface ControlLimits {
  idleMs: number;
  maxConnections: number;
  /** Of those, how many may be streams (default 4). */
  maxStreams?: number;
}

export async function listenControl(
  path: string,
  mode: number,
  gid: number | undefined,
  handler: ControlHandler,
  limits: ControlLimits = { idleMs: CONTROL_IDLE_MS, maxConnections: CONTROL_MAX_CONNECTIONS },
  access?: ControlAccess,
): Promise<ControlListener> {
  if (mode & 0o007) {
    throw new Error(`control socket mode ${mode.toString(8).padStart(4, '0')} lets every local user connect (status, tunnel addresses); use 0600, or 0660 with a group for the users who may`);
  }
  let lock: number | null;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    lock = claim(path);
  } catch (e) {
    throw unwritableDirectory(path, e as NodeJS.ErrnoException);
  }
  if (lock === null) throw new ControlSocketBusyError(path);
  // Removing the lock file is safe while we hold the lock (see claim); the socket file is ours
  // to remove only once we listen on it.
  const unlock = (files: string[]) => {
    for (const p of [...files, `${path}.lock`]) {
      try {
        unlinkSync(p);
      } catch {
        // already gone, or not ours to remove after a privilege drop: the next owner replaces it
      }
    }
    closeSync(lock);
  };
  try {
    const existing = lstatSync(path, { throwIfNoEntry: false });
    if (existing && !existing.isSocket()) throw new Error(`${path} exists and is not a socket; remove it or choose another control socket (--control)`);
    // A daemon from before the lock existed would still answer there.
    if (existing && (await isAlive(path))) throw new ControlSocketBusyError(path);
    if (existing) unlinkSync(path); // its owner is gone: we hold the lock
  } catch (e) {
    unlock([]);
    throw e;
  }
  /** Each open stream: its connection, who asked, for what, and what stops it. */
  const streams = new Map<Socket, { peer: ControlPeer | null; command: string; stream: { close(): void } }>();
  const refusal = (cmd: string, peer: ControlPeer | null): string | null => {
    if (!access || mayRunRestricted(peer)) return null;
    const what = access.ownerOnly?.(cmd);
    if (what) return ownerOnlyRefusal(cmd, what, peer);
    return access.restricted(cmd) && !access.forGroup ? restrictedRefusal(cmd, peer) : null;
  };
  const refused = (cmd: string, peer: ControlPeer | null) => refusal(cmd, peer) !== null;
  const maxStreams = limits.maxStreams ?? CONTROL_MAX_STREAMS;
  const server = createServer((sock) => {
    const peer = peerOf(sock);
    let buf = '';
    let answered = false;
    // one short command, one answer: a client that says nothing is let go
    sock.setTimeout(limits.idleMs, () => sock.destroy());
    sock.setEncoding('utf8');
    sock.on('data', (d) => {
      // a stream's client has nothing more to say; whatever it sends is not a command
      if (answered) return;
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 4096) sock.destroy();
        return;
      }
      const cmd = buf.slice(0, nl).trim();
      answered = true;
      let reply: unknown;
      try {
        const no = refusal(cmd, peer);
        reply = no !== null ? { error: no } : handler(cmd, peer);
      } catch (e) {
        reply = { error: (e as Error).message };
      }
      if (reply instanceof ControlStream) {
        if (streams.size >= maxStreams) {
          sock.end(`${JSON.stringify({ error: `${maxStreams} traces already run on this daemon; stop one (they end when their client exits)` })}\n`);
          return;
        }
        sock.setTimeout(0);
        const stream = reply.open(sock);
        streams.set(sock, { peer, command: cmd, stream });
        // (unless accessChanged already stopped it)
        sock.once('close', () => streams.delete(sock) && stream.close());
        return;
      }
      sock.end(`${JSON.stringify(reply)}\n`);
    });
    sock.on('error', () => undefined);
  });
  server.maxConnections = limits.maxConnections;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket file gets its mode when bind() creates it (bind runs inside listen(), at
      // once), so there is no moment when it is more open than asked.
      const umask = process.umask(0o777 & ~mode);
      try {
        server.listen(path, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    // No chmod: bind gave the mode. lchown, and a check of what is at the path after: whoever
    // can write the directory could have put a symlink there since bind, and chown would follow it.
    if (gid !== undefined) lchownSync(path, process.getuid?.() ?? 0, gid);
    const st = lstatSync(path);
    if (!st.isSocket() || (st.mode & 0o777) !== mode || st.uid !== (process.getuid?.() ?? 0)) {
      throw new Error(`${path} was replaced while the control socket was being set up (another user can write ${dirname(path)}?); use a directory only root or this user can write`);
    }
  } catch (e) {
    server.close();
    unlock([path]);
    throw e;
  }
  return {
    path,
    accessChanged: () => {
      for (const [sock, { peer, command, stream }] of streams) {
        if (!refused(command, peer)) continue;
        streams.delete(sock);
        stream.close();
        sock.end(`${JSON.stringify({ end: `a reload narrowed who may run it: ${refusal(command, peer)}` })}\n`);
      }
    },
    close: async () => {
      const closed = new Promise((r) => server.close(r));
      // server.close waits for every connection: streams are told and let go, a client that
      // does not read gets a moment, then is cut off
      for (const s of streams.keys()) {
        s.end(`${JSON.stringify({ end: 'daemon stopping' })}\n`);
        s.setTimeout(1000, () => s.destroy());
      }
      await closed;
      unlock([path]);
    },
  };
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
      reject(new Error(unreachableMessage(path, e)));
    });
  });
}

/**
 * Why a client could not connect to `path`, and what to do, in one line: a path that is no socket
 * at all is named for what it is, since no daemon could ever answer there.
 */
export function unreachableMessage(path: string, e: NodeJS.ErrnoException): string {
  let st;
  try {
    st = statSync(path);
  } catch {
    // nothing there (or not ours to look at): the connect error says which
  }
  const what = st === undefined || st.isSocket() ? null : st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'a device or FIFO';
  if (what !== null) {
    return `cannot reach the daemon at ${path}: it is ${what}, not a control socket; give the daemon's socket (--control /run/tun6in4/NAME.sock, the file's control.socket)`;
  }
  const fix =
    e.code === 'ENOENT'
      ? 'no daemon listens there: start one (tun6in4 up -c FILE, or tun6in4 run), or give the socket it uses (--control PATH)'
      : e.code === 'ECONNREFUSED'
        ? 'the socket is left from a daemon that is gone: start it again (tun6in4 up -c FILE, or tun6in4 run)'
        : e.code === 'EACCES' || e.code === 'EPERM'
          ? 'this user may not connect: run as root (sudo) or as a member of the socket\'s group (control.group)'
          : '';
  return `cannot reach the daemon at ${path}: ${e.code ?? e.message}${fix ? `; ${fix}` : ''}`;
}

/** The network namespace of a process (`net:[4026531840]`), or null if we may not see it. */
function netnsOf(pid: number | 'self'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

/**
 * Where a daemon's network namespace can be entered: `netns NAME` when `ip netns` named it (its
 * file under /run/netns is the same namespace), else `pid N`.
 */
function namespaceName(pid: number | null): string {
  if (pid === null) return 'owner unknown';
  try {
    const ino = statSync(`/proc/${pid}/ns/net`).ino;
    for (const n of readdirSync('/run/netns')) {
      try {
        if (statSync(join('/run/netns', n)).ino === ino) return `netns ${n}`;
      } catch {
        // removed meanwhile
      }
    }
  } catch {
    // no /run/netns, or the process is gone
  }
  return `pid ${pid}`;
}

/** The pid of the daemon that owns `path`, from the lock file it holds. */
function ownerOf(path: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(`${path}.lock`, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * The socket `tun6in4 status` should ask. /run is shared by every network namespace, so the
 * daemons considered are the live ones of the caller's namespace (those whose namespace we may
 * not see count as ours): `wanted` if it is one of them, else the only one there is (a daemon
 * that found the default taken answers on a per-process socket beside it). With none here but
 * some elsewhere, the error says where they are. `explicit`: the user named the socket; ask it.
 */
export async function findControlSocket(wanted: string, explicit = false): Promise<string> {
  if (explicit) return wanted;
  let names: string[] = [];
  try {
    names = readdirSync(dirname(wanted)).filter((n) => n.endsWith('.sock'));
  } catch {
    return wanted;
  }
  const candidates = [...new Set([wanted, ...names.map((n) => join(dirname(wanted), n))])];
  const mine = netnsOf('self');
  const here: string[] = [];
  const elsewhere: string[] = [];
  for (const p of candidates) {
    if (!existsSync(p) || !(await isAlive(p))) continue;
    const pid = ownerOf(p);
    const ns = pid === null ? null : netnsOf(pid);
    (ns === null || mine === null || ns === mine ? here : elsewhere).push(p);
  }
  if (here.includes(wanted)) return wanted;
  if (here.length === 1) return here[0];
  if (here.length > 1) throw new Error(`no daemon at ${wanted}, and several in this network namespace: ${here.join(', ')}; pick one with --control`);
  if (elsewhere.length) {
    const where = elsewhere.map((p) => ({ p, ns: namespaceName(ownerOf(p)) }));
    const named = where.find((w) => w.ns.startsWith('netns '));
    const how = named ? `ip netns exec ${named.ns.slice(6)} tun6in4 status` : 'nsenter --net=/proc/PID/ns/net tun6in4 status';
    throw new Error(
      `no tun6in4 runs in this network namespace; ${elsewhere.length} in other namespaces answer on ${where.map((w) => `${w.p} (${w.ns})`).join(', ')}: run status inside that namespace (${how}), or give --control PATH`,
    );
  }
  return wanted;
}
