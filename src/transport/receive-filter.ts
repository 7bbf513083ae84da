/**
 * Which protocol-41 packets the kernel hands a raw socket. Every raw socket gets its own copy of
 * each packet to its address, so two processes with 6in4 tunnels on one IPv4 (two daemons in one
 * namespace: the tun6in4@ layout) each read, and counted as rx_wrong_outer_source, the other's
 * traffic. The classic BPF program built here (SO_ATTACH_FILTER; the addon only attaches it)
 * keeps, for tunnels that are all 6in4, packets from one of their remotes, and packets from
 * anyone else to an inner destination one of them owns, so R14 still counts a spoofed source or a
 * broker sending from an address it was not configured with. Another tunnel's packet, from its
 * remote to its own prefixes, is dropped in the kernel before it is copied to us. 6to4 and 6rd
 * take packets from any IPv4: with such a tunnel on the socket nothing is filtered.
 *
 * (connect() would make the kernel match the source too, but a packet no raw socket matches then
 * draws an ICMPv4 protocol unreachable where sit is absent, against R14's silent drop; a filter
 * drops after the match.) ICMPv4 errors bypass socket filters: one about another tunnel's packet
 * still reaches the error queue, where the quote check counts it as icmp4_not_ours.
 */
import type { Ipv6Prefix } from '../packet/address.js';

export interface ReceiveOwner {
  /** 6in4: the remote whose packets are the tunnel's; 0: any IPv4 may send it packets (6to4, 6rd). */
  remote: number;
  /** Inner destinations the tunnel owns (its link prefix, its routed prefixes); default none. */
  innerDestinations?: readonly Ipv6Prefix[];
}

/** Ints per instruction: code, jt, jf, k (struct sock_filter). */
export const BPF_INSN_INTS = 4;

// linux/filter.h, classic BPF
const LD_W_ABS = 0x20;
const LD_W_IND = 0x40;
const LDX_B_MSH = 0xb1; // X = 4 * (P[k] & 0xf): the IPv4 header length
const ALU_AND_K = 0x54;
const JEQ_K = 0x15;
const RET_K = 0x06;
const ACCEPT = -1; // the whole packet (k = 0xffffffff)
const IPV4_SRC = 12;
/** The inner destination: 24 bytes into the IPv6 header, which follows the IPv4 header (X). */
const INNER_DST = 24;
/** The kernel's limit on a classic program (BPF_MAXINSNS): a process with more tunnels than fit goes unfiltered. */
const MAX_INSNS = 4096;

/** The filter for the tunnels on one socket, BPF_INSN_INTS ints an instruction; null: take everything. */
export function receiveFilter(owners: readonly ReceiveOwner[]): Int32Array | null {
  if (owners.length === 0 || owners.some((o) => o.remote === 0)) return null;
  const prog: number[][] = [[LD_W_ABS, 0, 0, IPV4_SRC]];
  for (const remote of new Set(owners.map((o) => o.remote | 0))) prog.push([JEQ_K, 0, 1, remote], [RET_K, 0, 0, ACCEPT]);
  prog.push([LDX_B_MSH, 0, 0, 0]);
  for (const p of owners.flatMap((o) => o.innerDestinations ?? [])) {
    // one block per prefix: compare its words; a mismatch jumps past the block's accept
    const block: number[][] = [];
    for (let bit = 0; bit < p.len; bit += 32) {
      const w = bit / 32;
      const bits = Math.min(32, p.len - bit);
      const mask = bits === 32 ? -1 : ~((1 << (32 - bits)) - 1);
      block.push([LD_W_IND, 0, 0, INNER_DST + 4 * w]);
      if (bits < 32) block.push([ALU_AND_K, 0, 0, mask]);
      block.push([JEQ_K, 0, -1, p.addr.readInt32BE(4 * w) & mask]);
    }
    block.push([RET_K, 0, 0, ACCEPT]);
    block.forEach((insn, i) => {
      if (insn[2] === -1) insn[2] = block.length - 1 - i; // to the instruction after the accept
    });
    prog.push(...block);
  }
  prog.push([RET_K, 0, 0, 0]);
  return prog.length > MAX_INSNS ? null : Int32Array.from(prog.flat());
}
