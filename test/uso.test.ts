/**
 * UDP offload on the TUN (USO) with a fake device: UDP super-packets as the kernel hands them
 * over (VIRTIO_NET_HDR_GSO_UDP_L4, checksum left partial) are cut into datagrams, and runs of
 * datagrams are merged into one frame on the way in. Checksums are checked with the reference
 * sum in test/helpers, not src/packet's. The real TUN and kernel are in test/uso-kernel.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PROTO_UDP } from '../src/packet/udp.js';
import { VNET, VNET_F_NEEDS_CSUM, VNET_GSO_UDP_L4, VNET_HDR_LEN } from '../src/packet/vnet.js';
import { FakeTun } from '../src/testing.js';
import { UdpCoalescer, UDP_MAX_SEGMENTS } from '../src/tun/coalesce.js';
import { OffloadTun, type OffloadDrop } from '../src/tun/offload.js';
import { readAll, writeAll } from './helpers/drain.js';
import { cutSuperPacket } from '../src/tun/segment.js';
import { asKernelHandsIt, tcp6Segment, udp6Datagram, udpChecksumOk } from './helpers/packets.js';

const data = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31 + 11) & 0xff));

/** A UDP super-packet as a TUN with USO hands it over: its header's length the whole, checksum partial. */
function udpSuper(payload: Buffer, gsoSize: number, sport = 5001): Buffer {
  const p = udp6Datagram({ payload, sport });
  asKernelHandsIt(p, 40, 6);
  const h = Buffer.alloc(VNET_HDR_LEN);
  h[VNET.FLAGS] = VNET_F_NEEDS_CSUM;
  h[VNET.GSO_TYPE] = VNET_GSO_UDP_L4;
  h.writeUInt16LE(48, VNET.HDR_LEN);
  h.writeUInt16LE(gsoSize, VNET.GSO_SIZE);
  h.writeUInt16LE(40, VNET.CSUM_START);
  h.writeUInt16LE(6, VNET.CSUM_OFFSET);
  return Buffer.concat([h, p]);
}

/** What the kernel does with a merged frame: cut it back into datagrams (with our cutter). */
function cutFrame(f: Buffer): Buffer[] {
  if (f[VNET.GSO_TYPE] === 0) return [f.subarray(VNET_HDR_LEN)];
  expect(f[VNET.GSO_TYPE]).toBe(VNET_GSO_UDP_L4);
  expect(f[VNET.FLAGS]).toBe(VNET_F_NEEDS_CSUM);
  expect([f.readUInt16LE(VNET.CSUM_START), f.readUInt16LE(VNET.CSUM_OFFSET), f.readUInt16LE(VNET.HDR_LEN)]).toEqual([40, 6, 48]);
  const pkt = f.subarray(VNET_HDR_LEN);
  const gso = f.readUInt16LE(VNET.GSO_SIZE);
  const out = Buffer.alloc(UDP_MAX_SEGMENTS * 2048);
  const n = cutSuperPacket(pkt, 0, pkt.length, PROTO_UDP, 40, gso, out, 0, 2048, UDP_MAX_SEGMENTS);
  expect(n).toBeGreaterThan(1);
  return Array.from({ length: n }, (_, i) => Buffer.from(out.subarray(i * 2048, i * 2048 + 40 + out.readUInt16BE(i * 2048 + 4))));
}

describe('USO reads: UDP super-packets cut into datagrams', () => {
  it('cuts 1,200-byte datagrams (a short last one) across small batches, every checksum right, lengths set', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake, () => undefined, { udp: true });
    const payload = data.subarray(0, 1200 * 40 + 333);
    fake.inject(udpSuper(payload, 1200));
    const got = readAll(dev, 7);
    expect(got).toHaveLength(41);
    for (const [i, d] of got.entries()) {
      const chunk = i < 40 ? 1200 : 333;
      expect(d.length, `datagram ${i}`).toBe(48 + chunk);
      expect(d.readUInt16BE(4)).toBe(8 + chunk);
      expect(d.readUInt16BE(44)).toBe(8 + chunk);
      expect(udpChecksumOk(d), `checksum of datagram ${i}`).toBe(true);
      expect(d.subarray(48).equals(payload.subarray(i * 1200, i * 1200 + chunk))).toBe(true);
    }
  });

  it('without USO granted, a UDP super-packet is a type we did not ask for: dropped and counted', () => {
    const fake = new FakeTun();
    const drops: OffloadDrop[] = [];
    const dev = new OffloadTun(fake, (r) => drops.push(r));
    fake.inject(udpSuper(data.subarray(0, 3000), 1200));
    expect(readAll(dev, 8)).toEqual([]);
    expect(drops).toEqual(['tx_gso_unsupported']);
  });

  it('a UDP super-packet whose checksum is not left at the UDP header is malformed: dropped, the next frame read', () => {
    const fake = new FakeTun();
    const drops: OffloadDrop[] = [];
    const dev = new OffloadTun(fake, (r) => drops.push(r), { udp: true });
    const bad = udpSuper(data.subarray(0, 3000), 1200);
    bad.writeUInt16LE(16, VNET.CSUM_OFFSET);
    const lone = udp6Datagram({ payload: Buffer.from('after') });
    fake.inject(bad, Buffer.concat([Buffer.alloc(VNET_HDR_LEN), lone]));
    expect(readAll(dev, 8)).toEqual([lone]);
    expect(drops).toEqual(['tx_gso_malformed']);
  });

  it('property: any payload and segment size cut into datagrams that rebuild the payload, each with a right checksum', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1452 }), fc.integer({ min: 1, max: 65_000 }), fc.integer({ min: 1, max: 64 }), (gso, size, batch) => {
        const fake = new FakeTun();
        const dev = new OffloadTun(fake, () => undefined, { udp: true });
        const payload = data.subarray(0, Math.min(size, gso * 64));
        fake.inject(udpSuper(payload, gso));
        const got = readAll(dev, batch);
        expect(got).toHaveLength(Math.ceil(payload.length / gso));
        for (const d of got) expect(udpChecksumOk(d)).toBe(true);
        expect(Buffer.concat(got.map((d) => d.subarray(48))).equals(payload)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});

describe('USO writes: runs of datagrams merged into one frame', () => {
  const dgrams = (n: number, size: number, sport = 5001, last = size) =>
    Array.from({ length: n }, (_, i) => udp6Datagram({ payload: data.subarray(i * size, i * size + (i === n - 1 ? last : size)), sport }));

  it('40 equal datagrams and a short last one go out as one GSO frame that cuts back into exactly them', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake, () => undefined, { udp: true });
    const pkts = dgrams(41, 1200, 5001, 100);
    const { frames, errs, written } = writeAll(dev, fake, pkts);
    expect(written).toBe(41);
    expect(errs.every((e) => e === 0)).toBe(true);
    expect(frames).toHaveLength(1);
    expect(frames[0].readUInt16LE(VNET.GSO_SIZE)).toBe(1200);
    const back = cutFrame(frames[0]);
    expect(back.map((b) => b.toString('hex'))).toEqual(pkts.map((p) => p.toString('hex')));
  });

  it('without USO granted, every datagram is its own frame', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    const { frames } = writeAll(dev, fake, dgrams(5, 1200));
    expect(frames).toHaveLength(5);
    for (const f of frames) expect(f.subarray(0, VNET_HDR_LEN).equals(Buffer.alloc(VNET_HDR_LEN))).toBe(true);
  });

  it('two interleaved flows make two frames; a bad or zero checksum, a longer datagram and the 65th datagram each end or skip a run', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake, () => undefined, { udp: true });
    const a = dgrams(6, 1000, 1111);
    const b = dgrams(6, 900, 2222);
    const mixed = a.flatMap((p, i) => [p, b[i]]);
    const { frames } = writeAll(dev, fake, mixed);
    expect(frames).toHaveLength(2);
    expect(frames.flatMap(cutFrame).map((x) => x.toString('hex')).sort()).toEqual(mixed.map((x) => x.toString('hex')).sort());

    const bad = udp6Datagram({ payload: data.subarray(0, 1000), sport: 1111 });
    bad[100] ^= 0xff;
    const zero = udp6Datagram({ payload: data.subarray(0, 1000), sport: 1111 });
    zero.writeUInt16BE(0, 46);
    const r = writeAll(dev, fake, [...dgrams(3, 1000, 1111), bad, zero, udp6Datagram({ payload: data.subarray(0, 1100), sport: 1111 })]);
    // the run goes first (flow order); the bad and zero-checksum datagrams go alone, for the kernel to
    // judge; the longer one starts a run of its own, which alone is a plain frame
    expect(r.frames.map((f) => f[VNET.GSO_TYPE])).toEqual([VNET_GSO_UDP_L4, 0, 0, 0]);
    expect(r.frames.slice(1).map((f) => f.subarray(VNET_HDR_LEN).toString('hex'))).toEqual([bad, zero].map((x) => x.toString('hex')).concat(r.frames[3].subarray(VNET_HDR_LEN).toString('hex')));
    expect(r.written).toBe(6);

    const many = writeAll(dev, fake, dgrams(UDP_MAX_SEGMENTS + 1, 500, 3333));
    expect(many.frames.map((f) => (f[VNET.GSO_TYPE] === 0 ? 1 : cutFrame(f).length))).toEqual([UDP_MAX_SEGMENTS, 1]);
  });

  it('keeps order within a flow: a lone datagram of a flow with a run pending waits for the run', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake, () => undefined, { udp: true });
    const run = dgrams(4, 1000, 1111);
    const tiny = udp6Datagram({ payload: Buffer.alloc(0), sport: 1111 });
    const { frames } = writeAll(dev, fake, [...run, tiny]);
    expect(frames.map((f) => f[VNET.GSO_TYPE])).toEqual([VNET_GSO_UDP_L4, 0]);
  });

  it('TCP and UDP of the same addresses and ports merge separately', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake, () => undefined, { udp: true });
    const u = dgrams(3, 1000, 5001);
    const t = [0, 1, 2].map((i) => tcp6Segment({ seq: 1 + i * 1000, payload: data.subarray(i * 1000, (i + 1) * 1000), sport: 5001 }));
    const { frames, written } = writeAll(dev, fake, [u[0], t[0], u[1], t[1], u[2], t[2]]);
    expect(written).toBe(6);
    expect(frames.map((f) => f[VNET.GSO_TYPE]).sort()).toEqual([4, VNET_GSO_UDP_L4]);
  });

  it('property: any datagram sizes and flows come out, cut back, as exactly what went in, per flow in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ flow: fc.integer({ min: 0, max: 3 }), size: fc.oneof(fc.constant(1200), fc.integer({ min: 0, max: 1452 })) }), { minLength: 1, maxLength: 120 }),
        (spec) => {
          const fake = new FakeTun();
          const dev = new OffloadTun(fake, () => undefined, { udp: true });
          const pkts = spec.map((s, i) => udp6Datagram({ payload: data.subarray(i, i + s.size), sport: 7000 + s.flow }));
          const { frames, written } = writeAll(dev, fake, pkts);
          expect(written).toBe(pkts.length);
          const out = frames.flatMap(cutFrame);
          const byFlow = (xs: Buffer[]) => [0, 1, 2, 3].map((f) => xs.filter((x) => x.readUInt16BE(40) === 7000 + f).map((x) => x.toString('hex')));
          expect(byFlow(out)).toEqual(byFlow(pkts));
          for (const f of frames) expect(f.length - VNET_HDR_LEN - 40).toBeLessThanOrEqual(65535);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('UdpCoalescer', () => {
  it('merges only UDP right behind the IPv6 header whose length field matches the packet', () => {
    const d = udp6Datagram({ payload: data.subarray(0, 100) });
    expect(UdpCoalescer.eligible(d, 0, d.length)).toBe(true);
    expect(UdpCoalescer.eligible(d, 0, d.length - 1)).toBe(false);
    const empty = udp6Datagram({ payload: Buffer.alloc(0) });
    expect(UdpCoalescer.eligible(empty, 0, empty.length)).toBe(false);
  });
});
