/**
 * The forwarding loop's policy for a broker: one TUN and one outer socket carry every tunnel of a
 * BrokerTable. A packet from the TUN finds its tunnel by its inner destination, one from the
 * network by its outer source; each then gets what a single tunnel gives it (MTU and Packet Too
 * Big, path MTU from ICMPv4 errors, TTL/TOS/ECN, MSS clamping) from the steps the Encapsulator
 * uses too (src/encap/steps.ts), with the tunnel's few numbers read from the table.
 */
import { Counters, Drop, Traffic } from '../encap/counters.js';
import { ENCAP_HEADROOM, tunnelMtuFromPath } from '../encap/encapsulator.js';
import { clampMss, mssForMtu } from '../encap/mss.js';
import { ICMP_BURST_DEFAULT, ICMP_RATE_DEFAULT, TOS_DEFAULT, TTL_DEFAULT, FOU_MTU_MAX, MTU_MAX } from '../encap/options.js';
import { CLOCK_EVERY, IPV4_MIN_MTU, PMTU_EXPIRES_MS } from '../encap/path-mtu.js';
import { type PacketResult, Verdict } from '../encap/result.js';
import { applyDecapEcn, errorToSenderInPlace, fragNeededFits, innerIpv6Length, outerFieldsFor, PASS, relayIcmpv4InPlace } from '../encap/steps.js';
import { monotonicMs, TokenBucket, type Clock } from '../encap/token-bucket.js';
import { ipv6Network, isBogusInnerSource, parseIpv4, parseIpv6Prefix } from '../packet/address.js';
import { checksum, checksumAdjust, ipv6PseudoHeaderSum } from '../packet/checksum.js';
import { Icmpv4Type, Icmpv4UnreachCode } from '../packet/icmpv4.js';
import { ICMPV6, ICMPV6_HOP_LIMIT, Icmpv6Type, Icmpv6UnreachCode } from '../packet/icmpv6.js';
import { checkIpv4, IPV4, Ipv4Error, ipv4AtS32, PROTO_ICMPV6, PROTO_IPV6 } from '../packet/ipv4.js';
import { checkIpv6, IPV6, IPV6_MIN_MTU } from '../packet/ipv6.js';
import { BrokerTable, TRAFFIC_STRIDE, TunnelTraffic } from './table.js';
import { BrokerTunnelError } from './tunnel.js';

export interface BrokerPolicyOptions {
  /** Our IPv4, which clients send to. */
  local: string;
  /** The prefixes routed into the TUN; every tunnel's prefixes lie in one. */
  pools: readonly string[];
  /** 'fou': the outer packets ride in UDP (28 bytes of headers, tunnel MTU at most 1472). */
  transport?: 'raw' | 'fou';
  /** Outer TTL (default 64) and TOS (default 0); 'inherit': from the inner packet. */
  ttl?: number | 'inherit';
  tos?: number | 'inherit';
  /** Clamp the MSS of TCP SYNs to each tunnel's MTU (default on: clients behind a narrow path are the common case). */
  clampMss?: boolean;
  /** 'dynamic' (default): DF set, path MTU per tunnel from ICMPv4 "fragmentation needed"; 'static': DF clear. */
  pmtu?: 'static' | 'dynamic';
  /** ICMPv6 errors we originate (Packet Too Big, relayed errors, no route): per second and burst, each kind its own bucket. */
  icmpRate?: number;
  icmpBurst?: number;
  clock?: Clock;
  counters?: Counters;
}

/** A tunnel's 16-byte interface id of the server address on its link: ::1. */
function isServerInterfaceId(buf: Uint8Array, a: number): boolean {
  return ipv4AtS32(buf, a + 8) === 0 && ipv4AtS32(buf, a + 12) === 1;
}

export class BrokerPolicy {
  readonly tunnels: BrokerTable;
  /** Totals over every tunnel, and what belongs to none (unknown outer source, no tunnel, malformed). */
  readonly counters: Counters;
  readonly config = { mode: '6in4' } as const;
  readonly localAddress: number;
  private readonly localS32: number;
  private readonly overhead: number;
  private readonly ttl: number;
  private readonly tos: number;
  private readonly clampMss: boolean;
  private readonly dynamicPmtu: boolean;
  private readonly ptbBucket: TokenBucket;
  private readonly relayBucket: TokenBucket;
  private readonly unreachableBucket: TokenBucket;
  private readonly clock: Clock;
  /** The clock as the data path last read it (once per CLOCK_EVERY path-MTU lookups), in an array so reading it boxes nothing. */
  private readonly now = new Float64Array(1);
  private lookupsToClock = 0;
  /** The source of ICMPv6 errors about a destination no tunnel holds: the first pool's ::1. */
  private readonly poolAddress: Buffer;
  /** Scratch: the server address (link ::1) of the tunnel an error is about. */
  private readonly serverAddress = Buffer.alloc(16);

  constructor(options: BrokerPolicyOptions) {
    const local = parseIpv4(options.local);
    if (local === null || local === 0) throw new BrokerTunnelError('local', `${JSON.stringify(options.local)} is not an IPv4 address; give the address clients send to`);
    if (options.pools.length === 0) throw new BrokerTunnelError('pools', 'give at least one prefix routed into the TUN (e.g. 2001:db8:100::/40)');
    const fou = options.transport === 'fou';
    this.tunnels = new BrokerTable({ pools: options.pools, maxMtu: fou ? FOU_MTU_MAX : MTU_MAX });
    this.counters = options.counters ?? new Counters();
    this.localAddress = local;
    this.localS32 = local | 0;
    this.overhead = fou ? 28 : IPV4.HEADER_LEN;
    this.ttl = options.ttl === 'inherit' ? -1 : (options.ttl ?? TTL_DEFAULT);
    this.tos = options.tos === 'inherit' ? -1 : (options.tos ?? TOS_DEFAULT);
    this.clampMss = options.clampMss ?? true;
    this.dynamicPmtu = (options.pmtu ?? 'dynamic') === 'dynamic';
    this.clock = options.clock ?? monotonicMs;
    const rate = options.icmpRate ?? ICMP_RATE_DEFAULT;
    const burst = options.icmpBurst ?? ICMP_BURST_DEFAULT;
    this.ptbBucket = new TokenBucket(rate, burst, this.clock);
    this.relayBucket = new TokenBucket(rate, burst, this.clock);
    this.unreachableBucket = new TokenBucket(rate, burst, this.clock);
    const pool = ipv6Network(parseIpv6Prefix(options.pools[0])!);
    this.poolAddress = pool.addr;
    this.poolAddress[15] |= 1;
  }

  /**
   * A packet from the TUN: its tunnel by longest prefix of the destination, then that tunnel's
   * MTU (Packet Too Big back to the sender), outer fields and remote. No tunnel: destination
   * unreachable (no route), rate-limited. A parked tunnel drops it.
   */
  egress(buf: Buffer, off: number, len: number, out: PacketResult): PacketResult {
    if (off < ENCAP_HEADROOM) return this.drop(out, Drop.no_headroom);
    if (checkIpv6(buf, off, len) !== 0) return this.drop(out, Drop.tx_malformed_ipv6);
    const table = this.tunnels;
    const d = off + IPV6.DST;
    const s = table.lookup(buf, d);
    if (s < 0) return this.noTunnel(buf, off, len, out);
    if (isServerInterfaceId(buf, d) && ipv4AtS32(buf, d) === table.linkHi[s] && ipv4AtS32(buf, d + 4) === table.linkLo[s]) {
      // to our own address on a link: answered here, or it would go out to the client and back
      if (!this.echoReplyInPlace(buf, off, len)) return this.dropFor(s, out, Drop.server_address_not_echo, -1, buf, off, len);
      this.counters.traffic[Traffic.icmp6_echo_replies_sent]++;
      out.verdict = Verdict.Reply;
      out.offset = off;
      out.length = len;
      return out;
    }
    const remote = table.remote[s];
    if (remote === 0) return this.dropFor(s, out, Drop.tx_tunnel_parked, -1, buf, off, len);
    let mtu = table.mtu[s];
    let df = false;
    if (this.dynamicPmtu) {
      const pmtu = this.pathMtuOf(s);
      if (pmtu === 0) {
        df = true;
      } else {
        mtu = tunnelMtuFromPath(pmtu, mtu, this.overhead);
        df = pmtu - this.overhead >= IPV6_MIN_MTU; // R07, as the Encapsulator
      }
    }
    if (len > mtu) {
      this.dropFor(s, out, Drop.tx_too_big, -1, buf, off, len);
      errorToSenderInPlace(buf, off, len, Icmpv6Type.PacketTooBig, 0, mtu, this.serverAddressOf(s), 0, this.ptbBucket, this.counters.traffic, Traffic.icmp6_packet_too_big_sent, out);
      return out;
    }
    out.outerDst = remote;
    out.outerFields = outerFieldsFor(buf, off, this.ttl, this.tos, df);
    return this.forward(s, buf, off, len, mtu, TunnelTraffic.txPackets, Traffic.tx_packets, out);
  }

  /**
   * A packet from the network: its tunnel by outer source (unknown: dropped silently, counted in
   * the totals only, as sit does), then the inner source must be the tunnel's own (its link or
   * routed prefixes, or link-local): a client cannot send as another. An echo request to a
   * link's server address (::1) is answered back through the tunnel.
   */
  decapsulate(buf: Buffer, off: number, len: number, out: PacketResult, headerVerified = false): PacketResult {
    const e = checkIpv4(buf, off, len, !headerVerified);
    if (e !== Ipv4Error.None) return this.drop(out, e === Ipv4Error.Checksum ? Drop.rx_bad_ipv4_checksum : Drop.rx_malformed_ipv4);
    if (ipv4AtS32(buf, off + IPV4.DST) !== this.localS32) return this.drop(out, Drop.rx_wrong_outer_destination);
    if (buf[off + IPV4.PROTOCOL] !== PROTO_IPV6) return this.drop(out, Drop.rx_not_protocol_41);
    const outerSrc = ipv4AtS32(buf, off + IPV4.SRC);
    const table = this.tunnels;
    const s = table.slotOfRemote(outerSrc);
    if (s < 0) return this.drop(out, Drop.rx_unknown_outer_source);
    const src = outerSrc >>> 0;
    if ((((buf[off + 6] << 8) | buf[off + 7]) & 0x3fff) !== 0) return this.dropFor(s, out, Drop.rx_ipv4_fragment, src, buf, off, len);
    const ihl = (buf[off] & 0x0f) << 2;
    const total = (buf[off + 2] << 8) | buf[off + 3];
    const io = off + ihl;
    const ilen = innerIpv6Length(buf, io, total - ihl, this.counters.traffic);
    if (ilen < 0) return this.dropFor(s, out, Drop.rx_malformed_ipv6, src, buf, off, len);
    const is = io + IPV6.SRC;
    if (isBogusInnerSource(buf, is)) return this.dropFor(s, out, Drop.rx_bogus_inner_source, src, buf, off, len); // R15
    // fe80::/10: the client's link-local on the tunnel link (R17)
    if (!(buf[is] === 0xfe && (buf[is + 1] & 0xc0) === 0x80) && table.lookup(buf, is) !== s) return this.dropFor(s, out, Drop.rx_source_not_tunnels, src, buf, off, len);
    if (!applyDecapEcn(buf, off, io)) return this.dropFor(s, out, Drop.rx_ecn_ce_on_not_ect, src, buf, off, len); // R13
    const d = io + IPV6.DST;
    if (isServerInterfaceId(buf, d)) {
      const t = table.lookup(buf, d);
      if (t >= 0 && ipv4AtS32(buf, d) === table.linkHi[t] && ipv4AtS32(buf, d + 4) === table.linkLo[t]) return this.answerEcho(s, buf, off, len, io, ilen, out);
    }
    return this.forward(s, buf, io, ilen, table.mtu[s], TunnelTraffic.rxPackets, Traffic.rx_packets, out);
  }

  /**
   * An ICMPv4 error about a packet we sent to `origDst`, quoting its inner IPv6 packet at
   * buf[io, io+ilen): it must name a tunnel's remote and (when the quote holds the whole inner
   * header) a destination of that tunnel. "Fragmentation needed" lowers that tunnel's path MTU
   * only; unreachable and time exceeded are relayed to the inner source from its server address.
   */
  icmpv4Error(type: number, code: number, info: number, origDst: number, buf: Buffer, io: number, ilen: number, out: PacketResult): PacketResult {
    if (ilen < 8 || buf[io] >> 4 !== 6) return this.drop(out, Drop.icmp4_malformed);
    const table = this.tunnels;
    const s = table.slotOfRemote(origDst | 0);
    if (s < 0) return this.drop(out, Drop.icmp4_not_ours);
    if (ilen >= IPV6.HEADER_LEN && table.lookup(buf, io + IPV6.DST) !== s) return this.dropFor(s, out, Drop.icmp4_not_ours, -1, buf, io, ilen);
    const t = this.counters.traffic;
    if (type === Icmpv4Type.DestUnreachable && code === Icmpv4UnreachCode.FragmentationNeeded) {
      if (!fragNeededFits(buf, io, info, this.overhead)) return this.dropFor(s, out, Drop.icmp4_not_ours, -1, buf, io, ilen);
      t[Traffic.icmp4_frag_needed]++;
      if (this.dynamicPmtu && info >= IPV4_MIN_MTU) {
        const now = this.clock();
        const cur = now < table.pathMtuExpires[s] ? table.pathMtu[s] : 0;
        if (cur === 0 || info < cur) {
          table.pathMtu[s] = info;
          table.pathMtuExpires[s] = now + PMTU_EXPIRES_MS;
          t[Traffic.path_mtu_updates]++;
        }
      }
      out.verdict = Verdict.Consumed;
      return out;
    }
    const why = relayIcmpv4InPlace(type, code, buf, io, ilen, this.serverAddressOf(s), 0, this.relayBucket, t, out);
    return why === PASS ? out : this.dropFor(s, out, why, -1, buf, io, ilen);
  }

  /** The tunnel's MTU toward its remote now: configured, lowered by a learnt path MTU (status, tests). */
  mtuOf(id: string): number | undefined {
    const s = this.tunnels.slotOf(id);
    if (s < 0) return undefined;
    const mtu = this.tunnels.mtu[s];
    const pmtu = this.clock() < this.tunnels.pathMtuExpires[s] ? this.tunnels.pathMtu[s] : 0;
    return pmtu === 0 ? mtu : tunnelMtuFromPath(pmtu, mtu, this.overhead);
  }

  /** The learnt path MTU of the tunnel in slot `s`, or 0; the clock read once per CLOCK_EVERY calls. */
  private pathMtuOf(s: number): number {
    const table = this.tunnels;
    const pmtu = table.pathMtu[s];
    if (pmtu === 0) return 0;
    if (--this.lookupsToClock < 0) {
      this.lookupsToClock = CLOCK_EVERY - 1;
      this.now[0] = this.clock();
    }
    if (this.now[0] >= table.pathMtuExpires[s]) {
      table.pathMtu[s] = 0;
      return 0;
    }
    return pmtu;
  }

  private forward(s: number, buf: Buffer, off: number, len: number, mtu: number, tunnelPackets: number, totalPackets: number, out: PacketResult): PacketResult {
    const t = this.counters.traffic;
    if (this.clampMss && clampMss(buf, off, len, mssForMtu(mtu))) t[Traffic.tcp_mss_clamped]++;
    const k = s * TRAFFIC_STRIDE + tunnelPackets;
    const traffic = this.tunnels.traffic;
    traffic[k]++;
    traffic[k + 1] += len;
    t[totalPackets]++;
    t[totalPackets + 1] += len;
    out.verdict = Verdict.Forward;
    out.offset = off;
    out.length = len;
    return out;
  }

  /** The echo request at buf[io, io+ilen) from tunnel `s`'s client answered back to it (Verdict.Answer). */
  private answerEcho(s: number, buf: Buffer, off: number, len: number, io: number, ilen: number, out: PacketResult): PacketResult {
    if (!this.echoReplyInPlace(buf, io, ilen)) return this.dropFor(s, out, Drop.server_address_not_echo, this.tunnels.remote[s] >>> 0, buf, off, len);
    const table = this.tunnels;
    const traffic = table.traffic;
    const k = s * TRAFFIC_STRIDE;
    traffic[k + TunnelTraffic.rxPackets]++;
    traffic[k + TunnelTraffic.rxBytes] += ilen;
    traffic[k + TunnelTraffic.txPackets]++;
    traffic[k + TunnelTraffic.txBytes] += ilen;
    this.counters.traffic[Traffic.icmp6_echo_replies_sent]++;
    const pmtu = this.dynamicPmtu ? this.pathMtuOf(s) : 0;
    out.verdict = Verdict.Answer;
    out.offset = io;
    out.length = ilen;
    out.outerDst = table.remote[s];
    out.outerFields = outerFieldsFor(buf, io, this.ttl, this.tos, this.dynamicPmtu && (pmtu === 0 || pmtu - this.overhead >= IPV6_MIN_MTU));
    return out;
  }

  /**
   * RFC 4443 §4.2: the echo request at buf[p, p+len) (ICMPv6 right after the IPv6 header, its
   * checksum right) becomes, in place, the reply from the address it was sent to. False: it is
   * not one.
   */
  private echoReplyInPlace(buf: Buffer, p: number, len: number): boolean {
    const icmp = p + IPV6.HEADER_LEN;
    const icmpLen = len - IPV6.HEADER_LEN;
    if (buf[p + IPV6.NEXT_HEADER] !== PROTO_ICMPV6 || icmpLen < ICMPV6.HEADER_LEN || buf[icmp + ICMPV6.TYPE] !== Icmpv6Type.EchoRequest) return false;
    if (checksum(buf, icmp, icmpLen, ipv6PseudoHeaderSum(buf, p + IPV6.SRC, p + IPV6.DST, icmpLen, PROTO_ICMPV6)) !== 0) return false;
    // swapping source and destination leaves the pseudo-header's sum as it was
    for (let i = 0; i < 16; i++) {
      const a = buf[p + IPV6.SRC + i];
      buf[p + IPV6.SRC + i] = buf[p + IPV6.DST + i];
      buf[p + IPV6.DST + i] = a;
    }
    buf[p + IPV6.HOP_LIMIT] = ICMPV6_HOP_LIMIT;
    const code = buf[icmp + ICMPV6.CODE];
    buf[icmp + ICMPV6.TYPE] = Icmpv6Type.EchoReply;
    const ck = (buf[icmp + ICMPV6.CHECKSUM] << 8) | buf[icmp + ICMPV6.CHECKSUM + 1];
    const fixed = checksumAdjust(ck, (Icmpv6Type.EchoRequest << 8) | code, (Icmpv6Type.EchoReply << 8) | code);
    buf[icmp + ICMPV6.CHECKSUM] = fixed >>> 8;
    buf[icmp + ICMPV6.CHECKSUM + 1] = fixed & 0xff;
    return true;
  }

  /** No tunnel holds the destination: dropped, and its sender told (no route), never about multicast. */
  private noTunnel(buf: Buffer, off: number, len: number, out: PacketResult): PacketResult {
    this.drop(out, Drop.tx_no_tunnel);
    if (buf[off + IPV6.DST] === 0xff) return out; // RFC 4443 §2.4(e.3)
    errorToSenderInPlace(buf, off, len, Icmpv6Type.DestUnreachable, Icmpv6UnreachCode.NoRoute, 0, this.poolAddress, 0, this.unreachableBucket, this.counters.traffic, Traffic.icmp6_unreachable_sent, out);
    return out;
  }

  /** Tunnel `s`'s server address (its link ::1), in a scratch buffer valid until the next call. */
  private serverAddressOf(s: number): Buffer {
    const a = this.serverAddress;
    const hi = this.tunnels.linkHi[s];
    const lo = this.tunnels.linkLo[s];
    a[0] = hi >>> 24;
    a[1] = (hi >>> 16) & 0xff;
    a[2] = (hi >>> 8) & 0xff;
    a[3] = hi & 0xff;
    a[4] = lo >>> 24;
    a[5] = (lo >>> 16) & 0xff;
    a[6] = (lo >>> 8) & 0xff;
    a[7] = lo & 0xff;
    a[15] = 1;
    return a;
  }

  /** A drop that belongs to tunnel `s`: counted in the totals and the tunnel's own, kept in its ring. */
  private dropFor(s: number, out: PacketResult, reason: number, outerSrc: number, buf: Buffer, off: number, len: number): PacketResult {
    this.tunnels.recordDrop(s, reason, outerSrc, buf, off, len);
    return this.drop(out, reason);
  }

  private drop(out: PacketResult, reason: number): PacketResult {
    this.counters.drops[reason]++;
    out.verdict = Verdict.Drop;
    out.reason = reason;
    return out;
  }
}

