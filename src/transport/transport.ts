/**
 * The outer side the forwarding loop sees: one interface for every way of carrying IPv6 in IPv4
 * (raw protocol 41, Foo-over-UDP). The loop sends inner IPv6 packets with their outer
 * destination and fields; the transport (the kernel, really) writes the outer headers, and any
 * offload (UDP GSO/GRO) happens inside it.
 */

/** Origins of an error-queue entry (linux/errqueue.h SO_EE_ORIGIN_*). */
export const ErrorOrigin = { Local: 1, Icmp: 2 } as const;
/** Ints per entry of a batch's `info`, filled by recvErrors (io/batch.ts). */
export { ERROR_INFO_STRIDE } from '../io/batch.js';

import type { PacketBatch } from '../io/batch.js';
import type { ReceiveOwner } from './receive-filter.js';

export interface OuterTransport {
  /**
   * Receives up to `max` whole IPv4 packets carrying IPv6 into the batch's slots (protocol 41; a
   * UDP transport gives each payload an IPv4 header of protocol 41 with the datagram's addresses
   * and TOS, so the decapsulator sees one format); returns how many, 0 when none is waiting, or a
   * negative errno when the socket reports an error (then read the error queue). lens[i] = -1
   * marks a packet larger than a slot.
   */
  recv(batch: PacketBatch, max: number): number;
  /** Reads queued errors about packets we sent into the batch's `info` (ERROR_INFO_STRIDE each); slot i gets the quoted inner packet. */
  recvErrors(batch: PacketBatch, max: number): number;
  /**
   * Sends the batch's first `n` inner IPv6 packets, packet i at arena[offs[i], +lens[i]) to the
   * IPv4 dsts[i] with the outer TTL, TOS and DF of fields[i] (packOuterFields); errs[i] gets 0 or
   * an errno. Returns how many were sent. When the socket is full, the unsent rest of the batch
   * gets EAGAIN, in order, without waiting: send them again after watchWritable calls back.
   */
  send(batch: PacketBatch, n: number): number;
  /**
   * True while packets already taken from the socket wait here for the next recv() (GRO-split
   * datagrams, a shared socket's queue): the fd will not say so, so the loop reads again before it sleeps.
   */
  holding(): boolean;
  /**
   * Calls `cb` whenever packets (or queued errors) may be waiting. `errorQueued` is false when the
   * wake-up said no error is queued on the socket (no POLLERR), so the loop need not read the
   * error queue; true or absent, it may be.
   */
  watch(cb: (errorQueued?: boolean) => void): void;
  /**
   * Optional: from now on the kernel hands this transport only what these tunnels may own
   * (receive-filter.ts). A socket other processes cannot share (a bound UDP port) needs none.
   */
  receiveOnlyFor?(owners: readonly ReceiveOwner[]): void;
  /** Calls `cb` once, when a send that met EAGAIN may succeed. */
  watchWritable(cb: () => void): void;
  close(): void;
}
