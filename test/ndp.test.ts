/**
 * Router Advertisement and Solicitation bytes (RFC 4861, RFC 8106). The same bytes meet a real
 * SLAAC client in advertise.test.ts; when they are sent, and the `advertise` options, are
 * advertise-options.test.ts's.
 */
import { describe, expect, it } from 'vitest';
import { buildRouterAdvertisement, buildRouterSolicitation, icmpv6Checksum, validateRouterSolicitation, type RouterAdvertisement } from '../src/engine-api.js';
import { parseIpv6 } from '../src/index.js';

const MAC = Buffer.from([0x02, 0, 0x5e, 0x10, 0, 1]);
const RA: RouterAdvertisement = {
  curHopLimit: 64,
  routerLifetime: 1800,
  sourceLinkLayer: MAC,
  mtu: 1480,
  prefixes: [{ prefix: parseIpv6('2001:db8:2::')!, len: 64, validLifetime: 2592000, preferredLifetime: 604800 }],
  rdnss: [parseIpv6('2001:db8::53')!],
  rdnssLifetime: 1800,
};

describe('Router Advertisement bytes (RFC 4861 §4.2, §4.6; RFC 8106 §5.1)', () => {
  const b = buildRouterAdvertisement(RA);

  it('§4.2: type 134, code 0, hop limit, M and O clear, router lifetime', () => {
    expect([b[0], b[1], b[4], b[5]]).toEqual([134, 0, 64, 0]);
    expect(b.readUInt16BE(6)).toBe(1800);
    expect(b.readUInt32BE(8)).toBe(0); // reachable time unspecified
    expect(b.readUInt32BE(12)).toBe(0); // retrans timer unspecified
  });

  it('§4.6.1 source link-layer address, §4.6.4 MTU, §4.6.2 prefix with L and A, RFC 8106 RDNSS, in 8-byte units', () => {
    expect(b.length).toBe(16 + 8 + 8 + 32 + 24);
    expect([...b.subarray(16, 24)]).toEqual([1, 1, ...MAC]);
    expect([b[24], b[25]]).toEqual([5, 1]);
    expect(b.readUInt32BE(28)).toBe(1480);
    expect([b[32], b[33], b[34], b[35]]).toEqual([3, 4, 64, 0xc0]);
    expect(b.readUInt32BE(36)).toBe(2592000);
    expect(b.readUInt32BE(40)).toBe(604800);
    expect(b.subarray(48, 64).equals(parseIpv6('2001:db8:2::')!)).toBe(true);
    expect([b[64], b[65]]).toEqual([25, 3]);
    expect(b.readUInt32BE(68)).toBe(1800);
    expect(b.subarray(72, 88).equals(parseIpv6('2001:db8::53')!)).toBe(true);
  });

  it('without a MAC or DNS servers those options are left out', () => {
    const m = buildRouterAdvertisement({ ...RA, sourceLinkLayer: null, rdnss: [] });
    expect(m.length).toBe(16 + 8 + 32);
    expect(m[16]).toBe(5);
  });

  it('RFC 4443 §2.3: the checksum over the pseudo-header makes the message sum to zero', () => {
    const src = parseIpv6('fe80::1')!;
    const dst = parseIpv6('ff02::1')!;
    const m = Buffer.from(b);
    m.writeUInt16BE(icmpv6Checksum(m, src, dst), 2);
    expect(icmpv6Checksum(m, src, dst)).toBe(0);
  });
});

describe('Router Solicitation validation (RFC 4861 §6.1.1)', () => {
  it('accepts a well-formed solicitation and returns its source link-layer address', () => {
    const v = validateRouterSolicitation(buildRouterSolicitation(MAC), 255, false);
    expect(v.ok).toBe(true);
    expect(v.ok && Buffer.from(v.sourceLinkLayer!).equals(MAC)).toBe(true);
  });
  it('drops one whose hop limit is not 255 (it was forwarded)', () => {
    expect(validateRouterSolicitation(buildRouterSolicitation(null), 254, false)).toEqual({ ok: false, reason: 'hop_limit' });
  });
  it('drops a code other than 0, a short message, and an option of length 0 or past the end', () => {
    const coded = buildRouterSolicitation(null);
    coded[1] = 1;
    expect(validateRouterSolicitation(coded, 255, false)).toMatchObject({ reason: 'code' });
    expect(validateRouterSolicitation(coded.subarray(0, 7), 255, false)).toMatchObject({ reason: 'length' });
    const zero = buildRouterSolicitation(MAC);
    zero[9] = 0;
    expect(validateRouterSolicitation(zero, 255, false)).toMatchObject({ reason: 'option_length' });
    const long = buildRouterSolicitation(MAC);
    long[9] = 2;
    expect(validateRouterSolicitation(long, 255, false)).toMatchObject({ reason: 'option_length' });
  });
  it('drops one from the unspecified address that carries a source link-layer address', () => {
    expect(validateRouterSolicitation(buildRouterSolicitation(MAC), 255, true)).toMatchObject({ reason: 'unspecified_with_sllao' });
    expect(validateRouterSolicitation(buildRouterSolicitation(null), 255, true).ok).toBe(true);
  });
});
