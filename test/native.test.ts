/**
 * The addon on its own, no root needed: the layouts it shares with TypeScript, batched TUN-style
 * reads and writes over a FIFO (the calls only read() and write() the fd, as on a TUN), end of
 * batch on EAGAIN, per-packet errors, argument checks, UDP GSO runs carried out and checked over
 * loopback, and the lock that owns a control socket. As root, in a namespace: TUN offload flags.
 */
import { batchOver, fill } from './helpers/batch.js';
import { BatchColumn, PacketBatch } from '../src/io/batch.js';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, nativeAddonInfo } from '../src/io/native.js';
import { MAX_BATCH } from '../src/io/slots.js';
import { NamespaceSet, type Namespace } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';
import { OUTER_DF, outerDf, outerTos, outerTtl, packOuterFields } from '../src/packet/ipv4.js';
import { UDP_INFO_STRIDE } from '../src/transport/fou.js';
import { GSO_MAX_BYTES, GSO_MAX_SEGMENTS, gsoRuns } from '../src/transport/gso.js';
import { ERROR_INFO_STRIDE } from '../src/transport/transport.js';
import { TUN_OFFLOAD_DEFAULT, TunOffload } from '../src/tun/linux-tun.js';

const native = loadNative();
const dir = mkdtempSync(join(tmpdir(), 'tun6in4-native-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fifo(name: string): { r: number; w: number } {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  const r = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const w = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  return { r, w };
}

/** Waits for a condition, a turn of the event loop at a time (bounded). */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !ok(); i++) await new Promise((r) => setTimeout(r, 1));
  expect(ok()).toBe(true);
}

const SLOT = 2048;
const HEAD = 64;

/** A UDP port on 127.0.0.1 that was free a moment ago. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
  const { port } = s.address();
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

describe('layouts the addon and TypeScript share', () => {
  it('moves at most as many packets per call as the engine sizes its arrays for', () => {
    expect(native.MAX_BATCH).toBe(MAX_BATCH);
  });

  it('finds a PacketBatch\'s columns where the batch keeps them', () => {
    const b = new PacketBatch(1);
    expect(b.columns.length).toBe(native.BATCH_COLUMNS * MAX_BATCH);
    const at = (col: Int32Array) => (col.byteOffset - b.columns.byteOffset) / 4 / MAX_BATCH;
    expect([at(b.offs), at(b.lens), at(b.dsts), at(b.fields), at(b.errs)]).toEqual([native.BATCH_OFFS, native.BATCH_LENS, native.BATCH_DSTS, native.BATCH_FIELDS, native.BATCH_ERRS]);
    expect(Object.keys(BatchColumn).length).toBe(native.BATCH_COLUMNS);
  });

  it('reads the outer fields packOuterFields writes: TTL and TOS bytes at its shifts, DF its bit', () => {
    expect(native.OUTER_DF).toBe(OUTER_DF);
    for (const [ttl, tos, df] of [[64, 0, true], [1, 0xff, false], [255, 0x2a, true], [0, 3, false]] as const) {
      const f = packOuterFields(ttl, tos, df);
      expect([(f >>> native.OUTER_TTL_SHIFT) & 0xff, (f >>> native.OUTER_TOS_SHIFT) & 0xff, (f & native.OUTER_DF) !== 0]).toEqual([ttl, tos, df]);
      expect([outerTtl(f), outerTos(f), outerDf(f)]).toEqual([ttl, tos, df]);
    }
  });

  it('fills recvErrors and udpRecv info with the strides the transports read', () => {
    expect(native.ERROR_INFO_STRIDE).toBe(ERROR_INFO_STRIDE);
    expect(native.UDP_INFO_STRIDE).toBe(UDP_INFO_STRIDE);
  });

  it('checks GSO runs against the limits gsoRuns keeps to', () => {
    expect(native.GSO_MAX_SEGMENTS).toBe(GSO_MAX_SEGMENTS);
    expect(native.GSO_MAX_BYTES).toBe(GSO_MAX_BYTES);
  });

  it('takes the TUNSETOFFLOAD flags TunOffload names', () => {
    const fromAddon = Object.fromEntries(Object.keys(TunOffload).map((k) => [k, (native as unknown as Record<string, number>)[`TUN_F_${k}`]]));
    expect(fromAddon).toEqual(TunOffload);
    expect(TUN_OFFLOAD_DEFAULT).toBe(native.TUN_F_CSUM | native.TUN_F_TSO6);
  });
});

describe('native addon (no root)', () => {

  for (const ring of [false, true]) {
    it(`tunWrite writes each packet of a batch, tunRead takes what is there and stops at EAGAIN (${ring ? 'io_uring' : 'read/write'})`, () => {
      const { r, w } = fifo(`rw-${ring}`);
      const arena = Buffer.alloc(4 * SLOT);
      const sizes = [100, 200, 300];
      const offs = Int32Array.from(sizes.map((_, i) => i * SLOT + HEAD));
      const lens = Int32Array.from(sizes);
      sizes.forEach((n, i) => arena.fill(i + 1, offs[i], offs[i] + n));
      const errs = new Int32Array(3);
      expect(native.tunWrite(w, arena, offs, lens, 3, errs, ring)).toBe(3);
      expect([...errs]).toEqual([0, 0, 0]);

      // a FIFO keeps no packet boundaries: the first read takes all 600 bytes, the next finds
      // nothing (EAGAIN), which ends the batch instead of blocking
      const inArena = Buffer.alloc(4 * SLOT);
      const got = new Int32Array(4);
      expect(native.tunRead(r, inArena, SLOT, HEAD, 4, got, ring)).toBe(1);
      expect(got[0]).toBe(600);
      expect(inArena.subarray(HEAD, HEAD + 600)).toEqual(Buffer.concat(sizes.map((n, i) => Buffer.alloc(n, i + 1))));
      expect(native.tunRead(r, inArena, SLOT, HEAD, 4, got, ring)).toBe(0);
      closeSync(r);
      closeSync(w);
    });
  }

  for (const ring of [false, true]) {
    it(`tunWritev writes each frame gathered from its pieces, in order (${ring ? 'io_uring' : 'writev'}); pieces that do not add up are refused`, () => {
      const { r, w } = fifo(`wv-${ring}`);
      const arena = Buffer.alloc(4 * SLOT);
      // five pieces scattered over the arena: frame 0 is pieces 0-1, frame 1 pieces 2-4
      const offs = Int32Array.from([3 * SLOT, 10, SLOT + 7, 2 * SLOT, 100]);
      const lens = Int32Array.from([50, 20, 300, 1, 70]);
      offs.forEach((o, i) => arena.fill(i + 1, o, o + lens[i]));
      const errs = new Int32Array(5).fill(-1);
      expect(native.tunWritev!(w, arena, offs, lens, 5, errs, ring, Int32Array.from([2, 3, 0]))).toBe(2);
      expect([...errs.subarray(0, 2)]).toEqual([0, 0]);
      const inArena = Buffer.alloc(SLOT);
      const got = new Int32Array(1);
      expect(native.tunRead(r, inArena, SLOT, 0, 1, got, false)).toBe(1);
      expect(inArena.subarray(0, got[0])).toEqual(Buffer.concat([...lens].map((n, i) => Buffer.alloc(n, i + 1))));
      expect(() => native.tunWritev!(w, arena, offs, lens, 5, errs, ring, Int32Array.from([2, 2, 0]))).toThrow(/do not add up/);
      expect(() => native.tunWritev!(w, arena, offs, lens, 5, errs, ring, Int32Array.from([2, 4]))).toThrow(/do not add up/);
      expect(native.tunRead(r, inArena, SLOT, 0, 1, got, false)).toBe(0); // nothing written by the refused calls
      closeSync(r);
      closeSync(w);
    });
  }

  it('a write the fd refuses is reported per packet, with its errno, and counted out of the total', () => {
    const { r, w } = fifo('epipe');
    closeSync(r); // no reader: every write fails with EPIPE (Node ignores SIGPIPE)
    const arena = Buffer.alloc(2 * SLOT);
    const errs = new Int32Array(2);
    expect(native.tunWrite(w, arena, Int32Array.from([HEAD, SLOT + HEAD]), Int32Array.from([40, 40]), 2, errs, false)).toBe(0);
    expect([...errs]).toEqual([osConstants.errno.EPIPE, osConstants.errno.EPIPE]);
    closeSync(w);
  });

  it('a write batch reaching outside the arena or its arrays is refused before anything is written; a read batch is cut to the slots there are', () => {
    const { r, w } = fifo('args');
    const arena = Buffer.alloc(SLOT);
    const errs = new Int32Array(1);
    expect(() => native.tunWrite(w, arena, Int32Array.from([SLOT - 10]), Int32Array.from([100]), 1, errs, false)).toThrow(/slot outside arena/);
    expect(() => native.tunWrite(w, arena, Int32Array.from([0]), Int32Array.from([10]), 5, errs, false)).toThrow(TypeError); // n beyond the arrays
    expect(() => readSync(r, Buffer.alloc(1), 0, 1, null)).toThrow(/EAGAIN/); // nothing was written
    writeSync(w, Buffer.alloc(10, 7));
    const lens = new Int32Array(4);
    expect(native.tunRead(r, arena, SLOT, HEAD, 4, lens, false)).toBe(1); // one slot fits the arena
    expect(lens[0]).toBe(10);
    closeSync(r);
    closeSync(w);
  });

  it('a negative batch size is refused, not clamped into a huge one', () => {
    const { r, w } = fifo('negative');
    const lens = new Int32Array(4);
    expect(() => native.tunRead(r, Buffer.alloc(4 * SLOT), SLOT, HEAD, -1, lens, false)).toThrow(TypeError);
    expect(() => native.rawRecv(r, Buffer.alloc(4 * SLOT), SLOT, HEAD, -5, lens)).toThrow(TypeError);
    closeSync(r);
    closeSync(w);
  });

  for (const ring of [false, true]) {
    it(`tunRead refuses a read of 0 packets, which would teach the ring to queue nothing and loop for ever (${ring ? 'io_uring' : 'read/write'})`, () => {
      const { r, w } = fifo(`zero-${ring}`);
      const arena = Buffer.alloc(4 * SLOT);
      const lens = new Int32Array(4);
      expect(() => native.tunRead(r, arena, SLOT, HEAD, 0, lens, ring)).toThrow(/tunRead: max is 0/);
      expect(() => native.tunRead(r, arena, SLOT, HEAD, 4, new Int32Array(0), ring)).toThrow(/tunRead: max is 0/); // no entry in lens
      // the next read still reads, and returns when the fd is empty
      writeSync(w, Buffer.alloc(30, 9));
      expect(native.tunRead(r, arena, SLOT, HEAD, 4, lens, ring)).toBe(1);
      expect(native.tunRead(r, arena, SLOT, HEAD, 4, lens, ring)).toBe(0);
      closeSync(r);
      closeSync(w);
    });
  }

  it('F1: one poll handle per fd serves reading and writing at once (libuv refuses a second)', async () => {
    const { r, w } = fifo('poll');
    const seen: number[] = [];
    const poller = new native.Poller(w, (ev) => seen.push(ev));
    poller.start(native.POLL_WRITABLE);
    await until(() => seen.length > 0);
    expect(seen[0] & native.POLL_WRITABLE).toBe(native.POLL_WRITABLE);
    poller.start(native.POLL_READABLE | native.POLL_WRITABLE); // a new mask on the same handle
    expect(() => new native.Poller(w, () => undefined)).toThrow(/uv_poll_init/); // what the old second handle met
    poller.close();
    closeSync(r);
    closeSync(w);
  });

  it('F4: a send right after an ICMP error about an earlier one is not failed by that report (UDP, IP_RECVERR)', async () => {
    const lo = 0x7f000001;
    const { fd } = native.openUdpSocket(lo, 0, 0, 1 << 20, true, false);
    const sink = createSocket('udp4');
    await new Promise<void>((res) => sink.bind(0, '127.0.0.1', () => res()));
    const got: Buffer[] = [];
    sink.on('message', (m) => got.push(m));
    const closed = createSocket('udp4');
    await new Promise<void>((res) => closed.bind(0, '127.0.0.1', () => res()));
    const closedPort = closed.address().port;
    await new Promise<void>((res) => closed.close(() => res()));
    // a datagram to a closed port: the kernel answers port unreachable, which the socket keeps
    // in its error queue and, as a pending error, for its next send
    let reported = false;
    const poller = new native.Poller(fd, (ev) => {
      if (ev < 0) reported = true;
    });
    poller.start(native.POLL_READABLE);
    const arena = Buffer.alloc(SLOT);
    arena.write('first', HEAD);
    const batch = batchOver(arena, SLOT, HEAD, { offs: [HEAD], lens: [5], dsts: [lo], fields: [64] });
    const errs = batch.errs;
    const one = (port: number) => {
      native.setSendOptions(fd, { port });
      return native.sendBatch(fd, batch, 1);
    };
    expect(one(closedPort)).toBe(1);
    await until(() => reported);
    poller.close();
    expect(one(sink.address().port)).toBe(1);
    expect(errs[0]).toBe(0);
    await until(() => got.length === 1);
    sink.close();
    closeSync(fd);
  });

  it('FOU-5: a GSO run leaves as datagrams of its segment size with the TOS of its fields; what is no run is refused before anything is sent (UDP, loopback)', async () => {
    const lo = 0x7f000001;
    const port = await freeUdpPort();
    const rx = native.openUdpSocket(lo, port, 0, 1 << 20, true, false);
    const tx = native.openUdpSocket(lo, 0, 0, 1 << 20, true, false);
    expect(tx.gso).toBe(true);
    const arena = Buffer.alloc(128 * 1600);
    const offs = Int32Array.from({ length: 128 }, (_, i) => i * 1600 + HEAD);
    const batch = batchOver(arena, 1600, HEAD);
    const errs = batch.errs;
    const fields = new Int32Array(128).fill(packOuterFields(64, 0x28, false));
    const dsts = new Int32Array(128).fill(lo);
    const send = (lens: number[], runs: number[], o: { dsts?: Int32Array; fields?: Int32Array; port?: number } = {}) => {
      lens.forEach((n, i) => arena.fill(i + 1, offs[i], offs[i] + n));
      fill(batch, { offs, lens, dsts: o.dsts ?? dsts, fields: o.fields ?? fields });
      native.setSendOptions(tx.fd, { port: o.port ?? port });
      return native.sendBatch(tx.fd, batch, lens.length, Int32Array.from(runs));
    };
    const rxArena = Buffer.alloc(8 * SLOT);
    const rxLens = new Int32Array(8);
    const rxInfo = new Int32Array(8 * native.UDP_INFO_STRIDE);
    const got: Array<{ len: number; first: number; tos: number }> = [];
    const drain = () => {
      const n = native.udpRecv(rx.fd, rxArena, SLOT, HEAD, 8, rxLens, rxInfo);
      for (let i = 0; i < n; i++) got.push({ len: rxLens[i], first: rxArena[i * SLOT + HEAD], tos: rxInfo[i * native.UDP_INFO_STRIDE + 2] });
      return got;
    };

    expect(send([100, 100, 100, 40], [4])).toBe(4);
    await until(() => drain().length >= 4);
    expect(got).toEqual([1, 2, 3, 4].map((first, i) => ({ len: i < 3 ? 100 : 40, first, tos: 0x28 })));

    const other = Int32Array.from(dsts).fill(lo + 1, 1, 2);
    const otherFields = Int32Array.from(fields).fill(packOuterFields(63, 0x28, false), 1, 2);
    expect(() => send([100, 120], [2])).toThrow(/a run mixes destinations, fields or sizes/); // a longer packet after the first
    expect(() => send([100, 40, 100], [3])).toThrow(/a run mixes/); // a shorter one not last
    expect(() => send([100, 100], [2], { dsts: other })).toThrow(/a run mixes/);
    expect(() => send([100, 100], [2], { fields: otherFields })).toThrow(/a run mixes/);
    expect(() => send([100, 100], [1])).toThrow(/runs do not cover the batch/);
    expect(() => send([100, 100], [2, 1])).toThrow(/runs do not cover the batch/);
    expect(() => send(Array(GSO_MAX_SEGMENTS + 1).fill(10), [GSO_MAX_SEGMENTS + 1])).toThrow(/runs do not cover the batch/);
    expect(() => send(Array(44).fill(1500), [44])).toThrow(/a run exceeds one UDP datagram/); // 66,000 > 65,507
    expect(() => send([100, 100], [2], { port: 0 })).toThrow(/runs do not cover the batch/); // GSO is for UDP only
    // nothing of those left: the next datagram to arrive is this one
    expect(send([7], [1])).toBe(1);
    await until(() => drain().length >= 5);
    expect(got.slice(4)).toEqual([{ len: 7, first: 1, tos: 0x28 }]);

    // and whatever gsoRuns decides, the addon takes
    const lens = Array.from({ length: 64 }, (_, i) => (i % 9 === 4 ? 300 : i % 13 === 0 ? 0 : 1400));
    const runs = new Int32Array(64);
    const nRuns = gsoRuns(Int32Array.from(lens), dsts, fields, 64, runs);
    const sent = send(lens, [...runs.subarray(0, nRuns)]);
    expect(sent + [...errs.subarray(0, 64)].filter((e) => e === osConstants.errno.EAGAIN).length).toBe(64);
    closeSync(rx.fd);
    closeSync(tx.fd);
  });

  it('FOU checksums \'gso\': a socket sending zero checksums turns them on for GSO messages only, and back off (as root: a raw socket sees the UDP headers)', async () => {
    if (!rootOrSkip()) return;
    const lo = 0x7f000001;
    const port = await freeUdpPort();
    const require = createRequire(import.meta.url);
    const raw = require('raw-socket') as { createSocket(o: { protocol: number }): { on(ev: 'message', f: (b: Buffer) => void): void; close(): void } };
    const seen: Array<{ len: number; csum: number }> = [];
    const sniff = raw.createSocket({ protocol: 17 });
    // IPv4 header (20 bytes: no options on these) then UDP; ours are the ones to `port`
    sniff.on('message', (b) => b.readUInt16BE(22) === port && seen.push({ len: b.readUInt16BE(24) - 8, csum: b.readUInt16BE(26) }));
    const rx = native.openUdpSocket(lo, port, 0, 1 << 20, false, false);
    const tx = native.openUdpSocket(lo, 0, 0, 1 << 20, false, false);
    expect(tx.gso).toBe(true); // the kernel has UDP_SEGMENT; the zero checksums alone would refuse it
    const arena = Buffer.alloc(8 * 1600);
    const offs = Int32Array.from({ length: 8 }, (_, i) => i * 1600 + HEAD);
    const fields = new Int32Array(8).fill(packOuterFields(64, 0, false));
    const dsts = new Int32Array(8).fill(lo);
    const stats = new Int32Array(1);
    const batch = batchOver(arena, 1600, HEAD);
    const send = (lens: number[], runs: number[], checksumGsoOnly: boolean) => {
      fill(batch, { offs, lens, dsts, fields });
      native.setSendOptions(tx.fd, { port, checksumGsoOnly, stats });
      return native.sendBatch(tx.fd, batch, lens.length, Int32Array.from(runs));
    };
    expect(send([50, 300, 300, 300, 60], [1, 3, 1], true)).toBe(5);
    // loopback carries the GSO message whole: the raw socket sees it as one datagram of 900
    await until(() => seen.length >= 3);
    expect(seen.map((d) => [d.len, d.csum !== 0])).toEqual([[50, false], [900, true], [60, false]]);
    expect(stats[0]).toBe(0);
    // the socket is back to zero checksums: the next lone datagram has none; without the flag the
    // kernel refuses a run (EINVAL), which goes again packet by packet, counted
    expect(send([70], [1], false)).toBe(1);
    await until(() => seen.length >= 4);
    expect(seen[3]).toEqual({ len: 70, csum: 0 });
    expect(send([300, 300], [2], false)).toBe(2);
    expect(stats[0]).toBe(1);
    await until(() => seen.length >= 6);
    expect(seen.slice(4)).toEqual([{ len: 300, csum: 0 }, { len: 300, csum: 0 }]);
    sniff.close();
    closeSync(rx.fd);
    closeSync(tx.fd);
  });

  it('F4: a refused GSO message resent packet by packet gets past ICMP reports its own packets draw, as the batch path does (UDP, loopback)', async () => {
    const lo = 0x7f000001;
    // zero checksums (SO_NO_CHECK) and no csumForGso: the kernel refuses the run, the addon resends it packet by packet
    const tx = native.openUdpSocket(lo, 0, 0, 1 << 20, false, false);
    const closedPort = await freeUdpPort();
    const n = 8;
    const arena = Buffer.alloc(n * 512);
    const offs = Int32Array.from({ length: n }, (_, i) => i * 512 + HEAD);
    const lens = new Int32Array(n).fill(200);
    const stats = new Int32Array(1);
    const batch = batchOver(arena, 512, HEAD, { offs, lens, dsts: new Int32Array(n).fill(lo), fields: new Int32Array(n).fill(packOuterFields(64, 0, false)) });
    native.setSendOptions(tx.fd, { port: closedPort, stats });
    // each packet to the closed port draws a port unreachable, a pending error for the next send
    const sent = native.sendBatch(tx.fd, batch, n, Int32Array.from([n]));
    expect(stats[0]).toBe(1);
    expect([...batch.errs.subarray(0, n)]).toEqual(new Array(n).fill(0));
    expect(sent).toBe(n);
    closeSync(tx.fd);
  });

  it('setReceiveFilter attaches a classic BPF program the kernel accepts, refuses a malformed one, and removes it with null', () => {
    const { fd } = native.openUdpSocket(0x7f000001, 0, 0, 1 << 20, false, false);
    expect(() => native.setReceiveFilter(fd, Int32Array.from([0x06, 0, 0, -1]))).not.toThrow(); // ret #all
    expect(() => native.setReceiveFilter(fd, Int32Array.from([0x06, 0, 0]))).toThrow(/setReceiveFilter/); // not whole instructions
    expect(() => native.setReceiveFilter(fd, Int32Array.from([0x15, 0, 9, 0]))).toThrow(/SO_ATTACH_FILTER/); // a jump out of the program
    expect(() => native.setReceiveFilter(fd, null)).not.toThrow();
    closeSync(fd);
  });

  it('flock: a second holder is turned away until the first lets go', () => {
    const path = join(dir, 'x.lock');
    const open = () => openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    const a = open();
    expect(native.flock(a)).toBe(true);
    const other = open();
    expect(native.flock(other)).toBe(false);
    closeSync(a);
    expect(native.flock(other)).toBe(true);
    closeSync(other);
  });

  it('closeFd closes an fd the addon opened, and throws with errno and syscall on a bad one', () => {
    const fd = native.openRawSocket(0, 0, 0, true);
    native.closeFd(fd);
    expect(() => native.closeFd(-1)).toThrow(expect.objectContaining({ errno: 9, syscall: 'close' }));
  });

  it('a socket that fails a step of its opening throws naming that step, and leaves no fd open', async () => {
    const busy = createSocket('udp4');
    await new Promise<void>((r) => busy.bind(0, '127.0.0.1', () => r()));
    try {
      const port = busy.address().port;
      const fds = () => readdirSync('/proc/self/fd').length;
      const before = fds();
      expect(() => native.openUdpSocket(0x7f000001, port, 0, 0)).toThrow(expect.objectContaining({ errno: osConstants.errno.EADDRINUSE, syscall: 'bind' }));
      expect(() => native.openUdpSocket(0x7f000001, 0, 99, 0)).toThrow(expect.objectContaining({ errno: osConstants.errno.EINVAL, syscall: 'setsockopt IP_MTU_DISCOVER' }));
      expect(fds()).toBe(before);
    } finally {
      busy.close();
    }
  });
});

describe('TUN offload flags (as root, in a namespace)', () => {
  const set = new NamespaceSet('native');
  let ns: Namespace;
  /** Opens a TUN per case in the namespace (a child there: the device lives as long as its fd) and reads back what the kernel shows. */
  let seen: Record<string, { link?: string; features?: string; error?: string; errno?: number; flags?: number; left?: string }>;
  const CHILD = `
    const native = require(process.argv[1]);
    const { execFileSync } = require('node:child_process');
    const out = {};
    for (const [k, flags] of JSON.parse(process.argv[2])) {
      try {
        const t = native.openTun('t6off%d', true, flags);
        out[k] = { link: execFileSync('ip', ['-d', 'link', 'show', t.name], { encoding: 'utf8' }), features: execFileSync('ethtool', ['-k', t.name], { encoding: 'utf8' }) };
        require('node:fs').closeSync(t.fd);
      } catch (e) {
        out[k] = { error: e.message, errno: e.errno, flags: e.flags, left: execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }) };
      }
    }
    console.log(JSON.stringify(out));`;
  const UNKNOWN = 0x40000000; // no kernel flag: how TUNSETOFFLOAD lets a caller probe for new ones

  beforeAll(async () => {
    if (!rootOrSkip()) return;
    ns = await set.add('tun');
    const cases = {
      tcp: TUN_OFFLOAD_DEFAULT,
      none: 0,
      uso: TunOffload.CSUM | TunOffload.USO4 | TunOffload.USO6,
      unknown: TunOffload.CSUM | UNKNOWN,
    };
    seen = JSON.parse(await ns.exec(process.execPath, ['-e', CHILD, nativeAddonInfo().path, JSON.stringify(Object.entries(cases))], { timeoutMs: 30_000 }));
  }, 60_000);
  afterAll(() => set.destroy());

  it('CSUM|TSO6 (what the engine asks for): frames carry a virtio_net_hdr, the device takes TCPv6 segmentation and checksums, not TCPv4', () => {
    if (!rootOrSkip()) return;
    expect(seen.tcp.error).toBeUndefined();
    expect(seen.tcp.link).toMatch(/vnet_hdr on/);
    expect(seen.tcp.features).toMatch(/^tx-checksumming: on/m);
    expect(seen.tcp.features).toMatch(/^\s*tx-tcp6-segmentation: on/m);
    expect(seen.tcp.features).toMatch(/^\s*tx-tcp-segmentation: off/m);
    expect(seen.tcp.features).toMatch(/^\s*tx-udp-segmentation: off/m);
  });

  it('0: no virtio_net_hdr and no offload', () => {
    if (!rootOrSkip()) return;
    expect(seen.none.error).toBeUndefined();
    expect(seen.none.link).toMatch(/vnet_hdr off/);
    expect(seen.none.features).toMatch(/^tx-checksumming: off/m);
    expect(seen.none.features).toMatch(/^\s*tx-tcp6-segmentation: off/m);
  });

  it('CSUM|USO4|USO6: UDP segmentation where the kernel has it (Linux 6.2+), else an EINVAL naming the flags', () => {
    if (!rootOrSkip()) return;
    if (seen.uso.error) {
      expect(seen.uso).toMatchObject({ errno: osConstants.errno.EINVAL, flags: 0x61, error: expect.stringMatching(/^ioctl TUNSETOFFLOAD 0x61 \(CSUM\|USO4\|USO6\): Invalid argument/) });
    } else {
      expect(seen.uso.features).toMatch(/^\s*tx-udp-segmentation: on/m);
      expect(seen.uso.features).toMatch(/^\s*tx-tcp6-segmentation: off/m);
    }
  });

  it('a flag the kernel does not know: EINVAL naming every flag tried, and no device left behind', () => {
    if (!rootOrSkip()) return;
    expect(seen.unknown).toMatchObject({
      errno: osConstants.errno.EINVAL,
      flags: TunOffload.CSUM | UNKNOWN,
      error: 'ioctl TUNSETOFFLOAD 0x40000001 (CSUM|0x40000000): Invalid argument',
    });
    expect(seen.unknown.left).not.toMatch(/t6off/);
  });
});
