/**
 * The bytes OffloadTun hands out and writes, pinned: a fixed pseudo-random corpus of what the
 * kernel hands a TUN with TSO/USO (TCP and UDP super-packets, with options, extension headers,
 * ECN, bad sizes, flipped bytes) read through it, and of what the loop writes (interleaved TCP and
 * UDP flows, PSH/FIN/SYN, bad and zero checksums, changed labels and hop limits, junk, failing
 * frames) merged by it, hashed. The hash was recorded before the offload maths moved from
 * src/packet to src/tun (issue 34): a refactor of the segmenter or the coalescers must leave it.
 */
import type { PacketBatch } from '../src/io/batch.js';
import { batchOver } from './helpers/batch.js';
import { createHash, type Hash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SLOT_HEADROOM, SLOT_SIZE } from '../src/io/slots.js';
import { FakeTun } from '../src/testing.js';
import { OffloadTun } from '../src/tun/offload.js';
import { testArena } from './helpers/packets.js';

/** linux/virtio_net.h, written out so the corpus does not depend on the code under test. */
const GSO_TCPV6 = 4;
const GSO_UDP_L4 = 5;
const GSO_ECN = 0x80;
const NEEDS_CSUM = 1;

/** mulberry32: a small deterministic generator, so the corpus is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sum(b: Uint8Array, from: number, to: number, initial = 0): number {
  let s = initial;
  for (let i = from; i < to; i += 2) s += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  return s;
}
const fold = (s: number): number => {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
};

/** An IPv6 packet: `ext` bytes of hop-by-hop options (0 or a multiple of 8), then `l4` (TCP or UDP). */
function ipv6(proto: number, l4: Buffer, opts: { ext: number; label: number; tclass: number; hop: number; src: number; dst: number }): Buffer {
  const p = Buffer.alloc(40 + opts.ext + l4.length);
  p.writeUInt32BE(((6 << 28) | (opts.tclass << 20) | opts.label) >>> 0, 0);
  p.writeUInt16BE(opts.ext + l4.length, 4);
  p[6] = opts.ext > 0 ? 0 : proto;
  p[7] = opts.hop;
  p.writeUInt32BE(0x20010db8, 8);
  p[23] = opts.src;
  p.writeUInt32BE(0x20010db8, 24);
  p[39] = opts.dst;
  if (opts.ext > 0) {
    p[40] = proto;
    p[41] = opts.ext / 8 - 1;
    p[42] = 1; // PadN over the rest
    p[43] = opts.ext - 4;
  }
  l4.copy(p, 40 + opts.ext);
  return p;
}

/** The pseudo-header sum over the addresses, the L4 length and the protocol, not folded. */
const pseudo = (p: Buffer, l4Len: number, proto: number): number => sum(p, 8, 40, (l4Len >>> 16) + (l4Len & 0xffff) + proto);

/** Fills the checksum at l4Off + csumAt: the full one, or (partial) the pseudo-header sum as the kernel leaves it. */
function checksum(p: Buffer, l4Off: number, csumAt: number, proto: number, partial: boolean): void {
  const l4Len = p.length - l4Off;
  p.writeUInt16BE(0, l4Off + csumAt);
  if (partial) {
    p.writeUInt16BE(fold(pseudo(p, l4Len, proto)), l4Off + csumAt);
    return;
  }
  const ck = ~fold(sum(p, l4Off, p.length, pseudo(p, l4Len, proto))) & 0xffff;
  p.writeUInt16BE(proto === 17 && ck === 0 ? 0xffff : ck, l4Off + csumAt);
}

function tcp(seq: number, flags: number, options: number, payload: Buffer, port: number): Buffer {
  const t = Buffer.alloc(20 + options + payload.length);
  t.writeUInt16BE(port, 0);
  t.writeUInt16BE(443, 2);
  t.writeUInt32BE(seq >>> 0, 4);
  t.writeUInt32BE(0x01020304, 8);
  t[12] = ((20 + options) / 4) << 4;
  t[13] = flags;
  t.writeUInt16BE(502, 14);
  for (let i = 0; i < options; i++) t[20 + i] = 1; // NOPs
  payload.copy(t, 20 + options);
  return t;
}

function udp(payload: Buffer, port: number, lengthField?: number): Buffer {
  const u = Buffer.alloc(8 + payload.length);
  u.writeUInt16BE(port, 0);
  u.writeUInt16BE(4433, 2);
  u.writeUInt16BE(lengthField ?? (8 + payload.length) & 0xffff, 4);
  payload.copy(u, 8);
  return u;
}

function frame(pkt: Buffer, gsoType: number, gsoSize: number, flags: number, csumStart: number, csumOffset: number, hdrLen: number): Buffer {
  const h = Buffer.alloc(10);
  h[0] = flags;
  h[1] = gsoType;
  h.writeUInt16LE(hdrLen, 2);
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(csumStart, 6);
  h.writeUInt16LE(csumOffset, 8);
  return Buffer.concat([h, pkt]);
}

const DATA = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 151 + (i >> 8) * 7 + 3) & 0xff));

/** One frame as a TUN with TSO/USO might hand it over, sometimes broken. */
function kernelFrame(r: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const kind = pick(['tcp-gso', 'tcp-gso', 'udp-gso', 'udp-gso', 'plain-partial', 'plain', 'other-gso', 'tiny'] as const);
  const ext = r() < 0.2 ? 8 * int(1, 2) : 0;
  const ip = { ext, label: r() < 0.5 ? 0 : int(0, 0xfffff), tclass: int(0, 255), hop: int(1, 255), src: int(1, 3), dst: int(1, 3) };
  let f: Buffer;
  if (kind === 'tcp-gso' || kind === 'udp-gso') {
    const isTcp = kind === 'tcp-gso';
    const len = pick([0, 1, int(1, 2000), int(2000, 30_000), int(30_000, 65_000)]);
    const start = int(0, 4000);
    const pl = DATA.subarray(start, start + len);
    const gsoSize = pick([0, int(1, 99), int(100, 1440), 1428, 1200, int(1441, 2100)]);
    const l4 = isTcp ? tcp(int(0, 0xffffffff), pick([0x10, 0x18, 0x19, 0x90, 0x98, 0xd8, 0x11, 0x50]), 4 * int(0, 10), pl, int(1000, 1003)) : udp(pl, int(1000, 1003));
    if (isTcp && r() < 0.05) l4[12] = int(0, 15) << 4; // a data offset that is too short, or runs past the packet
    let p = ipv6(isTcp ? 6 : 17, l4, ip);
    if (p.length > 65_535 + 40) p = p.subarray(0, 65_535 + 40);
    const l4Off = 40 + ext;
    const csumAt = isTcp ? 16 : 6;
    checksum(p, l4Off, csumAt, isTcp ? 6 : 17, true);
    const wrongStart = r() < 0.08;
    const wrongOffset = r() < 0.05;
    const gsoType = (isTcp ? GSO_TCPV6 : GSO_UDP_L4) | (r() < 0.2 ? GSO_ECN : 0);
    f = frame(p, gsoType, gsoSize, r() < 0.05 ? 0 : NEEDS_CSUM, wrongStart ? l4Off + 8 : l4Off, wrongOffset ? 4 : csumAt, l4Off + (isTcp ? 20 : 8));
  } else if (kind === 'plain-partial' || kind === 'plain') {
    const isTcp = r() < 0.5;
    const start = int(0, 4000);
    const pl = DATA.subarray(start, start + int(0, 1500));
    const l4 = isTcp ? tcp(int(0, 0xffffffff), 0x18, 4 * int(0, 3), pl, 999) : udp(pl, 999);
    const p = ipv6(isTcp ? 6 : 17, l4, ip);
    const l4Off = 40 + ext;
    const csumAt = isTcp ? 16 : 6;
    checksum(p, l4Off, csumAt, isTcp ? 6 : 17, kind === 'plain-partial');
    f = kind === 'plain-partial' ? frame(p, 0, 0, NEEDS_CSUM, l4Off, r() < 0.1 ? 60_000 : csumAt, 0) : frame(p, 0, 0, 0, 0, 0, 0);
  } else if (kind === 'other-gso') {
    const p = ipv6(6, tcp(1, 0x10, 0, DATA.subarray(0, 3000), 7), ip);
    checksum(p, 40 + ext, 16, 6, true);
    f = frame(p, pick([1, 3, 6, 0x7f]), 1000, NEEDS_CSUM, 40 + ext, 16, 60);
  } else {
    f = Buffer.alloc(int(0, 12), 0x60);
  }
  const flips = r() < 0.15 ? int(1, 4) : 0;
  for (let i = 0; i < flips && f.length > 0; i++) f[int(0, f.length - 1)] = int(0, 255);
  return f;
}

function hashRead(h: Hash, seed: number): void {
  const r = rng(seed);
  const drops: string[] = [];
  const fake = new FakeTun();
  const dev = new OffloadTun(fake, (why) => drops.push(why), { udp: r() < 0.7 });
  const b = batchOver(testArena(72 * SLOT_SIZE), SLOT_SIZE, SLOT_HEADROOM);
  const { arena, lens } = b;
  const rounds = 1 + Math.floor(r() * 3);
  for (let round = 0; round < rounds; round++) {
    const k = 1 + Math.floor(r() * 6);
    for (let i = 0; i < k; i++) fake.inject(kernelFrame(r));
    for (;;) {
      const batch = 1 + Math.floor(r() * 70);
      const n = dev.read(b, batch);
      h.update(`read ${n}:`);
      for (let i = 0; i < n; i++) {
        h.update(`${lens[i]};`);
        h.update(arena.subarray(i * SLOT_SIZE + SLOT_HEADROOM, i * SLOT_SIZE + SLOT_HEADROOM + lens[i]));
      }
      if (n === 0 && !dev.holding()) break;
    }
  }
  h.update(`drops ${drops.join(',')} ${JSON.stringify(dev.superPackets)}\n`);
}

/** A TUN whose writes fail now and then, so each packet's result is the one of its frame. */
/** Fails every 7th frame it is given, whether written one by one or gathered from pieces. */
class FlakyTun extends FakeTun {
  private count = 0;
  constructor(gather: boolean) {
    super({ gather });
    const frames = this.writeFrames;
    if (frames) this.writeFrames = (b, entries, pieces) => this.fail(b.errs, frames(b, entries, pieces));
  }
  override write(b: PacketBatch, n: number): number {
    return this.fail(b.errs, super.write(b, n));
  }
  private fail(errs: Int32Array, n: number): number {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      errs[i] = this.count++ % 7 === 3 ? -105 : 0;
      if (errs[i] === 0) ok++;
    }
    return ok;
  }
}

interface Flow {
  tcp: boolean;
  seq: number;
  size: number;
  port: number;
  src: number;
  label: number;
  hop: number;
  options: number;
}

/** One packet of the loop's traffic: mostly the next segment of a flow, sometimes something else. */
function loopPacket(r: () => number, flows: Flow[]): Buffer {
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const x = r();
  if (x < 0.04) {
    const p = ipv6(58, DATA.subarray(0, int(8, 200)), { ext: 0, label: 0, tclass: 0, hop: 64, src: 1, dst: 2 });
    return p;
  }
  if (x < 0.06) return Buffer.from(DATA.subarray(int(0, 100), int(101, 300))); // junk
  const f = flows[Math.floor(r() * flows.length)];
  const y = r();
  if (y < 0.02) f.label = int(0, 0xfffff);
  if (y > 0.98) f.hop = int(1, 255);
  const short = r() < 0.06;
  const len = short ? int(0, f.size - 1) : r() < 0.02 ? f.size + int(1, 40) : f.size;
  const start = int(0, 3000);
  const pl = DATA.subarray(start, start + len);
  const ip = { ext: 0, label: f.label, tclass: r() < 0.02 ? 4 : 0, hop: f.hop, src: f.src, dst: 9 };
  let p: Buffer;
  if (f.tcp) {
    const flags = r() < 0.04 ? 0x18 : r() < 0.02 ? 0x11 : r() < 0.02 ? 0x12 : r() < 0.02 ? 0x30 : r() < 0.02 ? 0x50 : 0x10;
    const seq = r() < 0.03 ? f.seq + 1000 : f.seq;
    const t = tcp(seq, flags, r() < 0.03 ? 12 - f.options : f.options, pl, f.port);
    const z = r();
    if (z < 0.015) t[11] ^= 1; // another ack
    else if (z < 0.03) t[15] ^= 1; // another window
    else if (z < 0.045 && t.length > 32 && t[12] === 0x80) t[31] = 0; // the same option length, other options
    else if (z < 0.05) t[13] |= 0x20; // URG
    p = ipv6(6, t, ip);
    checksum(p, 40, 16, 6, false);
    f.seq = (seq + len) >>> 0;
  } else {
    p = ipv6(17, udp(pl, f.port, r() < 0.02 ? 9 : undefined), ip);
    checksum(p, 40, 6, 17, false);
    if (r() < 0.03) p.writeUInt16BE(0, 46);
  }
  if (r() < 0.03) p[p.length - 1] ^= 0x5a; // a checksum that no longer verifies
  return p;
}

function hashWrite(h: Hash, seed: number, gather: boolean): void {
  const r = rng(seed);
  const fake = new FlakyTun(gather);
  const dev = new OffloadTun(fake, () => undefined, { udp: r() < 0.7 });
  const nflows = 1 + Math.floor(r() * 12);
  const flows: Flow[] = Array.from({ length: nflows }, (_, i) => ({
    tcp: r() < 0.6,
    seq: Math.floor(r() * 0xffffffff),
    size: [1428, 1200, 1, 500, 1440][Math.floor(r() * 5)],
    port: 2000 + (i % 5),
    src: 1 + (i % 3),
    label: r() < 0.5 ? 0 : 12345,
    hop: 64,
    options: r() < 0.3 ? 12 : 0,
  }));
  const writes = 1 + Math.floor(r() * 4);
  for (let w = 0; w < writes; w++) {
    const n = 1 + Math.floor(r() * 200);
    const pkts = Array.from({ length: n }, () => loopPacket(r, flows));
    const arena = testArena(n * 2048 + 64);
    const offs = new Int32Array(n);
    const lens = new Int32Array(n);
    pkts.forEach((p, i) => {
      offs[i] = i * 2048 + 64;
      lens[i] = p.length;
      p.copy(arena, offs[i]);
    });
    const b = batchOver(arena, 2048, 64, { offs, lens });
    const errs = b.errs.subarray(0, n).fill(1);
    const written = dev.write(b, n);
    h.update(`write ${written} ${errs.join(',')}:`);
    for (const f of fake.written.splice(0)) {
      h.update(`${f.length};`);
      h.update(f);
    }
  }
  h.update(`${JSON.stringify(dev.superPackets)}\n`);
}

describe('offload bytes, pinned across the move of the offload maths', () => {
  it('reads: super-packets and plain frames from a fixed corpus come out byte for byte as before', () => {
    const h = createHash('sha256');
    for (let seed = 1; seed <= 400; seed++) hashRead(h, seed);
    expect(h.digest('hex')).toBe('1858018b8737e9c1952e6c8cd00d3d80099bcbcd8939055fbe100199bd3e2ea7');
  }, 120_000);

  it('writes: a fixed corpus of flows merges into frames byte for byte as before, each packet with its frame\'s result', () => {
    // merged frames gathered from where their packets were received, and copied together as
    // before the gather write: the same frames, the same results
    for (const gather of [true, false]) {
      const h = createHash('sha256');
      for (let seed = 1; seed <= 300; seed++) hashWrite(h, seed, gather);
      expect(h.digest('hex'), gather ? 'gathered' : 'copied').toBe('9d7a0266ab31e74903fd1dcb23703f41e797107d5ed95bebadf9a71350b88586');
    }
  }, 120_000);
});
