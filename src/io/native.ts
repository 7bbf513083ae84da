/** Loads the native addon (native/) and types what it exports. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface NativePoller {
  start(): void;
  stop(): void;
  close(): void;
}

export interface NativeAddon {
  openTun(name: string, nonBlocking?: boolean, offload?: boolean): { fd: number; name: string };
  openRawSocket(localAddr: number, pmtuDiscover: number, bufferBytes: number): number;
  tunRead(fd: number, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, ring?: boolean): number;
  tunWrite(fd: number, arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array, ring?: boolean): number;
  rawSend(fd: number, arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number;
  rawRecv(fd: number, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number;
  rawRecvErrors(fd: number, arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number;
  dropPrivileges(uid: number, gid: number): void;
  Poller: new (fd: number, cb: (events: number) => void) => NativePoller;
  MAX_BATCH: number;
  /** True if this thread has an io_uring for TUN reads and writes (built with liburing, kernel allows it). */
  ioUringAvailable(): boolean;
}

/**
 * EBADFD (asm-generic/errno.h), not in os.constants: what a TUN fd returns once its interface
 * was deleted underneath it.
 */
export const EBADFD = 77;

/** linux/in.h IP_PMTUDISC_*: DONT clears DF; WANT sets DF but fragments above the known path MTU. */
export const IP_PMTUDISC_DONT = 0;
export const IP_PMTUDISC_WANT = 1;

let addon: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (addon) return addon;
  const path = fileURLToPath(new URL('../../native/build/Release/tun6in4_native.node', import.meta.url));
  if (!existsSync(path)) {
    throw new Error(`the native addon is not built (${path}); run "npm run build:native" (npm test and npm run lab build it)`);
  }
  addon = createRequire(import.meta.url)(path) as NativeAddon;
  return addon;
}
