/**
 * Every tunnel option, defined once: its name (the library's and the config file's), its type and
 * validation, the fix an error names, its `tun6in4 run` flag and help line. The TunnelOptions type,
 * the config file's tunnel keys and the CLI's flags all come from OPTIONS; what the options resolve
 * to is resolve.ts's job. A bad option is a ConfigError naming the field, the value, and what is
 * allowed.
 */
import { z } from 'zod';
import { classifyIpv4, formatIpv6, ipv6Network, parseIpv4, parseIpv4Prefix, parseIpv6, parseIpv6Prefix, type Ipv4Class } from '../packet/address.js';

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
    const detail = value === undefined ? `missing; ${expected}` : `${describe(value)} is not valid; ${expected}`;
    super(`${field}: ${detail}`);
    this.name = 'ConfigError';
    this.detail = detail;
  }
}

function describe(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/**
 * One option as a table row. The CLI reads `flag` and `help` and derives the rest from `schema`:
 * a number takes a whole number, a list repeats, an enum offers its values, a boolean is a switch
 * (`--no-x` when the flag is spelt so: only its false is passed on), `inherit`/`off` or a number
 * takes either. `flag: null`: no flag (the option is for files and programs only).
 */
export interface OptionDefinition {
  schema: z.ZodType;
  /** What to write instead, for an error: "use …". */
  expect: string;
  /** commander's spelling, e.g. `--mtu <bytes>`. */
  flag: string | null;
  /** The flag's line in `tun6in4 run --help`. */
  help: string;
  /** A boolean whose default is off that may also be turned off explicitly: the `--no-x` flag's help. */
  negatedHelp?: string;
}

/**
 * A text option: `parses` says whether it reads at all (if not, the row's `expect` is the fix);
 * `problem` may then refuse a value that reads but cannot be meant, with its own reason and fix.
 */
function text(parses: (s: string) => boolean, problem: (s: string) => string | null = () => null) {
  return z.string().superRefine((s, ctx) => {
    const why = parses(s) ? problem(s) : null;
    if (!parses(s)) ctx.addIssue({ code: 'custom', message: 'unreadable' });
    else if (why !== null) ctx.addIssue({ code: 'custom', message: why, params: { reason: true } });
  });
}

const ipv4Text = text((s) => parseIpv4(s) !== null);

const NOT_A_HOST: Partial<Record<Ipv4Class, string>> = {
  'this-network': 'in 0.0.0.0/8 ("this network"), which no host has',
  loopback: 'a loopback address (127.0.0.0/8): this host itself',
  multicast: 'a multicast address (224.0.0.0/4), not one host',
  reserved: 'in the reserved 240.0.0.0/4, which no host has',
  broadcast: 'the broadcast address, not one host',
};

/** The far end of a tunnel must be one other host: never this one, a group, or no one. */
function remoteProblem(s: string): string | null {
  const what = NOT_A_HOST[classifyIpv4(parseIpv4(s)!)];
  return what ? `it is ${what}; use the broker's "Server IPv4 Address", a unicast IPv4 such as 198.51.100.1` : null;
}

const ADDRESS_EXAMPLE = 'such as 2001:db8:1::2/64 ("Client IPv6 Address")';

/** The tunnel's own address: one global unicast address on the link, not the link's prefix. */
function addressProblem(s: string): string | null {
  const p = parseIpv6Prefix(s)!;
  if (p.addr[0] === 0xff) return `it is a multicast address; use this end's unicast address with its prefix length, ${ADDRESS_EXAMPLE}`;
  if (p.addr[0] === 0xfe && (p.addr[1] & 0xc0) === 0x80) {
    return `it is link-local (fe80::/10), which the tunnel sets by itself (fe80::<local IPv4>); use the global address the broker gave this end, ${ADDRESS_EXAMPLE}`;
  }
  // RFC 6164: on a /127 both addresses are hosts'; on any shorter prefix the zero host part is the prefix itself
  if (p.len < 127 && ipv6Network(p).addr.equals(p.addr)) {
    return `it is the link's prefix (its host part is zero), not an address on it; use this end's address on that link, e.g. ${formatIpv6(withLastBit(p.addr))}/${p.len} ("Client IPv6 Address")`;
  }
  return null;
}

function withLastBit(addr: Buffer): Buffer {
  const a = Buffer.from(addr);
  a[15] |= 2;
  return a;
}

/** A routed prefix is routed as written: host bits set would hide a typo in what was meant. */
function routedProblem(s: string): string | null {
  const p = parseIpv6Prefix(s)!;
  const net = ipv6Network(p);
  return net.addr.equals(p.addr) ? null : `it has bits set past /${p.len}; use the prefix itself: ${formatIpv6(net.addr)}/${p.len}`;
}

export const OPTIONS = {
  mode: {
    schema: z.enum(['6in4', '6to4', '6rd']),
    expect: 'use "6in4" (a configured tunnel, e.g. a tunnel broker), "6to4" or "6rd"',
    flag: '--mode <mode>',
    help: 'tunnel mode',
  },
  /** Our IPv4 address (openTunnel also takes `auto`; the library resolves it before this point). */
  local: {
    schema: ipv4Text,
    expect: 'use a dotted-quad IPv4 address of this host such as 192.0.2.10, or "auto" (the address the host sends from toward the remote; behind a 1:1 NAT)',
    flag: '--local <ipv4|auto>',
    help: 'our IPv4 address, or auto (the source address toward --remote / --relay / the first BR; 6in4 follows it when it changes)',
  },
  /** 6in4: the broker's IPv4 ("Server IPv4 Address"). */
  remote: {
    schema: text((s) => parseIpv4(s) !== null, remoteProblem),
    expect: 'use the broker\'s "Server IPv4 Address", a dotted-quad IPv4 such as 198.51.100.1',
    flag: '--remote <ipv4>',
    help: '6in4: the broker\'s IPv4 ("Server IPv4 Address")',
  },
  /** Tunnel address with prefix length: 6in4 "Client IPv6 Address"; 6to4 default 2002:V4ADDR::1/16. */
  address: {
    schema: text((s) => parseIpv6Prefix(s) !== null, addressProblem),
    expect: 'use an IPv6 address with prefix length, such as 2001:db8:1::2/64 ("Client IPv6 Address")',
    flag: '--address <ipv6/len>',
    help: '6in4: our tunnel address ("Client IPv6 Address"); 6to4 default 2002:V4ADDR::1/16',
  },
  /**
   * 6in4: the broker's IPv6 ("Server IPv6 Address"); default the link prefix ::1 (::2 if we are ::1).
   * 6rd CE: an address beyond the BR that keepalive probes.
   */
  peer: {
    schema: z.string().refine((s) => parseIpv6(s) !== null),
    expect: 'use an IPv6 address without prefix length, such as 2001:db8:1::1 ("Server IPv6 Address")',
    flag: '--peer <ipv6>',
    help: '6in4: the broker\'s IPv6 ("Server IPv6 Address"); default ::1 of --address. 6rd CE: an address beyond the BR to probe (enables keepalive and BR failover)',
  },
  /** Prefixes routed to us through the tunnel ("Routed /64", "Routed /48"); used for routes only. */
  routed: {
    schema: z.array(text((s) => parseIpv6Prefix(s) !== null, routedProblem)),
    expect: 'use IPv6 prefixes such as 2001:db8:2::/64 ("Routed /64")',
    flag: '--routed <prefix>',
    help: 'a prefix routed to us ("Routed /64"); repeatable',
  },
  /**
   * 6to4: the relay's unicast IPv4 for non-6to4 destinations. No default (RFC 7526).
   * 6rd: the border relay (BR) for destinations outside the 6rd prefix.
   */
  relay: {
    schema: ipv4Text,
    expect: 'use the unicast IPv4 address of a 6to4 relay you trust, or of the ISP\'s 6rd border relay, such as 203.0.113.1',
    flag: '--relay <ipv4>',
    help: '6to4: the relay for non-6to4 destinations (no default, RFC 7526); 6rd: the border relay (BR)',
  },
  /**
   * 6to4: `site` (default) serves our own 2002:V4ADDR::/48; `relay` is a 6to4 relay router
   * (RFC 3056 §5): it carries native IPv6 to and from any 6to4 site.
   * 6rd: `site` (default) is a customer edge (CE); `relay` is a border relay (RFC 5969 §8).
   */
  role: {
    schema: z.enum(['site', 'relay']),
    expect: 'use "site" (a 6to4 site or 6rd CE, the default) or "relay" (a 6to4 relay router or 6rd border relay)',
    flag: '--role <role>',
    help: '6to4: site (default) or relay (a 6to4 relay router); 6rd: site (a CE, default) or relay (a border relay)',
  },
  /** 6rd: the ISP's 6rd prefix with its length, e.g. 2001:db8:a000::/36 (RFC 5969 §4). */
  sixrdPrefix: {
    schema: z.string().refine((s) => parseIpv6Prefix(s) !== null),
    expect: 'use the ISP\'s 6rd prefix with its length, such as 2001:db8:a000::/36',
    flag: '--6rd-prefix <ipv6/len>',
    help: '6rd: the ISP\'s 6rd prefix, e.g. 2001:db8:a000::/36',
  },
  /** 6rd: how many high bits of the IPv4 address every CE of the domain shares, 0..31; default 0. */
  ipv4MaskLen: {
    schema: z.number().int().min(0).max(31),
    expect: 'use an integer in 0..31: how many high bits of the IPv4 address all CEs of the 6rd domain share',
    flag: '--ipv4-mask-len <0..31>',
    help: '6rd: high IPv4 bits all CEs of the domain share (default 0)',
  },
  /**
   * 6rd border relay: the IPv4 prefix every CE of the domain is in (Linux's 6rd-relay_prefix),
   * e.g. 192.0.2.0/25; its length is ipv4MaskLen. A CE takes these bits from its own address.
   */
  sixrdIpv4Prefix: {
    schema: z.string().refine((s) => parseIpv4Prefix(s) !== null),
    expect: 'use the IPv4 prefix all CEs of the 6rd domain are in, such as 192.0.2.0/25 (its length is ipv4MaskLen)',
    flag: '--6rd-ipv4-prefix <ipv4/len>',
    help: '6rd border relay: the IPv4 prefix of the domain\'s CEs (its length is --ipv4-mask-len)',
  },
  /**
   * 6rd border relay: the IPv4 prefixes of the customers it serves, e.g. ["192.0.2.0/24"]. Without
   * it (and with ipv4MaskLen 0) a BR tunnels to, and accepts from, any IPv4 an address embeds,
   * private space included: an open relay.
   */
  sixrdCustomers: {
    schema: z.array(z.string().refine((s) => parseIpv4Prefix(s) !== null)).min(1),
    expect: 'use a list of the IPv4 prefixes of the customers this border relay serves, such as ["192.0.2.0/24"]',
    flag: '--6rd-customers <ipv4/len>',
    help: '6rd border relay: an IPv4 prefix of the customers it serves, no others (repeatable; none: any IPv4, an open relay)',
  },
  /**
   * 6rd: DHCPv4 option 212 as BusyBox udhcpc exports it (`$ip6rd`):
   * "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…". Instead of sixrdPrefix, ipv4MaskLen and relay;
   * with several BRs the first is used and keepalive fails over to the next.
   */
  sixrdDhcp: {
    schema: z.string(),
    expect: 'use DHCPv4 option 212 as udhcpc exports it in $ip6rd: "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…", such as "25 36 2001:db8:a000:: 203.0.113.1"',
    flag: '--6rd-dhcp <option212>',
    help: '6rd: "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…" as udhcpc exports $ip6rd (instead of --6rd-prefix, --ipv4-mask-len, --relay)',
  },
  /** Tunnel MTU, 1280..1480 (R04); default 1480 (FOU: 1280..1472, default 1472). */
  mtu: {
    schema: z.number().int().min(MTU_MIN).max(MTU_MAX),
    expect: `use an integer in ${MTU_MIN}..${MTU_MAX} (${MTU_DEFAULT} is the default and what brokers use; ${MTU_MIN} is the RFC 4213 conservative choice; with encap fou ${MTU_MIN}..${FOU_MTU_MAX})`,
    flag: '--mtu <bytes>',
    help: `tunnel MTU, ${MTU_MIN}..${MTU_MAX} (${MTU_MIN} is the RFC 4213 conservative choice; FOU ${MTU_MIN}..${FOU_MTU_MAX}, default ${FOU_MTU_MAX})`,
  },
  /** `none` (default): protocol 41. `fou`: the same packet in UDP, as Linux `sit … encap fou` (6in4 only). */
  encap: {
    schema: z.enum(['none', 'fou']),
    expect: 'use "none" (bare protocol 41, the default) or "fou" (IPv6 in UDP, as Linux `sit … encap fou`)',
    flag: '--encap <kind>',
    help: 'none: bare protocol 41; fou: IPv6 in UDP, as Linux `sit … encap fou` (where protocol 41 is filtered; 6in4 only)',
  },
  /** FOU: the peer's UDP port (iproute2's encap-dport); we always send there, as Linux does. */
  encapDport: {
    schema: z.number().int().min(1).max(65535),
    expect: 'use the peer\'s UDP port, a whole number in 1..65535 (Linux: `ip fou add port N ipproto 41` on the peer)',
    flag: '--encap-dport <port>',
    help: 'FOU: the peer\'s UDP port (we always send there)',
  },
  /** FOU: the local UDP port we bind, send from and receive on; default encapDport. */
  encapPort: {
    schema: z.number().int().min(1).max(65535),
    expect: 'use the local UDP port to bind, a whole number in 1..65535 (default: the same as encapDport)',
    flag: '--encap-port <port>',
    help: 'FOU: the local UDP port we bind, send from and receive on (default: --encap-dport)',
  },
  /**
   * FOU UDP checksums: true on every datagram (Linux encap-csum); false on none (Linux's default,
   * noencap-csum; the kernel then refuses UDP GSO); "gso" (the default) on the datagrams sent as
   * UDP GSO messages only, every other one zero as Linux's default. A Linux peer takes either.
   */
  encapCsum: {
    schema: z.union([z.boolean(), z.literal('gso')]),
    expect: 'use true (UDP checksums on every datagram), false (none, as Linux\'s default noencap-csum; no UDP GSO) or "gso" (the default: on UDP GSO sends only)',
    flag: '--encap-csum',
    help: 'FOU: UDP checksums on every datagram (default: only on UDP GSO sends, which need them; zero on the rest, as Linux\'s noencap-csum)',
    negatedHelp: 'FOU: zero UDP checksums on every datagram, as Linux\'s noencap-csum (no UDP GSO then)',
  },
  /** R05/R07: `static` (DF clear, IPv4 may fragment; default) or `dynamic` (DF set, path MTU learnt). */
  pmtu: {
    schema: z.enum(['static', 'dynamic']),
    expect: 'use "static" (DF clear, IPv4 may fragment) or "dynamic" (DF set, learn the path MTU)',
    flag: '--pmtu <mode>',
    help: 'static: DF clear, IPv4 may fragment; dynamic: DF set, learn the path MTU',
  },
  /** R10: outer TTL 1..255 or `inherit` (inner hop limit); default 64. */
  ttl: {
    schema: z.union([z.literal('inherit'), z.number().int().min(1).max(255)]),
    expect: 'use an integer in 1..255 or "inherit" (copy the inner hop limit)',
    flag: '--ttl <1..255|inherit>',
    help: `outer TTL (default ${TTL_DEFAULT})`,
  },
  /** R13: outer TOS 0..255 or `inherit` (inner traffic class); default 0. ECN bits always follow RFC 6040. */
  tos: {
    schema: z.union([z.literal('inherit'), z.number().int().min(0).max(255)]),
    expect: 'use an integer in 0..255 or "inherit" (copy the inner traffic class)',
    flag: '--tos <0..255|inherit>',
    help: `outer TOS (default ${TOS_DEFAULT}); ECN always follows RFC 6040`,
  },
  /** Lab override for R25/R31: accept non-global IPv4 addresses. */
  allowNonGlobal: {
    schema: z.boolean(),
    expect: 'use true or false',
    flag: '--allow-nonglobal',
    help: 'lab override: accept non-global IPv4 addresses (R25/R31)',
  },
  /** Rewrite the MSS of TCP SYNs crossing the tunnel to fit its MTU; default off. */
  clampMss: {
    schema: z.boolean(),
    expect: 'use true or false',
    flag: '--clamp-mss',
    help: 'rewrite the MSS of TCP SYNs crossing the tunnel to fit its MTU',
  },
  /** R23: ICMPv6 errors we originate, per second; default 100. */
  icmpRate: {
    schema: z.number().min(0).finite(),
    expect: 'use a number of ICMPv6 errors per second, 0 or more',
    flag: '--icmp-rate <per-second>',
    help: `ICMPv6 errors we send per second (default ${ICMP_RATE_DEFAULT})`,
  },
  /** R23: ICMPv6 errors we may send at once before the rate applies; default 100. */
  icmpBurst: {
    schema: z.number().int().min(1),
    expect: 'use a whole number of ICMPv6 errors, 1 or more',
    flag: '--icmp-burst <count>',
    help: `ICMPv6 errors we may send at once before the rate applies (default ${ICMP_BURST_DEFAULT})`,
  },
} as const satisfies Record<string, OptionDefinition>;

export type OptionKey = keyof typeof OPTIONS;
/** Every option's value type, from its schema. */
export type OptionValues<T extends Record<string, { schema: z.ZodType }>> = { -readonly [K in keyof T]: z.output<T[K]['schema']> };
type Values = OptionValues<typeof OPTIONS>;

/** Options for one tunnel, as passed by a program or read from flags / a config file: OPTIONS as a type. */
export type TunnelOptions = Pick<Values, 'mode' | 'local'> & Partial<Omit<Values, 'mode' | 'local'>>;
export type TunnelMode = Values['mode'];
export type PmtuMode = Values['pmtu'];
export type SixToFourRole = Values['role'];
/** How the IPv6 packet is carried: bare protocol 41, or in UDP as Linux's Foo-over-UDP (`ip fou … ipproto 41`). */
export type Encapsulation = Values['encap'];

/** Every option's name, as a program or a config file writes it. */
export const TUNNEL_OPTION_KEYS = Object.keys(OPTIONS) as readonly OptionKey[];

/** What to write instead of a bad `key` ("use …"). */
export function expectOf(key: OptionKey): string {
  return OPTIONS[key].expect;
}

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

/**
 * Checks each option against its row alone (type, range, syntax); throws ConfigError on the first
 * problem. How options combine is resolveTunnelOptions's job.
 */
export function checkTunnelOptions(options: unknown): TunnelOptions {
  const parsed = schema.safeParse(options);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    throw new ConfigError(key, valueAt(options, [key]), `unknown option; known options are ${TUNNEL_OPTION_KEYS.join(', ')}`);
  }
  const field = String(issue.path[0] ?? 'options');
  const where = issue.path.map(String).join('.');
  throw new ConfigError(where || 'options', valueAt(options, issue.path), field in OPTIONS ? fixFor(field, expectOf(field as OptionKey), issue, valueAt(options, issue.path)) : issue.message);
}

/** The fix for an option's problem: its own reason, else what its row expects. */
function fixFor(key: string, expect: string, issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code === 'custom' && issue.params?.reason) return issue.message;
  // `routed = "2001:db8:2::/64"`: what was written is right, only not in a list
  if (issue.code === 'invalid_type' && issue.expected === 'array' && typeof value === 'string') {
    return `${key} is a list, even of one: write ${key} = ${JSON.stringify([value])} (in JSON: "${key}": ${JSON.stringify([value])})`;
  }
  return expect;
}

/** One option's value against its row: a ConfigError naming `key` if it does not fit. */
export function checkOption(key: OptionKey, value: unknown): void {
  const parsed = OPTIONS[key].schema.safeParse(value);
  if (!parsed.success) throw new ConfigError(key, value, fixFor(key, expectOf(key), parsed.error.issues[0], value));
}

/**
 * The values of `options` against their rows in `table`, a table in the shape of OPTIONS (keys
 * without a row are not looked at): a ConfigError naming the first that does not fit, with its
 * place in a list (`advertise.1`), as checkTunnelOptions names a tunnel option.
 */
export function checkOptionRows(table: Readonly<Record<string, OptionDefinition>>, options: Readonly<Record<string, unknown>>): void {
  for (const [key, value] of Object.entries(options)) {
    const row = table[key];
    if (row === undefined || value === undefined) continue;
    const parsed = row.schema.safeParse(value);
    if (parsed.success) continue;
    const issue = parsed.error.issues[0];
    const at = valueAt(value, issue.path);
    throw new ConfigError([key, ...issue.path.map(String)].join('.'), at, fixFor(key, row.expect, issue, at));
  }
}
