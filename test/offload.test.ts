/**
 * TUN offload behind the device (OffloadTun over the in-memory FakeTun): what the kernel hands a
 * TUN with IFF_VNET_HDR and TUNSETOFFLOAD, cut into plain packets for the loop, and the loop's
 * packets merged back into super-packets. No root needed.
 */
import { batchOver } from './helpers/batch.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Encapsulator } from '../src/index.js';
import { TunnelEngine } from '../src/engine-api.js';
import { VNET, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, VNET_HDR_LEN } from '../src/packet/vnet.js';
import { FakeTransport, FakeTun } from '../src/testing.js';
import { OffloadTun, type OffloadDrop } from '../src/tun/offload.js';
import { readAll, writeAll } from './helpers/drain.js';
import { asKernelHandsIt, ipv6Packet, refChecksum, tcp6Segment, tcpChecksumOk, testArena, type TcpSegmentSpec } from './helpers/packets.js';
import { BROKER } from './helpers/tunnels.js';

type Seg = Omit<TcpSegmentSpec, 'dst'>;
const tcp6 = (s: Seg) => tcp6Segment({ ...s, dst: '2001:db8:9::1' });

/** A frame as the kernel hands it over: virtio_net_hdr, then the packet. */
function frame(pkt: Buffer, gsoType = 0, gsoSize = 0): Buffer {
  const h = Buffer.alloc(VNET_HDR_LEN);
  if (gsoType !== 0) {
    h[VNET.FLAGS] = VNET_F_NEEDS_CSUM;
    h[VNET.GSO_TYPE] = gsoType;
    h.writeUInt16LE(40 + 20, VNET.HDR_LEN);
    h.writeUInt16LE(gsoSize, VNET.GSO_SIZE);
    h.writeUInt16LE(40, VNET.CSUM_START);
    h.writeUInt16LE(16, VNET.CSUM_OFFSET);
  }
  return Buffer.concat([h, pkt]);
}

function superPacket(seq: number, payload: Buffer, gsoSize: number): Buffer {
  const p = tcp6({ seq, payload, flags: 0x18 });
  asKernelHandsIt(p, 40);
  return frame(p, VNET_GSO_TCPV6, gsoSize);
}

const data = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 13 + 7) & 0xff));

/** Cuts a written frame back into its segments' payloads (or the lone packet). */
function payloadOf(f: Buffer): Buffer {
  return f.subarray(VNET_HDR_LEN + 60);
}

describe('OffloadTun reads: super-packets cut into the caller\'s slots', () => {
  it('cuts a super-packet across batches smaller than its segment count, bytes and checksums intact', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    const small = tcp6({ seq: 1, payload: Buffer.from('before'), flags: 0x18 });
    fake.inject(frame(small), superPacket(1000, data.subarray(0, 14_000), 1400), frame(tcp6({ seq: 9, payload: Buffer.from('after') })));
    const got = readAll(dev, 4);
    expect(got).toHaveLength(1 + 10 + 1);
    expect(got[0]).toEqual(small);
    const segs = got.slice(1, 11);
    segs.forEach((s, i) => {
      expect(tcpChecksumOk(s)).toBe(true);
      expect(s.readUInt32BE(44)).toBe(1000 + i * 1400);
      expect(s[53] & 0x08).toBe(i === 9 ? 0x08 : 0); // PSH only on the last
    });
    expect(Buffer.concat(segs.map((s) => s.subarray(60)))).toEqual(data.subarray(0, 14_000));
    expect(got[11].subarray(60).toString()).toBe('after');
  });

  it('finishes a partial checksum, and counts GSO types it never asked for and uncuttable super-packets', () => {
    const fake = new FakeTun();
    const drops: OffloadDrop[] = [];
    const dev = new OffloadTun(fake, (r) => drops.push(r));
    const p = tcp6({ seq: 5, payload: Buffer.from('partial') });
    const partial = Buffer.from(p);
    asKernelHandsIt(partial, 40);
    const f = frame(partial);
    f[VNET.FLAGS] = VNET_F_NEEDS_CSUM;
    f.writeUInt16LE(40, VNET.CSUM_START);
    f.writeUInt16LE(16, VNET.CSUM_OFFSET);
    const udpGso = frame(ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', nextHeader: 17, payload: Buffer.alloc(3000) }), 5, 1000);
    const noPartial = superPacket(1, data.subarray(0, 3000), 1000);
    noPartial[VNET.FLAGS] = 0;
    fake.inject(f, udpGso, noPartial);
    expect(readAll(dev, 8)).toEqual([p]);
    expect(drops).toEqual(['tx_gso_unsupported', 'tx_gso_malformed']);
  });
});

describe('OffloadTun writes: GRO keyed by flow', () => {
  const seg = (flow: number, i: number, extra: Partial<Seg> = {}) =>
    tcp6({ seq: 10_000 * flow + i * 1000, payload: data.subarray(i * 1000, (i + 1) * 1000), sport: 5000 + flow, ...extra });

  it('merges interleaved flows each into one super-packet, and reports every packet written', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    const pkts = [seg(1, 0), seg(2, 0), seg(1, 1), seg(2, 1), seg(1, 2), seg(2, 2)];
    const { frames, errs, written } = writeAll(dev, fake, pkts);
    expect(frames).toHaveLength(2);
    for (const f of frames) {
      expect(f[VNET.GSO_TYPE]).toBe(VNET_GSO_TCPV6);
      expect(f.readUInt16LE(VNET.GSO_SIZE)).toBe(1000);
      expect(payloadOf(f)).toEqual(data.subarray(0, 3000));
    }
    expect(frames.map((f) => f.readUInt16BE(VNET_HDR_LEN + 40))).toEqual([5001, 5002]);
    expect(errs).toEqual([0, 0, 0, 0, 0, 0]);
    expect(written).toBe(6);
  });

  it('keeps flows with different flow labels apart, as Linux does', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    const { frames } = writeAll(dev, fake, [seg(1, 0, { flowLabel: 1 }), seg(1, 1, { flowLabel: 2 })]);
    expect(frames).toHaveLength(2);
    expect(frames.every((f) => f[VNET.GSO_TYPE] === 0)).toBe(true);
  });

  it('keeps a flow in order: a lone FIN goes after the merged segments before it', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    const fin = tcp6({ seq: 10_000 + 2000, payload: Buffer.alloc(0), flags: 0x11, sport: 5001 });
    const other = ipv6Packet({ src: '2001:db8:1::7', dst: '2001:db8:9::1' });
    const { frames } = writeAll(dev, fake, [seg(1, 0), seg(1, 1), other, fin]);
    // the merged run first, then what followed it in the batch
    expect(frames).toHaveLength(3);
    const order = frames.map((f) => (f[VNET_HDR_LEN + 6] === 6 ? f.readUInt32BE(VNET_HDR_LEN + 44) : -1));
    expect(order.indexOf(10_000)).toBeLessThan(order.indexOf(12_000));
    expect(payloadOf(frames[order.indexOf(10_000)])).toEqual(data.subarray(0, 2000));
  });

  it('gives each packet the result of the frame it went into', () => {
    const lone = ipv6Packet({ src: '2001:db8:1::7', dst: '2001:db8:9::1' });
    // a device that refuses the first frame of each call, written one by one or gathered
    const copying = new FakeTun({ gather: false });
    const write = copying.write.bind(copying);
    copying.write = (b, n) => {
      const k = write(b, n);
      b.errs[0] = 5;
      copying.written.splice(copying.written.length - n, 1);
      return k - 1;
    };
    // lone packets are one write, merged frames (copied together) another: both first frames fail
    const one = writeAll(new OffloadTun(copying), copying, [lone, seg(1, 0), seg(1, 1)]);
    expect(one.errs).toEqual([5, 5, 5]);
    expect(one.written).toBe(0);

    const gathering = new FakeTun();
    const frames = gathering.writeFrames!;
    gathering.writeFrames = (b, entries, pieces) => {
      const k = frames(b, entries, pieces);
      b.errs[0] = 5;
      gathering.written.splice(gathering.written.length - k, 1);
      return k - 1;
    };
    // one call, lone packets first: only the lone packet's frame fails
    const two = writeAll(new OffloadTun(gathering), gathering, [lone, seg(1, 0), seg(1, 1)]);
    expect(two.errs).toEqual([5, 0, 0]);
    expect(two.written).toBe(2);
  });
});

describe('TSO and GRO fuzzing', () => {
  it('any cut of any super-packet, merged back, gives the same bytes; a mutated frame never throws', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 100, max: 1440 }),
        fc.integer({ min: 1, max: 9 }),
        fc.array(fc.tuple(fc.nat(20_100), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        (payloadLen, gsoSize, batch, mutations) => {
          const fake = new FakeTun();
          const dev = new OffloadTun(fake, () => undefined);
          fake.inject(superPacket(77, data.subarray(0, payloadLen), gsoSize));
          const segs = readAll(dev, batch);
          expect(segs).toHaveLength(Math.ceil(payloadLen / gsoSize));
          expect(segs.every(tcpChecksumOk)).toBe(true);
          const back = new FakeTun();
          const { frames } = writeAll(new OffloadTun(back), back, segs);
          expect(Buffer.concat(frames.map(payloadOf))).toEqual(data.subarray(0, payloadLen));
          // the same frame with bytes flipped: dropped or cut, never an exception or an overrun
          const bad = superPacket(77, data.subarray(0, payloadLen), gsoSize);
          for (const [at, v] of mutations) if (at < bad.length) bad[at] = v;
          const f2 = new FakeTun();
          f2.inject(bad);
          for (const p of readAll(new OffloadTun(f2, () => undefined), batch)) expect(p.length).toBeLessThanOrEqual(65_535 + 40);
        },
      ),
      { numRuns: 150 },
    );
  }, 60_000);
});

describe('the engine over an offloading fake TUN', () => {
  it('sends a super-packet as tunnel-MTU protocol-41 packets, the kernel\'s outer header on each', async () => {
    const raw = new FakeTun();
    const sock = new FakeTransport(0xc0000232);
    const tunnel = new Encapsulator({ ...BROKER, ttl: 37, tos: 0x20 });
    const engine = new TunnelEngine(tunnel, new OffloadTun(raw), sock, { batchSize: 8 });
    engine.start();
    raw.inject(superPacket(1, data.subarray(0, 5 * 1420), 1420));
    await Promise.all([raw.drained(), sock.drained()]);
    expect(sock.sent).toHaveLength(5);
    for (const s of sock.sent) {
      expect(s.bytes.length).toBe(20 + 1480);
      expect([s.bytes[0], s.bytes[1], s.bytes[8], s.bytes[9]]).toEqual([0x45, 0x20, 37, 41]);
      expect(refChecksum(s.bytes.subarray(0, 20))).toBe(0);
      expect(tcpChecksumOk(s.inner)).toBe(true);
    }
    engine.stop();
  });
});

/** Writes packets of any size as the engine does (each after 64 bytes of headroom); returns the frames. */
function writeBig(dev: OffloadTun, fake: FakeTun, pkts: Buffer[]): Buffer[] {
  const offs = new Int32Array(pkts.length);
  const lens = new Int32Array(pkts.length);
  let at = 64;
  pkts.forEach((p, i) => {
    offs[i] = at;
    lens[i] = p.length;
    at += p.length + 64;
  });
  const arena = testArena(at);
  pkts.forEach((p, i) => p.copy(arena, offs[i]));
  expect(dev.write(batchOver(arena, arena.length, 0, { offs, lens }), pkts.length)).toBe(pkts.length);
  return fake.written.splice(0);
}

/** The largest merge: payloads 32,000 + 32,000 + 1,515 behind one 20-byte TCP header: TCP length 65,535. */
const BIG = Buffer.from(Array.from({ length: 65_515 }, (_, i) => (i * 7 + 3) & 0xff));
const biggest = (sport: number) => [
  tcp6({ seq: 1, payload: BIG.subarray(0, 32_000), sport }),
  tcp6({ seq: 32_001, payload: BIG.subarray(32_000, 64_000), sport }),
  tcp6({ seq: 64_001, payload: BIG.subarray(64_000), sport }),
];
/** A small packet of another flow, whose bytes a too-small merge room would overwrite. */
const bystander = (i: number) => tcp6({ seq: 5, payload: Buffer.from(`bystander ${i}`), sport: 6000 + i, flags: 0x18 });

describe('F3: GRO room sized for the largest merge', () => {
  it('a merge reaching TCP length 65,535 in scratch slot 0 leaves the next frame byte for byte intact', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    // the big flow takes slot 0, the bystanders the slots after it
    const pkts = [...biggest(5001), ...Array.from({ length: 4 }, (_, i) => bystander(i))];
    const frames = writeBig(dev, fake, pkts);
    const merged = frames.find((f) => f[VNET.GSO_TYPE] === VNET_GSO_TCPV6)!;
    expect(merged.length).toBe(VNET_HDR_LEN + 40 + 65_535);
    expect(merged.readUInt16BE(VNET_HDR_LEN + 4)).toBe(65_535);
    expect(payloadOf(merged)).toEqual(BIG);
    for (let i = 0; i < 4; i++) expect(frames).toContainEqual(Buffer.concat([Buffer.alloc(VNET_HDR_LEN), bystander(i)]));
  });

  it('the same merge in the last scratch slot fits: no RangeError, no byte past it', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    // 15 flows with two segments each occupy scratch slots 0..14; the big flow gets slot 15
    const pairs = Array.from({ length: 15 }, (_, i) => [
      tcp6({ seq: 1, payload: data.subarray(0, 1000), sport: 7000 + i }),
      tcp6({ seq: 1001, payload: data.subarray(1000, 2000), sport: 7000 + i }),
    ]);
    const pkts = [...pairs.map((p) => p[0]), ...biggest(5001), ...pairs.map((p) => p[1])];
    const frames = writeBig(dev, fake, pkts);
    const big = frames.filter((f) => f.readUInt16BE(VNET_HDR_LEN + 40) === 5001);
    expect(Buffer.concat(big.map(payloadOf))).toEqual(BIG);
    for (let i = 0; i < 15; i++) {
      const mine = frames.filter((f) => f.readUInt16BE(VNET_HDR_LEN + 40) === 7000 + i);
      expect(Buffer.concat(mine.map(payloadOf))).toEqual(data.subarray(0, 2000));
    }
  });

  it('GRO fuzzing at the size boundaries: any mix of flows, sizes up to the largest merge, every byte where it belongs', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            flow: fc.integer({ min: 0, max: 17 }),
            size: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 1500 }), weight: 6 }, { arbitrary: fc.constantFrom(21_838, 32_000, 32_767, 65_495), weight: 1 }),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        (specs) => {
          const fake = new FakeTun();
          const dev = new OffloadTun(fake);
          const seq = new Map<number, number>();
          const sent = new Map<number, Buffer[]>();
          const pkts = specs.map(({ flow, size }) => {
            const s = seq.get(flow) ?? 1;
            seq.set(flow, s + size);
            const payload = BIG.subarray(s % 100, (s % 100) + size);
            sent.set(flow, [...(sent.get(flow) ?? []), payload]);
            return tcp6({ seq: s, payload, sport: 8000 + flow });
          });
          const frames = writeBig(dev, fake, pkts);
          for (const [flow, payloads] of sent) {
            const mine = frames.filter((f) => f.readUInt16BE(VNET_HDR_LEN + 40) === 8000 + flow);
            for (const f of mine) expect(f.length - VNET_HDR_LEN - 40).toBe(f.readUInt16BE(VNET_HDR_LEN + 4));
            expect(Buffer.concat(mine.map(payloadOf))).toEqual(Buffer.concat(payloads));
          }
        },
      ),
      { numRuns: 60 },
    );
  }, 120_000);

  it('a super-packet whose segments would not fit the caller\'s slots is dropped and counted; what follows still comes out', () => {
    const fake = new FakeTun();
    const drops: OffloadDrop[] = [];
    const dev = new OffloadTun(fake, (r) => drops.push(r));
    const after = tcp6({ seq: 9, payload: Buffer.from('after') });
    const b = batchOver(Buffer.alloc(4 * 2048), 2048, 64);
    const { arena, lens } = b;
    // a small super-packet first: from then on the device reads whole frames into its own arena
    fake.inject(superPacket(1, data.subarray(0, 1000), 500));
    expect(dev.read(b, 4)).toBe(2);
    // then 3,000-byte segments for the caller's 2,048-byte slots
    fake.inject(superPacket(1001, data.subarray(0, 9000), 3000), frame(after));
    const n = dev.read(b, 4);
    expect(drops).toEqual(['tx_gso_malformed']);
    expect(n).toBe(1);
    expect(arena.subarray(64, 64 + lens[0])).toEqual(after);
  });

  it('flow order keys on the connection: a lone FIN whose flow label changed (Linux does on RTO) still waits for its merged frame', () => {
    const fake = new FakeTun();
    const dev = new OffloadTun(fake);
    const fin = tcp6({ seq: 2001, payload: Buffer.alloc(0), flags: 0x11, flowLabel: 0x12345 });
    const frames = writeAll(dev, fake, [tcp6({ seq: 1, payload: data.subarray(0, 1000), flowLabel: 7 }), tcp6({ seq: 1001, payload: data.subarray(1000, 2000), flowLabel: 7 }), fin]).frames;
    expect(frames).toHaveLength(2);
    expect(frames[0][VNET.GSO_TYPE]).toBe(VNET_GSO_TCPV6);
    expect(frames[1].subarray(VNET_HDR_LEN)).toEqual(fin);
  });
});

describe('F2: nothing waits for new traffic', () => {
  it('segments cut beyond what one wake takes go out without another readiness event', async () => {
    const raw = new FakeTun();
    const sock = new FakeTransport(0xc0000232);
    const tunnel = new Encapsulator(BROKER);
    // 8 packets a batch, 1 batch a wake: a 45-segment super-packet needs six wakes
    const engine = new TunnelEngine(tunnel, new OffloadTun(raw), sock, { batchSize: 8, maxBatchesPerWake: 1 });
    engine.start();
    raw.inject(superPacket(1, data.subarray(0, 45 * 400), 400));
    // the fake TUN is empty after the first read: only the engine itself can take the rest
    for (let i = 0; i < 100 && sock.sent.length < 45; i++) await new Promise((r) => setImmediate(r));
    expect(sock.sent).toHaveLength(45);
    expect(Buffer.concat(sock.sent.map((s) => s.inner.subarray(60)))).toEqual(data.subarray(0, 45 * 400));
    engine.stop();
  });
});
