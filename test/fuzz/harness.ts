/**
 * Fuzzing the pure engine: seeded, structured mutations of protocol-41 packets, ICMPv4 errors and
 * IPv6 packets with extension-header chains, fed to decapsulate, encapsulate and the error-queue
 * path of tunnels in every mode. Invariants checked for every input: nothing throws, exactly one
 * outcome is counted, an output lies inside the buffer, and what we forward is well formed.
 * `npm run fuzz -- --inputs 10000000` is the long run; the test suite runs a short one.
 */
import { packetOutcomes as outcomeCount } from '../helpers/tunnels.js';
import { PacketResult, Traffic, Encapsulator, Verdict, DROP_REASONS, type TunnelOptions } from '../../src/index.js';
import { checkIpv6 } from '../../src/packet/ipv6.js';
import { checksum } from '../../src/packet/checksum.js';

/** xorshift32: fast, seeded, reproducible. */
class Rng {
  constructor(private s: number) {
    if (this.s === 0) this.s = 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(buf: Buffer, off: number, n: number): void {
    for (let i = 0; i < n; i++) buf[off + i] = this.u32() & 0xff;
  }
}

const HEADROOM = 64;
const LOCAL = [192, 0, 2, 1];
const REMOTE = [198, 51, 100, 1];

const TUNNELS: Array<[string, TunnelOptions]> = [
  ['6in4 static', { mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64', clampMss: true }],
  ['6in4 dynamic inherit', { mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64', pmtu: 'dynamic', ttl: 'inherit', tos: 'inherit', mtu: 1280 }],
  ['6to4 site', { mode: '6to4', local: '192.0.2.1', relay: '203.0.113.1', allowNonGlobal: true, clampMss: true }],
  ['6to4 relay', { mode: '6to4', local: '192.0.2.1', role: 'relay', allowNonGlobal: true }],
];

const EXT_HEADERS = [0, 43, 44, 60] as const;
const ADDR_SEEDS = [
  [0x20, 0x01, 0x0d, 0xb8, 0, 1], // 2001:db8:1::
  [0x20, 0x02, 0xc0, 0x00, 0x02, 0x01], // our 6to4 site
  [0x20, 0x02, 0xc6, 0x33, 0x64, 0x07], // another 6to4 site
  [0x20, 0x02, 0x7f, 0, 0, 1], // 6to4 embedding 127.0.0.1
  [0xfe, 0x80, 0, 0, 0, 0], // link-local
  [0xff, 0x02, 0, 0, 0, 0], // multicast
  [0, 0, 0, 0, 0, 0], // ::/96
];

/** Writes a plausible IPv6 packet (maybe with an extension chain, maybe TCP SYN) at buf[off]; returns its length. */
function ipv6(r: Rng, buf: Buffer, off: number, maxLen: number): number {
  const len = Math.min(maxLen, 40 + r.int(r.int(4) === 0 ? 1600 : 120));
  r.bytes(buf, off, len);
  buf[off] = 0x60 | (buf[off] & 0x0f);
  buf.writeUInt16BE(Math.max(0, len - 40), off + 4);
  for (const a of [8, 24]) {
    const seed = r.pick(ADDR_SEEDS);
    for (let i = 0; i < seed.length; i++) buf[off + a + i] = seed[i];
  }
  // next header: ICMPv6 (maybe an error), TCP, or an extension chain
  const kind = r.int(4);
  let at = off + 40;
  let nhAt = off + 6;
  if (kind === 0) {
    for (let depth = r.int(5); depth > 0 && at + 8 <= off + len; depth--) {
      buf[nhAt] = r.pick(EXT_HEADERS);
      nhAt = at;
      buf[at + 1] = r.int(4);
      at += buf[nhAt === at ? at : at] === 44 ? 8 : (buf[at + 1] + 1) * 8;
    }
    if (nhAt < off + len) buf[nhAt] = r.pick([58, 6, 17]);
  } else if (kind === 1) {
    buf[nhAt] = 58;
    if (at < off + len) buf[at] = r.pick([1, 2, 3, 4, 128, 129, 135]);
  } else if (kind === 2) {
    buf[nhAt] = 6;
    if (at + 20 <= off + len) {
      buf[at + 13] = 0x02;
      buf[at + 12] = (5 + r.int(11)) << 4;
      if (at + 24 <= off + len) buf.set([2, 4, 0x05, 0xb4], at + 20);
    }
  }
  if (r.int(8) === 0) buf.writeUInt16BE(r.int(0x10000), off + 4); // lie about the length
  return len;
}

function ipv4Header(r: Rng, buf: Buffer, off: number, total: number, proto: number, src: number[], dst: number[]): void {
  buf[off] = 0x45;
  buf[off + 1] = r.int(256);
  buf.writeUInt16BE(total, off + 2);
  buf.writeUInt16BE(r.int(0x10000), off + 4);
  buf.writeUInt16BE(r.int(6) === 0 ? r.int(0x10000) : 0, off + 6);
  buf[off + 8] = 1 + r.int(255);
  buf[off + 9] = proto;
  buf.writeUInt16BE(0, off + 10);
  buf.set(src, off + 12);
  buf.set(dst, off + 16);
  buf.writeUInt16BE(checksum(buf, off, 20), off + 10);
}

const SOURCES = [REMOTE, LOCAL, [203, 0, 113, 1], [198, 51, 100, 7], [127, 0, 0, 1], [10, 1, 2, 3]];

/** One fuzz input: a protocol-41 packet, an ICMPv4 error, or noise; then mutated. Returns its length. */
function outerInput(r: Rng, buf: Buffer, off: number, max: number): number {
  const shape = r.int(10);
  let len: number;
  if (shape === 0) {
    len = r.int(200);
    r.bytes(buf, off, len);
    return len;
  }
  if (shape <= 5) {
    const inner = ipv6(r, buf, off + 20, max - 20);
    len = 20 + inner;
    ipv4Header(r, buf, off, len, r.int(10) === 0 ? r.pick([1, 4, 6, 17, 41]) : 41, r.pick(SOURCES), r.int(10) === 0 ? r.pick(SOURCES) : LOCAL);
    if (r.int(12) === 0) ipv4Header(r, buf, off + 20, inner, 41, REMOTE, LOCAL); // protocol 41 inside protocol 41
  } else if (shape <= 8) {
    // ICMPv4 error quoting (maybe) one of our packets
    const quoteInner = r.int(3) === 0 ? r.int(40) : ipv6(r, buf, off + 48, max - 48);
    const qlen = 20 + quoteInner;
    ipv4Header(r, buf, off + 28, qlen, r.int(8) === 0 ? 17 : 41, r.int(8) === 0 ? REMOTE : LOCAL, r.pick(SOURCES));
    if (r.int(4) === 0) r.bytes(buf, off + 48, Math.min(quoteInner, 16)); // garbage quote
    len = 28 + qlen;
    buf[off + 20] = r.pick([3, 3, 3, 11, 12, 5, 0, 8]);
    buf[off + 21] = r.int(16);
    buf.writeUInt16BE(0, off + 22);
    // half the reports name an MTU below the quoted packet's size, as a genuine one does (RFC 1191)
    buf.writeUInt32BE(r.int(2) === 0 ? Math.max(68, qlen - 1 - r.int(200)) : r.pick([0, 68, 576, 1000, 1400, 1500, 65535]), off + 24);
    buf.writeUInt16BE(checksum(buf, off + 20, len - 20), off + 22);
    ipv4Header(r, buf, off, len, 1, r.pick(SOURCES), LOCAL);
  } else {
    len = 20 + r.int(60);
    r.bytes(buf, off, len);
    buf[off] = 0x40 | r.int(16); // bad IHL
  }
  // mutations: byte edits, truncation, checksum breakage
  for (let e = r.int(4); e > 0 && len > 0; e--) buf[off + r.int(len)] = r.int(256);
  if (r.int(6) === 0) len = r.int(len + 1);
  return len;
}

export interface FuzzStats {
  inputs: number;
  seconds: number;
  outcomes: Record<string, number>;
  /** Forwarded packets whose bytes after the inner payload length were trimmed. */
  trimmed: number;
  drops: Record<string, number>;
  failures: string[];
}


export function fuzz(inputs: number, seed = 1): FuzzStats {
  const r = new Rng(seed);
  const tunnels = TUNNELS.map(([name, o]) => [name, new Encapsulator(o, { initialIpId: 1 })] as const);
  const buf = Buffer.alloc(HEADROOM + 2048);
  const out = new PacketResult();
  const outcomes: Record<string, number> = {};
  const failures: string[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < inputs; i++) {
    const [name, t] = tunnels[i % tunnels.length];
    const path = r.int(3);
    let len = 0;
    const before = outcomeCount(t);
    try {
      if (path === 0) {
        len = outerInput(r, buf, HEADROOM, buf.length - HEADROOM);
        t.decapsulate(buf, HEADROOM, len, out);
      } else if (path === 1) {
        len = ipv6(r, buf, HEADROOM, buf.length - HEADROOM);
        if (r.int(10) === 0) len = r.int(len + 1);
        t.encapsulate(buf, HEADROOM, len, out);
      } else {
        len = r.int(3) === 0 ? r.int(60) : ipv6(r, buf, HEADROOM, 1300);
        const mtu = r.int(2) === 0 ? len + 19 - r.int(200) : r.pick([0, 500, 1300, 1400, 70000]); // often below the packet's size, as a genuine report's is
        t.icmpv4Error(r.pick([3, 11, 12, 5, 3]), r.int(16), mtu, (r.u32() & 1) === 0 ? 0xc6336401 : r.u32(), buf, HEADROOM, len, out);
      }
      const delta = outcomeCount(t) - before;
      if (delta !== 1) failures.push(`${name} path ${path} input ${i}: ${delta} outcomes counted`);
      const v = out.verdict;
      const key = v === Verdict.Forward ? 'forward' : v === Verdict.Reply ? 'reply' : v === Verdict.Consumed ? 'consumed' : 'drop';
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      if (v === Verdict.Forward || v === Verdict.Reply) {
        if (out.offset < 0 || out.offset + out.length > buf.length) failures.push(`${name} input ${i}: output outside the buffer`);
        if (path === 0 && v === Verdict.Forward && checkIpv6(buf, out.offset, out.length) !== 0) failures.push(`${name} input ${i}: forwarded a malformed IPv6 packet`);
        if (path === 1 && v === Verdict.Forward && checksum(buf, out.offset, 20) !== 0) failures.push(`${name} input ${i}: bad outer checksum`);
      }
    } catch (e) {
      failures.push(`${name} path ${path} input ${i} (seed ${seed}): threw ${(e as Error).stack}`);
    }
    if (failures.length > 20) break;
  }
  const drops: Record<string, number> = {};
  for (const [, t] of tunnels) DROP_REASONS.forEach((d, k) => (drops[d] = (drops[d] ?? 0) + t.counters.drops[k]));
  // counted beside a packet's outcome, not as one
  let trimmed = 0;
  for (const [, t] of tunnels) trimmed += t.counters.traffic[Traffic.rx_trailing_bytes_trimmed];
  return { inputs, seconds: Number(process.hrtime.bigint() - started) / 1e9, outcomes, drops, trimmed, failures };
}
