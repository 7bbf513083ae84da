/**
 * The two packet endpoints the engine drives, as small batch interfaces (after wireguard-go's
 * tun.Device and conn.Bind). Every call moves a batch between the device and slots of a
 * caller-owned arena: packet i lives at arena[i * slotSize + headroom], or at offs[i] for writes.
 */

/** Room in front of every packet: the outer header on TX, an ICMPv6 error built in place on both sides. */
export const SLOT_HEADROOM = 64;
/** A whole reassembled IPv4 packet (R06) fits a slot. */
export const SLOT_SIZE = SLOT_HEADROOM + 65536;
/** The most packets one call may move: the addon's kMaxBatch (test/native.test.ts checks they agree). */
export const MAX_BATCH = 256;

export interface TunDevice {
  readonly name: string;
  /** Frames carry a virtio_net_hdr and may be TCP super-packets (see src/packet/vnet.ts). */
  readonly offload?: boolean;
  /** Reads up to `max` IPv6 packets; returns how many (0: none waiting). */
  read(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number;
  /** Writes `n` IPv6 packets; errs[i] gets 0 or an errno. Returns how many were written. */
  write(arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number;
  /** Calls `cb` whenever the device may have packets to read. */
  watch(cb: () => void): void;
  close(): void;
}

/** Origins of an error-queue entry (linux/errqueue.h SO_EE_ORIGIN_*). */
export const ErrorOrigin = { Local: 1, Icmp: 2 } as const;
/** Stride of the `info` array filled by recvErrors: origin, type, code, info, original destination, errno. */
export const ERROR_INFO_STRIDE = 6;

export interface TunnelSocket {
  /**
   * Receives up to `max` whole IPv4 packets; returns how many, 0 when none is waiting, or a
   * negative errno when the socket reports an error (then read the error queue). lens[i] = -1
   * marks a packet larger than a slot.
   */
  recv(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number;
  /** Reads queued errors about packets we sent (see ERROR_INFO_STRIDE). */
  recvErrors(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number;
  /** Sends `n` outer packets as the encapsulator wrote them; errs[i] gets 0 or an errno. */
  send(arena: Buffer, offs: Int32Array, lens: Int32Array, n: number, errs: Int32Array): number;
  watch(cb: () => void): void;
  close(): void;
}
