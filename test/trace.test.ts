/**
 * Packet decisions made visible, without root: the drop reason → rule table, the engine's tracer
 * over the in-memory fakes, the daemon's bounded trace ring under a slow reader, the 6to4/6rd
 * peer table under a flood of forged peers, the control socket's streams, and pcapng files as
 * tshark reads them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { ControlStream, listenControl } from '../src/daemon/control.js';
import { traceCommand } from '../src/daemon/trace-stream.js';
import { DROP_REASONS, describeDrop, formatTraceLine, renderMetrics, traceRecord, Encapsulator, type ManagedStatus, type TraceRecord } from '../src/index.js';
import { DROP_RULE } from '../src/encap/counters.js';
import { PeerTable, peersStatus, pcapngInterface, pcapngPacket, pcapngSectionHeader, isoToMicros, TraceStream, TunnelEngine, type TracePoint, type TraceSink, type TraceSource, type Tracer } from '../src/engine-api.js';
import { pcapngComment } from '../src/cli/trace-command.js';
import { FakeTransport, FakeTun } from '../src/testing.js';
import { settle } from './helpers/drain.js';
import { ip4, ipv4Packet, ipv6Packet } from './helpers/packets.js';
import { BROKER, LOCAL, OUR_SITE, PEER_SITE, PEER_SITE_V4, RELAY, REMOTE, SIX_TO_FOUR } from './helpers/tunnels.js';

function traced(opts: ConstructorParameters<typeof Encapsulator>[0], engineOpts = {}) {
  const tun = new FakeTun();
  const sock = new FakeTransport();
  const tunnel = new Encapsulator(opts);
  const engine = new TunnelEngine(tunnel, tun, sock, { batchSize: 8, ...engineOpts });
  const records: TraceRecord[] = [];
  engine.setTracer((p) => records.push(traceRecord(p)));
  engine.start();
  return { tun, sock, tunnel, engine, records };
}

describe('drop reasons name their rules from one table', () => {
  it('every reason has an entry, and every rule id it names is one docs/rules.md describes', () => {
    const docs = readFileSync(new URL('../docs/rules.md', import.meta.url), 'utf8');
    expect(Object.keys(DROP_RULE)).toEqual([...DROP_REASONS]);
    for (const [reason, rule] of Object.entries(DROP_RULE)) {
      if (rule === null) continue;
      for (const id of rule.split('/')) expect(docs.includes(`| ${id}`) || docs.includes(`**${id}**`) || docs.includes(`/${id} |`), `${reason} → ${id}`).toBe(true);
    }
    expect(describeDrop('rx_6to4_spoofed_source')).toBe('rx_6to4_spoofed_source (R29)');
    expect(describeDrop('rx_truncated')).toBe('rx_truncated');
  });
});

describe('engine tracer', () => {
  it('R14: a packet from a source other than the remote is traced as its drop, with the rule, outer and inner addresses', async () => {
    const { tun, sock, engine, records } = traced(BROKER);
    const inner = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' });
    sock.inject(ipv4Packet({ src: '203.0.113.9', dst: LOCAL, payload: inner }), ipv4Packet({ src: REMOTE, dst: LOCAL, payload: inner }));
    await settle(tun, sock);
    expect(records.map((r) => [r.direction, r.verdict, r.reason, r.rule, r.outerSrc, r.outerDst, r.innerSrc, r.innerDst, r.length])).toEqual([
      ['rx', 'drop', 'rx_wrong_outer_source', 'R14', '203.0.113.9', LOCAL, '2001:db8:1::1', '2001:db8:1::2', inner.length + 20],
      ['rx', 'forward', undefined, undefined, REMOTE, LOCAL, '2001:db8:1::1', '2001:db8:1::2', inner.length + 20],
    ]);
    expect(formatTraceLine(records[0])).toMatch(/ rx   203\.0\.113\.9 > 192\.0\.2\.1 \| 2001:db8:1::1 > 2001:db8:1::2 icmp6 len 76 \| drop rx_wrong_outer_source \(R14\)$/);
    engine.stop();
  });

  it('R08: tx is traced with its outer destination; a packet over the MTU as a drop answered with Packet Too Big', async () => {
    const { tun, sock, engine, records } = traced({ ...BROKER, mtu: 1280 });
    tun.inject(ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' }), ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 1300 }));
    await settle(tun, sock);
    expect(records[0]).toMatchObject({ direction: 'tx', verdict: 'forward', outerSrc: LOCAL, outerDst: REMOTE, innerDst: '2001:db8:9::1' });
    // what the Packet Too Big kept of the packet still names it
    expect(records[1]).toMatchObject({ direction: 'tx', verdict: 'reply', reason: 'tx_too_big', rule: 'R08', ptbMtu: 1280, innerSrc: '2001:db8:1::2', innerDst: '2001:db8:9::1', length: 1340 });
    expect(formatTraceLine(records[1])).toMatch(/drop tx_too_big \(R08\), Packet Too Big mtu 1280 sent back$/);
    engine.stop();
  });

  it('R29/R30: 6to4 spoofed sources and foreign prefixes are traced as such; null stops tracing', async () => {
    const { tun, sock, engine, records } = traced(SIX_TO_FOUR);
    const spoofed = ipv4Packet({ src: '203.0.113.77', dst: LOCAL, payload: ipv6Packet({ src: `${PEER_SITE}1`, dst: `${OUR_SITE}1` }) });
    const transit = ipv4Packet({ src: PEER_SITE_V4, dst: LOCAL, payload: ipv6Packet({ src: `${PEER_SITE}1`, dst: '2002:cb00:7101::1' }) });
    sock.inject(spoofed, transit);
    await settle(tun, sock);
    expect(records.map((r) => `${r.reason} (${r.rule}) from ${r.outerSrc}`)).toEqual(['rx_6to4_spoofed_source (R29) from 203.0.113.77', `rx_6to4_not_our_prefix (R30) from ${PEER_SITE_V4}`]);
    engine.setTracer(null);
    sock.inject(spoofed);
    await settle(tun, sock);
    expect(records).toHaveLength(2);
    engine.stop();
  });

  it('an ICMPv4 error is traced with its type, code and the destination it is about', async () => {
    const { tun, sock, engine, records } = traced({ ...BROKER, pmtu: 'dynamic' });
    const quoted = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 1420 });
    sock.injectError({ type: 3, code: 4, info: 1400, originalDst: ip4(REMOTE), quoted });
    await settle(tun, sock);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ direction: 'icmp', verdict: 'consumed', outerDst: REMOTE, icmp: { type: 3, code: 4, info: 1400 }, innerDst: '2001:db8:9::1' });
    expect(formatTraceLine(records[0])).toMatch(/icmp ICMPv4 3\/4 mtu 1400 about 192\.0\.2\.1 > 198\.51\.100\.1 .* path MTU 1400 noted$/);
    engine.stop();
  });
});

describe('6to4/6rd peer table', () => {
  it('stays bounded under many forged peers, counts evictions, and forgets the least recently seen first', () => {
    const t = new PeerTable(256);
    const relay = ip4(RELAY);
    // every host of the three documentation /24s but the relay, forging packets 10 times over,
    // the relay answering now and then
    const forged = [0xc0000200, 0xc6336400, 0xcb007100].flatMap((net) => Array.from({ length: 254 }, (_, h) => net + h + 1)).filter((a) => a !== relay);
    t.rx(relay, 100);
    for (let round = 0; round < 10; round++) {
      forged.forEach((a, i) => {
        t.drop(a, 22);
        if (i % 100 === 0) t.rx(relay, 100);
      });
    }
    expect(t.count).toBe(256);
    expect(t.evictions).toBe(10 * forged.length + 1 - 256);
    const top = t.top(256);
    expect(top).toHaveLength(256);
    expect(new Set(top.map((p) => p.ipv4)).size).toBe(256);
    // the relay was seen recently all along: never evicted, its counts intact
    expect(top.find((p) => p.ipv4 === RELAY)).toMatchObject({ rxPackets: 81, rxBytes: 8100, dropsTotal: 0 });
  });

  it('each way, by peer; status calls the relay a relay and one that relays unasked an unconfigured relay', async () => {
    const tun = new FakeTun();
    const sock = new FakeTransport();
    const tunnel = new Encapsulator(SIX_TO_FOUR);
    const engine = new TunnelEngine(tunnel, tun, sock, { peerTableSize: 4 });
    engine.start();
    const native = ipv6Packet({ src: '2001:db8:5::2', dst: `${OUR_SITE}1` });
    sock.inject(
      ipv4Packet({ src: RELAY, dst: LOCAL, payload: native }),
      ipv4Packet({ src: '198.51.100.50', dst: LOCAL, payload: native }),
      ipv4Packet({ src: PEER_SITE_V4, dst: LOCAL, payload: ipv6Packet({ src: `${PEER_SITE}1`, dst: `${OUR_SITE}1` }) }),
    );
    tun.inject(ipv6Packet({ src: `${OUR_SITE}1`, dst: `${PEER_SITE}1` }), ipv6Packet({ src: `${OUR_SITE}1`, dst: '2001:db8:5::2' }));
    await settle(tun, sock);
    const s = peersStatus(engine)!;
    expect(s).toMatchObject({ capacity: 4, tracked: 3, evictions: 0 });
    const by = Object.fromEntries(s.top.map((p) => [p.ipv4, p]));
    expect(by[RELAY]).toMatchObject({ kind: 'relay', rxPackets: 1, txPackets: 1, dropsTotal: 0 });
    expect(by[PEER_SITE_V4]).toMatchObject({ kind: 'site', rxPackets: 1, txPackets: 1 });
    expect(by['198.51.100.50']).toMatchObject({ kind: 'unconfigured relay', rxPackets: 0, drops: { rx_6to4_not_from_relay: 1 } });
    // 6in4 has no table: its one remote is the tunnel's own counters
    expect(new TunnelEngine(new Encapsulator(BROKER), new FakeTun(), new FakeTransport()).peers).toBeNull();
    engine.stop();
  });

  it('metrics carry only the busiest peers, whatever the table holds', () => {
    const t = new PeerTable(256);
    for (let i = 1; i <= 200; i++) for (let k = 0; k < i; k++) t.rx(0xcb007100 + i, 10);
    const top = t.top(10).map((p) => ({ ...p, kind: 'site' as const }));
    const status = { tunnel: 'sixtofour', counters: { traffic: {}, drops: {} }, peers: { capacity: 256, tracked: t.count, evictions: 0, top }, keepalive: null, health: 'up', mtu: 1480 };
    const text = renderMetrics([status as unknown as ManagedStatus]);
    const series = text.split('\n').filter((l) => l.startsWith('tun6in4_peer_packets_total{'));
    expect(series).toHaveLength(20);
    expect(series[0]).toBe('tun6in4_peer_packets_total{tunnel="sixtofour",peer="203.0.113.200",kind="site",direction="rx"} 200');
    expect(text).toContain('tun6in4_peer_table_entries{tunnel="sixtofour"} 200');
  });
});

/** A sink that takes `room` lines, then reports full until `drain()`. */
class SlowSink implements TraceSink {
  readonly lines: string[] = [];
  private drainCb: (() => void) | null = null;
  ended = '';
  constructor(public room: number) {}
  write(line: string): boolean {
    this.lines.push(line);
    return --this.room > 0;
  }
  once(_e: 'drain', cb: () => void): unknown {
    this.drainCb = cb;
    return this;
  }
  end(line: string): void {
    this.ended = line;
  }
  drain(room: number): void {
    this.room = room;
    const cb = this.drainCb;
    this.drainCb = null;
    cb?.();
  }
}

/** A tunnel for a TraceStream, whose tracer the test calls by hand. */
class HandSource implements TraceSource {
  tracer: Tracer | null = null;
  end: ((why: string) => void) | null = null;
  constructor(readonly name: string) {}
  watch(t: Tracer, onEnd: (why: string) => void): () => void {
    this.tracer = t;
    this.end = onEnd;
    return () => (this.tracer = null);
  }
}

describe('trace stream', () => {
  it('a slow reader loses decisions, never the data path: the ring drops and counts, and says where the gap was', async () => {
    const { tun, sock, engine } = traced(BROKER);
    const src = new HandSource('he');
    const sink = new SlowSink(2);
    const stream = new TraceStream([src], sink, { ringSize: 8 });
    engine.setTracer((p: TracePoint) => src.tracer?.(p));
    // header + 1 event fit, then the reader stalls while 20 packets go through
    tun.inject(...Array.from({ length: 20 }, (_, i) => ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 16 + i })));
    await settle(tun, sock);
    expect(sock.sent).toHaveLength(20);
    expect(stream.ring.size).toBe(8);
    expect(stream.ring.lost).toBe(12);
    sink.drain(100);
    tun.inject(ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' }));
    await settle(tun, sock);
    await new Promise((r) => setImmediate(r));
    const lines = sink.lines.map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ trace: { tunnels: ['he'], dropsOnly: false, snapLen: 256 } });
    expect(lines.filter((l) => l.event)).toHaveLength(9);
    // the 8 kept, then the gap, then what came after it
    expect(lines.slice(-2)).toEqual([{ lost: 12 }, expect.objectContaining({ event: expect.objectContaining({ tunnel: 'he', length: 56 }) })]);
    src.end!('he: tunnel stopped');
    expect(JSON.parse(sink.ended)).toEqual({ end: 'he: tunnel stopped' });
    expect(src.tracer).toBeNull();
    engine.stop();
  });

  it('--drops: only drops (and Packet Too Big) are kept', async () => {
    const { tun, sock, engine } = traced({ ...BROKER, mtu: 1280 });
    const src = new HandSource('he');
    const sink = new SlowSink(100);
    new TraceStream([src], sink, { dropsOnly: true });
    engine.setTracer((p) => src.tracer?.(p));
    tun.inject(ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' }), ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 1300 }));
    sock.inject(ipv4Packet({ src: '203.0.113.9', dst: LOCAL, payload: ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' }) }));
    await settle(tun, sock);
    await new Promise((r) => setImmediate(r));
    const events = sink.lines.map((l) => JSON.parse(l)).filter((l) => l.event).map((l) => l.event.reason);
    expect(events.sort()).toEqual(['rx_wrong_outer_source', 'tx_too_big']);
    engine.stop();
  });
});

describe('which tunnel a trace asks for', () => {
  it('by its name or by its interface\'s (the `name` status --json shows); an unknown one lists both', () => {
    const he = Object.assign(new HandSource('he'), { interfaceName: 'he-ipv6' });
    const six = Object.assign(new HandSource('six'), { interfaceName: 'six' });
    const tunnels = new Map<string, TraceSource>([['he', he], ['six', six]]);
    const header = (args: string) => {
      const sink = new SlowSink(100);
      traceCommand(args, tunnels).open(sink as never);
      return JSON.parse(sink.lines[0]).trace.tunnels;
    };
    expect(header('{"tunnel":"he"}')).toEqual(['he']);
    expect(header('{"tunnel":"he-ipv6"}')).toEqual(['he']);
    expect(header('{}')).toEqual(['he', 'six']);
    expect(() => traceCommand('{"tunnel":"tun0"}', tunnels)).toThrow('no tunnel or interface "tun0" runs here; running: he (interface he-ipv6), six');
  });
});

describe('control socket streams', () => {
  it('a stream outlives one answer, is capped, and is ended when the daemon stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-trace-'));
    const path = join(dir, 'c.sock');
    let streamClosed: () => void = () => undefined;
    const closed = new Promise<void>((r) => (streamClosed = r));
    const listener = await listenControl(path, 0o600, undefined, (cmd) =>
      cmd === 'stream'
        ? new ControlStream((s) => {
            s.write('{"hello":1}\n');
            return { close: () => streamClosed() };
          })
        : { answer: cmd },
      { idleMs: 10_000, maxConnections: 16, maxStreams: 1 },
    );
    const open = (cmd: string) => {
      const c = createConnection(path);
      c.on('connect', () => c.write(`${cmd}\n`));
      const lines: unknown[] = [];
      const rl = createInterface({ input: c });
      const first = new Promise<void>((resolve) => rl.on('line', (l) => (lines.push(JSON.parse(l)), resolve())));
      const gone = new Promise<void>((resolve) => c.on('close', () => resolve()));
      return { c, lines, first, gone };
    };
    const a = open('stream');
    await a.first;
    const b = open('stream');
    await b.gone;
    expect(b.lines).toEqual([{ error: '1 traces already run on this daemon; stop one (they end when their client exits)' }]);
    await listener.close();
    await a.gone;
    expect(a.lines).toEqual([{ hello: 1 }, { end: 'daemon stopping' }]);
    await closed;
  });
});

describe('pcapng', () => {
  const tshark = spawnSync('tshark', ['--version']).status === 0;

  it.runIf(tshark)('tshark reads each packet with its decision as the packet comment, per tunnel interface', () => {
    const rec = (r: Partial<TraceRecord>): TraceRecord => ({ time: '2026-01-02T03:04:05.123456Z', direction: 'rx', verdict: 'drop', length: 0, tunnel: 'he', ...r });
    const outer = ipv4Packet({ src: '203.0.113.9', dst: LOCAL, payload: ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' }) });
    const inner = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' });
    const a = rec({ outerSrc: '203.0.113.9', outerDst: LOCAL, reason: 'rx_wrong_outer_source', rule: 'R14', length: outer.length });
    const b = rec({ tunnel: 'six', direction: 'tx', verdict: 'forward', outerSrc: LOCAL, outerDst: REMOTE, length: inner.length });
    const file = join(mkdtempSync(join(tmpdir(), 'tun6in4-pcapng-')), 't.pcapng');
    writeFileSync(
      file,
      Buffer.concat([
        pcapngSectionHeader(),
        pcapngInterface('he', 256),
        pcapngInterface('six', 256),
        pcapngPacket(0, isoToMicros(a.time), outer, a.length, pcapngComment(a)),
        pcapngPacket(1, isoToMicros(b.time) + 1n, inner.subarray(0, 50), 1000, pcapngComment(b)),
      ]),
    );
    const out = spawnSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.comment', '-e', 'frame.interface_name', '-e', 'ip.src', '-e', 'ipv6.dst', '-e', 'frame.len', '-e', 'frame.time_epoch'], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout.trim().split('\n')).toEqual([
      `he rx 203.0.113.9 > 192.0.2.1: drop rx_wrong_outer_source (R14)|he|203.0.113.9|2001:db8:1::2|${outer.length}|1767323045.123456000`,
      'six tx 192.0.2.1 > 198.51.100.1: forward|six||2001:db8:9::1|1000|1767323045.123457000',
    ]);
  });
});

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

/** Runs the CLI without blocking this process's event loop (a control socket served here must answer it). */
function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('tun6in4 trace as a client', () => {
  it('no daemon at the socket: one line naming the path and the fix, exit 2, no pcapng file left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-trace-client-'));
    const sock = join(dir, 'none.sock');
    const r = await cli('trace', '--control', sock, '--pcapng', join(dir, 'out.pcapng'));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`tun6in4: cannot reach the daemon at ${sock}: ENOENT; no daemon listens there: start one (tun6in4 up -c FILE, or tun6in4 run), or give the socket it uses (--control PATH)\n`);
    expect(readdirSync(dir)).toEqual([]);
  }, 30_000);

  it('a --control path that is a directory or a regular file is named for what it is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-trace-client-'));
    const file = join(dir, 'f');
    writeFileSync(file, '');
    expect((await cli('trace', '--control', dir)).stderr).toBe(`tun6in4: cannot reach the daemon at ${dir}: it is a directory, not a control socket; give the daemon's socket (--control /run/tun6in4/NAME.sock, the file's control.socket)\n`);
    expect((await cli('status', '--control', file)).stderr).toMatch(/^tun6in4: cannot reach the daemon at .*\/f: it is a regular file, not a control socket; /);
  }, 30_000);

  it('--pcapng over a planted symlink replaces the link with the capture and leaves its target alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tun6in4-trace-client-'));
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const out = join(dir, 'out.pcapng');
    symlinkSync(victim, out);
    const sock = join(dir, 'c.sock');
    const event = { event: { time: '2026-01-02T03:04:05.123456Z', direction: 'rx', verdict: 'forward', length: 40, tunnel: 'he' }, packet: ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' }).toString('hex') };
    const listener = await listenControl(sock, 0o600, undefined, () =>
      new ControlStream((s) => {
        s.write(`${JSON.stringify({ trace: { tunnels: ['he'], dropsOnly: false, snapLen: 256 } })}\n${JSON.stringify(event)}\n`);
        return { close: () => undefined };
      }),
    );
    try {
      const r = await cli('trace', '--control', sock, '--count', '1', '--pcapng', out);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`1 packets written to ${out}`);
    } finally {
      await listener.close();
    }
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(out).isFile()).toBe(true);
    expect(readFileSync(out).readUInt32LE(0)).toBe(0x0a0d0d0a);
    expect(readdirSync(dir).sort()).toEqual(['out.pcapng', 'victim']);
  }, 30_000);
});
