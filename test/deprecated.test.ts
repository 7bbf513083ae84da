/**
 * Deprecated names and members still work for one release, as aliases of the new ones, and each
 * is marked with what to use and when it goes (the renaming script skips this file: it is about
 * the old names). test/public-api.test.ts checks the names that left the main entry.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import type { OpenTunnelOptions, RunningTunnel } from '../src/host/open.js';
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
  openTunnel,
} from '../src/index.js';
import { FakeTransport, FakeTun } from '../src/testing.js';
import { callDeprecation, memberDeprecation } from './helpers/exports.js';
import { ipv6Packet } from './helpers/packets.js';
import { BROKER, ManualClock } from './helpers/tunnels.js';

// openTunnel needs root and a TUN; what is checked here is only what the package's openTunnel
// passes to host/open.ts's and adds to what it returns.
const opened = vi.hoisted(() => ({ options: [] as unknown[] }));
vi.mock('../src/host/open.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/host/open.js')>()),
  openTunnel: async (o: OpenTunnelOptions): Promise<RunningTunnel> => {
    opened.options.push(o);
    return { name: 't0', encapsulator: new Encapsulator(BROKER) } as RunningTunnel;
  },
}));

const ROOT = fileURLToPath(new URL('..', import.meta.url));

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

  it('openTunnel takes sharedSockets for sharedTransports, and its handle answers .tunnel as .encapsulator', async () => {
    const hub = new SharedTransports();
    const t = await openTunnel({ ...BROKER, sharedSockets: hub });
    expect(opened.options.at(-1)).toMatchObject({ sharedTransports: hub });
    expect(opened.options.at(-1)).not.toHaveProperty('sharedSockets');
    expect(t.tunnel).toBe(t.encapsulator);
    const chosen = new SharedTransports();
    await openTunnel({ ...BROKER, sharedSockets: hub, sharedTransports: chosen });
    expect(opened.options.at(-1)).toMatchObject({ sharedTransports: chosen });
  });

  it('each deprecated member is marked with what to use and the release that removes it', () => {
    expect(memberDeprecation('tun6in4', 'TunnelEngine', 'replaceSocket')).toBe('use replaceTransport; removed in 0.3.0');
    expect(memberDeprecation('tun6in4/engine', 'TunnelEngine', 'tunnel')).toBe('use encapsulator; removed in 0.3.0');
    expect(memberDeprecation('tun6in4', 'Keepalive', 'state')).toMatch(/^use health\(\).*; removed in 0\.3\.0$/);
    expect(callDeprecation('tun6in4', 'openTunnel', 'argument', 'sharedSockets')).toBe('use sharedTransports; removed in 0.3.0');
    expect(callDeprecation('tun6in4', 'openTunnel', 'result', 'tunnel')).toBe('use encapsulator; removed in 0.3.0');
    // the current members are not
    expect(memberDeprecation('tun6in4/engine', 'TunnelEngine', 'replaceTransport')).toBeNull();
    expect(callDeprecation('tun6in4', 'openTunnel', 'result', 'encapsulator')).toBeNull();
  });

  it('every @deprecated of src/ is in src/deprecated.ts', () => {
    const elsewhere = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && f !== 'deprecated.ts')
      .filter((f) => readFileSync(join(ROOT, 'src', f), 'utf8').includes('@deprecated'));
    expect(elsewhere).toEqual([]);
  });

  it('tun6in4/engine alone brings the deprecated members too', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./src/engine-api.ts').then((m) => console.log(typeof m.TunnelEngine.prototype.replaceSocket, 'tunnel' in m.TunnelEngine.prototype))"], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('function true');
  });
});
