/**
 * What a running tunnel reports about itself (`RunningTunnel.status()`, `tun6in4 status`, the
 * daemon's metrics): the shapes, and the parts read from the engine and the configuration.
 */
import type { CountersSnapshot } from '../encap/counters.js';
import type { TunnelConfig } from '../encap/resolve.js';
import type { TunnelEngine } from '../engine/engine.js';
import type { PeerEntry } from '../engine/peers.js';
import { formatIpv4, formatIpv6, formatIpv6Prefix } from '../packet/address.js';
import type { SuperPacketCounts } from '../tun/offload.js';
import type { AdvertiserStatus } from '../advertise/advertiser.js';

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
  const t = engine.encapsulator;
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
