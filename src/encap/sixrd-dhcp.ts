/**
 * DHCPv4 option 212 (OPTION_6RD, RFC 5969 §7.1.1) as DHCP clients hand it to their scripts:
 * BusyBox udhcpc exports `$ip6rd` = "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…"; ISC dhclient,
 * with the option declared as a record ending in an array of addresses, prints the same fields
 * with the BRs joined by commas. Both are read here.
 */
import { ipv6Network, parseIpv4, parseIpv6, type Ipv6Prefix } from '../packet/address.js';
import { checkDelegatedLength, ConfigError } from './options.js';

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
  if (relays.some((r) => r === 0 || r >>> 24 === 127 || r >>> 24 >= 224)) bad('a border relay must be a unicast IPv4 address');
  return { ipv4MaskLen, prefix, relays };
}
