/**
 * Tunnel options as people and programs write them, their validation, and the resolved
 * configuration the data path uses. A bad option is a ConfigError naming the field, the
 * value, and what is allowed.
 */
import { z } from 'zod';
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
import { borderRelayProblem, parseSixRdDhcp, sixRdPrefixProblem, type SixRdParameters } from './sixrd-dhcp.js';

export type TunnelMode = '6in4' | '6to4' | '6rd';
export type PmtuMode = 'static' | 'dynamic';
export type SixToFourRole = 'site' | 'relay';
/** How the IPv6 packet is carried: bare protocol 41, or in UDP as Linux's Foo-over-UDP (`ip fou … ipproto 41`). */
export type Encapsulation = 'none' | 'fou';

/** Options for one tunnel, as passed by a program or read from flags / a config file. */
export interface TunnelOptions {
  mode: TunnelMode;
  /** Our IPv4 address (the engine resolves `auto` before this point). */
  local: string;
  /** 6in4: the broker's IPv4 ("Server IPv4 Address"). */
  remote?: string;
  /** Tunnel address with prefix length: 6in4 "Client IPv6 Address"; 6to4 default 2002:V4ADDR::1/16. */
  address?: string;
  /** 6in4: the broker's IPv6 ("Server IPv6 Address"); default the link prefix ::1 (::2 if we are ::1). */
  peer?: string;
  /** Prefixes routed to us through the tunnel ("Routed /64", "Routed /48"); used for routes only. */
  routed?: string[];
  /**
   * 6to4: the relay's unicast IPv4 for non-6to4 destinations. No default (RFC 7526).
   * 6rd: the border relay (BR) for destinations outside the 6rd prefix.
   */
  relay?: string;
  /**
   * 6to4: `site` (default) serves our own 2002:V4ADDR::/48; `relay` is a 6to4 relay router
   * (RFC 3056 §5): it carries native IPv6 to and from any 6to4 site.
   * 6rd: `site` (default) is a customer edge (CE); `relay` is a border relay (RFC 5969 §8).
   */
  role?: SixToFourRole;
  /** 6rd: the ISP's 6rd prefix with its length, e.g. 2001:db8:a000::/36 (RFC 5969 §4). */
  sixrdPrefix?: string;
  /** 6rd: how many high bits of the IPv4 address every CE of the domain shares, 0..31; default 0. */
  ipv4MaskLen?: number;
  /**
   * 6rd border relay: the IPv4 prefix every CE of the domain is in (Linux's 6rd-relay_prefix),
   * e.g. 192.0.2.0/25; its length is ipv4MaskLen. A CE takes these bits from its own address.
   */
  sixrdIpv4Prefix?: string;
  /**
   * 6rd border relay: the IPv4 prefixes of the customers it serves, e.g. ["192.0.2.0/24"]. Without
   * it (and with ipv4MaskLen 0) a BR tunnels to, and accepts from, any IPv4 an address embeds,
   * private space included: an open relay.
   */
  sixrdCustomers?: string[];
  /**
   * 6rd: DHCPv4 option 212 as BusyBox udhcpc exports it (`$ip6rd`):
   * "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…". Instead of sixrdPrefix, ipv4MaskLen and relay;
   * with several BRs the first is used and keepalive fails over to the next.
   */
  sixrdDhcp?: string;
  /** Tunnel MTU, 1280..1480 (R04); default 1480 (FOU: 1280..1472, default 1472). */
  mtu?: number;
  /** `none` (default): protocol 41. `fou`: the same packet in UDP, as Linux `sit … encap fou` (6in4 only). */
  encap?: Encapsulation;
  /** FOU: the peer's UDP port (iproute2's encap-dport); we always send there, as Linux does. */
  encapDport?: number;
  /** FOU: the local UDP port we bind, send from and receive on; default encapDport. */
  encapPort?: number;
  /** FOU: send UDP checksums (Linux encap-csum); default off, as Linux's noencap-csum. Needed for UDP GSO. */
  encapCsum?: boolean;
  /** R05/R07: `static` (DF clear, IPv4 may fragment; default) or `dynamic` (DF set, path MTU learnt). */
  pmtu?: PmtuMode;
  /** R10: outer TTL 1..255 or `inherit` (inner hop limit); default 64. */
  ttl?: number | 'inherit';
  /** R13: outer TOS 0..255 or `inherit` (inner traffic class); default 0. ECN bits always follow RFC 6040. */
  tos?: number | 'inherit';
  /** Lab override for R25/R31: accept non-global IPv4 addresses. */
  allowNonGlobal?: boolean;
  /** Rewrite the MSS of TCP SYNs crossing the tunnel to fit its MTU; default off. */
  clampMss?: boolean;
  /** R23: ICMPv6 errors we originate, per second (default 100) and burst (default 100). */
  icmpRate?: number;
  icmpBurst?: number;
  /**
   * Router advertisements on LAN bridges, each `IFACE` or `IFACE=PREFIX`: guests there get a SLAAC
   * address in the /64, us as default router and the tunnel MTU. PREFIX defaults to the first
   * routed /64; it must lie inside a routed prefix (or a 6to4/6rd site prefix).
   */
  advertise?: string[];
  /** RFC 8106 recursive DNS servers those advertisements announce. */
  advertiseDns?: string[];
}

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
  encapCsum: boolean;
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
  /** Bridges to send router advertisements on, each with its /64. */
  advertise: Array<{ iface: string; prefix: Ipv6Prefix }>;
  advertiseDns: Buffer[];
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

export const MTU_MIN = 1280;
export const MTU_MAX = 1480;
export const MTU_DEFAULT = 1480;
/** FOU: 1500 − 20 (IPv4) − 8 (UDP). */
export const FOU_MTU_MAX = 1472;
export const TTL_DEFAULT = 64;
export const TOS_DEFAULT = 0;
export const ICMP_RATE_DEFAULT = 100;
export const ICMP_BURST_DEFAULT = 100;

/** A configuration error: which field, what value, and what would be accepted. */
export class ConfigError extends Error {
  /** What is wrong and the fix, without the field's name (for callers that name it their way). */
  readonly detail: string;
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly expected: string,
  ) {
    const detail = `${describe(value)} is not valid; ${expected}`;
    super(`${field}: ${detail}`);
    this.name = 'ConfigError';
    this.detail = detail;
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'a missing value';
  return JSON.stringify(v) ?? String(v);
}

const ipv4Text = z.string().refine((s) => parseIpv4(s) !== null);

/**
 * Every option once: how it is validated and, when it is not valid, what to use instead. The
 * schema, the error text and (through TunnelOptions) the types all come from here; the CLI's
 * flags are one table too (src/cli/run-flags.ts).
 */
const OPTIONS = {
  mode: {
    schema: z.enum(['6in4', '6to4', '6rd']),
    expect: 'use "6in4" (a configured tunnel, e.g. a tunnel broker), "6to4" or "6rd"',
  },
  local: {
    schema: ipv4Text,
    expect: 'use a dotted-quad IPv4 address such as 192.0.2.10',
  },
  remote: {
    schema: ipv4Text,
    expect: 'use the broker\'s "Server IPv4 Address", a dotted-quad IPv4 such as 198.51.100.1',
  },
  address: {
    schema: z.string().refine((s) => parseIpv6Prefix(s) !== null),
    expect: 'use an IPv6 address with prefix length, such as 2001:db8:1::2/64 ("Client IPv6 Address")',
  },
  peer: {
    schema: z.string().refine((s) => parseIpv6(s) !== null),
    expect: 'use an IPv6 address without prefix length, such as 2001:db8:1::1 ("Server IPv6 Address")',
  },
  routed: {
    schema: z.array(z.string().refine((s) => parseIpv6Prefix(s) !== null)),
    expect: 'use IPv6 prefixes such as 2001:db8:2::/64 ("Routed /64")',
  },
  relay: {
    schema: ipv4Text,
    expect: 'use the unicast IPv4 address of a 6to4 relay you trust, or of the ISP\'s 6rd border relay, such as 203.0.113.1',
  },
  role: {
    schema: z.enum(['site', 'relay']),
    expect: 'use "site" (a 6to4 site or 6rd CE, the default) or "relay" (a 6to4 relay router or 6rd border relay)',
  },
  sixrdPrefix: {
    schema: z.string().refine((s) => parseIpv6Prefix(s) !== null),
    expect: 'use the ISP\'s 6rd prefix with its length, such as 2001:db8:a000::/36',
  },
  ipv4MaskLen: {
    schema: z.number().int().min(0).max(31),
    expect: 'use an integer in 0..31: how many high bits of the IPv4 address all CEs of the 6rd domain share',
  },
  sixrdIpv4Prefix: {
    schema: z.string().refine((s) => parseIpv4Prefix(s) !== null),
    expect: 'use the IPv4 prefix all CEs of the 6rd domain are in, such as 192.0.2.0/25 (its length is ipv4MaskLen)',
  },
  sixrdCustomers: {
    schema: z.array(z.string().refine((s) => parseIpv4Prefix(s) !== null)).min(1),
    expect: 'use a list of the IPv4 prefixes of the customers this border relay serves, such as ["192.0.2.0/24"]',
  },
  sixrdDhcp: {
    schema: z.string(),
    expect: 'use DHCPv4 option 212 as udhcpc exports it in $ip6rd: "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…", such as "25 36 2001:db8:a000:: 203.0.113.1"',
  },
  mtu: {
    schema: z.number().int().min(MTU_MIN).max(MTU_MAX),
    expect: `use an integer in ${MTU_MIN}..${MTU_MAX} (${MTU_DEFAULT} is the default and what brokers use; ${MTU_MIN} is the RFC 4213 conservative choice; with encap fou ${MTU_MIN}..${FOU_MTU_MAX})`,
  },
  encap: {
    schema: z.enum(['none', 'fou']),
    expect: 'use "none" (bare protocol 41, the default) or "fou" (IPv6 in UDP, as Linux `sit … encap fou`)',
  },
  encapDport: {
    schema: z.number().int().min(1).max(65535),
    expect: 'use the peer\'s UDP port, a whole number in 1..65535 (Linux: `ip fou add port N ipproto 41` on the peer)',
  },
  encapPort: {
    schema: z.number().int().min(1).max(65535),
    expect: 'use the local UDP port to bind, a whole number in 1..65535 (default: the same as encapDport)',
  },
  encapCsum: {
    schema: z.boolean(),
    expect: 'use true (send UDP checksums, needed for UDP GSO) or false (zero checksums, as Linux\'s default noencap-csum)',
  },
  pmtu: {
    schema: z.enum(['static', 'dynamic']),
    expect: 'use "static" (DF clear, IPv4 may fragment) or "dynamic" (DF set, learn the path MTU)',
  },
  ttl: {
    schema: z.union([z.literal('inherit'), z.number().int().min(1).max(255)]),
    expect: 'use an integer in 1..255 or "inherit" (copy the inner hop limit)',
  },
  tos: {
    schema: z.union([z.literal('inherit'), z.number().int().min(0).max(255)]),
    expect: 'use an integer in 0..255 or "inherit" (copy the inner traffic class)',
  },
  allowNonGlobal: {
    schema: z.boolean(),
    expect: 'use true or false',
  },
  clampMss: {
    schema: z.boolean(),
    expect: 'use true or false',
  },
  icmpRate: {
    schema: z.number().min(0).finite(),
    expect: 'use a number of ICMPv6 errors per second, 0 or more',
  },
  icmpBurst: {
    schema: z.number().int().min(1),
    expect: 'use a whole number of ICMPv6 errors, 1 or more',
  },
  advertise: {
    schema: z.array(z.string().regex(/^[a-zA-Z0-9_.-]{1,15}(=[0-9a-fA-F:.]+\/\d{1,3})?$/)),
    expect: 'use IFACE or IFACE=PREFIX, e.g. "br0" (the first routed /64) or "br0=2001:db8:2:1::/64": an interface name of 1..15 letters, digits, "-", "_" or ".", and a /64 inside a routed prefix',
  },
  advertiseDns: {
    schema: z.array(z.string().refine((s) => parseIpv6(s) !== null)),
    expect: 'use IPv6 addresses of DNS servers without prefix length, such as 2001:db8::53',
  },
} as const satisfies { [K in keyof TunnelOptions]-?: { schema: z.ZodType; expect: string } };

type OptionKey = keyof typeof OPTIONS;
/** Every option's name, as a program or a config file writes it. */
export const TUNNEL_OPTION_KEYS = Object.keys(OPTIONS) as readonly OptionKey[];
const EXPECT = Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, o.expect])) as { [K in OptionKey]: string };

function optional<T extends Record<string, { schema: z.ZodType }>>(defs: T): { [K in keyof T]: z.ZodOptional<T[K]['schema']> } {
  return Object.fromEntries(Object.entries(defs).map(([k, d]) => [k, d.schema.optional()])) as { [K in keyof T]: z.ZodOptional<T[K]['schema']> };
}

const { mode, local, ...rest } = OPTIONS;
const schema = z.strictObject({ mode: mode.schema, local: local.schema, ...optional(rest) });

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = input;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** Validates options and resolves them; throws ConfigError on the first problem. */
export function resolveTunnelOptions(options: TunnelOptions): TunnelConfig {
  const parsed = schema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0];
      throw new ConfigError(key, valueAt(options, [key]), `unknown option; known options are ${Object.keys(EXPECT).join(', ')}`);
    }
    const field = String(issue.path[0] ?? 'options') as OptionKey;
    const where = issue.path.map(String).join('.');
    throw new ConfigError(where || 'options', valueAt(options, issue.path), EXPECT[field] ?? issue.message);
  }
  const o = parsed.data;
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
    advertise: [],
    advertiseDns: [],
  };
  const config = resolveMode(o, common);
  return { ...config, ...resolveAdvertise(o, config) };
}

function resolveMode(o: Parsed, common: Common): TunnelConfig {
  if (o.mode !== '6rd') {
    for (const k of ['sixrdPrefix', 'ipv4MaskLen', 'sixrdIpv4Prefix', 'sixrdDhcp', 'sixrdCustomers'] as const) {
      if (o[k] !== undefined) throw new ConfigError(k, o[k], `${k} is for 6rd only; remove it or use mode 6rd`);
    }
  }
  return o.mode === '6in4' ? resolve6in4(o, common) : o.mode === '6to4' ? resolve6to4(o, common) : resolve6rd(o, common);
}

function resolveEncap(o: z.infer<typeof schema>): Pick<TunnelConfig, 'encap' | 'encapDport' | 'encapPort' | 'encapCsum' | 'outerOverhead'> {
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
  if (o.encapDport === undefined) throw new ConfigError('encapDport', undefined, `encap "fou" needs it: ${EXPECT.encapDport}`);
  if (o.mtu !== undefined && o.mtu > FOU_MTU_MAX) {
    throw new ConfigError('mtu', o.mtu, `with encap "fou" the UDP header takes 8 more bytes: use ${MTU_MIN}..${FOU_MTU_MAX}`);
  }
  return { encap, encapDport: o.encapDport, encapPort: o.encapPort ?? o.encapDport, encapCsum: o.encapCsum ?? false, outerOverhead: 28 };
}

/**
 * `advertise`: each bridge once, each prefix a /64 (SLAAC on Ethernet needs 64-bit interface
 * identifiers, RFC 4862 §5.5.3) inside what is routed to us, and not the tunnel's own link.
 */
function resolveAdvertise(o: Parsed, c: TunnelConfig): Pick<TunnelConfig, 'advertise' | 'advertiseDns'> {
  const dns = (o.advertiseDns ?? []).map((a) => parseIpv6(a)!);
  if (dns.length > 0 && !o.advertise?.length) throw new ConfigError('advertiseDns', o.advertiseDns, 'it is announced in router advertisements: add advertise (--advertise IFACE) or remove it');
  const ours = c.sitePrefix ? [...c.routed, c.sitePrefix] : c.routed;
  const inside = (p: Ipv6Prefix) => ours.some((r) => r.len <= p.len && ipv6PrefixMatch(p.addr, 0, r.addr, 0, r.len));
  const seen = new Set<string>();
  const advertise = (o.advertise ?? []).map((entry, i) => {
    const field = `advertise.${i}`;
    const [iface, text] = entry.split('=');
    if (seen.has(iface)) throw new ConfigError(field, entry, `${iface} is listed twice; advertise one /64 per interface`);
    seen.add(iface);
    let prefix: Ipv6Prefix;
    if (text === undefined) {
      const first = c.routed.find((r) => r.len === 64);
      if (!first) {
        const have = c.routed.length ? `the routed prefixes (${c.routed.map(formatPrefix).join(', ')}) are not /64s` : 'no routed prefix is configured';
        throw new ConfigError(field, entry, `it defaults to the first routed /64 and ${have}: give one, e.g. ${iface}=${c.routed[0] ? formatIpv6(c.routed[0].addr) : '2001:db8:2::'}/64 (a /48 is split into /64s, one per bridge)`);
      }
      prefix = first;
    } else {
      const p = parseIpv6Prefix(text);
      if (!p || p.len !== 64) throw new ConfigError(field, entry, 'SLAAC needs a /64: give IFACE=PREFIX with a /64 such as br0=2001:db8:2:1::/64');
      prefix = ipv6Network(p);
      if (!inside(prefix)) {
        const where = ours.length ? `inside a routed prefix (${ours.map(formatPrefix).join(', ')})` : 'inside a routed prefix, and none is configured (add routed, the broker\'s "Routed /64" or "/48")';
        throw new ConfigError(field, entry, `the /64 must be ${where}: packets to it reach this host only through the tunnel's routed prefixes`);
      }
    }
    // 6in4's link is a real /64 (or longer) between us and the broker; 6to4's and 6rd's tunnel
    // prefix is the whole domain, and our site prefix lies in it by design.
    if (c.mode === '6in4' && ipv6PrefixMatch(prefix.addr, 0, c.address.addr, 0, Math.min(c.address.len, 64))) {
      throw new ConfigError(field, entry, `${formatPrefix(prefix)} overlaps the tunnel link ${formatPrefix(ipv6Network(c.address))}; advertise a routed /64, not the link's`);
    }
    return { iface, prefix };
  });
  return { advertise, advertiseDns: dns };
}

function formatPrefix(p: Ipv6Prefix): string {
  return `${formatIpv6(p.addr)}/${p.len}`;
}

type Common = Omit<TunnelConfig, 'mode' | 'remote' | 'address' | 'peer' | 'relay' | 'role' | 'domain' | 'sitePrefix' | 'domainIpv4' | 'relays'>;
type Parsed = z.infer<typeof schema>;

function resolve6in4(o: Parsed, common: Common): TunnelConfig {
  if (o.remote === undefined) throw new ConfigError('remote', undefined, `6in4 needs it: ${EXPECT.remote}`);
  if (o.address === undefined) throw new ConfigError('address', undefined, `6in4 needs it: ${EXPECT.address}`);
  if (o.relay !== undefined) throw new ConfigError('relay', o.relay, 'relay is for 6rd and 6to4 only; remove it or use mode 6rd or 6to4');
  if (o.role !== undefined) throw new ConfigError('role', o.role, 'role is for 6rd and 6to4 only; remove it or use mode 6rd or 6to4');
  const address = parseIpv6Prefix(o.address)!;
  if (address.len > 127) throw new ConfigError('address', o.address, 'the tunnel link needs room for two addresses: use a prefix length up to /127 (brokers use /64)');
  let peer: Buffer;
  if (o.peer !== undefined) {
    peer = parseIpv6(o.peer)!;
  } else {
    // Brokers number the link server ::1, client ::2; the server end of a lab is ::1 itself.
    peer = ipv6Network(address).addr;
    peer[15] |= 1;
    if (peer.equals(address.addr)) peer[15] = (peer[15] & 0xfc) | 2;
    if (peer.equals(address.addr)) {
      throw new ConfigError('peer', undefined, `it cannot default on a /${address.len} link; give the other end's IPv6 address`);
    }
  }
  if (!ipv6PrefixMatch(peer, 0, address.addr, 0, address.len)) {
    throw new ConfigError('peer', o.peer, `use an address inside ${formatIpv6(ipv6Network(address).addr)}/${address.len}, the tunnel's link prefix`);
  }
  return { mode: '6in4', ...common, remote: parseIpv4(o.remote)!, address, peer, relay: 0, role: 'site', domain: null, sitePrefix: null, domainIpv4: 0, relays: [] };
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
    if (o.sixrdPrefix === undefined) throw new ConfigError('sixrdPrefix', undefined, `6rd needs it: ${EXPECT.sixrdPrefix}`);
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
  if (params.relays.length === 0) throw new ConfigError('relay', undefined, `a 6rd CE needs its border relay: ${EXPECT.relay}`);
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
    throw new ConfigError('sixrdIpv4Prefix', undefined, `a border relay with ipv4MaskLen ${domain.v4MaskLen} needs the CEs' IPv4 prefix: ${EXPECT.sixrdIpv4Prefix}`);
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

/** RFC 5969 §4: the delegated prefix, 6rdPrefixLen + 32 − IPv4MaskLen bits, must fit in a /64 here. */
export function checkDelegatedLength(field: string, value: unknown, prefixLen: number, ipv4MaskLen: number): void {
  const len = prefixLen + 32 - ipv4MaskLen;
  if (len > 64) {
    throw new ConfigError(
      field,
      value,
      `with 6rd prefix length ${prefixLen} and ipv4MaskLen ${ipv4MaskLen} the delegated prefix would be /${len}, longer than /64: 6rdPrefixLen + 32 − ipv4MaskLen must be at most 64 (check both values with the ISP)`,
    );
  }
}
