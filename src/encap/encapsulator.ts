/**
 * The protocol-41 encapsulator and decapsulator for one tunnel (RFC 4213 configured tunnel,
 * 6to4 per RFC 3056/3964, or 6rd per RFC 5969: the "domain" modes, 6to4 being the 6rd domain
 * 2002::/16 with all 32 IPv4 bits embedded). Pure: buffers in, verdicts out, no I/O. Every call
 * works in place on the caller's buffer and reuses the caller's PacketResult, so the hot path
 * allocates nothing.
 */
import {
  extractIpv4,
  inDomain,
  type SixRdDomain,
} from '../packet/sixrd.js';
import { formatIpv4, isBogus6to4Inner, isBogus6to4Ipv4, isBogusInnerSource, ipv6PrefixMatch, type Ipv6Prefix } from '../packet/address.js';
import { checksum } from '../packet/checksum.js';
import { ICMPV4, Icmpv4Type, Icmpv4UnreachCode, isIcmpv4Error } from '../packet/icmpv4.js';
import { ICMPV6_ERROR_OVERHEAD, Icmpv6Type } from '../packet/icmpv6.js';
import { checkIpv4, IPV4, Ipv4Error, ipv4AtS32, PROTO_ICMP, PROTO_IPV6, writeIpv4Header } from '../packet/ipv4.js';
import { PROTO_UDP, UDP, udp4Checksum, writeUdpHeader } from '../packet/udp.js';
import { checkIpv6, IPV6, IPV6_MIN_MTU } from '../packet/ipv6.js';
import { Counters, Drop, Traffic } from './counters.js';
import type { TunnelOptions } from './options.js';
import { resolveTunnelOptions, type TunnelConfig } from './resolve.js';
import { applyDecapEcn, errorToSenderInPlace, fragNeededFits, innerIpv6Length, outerFieldsFor, PASS, relayIcmpv4InPlace } from './steps.js';
import { clampMss, mssForMtu } from './mss.js';
import { PathMtuTable, PMTU_TABLE_SIZE } from './path-mtu.js';
import { PacketResult, Verdict } from './result.js';
import { monotonicMs, TokenBucket, type Clock } from './token-bucket.js';

/**
 * Bytes the caller must leave free in front of an IPv6 packet handed to `encapsulate`:
 * 20 for the outer IPv4 header, 48 so that a Packet Too Big can be built in place.
 */
export const ENCAP_HEADROOM = ICMPV6_ERROR_OVERHEAD;

export interface EncapsulatorEnvironment {
  /** Monotonic milliseconds; tests inject their own. */
  clock?: Clock;
  /** Counter storage, e.g. over a SharedArrayBuffer read by another thread. */
  counters?: Counters;
  /** First IPv4 Identification minus one; default random. Golden-vector tests fix it. */
  initialIpId?: number;
}

export class Encapsulator {
  readonly config: TunnelConfig;
  readonly counters: Counters;
  /** Packet Too Big (R08) and relayed ICMPv4 errors (R11/R12) each have their own, so a flood of one cannot starve the other. */
  private readonly ptbBucket: TokenBucket;
  private readonly relayBucket: TokenBucket;
  private readonly pathMtu: PathMtuTable;
  private readonly dynamicPmtu: boolean;
  private readonly is6in4: boolean;
  /** FOU: the inner packet rides in UDP; `overhead` is what the outer headers add (20, or 28). */
  private readonly fou: boolean;
  private readonly overhead: number;
  private readonly isRelay: boolean;
  private readonly domain: SixRdDomain | null;
  private readonly site: Ipv6Prefix | null;
  /** The high bits of every embedded IPv4 (6rd ipv4MaskLen); see TunnelConfig.domainIpv4. */
  private readonly domainIpv4: number;
  /** R31 lifted: a 6rd domain is the ISP's own IPv4 network, private or shared space included. */
  private readonly allowNonGlobalIpv4: boolean;
  /** Drop reasons of the domain checks, named for the mode so 6rd operators read 6rd counters. */
  private readonly dropSpoofed: number;
  private readonly dropNotFromRelay: number;
  private readonly dropNotOurPrefix: number;
  private readonly dropNoRelay: number;
  private local = 0;
  /** Addresses in `| 0` form for allocation-free comparisons (see ipv4AtS32). */
  private localS32 = 0;
  /**
   * The 6in4 remote, read per packet from here rather than from `config`: configs of different
   * modes have different shapes, and a double loaded through a polymorphic access is boxed, a
   * heap number per packet.
   */
  private readonly remote: number;
  private readonly remoteS32: number;
  /** 6rd BR: the customers' IPv4 prefixes; null: any IPv4 of the domain. */
  private readonly customers: ReadonlyArray<readonly [number, number]> | null;

  private isCustomer(v4: number): boolean {
    const c = this.customers!;
    for (let i = 0; i < c.length; i++) if (((v4 & c[i][1]) >>> 0) === c[i][0]) return true;
    return false;
  }

  /** The relay (6to4) or BR (6rd) in use; a 6rd CE fails over between its BRs (setRelay). */
  private relay: number;
  private relayS32: number;
  private ipId = 0;

  constructor(options: TunnelOptions | TunnelConfig, env: EncapsulatorEnvironment = {}) {
    this.config = isResolved(options) ? options : resolveTunnelOptions(options);
    const clock = env.clock ?? monotonicMs;
    this.counters = env.counters ?? new Counters();
    this.ptbBucket = new TokenBucket(this.config.icmpRate, this.config.icmpBurst, clock);
    this.relayBucket = new TokenBucket(this.config.icmpRate, this.config.icmpBurst, clock);
    this.pathMtu = new PathMtuTable(clock, PMTU_TABLE_SIZE, () => this.counters.traffic[Traffic.path_mtu_evictions]++);
    this.dynamicPmtu = this.config.pmtu === 'dynamic';
    this.is6in4 = this.config.mode === '6in4';
    this.fou = this.config.encap === 'fou';
    this.overhead = this.config.outerOverhead;
    this.isRelay = this.config.role === 'relay';
    this.domain = this.config.domain;
    this.site = this.config.sitePrefix;
    this.domainIpv4 = this.config.domainIpv4;
    const is6rd = this.config.mode === '6rd';
    this.allowNonGlobalIpv4 = this.config.allowNonGlobal || is6rd;
    this.dropSpoofed = is6rd ? Drop.rx_6rd_spoofed_source : Drop.rx_6to4_spoofed_source;
    this.dropNotFromRelay = is6rd ? Drop.rx_6rd_not_from_relay : Drop.rx_6to4_not_from_relay;
    this.dropNotOurPrefix = is6rd ? Drop.rx_6rd_not_our_prefix : Drop.rx_6to4_not_our_prefix;
    this.dropNoRelay = is6rd ? Drop.tx_6rd_no_relay : Drop.tx_6to4_no_relay;
    this.customers = this.config.customers ?? null;
    // R03: start the Identification sequence somewhere unpredictable, as hosts do.
    this.ipId = (env.initialIpId ?? Math.random() * 0x10000) & 0xffff;
    this.remote = this.config.remote;
    this.remoteS32 = this.config.remote | 0;
    this.relay = this.config.relay;
    this.relayS32 = this.config.relay | 0;
    this.setLocalAddress(this.config.local);
  }

  /** The relay (6to4) or border relay (6rd) packets for other destinations go to now. */
  get relayAddress(): number {
    return this.relay;
  }

  /**
   * 6rd CE: switch to another of its border relays (keepalive found this one down). Packets
   * from the old BR are refused from now on, as from any other non-BR source.
   */
  setRelay(v4: number): void {
    if (this.config.mode !== '6rd' || this.isRelay || !this.config.relays.includes(v4)) {
      throw new Error(`${formatIpv4(v4)} is not one of this 6rd CE's border relays`);
    }
    this.relay = v4 >>> 0;
    this.relayS32 = v4 | 0;
  }

  /** Our IPv4 address now (it may follow the host's, see setLocalAddress). */
  get localAddress(): number {
    return this.local;
  }

  /** 6in4 `--local auto`: the host's source address toward the remote changed. */
  setLocalAddress(v4: number): void {
    if (this.config.mode !== '6in4' && v4 !== this.config.local) {
      throw new Error(`${this.config.mode} derives its prefix from the local IPv4; restart the tunnel to change it`);
    }
    this.local = v4 >>> 0;
    this.localS32 = v4 | 0;
  }

  /** The tunnel MTU toward an outer destination: configured, lowered by a learnt path MTU (R07). */
  mtuFor(outerDst: number): number {
    const mtu = this.config.mtu;
    if (!this.dynamicPmtu) return mtu;
    const pmtu = this.pathMtu.get(outerDst | 0);
    if (pmtu === 0) return mtu;
    return tunnelMtuFromPath(pmtu, mtu, this.overhead);
  }

  pathMtuEntries(): Array<{ dst: number; mtu: number; expiresInMs: number }> {
    return this.pathMtu.entriesForStatus();
  }

  /** How many destinations have a learnt path MTU (expired ones may still count until swept). */
  pathMtuCount(): number {
    return this.pathMtu.size;
  }

  /**
   * Decides how the IPv6 packet at buf[off, off+len) leaves the tunnel (R03–R10, R13, R28) without
   * writing an outer header: on Forward, out.offset/out.length are the inner packet (unchanged
   * but for an MSS clamp), out.outerDst its IPv4 destination and out.outerFields the TTL, TOS and
   * DF for the header (see packOuterFields); a transport hands these to the kernel, which writes
   * the header. A packet over the tunnel MTU is turned, in place, into an ICMPv6 Packet Too Big
   * for its sender (verdict Reply), which needs ENCAP_HEADROOM free before `off`.
   */
  egress(buf: Buffer, off: number, len: number, out: PacketResult): PacketResult {
    if (off < ENCAP_HEADROOM) return this.drop(out, Drop.no_headroom);
    if (checkIpv6(buf, off, len) !== 0) return this.drop(out, Drop.tx_malformed_ipv6);

    let dst: number;
    if (this.is6in4) {
      dst = this.remote;
    } else {
      const d = off + IPV6.DST;
      if (isBogus6to4Inner(buf, d)) return this.drop(out, Drop.tx_6to4_bogus_destination);
      if (inDomain(this.domain!, buf, d)) {
        // 6rd (RFC 5969 §7.1.1): another CE of the domain is reached directly, never via the BR.
        dst = extractIpv4(this.domain!, buf, d, this.domainIpv4);
        if (isBogus6to4Ipv4(dst, this.allowNonGlobalIpv4)) return this.drop(out, Drop.tx_6to4_bogus_embedded_ipv4);
        if (this.customers !== null && !this.isCustomer(dst)) return this.drop(out, Drop.tx_6rd_not_customer);
      } else {
        dst = this.relay;
        if (dst === 0) return this.drop(out, this.dropNoRelay);
      }
    }

    // R04/R05/R07: the MTU and DF bit for this destination.
    let mtu = this.config.mtu;
    let df = false;
    if (this.dynamicPmtu) {
      const pmtu = this.pathMtu.getForPacket(dst);
      if (pmtu === 0) {
        df = true;
      } else {
        mtu = tunnelMtuFromPath(pmtu, mtu, this.overhead);
        // R07, RFC 4213 §3.2.2: a path too narrow for 1280-byte IPv6 still carries 1280, every
        // packet with DF clear so IPv4 may fragment (what Linux sit does too).
        df = pmtu - this.overhead >= IPV6_MIN_MTU;
      }
    }
    if (len > mtu) return this.packetTooBig(buf, off, len, mtu, out);

    out.outerDst = dst;
    out.outerFields = outerFieldsFor(buf, off, this.config.ttl, this.config.tos, df);
    return this.forward(buf, off, len, mtu, Traffic.tx_packets, Traffic.tx_bytes, out);
  }

  /**
   * egress, then the outer headers written into the headroom (R01–R03): on Forward,
   * out.offset/out.length are the whole outer packet — protocol 41, or with FOU IPv4 + UDP from
   * encapPort to encapDport — for an embedder that sends it itself (e.g. over an IP_HDRINCL
   * socket). The engine's transports use egress and let the kernel write the headers.
   */
  encapsulate(buf: Buffer, off: number, len: number, out: PacketResult): PacketResult {
    if (this.egress(buf, off, len, out).verdict !== Verdict.Forward) return out;
    const id = (this.ipId = (this.ipId + 1) & 0xffff); // R03
    const h = off - this.overhead;
    const total = len + this.overhead;
    const c = this.config;
    // `| 0`: an unsigned address above 2^31 passed as an argument is boxed, a heap number per packet.
    const src = this.local | 0;
    const dst = out.outerDst | 0;
    // one datagram, no GSO: 'gso' sends it with a zero checksum
    if (this.fou) writeUdpHeader(buf, h + IPV4.HEADER_LEN, c.encapPort, c.encapDport, len + UDP.HEADER_LEN, c.encapCsum === true, src, dst);
    writeIpv4Header(buf, h, out.outerFields, total, id, this.fou ? PROTO_UDP : PROTO_IPV6, src, dst);
    out.offset = h;
    out.length = total;
    return out;
  }

  /**
   * Decapsulates the IPv4 packet at buf[off, off+len) (R06, R13–R17, R29–R32). On Forward, the
   * inner IPv6 packet is buf[out.offset, out.offset+out.length), byte for byte what the peer sent
   * but for R13's ECN. ICMPv4 errors about our own packets are handled too (see icmpv4Error).
   *
   * `headerVerified`: the IPv4 header checksum was already checked, as the kernel does before a
   * raw socket sees a packet. Then it is not checked again: Linux fills in Record Route and
   * Timestamp options on local delivery without updating the checksum, so a legitimate packet
   * can reach us with one that no longer verifies. An embedder's bytes are checked (the default).
   */
  decapsulate(buf: Buffer, off: number, len: number, out: PacketResult, headerVerified = false): PacketResult {
    const e = checkIpv4(buf, off, len, !headerVerified);
    if (e !== Ipv4Error.None) return this.drop(out, e === Ipv4Error.Checksum ? Drop.rx_bad_ipv4_checksum : Drop.rx_malformed_ipv4);
    const ihl = (buf[off] & 0x0f) << 2;
    const total = (buf[off + 2] << 8) | buf[off + 3];
    if ((((buf[off + 6] << 8) | buf[off + 7]) & 0x3fff) !== 0) return this.drop(out, Drop.rx_ipv4_fragment);
    const outerSrc = ipv4AtS32(buf, off + IPV4.SRC);
    if (ipv4AtS32(buf, off + IPV4.DST) !== this.localS32) return this.drop(out, Drop.rx_wrong_outer_destination);
    const proto = buf[off + IPV4.PROTOCOL];
    if (proto === PROTO_ICMP) return this.decapIcmpv4(buf, off + ihl, total - ihl, out);
    let io = off + ihl;
    let ilen = total - ihl;
    if (proto === PROTO_UDP && this.fou) {
      // An embedder's FOU datagram (the engine's UDP transport hands over the payload already).
      const e = this.checkFou(buf, io, ilen, outerSrc);
      if (e !== 0) return this.drop(out, e);
      io += UDP.HEADER_LEN;
      ilen = ((buf[io - UDP.HEADER_LEN + UDP.LENGTH] << 8) | buf[io - UDP.HEADER_LEN + UDP.LENGTH + 1]) - UDP.HEADER_LEN;
    } else if (proto !== PROTO_IPV6) {
      return this.drop(out, Drop.rx_not_protocol_41);
    }
    // R14: a configured tunnel accepts only its remote; no ICMP goes back (RFC 4213 §3.6).
    if (this.is6in4 && outerSrc !== this.remoteS32) return this.drop(out, Drop.rx_wrong_outer_source);

    ilen = innerIpv6Length(buf, io, ilen, this.counters.traffic);
    if (ilen < 0) return this.drop(out, Drop.rx_malformed_ipv6);
    const src = io + IPV6.SRC;
    const dst = io + IPV6.DST;
    if (isBogusInnerSource(buf, src)) return this.drop(out, Drop.rx_bogus_inner_source); // R15

    if (!this.is6in4) {
      const allow = this.allowNonGlobalIpv4;
      if (isBogus6to4Ipv4(outerSrc, allow)) return this.drop(out, Drop.rx_6to4_bogus_outer_ipv4); // R31
      if (this.customers !== null && !this.isCustomer(outerSrc >>> 0)) return this.drop(out, Drop.rx_6rd_not_customer);
      if (isBogus6to4Inner(buf, src) || isBogus6to4Inner(buf, dst)) return this.drop(out, Drop.rx_6to4_bogus_inner_address); // R32
      if (inDomain(this.domain!, buf, src)) {
        // R29 (6rd: RFC 5969 §12): a domain source must come from the IPv4 it embeds, also when
        // it arrives through the BR (Linux's 6rd CE drops that too).
        if ((extractIpv4(this.domain!, buf, src, this.domainIpv4) | 0) !== outerSrc) return this.drop(out, this.dropSpoofed);
      } else if (this.isRelay || this.relayS32 === 0 || outerSrc !== this.relayS32) {
        // Native sources arrive only from our relay or BR; a relay gets them natively, never
        // tunnelled. (Linux's 6rd CE takes them from any IPv4; anyone could inject them.)
        return this.drop(out, this.dropNotFromRelay);
      }
      // R30: a site or CE takes only its own delegated prefix (no transit). A relay carries the
      // domain to native IPv6, but domain-to-domain goes direct (RFC 3964 §5.2, RFC 5969 §7.1.1),
      // so a destination inside the domain must be the relay's own.
      const ours = ipv6PrefixMatch(buf, dst, this.site!.addr, 0, this.site!.len);
      if (!ours && (!this.isRelay || inDomain(this.domain!, buf, dst))) return this.drop(out, this.dropNotOurPrefix);
    }

    if (!applyDecapEcn(buf, off, io)) return this.drop(out, Drop.rx_ecn_ce_on_not_ect);
    return this.forward(buf, io, ilen, this.config.mtu, Traffic.rx_packets, Traffic.rx_bytes, out);
  }

  /**
   * Both directions end alike: the inner IPv6 packet at buf[off, off+len) goes on, its TCP MSS
   * clamped to what `mtu` carries (when asked), counted under the direction's two counters.
   */
  private forward(buf: Buffer, off: number, len: number, mtu: number, packets: number, bytes: number, out: PacketResult): PacketResult {
    const t = this.counters.traffic;
    if (this.config.clampMss && clampMss(buf, off, len, mssForMtu(mtu))) t[Traffic.tcp_mss_clamped]++;
    t[packets]++;
    t[bytes] += len;
    out.verdict = Verdict.Forward;
    out.offset = off;
    out.length = len;
    return out;
  }

  /**
   * A FOU datagram at buf[u, u+len): to our port, its length inside the IPv4 payload, and a zero
   * or correct checksum (Linux FOU takes both and drops a wrong one). Returns a drop reason or 0.
   */
  private checkFou(buf: Buffer, u: number, len: number, src: number): number {
    if (len < UDP.HEADER_LEN) return Drop.rx_malformed_udp;
    const ulen = (buf[u + UDP.LENGTH] << 8) | buf[u + UDP.LENGTH + 1];
    if (ulen < UDP.HEADER_LEN || ulen > len) return Drop.rx_malformed_udp;
    if (((buf[u + UDP.DST_PORT] << 8) | buf[u + UDP.DST_PORT + 1]) !== this.config.encapPort) return Drop.rx_wrong_udp_port;
    const ck = (buf[u + UDP.CHECKSUM] << 8) | buf[u + UDP.CHECKSUM + 1];
    if (ck !== 0) {
      buf[u + UDP.CHECKSUM] = 0;
      buf[u + UDP.CHECKSUM + 1] = 0;
      const want = udp4Checksum(buf, u, ulen, src | 0, this.local | 0);
      buf[u + UDP.CHECKSUM] = ck >>> 8;
      buf[u + UDP.CHECKSUM + 1] = ck & 0xff;
      if (want !== ck) return Drop.rx_bad_udp_checksum;
    }
    return 0;
  }

  /**
   * R07/R11/R12: an ICMPv4 error about a protocol-41 packet we sent to `origDst`. The quoted
   * inner IPv6 packet (as much as the error carried) is at buf[io, io+ilen), with at least
   * ENCAP_HEADROOM bytes free before it. "Fragmentation needed" lowers the path MTU; destination
   * unreachable and TTL exceeded are relayed to the inner source the way Linux's sit does:
   * ICMPv6 Destination Unreachable code 3 (address unreachable) and Time Exceeded code 0.
   */
  icmpv4Error(type: number, code: number, info: number, origDst: number, buf: Buffer, io: number, ilen: number, out: PacketResult): PacketResult {
    // Anyone who knows our IPv4 and a destination we use can forge an error: act only on one that
    // quotes a packet this tunnel could have sent there. RFC 792 guarantees 8 bytes of it.
    if (ilen < 8 || buf[io] >> 4 !== 6) return this.drop(out, Drop.icmp4_malformed);
    if (!this.couldHaveSent(origDst, buf, io, ilen)) return this.drop(out, Drop.icmp4_not_ours);
    const t = this.counters.traffic;
    if (type === Icmpv4Type.DestUnreachable && code === Icmpv4UnreachCode.FragmentationNeeded) {
      if (!fragNeededFits(buf, io, info, this.overhead)) return this.drop(out, Drop.icmp4_not_ours);
      t[Traffic.icmp4_frag_needed]++;
      if (this.dynamicPmtu && this.pathMtu.update(origDst | 0, info)) t[Traffic.path_mtu_updates]++;
      out.verdict = Verdict.Consumed;
      return out;
    }
    const why = relayIcmpv4InPlace(type, code, buf, io, ilen, this.config.address.addr, 0, this.relayBucket, t, out);
    return why === PASS ? out : this.drop(out, why);
  }

  /**
   * Whether a packet whose inner IPv6 starts at buf[io] (ilen bytes of it quoted) could have
   * left this tunnel for the outer destination `dst`: 6in4 sends only to its remote; 6to4 sends a
   * 2002:: destination to the IPv4 it embeds and anything else to the relay, so with the whole
   * inner header quoted the two must agree, and with less the destination must at least be one
   * 6to4 could use.
   */
  private couldHaveSent(dst: number, buf: Buffer, io: number, ilen: number): boolean {
    if (this.is6in4) return dst === this.config.remote;
    if (isBogus6to4Ipv4(dst, this.allowNonGlobalIpv4)) return false;
    if (ilen < IPV6.HEADER_LEN) return true;
    const d = io + IPV6.DST;
    if (inDomain(this.domain!, buf, d)) return extractIpv4(this.domain!, buf, d, this.domainIpv4) === dst;
    // A 6rd CE that failed over may still hear about packets it sent to an earlier BR.
    return !this.isRelay && (dst === this.relay || this.config.relays.includes(dst));
  }

  /** An ICMPv4 message inside an IPv4 packet handed to decapsulate (the embedder's path). */
  private decapIcmpv4(buf: Buffer, icmp: number, icmpLen: number, out: PacketResult): PacketResult {
    if (icmpLen < ICMPV4.HEADER_LEN || checksum(buf, icmp, icmpLen) !== 0) return this.drop(out, Drop.icmp4_malformed);
    const type = buf[icmp + ICMPV4.TYPE];
    if (!isIcmpv4Error(type)) return this.drop(out, Drop.icmp4_ignored);
    const q = icmp + ICMPV4.HEADER_LEN;
    const qlen = icmpLen - ICMPV4.HEADER_LEN;
    if (qlen < IPV4.HEADER_LEN || buf[q] >> 4 !== 4) return this.drop(out, Drop.icmp4_malformed);
    const qihl = (buf[q] & 0x0f) << 2;
    if (qihl < IPV4.HEADER_LEN || qihl > qlen) return this.drop(out, Drop.icmp4_malformed);
    if (buf[q + IPV4.PROTOCOL] !== PROTO_IPV6 || ipv4AtS32(buf, q + IPV4.SRC) !== this.localS32) {
      return this.drop(out, Drop.icmp4_not_ours);
    }
    const code = buf[icmp + ICMPV4.CODE];
    const info = buf.readUInt16BE(icmp + ICMPV4.NEXT_HOP_MTU);
    return this.icmpv4Error(type, code, info, buf.readUInt32BE(q + IPV4.DST), buf, q + qihl, qlen - qihl, out);
  }

  /** R08, R19–R24: drop the packet and, when allowed, answer its sender with Packet Too Big. */
  private packetTooBig(buf: Buffer, off: number, len: number, mtu: number, out: PacketResult): PacketResult {
    this.drop(out, Drop.tx_too_big);
    errorToSenderInPlace(buf, off, len, Icmpv6Type.PacketTooBig, 0, mtu, this.config.address.addr, 0, this.ptbBucket, this.counters.traffic, Traffic.icmp6_packet_too_big_sent, out);
    return out;
  }

  private drop(out: PacketResult, reason: number): PacketResult {
    this.counters.drops[reason]++;
    out.verdict = Verdict.Drop;
    out.reason = reason;
    return out;
  }
}

/** R07: tunnel MTU = path MTU − 20 (− 28 with FOU), never above the configured MTU, never below 1280. */
export function tunnelMtuFromPath(pathMtu: number, configured: number, overhead: number = IPV4.HEADER_LEN): number {
  const m = pathMtu - overhead;
  return m >= configured ? configured : m < IPV6_MIN_MTU ? IPV6_MIN_MTU : m;
}

function isResolved(o: TunnelOptions | TunnelConfig): o is TunnelConfig {
  return typeof o.local === 'number';
}
