/**
 * The arena layout every batched call shares (after wireguard-go's tun.Device and conn.Bind):
 * a call moves a batch between an fd and slots of a caller-owned arena, packet i at
 * arena[i * slotSize + headroom] on reads, at offs[i] on writes. Every arena of the data path is
 * made here (slotArena), so each is a packet arena whose checksums run in SIMD.
 */
import { packetArena } from '../packet/arena.js';

/** Room in front of every packet: the outer header on TX, an ICMPv6 error built in place on both sides. */
export const SLOT_HEADROOM = 64;
/** A whole reassembled IPv4 packet (R06) fits a slot. */
export const SLOT_SIZE = SLOT_HEADROOM + 65536;
/** The most packets one call may move: the addon's kMaxBatch (test/native.test.ts checks they agree). */
export const MAX_BATCH = 256;

/**
 * A zero-filled arena of `slots` slots of `slotSize` bytes, for the life of its owner: a packet
 * arena (src/packet/arena.ts), so a checksum over a packet in it runs in WebAssembly SIMD.
 */
export function slotArena(slots: number, slotSize: number = SLOT_SIZE): Buffer {
  return packetArena(slots * slotSize);
}
