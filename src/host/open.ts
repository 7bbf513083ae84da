/**
 * The composition root: opening a tunnel on this host. Validate the options, create the TUN
 * interface (with offload) and configure it, open (or share) the outer transport, start the loop. The returned handle reads status and closes the
 * tunnel. This is what `tun6in4 run` does, for programs that embed us.
 */
import { createSocket } from 'node:dgram';
import { constants as osConstants } from 'node:os';
import { formatIpv4, formatIpv6, formatIpv6Prefix, ipv6Network, linkLocalFromIpv4, parseIpv4 } from '../packet/address.js';
import { ConfigError, type TunnelOptions } from '../encap/options.js';
import type { TunnelConfig } from '../encap/resolve.js';
import { parseSixRdDhcp } from '../encap/sixrd-dhcp.js';
import { Encapsulator } from '../encap/encapsulator.js';
import { Drop } from '../encap/counters.js';
import { NativeAddonError } from '../io/native.js';
import type { RouterAdvertiser } from '../advertise/advertiser.js';
import { resolveAdvertiseOptions, type AdvertiseOptions } from '../advertise/options.js';
import { TunnelEngine, type EngineOptions } from '../engine/engine.js';
import type { TunDevice } from '../tun/device.js';
import { configureInterface, interfaceExists, interfaceSetup, removeRoutes, sourceAddressToward, type InstalledRoutes, type InterfacePlan } from '../tun/interface.js';
import { IpCommandError } from '../tun/iproute.js';
import { LinuxTun } from '../tun/linux-tun.js';
import { OffloadTun } from '../tun/offload.js';
import { tunOpenDeniedMessage } from './tun-access.js';
import type { HostOptions, InterfaceOptions } from './options.js';
import { peersStatus, sixRdStatus, type TunnelStatus } from './status.js';
import { FouTransport } from '../transport/fou.js';
import { RawTransport } from '../transport/raw.js';
import { ReceiveAlso } from '../transport/receive-also.js';
import { HOST_TRANSPORTS, type SharedTransports } from '../transport/shared-transports.js';
import type { OuterTransport } from '../transport/transport.js';

/** The interface a tunnel needs: its MTU, address and link-local (R17), default route, own prefixes. */
export function interfacePlan(config: TunnelConfig, local: number, opts: InterfaceOptions = {}): InterfacePlan {
  const wantDefault = (opts.defaultRoute ?? true) && (config.mode === '6in4' || config.relay !== 0);
  return {
    mtu: config.mtu,
    // 6to4 and 6rd have no link to send multicast on (the engine would only drop MLD and RS); 6in4 does.
    multicast: config.mode === '6in4',
    addresses: [config.address, { addr: linkLocalFromIpv4(local), len: 64 }],
    // A 6rd CE's peer is only what keepalive probes; its default is the device (the BR by mapping).
    defaultRoute: wantDefault ? { via: config.mode === '6in4' ? config.peer : null, metric: opts.defaultRouteMetric ?? 1024 } : null,
    ownPrefixes: config.sitePrefix ? [...config.routed, ipv6Network(config.sitePrefix)] : [...config.routed],
  };
}

/**
 * openTunnel's options: the tunnel's (src/encap/options.ts), the host's (./options.ts), router
 * advertisements' (src/advertise/options.ts) and the loop's.
 */
export interface OpenTunnelOptions extends Omit<TunnelOptions, 'local'>, HostOptions, AdvertiseOptions, EngineOptions {
  /** Our IPv4, or `auto`: the source address the kernel uses toward `remote` (6in4) or `relay` (6to4). */
  local: string;
  /** Where tunnels on one local address find the transport they share; default the process's own (HOST_TRANSPORTS). */
  sharedTransports?: SharedTransports;
}

/** Why a tunnel could not be opened on this host (configuration errors are ConfigError). */
export class TunnelSetupError extends Error {
  constructor(
    readonly code: 'DEVICE_EXISTS' | 'NO_PERMISSION' | 'NO_TUN' | 'SETUP_FAILED',
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'TunnelSetupError';
  }
}

export interface RunningTunnel {
  readonly name: string;
  readonly encapsulator: Encapsulator;
  readonly engine: TunnelEngine;
  status(): TunnelStatus;
  /** 6in4: our IPv4 changed (e.g. `--local auto` after a DHCP renewal): rebind and carry on. */
  changeLocalAddress(local: number): void;
  /** Stops forwarding, deletes the interface and the routes we added. Idempotent. */
  close(): Promise<void>;
}

const { EPERM, ENOENT, EACCES, EADDRINUSE } = osConstants.errno;

/**
 * `resolved`: what resolveTunnelOptions made of these options' tunnel part, when the caller has it
 * (the daemon's loader), so they are not resolved twice; its local must be the options' own.
 */
export async function openTunnel(opts: OpenTunnelOptions, resolved?: TunnelConfig): Promise<RunningTunnel> {
  const { dev, offload, ioUring, defaultRoute, defaultRouteMetric, batchSize, maxBatchesPerWake, peerTableSize, onIoError, onFatal, sharedTransports, advertise, advertiseDns, ...tunnelOptions } = opts;
  const transports = sharedTransports ?? HOST_TRANSPORTS;
  let local = tunnelOptions.local;
  if (local === 'auto') {
    const o = tunnelOptions;
    // 6rd from option 212: the route to the first BR is the one its packets will take.
    const firstBr = o.mode === '6rd' && o.sixrdDhcp !== undefined ? formatIpv4(parseSixRdDhcp(o.sixrdDhcp).relays[0]) : undefined;
    const toward = o.mode === '6in4' ? o.remote : (o.relay ?? firstBr);
    if (!toward) throw new ConfigError('local', 'auto', `"auto" needs ${o.mode === '6in4' ? 'remote' : 'relay'} to find the route; give the IPv4 address instead`);
    local = await sourceToward(toward);
  }
  if (resolved && resolved.local !== parseIpv4(local)) throw new Error(`openTunnel: the resolved config is for local ${formatIpv4(resolved.local)}, the options say ${local}`);
  const tunnel = new Encapsulator(resolved ?? { ...tunnelOptions, local });
  const advertising = resolveAdvertiseOptions({ advertise, advertiseDns }, tunnel.config);
  await assertHostAddresses(local, tunnel.config);
  const name = dev ?? 'tun6in4-%d';
  // rtnetlink where the addon has it (TUN6IN4_INTERFACE_SETUP=iproute2 forces `ip`)
  const setup = interfaceSetup();
  if (!name.includes('%d') && (await interfaceExists(name, setup))) {
    throw new TunnelSetupError('DEVICE_EXISTS', `interface ${name} already exists; choose another --dev, or delete it (ip link del ${name})`);
  }

  let tun: LinuxTun | undefined;
  let transport: OuterTransport | undefined;
  // what the tunnel's shared raw socket keeps: other processes' tunnels on this address get copies too
  const role = tunnel.config.mode === '6in4' ? { remote: tunnel.config.remote, innerDestinations: [tunnel.config.address, ...tunnel.config.routed] } : { remote: 0 };
  const cfg = tunnel.config;
  let fou: FouTransport | undefined;
  const attach = (l: number): OuterTransport => {
    const pmtu = cfg.pmtu;
    const raw = () => transports.attach(`raw/${l >>> 0}/${pmtu}`, role, () => RawTransport.open(l, pmtu));
    if (cfg.encap === 'fou') {
      // one socket per local port: tunnels sharing a port share it, told apart by the remote
      const open = () => (fou = FouTransport.open({ local: l, port: cfg.encapPort, dport: cfg.encapDport, pmtu, checksum: cfg.encapCsum }));
      const udp = transports.attach(`fou/${l >>> 0}/${cfg.encapPort}`, role, open);
      // bare protocol 41 from the remote is taken too, as Linux's sit with encap fou does
      try {
        return new ReceiveAlso(udp, raw());
      } catch (e) {
        udp.close();
        throw e;
      }
    }
    return raw();
  };
  let routes: InstalledRoutes = { unreachable: [] };
  try {
    tun = LinuxTun.open(name, offload ?? true, ioUring ?? true);
    routes = await configureInterface(tun.name, interfacePlan(tunnel.config, tunnel.localAddress, { defaultRoute, defaultRouteMetric }), setup);
    transport = attach(tunnel.localAddress);
  } catch (e) {
    transport?.close();
    tun?.close();
    await removeRoutes(routes);
    throw setupError(e, name, tunnel.config);
  }

  let state: 'running' | 'stopped' = 'running';
  const drops = tunnel.counters.drops;
  const offloadTun = tun.offload ? new OffloadTun(tun, (reason) => drops[Drop[reason]]++, { udp: tun.udpOffload }) : null;
  const device: TunDevice = offloadTun ?? tun;
  const advertisers: RouterAdvertiser[] = [];
  const engine = new TunnelEngine(tunnel, device, transport, {
    batchSize,
    maxBatchesPerWake,
    peerTableSize,
    onIoError,
    onFatal: (e) => {
      state = 'stopped';
      for (const a of advertisers) void a.close();
      void removeRoutes(routes);
      onFatal?.(e);
    },
  });
  engine.start();
  // After the engine: a guest that takes our advertisement may send at once.
  try {
    // loaded only when asked for: most tunnels advertise nothing
    const { RouterAdvertiser } = advertising.targets.length ? await import('../advertise/advertiser.js') : { RouterAdvertiser: null };
    for (const target of advertising.targets) {
      advertisers.push(await RouterAdvertiser!.open(target, { mtu: tunnel.config.mtu, rdnss: advertising.rdnss }));
    }
  } catch (e) {
    for (const a of advertisers) await a.close();
    engine.stop();
    await removeRoutes(routes);
    const iface = advertising.targets[advertisers.length].iface;
    throw new TunnelSetupError('SETUP_FAILED', `advertise on ${iface}: ${(e as Error).message}`, e);
  }
  const iface = tun.name;
  const tunDevice = tun;
  const c = tunnel.config;
  return {
    name: iface,
    encapsulator: tunnel,
    engine,
    status(): TunnelStatus {
      return {
        name: iface,
        mode: c.mode,
        state,
        local: formatIpv4(tunnel.localAddress),
        ...(c.mode === '6in4' ? { remote: formatIpv4(c.remote), peer: formatIpv6(c.peer!) } : {}),
        ...(tunnel.relayAddress ? { relay: formatIpv4(tunnel.relayAddress) } : {}),
        ...(c.mode === '6rd' ? { sixrd: sixRdStatus(c) } : {}),
        address: formatIpv6Prefix(c.address),
        mtu: c.mtu,
        pmtu: c.pmtu,
        tunIo: {
          offload: tunDevice.offload,
          udpOffload: tunDevice.udpOffload,
          ioUring: tunDevice.ioUring,
          ...(tunDevice.ioUringFallback ? { ioUringFallback: tunDevice.ioUringFallback } : {}),
          ...(offloadTun ? { superPackets: { ...offloadTun.superPackets } } : {}),
        },
        transport:
          c.encap === 'fou'
            ? { encap: 'fou', port: c.encapPort, dport: c.encapDport, checksum: c.encapCsum, gso: fou?.gso ?? false, gro: fou?.gro ?? false, groCoalesced: fou?.groCoalesced ?? 0, gsoFallbacks: fou?.gsoFallbacks ?? 0 }
            : { encap: 'none' },
        pathMtu: tunnel.pathMtuEntries().map((e) => ({ dst: formatIpv4(e.dst), mtu: e.mtu, expiresInMs: Math.round(e.expiresInMs) })),
        pathMtuCount: tunnel.pathMtuCount(),
        ...(routes.defaultRouteSkipped ? { defaultRouteSkipped: routes.defaultRouteSkipped } : {}),
        lastRxAt: engine.lastRxAt ? new Date(engine.lastRxAt).toISOString() : null,
        lastTxAt: engine.lastTxAt ? new Date(engine.lastTxAt).toISOString() : null,
        counters: tunnel.counters.snapshot(),
        ...(engine.peers ? { peers: peersStatus(engine) } : {}),
        ...(advertisers.length ? { advertise: advertisers.map((a) => a.status()) } : {}),
      };
    },
    changeLocalAddress(local: number): void {
      const transport = attach(local);
      tunnel.setLocalAddress(local);
      engine.replaceTransport(transport);
    },
    async close(): Promise<void> {
      if (state === 'stopped') return;
      state = 'stopped';
      // the final advertisements (router lifetime 0) go out while the tunnel still carries traffic
      for (const a of advertisers) await a.close();
      engine.stop();
      await removeRoutes(routes);
    },
  };
}

/** `local = "auto"`: the kernel's source address toward `toward`, or why there is none and the fix. */
async function sourceToward(toward: string): Promise<string> {
  try {
    return await sourceAddressToward(toward);
  } catch (e) {
    if (!(e instanceof IpCommandError)) throw e;
    const why = e.stderr.replace(/^RTNETLINK answers:\s*/, '').trim();
    throw new ConfigError('local', 'auto', `this host has no IPv4 route to ${toward}${why ? ` (${why})` : ''}, so there is no source address to take; give the address to send from (--local ADDRESS, local = "ADDRESS"), or add a route toward ${toward} (ip route add default via GATEWAY)`);
  }
}

/**
 * The raw socket binds to `local`; an address this host does not have fails there as a bare
 * EADDRNOTAVAIL after the interface exists. A 6in4 remote that is this host's own would send the
 * tunnel to itself. Binding a UDP socket answers both without privilege and creates nothing.
 */
async function assertHostAddresses(local: string, config: TunnelConfig): Promise<void> {
  if (!(await isHostAddress(local))) {
    throw new ConfigError(
      'local',
      local,
      'it is not an address of this host (ip -4 addr lists them); behind a 1:1 NAT, as on most cloud VMs, the public IPv4 is the NAT\'s: use "auto" (--local auto, local = "auto"), the private address the NAT maps to it',
    );
  }
  if (config.mode === '6in4' && (await isHostAddress(formatIpv4(config.remote)))) {
    throw new ConfigError('remote', formatIpv4(config.remote), 'it is an address of this host, so the tunnel would send to itself; use the broker\'s "Server IPv4 Address"');
  }
}

async function isHostAddress(address: string): Promise<boolean> {
  const probe = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind({ address, port: 0, exclusive: true }, resolve);
    });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw e;
    return false;
  } finally {
    probe.close();
  }
}

function setupError(e: unknown, name: string, config: TunnelConfig): Error {
  if (e instanceof ConfigError || e instanceof TunnelSetupError || e instanceof NativeAddonError) return e;
  const errno = (e as { errno?: number }).errno;
  const msg = (e as Error).message ?? String(e);
  if (errno === EADDRINUSE && config.encap === 'fou') {
    const port = config.encapPort;
    return new TunnelSetupError(
      'SETUP_FAILED',
      `FOU: UDP port ${port} on ${formatIpv4(config.local)} is taken by another program (${msg}); see which (ss -ulpn 'sport = :${port}') and stop it, or give this tunnel another local port (--encap-port, encapPort; the peer must send there)`,
      e,
    );
  }
  // Refused by the device node's mode or a device cgroup, which capabilities do not override.
  if ((errno === EPERM || errno === EACCES) && (e as { syscall?: string }).syscall === 'open /dev/net/tun') {
    return new TunnelSetupError('NO_PERMISSION', tunOpenDeniedMessage(msg, errno === EACCES ? 'EACCES' : 'EPERM'), e);
  }
  if (errno === EPERM || errno === EACCES) {
    return new TunnelSetupError('NO_PERMISSION', `${msg}: run as root, or grant CAP_NET_ADMIN and CAP_NET_RAW`, e);
  }
  if (errno === ENOENT && (e as { syscall?: string }).syscall === 'open /dev/net/tun') {
    return new TunnelSetupError('NO_TUN', `${msg}: this host has no /dev/net/tun; load the tun module or pass the device into the container`, e);
  }
  return new TunnelSetupError('SETUP_FAILED', `setting up ${name} failed: ${msg}`, e);
}
