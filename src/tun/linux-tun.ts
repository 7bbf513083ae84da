/**
 * The Linux TUN device over the native addon: TUNSETIFF, reads and writes in batches. Opened with
 * offload, its reads and writes are frames with a virtio_net_hdr in front: wrap it in OffloadTun.
 */
import { FdEndpoint } from '../io/fd-endpoint.js';
import { loadNative } from '../io/native.js';
import type { TunDevice } from './device.js';

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
   * existing interface check first (see src/host/open.ts). Closing the last fd of a
   * non-persistent TUN deletes the interface and its routes.
   */
  static open(name: string, offload = false, ioUring = true): LinuxTun {
    const native = loadNative();
    const { fd, name: actual } = native.openTun(name, true, offload);
    return new LinuxTun(fd, actual, offload, ioUring && native.ioUringAvailable());
  }

  holding(): boolean {
    return false;
  }

  read(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    return loadNative().tunRead(this.fd, arena, slotSize, headroom, max, lens, this.ringWanted);
  }

  write(arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number {
    return loadNative().tunWrite(this.fd, arena, offs, lens, n, errs, this.ringWanted);
  }
}
