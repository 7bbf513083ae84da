/**
 * What tunnel options resolve to: the numbers and byte arrays the data path uses, with the
 * defaults filled in, and the checks of how options combine (per mode, per outer transport). Each
 * option alone is defined and checked in options.ts.
 */
import {
  classifyIpv4,
  formatIpv4,
  formatIpv6,
  ipv6Network,
  ipv6PrefixMatch,
  parseIpv4,
  parseIpv4Prefix,
  parseIpv6,
  parseIpv6Prefix,
  type Ipv6Prefix,
} from '../packet/address.js';
import { delegatedPrefixLength, embedIpv4, inDomain, SIX_TO_FOUR, type SixRdDomain } from '../packet/sixrd.js';
import {
  checkTunnelOptions,
  ConfigError,
  expectOf,
  FOU_MTU_MAX,
  ICMP_BURST_DEFAULT,
  ICMP_RATE_DEFAULT,
  MTU_DEFAULT,
  MTU_MIN,
  TOS_DEFAULT,
  TTL_DEFAULT,
  type Encapsulation,
  type OptionKey,
  type PmtuMode,
  type SixToFourRole,
  type TunnelMode,
  type TunnelOptions,
} from './options.js';
import { borderRelayProblem, checkDelegatedLength, parseSixRdDhcp, sixRdPrefixProblem, type SixRdParameters } from './sixrd-dhcp.js';

/** The validated, resolved form: numbers and byte arrays, ready for the data path. */
export interface TunnelConfig {
  mode: TunnelMode;
  local: number;
  remote: number;
  address: Ipv6Prefix;
  peer: Buffer | null;
  routed: Ipv6Prefix[];
  relay: number;
  role: SixToFourRole;
  mtu: number;
  encap: Encapsulation;
  /** FOU ports (0 without FOU). */
  encapDport: number;
  encapPort: number;
  /** FOU UDP checksums: true on all, false on none, 'gso' on UDP GSO sends only (see OPTIONS.encapCsum). */
  encapCsum: boolean | 'gso';
  /** Bytes in front of the inner packet on the wire: 20 (IPv4), 28 with FOU's UDP header. */
  outerOverhead: number;
  pmtu: PmtuMode;
  /** 1..255, or -1 for inherit. */
  ttl: number;
  /** 0..255, or -1 for inherit. */
  tos: number;
  allowNonGlobal: boolean;
  clampMss: boolean;
  icmpRate: number;
  icmpBurst: number;
  /** 6to4/6rd domain and our delegated prefix within it (6to4: the /48). */
  domain: SixRdDomain | null;
  sitePrefix: Ipv6Prefix | null;
  /**
   * 6rd: the high ipv4MaskLen bits every CE of the domain shares, as an IPv4 address whose
   * other bits are ours (a CE's own address; a BR's sixrdIpv4Prefix). 6to4: local.
   */
  domainIpv4: number;
  /** 6rd CE: every BR it was given, in order; `relay` is the first. Empty otherwise. */
  relays: number[];
  /** 6rd BR: the customers' IPv4 prefixes as [network, mask]; absent: any IPv4 of the domain. */
  customers?: ReadonlyArray<readonly [number, number]>;
}

/**
 * Options that give others when set: sixrdDhcp carries the 6rd prefix, the mask length and the
 * BRs. Where such an option is wrong, the ones it would give are not missing as well.
 */
export const OPTIONS_GIVEN_BY: Readonly<Partial<Record<OptionKey, readonly OptionKey[]>>> = {
  sixrdDhcp: ['sixrdPrefix', 'ipv4MaskLen', 'relay'],
};

/** Validates options and resolves them; throws ConfigError on the first problem. */
export function resolveTunnelOptions(options: TunnelOptions): TunnelConfig {
  const o = checkTunnelOptions(options);
  const local = parseIpv4(o.local)!;
  const allowNonGlobal = o.allowNonGlobal ?? false;
  const routed = (o.routed ?? []).map((r) => ipv6Network(parseIpv6Prefix(r)!));
  const encap = resolveEncap(o);
  const common = {
    local,
    routed,
    mtu: o.mtu ?? (encap.encap === 'fou' ? FOU_MTU_MAX : MTU_DEFAULT),
    ...encap,
    pmtu: o.pmtu ?? 'static',
    ttl: o.ttl === 'inherit' ? -1 : (o.ttl ?? TTL_DEFAULT),
    tos: o.tos === 'inherit' ? -1 : (o.tos ?? TOS_DEFAULT),
    allowNonGlobal,
    clampMss: o.clampMss ?? false,
    icmpRate: o.icmpRate ?? ICMP_RATE_DEFAULT,
    icmpBurst: o.icmpBurst ?? ICMP_BURST_DEFAULT,
  };
  return resolveMode(o, common);
}

function resolveMode(o: Parsed, common: Common): TunnelConfig {
  if (o.mode !== '6rd') {
    for (const k of ['sixrdPrefix', 'ipv4MaskLen', 'sixrdIpv4Prefix', 'sixrdDhcp', 'sixrdCustomers'] as const) {
      if (o[k] !== undefined) throw new ConfigError(k, o[k], `${k} is for 6rd only; remove it or use mode 6rd`);
    }
  }
  return o.mode === '6in4' ? resolve6in4(o, common) : o.mode === '6to4' ? resolve6to4(o, common) : resolve6rd(o, common);
}

function resolveEncap(o: Parsed): Pick<TunnelConfig, 'encap' | 'encapDport' | 'encapPort' | 'encapCsum' | 'outerOverhead'> {
  const encap = o.encap ?? 'none';
  if (encap === 'none') {
    for (const k of ['encapDport', 'encapPort', 'encapCsum'] as const) {
      if (o[k] !== undefined) throw new ConfigError(k, o[k], 'it is for encap "fou" only; add encap "fou" or remove it');
    }
    return { encap, encapDport: 0, encapPort: 0, encapCsum: false, outerOverhead: 20 };
  }
  // 6to4 and 6rd find their peers in the inner addresses: one UDP port per domain is a convention
  // Linux does not have for them; FOU is for configured tunnels.
  if (o.mode !== '6in4') throw new ConfigError('encap', encap, `FOU carries 6in4 tunnels only; use encap "none" with mode ${o.mode}`);
  if (o.encapDport === undefined) throw new ConfigError('encapDport', undefined, `encap "fou" needs it: ${expectOf('encapDport')}`);
  if (o.mtu !== undefined && o.mtu > FOU_MTU_MAX) {
    throw new ConfigError('mtu', o.mtu, `with encap "fou" the UDP header takes 8 more bytes: use ${MTU_MIN}..${FOU_MTU_MAX}`);
  }
  return { encap, encapDport: o.encapDport, encapPort: fouLocalPort(o)!, encapCsum: o.encapCsum ?? 'gso', outerOverhead: 28 };
}

/** FOU: the local UDP port a tunnel binds: encapPort, else encapDport (as Linux, one port both ways). */
export function fouLocalPort(o: Pick<TunnelOptions, 'encapPort' | 'encapDport'>): number | undefined {
  return o.encapPort ?? o.encapDport;
}

type Common = Omit<TunnelConfig, 'mode' | 'remote' | 'address' | 'peer' | 'relay' | 'role' | 'domain' | 'sitePrefix' | 'domainIpv4' | 'relays'>;
/** Options each checked alone (checkTunnelOptions). */
type Parsed = TunnelOptions;

function resolve6in4(o: Parsed, common: Common): TunnelConfig {
  if (o.remote === undefined) throw new ConfigError('remote', undefined, `6in4 needs it: ${expectOf('remote')}`);
  if (o.address === undefined) throw new ConfigError('address', undefined, `6in4 needs it: ${expectOf('address')}`);
  if (o.relay !== undefined) throw new ConfigError('relay', o.relay, 'relay is for 6rd and 6to4 only; remove it or use mode 6rd or 6to4');
  if (o.role !== undefined) throw new ConfigError('role', o.role, 'role is for 6rd and 6to4 only; remove it or use mode 6rd or 6to4');
  const address = parseIpv6Prefix(o.address)!;
  if (address.len > 127) throw new ConfigError('address', o.address, 'the tunnel link needs room for two addresses: use a prefix length up to /127 (brokers use /64)');
  const remote = parseIpv4(o.remote)!;
  let peer: Buffer;
  if (o.peer !== undefined) {
    peer = parseIpv6(o.peer)!;
  } else {
    peer = defaultPeer(address);
    if (peer.equals(address.addr)) {
      throw new ConfigError('peer', undefined, `it cannot default on a /${address.len} link; give the other end's IPv6 address`);
    }
  }
  if (!ipv6PrefixMatch(peer, 0, address.addr, 0, address.len)) {
    throw new ConfigError('peer', o.peer, `use an address inside ${formatIpv6(ipv6Network(address).addr)}/${address.len}, the tunnel's link prefix`);
  }
  if (peer.equals(address.addr)) {
    throw new ConfigError('peer', o.peer, `it is this end's own address (address); use the other end's, the broker's "Server IPv6 Address", or leave it out for ${formatIpv6(defaultPeer(address))}`);
  }
  if (common.local === remote) {
    throw new ConfigError('remote', o.remote, `it is local too, so the tunnel would send to itself; use the broker's "Server IPv4 Address"`);
  }
  return { mode: '6in4', ...common, remote, address, peer, relay: 0, role: 'site', domain: null, sitePrefix: null, domainIpv4: 0, relays: [] };
}

/** Brokers number the link server ::1, client ::2; the server end of a lab is ::1 itself, so its peer is ::2. */
function defaultPeer(address: Ipv6Prefix): Buffer {
  const peer = ipv6Network(address).addr;
  peer[15] |= 1;
  if (peer.equals(address.addr)) peer[15] = (peer[15] & 0xfc) | 2;
  return peer;
}

function resolve6to4(o: Parsed, common: Common): TunnelConfig {
  if (o.remote !== undefined) throw new ConfigError('remote', o.remote, '6to4 has no single remote; use relay for non-6to4 destinations, or mode 6in4');
  if (o.peer !== undefined) throw new ConfigError('peer', o.peer, 'peer is for 6in4 only; remove it');
  const cls = classifyIpv4(common.local);
  if (cls !== 'global' && !common.allowNonGlobal) {
    throw new ConfigError('local', o.local, `6to4 needs a global unicast IPv4 (RFC 3056/3964) and this is ${cls} space; use the host's public IPv4, or allowNonGlobal (--allow-nonglobal) in a lab`);
  }
  const role = o.role ?? 'site';
  if (role === 'relay' && o.relay !== undefined) throw new ConfigError('relay', o.relay, 'a 6to4 relay router does not use another relay; remove relay or use role "site"');
  let relay = 0;
  if (o.relay !== undefined) {
    relay = parseIpv4(o.relay)!;
    const rc = classifyIpv4(relay);
    if (rc === '6to4-relay-anycast') {
      throw new ConfigError('relay', o.relay, 'the 192.88.99.0/24 anycast relay is deprecated (RFC 7526); use the unicast address of a relay you trust');
    }
    if (rc !== 'global' && !common.allowNonGlobal) {
      throw new ConfigError('relay', o.relay, `a relay must be global unicast IPv4 and this is ${rc} space; use a public relay address, or allowNonGlobal in a lab`);
    }
  }
  const domain = SIX_TO_FOUR;
  const siteAddr = Buffer.alloc(16);
  embedIpv4(domain, common.local, siteAddr, 0);
  const sitePrefix: Ipv6Prefix = { addr: siteAddr, len: delegatedPrefixLength(domain) };
  let address: Ipv6Prefix;
  if (o.address !== undefined) {
    address = parseIpv6Prefix(o.address)!;
    if (!inDomain(domain, address.addr, 0) || !ipv6PrefixMatch(address.addr, 0, siteAddr, 0, sitePrefix.len)) {
      throw new ConfigError('address', o.address, `in 6to4 it must be inside our site prefix ${formatIpv6(siteAddr)}/48 (derived from local ${formatIpv4(common.local)}); omit it for ${formatIpv6(siteAddr).replace(/::$/, '::1')}/16`);
    }
  } else {
    const addr = Buffer.from(siteAddr);
    addr[15] = 1;
    address = { addr, len: domain.prefixLen };
  }
  return { mode: '6to4', ...common, remote: 0, address, peer: null, relay, role, domain, sitePrefix, domainIpv4: common.local, relays: [] };
}

/**
 * 6rd (RFC 5969): a CE derives its delegated prefix from the domain and its IPv4 and reaches the
 * other CEs directly, everything else through the BR; a BR serves every CE of the domain.
 * Private and shared IPv4 space is normal inside an ISP's 6rd domain, so no global check.
 */
function resolve6rd(o: Parsed, common: Common): TunnelConfig {
  if (o.remote !== undefined) throw new ConfigError('remote', o.remote, '6rd has no single remote; use relay for the border relay, or mode 6in4');
  const role = o.role ?? 'site';
  let params: SixRdParameters;
  if (o.sixrdDhcp !== undefined) {
    for (const k of ['sixrdPrefix', 'ipv4MaskLen', 'relay'] as const) {
      if (o[k] !== undefined) throw new ConfigError(k, o[k], 'sixrdDhcp already gives it; use either sixrdDhcp or sixrdPrefix, ipv4MaskLen and relay');
    }
    if (role === 'relay') throw new ConfigError('sixrdDhcp', o.sixrdDhcp, 'option 212 configures a CE; a border relay takes sixrdPrefix, ipv4MaskLen and sixrdIpv4Prefix');
    params = parseSixRdDhcp(o.sixrdDhcp);
  } else {
    if (o.sixrdPrefix === undefined) throw new ConfigError('sixrdPrefix', undefined, `6rd needs it: ${expectOf('sixrdPrefix')}`);
    const p = parseIpv6Prefix(o.sixrdPrefix)!;
    const v4Prefix = o.sixrdIpv4Prefix === undefined ? null : parseIpv4Prefix(o.sixrdIpv4Prefix)!;
    const maskLen = o.ipv4MaskLen ?? v4Prefix?.len ?? 0;
    if (v4Prefix && v4Prefix.len !== maskLen) {
      throw new ConfigError('sixrdIpv4Prefix', o.sixrdIpv4Prefix, `its length must equal ipv4MaskLen (${maskLen}); give one of them, or make them agree`);
    }
    params = {
      ipv4MaskLen: maskLen,
      prefix: { addr: ipv6Network(p).addr, len: p.len },
      relays: o.relay === undefined ? [] : [parseIpv4(o.relay)!],
    };
    checkDelegatedLength('sixrdPrefix', o.sixrdPrefix, params.prefix.len, maskLen);
    // The same rules as option 212 (sixrd-dhcp.ts): flags must not bring up what DHCP may not.
    const prefixProblem = sixRdPrefixProblem(params.prefix);
    if (prefixProblem) throw new ConfigError('sixrdPrefix', o.sixrdPrefix, prefixProblem);
    const relayProblem = params.relays.length ? borderRelayProblem(params.relays[0]) : null;
    if (relayProblem) throw new ConfigError('relay', o.relay, relayProblem);
  }
  const domain: SixRdDomain = Object.freeze({ prefix: params.prefix.addr, prefixLen: params.prefix.len, v4MaskLen: params.ipv4MaskLen });
  const delegatedLen = delegatedPrefixLength(domain);
  if (role === 'relay') return resolve6rdRelay(o, common, domain);
  if (o.sixrdIpv4Prefix !== undefined) throw new ConfigError('sixrdIpv4Prefix', o.sixrdIpv4Prefix, 'a CE takes the domain\'s IPv4 bits from its own address; remove it (it is for role "relay")');
  if (o.sixrdCustomers !== undefined) throw new ConfigError('sixrdCustomers', o.sixrdCustomers, 'it is for a border relay (role "relay"); remove it');
  if (params.relays.length === 0) throw new ConfigError('relay', undefined, `a 6rd CE needs its border relay: ${expectOf('relay')}`);
  const delegated = Buffer.alloc(16);
  embedIpv4(domain, common.local, delegated, 0);
  const sitePrefix: Ipv6Prefix = { addr: delegated, len: delegatedLen };
  if (o.address !== undefined) throw new ConfigError('address', o.address, `a 6rd CE's address is derived: ${formatIpv6(delegated).replace(/::$/, '::1')}/${domain.prefixLen} (from local ${formatIpv4(common.local)}); remove it`);
  // RFC 5969 §7.1.1: the interface carries the whole 6rd prefix, so every other CE is on-link
  // (reached at the IPv4 its address embeds) and only the rest needs the BR.
  const addr = Buffer.from(delegated);
  addr[15] = 1;
  const address: Ipv6Prefix = { addr, len: domain.prefixLen };
  const peer = o.peer === undefined ? null : parseIpv6(o.peer)!;
  if (peer && inDomain(domain, peer, 0)) {
    throw new ConfigError('peer', o.peer, `the keepalive target must be reached through the BR: use an address outside the 6rd prefix ${formatIpv6(domain.prefix)}/${domain.prefixLen}`);
  }
  return {
    mode: '6rd',
    ...common,
    remote: 0,
    address,
    peer,
    relay: params.relays[0],
    role,
    domain,
    sitePrefix,
    domainIpv4: common.local,
    relays: params.relays,
  };
}

/** A 6rd border relay: serves every CE of the domain; its own address sits in the prefix. */
function resolve6rdRelay(o: Parsed, common: Common, domain: SixRdDomain): TunnelConfig {
  if (o.relay !== undefined) throw new ConfigError('relay', o.relay, 'a 6rd border relay does not use another relay; remove relay or use role "site"');
  if (o.peer !== undefined) throw new ConfigError('peer', o.peer, 'peer is the keepalive target of a CE; remove it');
  if (domain.v4MaskLen > 0 && o.sixrdIpv4Prefix === undefined) {
    throw new ConfigError('sixrdIpv4Prefix', undefined, `a border relay with ipv4MaskLen ${domain.v4MaskLen} needs the CEs' IPv4 prefix: ${expectOf('sixrdIpv4Prefix')}`);
  }
  const domainIpv4 = o.sixrdIpv4Prefix === undefined ? 0 : parseIpv4Prefix(o.sixrdIpv4Prefix)!.addr;
  let address: Ipv6Prefix;
  if (o.address !== undefined) {
    address = parseIpv6Prefix(o.address)!;
    if (!inDomain(domain, address.addr, 0)) {
      throw new ConfigError('address', o.address, `a border relay's address must be inside the 6rd prefix ${formatIpv6(domain.prefix)}/${domain.prefixLen}`);
    }
    address = { addr: address.addr, len: domain.prefixLen };
  } else {
    // The slot of the domain's IPv4 network address (all embedded bits zero) belongs to no CE:
    // that address is never a host's.
    const addr = Buffer.from(domain.prefix);
    addr[15] |= 1;
    address = { addr, len: domain.prefixLen };
  }
  const slot = ipv6Network({ addr: address.addr, len: delegatedPrefixLength(domain) });
  const customers = o.sixrdCustomers?.map((text) => {
    const p = parseIpv4Prefix(text)!;
    const mask = p.len === 0 ? 0 : (0xffffffff << (32 - p.len)) >>> 0;
    return [(p.addr & mask) >>> 0, mask] as const;
  });
  return { mode: '6rd', ...common, remote: 0, address, peer: null, relay: 0, role: 'relay', domain, sitePrefix: slot, domainIpv4, relays: [], ...(customers && { customers }) };
}
