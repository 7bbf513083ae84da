/**
 * DHCPv4 option 212 (OPTION_6RD, RFC 5969 §7.1.1) as DHCP clients hand it to their scripts:
 * BusyBox udhcpc exports `$ip6rd` = "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…"; ISC dhclient,
 * with the option declared as a record ending in an array of addresses, prints the same fields
 * with the BRs joined by commas. Both are read here.
 */
import { classifyIpv4, formatIpv4, formatIpv6, ipv6Network, parseIpv4, parseIpv6, type Ipv6Prefix } from '../packet/address.js';
import { ConfigError } from './options.js';

export interface SixRdParameters {
  ipv4MaskLen: number;
  /** Host bits past the length cleared. */
  prefix: Ipv6Prefix;
  /** At least one BR, in the order the server listed them. */
  relays: number[];
}

/**
 * The option is one byte of length on the wire: 2 + 16 + 4n ≤ 255 bytes leaves room for at most
 * 59 BRs. Anything longer did not come from a DHCP server.
 */
export const MAX_6RD_RELAYS = 59;

const FIELD = 'sixrdDhcp';

export function parseSixRdDhcp(text: string): SixRdParameters {
  const bad = (why: string): never => {
    throw new ConfigError(FIELD, text, `${why}; expected "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…" as udhcpc exports it in $ip6rd, such as "25 36 2001:db8:a000:: 203.0.113.1"`);
  };
  if (text.length > 4096) bad('it is far longer than option 212 can be');
  const fields = text.trim().split(/[\s,]+/).filter(Boolean);
  if (fields.length < 4) bad(`it has ${fields.length} field${fields.length === 1 ? '' : 's'}, at least 4 are needed`);
  const [maskText, lenText, prefixText, ...brTexts] = fields;
  if (!/^\d{1,2}$/.test(maskText) || +maskText > 31) bad(`IPv4MaskLen "${maskText}" is not a whole number in 0..31`);
  if (!/^\d{1,3}$/.test(lenText) || +lenText < 1 || +lenText > 64) bad(`6rdPrefixLen "${lenText}" is not a whole number in 1..64`);
  const prefixAddr = parseIpv6(prefixText);
  if (!prefixAddr) bad(`6rdPrefix "${prefixText}" is not an IPv6 address`);
  if (brTexts.length > MAX_6RD_RELAYS) bad(`it lists ${brTexts.length} border relays; option 212 has room for at most ${MAX_6RD_RELAYS}`);
  const relays = brTexts.map((b) => parseIpv4(b) ?? bad(`border relay "${b}" is not a dotted-quad IPv4 address`));
  const ipv4MaskLen = +maskText;
  const prefix = ipv6Network({ addr: prefixAddr!, len: +lenText });
  checkDelegatedLength(FIELD, text, prefix.len, ipv4MaskLen);
  const prefixProblem = sixRdPrefixProblem(prefix);
  if (prefixProblem) bad(`6rdPrefix ${prefixProblem}`);
  for (const r of relays) {
    const p = borderRelayProblem(r);
    if (p) bad(`border relay ${p}`);
  }
  return { ipv4MaskLen, prefix, relays };
}

/**
 * Why `prefix` cannot be a 6rd prefix, or null. A 6rd domain is an ISP's global unicast space
 * (RFC 5969 §4): the CE routes it on its link and takes the IPv6 default route through the BR, so
 * a link-local, multicast, IPv4-mapped or unique-local prefix from a broken or rogue DHCP server
 * must not come up. Global unicast is 2000::/3 (RFC 4291 §2.4, IANA), which holds 2001:db8::/32
 * and 2002::/16 for labs.
 */
export function sixRdPrefixProblem(prefix: Ipv6Prefix): string | null {
  const a = prefix.addr;
  const text = `${formatIpv6(a)}/${prefix.len}`;
  if ((a[0] & 0xe0) === 0x20 && prefix.len >= 3) return null;
  const zero10 = a.subarray(0, 10).every((b) => b === 0);
  const kind =
    prefix.len < 3 ? `wider than global unicast space (/${prefix.len} reaches outside 2000::/3)`
    : a.every((b) => b === 0) ? 'the unspecified address (::)'
    : zero10 && a[10] === 0xff && a[11] === 0xff ? 'IPv4-mapped (::ffff:0:0/96)'
    : zero10 && a[10] === 0 && a[11] === 0 ? 'loopback or IPv4-compatible (::/96)'
    : a[0] === 0xff ? 'multicast (ff00::/8)'
    : a[0] === 0xfe && (a[1] & 0xc0) === 0x80 ? 'link-local (fe80::/10)'
    : a[0] === 0xfe && (a[1] & 0xc0) === 0xc0 ? 'site-local (fec0::/10, deprecated)'
    : (a[0] & 0xfe) === 0xfc ? 'unique local (fc00::/7)'
    : 'outside global unicast space (2000::/3)';
  return `${text} is ${kind}; a 6rd prefix is the ISP's global unicast prefix (inside 2000::/3): check the value, or the DHCP server sending option 212`;
}

/**
 * Why `relay` cannot be a border relay, or null. Private and shared space are normal inside an
 * ISP's network; what can never be a unicast host (0/8, 127/8, 169.254/16, multicast, 240/4,
 * broadcast) is refused, since packets for every native destination go there.
 */
export function borderRelayProblem(relay: number): string | null {
  const cls = classifyIpv4(relay);
  if (cls === 'this-network' || cls === 'loopback' || cls === 'link-local' || cls === 'multicast' || cls === 'reserved' || cls === 'broadcast') {
    return `${formatIpv4(relay)} is ${cls} space, not a usable unicast IPv4 address; give the ISP's BR address (check the value, or the DHCP server sending option 212)`;
  }
  return null;
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
