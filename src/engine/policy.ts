/**
 * What the forwarding loop asks of a tunnel's policy: a verdict for each packet each way and for
 * each ICMPv4 error, the counters it adds I/O drops to, and its own outer address. The
 * Encapsulator is one tunnel's policy; a table of many tunnels behind one TUN and one socket can
 * be another, and the loop does not change.
 */
import type { Counters } from '../encap/counters.js';
import type { TunnelMode } from '../encap/options.js';
import type { PacketResult } from '../encap/result.js';

export interface TunnelPolicy {
  /** The inner IPv6 packet buf[off, off+len) read from the TUN (ENCAP_HEADROOM free before it). */
  egress(buf: Buffer, off: number, len: number, out: PacketResult): PacketResult;
  /** The outer IPv4 packet buf[off, off+len) from the transport; `headerVerified`: the kernel checked its header. */
  decapsulate(buf: Buffer, off: number, len: number, out: PacketResult, headerVerified?: boolean): PacketResult;
  /** An ICMPv4 error about a packet sent to `origDst`, quoting its inner IPv6 packet at buf[io, io+ilen). */
  icmpv4Error(type: number, code: number, info: number, origDst: number, buf: Buffer, io: number, ilen: number, out: PacketResult): PacketResult;
  readonly counters: Counters;
  /** Our outer IPv4 address (unsigned), for traces. */
  readonly localAddress: number;
  /** 6to4 and 6rd talk to many remotes: the loop keeps a peer table for them. */
  readonly config: { readonly mode: TunnelMode };
}
