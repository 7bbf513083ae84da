/**
 * One tunnel of a broker as the operating side holds it (store, HTTP API, control commands):
 * text at this boundary, as people write addresses and prefixes; the table turns it into
 * lookups. `checkBrokerTunnel` is the one check every way in goes through.
 */
import { MTU_DEFAULT, MTU_MAX, MTU_MIN } from '../encap/options.js';
import { formatIpv4, formatIpv6Prefix, ipv6Network, parseIpv4, parseIpv6Prefix } from '../packet/address.js';

export interface BrokerTunnel {
  /** Stable name, 1–64 of [A-Za-z0-9._-]: the `hostname` of nic/update. */
  id: string;
  /** The client's IPv4, or null: parked (no traffic) until its first update. */
  remote: string | null;
  /** The link /64; the server is ::1 on it, the client ::2. */
  link: string;
  /** Prefixes routed to the client, each /32–/64. */
  routed: string[];
  /** The tunnel MTU, 1280–1480. */
  mtu: number;
  /** Who may update it over nic/update (HTTP Basic user), or null: nobody. */
  user: string | null;
  /** The update key's hash (never the key), or null: no update by key. */
  keyHash: string | null;
}

/** What a broker's table knows of one tunnel besides its spec. */
export interface BrokerTunnelStats {
  counters: { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number; drops: Record<string, number> };
  /** Its last drops, oldest first (a bounded ring): reason, ISO time, outer source, the first 128 bytes in hex. */
  lastDrops: Array<{ time: string; reason: string; outerSrc: string | null; bytes: string }>;
}

/** The live table as the operating side sees it: a change applies to the next packet. */
export interface TunnelDirectory {
  /** Adds or replaces a tunnel (checked: BrokerTunnelError names the field, also for a prefix another tunnel holds). */
  put(t: BrokerTunnel): void;
  delete(id: string): boolean;
  get(id: string): BrokerTunnel | undefined;
  list(): BrokerTunnel[];
  stats(id: string): BrokerTunnelStats | undefined;
  readonly size: number;
}

/** A tunnel refused: which field, why, and what would do. */
export class BrokerTunnelError extends Error {
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = 'BrokerTunnelError';
  }
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;

function prefix(field: string, text: unknown, min: number, max: number): string {
  const p = typeof text === 'string' ? parseIpv6Prefix(text) : null;
  if (!p || p.len < min || p.len > max) throw new BrokerTunnelError(field, `${JSON.stringify(text)} is not an IPv6 prefix of length ${min === max ? min : `${min}–${max}`} (e.g. 2001:db8:10:1::/${max})`);
  return formatIpv6Prefix(ipv6Network(p));
}

/** The tunnel as stored: checked, defaults filled, addresses and prefixes in their canonical text. */
export function checkBrokerTunnel(t: Partial<BrokerTunnel> & { id?: unknown }): BrokerTunnel {
  if (typeof t.id !== 'string' || !ID.test(t.id)) throw new BrokerTunnelError('id', `${JSON.stringify(t.id)} is not a tunnel id; use 1–64 letters, digits, '.', '_' or '-'`);
  let remote: string | null = null;
  if (t.remote !== null && t.remote !== undefined) {
    const a = typeof t.remote === 'string' ? parseIpv4(t.remote) : null;
    if (a === null || a === 0) throw new BrokerTunnelError('remote', `${JSON.stringify(t.remote)} is not an IPv4 address; give the client's public IPv4, or null to park the tunnel`);
    remote = formatIpv4(a);
  }
  const link = prefix('link', t.link, 64, 64);
  const routed = (t.routed ?? []).map((r, i) => prefix(`routed.${i}`, r, 32, 64));
  const mtu = t.mtu ?? MTU_DEFAULT;
  if (!Number.isInteger(mtu) || mtu < MTU_MIN || mtu > MTU_MAX) throw new BrokerTunnelError('mtu', `${JSON.stringify(t.mtu)} is not valid; use an integer in ${MTU_MIN}..${MTU_MAX}`);
  const user = t.user ?? null;
  if (user !== null && (typeof user !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(user) || user.includes(':'))) throw new BrokerTunnelError('user', 'use 1–64 printable characters without spaces or ":"');
  const keyHash = t.keyHash ?? null;
  if (keyHash !== null && typeof keyHash !== 'string') throw new BrokerTunnelError('keyHash', 'a hash string, or null');
  return { id: t.id, remote, link, routed, mtu, user, keyHash };
}

/** How a broker is run on this host (`[broker.NAME]` of the daemon's file; src/host/broker.ts opens it). */
export interface BrokerOptions {
  name: string;
  /** Our IPv4 that clients send to. */
  local: string;
  /** The TUN's name (default `t6b-NAME`). */
  dev?: string;
  /** The prefixes routed into the TUN: every link and routed prefix lies in one. */
  pools: string[];
  transport: 'raw' | 'fou';
  /** FOU: the UDP port, ours and the clients'. */
  port?: number;
  /** 'dynamic' (default): DF set and each tunnel's path MTU learnt from ICMPv4; 'static': DF clear. */
  pmtu?: 'static' | 'dynamic';
  /** Clamp TCP SYNs' MSS to each tunnel's MTU (default on). */
  clampMss?: boolean;
  /** Outer TTL (default 64) and TOS (default 0), or 'inherit' from the inner packet. */
  ttl?: number | 'inherit';
  tos?: number | 'inherit';
  /** TUN offload (TSO/USO in, GRO out; default on), and io_uring for the TUN (default on). */
  offload?: boolean;
  ioUring?: boolean;
}
