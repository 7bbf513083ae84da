/** TUN offload: cutting TCP super-packets into segments (TX) and merging segments back (GRO, RX). */
import { describe, expect, it } from 'vitest';
import { PROTO_TCP } from '../src/packet/tcp.js';
import { VNET, VNET_GSO_TCPV6, VNET_HDR_LEN } from '../src/packet/vnet.js';
import { TcpCoalescer } from '../src/tun/coalesce.js';
import { completeChecksum, cutSuperPacket, superPacketSegments } from '../src/tun/segment.js';
import { asKernelHandsIt, ipv6Packet, tcp6Segment, tcpChecksumOk } from './helpers/packets.js';

const tcpSegment = (seq: number, payload: Buffer, flags = 0x10, options = Buffer.alloc(0)) => tcp6Segment({ seq, payload, flags, options });

const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff));
const ts = Buffer.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamp

describe('TSO segmentation (TX)', () => {
  it('cuts a 5000-byte super-packet into 1388-byte segments with seq, flags, lengths and checksums right', () => {
    const sup = tcpSegment(1000, data, 0x18 | 0x01, ts); // ACK PSH FIN
    asKernelHandsIt(sup, 40);
    const out = Buffer.alloc(8 * 2048);
    const n = cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1388, out, 64, 2048, 8);
    expect(n).toBe(4);
    let got = Buffer.alloc(0);
    for (let i = 0; i < n; i++) {
      const o = i * 2048 + 64;
      const seg = out.subarray(o, o + 40 + out.readUInt16BE(o + 4));
      expect(tcpChecksumOk(seg)).toBe(true);
      expect(seg.readUInt32BE(44)).toBe(1000 + i * 1388);
      expect(seg[53] & 0x09).toBe(i === n - 1 ? 0x09 : 0); // PSH and FIN only on the last
      expect(seg.subarray(60, 72)).toEqual(ts); // options copied
      got = Buffer.concat([got, seg.subarray(72)]);
    }
    expect(got).toEqual(data);
  });

  it('refuses what it cannot cut (not TCP, TCP not where the kernel said, no segment size)', () => {
    const udp = ipv6Packet({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: 17, payload: Buffer.alloc(100) });
    expect(cutSuperPacket(udp, 0, udp.length, PROTO_TCP, 40, 50, Buffer.alloc(4096), 0, 2048, 2)).toBe(-1);
    const sup = tcpSegment(1, data);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 48, 1388, Buffer.alloc(8 * 2048), 0, 2048, 8)).toBe(-1);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 0, Buffer.alloc(4096), 0, 2048, 2)).toBe(-1);
    expect(superPacketSegments(sup, 0, sup.length, PROTO_TCP, 40, 100)).toBe(50);
    // segments that would not fit their stride, or the buffer, are refused rather than overlapped
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1388, Buffer.alloc(8 * 1024), 0, 1024, 8)).toBe(-1);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1388, Buffer.alloc(2048), 0, 2048, 8)).toBe(-1);
  });

  it('cuts a super-packet a few segments at a time, the same bytes as all at once', () => {
    const sup = tcpSegment(7, data, 0x18 | 0x01, ts);
    asKernelHandsIt(sup, 40);
    const whole = Buffer.alloc(8 * 2048);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1000, whole, 0, 2048, 8)).toBe(5);
    const parts = Buffer.alloc(8 * 2048);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1000, parts, 0, 2048, 2, 0)).toBe(2);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1000, parts, 2 * 2048, 2048, 2, 2)).toBe(2);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1000, parts, 4 * 2048, 2048, 2, 4)).toBe(1);
    expect(cutSuperPacket(sup, 0, sup.length, PROTO_TCP, 40, 1000, parts, 5 * 2048, 2048, 2, 5)).toBe(0);
    expect(parts).toEqual(whole);
  });

  it('completes a checksum the kernel left partial', () => {
    const p = tcpSegment(5, Buffer.from('hello world'));
    const partial = Buffer.from(p);
    // what the kernel hands over: the pseudo-header sum in the field
    const len = p.length - 40;
    let s = len + 6;
    for (let i = 8; i < 40; i += 2) s += p.readUInt16BE(i);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    partial.writeUInt16BE(s, 56);
    expect(completeChecksum(partial, 0, partial.length, 40, 16)).toBe(true);
    expect(partial).toEqual(p);
  });
});

describe('GRO coalescing (RX)', () => {
  const segs = [0, 1, 2].map((i) => tcpSegment(5000 + i * 1000, data.subarray(i * 1000, (i + 1) * 1000), i === 2 ? 0x18 : 0x10, ts));

  it('merges consecutive segments of a flow into one super-packet with a TCPv6 virtio header', () => {
    const c = new TcpCoalescer();
    const out = Buffer.alloc(70_000);
    c.start(out, 64, segs[0], 0, segs[0].length);
    expect(c.tryAppend(segs[1], 0, segs[1].length)).toBe(true);
    expect(c.tryAppend(segs[2], 0, segs[2].length)).toBe(true);
    const [off, len] = c.finish();
    expect(off).toBe(64 - VNET_HDR_LEN);
    const h = out.subarray(off, off + VNET_HDR_LEN);
    expect([h[VNET.FLAGS], h[VNET.GSO_TYPE], h.readUInt16LE(VNET.GSO_SIZE), h.readUInt16LE(VNET.CSUM_START), h.readUInt16LE(VNET.CSUM_OFFSET), h.readUInt16LE(VNET.HDR_LEN)]).toEqual([1, VNET_GSO_TCPV6, 1000, 40, 16, 72]);
    const p = out.subarray(64, off + len);
    expect(p.readUInt16BE(4)).toBe(32 + 3000);
    expect(p.subarray(72)).toEqual(data.subarray(0, 3000));
    expect(p[53] & 0x08).toBe(0x08); // PSH from the last segment
  });

  it('does not merge across a gap, another flow, different options, or after PSH', () => {
    const out = Buffer.alloc(70_000);
    const c = new TcpCoalescer();
    c.start(out, 64, segs[0], 0, segs[0].length);
    expect(c.tryAppend(segs[2], 0, segs[2].length)).toBe(false); // sequence gap
    const otherPort = Buffer.from(segs[1]);
    otherPort.writeUInt16BE(5002, 40);
    expect(c.tryAppend(otherPort, 0, otherPort.length)).toBe(false);
    const otherTs = tcpSegment(6000, data.subarray(1000, 2000), 0x10, Buffer.from([1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2]));
    expect(c.tryAppend(otherTs, 0, otherTs.length)).toBe(false);
    expect(c.segments).toBe(1);
    const [off, len] = c.finish();
    expect(out.subarray(off, off + VNET_HDR_LEN)).toEqual(Buffer.alloc(VNET_HDR_LEN)); // a single segment goes as it came
    expect(out.subarray(off + VNET_HDR_LEN, off + len)).toEqual(segs[0]);
    const d = new TcpCoalescer();
    d.start(out, 64, segs[2], 0, segs[2].length); // PSH set: the run is closed
    expect(d.tryAppend(tcpSegment(8000, data.subarray(0, 1000), 0x10, ts), 0, 1084)).toBe(false);
    expect(TcpCoalescer.eligible(tcpSegment(1, Buffer.alloc(10), 0x02), 0, 70)).toBe(false); // SYN
  });

  it('never merges a segment whose TCP checksum is wrong (the kernel would not check it after us)', () => {
    const out = Buffer.alloc(70_000);
    const c = new TcpCoalescer();
    const corrupt = Buffer.from(segs[1]);
    corrupt[100] ^= 0x01; // one payload bit flipped in flight
    expect(TcpCoalescer.eligible(segs[1], 0, segs[1].length)).toBe(true);
    expect(TcpCoalescer.eligible(corrupt, 0, corrupt.length)).toBe(false);
    c.start(out, 64, segs[0], 0, segs[0].length);
    expect(c.tryAppend(corrupt, 0, corrupt.length)).toBe(false);
  });
});
