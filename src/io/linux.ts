/** The Linux implementations of TunDevice and TunnelSocket over the native addon. */
import { closeSync } from 'node:fs';
import { loadNative, IP_PMTUDISC_DONT, IP_PMTUDISC_WANT, type NativePoller } from './native.js';
import type { TunDevice, TunnelSocket } from './types.js';

/** An fd we own: readiness through a uv_poll on the main loop, and an idempotent close. */
abstract class FdEndpoint {
  private poller: NativePoller | null = null;
  private closed = false;

  protected constructor(readonly fd: number) {}

  watch(cb: () => void): void {
    this.poller?.close();
    this.poller = new (loadNative().Poller)(this.fd, () => cb());
    this.poller.start();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    this.poller = null;
    closeSync(this.fd);
  }
}

export class LinuxTun extends FdEndpoint implements TunDevice {
  private constructor(
    fd: number,
    readonly name: string,
    readonly offload: boolean,
    private readonly ringWanted: boolean,
  ) {
    super(fd);
  }

  /**
   * Batches of TUN reads and writes go through io_uring (one syscall a batch, not one a packet).
   * It can turn false at run time: the addon gives the ring up when the kernel refuses it (see
   * `ioUringFallback`) and carries on with read()/write() from the next packet.
   */
  get ioUring(): boolean {
    return this.ringWanted && loadNative().ioUringAvailable();
  }

  /** Why io_uring was given up while running ("io_uring TUN read: Invalid argument"), or null. */
  get ioUringFallback(): string | null {
    return this.ringWanted ? loadNative().ioUringFallback() : null;
  }

  /**
   * Opens (creating) a TUN device. A name ending in %d lets the kernel pick a free number.
   * TUNSETIFF attaches to an existing device of that name too: callers that must not touch an
   * existing interface check first (see src/engine/open.ts). Closing the last fd of a
   * non-persistent TUN deletes the interface and its routes.
   */
  static open(name: string, offload = false, ioUring = true): LinuxTun {
    const native = loadNative();
    const { fd, name: actual } = native.openTun(name, true, offload);
    return new LinuxTun(fd, actual, offload, ioUring && native.ioUringAvailable());
  }

  read(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    return loadNative().tunRead(this.fd, arena, slotSize, headroom, max, lens, this.ringWanted);
  }

  write(arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number {
    return loadNative().tunWrite(this.fd, arena, offs, lens, n, errs, this.ringWanted);
  }
}

export class LinuxRawSocket extends FdEndpoint implements TunnelSocket {
  private constructor(
    fd: number,
    /**
     * Dynamic mode: DF is a socket option, so packets the encapsulator wrote with DF clear (R07,
     * path MTU below 1300) leave through this second, send-only socket with discovery off.
     */
    private dfClearFd: number,
  ) {
    super(fd);
  }

  /** A protocol-41 raw socket bound to `local`; `pmtu` picks DF clear (static) or path MTU discovery (dynamic). */
  static open(local: number, pmtu: 'static' | 'dynamic', bufferBytes = 4 << 20): LinuxRawSocket {
    const native = loadNative();
    const fd = native.openRawSocket(local, pmtu === 'dynamic' ? IP_PMTUDISC_WANT : IP_PMTUDISC_DONT, bufferBytes);
    if (pmtu === 'static') return new LinuxRawSocket(fd, -1);
    try {
      return new LinuxRawSocket(fd, native.openRawSocket(local, IP_PMTUDISC_DONT, bufferBytes, true));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  override close(): void {
    super.close();
    if (this.dfClearFd >= 0) closeSync(this.dfClearFd);
    this.dfClearFd = -1;
  }

  recv(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    return loadNative().rawRecv(this.fd, arena, slotSize, headroom, max, lens);
  }

  recvErrors(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number {
    return loadNative().rawRecvErrors(this.fd, arena, slotSize, headroom, max, lens, info);
  }

  send(arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number {
    return loadNative().rawSend(this.fd, arena, offs, lens, n, errs, this.dfClearFd);
  }
}
