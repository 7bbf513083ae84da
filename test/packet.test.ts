import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { classifyIpv4, embedIpv4, extractIpv4, linkLocalFromIpv4, SIX_TO_FOUR } from '../src/engine-api.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6, parseIpv6Prefix } from '../src/index.js';
import { checksum, checksumAdjust, fold, sum16 } from '../src/packet/checksum.js';
import { delegatedPrefixLength, inDomain, validateDomain } from '../src/packet/sixrd.js';
import { isBogus6to4Inner, isBogus6to4Ipv4, isBogusInnerSource } from '../src/packet/address.js';
import { isIcmpv6ErrorPacket } from '../src/packet/icmpv6.js';
import { checkIpv4, Ipv4Error, IPV4, IPV4_FLAG_DF } from '../src/packet/ipv4.js';
import { checkIpv6, Ipv6Error, IPV6, ipv6TrafficClass, setIpv6TrafficClass } from '../src/packet/ipv6.js';
import { moveBytes } from '../src/packet/bytes.js';
import { ip4, ipv4Packet, ipv6Packet, refChecksum, refSum } from './helpers/packets.js';

/** RFC 1071 by the book: big-endian 16-bit words, a trailing odd byte padded with zero. */

describe('checksum', () => {
  it('matches RFC 1071 §3 worked example', () => {
    const b = Buffer.from('0001f203f4f5f6f7', 'hex');
    // sum = ddf2; checksum = ~ddf2 = 220d
    expect(checksum(b, 0, b.length)).toBe(0x220d);
  });

  it('handles odd lengths by padding with a zero byte', () => {
    const b = Buffer.from('0102030405', 'hex');
    expect(checksum(b, 0, 5)).toBe(refChecksum(b));
  });

  it('the word-wide sum equals the byte-pair sum at any alignment, length and view offset', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 3000, size: 'max' }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 0xfffff }),
        (bytes, viewOffset, off, initial) => {
          // a Buffer that is itself a view into a larger ArrayBuffer, the packet at `off` in it
          const backing = Buffer.alloc(viewOffset + off + bytes.length + 8, 0xa5);
          const view = backing.subarray(viewOffset);
          view.set(bytes, off);
          expect(fold(sum16(view, off, bytes.length, initial))).toBe(fold(initial + refSum(bytes)));
          expect(checksum(view, off, bytes.length)).toBe(refChecksum(Buffer.from(bytes)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('incremental update (RFC 1624) equals recomputation', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffff }), (bytes, word, value) => {
        const b = Buffer.from(bytes);
        b.writeUInt16BE(0, 10);
        const ck = checksum(b, 0, 20);
        b.writeUInt16BE(ck, 10);
        const at = word === 5 ? 0 : word * 2; // never the checksum word itself
        const old = b.readUInt16BE(at);
        b.writeUInt16BE(value, at);
        const adjusted = checksumAdjust(ck, old, value);
        b.writeUInt16BE(0, 10);
        const fresh = checksum(b, 0, 20);
        // 0x0000 and 0xffff are the same value in one's complement
        expect(adjusted === fresh || adjusted + fresh === 0xffff).toBe(true);
      }),
    );
  });
});

describe('addresses', () => {
  it('parses and formats IPv4, refusing leading zeros and junk', () => {
    expect(parseIpv4('192.0.2.1')).toBe(0xc0000201);
    expect(formatIpv4(0xcb0071fe)).toBe('203.0.113.254');
    for (const bad of ['192.0.2', '192.0.2.256', '192.0.02.1', ' 192.0.2.1', '1.2.3.4.5', '']) expect(parseIpv4(bad)).toBeNull();
  });

  it('parses IPv6 text forms and formats them canonically (RFC 5952)', () => {
    const cases: Array<[string, string]> = [
      ['2001:db8::1', '2001:db8::1'],
      ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      ['2002:c000:201::1', '2002:c000:201::1'],
      ['fe80::c000:201', 'fe80::c000:201'],
    ];
    for (const [input, canonical] of cases) expect(formatIpv6(parseIpv6(input)!)).toBe(canonical);
    for (const bad of ['2001:db8:::1', '1:2:3:4:5:6:7:8:9', '2001:db8::g', 'fe80::1%eth0', ':', '1::2::3', '12345::']) {
      expect(parseIpv6(bad)).toBeNull();
    }
  });

  it('round-trips any 16 bytes through text', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      expect(Buffer.from(parseIpv6(formatIpv6(b))!)).toEqual(Buffer.from(b));
    }));
  });

  it('parses prefixes', () => {
    expect(parseIpv6Prefix('2001:db8:1::2/64')?.len).toBe(64);
    expect(parseIpv6Prefix('2001:db8::/129')).toBeNull();
    expect(parseIpv6Prefix('2001:db8::')).toBeNull();
  });

  it('R17: link-local from the IPv4 address', () => {
    expect(formatIpv6(linkLocalFromIpv4(ip4('192.0.2.1')))).toBe('fe80::c000:201');
  });

  it('R25: classifies IPv4 by the RFC 6890 special-purpose registry', () => {
    expect(classifyIpv4(ip4('10.1.2.3'))).toBe('private');
    expect(classifyIpv4(ip4('172.31.255.255'))).toBe('private');
    expect(classifyIpv4(ip4('172.32.0.1'))).toBe('global');
    expect(classifyIpv4(ip4('100.64.0.1'))).toBe('shared');
    expect(classifyIpv4(ip4('100.128.0.1'))).toBe('global');
    expect(classifyIpv4(ip4('127.0.0.1'))).toBe('loopback');
    expect(classifyIpv4(ip4('169.254.1.1'))).toBe('link-local');
    expect(classifyIpv4(ip4('192.0.2.1'))).toBe('documentation');
    expect(classifyIpv4(ip4('198.51.100.1'))).toBe('documentation');
    expect(classifyIpv4(ip4('203.0.113.1'))).toBe('documentation');
    expect(classifyIpv4(ip4('192.88.99.1'))).toBe('6to4-relay-anycast');
    expect(classifyIpv4(ip4('224.0.0.1'))).toBe('multicast');
    expect(classifyIpv4(ip4('240.0.0.1'))).toBe('reserved');
    expect(classifyIpv4(ip4('255.255.255.255'))).toBe('broadcast');
    expect(classifyIpv4(ip4('0.1.2.3'))).toBe('this-network');
  });

  // The addresses in these two tests are inputs to pure classification functions: the refused
  // ranges themselves. No packet is built for or sent to any of them.
  it('R31: bogus 6to4 IPv4 ranges, and what the lab override lifts', () => {
    const bogus = ['0.0.0.1', '10.0.0.1', '127.0.0.1', '169.254.0.1', '172.16.0.1', '192.168.1.1', '100.64.0.1', '224.0.0.1', '240.0.0.1', '255.255.255.255'];
    for (const a of bogus) expect(isBogus6to4Ipv4(ip4(a), false), a).toBe(true);
    for (const a of ['0.0.0.1', '127.0.0.1', '224.0.0.1', '240.0.0.1', '255.255.255.255']) expect(isBogus6to4Ipv4(ip4(a), true), a).toBe(true);
    for (const a of ['10.0.0.1', '192.168.1.1', '100.64.0.1']) expect(isBogus6to4Ipv4(ip4(a), true), a).toBe(false);
    for (const a of ['192.0.2.1', '198.51.100.1', '203.0.113.1']) expect(isBogus6to4Ipv4(ip4(a), false), a).toBe(false);
  });

  it('R15/R32: bogus inner IPv6 addresses', () => {
    const r15 = ['::', '::1', 'ff02::1', '::ffff:192.0.2.1', '::192.0.2.1'];
    for (const a of r15) expect(isBogusInnerSource(parseIpv6(a)!, 0), a).toBe(true);
    for (const a of ['2001:db8::1', 'fe80::1', '2002:c000:201::1']) expect(isBogusInnerSource(parseIpv6(a)!, 0), a).toBe(false);
    for (const a of [...r15, 'fe80::1', 'febf::1', 'fec0::1', 'feff::1']) expect(isBogus6to4Inner(parseIpv6(a)!, 0), a).toBe(true);
    for (const a of ['2001:db8::1', 'fe7f::1', '2002:c000:201::1']) expect(isBogus6to4Inner(parseIpv6(a)!, 0), a).toBe(false);
  });
});

describe('6to4 / 6rd address maths', () => {
  it('6to4 embeds the whole IPv4 after 2002::/16 (RFC 3056 §2)', () => {
    const out = Buffer.alloc(16);
    embedIpv4(SIX_TO_FOUR, ip4('192.0.2.1'), out, 0);
    expect(formatIpv6(out)).toBe('2002:c000:201::');
    expect(delegatedPrefixLength(SIX_TO_FOUR)).toBe(48);
    const a = parseIpv6('2002:cb00:71fe:5::9')!;
    expect(inDomain(SIX_TO_FOUR, a, 0)).toBe(true);
    expect(formatIpv4(extractIpv4(SIX_TO_FOUR, a, 0, 0))).toBe('203.0.113.254');
    expect(inDomain(SIX_TO_FOUR, parseIpv6('2003::1')!, 0)).toBe(false);
  });

  it('6rd with a non-byte-aligned prefix and an IPv4 mask (RFC 5969 §4 example shape)', () => {
    // prefix 2001:db8::/30, IPv4 mask 8 → 24 embedded bits, delegated /54
    const d = { prefix: parseIpv6('2001:db8::')!, prefixLen: 30, v4MaskLen: 8 };
    validateDomain(d);
    expect(delegatedPrefixLength(d)).toBe(54);
    const out = Buffer.alloc(16);
    embedIpv4(d, ip4('192.0.2.130'), out, 0);
    // bits 30..53 carry 0x000282: 2001:0db8 | 00.. then 0x000282 shifted into place
    expect(extractIpv4(d, out, 0, ip4('192.255.255.255'))).toBe(ip4('192.0.2.130'));
    expect(inDomain(d, out, 0)).toBe(true);
    expect(out.subarray(0, 3)).toEqual(Buffer.from([0x20, 0x01, 0x0d]));
  });

  it('embed/extract round-trips for any domain parameters', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 32 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 0xffffffff }), (prefixLen, v4MaskLen, prefix, v4) => {
        const d = { prefix, prefixLen, v4MaskLen };
        const out = Buffer.alloc(16);
        embedIpv4(d, v4, out, 0);
        expect(inDomain(d, out, 0)).toBe(true);
        expect(extractIpv4(d, out, 0, v4)).toBe(v4 >>> 0);
      }),
    );
  });

  it('refuses a domain whose delegated prefix is longer than /64', () => {
    expect(() => validateDomain({ prefix: new Uint8Array(16), prefixLen: 40, v4MaskLen: 0 })).toThrow(/longer than \/64/);
  });
});

describe('header offsets', () => {
  it('checkIpv4 gates malformed headers; the IPV4 offsets read fields in place', () => {
    const p = ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', ttl: 7, tos: 0x2e, id: 0xbeef, flagsFragment: 0x4000, payload: Buffer.alloc(8) });
    expect(checkIpv4(p, 0, p.length, true)).toBe(Ipv4Error.None);
    expect([p[IPV4.VER_IHL], p[IPV4.TTL], p[IPV4.TOS], p.readUInt16BE(IPV4.ID), (p.readUInt16BE(IPV4.FLAGS_FRAG) & IPV4_FLAG_DF) !== 0, p[IPV4.PROTOCOL], p.readUInt16BE(IPV4.TOTAL_LEN)]).toEqual([0x45, 7, 0x2e, 0xbeef, true, 41, 28]);
    expect(formatIpv4(p.readUInt32BE(IPV4.SRC))).toBe('192.0.2.1');
    expect(formatIpv4(p.readUInt32BE(IPV4.DST))).toBe('198.51.100.1');
    p[IPV4.TTL] = 8;
    expect(checkIpv4(p, 0, p.length, true)).toBe(Ipv4Error.Checksum);
    p.writeUInt16BE(0, IPV4.CHECKSUM);
    p.writeUInt16BE(checksum(p, 0, IPV4.HEADER_LEN), IPV4.CHECKSUM);
    expect(checkIpv4(p, 0, p.length, true)).toBe(Ipv4Error.None);
    expect(checkIpv4(p, 0, 19, true)).toBe(Ipv4Error.Truncated);
    expect(checkIpv4(p, 0, 27, true)).toBe(Ipv4Error.TotalLength);
    p[0] = 0x44;
    expect(checkIpv4(p, 0, p.length, true)).toBe(Ipv4Error.HeaderLength);
    p[0] = 0x65;
    expect(checkIpv4(p, 0, p.length, true)).toBe(Ipv4Error.Version);
  });

  it('checkIpv6 requires the payload length to account for every byte', () => {
    const p = ipv6Packet({ src: '2001:db8::1', dst: '2001:db8::2', trafficClass: 0xb9, flowLabel: 0x12345 });
    expect(checkIpv6(p, 0, p.length)).toBe(Ipv6Error.None);
    expect(checkIpv6(p, 0, p.length - 1)).toBe(Ipv6Error.PayloadLength);
    expect(checkIpv6(p, 0, 39)).toBe(Ipv6Error.Truncated);
    const flowLabel = () => p.readUInt32BE(IPV6.VER_TC_FLOW) & 0xfffff;
    expect([ipv6TrafficClass(p, 0), flowLabel(), p[IPV6.NEXT_HEADER]]).toEqual([0xb9, 0x12345, 58]);
    setIpv6TrafficClass(p, 0, 0x03);
    expect([ipv6TrafficClass(p, 0), flowLabel(), p[IPV6.VER_TC_FLOW] >> 4]).toEqual([0x03, 0x12345, 6]);
  });

  it('RFC 4443 §2.4(e): recognises ICMPv6 errors, also behind extension headers', () => {
    const echo = ipv6Packet({ src: '2001:db8::1', dst: '2001:db8::2' });
    expect(isIcmpv6ErrorPacket(echo, 0, echo.length)).toBe(false);
    const err = Buffer.from(echo);
    err[40] = 1;
    expect(isIcmpv6ErrorPacket(err, 0, err.length)).toBe(true);
    // hop-by-hop (8 bytes) then ICMPv6 type 2
    const hbh = Buffer.concat([Buffer.from([58, 0, 1, 4, 0, 0, 0, 0]), Buffer.from([2, 0, 0, 0, 0, 0, 5, 0])]);
    const wrapped = ipv6Packet({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: 0, payload: hbh });
    expect(isIcmpv6ErrorPacket(wrapped, 0, wrapped.length)).toBe(true);
    const udp = ipv6Packet({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: 17, payload: Buffer.alloc(8) });
    expect(isIcmpv6ErrorPacket(udp, 0, udp.length)).toBe(false);
  });
});

describe('moveBytes', () => {
  it('moves exactly the range, between buffers (short by words, long natively) and within one (overlapping), whatever the alignment', () => {
    const others = Array.from({ length: 12 }, (_, i) => Buffer.alloc(600, i)); // more buffers than it keeps views of
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 600, maxLength: 600 }),
        fc.integer({ min: 0, max: 11 }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 300 }),
        fc.boolean(),
        (bytes, which, start, len, at, same) => {
          const src = Buffer.from(bytes);
          const dst = same ? src : others[which];
          const expected = Buffer.from(dst);
          Buffer.from(src.subarray(start, start + len)).copy(expected, at);
          moveBytes(src, start, start + len, dst, at);
          expect(dst.equals(expected)).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('keeps every bit pattern of a word, NaN payloads included', () => {
    const src = Buffer.alloc(64);
    const dst = Buffer.alloc(64);
    for (const word of [0x7ff00001, 0x7ff80000, 0xfff00001, 0xffffffff, 0x80000000, 0x7fa00000]) {
      for (let i = 0; i < 64; i += 4) src.writeUInt32LE(word >>> 0, i);
      moveBytes(src, 0, 64, dst, 0);
      expect(dst.equals(src)).toBe(true);
    }
  });
});
