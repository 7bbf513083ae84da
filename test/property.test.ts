import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PacketResult, Encapsulator, Verdict } from '../src/index.js';
import { icmpv4Error, ipv4Packet, ipv6Packet, withHeadroom } from './helpers/packets.js';
import { LOCAL, packetOutcomes as outcomes, REMOTE, tunnel } from './helpers/tunnels.js';

const out = new PacketResult();


const arbInner = fc.record({
  payload: fc.uint8Array({ minLength: 0, maxLength: 1400 }),
  trafficClass: fc.integer({ min: 0, max: 255 }),
  flowLabel: fc.integer({ min: 0, max: 0xfffff }),
  hopLimit: fc.integer({ min: 0, max: 255 }),
  nextHeader: fc.integer({ min: 0, max: 255 }),
});

describe('properties', () => {
  it('encapsulate on one end, decapsulate on the other: the inner packet arrives byte for byte', () => {
    const a = tunnel({ ttl: 'inherit', tos: 'inherit' });
    const b = new Encapsulator({ mode: '6in4', local: REMOTE, remote: LOCAL, address: '2001:db8:1::1/64' });
    fc.assert(
      fc.property(arbInner, (s) => {
        const pkt = ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:1::1', ...s, payload: Buffer.from(s.payload) });
        const [buf, off] = withHeadroom(pkt);
        const r = a.encapsulate(buf, off, pkt.length, out);
        expect(r.verdict).toBe(Verdict.Forward);
        const d = b.decapsulate(buf, r.offset, r.length, out);
        expect(d.verdict).toBe(Verdict.Forward);
        expect(buf.subarray(d.offset, d.offset + d.length)).toEqual(pkt);
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes never throw and always end as exactly one counted outcome', () => {
    for (const mode of ['6in4', '6to4'] as const) {
      const t = tunnel({ mode, pmtu: 'dynamic' });
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.boolean(), (bytes, toTun) => {
          const before = outcomes(t);
          const [buf, off] = withHeadroom(Buffer.from(bytes));
          const r = toTun ? t.decapsulate(buf, off, bytes.length, out) : t.encapsulate(buf, off, bytes.length, out);
          expect([Verdict.Forward, Verdict.Reply, Verdict.Drop, Verdict.Consumed]).toContain(r.verdict);
          expect(outcomes(t) - before).toBe(1);
          if (r.verdict === Verdict.Forward || r.verdict === Verdict.Reply) {
            expect(r.offset).toBeGreaterThanOrEqual(0);
            expect(r.offset + r.length).toBeLessThanOrEqual(buf.length);
          }
        }),
        { numRuns: 3000 },
      );
    }
  });

  it('mutated valid packets (protocol 41 and ICMPv4 errors) never throw and are counted once', () => {
    const t = tunnel({ pmtu: 'dynamic' });
    const inner = ipv6Packet({ src: '2001:db8:1::1', dst: '2001:db8:1::2', payloadLen: 64 });
    const tunnelled = ipv4Packet({ src: REMOTE, dst: LOCAL, payload: inner });
    const quoted = ipv4Packet({ src: LOCAL, dst: REMOTE, payload: ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1', payloadLen: 64 }) });
    const icmp = ipv4Packet({ src: '203.0.113.254', dst: LOCAL, protocol: 1, payload: icmpv4Error(3, 1, 0, quoted) });
    const seeds = [tunnelled, icmp];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        (which, edits, cut) => {
          const p = Buffer.from(seeds[which]);
          for (const [at, v] of edits) p[at % p.length] = v;
          const len = cut % 3 === 0 ? cut % (p.length + 1) : p.length;
          const before = outcomes(t);
          const [buf, off] = withHeadroom(p);
          t.decapsulate(buf, off, len, out);
          expect(outcomes(t) - before).toBe(1);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
