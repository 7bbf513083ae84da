/**
 * Cross-checks against implementations we did not write: scapy builds packets we decapsulate
 * and parses what we emit; tshark dissects our output and must find nothing malformed and no
 * bad checksum. These would fail if our bytes were wrong.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Verdict, DROP_REASONS } from '../src/index.js';
import { PROTO_TCP } from '../src/packet/tcp.js';
import { upperLayerOffset } from '../src/packet/ipv6.js';
import { cutSuperPacket } from '../src/tun/segment.js';
import { scapy, tshark } from './helpers/external.js';
import { asKernelHandsIt, icmpv4Error, ipv4Packet } from './helpers/packets.js';
import { LOCAL, runTunnel, tunnel } from './helpers/tunnels.js';

let ref: Record<string, string>;
const hex = (name: string) => Buffer.from(ref[name], 'hex');

beforeAll(() => {
  ref = scapy<Record<string, string>>({ op: 'build' });
});

const run = runTunnel;

interface Parsed {
  [k: string]: string | number | boolean;
}

describe('scapy builds, we decapsulate', () => {
  it('6in4: the inner packet comes out byte for byte (R16), scapy\'s 1900-byte inner too (R06)', () => {
    const t = tunnel();
    expect(run(t, 'decap', hex('outer_6in4')).bytes).toEqual(hex('inner_6in4'));
    expect(run(t, 'decap', hex('outer_big')).bytes).toEqual(hex('inner_big'));
  });

  it('R14: scapy\'s packet from a wrong source is dropped and counted', () => {
    const t = tunnel();
    const { r } = run(t, 'decap', hex('outer_spoofed'));
    expect(r.verdict).toBe(Verdict.Drop);
    expect(DROP_REASONS[r.reason]).toBe('rx_wrong_outer_source');
  });

  it('6to4: peer site and relay accepted; R29 spoofs dropped', () => {
    const t = tunnel({ mode: '6to4' });
    expect(run(t, 'decap', hex('outer_6to4')).bytes).toEqual(hex('inner_6to4'));
    expect(run(t, 'decap', hex('outer_native_via_relay')).bytes).toEqual(hex('inner_native'));
    expect(DROP_REASONS[run(t, 'decap', hex('outer_6to4_spoofed')).r.reason]).toBe('rx_6to4_spoofed_source');
    expect(DROP_REASONS[run(t, 'decap', hex('outer_native_not_relay')).r.reason]).toBe('rx_6to4_not_from_relay');
  });
});

describe('we emit, scapy and tshark parse', () => {
  let ours: Record<string, Buffer>;
  let parsed: Record<string, Parsed>;

  beforeAll(() => {
    const t = tunnel({ ttl: 'inherit', tos: 'inherit', pmtu: 'dynamic' });
    const six = tunnel({ mode: '6to4', tos: 0x20 });
    const sent = run(tunnel(), 'encap', hex('tx_6in4')).bytes;
    const broker = tunnel();
    const unreach = ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(3, 1, 0, sent.subarray(0, 20 + 60)) });
    const ttlExceeded = ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(11, 0, 0, sent) });
    ours = {
      encap_6in4: run(t, 'encap', hex('tx_6in4')).bytes,
      ptb: run(tunnel(), 'encap', hex('tx_too_big')).bytes,
      encap_6to4_direct: run(six, 'encap', hex('tx_6to4_direct')).bytes,
      encap_6to4_relay: run(six, 'encap', hex('tx_6to4_relay')).bytes,
      relayed_unreach: run(broker, 'decap', unreach).bytes,
      relayed_time_exceeded: run(broker, 'decap', ttlExceeded).bytes,
    };
    parsed = scapy<Record<string, Parsed>>({ op: 'parse', packets: Object.fromEntries(Object.entries(ours).map(([k, v]) => [k, v.toString('hex')])) });
  });

  it('R01/R02/R10/R13: scapy reads our outer header as we meant it, checksum valid', () => {
    const p = parsed.encap_6in4;
    expect(p).toMatchObject({ version: 4, ihl: 5, proto: 41, src: '192.0.2.1', dst: '198.51.100.1', ttl: 17, tos: 0xb9, flags: 2, frag: 0, ip_checksum_ok: true });
    expect(p.len).toBe(hex('tx_6in4').length + 20);
    expect(p.ip_payload).toBe(ref.tx_6in4);
    expect(p.inner_hlim).toBe(17);
  });

  it('R28: 6to4 direct and relayed outer destinations, as scapy reads them', () => {
    expect(parsed.encap_6to4_direct).toMatchObject({ dst: '198.51.100.7', tos: 0x20, ttl: 64, flags: 0, ip_checksum_ok: true, inner_dst: '2002:c633:6407::5' });
    expect(parsed.encap_6to4_relay).toMatchObject({ dst: '203.0.113.1', ip_checksum_ok: true, inner_dst: '2001:db8:5::1' });
  });

  it('R08/R19/R21: scapy reads our Packet Too Big: type 2, MTU 1480, valid checksum, ≤ 1280 bytes, quoting the packet', () => {
    const p = parsed.ptb;
    expect(p).toMatchObject({ icmp_kind: 'ptb', icmp_type: 2, icmp_code: 0, mtu: 1480, icmp_checksum_ok: true, src: '2001:db8:1::2', dst: '2001:db8:1::2' });
    expect(ours.ptb.length).toBe(1280);
    expect(p.quoted).toBe(ref.tx_too_big.slice(0, (1280 - 48) * 2));
  });

  it('R11/R12: scapy reads our relayed ICMPv6 errors', () => {
    expect(parsed.relayed_unreach).toMatchObject({ icmp_kind: 'unreach', icmp_type: 1, icmp_code: 3, icmp_checksum_ok: true, dst: '2001:db8:1::2' });
    expect(parsed.relayed_time_exceeded).toMatchObject({ icmp_kind: 'timeexceeded', icmp_type: 3, icmp_code: 0, icmp_checksum_ok: true });
  });

  it('tshark dissects everything we emit with no malformed packet, no bad checksum, no warning', () => {
    const names = Object.keys(ours);
    const frames = tshark(Object.values(ours), ['frame.number', 'ip.checksum.status', 'icmpv6.checksum.status', '_ws.malformed', '_ws.expert.severity', '_ws.expert.message', 'ipv6.src'], ['ip.check_checksum:TRUE']);
    expect(frames).toHaveLength(names.length);
    frames.forEach((f, i) => {
      const where = `${names[i]}: ${f['_ws.expert.message']}`;
      expect(f['_ws.malformed'], where).toBe('');
      expect(f['ip.checksum.status'], where).not.toContain('0');
      expect(f['icmpv6.checksum.status'], where).not.toContain('0');
      // expert severities: 6291456 warning, 8388608 error
      for (const s of f['_ws.expert.severity'].split(';').filter(Boolean)) expect(Number(s), where).toBeLessThan(6291456);
    });
    expect(frames[names.indexOf('encap_6in4')]['ipv6.src']).toBe('2001:db8:1::2');
  });
});

describe('TSO segmentation, checked by scapy (plain, and behind Hop-by-Hop + Segment Routing headers)', () => {
  const MSS = 1388;

  for (const name of ['tso_plain', 'tso_srh']) {
    it(`${name}: every segment has a checksum scapy accepts, the right sequence number, flags and bytes`, () => {
      const sup = hex(name);
      const tcpOff = upperLayerOffset(sup, 0, sup.length, PROTO_TCP);
      expect(tcpOff).toBe(name === 'tso_srh' ? 40 + 8 + 40 : 40);
      asKernelHandsIt(sup, tcpOff);
      const out = Buffer.alloc(8 * 2048);
      const n = cutSuperPacket(sup, 0, sup.length, PROTO_TCP, tcpOff, MSS, out, 0, 2048, 8);
      expect(n).toBe(Math.ceil(5000 / MSS));
      const segs = Object.fromEntries(Array.from({ length: n }, (_, i) => [`s${i}`, out.subarray(i * 2048, i * 2048 + 40 + out.readUInt16BE(i * 2048 + 4)).toString('hex')]));
      const parsed = scapy<Record<string, Parsed>>({ op: 'parse', packets: segs });
      let payload = '';
      for (let i = 0; i < n; i++) {
        const p = parsed[`s${i}`];
        expect(p, `segment ${i}`).toMatchObject({ tcp_checksum_ok: true, tcp_seq: 1000 + i * MSS, tcp_flags: i === n - 1 ? 0x18 : 0x10, srh: name === 'tso_srh' });
        payload += p.tcp_payload;
      }
      expect(payload).toBe(Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff)).toString('hex'));
    });
  }
});
