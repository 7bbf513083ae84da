import { describe, expect, it } from 'vitest';
import { PacketResult, Traffic, Encapsulator, Verdict } from '../src/index.js';
import { clampMss } from '../src/encap/mss.js';
import { ipv6Packet, refChecksum, withHeadroom } from './helpers/packets.js';
import { BROKER } from './helpers/tunnels.js';

function syn(mss: number, flags = 0x02): Buffer {
  const tcp = Buffer.alloc(24);
  tcp.writeUInt16BE(40000, 0);
  tcp.writeUInt16BE(443, 2);
  tcp.writeUInt32BE(1, 4);
  tcp[12] = 6 << 4; // data offset: 24 bytes
  tcp[13] = flags;
  tcp.writeUInt16BE(65535, 14);
  tcp.set([2, 4, mss >> 8, mss & 0xff], 20);
  const pkt = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', nextHeader: 6, payload: tcp });
  const pseudo = Buffer.concat([pkt.subarray(8, 40), Buffer.from([0, 0, 0, 24, 0, 0, 0, 6])]);
  pkt.writeUInt16BE(refChecksum(Buffer.concat([pseudo, pkt.subarray(40)])), 56);
  return pkt;
}

const tcpChecksumOk = (p: Buffer) => refChecksum(Buffer.concat([p.subarray(8, 40), Buffer.from([0, 0, 0, p.length - 40, 0, 0, 0, 6]), p.subarray(40)])) === 0;

describe('--clamp-mss', () => {
  it('lowers a SYN\'s MSS to MTU − 60 with a valid TCP checksum; leaves smaller MSS and non-SYNs alone', () => {
    const p = syn(1440);
    expect(clampMss(p, 0, p.length, 1420)).toBe(true);
    expect(p.readUInt16BE(62)).toBe(1420);
    expect(tcpChecksumOk(p)).toBe(true);
    const small = syn(1200);
    expect(clampMss(small, 0, small.length, 1420)).toBe(false);
    const ack = syn(1440, 0x10);
    expect(clampMss(ack, 0, ack.length, 1420)).toBe(false);
  });

  it('the tunnel clamps SYNs both ways only when asked', () => {
    const on = new Encapsulator({ ...BROKER, clampMss: true, mtu: 1400 });
    const [buf, off] = withHeadroom(syn(1440));
    const r = on.encapsulate(buf, off, 64, new PacketResult());
    expect(r.verdict).toBe(Verdict.Forward);
    expect(buf.readUInt16BE(off + 62)).toBe(1340);
    expect(on.counters.traffic[Traffic.tcp_mss_clamped]).toBe(1);
    const off2 = new Encapsulator(BROKER);
    const [b2, o2] = withHeadroom(syn(1440));
    off2.encapsulate(b2, o2, 64, new PacketResult());
    expect(b2.readUInt16BE(o2 + 62)).toBe(1440);
  });
});
