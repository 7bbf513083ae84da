/** Loads the native addon (native/) and types what it exports. */
import { createRequire } from 'node:module';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PacketBatch } from './batch.js';

export interface NativePoller {
  /** Waits for POLL_READABLE and/or POLL_WRITABLE (default readable); again: changes what it waits for. */
  start(events?: number): void;
  stop(): void;
  close(): void;
}

/**
 * The addon's exports (native/module.cc lists them). Calls move packets between fds and
 * caller-owned buffers; every decision about a packet is made in TypeScript.
 */
export interface NativeAddon {
  /**
   * Opens (creating) a TUN device. `offloadFlags` (TUN_F_* bits; 0, the default, is none) turns on
   * IFF_VNET_HDR and asks TUNSETOFFLOAD for them; a kernel that refuses them throws an error
   * naming the flags (message `ioctl TUNSETOFFLOAD 0x45 (CSUM|TSO6|USO6): …`, `flags`, `errno`),
   * so a caller can try fewer.
   */
  openTun(name: string, nonBlocking?: boolean, offloadFlags?: number): { fd: number; name: string };
  /** `sendOnly`: receives nothing (a drop-all filter) and queues no errors; for sending with other socket options. */
  openRawSocket(localAddr: number, pmtuDiscover: number, bufferBytes: number, sendOnly?: boolean): number;
  tunRead(fd: number, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, ring?: boolean): number;
  tunWrite(fd: number, arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array, ring?: boolean): number;
  /**
   * Frames gathered from pieces of `arena`: entries [0, n) of offs/lens laid end to end, frame f
   * the next pieces[f] of them (pieces stop at a 0), one writev each; errs[f] per frame; returns
   * frames written. Absent from an addon built before it (OffloadTun then copies merged frames).
   */
  tunWritev?(fd: number, arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array, ring: boolean, pieces: Int32Array): number;
  /**
   * Fixes how sendBatch sends on this socket, once, when it opens: to which UDP `port` (0 on a raw
   * socket); packets without DF through `dfClearFd`, or with `toggleDf` by switching this socket's
   * own option around them; `checksumGsoOnly`: the socket sends zero checksums, but the GSO
   * messages go with them (the kernel refuses GSO without); `stats[0]` counts the GSO messages the
   * path refused as a whole and that went again packet by packet. closeFd forgets it.
   */
  setSendOptions(fd: number, options: { port?: number; dfClearFd?: number; toggleDf?: boolean; checksumGsoOnly?: boolean; stats?: Int32Array }): void;
  /**
   * Sends the batch's packets 0..n-1 to their dsts with the TTL/TOS/DF of their fields
   * (packOuterFields), as the socket's send options say; errs[i] gets 0 or an errno. `runs` (UDP
   * only) groups consecutive packets into messages covering the batch, a run of several going as
   * one UDP_SEGMENT (GSO) send (see gsoRuns); without runs every packet is its own message.
   */
  sendBatch(fd: number, batch: PacketBatch, n: number, runs?: Int32Array): number;
  /** Boundary crossings so far: calls into the addon, its poller callbacks and Poller methods. */
  crossings(): number;
  rawRecv(fd: number, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number;
  /** The error queue of a raw or UDP socket: the quoted payload per slot, ERROR_INFO_STRIDE ints per error. */
  recvErrors(fd: number, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number;
  /** A classic BPF program (code, jt, jf, k per instruction) in place of the socket's filter; null removes it. */
  setReceiveFilter(fd: number, prog: Int32Array | null): void;
  /** A UDP socket bound to local:port for Foo-over-UDP; says whether UDP GSO and GRO are available on it. */
  openUdpSocket(localAddr: number, port: number, pmtuDiscover: number, bufferBytes: number, checksum?: boolean, gro?: boolean): { fd: number; gso: boolean; gro: boolean };
  /** Datagrams into slots; info gets UDP_INFO_STRIDE ints each: source address, source port, TOS, GRO segment size. */
  udpRecv(fd: number, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number;
  /**
   * Becomes uid/gid (no supplementary groups) keeping only CAP_NET_ADMIN and CAP_NET_RAW, also as
   * ambient capabilities for the `ip` children; bounds every other capability and sets no_new_privs.
   */
  dropPrivileges(uid: number, gid: number): void;
  /** Takes an exclusive flock on the file of `fd` without waiting: false when another process holds one. */
  flock(fd: number): boolean;
  /** Closes an fd the addon opened (Deno's fs.closeSync refuses fds it did not open). */
  closeFd(fd: number): void;
  /**
   * One datagram to an AF_UNIX socket (systemd's NOTIFY_SOCKET): a path, or `@name` in the
   * abstract namespace. Never blocks; throws with `errno` (EAGAIN when the receiver's queue is full).
   */
  notifySocket(address: string, message: string): void;
  /** SO_PEERCRED of a connected AF_UNIX socket (native/peercred.cc); absent from an addon built before it. */
  peerCredentials?(fd: number): { pid: number; uid: number; gid: number };
  /**
   * A raw ICMPv6 socket on one LAN interface for router advertisements (native/icmp6.cc):
   * non-blocking, hop limit 255, joined to ff02::2, receiving Router Solicitations only.
   */
  openIcmp6Socket(ifname: string): { fd: number; ifindex: number };
  /** One message into `buf`; `src` gets the sender, meta[0] the hop limit it arrived with. -1 when none waits. */
  icmp6Recv(fd: number, buf: Uint8Array, src: Uint8Array, meta: Int32Array): number;
  /** One message to `dst` (scope: `ifindex`); the kernel picks the link-local source and fills the checksum. */
  icmp6Send(fd: number, buf: Uint8Array, len: number, dst: Uint8Array, ifindex: number): void;
  /**
   * A NETLINK_ROUTE socket (native/netlink.cc): non-blocking, close-on-exec, extended and capped
   * ACKs asked for. Absent from an addon built before it (interface set-up then runs `ip`).
   */
  openNetlinkRoute?(): number;
  /**
   * Sends `request[0, length)` and reads the kernel's answers into `reply` until one ends request
   * `seq` (its NLMSG_ERROR or NLMSG_DONE); returns the bytes of answers, each datagram starting at
   * a 4-byte boundary. Throws with `errno`: ETIMEDOUT after `timeoutMs` without that answer,
   * EMSGSIZE when an answer does not fit in what is left of `reply`.
   */
  netlinkRequest?(fd: number, request: Uint8Array, length: number, seq: number, reply: Uint8Array, timeoutMs: number): number;
  /**
   * The one poll handle of an fd; `cb` gets POLL_* bits, or a negative status (POLLERR: an error is
   * queued). After loadNative() this is the readiness `readiness()` chose: uv_poll on Node's loop,
   * or the addon's poll thread.
   */
  Poller: new (fd: number, cb: (events: number) => void) => NativePoller;
  /** The same over the addon's own epoll thread, waking JS through a threadsafe function; needs no libuv. */
  ThreadPoller: new (fd: number, cb: (events: number) => void) => NativePoller;
  POLL_READABLE: number;
  POLL_WRITABLE: number;
  /**
   * Layouts the calls share with TypeScript, exported so a test can hold each TS copy to them
   * (test/native.test.ts).
   */
  MAX_BATCH: number;
  /** PacketBatch.columns: how many columns, and each one's index (BatchColumn). */
  BATCH_COLUMNS: number;
  BATCH_OFFS: number;
  BATCH_LENS: number;
  BATCH_DSTS: number;
  BATCH_FIELDS: number;
  BATCH_ERRS: number;
  /** The bit layout of one `fields` entry (packOuterFields): TTL and TOS bytes at these shifts, DF this bit. */
  OUTER_TTL_SHIFT: number;
  OUTER_TOS_SHIFT: number;
  OUTER_DF: number;
  /** Ints per error in recvErrors' `info` (ERROR_INFO_STRIDE) and per datagram in udpRecv's (UDP_INFO_STRIDE). */
  ERROR_INFO_STRIDE: number;
  UDP_INFO_STRIDE: number;
  /** What sendBatch checks a GSO run against (src/transport/gso.ts). */
  GSO_MAX_SEGMENTS: number;
  GSO_MAX_BYTES: number;
  /** linux/if_tun.h TUNSETOFFLOAD flags for openTun (TunOffload holds the same values). */
  TUN_F_CSUM: number;
  TUN_F_TSO4: number;
  TUN_F_TSO6: number;
  TUN_F_TSO_ECN: number;
  TUN_F_UFO: number;
  TUN_F_USO4: number;
  TUN_F_USO6: number;
  /** Built with liburing. */
  IO_URING_COMPILED: boolean;
  /** True if this thread has an io_uring for TUN reads and writes (built with liburing, kernel allows it). */
  ioUringAvailable(): boolean;
  /** Why this thread's ring was given up at run time (the read()/write() loops took over), or null. */
  ioUringFallback(): string | null;
}

/**
 * EBADFD (asm-generic/errno.h), not in os.constants: what a TUN fd returns once its interface
 * was deleted underneath it.
 */
export const EBADFD = 77;

/** linux/in.h IP_PMTUDISC_*: DONT clears DF; WANT sets DF but fragments above the known path MTU. */
export const IP_PMTUDISC_DONT = 0;
export const IP_PMTUDISC_WANT = 1;

/** Where the addon's builds live: `build/Release` (built here) and `prebuilds/<platform>-<arch>/`. */
const NATIVE_DIR = fileURLToPath(new URL('../../native/', import.meta.url));

/** The one command that builds the addon from source in the user's own project. */
export const BUILD_NATIVE_COMMAND = 'npx tun6in4 build-native';
const BUILD_NATIVE_FIX = `${BUILD_NATIVE_COMMAND} (builds it from source with this host's g++, make, python3 and Node headers; downloads nothing)`;

/** Which addon binary was loaded, and what it can do. */
export interface NativeAddonInfo {
  path: string;
  /** `prebuilt`: shipped in the package; `local`: built on this host (`native/build`). */
  build: 'prebuilt' | 'local';
  /** Built with liburing (statically linked in the prebuilds). Whether the kernel allows it is `ioUringAvailable()`. */
  ioUringCompiled: boolean;
  /** How fds are watched (see `readiness()`). */
  readiness: Readiness;
}

/**
 * `uv_poll`: a libuv poll handle on the main loop (Node; the fastest). `thread`: the addon's epoll
 * thread waking JS through a threadsafe function, for runtimes whose Node-API has no libuv (Bun
 * aborts on uv_poll_init).
 */
export type Readiness = 'uv_poll' | 'thread';

/** The variable that forces one readiness path, e.g. to test the poll thread under Node. */
export const READINESS_ENV = 'TUN6IN4_READINESS';

/** The readiness this runtime gets: `TUN6IN4_READINESS` if set, else uv_poll on Node and the poll thread elsewhere. */
export function readiness(env: NodeJS.ProcessEnv = process.env): Readiness {
  const forced = env[READINESS_ENV];
  if (forced === 'uv_poll' || forced === 'thread') return forced;
  if (forced) throw new Error(`${READINESS_ENV}=${forced} is not valid; use uv_poll or thread (or leave it unset: uv_poll on Node, thread elsewhere)`);
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  return process.versions.bun || process.versions.deno || g.Bun || g.Deno ? 'thread' : 'uv_poll';
}

/**
 * The addon cannot be loaded on this host: none was built or shipped for it, or the one found
 * does not load. The packet layer, `Encapsulator` and the engine over fakes never need it.
 */
export class NativeAddonError extends Error {
  readonly code: 'NATIVE_NOT_FOUND' | 'NATIVE_LOAD_FAILED';
  /** What is wrong, without the fix. */
  readonly problem: string;
  /** The command that fixes it, in the user's project. */
  readonly fix = BUILD_NATIVE_FIX;

  constructor(
    reason: 'not-found' | 'load-failed',
    /** `linux-x64 glibc 2.36`, as this host is. */
    readonly target: string,
    /** The directory searched for `build/Release/*.node` and `prebuilds/<platform>-<arch>/*.node`. */
    readonly searched: string,
    override readonly cause?: unknown,
  ) {
    const problem =
      reason === 'not-found'
        ? `no native addon for ${target}: the package ships prebuilt binaries for linux-x64 and linux-arm64 (glibc) only, and none was built here (looked in ${searched}build/Release and ${searched}prebuilds/)`
        : `the native addon for ${target} does not load: ${firstLine(cause)}`;
    super(`${problem}; fix: ${BUILD_NATIVE_FIX}`);
    this.name = 'NativeAddonError';
    this.code = reason === 'not-found' ? 'NATIVE_NOT_FOUND' : 'NATIVE_LOAD_FAILED';
    this.problem = problem;
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}

/** `linux-x64 glibc 2.36`, or `linux-x64 non-glibc (musl?)`: what a prebuild has to match. */
function hostTarget(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const libc = header?.glibcVersionRuntime ? `glibc ${header.glibcVersionRuntime}` : 'non-glibc (musl?)';
  return `${process.platform}-${process.arch} ${libc}`;
}

let addon: NativeAddon | undefined;
let loaded: NativeAddonInfo | undefined;

/** Loads the addon on first use (a local build first, else the matching prebuild); throws NativeAddonError. */
export function loadNative(): NativeAddon {
  if (addon) return addon;
  const how = readiness();
  const require = createRequire(import.meta.url);
  const gypBuild = require('node-gyp-build') as { path(dir: string): string };
  let path: string;
  try {
    path = gypBuild.path(NATIVE_DIR);
  } catch (e) {
    throw new NativeAddonError('not-found', hostTarget(), NATIVE_DIR, e);
  }
  try {
    // The addon's exports object comes in dictionary mode (its properties are defined from C++),
    // so every `loadNative().f(...)` on the data path would be a dictionary lookup; a spread copy
    // has fast properties, which optimised code loads inline.
    addon = { ...(require(path) as NativeAddon) };
  } catch (e) {
    throw new NativeAddonError('load-failed', hostTarget(), NATIVE_DIR, e);
  }
  // Every watcher (FdEndpoint, which every socket and the TUN extend) makes `new native.Poller`: the choice is made here, once.
  if (how === 'thread') {
    if (!addon.ThreadPoller) throw new NativeAddonError('load-failed', hostTarget(), NATIVE_DIR, new Error(`${path} predates the poll thread this runtime needs`));
    addon.Poller = addon.ThreadPoller;
  }
  loaded = { path, build: path.includes(`${sep}prebuilds${sep}`) ? 'prebuilt' : 'local', ioUringCompiled: addon.IO_URING_COMPILED, readiness: how };
  return addon;
}

/** Loads the addon if need be and says which build it is (for `doctor`). */
export function nativeAddonInfo(): NativeAddonInfo {
  loadNative();
  return loaded!;
}

/** The directory holding the addon's sources, its local build and the prebuilds. */
export function nativeDir(): string {
  return NATIVE_DIR;
}
