/**
 * The Linux TUN device over the native addon: TUNSETIFF, reads and writes in batches. Opened with
 * offload, its reads and writes are frames with a virtio_net_hdr in front: wrap it in OffloadTun.
 */
import { constants as osConstants } from 'node:os';
import type { PacketBatch } from '../io/batch.js';
import { FdEndpoint } from '../io/fd-endpoint.js';
import { loadNative } from '../io/native.js';
import type { TunDevice } from './device.js';

/**
 * TUNSETOFFLOAD flags (linux/if_tun.h TUN_F_*; USO4/USO6 from Linux 6.2): what the kernel may
 * hand a TUN unsegmented or without a checksum. The addon exports the same values
 * (test/native.test.ts checks they agree).
 */
export const TunOffload = { CSUM: 0x01, TSO4: 0x02, TSO6: 0x04, TSO_ECN: 0x08, UFO: 0x10, USO4: 0x20, USO6: 0x40 } as const;
/** IPv6 TCP super-packets with partial checksums, which OffloadTun segments; every kernel we run on has them. */
export const TUN_OFFLOAD_DEFAULT = TunOffload.CSUM | TunOffload.TSO6;
/**
 * What `offload: true` asks for first: UDP super-packets too (Linux ≥ 6.2; the kernel takes USO4
 * and USO6 only together). An older kernel refuses with EINVAL, and TUN_OFFLOAD_DEFAULT is used.
 */
export const TUN_OFFLOAD_UDP = TUN_OFFLOAD_DEFAULT | TunOffload.USO4 | TunOffload.USO6;

/**
 * A read after one that found fewer packets than this goes through read() rather than the ring:
 * a ring read queues a read per slot (256), and for a trickle (a ping, a request) the kernel then
 * answers 255 of them EAGAIN, which costs more than the read() and the one EAGAIN of the plain
 * path. A stream keeps finding full batches and stays on the ring.
 */
const RING_MIN_PACKETS = 8;

export class LinuxTun extends FdEndpoint implements TunDevice {
  /** Packets the last read found. */
  private lastRead = 0;

  private constructor(
    fd: number,
    readonly name: string,
    /** The TUNSETOFFLOAD flags the kernel took (0: no offload, frames without a virtio_net_hdr). */
    readonly offloadFlags: number,
    private readonly ringWanted: boolean,
  ) {
    super(fd);
    const native = loadNative();
    const writev = native.tunWritev;
    if (writev) this.writeFrames = (b, entries, pieces) => writev(this.fd, b.arena, b.offs, b.lens, entries, b.errs, this.ringWanted, pieces);
  }

  /** Frames gathered from pieces (TunDevice.writeFrames); absent where the addon predates it. */
  readonly writeFrames?: (b: PacketBatch, entries: number, pieces: Int32Array) => number;

  /** Frames carry a virtio_net_hdr: wrap the device in OffloadTun. */
  get offload(): boolean {
    return this.offloadFlags !== 0;
  }

  /** The kernel hands over and takes UDP super-packets (OffloadTun's `udp` option). */
  get udpOffload(): boolean {
    return (this.offloadFlags & TunOffload.USO6) !== 0;
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
   * `offload`: true asks for TUN_OFFLOAD_UDP, and TUN_OFFLOAD_DEFAULT where the kernel refuses
   * UDP offload; a number asks for exactly those TunOffload flags, and a kernel that refuses them
   * throws (the error names the flags and has `flags` and `errno`).
   */
  static open(name: string, offload: boolean | number = false, ioUring = true): LinuxTun {
    const native = loadNative();
    let flags = offload === true ? TUN_OFFLOAD_UDP : offload === false ? 0 : offload;
    let opened: { fd: number; name: string };
    try {
      opened = native.openTun(name, true, flags);
    } catch (e) {
      if (offload !== true || (e as { errno?: number }).errno !== osConstants.errno.EINVAL) throw e;
      flags = TUN_OFFLOAD_DEFAULT;
      opened = native.openTun(name, true, flags);
    }
    return new LinuxTun(opened.fd, opened.name, flags, ioUring && native.ioUringAvailable());
  }

  holding(): boolean {
    return false;
  }

  read(b: PacketBatch, max: number): number {
    if (max <= 0) return 0; // the addon refuses a read into no slot
    const n = loadNative().tunRead(this.fd, b.arena, b.slotSize, b.headroom, max, b.lens, this.ringWanted && this.lastRead >= RING_MIN_PACKETS);
    this.lastRead = n;
    return n;
  }

  write(b: PacketBatch, n: number): number {
    return loadNative().tunWrite(this.fd, b.arena, b.offs, b.lens, n, b.errs, this.ringWanted);
  }
}
