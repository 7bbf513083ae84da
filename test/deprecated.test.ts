/**
 * The names issue 24 replaced still work for one release, as aliases of the new ones (the
 * renaming script skips this file: it is about the old names).
 */
import { describe, expect, it } from 'vitest';
import {
  Encapsulator,
  HOST_SOCKETS,
  HOST_TRANSPORTS,
  Keepalive,
  SharedSockets,
  SharedTransports,
  Tunnel,
  TunnelEngine,
  type TunnelEnvironment,
  type TunnelHealth,
  type TunnelState,
} from '../src/index.js';
import { FakeTransport, FakeTun } from '../src/testing.js';
import { ipv6Packet } from './helpers/packets.js';
import { BROKER, ManualClock } from './helpers/tunnels.js';

describe('deprecated names (one release)', () => {
  it('Tunnel, SharedSockets and HOST_SOCKETS are the new values; the old types are the new ones', () => {
    expect(Tunnel).toBe(Encapsulator);
    expect(SharedSockets).toBe(SharedTransports);
    expect(HOST_SOCKETS).toBe(HOST_TRANSPORTS);
    const env: TunnelEnvironment = { initialIpId: 1 };
    const t: Tunnel = new Tunnel(BROKER, env);
    expect(t).toBeInstanceOf(Encapsulator);
    const health: TunnelHealth = 'up';
    const state: TunnelState = health;
    expect(state).toBe('up');
  });

  it('engine.tunnel is engine.encapsulator; replaceSocket swaps the transport as replaceTransport does', async () => {
    const tun = new FakeTun();
    const first = new FakeTransport();
    const second = new FakeTransport();
    const engine = new TunnelEngine(new Encapsulator(BROKER), tun, first);
    expect(engine.tunnel).toBe(engine.encapsulator);
    engine.start();
    engine.replaceSocket(second);
    tun.inject(ipv6Packet({ src: '2001:db8:1::2', dst: '2001:db8:9::1' }));
    await Promise.all([tun.drained(), second.drained()]);
    expect(first.sent).toHaveLength(0);
    expect(second.sent).toHaveLength(1);
    engine.stop();
  });

  it('Keepalive.state(t) answers as Keepalive.health(t)', () => {
    const k = new Keepalive(new Encapsulator(BROKER), 60, new ManualClock().fn);
    expect(k.state(0)).toBe('starting');
    expect(k.state(0)).toBe(k.health(0));
  });
});
