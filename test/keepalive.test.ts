import { describe, expect, it } from 'vitest';
import { PacketResult, Encapsulator, Verdict } from '../src/index.js';
import { checksum, ipv6PseudoHeaderSum } from '../src/packet/checksum.js';
import { Keepalive } from '../src/daemon/keepalive.js';
import { scapy } from './helpers/external.js';
import { BROKER, ManualClock } from './helpers/tunnels.js';

/** What the peer's kernel would answer: the request with type 129 and addresses swapped. */
function replyTo(req: Buffer): Buffer {
  const r = Buffer.from(req);
  req.copy(r, 8, 24, 40);
  req.copy(r, 24, 8, 24);
  r[40] = 129;
  r.writeUInt16BE(0, 42);
  r.writeUInt16BE(checksum(r, 40, r.length - 40, ipv6PseudoHeaderSum(r, 8, 24, r.length - 40, 58)), 42);
  return r;
}

describe('keepalive', () => {
  it('probes are valid ICMPv6 echo requests from our address to the peer, and encapsulate', () => {
    const t = new Encapsulator(BROKER);
    const k = new Keepalive(t, 60, new ManualClock().fn);
    const [buf, off, len] = k.nextProbe();
    const p = buf.subarray(off, off + len);
    expect(p[40]).toBe(128);
    expect(checksum(p, 40, len - 40, ipv6PseudoHeaderSum(p, 8, 24, len - 40, 58))).toBe(0);
    expect(t.encapsulate(buf, off, len, new PacketResult()).verdict).toBe(Verdict.Forward);
  });

  it('a probe is byte for byte the echo request scapy builds from the same fields (hop limit 64, our address to the peer)', () => {
    const k = new Keepalive(new Encapsulator(BROKER), 60, new ManualClock().fn);
    k.nextProbe();
    const [buf, off, len] = k.nextProbe(); // the second: a sequence number past 1
    const p = Buffer.from(buf.subarray(off, off + len));
    const { packet } = scapy<{ packet: string }>({
      op: 'echo_request',
      src: '2001:db8:1::2',
      dst: '2001:db8:1::1',
      hlim: 64,
      id: p.readUInt16BE(44),
      seq: p.readUInt16BE(46),
      data: p.subarray(48).toString('hex'),
    });
    expect(p.toString('hex')).toBe(packet);
    expect(p.readUInt16BE(46)).toBe(2);
    expect(p.subarray(48).toString('latin1')).toBe('tun6in4 keepaliv');
  });

  it('takes its own replies off the RX path, records RTT, and leaves other packets alone', () => {
    const clock = new ManualClock();
    const t = new Encapsulator(BROKER);
    const k = new Keepalive(t, 60, clock.fn);
    const [buf, off, len] = k.nextProbe();
    const req = Buffer.from(buf.subarray(off, off + len));
    clock.advance(12.5);
    expect(k.intercept(replyTo(req), 0, len)).toBe(true);
    expect(k.stats()).toMatchObject({ sent: 1, received: 1, rttMs: { last: 12.5 } });
    const otherId = replyTo(req);
    otherId.writeUInt16BE(otherId.readUInt16BE(44) ^ 1, 44);
    expect(k.intercept(otherId, 0, len)).toBe(false);
    expect(k.intercept(req, 0, len)).toBe(false); // a request is not a reply
  });

  it('state before the first reply: starting, and down once 3 probes went unanswered; early losses leave no history', () => {
    const k = new Keepalive(new Encapsulator(BROKER), 1, new ManualClock().fn);
    k.nextProbe();
    k.nextProbe();
    expect(k.health(0)).toBe('starting');
    k.nextProbe();
    k.nextProbe();
    expect(k.health(0)).toBe('down');
    const [b, o, l] = k.nextProbe();
    k.intercept(replyTo(Buffer.from(b.subarray(o, o + l))), 0, l);
    expect(k.health(0)).toBe('up');
    k.nextProbe();
    expect(k.stats().lossPercent).toBe(0);
  });

  it('one probe sent and answered is 0 % loss, not "-" (issue 22: "loss -%, 1/1 answered")', () => {
    const k = new Keepalive(new Encapsulator(BROKER), 60, new ManualClock().fn);
    const [b, o, l] = k.nextProbe();
    k.intercept(replyTo(Buffer.from(b.subarray(o, o + l))), 0, l);
    expect(k.stats()).toMatchObject({ sent: 1, received: 1, lossPercent: 0 });
  });

  it('state: starting, up, degraded after a loss, down after 3 losses with nothing received', () => {
    const clock = new ManualClock();
    const k = new Keepalive(new Encapsulator(BROKER), 1, clock.fn);
    expect(k.health(0)).toBe('starting');
    const answer = () => {
      const [b, o, l] = k.nextProbe();
      k.intercept(replyTo(Buffer.from(b.subarray(o, o + l))), 0, l);
    };
    answer();
    expect(k.health(0)).toBe('up');
    k.nextProbe(); // lost
    k.nextProbe(); // closes the lost one
    expect(k.health(0)).toBe('degraded');
    k.nextProbe();
    k.nextProbe();
    expect(k.health(0)).toBe('down');
    expect(k.health(Date.now() + 1)).toBe('degraded'); // traffic still arrives: not down
    expect(k.stats().lossPercent).toBe(75);
    answer();
    expect(k.health(0)).toBe('degraded');
  });
});
