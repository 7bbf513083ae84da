/** The TUN side the forwarding loop sees: batches of plain IPv6 packets, whatever the device does underneath. */
import type { PacketBatch } from '../io/batch.js';

export interface TunDevice {
  readonly name: string;
  /**
   * Reads up to `max` IPv6 packets into the batch, packet i in slot i (batch.slot(i)); returns how many
   * (0: none waiting). An offloading device hands back a TCP super-packet already cut into
   * segments, one per slot, so `max` may be reached by fewer reads.
   */
  read(batch: PacketBatch, max: number): number;
  /** Writes the batch's first `n` IPv6 packets (offs, lens); errs[i] gets 0 or an errno. Returns how many were written. */
  write(batch: PacketBatch, n: number): number;
  /**
   * Where the device can: writes frames gathered from pieces of the batch's arena, its first
   * `entries` offs/lens laid end to end, frame f the next pieces[f] of them (pieces stop at a 0);
   * errs[f] gets 0 or an errno per frame. Returns how many frames were written. OffloadTun
   * writes a merged frame this way, straight from the received segments.
   */
  writeFrames?(batch: PacketBatch, entries: number, pieces: Int32Array): number;
  /**
   * True while packets already taken from the kernel wait here for the next read() (an offloading
   * device cutting a super-packet): the fd will not say so, so the loop reads again before it sleeps.
   */
  holding(): boolean;
  /** Calls `cb` whenever the device may have packets to read. */
  watch(cb: () => void): void;
  /** No read callbacks until resume(): the loop holds packets it could not send yet (back-pressure). */
  pause(): void;
  resume(): void;
  close(): void;
}
