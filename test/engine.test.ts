/** The engine over in-memory TUN and socket fakes: the whole data path, no root needed. */
import { constants as osConstants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Encapsulator } from '../src/index.js';
import { TunnelEngine } from '../src/engine-api.js';
import { FakeTransport, FakeTun } from '../src/testing.js';
import type { PacketBatch } from '../src/engine-api.js';
import { settle } from './helpers/drain.js';
import { ip4, ipv4Packet, ipv6Packet } from './helpers/packets.js';
import { BROKER, LOCAL, REMOTE } from './helpers/tunnels.js';

/** An engine over fakes that records what it reports through onIoError. */
function reportingErrors() {
  const tun = new FakeTun();
  const sock = new FakeTransport();
  const tunnel = new Encapsulator(BROKER);
  const seen: Array<[string, number]> = [];
  const engine = new TunnelEngine(tunnel, tun, sock, { onIoError: (w, e) => seen.push([w, e]) });
  engine.start();
  return { tun, sock, tunnel, engine, seen };
}

function setup(opts: Partial<typeof BROKER> = {}, batchSize = 4) {
  const tun = new FakeTun();
  const sock = new FakeTransport();
  const tunnel = new Encapsulator({ ...BROKER, ...opts });
  const engine = new TunnelEngine(tunnel, tun, sock, { batchSize, maxBatchesPerWake: 2 });
  engine.start();
  return { tun, sock, tunnel, engine };
}

/** A TUN whose host answers inside our write, as Linux's stack answers an echo: the answer waits to be read, and no readiness is announced for it. */
class AnsweringTun extends FakeTun {
  constructor(private readonly answer: Buffer) {
    super();
  }
  override write(b: PacketBatch, n: number): number {
    const done = super.write(b, n);
    this.inbound.push(this.answer);
    return done;
  }
}

describe('engine', () => {
  it('a receive that wrote into the TUN reads the TUN before sleeping: the host\'s answer leaves in the same wake-up', async () => {
    const answer = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1', payloadLen: 24 });
    const tun = new AnsweringTun(answer);
    const sock = new FakeTransport();
    const engine = new TunnelEngine(new Encapsulator(BROKER), tun, sock);
    engine.start();
    await tun.drained();
    sock.inject(ipv4Packet({ src: REMOTE, dst: LOCAL, payload: ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' }) }));
    await sock.drained();
    expect(tun.written).toHaveLength(1);
    // the TUN announced nothing: only the engine's own read after its write can have sent this
    expect(sock.sent).toHaveLength(1);
    expect(sock.sent[0].bytes.subarray(20)).toEqual(answer);
    engine.stop();
  });

  it('TX: IPv6 from the TUN leaves as protocol 41 to the remote, in batches larger than one call', async () => {
    const { tun, sock, engine } = setup();
    const pkts = Array.from({ length: 11 }, (_, i) => ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 20 + i }));
    tun.inject(...pkts);
    await settle(tun, sock);
    expect(sock.sent).toHaveLength(11);
    sock.sent.forEach((s, i) => {
      expect(s.dst).toBe(ip4(REMOTE));
      expect(s.bytes.subarray(20)).toEqual(pkts[i]);
    });
    expect(engine.lastTxAt).toBeGreaterThan(0);
    engine.stop();
  });

  it('RX: protocol 41 from the remote reaches the TUN as the inner packet; others are counted drops', async () => {
    const { tun, sock, tunnel, engine } = setup();
    const inner = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' });
    sock.inject(ipv4Packet({ src: REMOTE, dst: LOCAL, payload: inner }), ipv4Packet({ src: '203.0.113.9', dst: LOCAL, payload: inner }));
    await settle(tun, sock);
    expect(tun.written).toEqual([inner]);
    expect(tunnel.counters.snapshot().drops.rx_wrong_outer_source).toBe(1);
    engine.stop();
  });

  it('R08: Packet Too Big goes back out of the TUN, nothing to the network', async () => {
    const { tun, sock, engine } = setup({ mtu: 1280 });
    tun.inject(ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 1300 }));
    await settle(tun, sock);
    expect(sock.sent).toHaveLength(0);
    expect(tun.written).toHaveLength(1);
    expect([tun.written[0][40], tun.written[0].readUInt32BE(44)]).toEqual([2, 1280]);
    engine.stop();
  });

  it('R07: a queued "fragmentation needed" lowers the tunnel MTU; R11: an unreachable is relayed to the TUN', async () => {
    const { tun, sock, tunnel, engine } = setup({ pmtu: 'dynamic' });
    // a packet too big for the reported MTU, as RFC 1191 requires of a genuine report
    const quoted = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 1420 });
    sock.injectError({ type: 3, code: 4, info: 1400, originalDst: ip4(REMOTE), quoted });
    sock.injectError({ type: 3, code: 1, info: 0, originalDst: ip4(REMOTE), quoted });
    await settle(tun, sock);
    expect(tunnel.mtuFor(ip4(REMOTE))).toBe(1380);
    expect(tun.written).toHaveLength(1);
    expect([tun.written[0][40], tun.written[0][41]]).toEqual([1, 3]);
    engine.stop();
  });

  it('reads the error queue only on a wake-up that says an error is queued (POLLERR), and then before the packets', async () => {
    const { tun, sock, tunnel, engine } = setup({ pmtu: 'dynamic' });
    const inner = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2' });
    for (let i = 0; i < 3; i++) {
      sock.inject(ipv4Packet({ src: REMOTE, dst: LOCAL, payload: inner }));
      await settle(tun, sock);
    }
    expect(tun.written).toHaveLength(3);
    expect(sock.errorQueueReads).toBe(0);
    const quoted = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 1420 });
    sock.injectError({ type: 3, code: 4, info: 1400, originalDst: ip4(REMOTE), quoted });
    sock.inject(ipv4Packet({ src: REMOTE, dst: LOCAL, payload: inner }));
    await settle(tun, sock);
    expect(sock.errorQueueReads).toBeGreaterThan(0);
    expect(tunnel.mtuFor(ip4(REMOTE))).toBe(1380);
    expect(tun.written).toHaveLength(4);
    // a caller that runs the pump itself, not told what the poll said, still reads the queue
    const reads = sock.errorQueueReads;
    engine.pumpRx();
    expect(sock.errorQueueReads).toBe(reads + 1);
    engine.stop();
  });

  it('F4: a flood of ICMPv4 errors is read a bounded number of batches per wake-up; the loop yields and reads the rest on the next ones', async () => {
    const { tun, sock, tunnel, engine } = setup({ pmtu: 'dynamic' }, 64); // 2 batches a wake
    const quoted = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' });
    for (let i = 0; i < 10_000; i++) sock.injectError({ type: 3, code: 1, info: 0, originalDst: ip4(REMOTE), quoted });
    // the first wake-up was queued when the errors were; this turn runs right after it
    await new Promise((r) => setImmediate(r));
    expect(sock.errorQueueReads).toBe(2);
    expect(sock.errors).toHaveLength(10_000 - 2 * 64);
    await settle(tun, sock);
    expect(sock.errors).toHaveLength(0);
    const c = tunnel.counters.snapshot();
    expect(c.traffic.icmp6_errors_relayed + c.drops.icmp4_relay_rate_limited).toBe(10_000);
    engine.stop();
  });

  it('a send the socket refuses is counted as tx_send_error and reported once per batch', async () => {
    const { tun, sock, tunnel, engine, seen } = reportingErrors();
    sock.sendFailures.push(0, 1, osConstants.errno.EINVAL);
    tun.inject(...[1, 2, 3].map(() => ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' })));
    await settle(tun, sock);
    expect(sock.sent).toHaveLength(1);
    expect(tunnel.counters.snapshot().drops.tx_send_error).toBe(2);
    expect(seen).toEqual([['send', 1]]);
    engine.stop();
  });

  it('F1: a packet the outgoing queue drops (ENOBUFS) is tx_link_full, not an I/O error, and the batch goes on', async () => {
    const { tun, sock, tunnel, engine, seen } = reportingErrors();
    sock.sendFailures.push(osConstants.errno.ENOBUFS, 0, osConstants.errno.ENOBUFS, 0);
    tun.inject(...[1, 2, 3, 4].map(() => ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' })));
    await settle(tun, sock);
    expect(sock.sent).toHaveLength(2);
    const drops = tunnel.counters.snapshot().drops;
    expect(drops.tx_link_full).toBe(2);
    expect(drops.tx_send_error).toBe(0);
    expect(seen).toEqual([]);
    expect(tun.isPaused).toBe(false); // a drop is no reason to wait
    engine.stop();
  });

  it('back-pressure: a full socket holds the rest of the batch, pauses the TUN, and sends it all in order once writable', async () => {
    const { tun, sock, tunnel, engine } = setup({}, 8);
    sock.room = 3;
    const pkts = Array.from({ length: 20 }, (_, i) => ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 30 + i }));
    tun.inject(...pkts);
    await settle(sock);
    await new Promise((r) => setImmediate(r));
    // three went out; the rest wait, the TUN is not read meanwhile, nothing counted as lost
    expect(sock.sent).toHaveLength(3);
    expect(tun.isPaused).toBe(true);
    expect(tun.inbound.length).toBeGreaterThan(0);
    expect(tunnel.counters.snapshot().drops.tx_send_error).toBe(0);
    sock.makeWritable(5);
    await new Promise((r) => setImmediate(r));
    await settle(sock);
    expect(sock.sent).toHaveLength(8);
    expect(tun.isPaused).toBe(true);
    sock.makeWritable();
    await new Promise((r) => setImmediate(r));
    await settle(tun, sock);
    expect(tun.isPaused).toBe(false);
    expect(sock.sent.map((s) => s.inner)).toEqual(pkts);
    const c = tunnel.counters.snapshot();
    expect(c.drops.tx_send_error).toBe(0);
    expect(c.traffic.tx_backpressure_waits).toBeGreaterThanOrEqual(2);
    engine.stop();
  });

  it('a packet larger than a receive slot is counted, not delivered cut short', async () => {
    const { tun, sock, tunnel, engine } = setup();
    sock.inject(Buffer.alloc(70_000));
    await settle(tun, sock);
    expect(tun.written).toHaveLength(0);
    expect(tunnel.counters.snapshot().drops.rx_truncated).toBe(1);
    engine.stop();
  });
});
