/** Tunnel fixtures on documentation addresses (RFC 5737, RFC 3849). */
import { expect } from 'vitest';
import { ConfigError, PacketResult, resolveTunnelOptions, Traffic, Encapsulator, type EncapsulatorEnvironment, type TunnelOptions } from '../../src/index.js';
import { withHeadroom } from './packets.js';

export const LOCAL = '192.0.2.1';
export const REMOTE = '198.51.100.1';
export const RELAY = '203.0.113.1';
/** Another 6to4 site: 198.51.100.7 → 2002:c633:6407::/48. */
export const PEER_SITE_V4 = '198.51.100.7';
export const PEER_SITE = '2002:c633:6407::';
export const OUR_SITE = '2002:c000:201::';

export const BROKER: TunnelOptions = {
  mode: '6in4',
  local: LOCAL,
  remote: REMOTE,
  address: '2001:db8:1::2/64',
  routed: ['2001:db8:2::/64'],
};

export const SIX_TO_FOUR: TunnelOptions = {
  mode: '6to4',
  local: LOCAL,
  relay: RELAY,
  allowNonGlobal: true,
};

/** A clock the test moves by hand. */
export class ManualClock {
  now = 1_000_000;
  readonly fn = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

export function tunnel(options: Partial<TunnelOptions> & { mode?: TunnelOptions['mode'] } = {}, env: EncapsulatorEnvironment = {}): Encapsulator {
  const base = options.mode === '6to4' ? SIX_TO_FOUR : BROKER;
  return new Encapsulator({ ...base, ...options } as TunnelOptions, { initialIpId: 0x1233, ...env });
}

/**
 * Every counter a packet can end in (a drop, delivered, encapsulated, an ICMPv4 error relayed or
 * absorbed as a path-MTU report). One packet in, exactly one of these goes up.
 */
export function packetOutcomes(t: Encapsulator): number {
  let n = 0;
  for (const v of t.counters.drops) n += v;
  const tr = t.counters.traffic;
  return n + tr[Traffic.rx_packets] + tr[Traffic.tx_packets] + tr[Traffic.icmp6_errors_relayed] + tr[Traffic.icmp4_frag_needed];
}

/** Encapsulates or decapsulates a copy of `pkt` (with headroom); returns the verdict and the bytes it points at. */
export function runTunnel(t: Encapsulator, kind: 'encap' | 'decap', pkt: Buffer): { r: PacketResult; bytes: Buffer } {
  const [buf, off] = withHeadroom(pkt);
  const r = new PacketResult();
  if (kind === 'encap') t.encapsulate(buf, off, pkt.length, r);
  else t.decapsulate(buf, off, pkt.length, r);
  return { r, bytes: Buffer.from(buf.subarray(r.offset, r.offset + r.length)) };
}

/** The ConfigError resolving these options throws (fails the test if none is thrown). */
export function configErrorOf(o: unknown): ConfigError {
  try {
    resolveTunnelOptions(o as TunnelOptions);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
