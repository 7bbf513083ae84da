/**
 * Issue 34 item 6: a tunnel's options are resolved once, by the loader, and that TunnelConfig is
 * what its Encapsulator runs on. The Encapsulator here records what it was built from and then
 * refuses, so `up` stops before it touches the host (no TUN, no socket, no route).
 */
import { pino } from 'pino';
import { beforeEach, describe, expect, it, vi } from 'vitest';

const seen = vi.hoisted(() => ({ resolutions: 0, built: [] as unknown[] }));

vi.mock('../src/encap/resolve.js', async (original) => {
  const real = await original<typeof import('../src/encap/resolve.js')>();
  return {
    ...real,
    resolveTunnelOptions: (o: Parameters<typeof real.resolveTunnelOptions>[0]) => {
      seen.resolutions++;
      return real.resolveTunnelOptions(o);
    },
  };
});

vi.mock('../src/encap/encapsulator.js', async (original) => {
  const real = await original<typeof import('../src/encap/encapsulator.js')>();
  class RecordingEncapsulator extends real.Encapsulator {
    constructor(...args: ConstructorParameters<typeof real.Encapsulator>) {
      super(...args);
      seen.built.push(args[0]);
      throw new Error('stopped before the host is touched');
    }
  }
  return { ...real, Encapsulator: RecordingEncapsulator };
});

const { parseDaemonConfigText } = await import('../src/daemon/config.js');
const { Daemon } = await import('../src/daemon/daemon.js');

const FILE = `
[tunnels.he]
mode = "6in4"
local = "192.0.2.1"
remote = "198.51.100.1"
address = "2001:db8:1::2/64"
keepalive = "off"

[tunnels.sixrd]
mode = "6rd"
local = "203.0.113.9"
sixrdPrefix = "2001:db8::/32"
ipv4MaskLen = 0
relay = "198.51.100.2"
keepalive = "off"

[control]
socket = "/nonexistent/tun6in4-resolve-once.sock"
`;

describe('options resolved once per tunnel', () => {
  beforeEach(() => {
    seen.resolutions = 0;
    seen.built = [];
  });

  it('up builds each Encapsulator from the config the loader resolved, and resolves nothing again', async () => {
    const config = parseDaemonConfigText(FILE, 'toml', 'resolve-once.toml');
    expect(seen.resolutions).toBe(2);
    const daemon = new Daemon(pino({ level: 'silent' }));
    await daemon.apply(config);
    expect(daemon.status().failed.map((f) => f.error)).toEqual(['stopped before the host is touched', 'stopped before the host is touched']);
    expect(seen.resolutions).toBe(2);
    expect(seen.built).toHaveLength(2);
    expect(seen.built[0]).toBe(config.tunnels[0].config);
    expect(seen.built[1]).toBe(config.tunnels[1].config);
  });

  it('with local "auto" the loader only checks (its stand-in address is not the tunnel\'s), so it carries no config', () => {
    const config = parseDaemonConfigText(FILE.replace('local = "192.0.2.1"', 'local = "auto"'), 'toml', 'resolve-once.toml');
    expect(config.tunnels[0].config).toBeUndefined();
    expect(config.tunnels[1].config?.local).toBe(0xcb007109);
  });
});
