/**
 * `tun6in4 trace` on the daemon's side: engine tracers copy each decision into a bounded ring, and
 * the ring is drained onto the client's connection as JSON lines at the pace the client reads.
 * The data path never waits for a client: when the ring is full (the reader is slow), decisions
 * are not kept, and how many were lost is counted and told to the client.
 */
import { Drop } from '../encap/counters.js';
import { Verdict } from '../encap/result.js';
import { TracePoint, type Tracer } from '../engine/trace.js';
import { traceRecord, type TraceRecord } from './trace-record.js';
import { ControlStream } from './control.js';

/** Decisions kept for a reader that has not read them yet. */
export const TRACE_RING_SIZE = 4096;
/** Bytes kept of each packet: the outer and inner headers and what follows (as tcpdump's old default). */
export const TRACE_SNAP_LEN = 256;

/** One line of the stream: a decision (with its bytes, hex, when asked for), or what the stream says about itself. */
export type TraceLine =
  | { trace: { tunnels: string[]; dropsOnly: boolean; snapLen: number } }
  | { event: TraceRecord & { tunnel: string }; packet?: string }
  | { lost: number }
  | { end: string }
  | { error: string };

export interface TraceFilter {
  /** Only drops (and Packet Too Big answers, which are drops). */
  dropsOnly?: boolean;
}

/** Whether a decision is one a `--drops` trace shows: every drop, including those answered with Packet Too Big. */
export function isDropDecision(p: TracePoint): boolean {
  return p.verdict === Verdict.Drop || (p.reason >= 0 && p.reason === Drop.tx_too_big);
}

/**
 * A fixed ring of copied decisions: `tracer(tunnelIndex)` gives the engine tracer for one tunnel;
 * `shift` hands out the oldest kept decision. Full: new decisions are counted in `lost` instead.
 */
export class TraceRing {
  /** Decisions not kept since the ring was made (it was full). */
  lost = 0;
  /** Of those, the ones since the last decision kept: told before the next one handed out. */
  private lostSinceKept = 0;
  private head = 0;
  private count = 0;
  private readonly points: TracePoint[];
  private readonly tunnel: Int32Array;
  private readonly lostBefore: Float64Array;
  private readonly store: Buffer;
  /** Called when the ring goes from empty to not empty (the reader schedules a drain). */
  onData: () => void = () => undefined;

  constructor(
    readonly capacity = TRACE_RING_SIZE,
    readonly snapLen = TRACE_SNAP_LEN,
    private readonly filter: TraceFilter = {},
  ) {
    this.points = Array.from({ length: capacity }, () => new TracePoint());
    this.tunnel = new Int32Array(capacity);
    this.lostBefore = new Float64Array(capacity);
    this.store = Buffer.alloc(capacity * snapLen);
  }

  get size(): number {
    return this.count;
  }

  tracer(tunnelIndex: number): Tracer {
    return (p) => this.push(p, tunnelIndex);
  }

  push(p: TracePoint, tunnelIndex: number): void {
    if (this.filter.dropsOnly && !isDropDecision(p)) return;
    if (this.count === this.capacity) {
      this.lost++;
      this.lostSinceKept++;
      return;
    }
    const i = (this.head + this.count) % this.capacity;
    const q = this.points[i];
    Object.assign(q, p);
    const n = Math.min(p.length, this.snapLen);
    p.buf.copy(this.store, i * this.snapLen, p.offset, p.offset + n);
    q.buf = this.store;
    q.offset = i * this.snapLen;
    q.length = n;
    this.tunnel[i] = tunnelIndex;
    this.lostBefore[i] = this.lostSinceKept;
    this.lostSinceKept = 0;
    if (this.count++ === 0) this.onData();
  }

  /**
   * The oldest kept decision as a record with its bytes (a copy), and how many decisions were
   * lost just before it; null when empty.
   */
  shift(): { record: TraceRecord; tunnel: number; bytes: Buffer; lostBefore: number } | null {
    if (this.count === 0) return null;
    const i = this.head;
    const q = this.points[i];
    const bytes = Buffer.from(this.store.subarray(q.offset, q.offset + q.length));
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return { record: traceRecord(q, bytes), tunnel: this.tunnel[i], bytes, lostBefore: this.lostBefore[i] };
  }
}

/** Where a stream writes: a socket, as far as the stream is concerned. */
export interface TraceSink {
  /** false: the sink's buffer is full; wait for 'drain'. */
  write(line: string): boolean;
  once(event: 'drain', cb: () => void): unknown;
  /** Ends the stream after `line`. */
  end(line: string): void;
}

export interface TraceSource {
  name: string;
  /** Its network interface (`status` shows it as `name`), by which a trace may ask for it too. */
  readonly interfaceName?: string;
  /**
   * Adds `tracer` to the tunnel's engine; `onEnd` is told if the tunnel stops first. Returns
   * what removes the tracer again.
   */
  watch(tracer: Tracer, onEnd: (why: string) => void): () => void;
}

export interface TraceStreamOptions extends TraceFilter {
  /** Send each packet's bytes (hex, at most snapLen) for a pcapng file. */
  packets?: boolean;
  ringSize?: number;
  snapLen?: number;
}

/**
 * One client's trace: a ring fed by the tunnels' tracers, drained onto `sink` while the sink
 * takes it. `close` detaches from every tunnel.
 */
export class TraceStream {
  readonly ring: TraceRing;
  private waiting = false;
  private scheduled = false;
  private closed = false;
  private readonly unwatch: Array<() => void>;

  constructor(
    private readonly sources: TraceSource[],
    private readonly sink: TraceSink,
    private readonly options: TraceStreamOptions = {},
  ) {
    this.ring = new TraceRing(options.ringSize ?? TRACE_RING_SIZE, options.snapLen ?? TRACE_SNAP_LEN, options);
    // Drain on the next turn of the event loop, never inside the engine's loop.
    this.ring.onData = () => this.schedule();
    this.send({ trace: { tunnels: sources.map((s) => s.name), dropsOnly: !!options.dropsOnly, snapLen: this.ring.snapLen } });
    this.unwatch = sources.map((s, i) => s.watch(this.ring.tracer(i), (why) => this.end(why)));
  }

  private schedule(): void {
    if (this.scheduled || this.waiting || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  /** Writes kept decisions until the ring is empty or the sink is full. */
  drain(): void {
    while (!this.closed && !this.waiting) {
      const e = this.ring.shift();
      if (e === null) return;
      // in order: the gap, then what came after it
      if (e.lostBefore > 0) this.send({ lost: e.lostBefore });
      const line: TraceLine = { event: { ...e.record, tunnel: this.sources[e.tunnel].name } };
      if (this.options.packets) line.packet = e.bytes.toString('hex');
      if (!this.send(line)) break;
    }
  }

  private send(line: TraceLine): boolean {
    if (this.sink.write(`${JSON.stringify(line)}\n`)) return true;
    if (!this.waiting) {
      this.waiting = true;
      this.sink.once('drain', () => {
        this.waiting = false;
        this.drain();
      });
    }
    return false;
  }

  /** A tunnel of this stream stopped (removed, restarted, failed): the client is told, and the stream ends. */
  end(why: string): void {
    if (this.closed) return;
    this.close();
    this.sink.end(`${JSON.stringify({ end: why } satisfies TraceLine)}\n`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // may run while the constructor is still watching (a tunnel already stopping)
    for (const u of this.unwatch ?? []) u();
  }
}

/** What `trace` on the control socket takes: `trace {"tunnel":"he","drops":true,"packets":true}`. */
export interface TraceRequest {
  /** One tunnel by name; all of them when absent. */
  tunnel?: string;
  drops?: boolean;
  packets?: boolean;
}

/** The control command `trace <json>`: a ControlStream over the tunnels asked for. */
export function traceCommand(args: string, tunnels: ReadonlyMap<string, TraceSource>): ControlStream {
  let req: TraceRequest = {};
  if (args.trim()) {
    try {
      req = JSON.parse(args) as TraceRequest;
    } catch {
      throw new Error(`trace takes a JSON object, e.g. trace {"tunnel":"he","drops":true}; got ${args.slice(0, 100)}`);
    }
  }
  const all = [...tunnels.values()];
  const asked = req.tunnel === undefined ? undefined : (tunnels.get(req.tunnel) ?? all.find((t) => t.interfaceName === req.tunnel));
  const sources = req.tunnel === undefined ? all : asked ? [asked] : [];
  if (req.tunnel !== undefined && sources.length === 0) {
    const running = all.map((t) => (t.interfaceName && t.interfaceName !== t.name ? `${t.name} (interface ${t.interfaceName})` : t.name));
    throw new Error(`no tunnel or interface "${req.tunnel}" runs here; running: ${running.join(', ') || 'none'}`);
  }
  if (sources.length === 0) throw new Error('no tunnel runs here to trace');
  return new ControlStream((socket) => new TraceStream(sources, socket, { dropsOnly: !!req.drops, packets: !!req.packets }));
}
