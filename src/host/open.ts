/**
 * The composition root: opening a tunnel on this host. Validate the options, create the TUN
 * interface (with offload) and configure it, open (or share) the outer transport, start the loop. The returned handle reads status and closes the
 * tunnel. This is what `tun6in4 run` does, for programs that embed us.
 */
import { createSocket } from 'node:dgram';
import { constants as osConstants } from 'node:os';
import { formatIpv4, formatIpv6, formatIpv6Prefix, ipv6Network, linkLocalFromIpv4 } from '../packet/address.js';
import { ConfigError, type TunnelOptions } from '../encap/options.js';
import type { TunnelConfig } from '../encap/resolve.js';
import type { CountersSnapshot } from '../encap/counters.js';
import { parseSixRdDhcp } from '../encap/sixrd-dhcp.js';
import { Tunnel } from '../encap/tunnel.js';
import { Drop } from '../encap/counters.js';
import { NativeAddonError } from '../io/native.js';
import type { AdvertiserStatus, RouterAdvertiser } from './advertiser.js';
import { TunnelEngine, type EngineOptions } from '../engine/engine.js';
import type { PeerEntry } from '../engine/peers.js';
import type { TunDevice } from '../tun/device.js';
import { configureInterface, removeRoutes, sourceAddressToward, type InstalledRoutes, type InterfacePlan } from '../tun/interface.js';
import { linkExists } from '../tun/iproute.js';
import { LinuxTun } from '../tun/linux-tun.js';
import { OffloadTun, type SuperPacketCounts } from '../tun/offload.js';
import { tunOpenDeniedMessage } from './tun-access.js';
import type { HostOptions, InterfaceOptions } from './options.js';
import { FouTransport } from '../transport/fou.js';
import { RawTransport } from '../transport/raw.js';
import { ReceiveAlso } from '../transport/receive-also.js';
import { HOST_SOCKETS, type SharedSockets } from '../transport/socket-hub.js';
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

/** openTunnel's options: the tunnel's (src/encap/options.ts), the host's (./options.ts) and the loop's. */
export interface OpenTunnelOptions extends Omit<TunnelOptions, 'local'>, HostOptions, EngineOptions {
  /** Our IPv4, or `auto`: the source address the kernel uses toward `remote` (6in4) or `relay` (6to4). */
  local: string;
  /** Where tunnels on one local address find the socket they share; default the process's own (HOST_SOCKETS). */
  sharedSockets?: SharedSockets;
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

export interface TunnelStatus {
  name: string;
  mode: string;
  state: 'running' | 'stopped';
  local: string;
  remote?: string;
  relay?: string;
  /** 6rd: how the delegated prefix was derived, and the border relays. */
  sixrd?: SixRdStatus;
  address: string;
  peer?: string;
  mtu: number;
  pmtu: string;
  /**
   * How packets cross the TUN: TSO/GRO offload or not, UDP offload too (USO: Linux ≥ 6.2), io_uring
   * batches or a syscall each.
   */
  tunIo: { offload: boolean; udpOffload: boolean; ioUring: boolean; ioUringFallback?: string; superPackets?: SuperPacketCounts };
  /** The outer transport: bare protocol 41, or Foo-over-UDP with its ports and offloads. */
  transport: { encap: 'none' } | { encap: 'fou'; port: number; dport: number; checksum: boolean | 'gso'; gso: boolean; gro: boolean; groCoalesced: number; gsoFallbacks: number };
  /** The most recently learnt path MTUs (at most 32, newest first); `pathMtuCount` says how many there are. */
  pathMtu: Array<{ dst: string; mtu: number; expiresInMs: number }>;
  pathMtuCount: number;
  /** Set when a default route was asked for but not added (one already exists). */
  defaultRouteSkipped?: string;
  lastRxAt: string | null;
  lastTxAt: string | null;
  counters: CountersSnapshot;
  /** 6to4 and 6rd: the busiest remote IPv4s (see PeersStatus). */
  peers?: PeersStatus;
  /** Router advertisements on LAN bridges (`advertise`), one entry each. */
  advertise?: AdvertiserStatus[];
}

/**
 * What a peer is to us. `relay` / `br`: the relay or border relay we use; `standby br`: another
 * BR of a 6rd CE; `unconfigured relay`: sent us tunnelled native-source traffic although it is
 * not our relay (R29: dropped as *_not_from_relay) — the relay nearest some far host answering
 * for it; `site` / `ce`: a direct 6to4 site or 6rd CE.
 */
export type PeerKind = 'relay' | 'br' | 'standby br' | 'unconfigured relay' | 'site' | 'ce';

export interface PeersStatus {
  /** The table's size: at most this many peers are remembered, least recently seen forgotten first. */
  capacity: number;
  tracked: number;
  evictions: number;
  /** The busiest (packets both ways plus drops), at most PEERS_IN_STATUS. */
  top: Array<PeerEntry & { kind: PeerKind }>;
}

/** How many peers status and metrics show of each tunnel: enough to see the relays, bounded for metrics. */
export const PEERS_IN_STATUS = 10;

/** The peer table of a 6to4 or 6rd engine as status shows it, busiest first. */
export function peersStatus(engine: TunnelEngine, limit = PEERS_IN_STATUS): PeersStatus | undefined {
  const table = engine.peers;
  if (table === null) return undefined;
  const t = engine.tunnel;
  const c = t.config;
  const sixRd = c.mode === '6rd';
  const relay = t.relayAddress === 0 ? '' : formatIpv4(t.relayAddress);
  const standby = new Set(c.relays.map(formatIpv4));
  const kind = (p: PeerEntry): PeerKind => {
    if (c.role === 'relay') return sixRd ? 'ce' : 'site';
    if (p.ipv4 === relay) return sixRd ? 'br' : 'relay';
    if (standby.has(p.ipv4)) return 'standby br';
    if (p.drops.rx_6to4_not_from_relay || p.drops.rx_6rd_not_from_relay) return 'unconfigured relay';
    return sixRd ? 'ce' : 'site';
  };
  return { capacity: table.capacity, tracked: table.count, evictions: table.evictions, top: table.top(limit).map((p) => ({ ...p, kind: kind(p) })) };
}

export interface SixRdStatus {
  /** The 6rd prefix with its length. */
  prefix: string;
  ipv4MaskLen: number;
  /** CE: 6rd prefix ‖ the low 32 − ipv4MaskLen bits of local. BR: the slot its own address is in. */
  delegatedPrefix: string;
  /** CE: every BR in order (`relay` is the one in use). */
  relays: string[];
  /** BR: the IPv4 prefix of the domain's CEs. */
  ipv4Prefix?: string;
}

/** What `status` shows of a 6rd tunnel's derivation. */
export function sixRdStatus(c: TunnelConfig): SixRdStatus | undefined {
  if (c.mode !== '6rd') return undefined;
  const d = c.domain!;
  const ipv4Prefix = c.role === 'relay' && d.v4MaskLen > 0 ? `${formatIpv4(c.domainIpv4)}/${d.v4MaskLen}` : undefined;
  return {
    prefix: `${formatIpv6(d.prefix)}/${d.prefixLen}`,
    ipv4MaskLen: d.v4MaskLen,
    delegatedPrefix: formatIpv6Prefix(c.sitePrefix!),
    relays: c.relays.map(formatIpv4),
    ...(ipv4Prefix ? { ipv4Prefix } : {}),
  };
}

export interface RunningTunnel {
  readonly name: string;
  readonly tunnel: Tunnel;
  readonly engine: TunnelEngine;
  status(): TunnelStatus;
  /** 6in4: our IPv4 changed (e.g. `--local auto` after a DHCP renewal): rebind and carry on. */
  changeLocalAddress(local: number): void;
  /** Stops forwarding, deletes the interface and the routes we added. Idempotent. */
  close(): Promise<void>;
}

const { EPERM, ENOENT, EACCES } = osConstants.errno;

export async function openTunnel(options: OpenTunnelOptions): Promise<RunningTunnel> {
  const { dev, offload, ioUring, defaultRoute, defaultRouteMetric, batchSize, maxBatchesPerWake, peerTableSize, onIoError, onFatal, sharedSockets, ...tunnelOptions } = options;
  const sockets = sharedSockets ?? HOST_SOCKETS;
  let local = tunnelOptions.local;
  if (local === 'auto') {
    const o = tunnelOptions;
    // 6rd from option 212: the route to the first BR is the one its packets will take.
    const firstBr = o.mode === '6rd' && o.sixrdDhcp !== undefined ? formatIpv4(parseSixRdDhcp(o.sixrdDhcp).relays[0]) : undefined;
    const toward = o.mode === '6in4' ? o.remote : (o.relay ?? firstBr);
    if (!toward) throw new ConfigError('local', 'auto', `"auto" needs ${o.mode === '6in4' ? 'remote' : 'relay'} to find the route; give the IPv4 address instead`);
    local = await sourceAddressToward(toward);
  }
  const tunnel = new Tunnel({ ...tunnelOptions, local });
  await assertLocalAddress(local);
  const name = dev ?? 'tun6in4-%d';
  if (!name.includes('%d') && (await linkExists(name))) {
    throw new TunnelSetupError('DEVICE_EXISTS', `interface ${name} already exists; choose another --dev, or delete it (ip link del ${name})`);
  }

  let tun: LinuxTun | undefined;
  let socket: OuterTransport | undefined;
  const role = { remote: tunnel.config.mode === '6in4' ? tunnel.config.remote : 0 };
  const cfg = tunnel.config;
  let fou: FouTransport | undefined;
  const attach = (l: number): OuterTransport => {
    const pmtu = cfg.pmtu;
    const raw = () => sockets.attach(`raw/${l >>> 0}/${pmtu}`, role, () => RawTransport.open(l, pmtu));
    if (cfg.encap === 'fou') {
      // one socket per local port: tunnels sharing a port share it, told apart by the remote
      const open = () => (fou = FouTransport.open({ local: l, port: cfg.encapPort, dport: cfg.encapDport, pmtu, checksum: cfg.encapCsum }));
      const udp = sockets.attach(`fou/${l >>> 0}/${cfg.encapPort}`, role, open);
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
    routes = await configureInterface(tun.name, interfacePlan(tunnel.config, tunnel.localAddress, { defaultRoute, defaultRouteMetric }));
    socket = attach(tunnel.localAddress);
  } catch (e) {
    socket?.close();
    tun?.close();
    await removeRoutes(routes);
    throw setupError(e, name);
  }

  let state: 'running' | 'stopped' = 'running';
  const drops = tunnel.counters.drops;
  const offloadTun = tun.offload ? new OffloadTun(tun, (reason) => drops[Drop[reason]]++, { udp: tun.udpOffload }) : null;
  const device: TunDevice = offloadTun ?? tun;
  const advertisers: RouterAdvertiser[] = [];
  const engine = new TunnelEngine(tunnel, device, socket, {
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
    const { RouterAdvertiser } = tunnel.config.advertise.length ? await import('./advertiser.js') : { RouterAdvertiser: null };
    for (const target of tunnel.config.advertise) {
      advertisers.push(await RouterAdvertiser!.open(target, { mtu: tunnel.config.mtu, rdnss: tunnel.config.advertiseDns }));
    }
  } catch (e) {
    for (const a of advertisers) await a.close();
    engine.stop();
    await removeRoutes(routes);
    const iface = tunnel.config.advertise[advertisers.length].iface;
    throw new TunnelSetupError('SETUP_FAILED', `advertise on ${iface}: ${(e as Error).message}`, e);
  }
  const iface = tun.name;
  const tunDevice = tun;
  const c = tunnel.config;
  return {
    name: iface,
    tunnel,
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
      const socket = attach(local);
      tunnel.setLocalAddress(local);
      engine.replaceSocket(socket);
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

/**
 * The raw socket binds to `local`; an address this host does not have fails there as a bare
 * EADDRNOTAVAIL after the interface exists. Binding a UDP socket to it first needs no privilege
 * and creates nothing.
 */
async function assertLocalAddress(local: string): Promise<void> {
  const probe = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind({ address: local, port: 0, exclusive: true }, resolve);
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw e;
    throw new ConfigError('local', local, `this host has no interface with ${local}; give one of its IPv4 addresses (ip -4 addr), or "auto"`);
  } finally {
    probe.close();
  }
}

function setupError(e: unknown, name: string): Error {
  if (e instanceof ConfigError || e instanceof TunnelSetupError || e instanceof NativeAddonError) return e;
  const errno = (e as { errno?: number }).errno;
  const msg = (e as Error).message ?? String(e);
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
