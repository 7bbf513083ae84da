import { describe, expect, it } from 'vitest';
import { ConfigError, Drop, DROP_REASONS, formatIpv6, PacketResult, Traffic, Verdict, type DropReason, type Encapsulator, type TunnelOptions } from '../src/index.js';
import { checksum, ipv6PseudoHeaderSum } from '../src/packet/checksum.js';
import { HEADROOM, icmpv4Error, ip4, ipv4Packet, ipv6Packet, refChecksum, withHeadroom } from './helpers/packets.js';
import { LOCAL, ManualClock, OUR_SITE, PEER_SITE, PEER_SITE_V4, RELAY, REMOTE, tunnel } from './helpers/tunnels.js';
import { CLOCK_EVERY, PathMtuTable, PMTU_EXPIRES_MS, PMTU_TABLE_SIZE } from '../src/encap/path-mtu.js';

const out = new PacketResult();

function encap(t: Encapsulator, pkt: Buffer): { buf: Buffer; r: PacketResult; bytes: Buffer } {
  const [buf, off] = withHeadroom(pkt);
  const r = t.encapsulate(buf, off, pkt.length, out);
  return { buf, r, bytes: Buffer.from(buf.subarray(r.offset, r.offset + r.length)) };
}

function decap(t: Encapsulator, pkt: Buffer): { r: PacketResult; bytes: Buffer } {
  const [buf, off] = withHeadroom(pkt);
  const r = t.decapsulate(buf, off, pkt.length, out);
  return { r, bytes: Buffer.from(buf.subarray(r.offset, r.offset + r.length)) };
}

function expectDrop(t: Encapsulator, r: PacketResult, reason: DropReason): void {
  expect(r.verdict).toBe(Verdict.Drop);
  expect(DROP_REASONS[r.reason]).toBe(reason);
  expect(t.counters.drops[Drop[reason]]).toBeGreaterThan(0);
}

const inner = (o: Partial<Parameters<typeof ipv6Packet>[0]> = {}) =>
  ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:ffff::9', ...o });

/** A protocol-41 packet from the broker to us carrying `pkt`. */
const fromRemote = (pkt: Buffer, o: { src?: string; dst?: string; tos?: number } = {}) =>
  ipv4Packet({ src: o.src ?? REMOTE, dst: o.dst ?? LOCAL, tos: o.tos, payload: pkt });

describe('encapsulation', () => {
  it('R01/R02: golden vector: IHL 5, protocol 41, length, checksum, addresses; inner follows unmodified', () => {
    const t = tunnel();
    const pkt = inner();
    const { r, bytes } = encap(t, pkt);
    expect(r.verdict).toBe(Verdict.Forward);
    expect(r.offset).toBe(HEADROOM - 20);
    expect(bytes.subarray(0, 20).toString('hex')).toBe('4500004c123400004029' + '7c1f' + 'c0000201c6336401');
    expect(bytes.subarray(20)).toEqual(pkt);
    expect(refChecksum(bytes.subarray(0, 20))).toBe(0);
    expect(r.outerDst).toBe(ip4(REMOTE));
  });

  it('R03: the IPv4 Identification changes with every packet', () => {
    const t = tunnel();
    const ids = new Set<number>();
    for (let i = 0; i < 1000; i++) ids.add(encap(t, inner()).bytes.readUInt16BE(4));
    expect(ids.size).toBe(1000);
  });

  it('R03: the Identification wraps at 16 bits without breaking the checksum', () => {
    const t = tunnel({}, { initialIpId: 0xfffe });
    const a = encap(t, inner()).bytes;
    const b = encap(t, inner()).bytes;
    expect([a.readUInt16BE(4), b.readUInt16BE(4)]).toEqual([0xffff, 0]);
    expect(refChecksum(a.subarray(0, 20))).toBe(0);
    expect(refChecksum(b.subarray(0, 20))).toBe(0);
  });

  it('R04: MTU defaults to 1480 and is configurable in 1280..1480 only', () => {
    expect(tunnel().config.mtu).toBe(1480);
    expect(tunnel({ mtu: 1280 }).config.mtu).toBe(1280);
    for (const mtu of [1279, 1481, 1400.5, 9000]) {
      expect(() => tunnel({ mtu })).toThrow(ConfigError);
      expect(() => tunnel({ mtu })).toThrow(/mtu: .* 1280\.\.1480/);
    }
  });

  it('R05: static MTU (the default) sends with DF clear; dynamic sets DF', () => {
    expect(encap(tunnel(), inner()).bytes.readUInt16BE(6)).toBe(0);
    expect(encap(tunnel({ pmtu: 'dynamic' }), inner()).bytes.readUInt16BE(6)).toBe(0x4000);
  });

  it('R08: a packet one byte over the tunnel MTU becomes a Packet Too Big to its sender', () => {
    const t = tunnel({ mtu: 1400 });
    expect(encap(t, inner({ payloadLen: 1360 })).r.verdict).toBe(Verdict.Forward); // exactly 1400
    const big = inner({ payloadLen: 1361 });
    const { r, bytes } = encap(t, big);
    expect(r.verdict).toBe(Verdict.Reply);
    expect(bytes.length).toBe(1280); // R21: at most the IPv6 minimum MTU
    expect(bytes[0] >> 4).toBe(6);
    expect(bytes[6]).toBe(58);
    expect(formatIpv6(bytes, 8)).toBe('2001:db8:1::2'); // R24: from our tunnel address
    expect(formatIpv6(bytes, 24)).toBe('2001:db8:1::2'); // to the offending packet's source
    expect([bytes[40], bytes[41], bytes.readUInt32BE(44)]).toEqual([2, 0, 1400]);
    expect(bytes.subarray(48)).toEqual(big.subarray(0, 1280 - 48));
    expect(bytes.readUInt16BE(4)).toBe(1280 - 40);
    expect(checksum(bytes, 40, 1240, ipv6PseudoHeaderSum(bytes, 8, 24, 1240, 58))).toBe(0);
    expect(t.counters.traffic[Traffic.icmp6_packet_too_big_sent]).toBe(1);
    expect(t.counters.drops[Drop.tx_too_big]).toBe(1);
  });

  it('R08/R24: a forwarded packet gets its Packet Too Big addressed to the original sender, from our tunnel address', () => {
    const t = tunnel();
    const big = ipv6Packet({ src: '2001:db8:2::77', dst: '2001:db8:ffff::1', payloadLen: 1500 });
    const { r, bytes } = encap(t, big);
    expect(r.verdict).toBe(Verdict.Reply);
    expect(formatIpv6(bytes, 8)).toBe('2001:db8:1::2'); // R24: the tunnel address, not the sender's own
    expect(formatIpv6(bytes, 24)).toBe('2001:db8:2::77');
    expect(bytes.readUInt32BE(44)).toBe(1480);
  });

  it('R09: the hop limit is never touched', () => {
    for (const hopLimit of [1, 2, 64, 255]) {
      const { bytes } = encap(tunnel(), inner({ hopLimit }));
      expect(bytes[20 + 7]).toBe(hopLimit);
      const d = decap(tunnel(), fromRemote(ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2', hopLimit })));
      expect(d.bytes[7]).toBe(hopLimit);
    }
  });

  it('R10: outer TTL 64 by default, fixed, or inherited from the hop limit', () => {
    expect(encap(tunnel(), inner({ hopLimit: 9 })).bytes[8]).toBe(64);
    expect(encap(tunnel({ ttl: 200 }), inner({ hopLimit: 9 })).bytes[8]).toBe(200);
    expect(encap(tunnel({ ttl: 'inherit' }), inner({ hopLimit: 9 })).bytes[8]).toBe(9);
    for (const ttl of [0, 256, 1.5]) expect(() => tunnel({ ttl })).toThrow(/ttl: .*1\.\.255 or "inherit"/);
  });

  it('R13: outer TOS 0 by default, fixed, or inherited; ECN always copied from the inner (RFC 6040)', () => {
    const tc = 0xb8 | 0x01; // EF + ECT(1)
    const cases: Array<[number | 'inherit' | undefined, number]> = [
      [undefined, 0x01],
      [0x20, 0x21],
      [0x23, 0x21], // the fixed value's ECN bits are replaced by the inner's
      ['inherit', 0xb9],
    ];
    for (const [tos, outer] of cases) {
      const { bytes } = encap(tunnel(tos === undefined ? {} : { tos }), inner({ trafficClass: tc }));
      expect(bytes[1], String(tos)).toBe(outer);
      expect(refChecksum(bytes.subarray(0, 20))).toBe(0);
      expect((bytes[20] & 0x0f) << 4 | bytes[21] >> 4).toBe(tc); // inner untouched
    }
    const ce = encap(tunnel(), inner({ trafficClass: 0x03 })).bytes;
    expect(ce[1] & 3).toBe(3);
  });

  it('R13: decapsulation applies RFC 6040 §4.2 (CE marks, drop of CE on Not-ECT)', () => {
    // [outer ECN, inner ECN, expected inner ECN or 'drop']
    const table: Array<[number, number, number | 'drop']> = [
      [0, 0, 0], [0, 1, 1], [0, 2, 2], [0, 3, 3],
      [2, 0, 0], [2, 1, 1], [2, 2, 2], [2, 3, 3],
      [1, 0, 0], [1, 1, 1], [1, 2, 1], [1, 3, 3],
      [3, 0, 'drop'], [3, 1, 3], [3, 2, 3], [3, 3, 3],
    ];
    for (const [o, i, want] of table) {
      const t = tunnel();
      const pkt = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2', trafficClass: 0xa0 | i });
      const { r, bytes } = decap(t, fromRemote(pkt, { tos: 0x28 | o }));
      if (want === 'drop') {
        expectDrop(t, r, 'rx_ecn_ce_on_not_ect');
      } else {
        expect(r.verdict, `${o}/${i}`).toBe(Verdict.Forward);
        expect(((bytes[0] & 0x0f) << 4) | (bytes[1] >> 4), `${o}/${i}`).toBe(0xa0 | want);
        expect(bytes.subarray(2)).toEqual(pkt.subarray(2)); // nothing else changes
      }
    }
  });

  it('rejects packets that are not whole IPv6 packets, and callers without headroom', () => {
    const t = tunnel();
    const pkt = inner();
    const [buf] = withHeadroom(pkt);
    expectDrop(t, t.encapsulate(buf, HEADROOM, pkt.length - 1, out), 'tx_malformed_ipv6');
    const [small, off] = withHeadroom(pkt, 20);
    expectDrop(t, t.encapsulate(small, off, pkt.length, out), 'no_headroom');
    const v4 = ipv4Packet({ src: '192.0.2.9', dst: '192.0.2.10', payload: Buffer.alloc(20) });
    expectDrop(t, encap(t, v4).r, 'tx_malformed_ipv6');
  });
});

describe('path MTU (R07)', () => {
  /** An ICMPv4 "fragmentation needed" from a router about the packet `sent` (an outer packet we built). */
  function fragNeeded(sent: Buffer, mtu: number): Buffer {
    return ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(3, 4, mtu, sent.subarray(0, 20 + 48)) });
  }

  it('lowers the tunnel MTU to path MTU − 20 and answers later oversized packets with that', () => {
    const clock = new ManualClock();
    const t = tunnel({ pmtu: 'dynamic' }, { clock: clock.fn });
    const sent = encap(t, inner({ payloadLen: 1400 })).bytes;
    const r = decap(t, fragNeeded(sent, 1400)).r;
    expect(r.verdict).toBe(Verdict.Consumed);
    expect(t.mtuFor(ip4(REMOTE))).toBe(1380);
    expect(t.counters.traffic[Traffic.path_mtu_updates]).toBe(1);
    const ptb = encap(t, inner({ payloadLen: 1400 }));
    expect(ptb.r.verdict).toBe(Verdict.Reply);
    expect(ptb.bytes.readUInt32BE(44)).toBe(1380);
    const fits = encap(t, inner({ payloadLen: 1340 }));
    expect(fits.r.verdict).toBe(Verdict.Forward);
    expect(fits.bytes.readUInt16BE(6)).toBe(0x4000);
    // Linux's mtu_expires: after 10 minutes the configured MTU is tried again.
    clock.advance(10 * 60 * 1000);
    expect(t.mtuFor(ip4(REMOTE))).toBe(1480);
  });

  it('R07: on the data path too a learnt path MTU expires, within CLOCK_EVERY packets (the clock is read once per that many, not per packet)', () => {
    const clock = new ManualClock();
    const t = tunnel({ pmtu: 'dynamic' }, { clock: clock.fn });
    decap(t, fragNeeded(encap(t, inner({ payloadLen: 1400 })).bytes, 1400));
    expect(encap(t, inner({ payloadLen: 1400 })).r.verdict).toBe(Verdict.Reply);
    clock.advance(PMTU_EXPIRES_MS);
    const verdicts = Array.from({ length: CLOCK_EVERY }, () => encap(t, inner({ payloadLen: 1400 })).r.verdict);
    // a few packets may still see the learnt MTU, then the configured one is tried again for good
    expect(verdicts.at(-1)).toBe(Verdict.Forward);
    expect(verdicts.slice(verdicts.indexOf(Verdict.Forward)).every((v) => v === Verdict.Forward)).toBe(true);
    expect(t.mtuFor(ip4(REMOTE))).toBe(1480);
  });

  it('never goes below 1280; with the path below 1300 every packet then goes with DF clear (RFC 4213 §3.2.2, as Linux sit)', () => {
    const t = tunnel({ pmtu: 'dynamic' });
    decap(t, fragNeeded(encap(t, inner({ payloadLen: 1400 })).bytes, 1000));
    expect(t.mtuFor(ip4(REMOTE))).toBe(1280);
    const b = encap(t, inner({ payloadLen: 1240 })).bytes; // 1280 inner
    expect(b.readUInt16BE(6)).toBe(0);
    const small = encap(t, inner({ payloadLen: 100 })).bytes;
    expect(small.readUInt16BE(6)).toBe(0);
  });

  it('static mode ignores path MTU reports; reports of a bigger MTU or bogus sizes change nothing', () => {
    const s = tunnel();
    const big = inner({ payloadLen: 1400 });
    decap(s, fragNeeded(encap(s, big).bytes, 1300));
    expect(s.mtuFor(ip4(REMOTE))).toBe(1480);
    const d = tunnel({ pmtu: 'dynamic' });
    decap(d, fragNeeded(encap(d, big).bytes, 1400));
    decap(d, fragNeeded(encap(d, big).bytes, 1450));
    decap(d, fragNeeded(encap(d, big).bytes, 20));
    expect(d.mtuFor(ip4(REMOTE))).toBe(1380);
  });

  it('a forged report is ignored: one quoting a packet that fit the reported MTU (RFC 1191), or one too short to be ours', () => {
    const d = tunnel({ pmtu: 'dynamic' });
    expectDrop(d, decap(d, fragNeeded(encap(d, inner({ payloadLen: 100 })).bytes, 1300)).r, 'icmp4_not_ours');
    const sent = encap(d, inner({ payloadLen: 1400 })).bytes;
    const short = ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(3, 4, 1300, sent.subarray(0, 20 + 4)) });
    expectDrop(d, decap(d, short).r, 'icmp4_malformed');
    expect(d.mtuFor(ip4(REMOTE))).toBe(1480);
  });

  it('the path MTU table stays bounded under 10,000 reports for distinct destinations: stalest evicted and counted, expired ones swept first', () => {
    const clock = new ManualClock();
    let evicted = 0;
    const table = new PathMtuTable(clock.fn, PMTU_TABLE_SIZE, () => evicted++);
    for (let dst = 1; dst <= 10_000; dst++) expect(table.update(dst, 1300)).toBe(true);
    expect(table.size).toBe(PMTU_TABLE_SIZE);
    expect(evicted).toBe(10_000 - PMTU_TABLE_SIZE);
    expect(table.get(10_000)).toBe(1300); // the newest are kept
    expect(table.get(1)).toBe(0);
    expect(table.entriesForStatus()).toHaveLength(32);
    clock.advance(PMTU_EXPIRES_MS);
    table.update(20_000, 1300); // all others expired: swept, nothing evicted
    expect(evicted).toBe(10_000 - PMTU_TABLE_SIZE);
    expect(table.size).toBe(1);
  });

  it('repeated reports for one destination update its one entry in place', () => {
    const t = tunnel({ mode: '6to4', local: LOCAL, relay: RELAY, pmtu: 'dynamic', allowNonGlobal: true });
    const pkt = inner({ src: `${OUR_SITE}1`, dst: '2001:db8:9::1', payloadLen: 1400 });
    const [buf, off] = withHeadroom(pkt);
    // via the relay, reported again and again with a lower MTU: one entry, updated in place
    for (const mtu of [1400, 1350, 1300]) t.icmpv4Error(3, 4, mtu, ip4(RELAY), buf, off, 48, out);
    expect(t.pathMtuCount()).toBe(1);
    expect(t.counters.traffic[Traffic.path_mtu_updates]).toBe(3);
    expect(t.counters.traffic[Traffic.path_mtu_evictions]).toBe(0);
  });

  it('6to4: an error counts only if its outer destination is where we would have sent the quoted packet', () => {
    const t = tunnel({ mode: '6to4', local: LOCAL, relay: RELAY, pmtu: 'dynamic', allowNonGlobal: true });
    const toPeer = inner({ src: `${OUR_SITE}1`, dst: `${PEER_SITE}1`, payloadLen: 1400 });
    const sent = encap(t, toPeer).bytes;
    const claimedFrom = (dst: string) => {
      const quote = Buffer.from(sent.subarray(0, 20 + 48));
      quote.writeUInt32BE(ip4(dst), 16);
      return ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(3, 4, 1300, quote) });
    };
    // a 2002:: destination goes to the IPv4 it embeds, not to the relay or anyone else
    expectDrop(t, decap(t, claimedFrom(RELAY)).r, 'icmp4_not_ours');
    expectDrop(t, decap(t, claimedFrom('198.51.100.200')).r, 'icmp4_not_ours');
    expect(t.mtuFor(ip4(PEER_SITE_V4))).toBe(1480);
    expect(decap(t, claimedFrom(PEER_SITE_V4)).r.verdict).toBe(Verdict.Consumed);
    expect(t.mtuFor(ip4(PEER_SITE_V4))).toBe(1280);
  });
});

describe('decapsulation and ingress', () => {
  const fromPeer = (o: Partial<Parameters<typeof ipv6Packet>[0]> = {}) =>
    ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2', ...o });

  it('R16: the inner packet reaches the TUN byte for byte, as a view into the same buffer', () => {
    const t = tunnel();
    const pkt = fromPeer({ trafficClass: 0x28, flowLabel: 0xabcde, payloadLen: 300 });
    const [buf, off] = withHeadroom(fromRemote(pkt));
    const r = t.decapsulate(buf, off, pkt.length + 20, out);
    expect(r.verdict).toBe(Verdict.Forward);
    expect(r.offset).toBe(off + 20);
    expect(buf.subarray(r.offset, r.offset + r.length)).toEqual(pkt);
    expect(t.counters.traffic[Traffic.rx_packets]).toBe(1);
    expect(t.counters.traffic[Traffic.rx_bytes]).toBe(pkt.length);
  });

  it('R06: accepts inner packets of 1500 bytes and beyond (outer larger than any tunnel MTU)', () => {
    for (const payloadLen of [1460, 1500, 8000, 65000]) {
      const t = tunnel();
      const pkt = fromPeer({ payloadLen });
      const { r, bytes } = decap(t, fromRemote(pkt));
      expect(r.verdict).toBe(Verdict.Forward);
      expect(bytes).toEqual(pkt);
    }
  });

  it('R06: IPv4 fragments are for the kernel to reassemble; a fragment handed to us is dropped and counted', () => {
    const t = tunnel();
    const frag = ipv4Packet({ src: REMOTE, dst: LOCAL, flagsFragment: 0x2000, payload: fromPeer() });
    expectDrop(t, decap(t, frag).r, 'rx_ipv4_fragment');
  });

  it('R14: drops protocol 41 from a source other than the remote, silently, and counts it', () => {
    const t = tunnel();
    const { r } = decap(t, fromRemote(fromPeer(), { src: '203.0.113.66' }));
    expectDrop(t, r, 'rx_wrong_outer_source');
    expect(t.counters.traffic[Traffic.rx_packets]).toBe(0);
  });

  it('R14: drops packets not addressed to our IPv4, and other protocols', () => {
    const t = tunnel();
    expectDrop(t, decap(t, fromRemote(fromPeer(), { dst: '192.0.2.2' })).r, 'rx_wrong_outer_destination');
    const udp = ipv4Packet({ src: REMOTE, dst: LOCAL, protocol: 17, payload: Buffer.alloc(8) });
    expectDrop(t, decap(t, udp).r, 'rx_not_protocol_41');
  });

  it('R15: drops unspecified, loopback, multicast, IPv4-mapped and IPv4-compatible inner sources', () => {
    for (const src of ['::', '::1', 'ff02::1', '::ffff:192.0.2.5', '::192.0.2.5']) {
      const t = tunnel();
      expectDrop(t, decap(t, fromRemote(fromPeer({ src }))).r, 'rx_bogus_inner_source');
    }
  });

  it('R17: the peer\'s link-local traffic is accepted (fe80::<IPv4> on both ends)', () => {
    const t = tunnel();
    const pkt = fromPeer({ src: 'fe80::c633:6401', dst: 'fe80::c000:201', hopLimit: 255 });
    expect(decap(t, fromRemote(pkt)).r.verdict).toBe(Verdict.Forward);
  });

  it('multicast crosses a configured tunnel: ff02::1 is encapsulated to the remote', () => {
    const t = tunnel();
    const { r } = encap(t, inner({ src: 'fe80::c000:201', dst: 'ff02::1' }));
    expect(r.verdict).toBe(Verdict.Forward);
    expect(r.outerDst).toBe(ip4(REMOTE));
    expect(decap(t, fromRemote(fromPeer({ src: 'fe80::c633:6401', dst: 'ff02::1' }))).r.verdict).toBe(Verdict.Forward);
  });

  it('drops malformed outer and inner headers by reason', () => {
    const t = tunnel();
    const good = fromRemote(fromPeer());
    const badCk = Buffer.from(good);
    badCk[10] ^= 0xff;
    expectDrop(t, decap(t, badCk).r, 'rx_bad_ipv4_checksum');
    expectDrop(t, decap(t, good.subarray(0, 19)).r, 'rx_malformed_ipv4');
    const notV6 = fromRemote(Buffer.alloc(40, 0x45));
    expectDrop(t, decap(t, notV6).r, 'rx_malformed_ipv6');
    const short = fromRemote(fromPeer().subarray(0, 50));
    expectDrop(t, decap(t, short).r, 'rx_malformed_ipv6');
  });

  it('bytes after the inner payload length are trimmed and counted, and the packet delivered (RFC 8200, as Linux)', () => {
    const t = tunnel();
    const pkt = fromPeer({ payloadLen: 100 });
    const wire = ipv4Packet({ src: REMOTE, dst: LOCAL, payload: Buffer.concat([pkt, Buffer.alloc(13, 0xee)]) });
    const { r, bytes } = decap(t, wire);
    expect(r.verdict).toBe(Verdict.Forward);
    expect(bytes).toEqual(pkt);
    expect(t.counters.traffic[Traffic.rx_trailing_bytes_trimmed]).toBe(1);
    expect(t.counters.traffic[Traffic.rx_bytes]).toBe(pkt.length);
  });

  it('IPv4 options the kernel filled in after checking the header (Record Route) are delivered from the raw socket; an embedder\'s bad checksum is still dropped', () => {
    const pkt = fromPeer();
    // Record Route with room for two addresses, pointer at the first free slot, then EOL padding
    const rr = Buffer.from([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const wire = ipv4Packet({ src: REMOTE, dst: LOCAL, options: rr, payload: pkt });
    wire.writeUInt32BE(ip4('198.51.100.77'), 23); // recorded on the way, checksum left as it was
    wire[22] = 8;
    const fromKernel = tunnel();
    const [buf, off] = withHeadroom(wire);
    const r = fromKernel.decapsulate(buf, off, wire.length, out, true);
    expect(r.verdict).toBe(Verdict.Forward);
    expect(buf.subarray(r.offset, r.offset + r.length)).toEqual(pkt);
    const embedder = tunnel();
    expectDrop(embedder, decap(embedder, wire).r, 'rx_bad_ipv4_checksum');
  });
});

describe('ICMPv4 errors (R11/R12) and the errors we originate (R19–R24)', () => {
  function errorAbout(t: Encapsulator, type: number, code: number, innerPkt: Buffer, quoteInner = 48): Buffer {
    const sent = encap(t, innerPkt).bytes;
    return ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(type, code, 0, sent.subarray(0, 20 + quoteInner)) });
  }

  it('R11: destination unreachable becomes ICMPv6 address unreachable toward the inner source', () => {
    for (const code of [0, 1, 2, 3, 10, 13]) {
      const t = tunnel();
      const pkt = inner({ src: '2001:db8:2::5' });
      const { r, bytes } = decap(t, errorAbout(t, 3, code, pkt));
      expect(r.verdict, `code ${code}`).toBe(Verdict.Reply);
      expect([bytes[40], bytes[41]]).toEqual([1, 3]);
      expect(formatIpv6(bytes, 8)).toBe('2001:db8:1::2');
      expect(formatIpv6(bytes, 24)).toBe('2001:db8:2::5');
      expect(bytes.subarray(48)).toEqual(pkt.subarray(0, 48));
      expect(checksum(bytes, 40, bytes.length - 40, ipv6PseudoHeaderSum(bytes, 8, 24, bytes.length - 40, 58))).toBe(0);
      expect(t.counters.traffic[Traffic.icmp6_errors_relayed]).toBe(1);
    }
  });

  it('R12: TTL exceeded in transit becomes ICMPv6 hop limit exceeded', () => {
    const t = tunnel();
    const { r, bytes } = decap(t, errorAbout(t, 11, 0, inner()));
    expect(r.verdict).toBe(Verdict.Reply);
    expect([bytes[40], bytes[41]]).toEqual([3, 0]);
  });

  it('R11: ignores source-route failures, reassembly timeouts, quotes too short or not ours', () => {
    const t = tunnel();
    expectDrop(t, decap(t, errorAbout(t, 3, 5, inner())).r, 'icmp4_ignored');
    expectDrop(t, decap(t, errorAbout(t, 11, 1, inner())).r, 'icmp4_ignored');
    expectDrop(t, decap(t, errorAbout(t, 3, 1, inner(), 8)).r, 'icmp4_malformed');
    const foreign = ipv4Packet({ src: '192.0.2.77', dst: REMOTE, payload: inner() });
    const e = ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(3, 1, 0, foreign.subarray(0, 68)) });
    expectDrop(t, decap(t, e).r, 'icmp4_not_ours');
    const echo = ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(8, 0, 0, Buffer.alloc(8)) });
    expectDrop(t, decap(t, echo).r, 'icmp4_ignored');
  });

  it('R20: never answers an ICMPv6 error, neither with Packet Too Big nor by relaying', () => {
    const t = tunnel({ mtu: 1280 });
    const err = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:ffff::9', nextHeader: 58, payload: Buffer.concat([Buffer.from([1, 3, 0, 0, 0, 0, 0, 0]), Buffer.alloc(1300)]) });
    expectDrop(t, encap(t, err).r, 'tx_too_big');
    expect(t.counters.traffic[Traffic.icmp6_packet_too_big_sent]).toBe(0);
    const small = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:ffff::9', nextHeader: 58, payload: Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]) });
    expectDrop(t, decap(t, errorAbout(t, 3, 1, small)).r, 'icmp4_not_relayable');
  });

  it('R11: no relay about a packet sent to a multicast group (RFC 4443 §2.4(e.3)), such as a router solicitation the far end had no socket for yet', () => {
    const t = tunnel();
    const rs = inner({ src: 'fe80::c000:201', dst: 'ff02::2', payload: Buffer.from([133, 0, 0, 0, 0, 0, 0, 0]) });
    expectDrop(t, decap(t, errorAbout(t, 3, 2, rs)).r, 'icmp4_not_relayable');
    expect(t.counters.traffic[Traffic.icmp6_errors_relayed]).toBe(0);
  });

  it('R22: never to an unspecified or multicast source', () => {
    for (const src of ['::', 'ff02::1']) {
      const t = tunnel();
      const { r } = encap(t, inner({ src, payloadLen: 1500 }));
      expectDrop(t, r, 'tx_too_big');
      expect(t.counters.traffic[Traffic.icmp6_packet_too_big_sent]).toBe(0);
    }
  });

  it('R23: rate-limited by a token bucket; suppressed errors are counted', () => {
    const clock = new ManualClock();
    const t = tunnel({ icmpRate: 10, icmpBurst: 3 }, { clock: clock.fn });
    const verdicts = () => encap(t, inner({ payloadLen: 1500 })).r.verdict;
    expect([verdicts(), verdicts(), verdicts(), verdicts()]).toEqual([Verdict.Reply, Verdict.Reply, Verdict.Reply, Verdict.Drop]);
    expect(t.counters.traffic[Traffic.icmp6_rate_limited]).toBe(1);
    clock.advance(100); // one token at 10/s
    expect([verdicts(), verdicts()]).toEqual([Verdict.Reply, Verdict.Drop]);
    expect(t.counters.drops[Drop.tx_too_big]).toBe(6);
  });

  it('R23: icmpRate 0 sends no error at all, not even a first burst', () => {
    const t = tunnel({ icmpRate: 0, icmpBurst: 10 });
    expect(encap(t, inner({ payloadLen: 1500 })).r.verdict).toBe(Verdict.Drop);
    expect(t.counters.traffic[Traffic.icmp6_packet_too_big_sent]).toBe(0);
    expect(t.counters.traffic[Traffic.icmp6_rate_limited]).toBe(1);
  });

  it('R23: a flood of oversized packets does not use up the budget for relayed ICMPv4 errors (a bucket each)', () => {
    const t = tunnel({ icmpRate: 1, icmpBurst: 2 }, { clock: new ManualClock().fn });
    for (let i = 0; i < 10; i++) encap(t, inner({ payloadLen: 1500 }));
    expect(t.counters.traffic[Traffic.icmp6_packet_too_big_sent]).toBe(2);
    expect(decap(t, errorAbout(t, 3, 1, inner())).r.verdict).toBe(Verdict.Reply);
  });
});

describe('6to4 (RFC 3056, RFC 3964)', () => {
  const six = (o = {}) => tunnel({ mode: '6to4', ...o });
  const fromSite = (o: { src?: string; dst?: string; outerSrc?: string; outerDst?: string } = {}) =>
    ipv4Packet({
      src: o.outerSrc ?? PEER_SITE_V4,
      dst: o.outerDst ?? LOCAL,
      payload: ipv6Packet({ src: o.src ?? `${PEER_SITE}1`, dst: o.dst ?? `${OUR_SITE}1` }),
    });

  it('R25: the tunnel address is 2002:V4ADDR::1/16; non-global IPv4 refused without the lab override', () => {
    const t = six();
    expect(formatIpv6(t.config.address.addr)).toBe('2002:c000:201::1');
    expect(t.config.address.len).toBe(16);
    expect(() => six({ allowNonGlobal: false })).toThrow(/local: "192.0.2.1".*global unicast.*documentation/);
    expect(() => six({ local: '10.0.0.1', allowNonGlobal: false })).toThrow(/private/);
    expect(() => six({ relay: '192.88.99.1' })).toThrow(/RFC 7526/);
  });

  it('R28: a 2002:: destination goes to its embedded IPv4; anything else to the relay', () => {
    const t = six();
    const direct = encap(t, ipv6Packet({ src: `${OUR_SITE}1`, dst: `${PEER_SITE}42` }));
    expect(direct.r.outerDst).toBe(ip4(PEER_SITE_V4));
    expect(direct.bytes.readUInt32BE(16)).toBe(ip4(PEER_SITE_V4));
    expect(refChecksum(direct.bytes.subarray(0, 20))).toBe(0);
    const native = encap(t, ipv6Packet({ src: `${OUR_SITE}1`, dst: '2001:db8:5::1' }));
    expect(native.r.outerDst).toBe(ip4(RELAY));
    expect(native.bytes.readUInt32BE(16)).toBe(ip4(RELAY));
  });

  it('R28: without a relay, native destinations are dropped and counted (no built-in relay, RFC 7526)', () => {
    const t = six({ relay: undefined });
    expectDrop(t, encap(t, ipv6Packet({ src: `${OUR_SITE}1`, dst: '2001:db8:5::1' })).r, 'tx_6to4_no_relay');
  });

  it('R31: never sends to a bogus embedded IPv4; R32: never encapsulates to link-local or multicast', () => {
    const t = six();
    expectDrop(t, encap(t, ipv6Packet({ src: `${OUR_SITE}1`, dst: '2002:7f00:1::1' })).r, 'tx_6to4_bogus_embedded_ipv4');
    expectDrop(t, encap(t, ipv6Packet({ src: `${OUR_SITE}1`, dst: '2002:e000:1::1' })).r, 'tx_6to4_bogus_embedded_ipv4');
    expectDrop(t, encap(t, ipv6Packet({ src: `${OUR_SITE}1`, dst: 'ff02::1' })).r, 'tx_6to4_bogus_destination');
    expectDrop(t, encap(t, ipv6Packet({ src: 'fe80::1', dst: 'fe80::2' })).r, 'tx_6to4_bogus_destination');
  });

  it('accepts a 6to4 peer whose source embeds the outer source, and native traffic from the relay', () => {
    const t = six();
    expect(decap(t, fromSite()).r.verdict).toBe(Verdict.Forward);
    expect(decap(t, fromSite({ src: '2001:db8:5::1', outerSrc: RELAY })).r.verdict).toBe(Verdict.Forward);
  });

  it('R29: drops a 2002:: source that does not embed the outer IPv4 source', () => {
    const t = six();
    expectDrop(t, decap(t, fromSite({ outerSrc: '203.0.113.99' })).r, 'rx_6to4_spoofed_source');
  });

  it('R29: drops a native source unless the outer source is the configured relay', () => {
    const t = six();
    expectDrop(t, decap(t, fromSite({ src: '2001:db8:5::1', outerSrc: PEER_SITE_V4 })).r, 'rx_6to4_not_from_relay');
    const none = six({ relay: undefined });
    expectDrop(none, decap(none, fromSite({ src: '2001:db8:5::1', outerSrc: RELAY })).r, 'rx_6to4_not_from_relay');
  });

  it('R30: accepts only our own /48 (no transit), and needs a 6to4 address on at least one side', () => {
    const t = six();
    expectDrop(t, decap(t, fromSite({ dst: '2002:cb00:7101::1' })).r, 'rx_6to4_not_our_prefix');
    expectDrop(t, decap(t, fromSite({ dst: '2001:db8:9::1' })).r, 'rx_6to4_not_our_prefix');
    expectDrop(t, decap(t, fromSite({ src: '2001:db8:5::1', dst: '2001:db8:9::1', outerSrc: RELAY })).r, 'rx_6to4_not_our_prefix');
  });

  it('R31: drops bogus outer IPv4 sources', () => {
    const t = six();
    // 127.0.0.1 embedded consistently, so only R31 can catch it
    expectDrop(t, decap(t, fromSite({ src: '2002:7f00:1::1', outerSrc: '127.0.0.1' })).r, 'rx_6to4_bogus_outer_ipv4');
    expectDrop(t, decap(t, fromSite({ src: '2002:e000:1::1', outerSrc: '224.0.0.1' })).r, 'rx_6to4_bogus_outer_ipv4');
  });

  it('R32: drops bogus inner addresses at the 6to4 boundary', () => {
    for (const src of ['fe80::1', 'fec0::1']) {
      const t = six();
      expectDrop(t, decap(t, fromSite({ src, outerSrc: RELAY })).r, 'rx_6to4_bogus_inner_address');
    }
    const t = six();
    expectDrop(t, decap(t, fromSite({ dst: 'fe80::1' })).r, 'rx_6to4_bogus_inner_address');
  });
});

describe('6to4 relay router (RFC 3056 §5)', () => {
  const relay = () => tunnel({ mode: '6to4', local: RELAY, relay: undefined, role: 'relay' });
  const toRelay = (src: string, dst: string, outerSrc: string) =>
    ipv4Packet({ src: outerSrc, dst: RELAY, payload: ipv6Packet({ src, dst }) });

  it('carries a 6to4 site\'s traffic to native IPv6, checking the source embeds the outer IPv4 (R29)', () => {
    const t = relay();
    expect(decap(t, toRelay(`${OUR_SITE}1`, '2001:db8:5::2', LOCAL)).r.verdict).toBe(Verdict.Forward);
    expectDrop(t, decap(t, toRelay(`${OUR_SITE}1`, '2001:db8:5::2', PEER_SITE_V4)).r, 'rx_6to4_spoofed_source');
  });

  it('refuses tunnelled native sources and 6to4-to-6to4 transit (RFC 3964 §5.2)', () => {
    const t = relay();
    expectDrop(t, decap(t, toRelay('2001:db8:5::9', '2001:db8:5::2', LOCAL)).r, 'rx_6to4_not_from_relay');
    expectDrop(t, decap(t, toRelay(`${OUR_SITE}1`, `${PEER_SITE}1`, LOCAL)).r, 'rx_6to4_not_our_prefix');
  });

  it('sends native replies to the site\'s embedded IPv4 (R28)', () => {
    const t = relay();
    const { r } = encap(t, ipv6Packet({ src: '2001:db8:5::2', dst: `${OUR_SITE}1` }));
    expect(r.outerDst).toBe(ip4(LOCAL));
  });

  it('a relay with a relay, or a role on 6in4, is a configuration error', () => {
    expect(() => tunnel({ mode: '6to4', local: RELAY, role: 'relay' })).toThrow(/relay: .*does not use another relay/);
    expect(() => tunnel({ role: 'relay' })).toThrow(/role: .*6to4 only/);
  });
});

describe('Foo-over-UDP framing for embedders (Linux fou, ipproto 41)', () => {
  /** A UDP datagram carrying `payload`, checksum computed here independently (RFC 768). */
  function fouDatagram(payload: Buffer, src: string, dst: string, sport: number, dport: number, csum: 'zero' | 'good' | 'bad'): Buffer {
    const u = Buffer.alloc(8 + payload.length);
    u.writeUInt16BE(sport, 0);
    u.writeUInt16BE(dport, 2);
    u.writeUInt16BE(u.length, 4);
    payload.copy(u, 8);
    if (csum !== 'zero') {
      const pseudo = Buffer.alloc(12);
      pseudo.writeUInt32BE(ip4(src), 0);
      pseudo.writeUInt32BE(ip4(dst), 4);
      pseudo[9] = 17;
      pseudo.writeUInt16BE(u.length, 10);
      const ck = refChecksum(Buffer.concat([pseudo, u])) || 0xffff;
      u.writeUInt16BE(csum === 'good' ? ck : ck ^ 0x0101, 6);
    }
    return ipv4Packet({ src, dst, protocol: 17, payload: u });
  }

  const fou = (o: Partial<TunnelOptions> = {}) => tunnel({ encap: 'fou', encapDport: 5555, encapPort: 6666, ...o });

  it('encapsulate writes IPv4 protocol 17 + UDP 6666 → 5555 + the untouched packet; zero checksum unless asked', () => {
    const p = inner({ payloadLen: 100 });
    const { r, bytes } = encap(fou(), p);
    expect(r.verdict).toBe(Verdict.Forward);
    expect([bytes[9], bytes.readUInt16BE(2), bytes.readUInt16BE(20), bytes.readUInt16BE(22), bytes.readUInt16BE(24), bytes.readUInt16BE(26)]).toEqual([17, 28 + p.length, 6666, 5555, 8 + p.length, 0]);
    expect(refChecksum(bytes.subarray(0, 20))).toBe(0);
    expect(bytes.subarray(28)).toEqual(p);
    const withCsum = encap(fou({ encapCsum: true }), p).bytes;
    expect(withCsum.readUInt16BE(26)).toBe(fouDatagram(p, LOCAL, REMOTE, 6666, 5555, 'good').readUInt16BE(26));
  });

  it('decapsulate takes our port with a zero or correct checksum from any source port, drops a wrong checksum or port', () => {
    const p = inner({ src: '2001:db8:1::1', dst: '2001:db8:1::2' });
    for (const csum of ['zero', 'good'] as const) {
      const { r, bytes } = decap(fou(), fouDatagram(p, REMOTE, LOCAL, 40_000, 6666, csum));
      expect(r.verdict).toBe(Verdict.Forward);
      expect(bytes).toEqual(p);
    }
    const t = fou();
    expectDrop(t, decap(t, fouDatagram(p, REMOTE, LOCAL, 40_000, 6666, 'bad')).r, 'rx_bad_udp_checksum');
    expectDrop(t, decap(t, fouDatagram(p, REMOTE, LOCAL, 40_000, 5555, 'zero')).r, 'rx_wrong_udp_port');
    expectDrop(t, decap(t, fouDatagram(p, '203.0.113.9', LOCAL, 6666, 6666, 'zero')).r, 'rx_wrong_outer_source');
    // without FOU, UDP is not ours
    const plain = tunnel();
    expectDrop(plain, decap(plain, fouDatagram(p, REMOTE, LOCAL, 40_000, 6666, 'zero')).r, 'rx_not_protocol_41');
  });

  it('R07 with FOU: "fragmentation needed, MTU 1400" makes the tunnel MTU 1372 (m − 28)', () => {
    const t = fou({ pmtu: 'dynamic' });
    const quoted = inner({ payloadLen: 1420 });
    const [buf, off] = withHeadroom(quoted);
    t.icmpv4Error(3, 4, 1400, ip4(REMOTE), buf, off, quoted.length, out);
    expect(t.mtuFor(ip4(REMOTE))).toBe(1372);
  });
});
