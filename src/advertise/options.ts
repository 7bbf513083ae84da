/**
 * The options of router advertisements on LAN bridges, beside the tunnel options of
 * src/encap/options.ts and the host's of src/host/options.ts and in the same shape: openTunnel's
 * options, the config file's keys and the `run` flags for them all come from ADVERTISE_OPTIONS.
 * What they resolve to depends on the tunnel's resolved prefixes (resolveAdvertiseOptions).
 */
import { z } from 'zod';
import { checkOptionRows, ConfigError, type OptionDefinition, type OptionValues } from '../encap/options.js';
import type { TunnelConfig } from '../encap/resolve.js';
import { formatIpv6, formatIpv6Prefix, ipv6Network, ipv6PrefixMatch, parseIpv6, parseIpv6Prefix, type Ipv6Prefix } from '../packet/address.js';

export const ADVERTISE_OPTIONS = {
  /**
   * Router advertisements on LAN bridges, each `IFACE` or `IFACE=PREFIX`: guests there get a SLAAC
   * address in the /64, us as default router and the tunnel MTU. PREFIX defaults to the first
   * routed /64; it must lie inside a routed prefix (or a 6to4/6rd site prefix).
   */
  advertise: {
    schema: z.array(z.string().regex(/^[a-zA-Z0-9_.-]{1,15}(=[0-9a-fA-F:.]+\/\d{1,3})?$/)),
    expect: 'use IFACE or IFACE=PREFIX, e.g. "br0" (the first routed /64) or "br0=2001:db8:2:1::/64": an interface name of 1..15 letters, digits, "-", "_" or ".", and a /64 inside a routed prefix',
    flag: '--advertise <iface[=prefix]>',
    help: 'send router advertisements on this bridge for a /64 (default the first --routed /64), with the tunnel MTU; repeatable',
  },
  /** RFC 8106 recursive DNS servers those advertisements announce. */
  advertiseDns: {
    schema: z.array(z.string().refine((s) => parseIpv6(s) !== null)),
    expect: 'use IPv6 addresses of DNS servers without prefix length, such as 2001:db8::53',
    flag: '--advertise-dns <ipv6>',
    help: 'a DNS server those router advertisements announce (RFC 8106 RDNSS); repeatable',
  },
} as const satisfies Record<string, OptionDefinition>;

export type AdvertiseOptionKey = keyof typeof ADVERTISE_OPTIONS;
export const ADVERTISE_OPTION_KEYS = Object.keys(ADVERTISE_OPTIONS) as readonly AdvertiseOptionKey[];

/** ADVERTISE_OPTIONS as a type: each optional. */
export type AdvertiseOptions = Partial<OptionValues<typeof ADVERTISE_OPTIONS>>;

/** One bridge to advertise on and the /64 to advertise there. */
export interface AdvertiseTarget {
  iface: string;
  prefix: Ipv6Prefix;
}

/** What the advertise options resolve to: the bridges, each with its /64, and the DNS servers. */
export interface AdvertiseConfig {
  targets: AdvertiseTarget[];
  rdnss: Buffer[];
}

/**
 * Checks the options against their rows and resolves them against the tunnel's prefixes: each
 * bridge once, each prefix a /64 (SLAAC on Ethernet needs 64-bit interface identifiers, RFC 4862
 * §5.5.3) inside what is routed to us, and not the tunnel's own link. Throws ConfigError on the
 * first problem, named as a tunnel option's would be (`advertise.1`).
 */
export function resolveAdvertiseOptions(o: AdvertiseOptions, c: TunnelConfig): AdvertiseConfig {
  checkOptionRows(ADVERTISE_OPTIONS, o);
  const rdnss = (o.advertiseDns ?? []).map((a) => parseIpv6(a)!);
  if (rdnss.length > 0 && !o.advertise?.length) throw new ConfigError('advertiseDns', o.advertiseDns, 'it is announced in router advertisements: add advertise (--advertise IFACE) or remove it');
  const ours = c.sitePrefix ? [...c.routed, c.sitePrefix] : c.routed;
  const inside = (p: Ipv6Prefix) => ours.some((r) => r.len <= p.len && ipv6PrefixMatch(p.addr, 0, r.addr, 0, r.len));
  const seen = new Set<string>();
  const targets = (o.advertise ?? []).map((entry, i) => {
    const field = `advertise.${i}`;
    const [iface, text] = entry.split('=');
    if (seen.has(iface)) throw new ConfigError(field, entry, `${iface} is listed twice; advertise one /64 per interface`);
    seen.add(iface);
    let prefix: Ipv6Prefix;
    if (text === undefined) {
      const first = c.routed.find((r) => r.len === 64);
      if (!first) {
        const have = c.routed.length ? `the routed prefixes (${c.routed.map(formatIpv6Prefix).join(', ')}) are not /64s` : 'no routed prefix is configured';
        throw new ConfigError(field, entry, `it defaults to the first routed /64 and ${have}: give one, e.g. ${iface}=${c.routed[0] ? formatIpv6(c.routed[0].addr) : '2001:db8:2::'}/64 (a /48 is split into /64s, one per bridge)`);
      }
      prefix = first;
    } else {
      const p = parseIpv6Prefix(text);
      if (!p || p.len !== 64) throw new ConfigError(field, entry, 'SLAAC needs a /64: give IFACE=PREFIX with a /64 such as br0=2001:db8:2:1::/64');
      prefix = ipv6Network(p);
      if (!inside(prefix)) {
        const where = ours.length ? `inside a routed prefix (${ours.map(formatIpv6Prefix).join(', ')})` : 'inside a routed prefix, and none is configured (add routed, the broker\'s "Routed /64" or "/48")';
        throw new ConfigError(field, entry, `the /64 must be ${where}: packets to it reach this host only through the tunnel's routed prefixes`);
      }
    }
    // 6in4's link is a real /64 (or longer) between us and the broker; 6to4's and 6rd's tunnel
    // prefix is the whole domain, and our site prefix lies in it by design.
    if (c.mode === '6in4' && ipv6PrefixMatch(prefix.addr, 0, c.address.addr, 0, Math.min(c.address.len, 64))) {
      throw new ConfigError(field, entry, `${formatIpv6Prefix(prefix)} overlaps the tunnel link ${formatIpv6Prefix(ipv6Network(c.address))}; advertise a routed /64, not the link's`);
    }
    return { iface, prefix };
  });
  return { targets, rdnss };
}
