/**
 * TUN offload (IFF_VNET_HDR + TUNSETOFFLOAD) behind the plain TunDevice interface, as
 * wireguard-go's tun does: reads cut the kernel's TCP (and, where it offers USO, UDP) super-packets
 * into segments, one per slot of the caller's batch; writes merge segments of a flow into
 * super-packets (GRO) so the kernel's stack runs once per ~40 segments. The forwarding loop sees
 * plain IPv6 packets only. This file is the state (frames set aside, open runs, the queue of
 * frames to write); the cutting is segment.ts, the merging coalesce.ts.
 */
import { PacketBatch } from '../io/batch.js';
import { moveBytes } from '../packet/bytes.js';
import { IPV6 } from '../packet/ipv6.js';
import { PROTO_TCP, TCP } from '../packet/tcp.js';
import { PROTO_UDP, UDP } from '../packet/udp.js';
import { VNET, VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV6, VNET_GSO_UDP_L4, VNET_HDR_LEN } from '../packet/vnet.js';
import { MAX_BATCH, SLOT_SIZE, slotArena } from '../io/slots.js';
import { GRO_MAX_FRAME, TcpCoalescer, UdpCoalescer, type Coalescer } from './coalesce.js';
import { completeChecksum, cutSuperPacket, superPacketSegments } from './segment.js';
import type { TunDevice } from './device.js';

/** Bytes an offloading device writes in front of each packet handed to write(): its virtio_net_hdr. */
export const OFFLOAD_WRITE_HEADROOM = VNET_HDR_LEN;

/** Why a frame read from the device was dropped. */
export type OffloadDrop =
  /** a GSO type we did not ask the kernel for (TCPv6, and UDP where it offers USO) */
  | 'tx_gso_unsupported'
  /** a super-packet we cannot cut: no partial checksum at the TCP/UDP header, or that header not where it says */
  | 'tx_gso_malformed';

/** Super-packets each way, by protocol (status: `tunIo.superPackets`). */
export interface SuperPacketCounts {
  /** Cut into segments on read (the kernel's TSO/USO). */
  readTcp: number;
  readUdp: number;
  /** Merged from two or more segments on write (our GRO). */
  writtenTcp: number;
  writtenUdp: number;
}

export interface OffloadOptions {
  /**
   * The device was granted UDP segmentation offload (TUN_F_USO6): UDP super-packets are cut on
   * read, and runs of datagrams merged on write. Without it, UDP is passed one datagram a frame.
   */
  udp?: boolean;
}

/** Runs of different flows merged at once; a batch with more interleaved flows closes the oldest run. */
const OPEN_RUNS = 8;
/** Merged frames built before they are written out (scratch room); more in one write flush early. */
const SCRATCH_FRAMES = 16;
/** Room per merged frame: the largest a merge can build (F3), rounded up to 8 bytes. */
const SCRATCH_SLOT = (GRO_MAX_FRAME + 7) & ~7;

export class OffloadTun implements TunDevice {
  readonly name: string;
  /** Frames set aside from a read (a super-packet and what followed it): cut or copied into the caller's slots from here. */
  private framesBatch: PacketBatch | null = null;
  private frames: Buffer = Buffer.alloc(0);
  private frameLens: Int32Array = new Int32Array(0);
  private frameCount = 0;
  /** Next frame to hand out, and the next segment of it when it is a super-packet being cut. */
  private frameNext = 0;
  private segNext = 0;
  /** The last read held a super-packet: read into our arena, not the caller's (see readBulk). */
  private bulk = false;
  /** GRO: one run per scratch slot; at most OPEN_RUNS of them open at once. */
  private readonly runs = Array.from({ length: SCRATCH_FRAMES }, (_, i) => new GroRun(i));
  private readonly scratch = slotArena(SCRATCH_FRAMES, SCRATCH_SLOT);
  private runClock = 0;
  /** Frames queued for the device: where each is, which arena, and its result. */
  private readonly qOffs = new Int32Array(2 * MAX_BATCH);
  private readonly qLens = new Int32Array(2 * MAX_BATCH);
  private readonly qErrs = new Int32Array(2 * MAX_BATCH);
  /** 1: the frame of a run (in scratch, or gathered from the run's packets); 0: a lone packet in place. */
  private readonly qIsRun = new Uint8Array(2 * MAX_BATCH);
  /** The run (its slot) a run's frame was finished from, to list its pieces in a gather write. */
  private readonly qRun = new Int32Array(2 * MAX_BATCH);
  /** Gather write: frame f is the next pieces[f] entries of the list (ends at a 0). */
  private readonly pieces = new Int32Array(MAX_BATCH + 1);
  /**
   * The device writes frames gathered from pieces (TunDevice.writeFrames): a run is merged where
   * its packets were received, its frame written from there, and nothing is copied into scratch.
   */
  private readonly gather: boolean;
  private qCount = 0;
  /** Input packets whose frames are queued, and the frame of each input packet. */
  private readonly pendingInputs = new Int32Array(MAX_BATCH);
  private pendingCount = 0;
  private readonly frameOf = new Int32Array(MAX_BATCH).fill(-1);
  private written = 0;
  /**
   * The views of the caller's batches the device reads and writes through, made once per batch
   * (the loop reads into one and writes from others, each the same every time): the slots with
   * the virtio_net_hdr in the headroom, and the list of frames written in place from its arena.
   */
  private readFrom: PacketBatch | null = null;
  private framed: PacketBatch | null = null;
  private writeFrom: PacketBatch | null = null;
  private inPlace: PacketBatch | null = null;
  private readonly scratchOut: PacketBatch;
  private readonly subIndex = new Int32Array(2 * MAX_BATCH);
  private readonly udp: boolean;
  readonly superPackets: SuperPacketCounts = { readTcp: 0, readUdp: 0, writtenTcp: 0, writtenUdp: 0 };

  /**
   * `device` reads and writes frames with a virtio_net_hdr in front (a TUN opened with
   * IFF_VNET_HDR and TUNSETOFFLOAD for TCPv6, and UDP too with options.udp). `onDrop` counts
   * frames that cannot be passed on.
   */
  constructor(
    private readonly device: TunDevice,
    private readonly onDrop: (reason: OffloadDrop) => void = () => undefined,
    options: OffloadOptions = {},
  ) {
    this.name = device.name;
    this.udp = options.udp ?? false;
    this.gather = typeof device.writeFrames === 'function';
    this.scratchOut = new PacketBatch(SCRATCH_FRAMES, SCRATCH_SLOT, 0, this.scratch);
  }

  private framedFor(b: PacketBatch): PacketBatch {
    if (this.readFrom !== b || this.framed === null) {
      this.readFrom = b;
      this.framed = b.withHeadroom(b.headroom - VNET_HDR_LEN);
    }
    return this.framed;
  }

  private inPlaceFor(b: PacketBatch): PacketBatch {
    if (this.writeFrom !== b || this.inPlace === null) {
      this.writeFrom = b;
      this.inPlace = b.sharing();
    }
    return this.inPlace;
  }

  watch(cb: () => void): void {
    this.device.watch(cb);
  }

  pause(): void {
    this.device.pause();
  }

  resume(): void {
    this.device.resume();
  }

  close(): void {
    this.device.close();
  }

  holding(): boolean {
    return this.frameNext < this.frameCount || this.device.holding();
  }

  /**
   * Frames are read straight into the caller's slots (the virtio_net_hdr in the headroom), and a
   * plain packet stays where it landed: no copy. From the first super-packet (or anything not
   * plain) on, the frames of that read are set aside and cut or copied into the slots from
   * there, now and in later calls, before the device is read again.
   */
  read(b: PacketBatch, max: number): number {
    const { arena, slotSize, headroom, lens } = b;
    if (this.frameNext < this.frameCount) return this.emit(arena, slotSize, headroom, max, lens, 0);
    if (this.bulk) return this.readBulk(arena, slotSize, headroom, max, lens);
    const n = this.device.read(this.framedFor(b), max);
    for (let j = 0; j < n; j++) {
      const h = j * slotSize + headroom - VNET_HDR_LEN;
      const len = lens[j] - VNET_HDR_LEN;
      if ((arena[h + VNET.GSO_TYPE] & ~VNET_GSO_ECN) === VNET_GSO_NONE && len > 0) {
        if ((arena[h + VNET.FLAGS] & VNET_F_NEEDS_CSUM) !== 0) {
          completeChecksum(arena, h + VNET_HDR_LEN, len, arena.readUInt16LE(h + VNET.CSUM_START), arena.readUInt16LE(h + VNET.CSUM_OFFSET));
        }
        lens[j] = len;
        continue;
      }
      this.setAside(arena, slotSize, headroom - VNET_HDR_LEN, j, n, lens);
      this.bulk = true;
      return this.emit(arena, slotSize, headroom, max, lens, j);
    }
    return n;
  }

  /**
   * While the kernel hands over super-packets (a TCP sender), frames are read into our own arena
   * and cut from there straight into the caller's slots, so no 64 KiB frame is copied to make
   * room; a read without one returns to reading in place.
   */
  private readBulk(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    const room = this.frameRoom(max);
    const n = this.device.read(room, Math.min(max, room.slots));
    this.frameCount = n;
    this.frameNext = 0;
    this.segNext = 0;
    let any = false;
    for (let i = 0; i < n && !any; i++) any = (this.frames[i * SLOT_SIZE + VNET.GSO_TYPE] & ~VNET_GSO_ECN) !== VNET_GSO_NONE;
    this.bulk = any;
    return this.emit(arena, slotSize, headroom, max, lens, 0);
  }

  /** Our frame arena, grown (up to MAX_BATCH slots) to hold `slots` frames; frames and frameLens are its. */
  private frameRoom(slots: number): PacketBatch {
    const want = Math.min(MAX_BATCH, slots);
    if (this.framesBatch === null || this.framesBatch.slots < want) {
      this.framesBatch = new PacketBatch(want, SLOT_SIZE, 0);
      this.frames = this.framesBatch.arena;
      this.frameLens = this.framesBatch.lens;
    }
    return this.framesBatch;
  }

  /** Copies frames [from, n) of a read out of the caller's slots, to be handed out by emit. */
  private setAside(arena: Buffer, slotSize: number, at: number, from: number, n: number, lens: Int32Array): void {
    const k = n - from;
    this.frameRoom(Math.max(k, 8));
    for (let i = 0; i < k; i++) {
      const src = (from + i) * slotSize + at;
      const len = Math.max(0, lens[from + i]);
      arena.copy(this.frames, i * SLOT_SIZE, src, src + len);
      this.frameLens[i] = len;
    }
    this.frameCount = k;
    this.frameNext = 0;
    this.segNext = 0;
  }

  /** Hands out frames from `frameNext` into caller slots from `out`; returns the new `out`. */
  private emit(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, out: number): number {
    const f = this.frames;
    while (this.frameNext < this.frameCount && out < max) {
      const h = this.frameNext * SLOT_SIZE;
      const pkt = h + VNET_HDR_LEN;
      const len = this.frameLens[this.frameNext] - VNET_HDR_LEN;
      const gso = f[h + VNET.GSO_TYPE] & ~VNET_GSO_ECN;
      const needsCsum = (f[h + VNET.FLAGS] & VNET_F_NEEDS_CSUM) !== 0;
      if (len <= 0) {
        this.frameNext++;
        continue;
      }
      if (gso === VNET_GSO_NONE) {
        if (needsCsum) completeChecksum(f, pkt, len, f.readUInt16LE(h + VNET.CSUM_START), f.readUInt16LE(h + VNET.CSUM_OFFSET));
        const o = out * slotSize + headroom;
        moveBytes(f, pkt, pkt + len, arena, o);
        lens[out++] = len;
        this.frameNext++;
        continue;
      }
      const udp = gso === VNET_GSO_UDP_L4 && this.udp;
      if (gso !== VNET_GSO_TCPV6 && !udp) {
        this.onDrop('tx_gso_unsupported');
        this.frameNext++;
        continue;
      }
      // A super-packet always comes with its checksum left partial: that says where TCP/UDP starts.
      const csumAt = udp ? UDP.CHECKSUM : TCP.CHECKSUM;
      const l4Off = needsCsum && f.readUInt16LE(h + VNET.CSUM_OFFSET) === csumAt ? f.readUInt16LE(h + VNET.CSUM_START) : -1;
      const gsoSize = f.readUInt16LE(h + VNET.GSO_SIZE);
      const proto = udp ? PROTO_UDP : PROTO_TCP;
      const total = l4Off < 0 ? -1 : superPacketSegments(f, pkt, len, proto, l4Off, gsoSize);
      if (total < 0) {
        this.onDrop('tx_gso_malformed');
        this.frameNext++;
        continue;
      }
      const at = out * slotSize + headroom;
      const k = cutSuperPacket(f, pkt, len, proto, l4Off, gsoSize, arena, at, slotSize, max - out, this.segNext);
      if (k <= 0) {
        // its segments would not fit the caller's slots: never write past one
        this.onDrop('tx_gso_malformed');
        this.frameNext++;
        this.segNext = 0;
        continue;
      }
      for (let j = 0; j < k; j++) {
        const o = (out + j) * slotSize + headroom;
        lens[out + j] = IPV6.HEADER_LEN + arena.readUInt16BE(o + IPV6.PAYLOAD_LEN);
      }
      out += k;
      this.segNext += k;
      if (this.segNext >= total) {
        this.frameNext++;
        this.segNext = 0;
        if (udp) this.superPackets.readUdp++;
        else this.superPackets.readTcp++;
      }
    }
    return out;
  }

  /**
   * Writes `n` IPv6 packets, merging TCP segments (and, with USO, UDP datagrams) of a flow,
   * interleaved flows too, into super-packets. A packet that goes out alone gets its virtio_net_hdr written in the
   * OFFLOAD_WRITE_HEADROOM bytes before it. errs[i] is the result of the frame packet i went into;
   * returns how many packets were written.
   */
  write(b: PacketBatch, n: number): number {
    const { arena, offs, lens, errs } = b;
    this.inPlaceFor(b); // flush writes the in-place frames through it
    this.written = 0;
    for (let i = 0; i < n; i++) {
      const off = offs[i];
      const len = lens[i];
      const kind = TcpCoalescer.eligible(arena, off, len) ? PROTO_TCP : this.udp && UdpCoalescer.eligible(arena, off, len) ? PROTO_UDP : 0;
      if (kind !== 0) {
        const run = this.runFor(arena, off, RunState.Open);
        if (run !== null) {
          if (run.coalescer.tryAppendEligible(arena, off, len)) {
            run.members[run.count++] = i;
            continue;
          }
          this.finishRun(run);
        }
        this.startRun(arena, off, len, i, errs, kind);
        continue;
      }
      // Not mergeable. Merged frames go out after the lone ones of their write, so a lone packet
      // of a flow with a merged frame pending waits until that frame is out: flow order.
      const proto = arena[off + IPV6.NEXT_HEADER];
      if ((proto === PROTO_TCP || (proto === PROTO_UDP && this.udp)) && len >= IPV6.HEADER_LEN + 4) {
        const open = this.connectionRun(arena, off, RunState.Open);
        if (open !== null) this.finishRun(open);
        if (open !== null || this.connectionRun(arena, off, RunState.Finished) !== null) this.flush(errs);
      }
      // ten stores inline: Buffer#fill is a call into the runtime, per packet
      for (let b = off - VNET_HDR_LEN; b < off; b++) arena[b] = 0;
      this.frameOf[i] = this.queue(off - VNET_HDR_LEN, len + VNET_HDR_LEN, false);
      this.pendingInputs[this.pendingCount++] = i;
    }
    for (const run of this.runs) if (run.state === RunState.Open) this.finishRun(run);
    this.flush(errs);
    return this.written;
  }

  private runFor(buf: Buffer, off: number, state: RunState): GroRun | null {
    for (const run of this.runs) if (run.state === state && run.coalescer.sameFlow(buf, off)) return run;
    return null;
  }

  /** A run of the packet's TCP connection (any flow label), in `state`. */
  private connectionRun(buf: Buffer, off: number, state: RunState): GroRun | null {
    for (const run of this.runs) if (run.state === state && run.coalescer.sameConnection(buf, off)) return run;
    return null;
  }

  private startRun(buf: Buffer, off: number, len: number, index: number, errs: Int32Array, kind: number): void {
    let open = 0;
    let oldest: GroRun | null = null;
    for (const r of this.runs) {
      if (r.state !== RunState.Open) continue;
      open++;
      if (oldest === null || r.startedAt < oldest.startedAt) oldest = r;
    }
    if (open === OPEN_RUNS) this.finishRun(oldest!);
    let run = this.runs.find((r) => r.state === RunState.Free);
    if (run === undefined) {
      // scratch is full: write out what is there
      for (const r of this.runs) if (r.state === RunState.Open) this.finishRun(r);
      this.flush(errs);
      run = this.runs[0];
    }
    run.coalescer = kind === PROTO_UDP ? run.udp : run.tcp;
    if (this.gather) run.coalescer.startInPlace(buf, off, len);
    else run.coalescer.start(this.scratch, run.slot * SCRATCH_SLOT + VNET_HDR_LEN, buf, off, len, (run.slot + 1) * SCRATCH_SLOT);
    run.state = RunState.Open;
    run.startedAt = this.runClock++;
    run.count = 0;
    run.members[run.count++] = index;
  }

  private finishRun(run: GroRun): void {
    if (run.coalescer.segments > 1) {
      if (run.coalescer === run.udp) this.superPackets.writtenUdp++;
      else this.superPackets.writtenTcp++;
    }
    const [off, len] = run.coalescer.finish();
    run.state = RunState.Finished;
    const q = this.queue(off, len, true);
    this.qRun[q] = run.slot;
    for (let j = 0; j < run.count; j++) {
      this.frameOf[run.members[j]] = q;
      this.pendingInputs[this.pendingCount++] = run.members[j];
    }
  }

  private queue(off: number, len: number, isRun: boolean): number {
    const q = this.qCount++;
    this.qOffs[q] = off;
    this.qLens[q] = len;
    this.qIsRun[q] = isRun ? 1 : 0;
    return q;
  }

  /** Writes the queued frames, lone packets first, then merged ones (one device write each), and settles errs. */
  private flush(errs: Int32Array): void {
    if (this.qCount === 0) return;
    if (this.gather) {
      this.writeGathered();
    } else {
      this.writeQueued(this.inPlace!, 0);
      this.writeQueued(this.scratchOut, 1);
    }
    for (let j = 0; j < this.pendingCount; j++) {
      const p = this.pendingInputs[j];
      const e = this.qErrs[this.frameOf[p]];
      errs[p] = e;
      if (e === 0) this.written++;
    }
    this.pendingCount = 0;
    this.qCount = 0;
    for (const r of this.runs) if (r.state === RunState.Finished) r.state = RunState.Free;
  }

  /**
   * One device call for every queued frame, lone packets first, then each run's frame as its first
   * packet (headers edited, virtio_net_hdr in front) followed by the payloads of the rest, where
   * they were received.
   */
  private writeGathered(): void {
    const out = this.inPlace!;
    const from = this.writeFrom!;
    const { offs, lens } = from;
    const pieces = this.pieces;
    let e = 0;
    let f = 0;
    for (let pass = 0; pass < 2; pass++) {
      for (let q = 0; q < this.qCount; q++) {
        if (this.qIsRun[q] !== pass) continue;
        out.offs[e] = this.qOffs[q];
        if (pass === 0) {
          out.lens[e++] = this.qLens[q];
          pieces[f] = 1;
        } else {
          const run = this.runs[this.qRun[q]];
          const hdr = run.coalescer.headerLength;
          out.lens[e++] = VNET_HDR_LEN + lens[run.members[0]];
          for (let j = 1; j < run.count; j++) {
            const m = run.members[j];
            out.offs[e] = offs[m] + hdr;
            out.lens[e++] = lens[m] - hdr;
          }
          pieces[f] = run.count;
        }
        this.subIndex[f++] = q;
      }
    }
    pieces[f] = 0;
    this.device.writeFrames!(out, e, pieces);
    for (let j = 0; j < f; j++) this.qErrs[this.subIndex[j]] = out.errs[j];
  }

  private writeQueued(out: PacketBatch, isRun: number): void {
    let k = 0;
    for (let q = 0; q < this.qCount; q++) {
      if (this.qIsRun[q] !== isRun) continue;
      out.offs[k] = this.qOffs[q];
      out.lens[k] = this.qLens[q];
      this.subIndex[k++] = q;
    }
    if (k === 0) return;
    this.device.write(out, k);
    for (let j = 0; j < k; j++) this.qErrs[this.subIndex[j]] = out.errs[j];
  }
}

const RunState = { Free: 0, Open: 1, Finished: 2 } as const;
type RunState = (typeof RunState)[keyof typeof RunState];

class GroRun {
  readonly tcp = new TcpCoalescer();
  readonly udp = new UdpCoalescer();
  /** The run's coalescer: tcp or udp, by the packet that started it. */
  coalescer: Coalescer = this.tcp;
  readonly members = new Int32Array(MAX_BATCH);
  count = 0;
  state: RunState = RunState.Free;
  startedAt = 0;
  constructor(readonly slot: number) {}
}
