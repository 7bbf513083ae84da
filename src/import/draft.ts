/**
 * What every importer produces: a kernel sit tunnel as the source described it (each value with
 * the file and line it came from), and the notes on what could not be carried over. Turning that
 * into tun6in4 options is one function for all formats (`tunnelOptionsOf`), so a 6rd tunnel from
 * networkd and one from UCI end up written the same way.
 */
import { classifyIpv4, formatIpv6, ipv6Network, ipv6PrefixMatch, parseIpv4, parseIpv4Prefix, parseIpv6, parseIpv6Prefix } from '../packet/address.js';

export type ImportFormat = 'shell' | 'networkd' | 'ifupdown' | 'netplan' | 'uci';

export const FORMAT_NAMES: Readonly<Record<ImportFormat, string>> = {
  shell: 'shell commands (iproute2 / net-tools), as a tunnel broker gives them',
  networkd: 'systemd-networkd .netdev/.network',
  ifupdown: 'ifupdown /etc/network/interfaces (or ifupdown-ng)',
  netplan: 'netplan YAML',
  uci: 'OpenWrt UCI /etc/config/network',
};

/** A place in the input: `he.sh:3`. */
export interface SourceRef {
  file: string;
  line: number;
}

export const at = (r: SourceRef): string => `${r.file}:${r.line}`;

/**
 * Characters that are not text: controls (C0, DEL, C1), line and paragraph separators, the
 * bidirectional overrides that make a line read differently from what it holds, and halves of
 * a surrogate pair. In a `#` comment a newline would end the comment and turn the rest of the
 * input's text into live TOML; none of them belongs in a name.
 */
const NOT_TEXT = /[\p{Cc}\p{Zl}\p{Zp}\p{Cs}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const NOT_TEXT_ALL = new RegExp(NOT_TEXT.source, 'gu');

const codePoint = (c: string) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * Text copied from the input, made safe for one line of a comment or a message: each character
 * that is not text becomes an escape (`\n`, `\u202e`); a tab, harmless on one line, stays.
 */
export function escapeText(text: string): string {
  return text.replace(NOT_TEXT_ALL, (c) => (c === '\t' ? c : c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** Something in the input we cannot understand or carry: the CLI prints it and exits 2. */
export class ImportError extends Error {
  /** What is wrong there and what to do, without the place (input text in it escaped, see escapeText). */
  readonly detail: string;
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${escapeText(file)}:${line}: ${escapeText(detail)}`);
    this.name = 'ImportError';
    this.detail = escapeText(detail);
  }

  static at(r: SourceRef, detail: string): ImportError {
    return new ImportError(r.file, r.line, detail);
  }
}

/**
 * A broker update key or account password read from the input. It prints as a placeholder
 * (JSON, util.inspect, template strings), so logging a result can never leak it; `reveal()` is
 * the one way to the text, for writing the key file.
 */
export class ImportedSecret {
  readonly #value: string;
  constructor(
    value: string,
    /** Where it was read, e.g. UCI `option updatekey`. */
    readonly from: SourceRef,
    /** The option that held it (`password`, `updatekey`). */
    readonly option: string,
  ) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return `[${this.option} from ${at(this.from)}]`;
  }
  toJSON(): string {
    return this.toString();
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

export interface Sourced<T> {
  value: T;
  from: SourceRef;
}

export interface Note {
  from?: SourceRef;
  text: string;
}

/** A sit tunnel as a kernel configuration describes it. */
export class SitDraft {
  /** The mode the source says outright (UCI's proto); otherwise it follows from remote and 6rd. */
  mode?: '6in4' | '6to4' | '6rd';
  remote?: Sourced<string>;
  /** Absent or `any`: the source lets the kernel pick (tun6in4's `auto`). */
  local?: Sourced<string>;
  ttl?: Sourced<number | 'inherit'>;
  tos?: Sourced<number | 'inherit'>;
  mtu?: Sourced<number>;
  pmtu?: Sourced<'static' | 'dynamic'>;
  /** IPv6 addresses with prefix length, on the tunnel itself. */
  readonly addresses: Array<Sourced<string>> = [];
  /** A route through the tunnel covering the default (::/0, default, 2000::/3), and its gateway. */
  defaultRoute?: Sourced<string | null>;
  /** The source says whether the tunnel carries the default route (UCI's defaultroute). */
  defaultRouteFlag?: Sourced<boolean>;
  /** An IPv6 gateway named apart from a route (ifupdown `gateway`, networkd `Gateway=`). */
  gateway?: Sourced<string>;
  /** The far end of the link, given outright (networkd `[Address] Peer=`). */
  peer?: Sourced<string>;
  sixrdPrefix?: Sourced<string>;
  ipv4MaskLen?: Sourced<number>;
  /** The border relay / 6to4 relay, given outright (UCI 6rd `peeraddr`). */
  relay?: Sourced<string>;
  encapDport?: Sourced<number>;
  /** FOU: the local UDP port, when the input's fou receiver listens elsewhere than encapDport. */
  encapPort?: Sourced<number>;
  readonly routed: Array<Sourced<string>> = [];
  update: { tunnelId?: Sourced<string>; username?: Sourced<string>; secret?: ImportedSecret } = {};
  readonly notes: Note[] = [];

  constructor(
    /** The interface name in the source (he-ipv6, sit1, 6in4-wan6). */
    readonly dev: string,
    /** The tunnel's name in the TOML; defaults to the interface name. */
    readonly name: string,
    /** Where the tunnel is declared. */
    readonly from: SourceRef,
    readonly format: ImportFormat,
  ) {}

  note(from: SourceRef | undefined, text: string): void {
    this.notes.push({ from, text });
  }
}

/** An IPv6 address on some other interface of the input (a LAN): where a routed prefix shows. */
export interface LanAddress {
  prefix: string;
  dev: string;
  from: SourceRef;
}

/**
 * The input's lines with backslash continuations joined (shell, ifupdown), each with the number
 * of the line it starts on. Each line is looked at once: testing the joined text for a trailing
 * backslash after every line was quadratic in continuation lines.
 */
export function joinedLines(text: string): Array<{ text: string; line: number }> {
  const raw = text.split(/\r?\n/);
  const out: Array<{ text: string; line: number }> = [];
  for (let i = 0; i < raw.length; i++) {
    const line = i + 1;
    const parts: string[] = [];
    while (/\\\s*$/.test(raw[i]) && i + 1 < raw.length) parts.push(raw[i++].replace(/\\\s*$/, ' '));
    parts.push(raw[i]);
    out.push({ text: parts.join(''), line });
  }
  return out;
}

// --- checks the parsers share: a malformed value is an ImportError at its line ---

export function ipv4At(text: string, from: SourceRef, what: string): string {
  if (parseIpv4(text) === null) throw ImportError.at(from, `${what}: "${text}" is not an IPv4 address; correct it (e.g. 198.51.100.1)`);
  return text;
}

export function ipv6PrefixAt(text: string, from: SourceRef, what: string): string {
  if (parseIpv6Prefix(text) === null) throw ImportError.at(from, `${what}: "${text}" is not an IPv6 address with prefix length; correct it (e.g. 2001:db8:1::2/64)`);
  return text;
}

export function ipv6At(text: string, from: SourceRef, what: string): string {
  if (parseIpv6(text) === null) throw ImportError.at(from, `${what}: "${text}" is not an IPv6 address; correct it (e.g. 2001:db8:1::1)`);
  return text;
}

export function integerAt(text: string, from: SourceRef, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw ImportError.at(from, `${what}: "${text}" is not a whole number in ${min}..${max}; correct it`);
  return Number(text);
}

/** TTL as the kernel takes it: 0 and `inherit` copy the inner hop limit. */
export function ttlAt(text: string, from: SourceRef): number | 'inherit' {
  if (text === 'inherit' || text === '0') return 'inherit';
  return integerAt(text, from, 'ttl', 1, 255);
}

export function tosAt(text: string, from: SourceRef): number | 'inherit' {
  if (text === 'inherit' || text === 'inh') return 'inherit';
  const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= 255)) throw ImportError.at(from, `tos: "${text}" is not 0..255 or inherit; correct it`);
  return n;
}

/** `::a.b.c.d` (or its hex spelling): a gateway that is an IPv4 address, as 6to4/6rd routes name a relay. */
export function ipv4OfCompatible(text: string): string | null {
  const m = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  if (m && parseIpv4(m[1]) !== null) return m[1];
  const b = parseIpv6(text);
  if (!b || b.subarray(0, 12).some((x) => x !== 0) || b.readUInt32BE(12) <= 0xffff) return null;
  return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
}

/** Whether a destination is, or covers, the IPv6 default (so the tunnel carries the default route). */
export function isDefaultDestination(dest: string): boolean {
  if (dest === 'default' || dest === 'all') return true;
  const p = parseIpv6Prefix(dest);
  if (!p) return false;
  const global = parseIpv6('2000::')!;
  return p.len === 0 || (p.len <= 3 && ipv6PrefixMatch(global, 0, p.addr, 0, p.len));
}

/** The network of an address with its length: 2001:db8:2::1/64 → 2001:db8:2::/64. */
export function networkOf(prefix: string): string {
  const p = ipv6Network(parseIpv6Prefix(prefix)!);
  return `${formatIpv6(p.addr)}/${p.len}`;
}

export function inPrefix(addr: string, prefix: string): boolean {
  const a = parseIpv6Prefix(addr.includes('/') ? addr : `${addr}/128`);
  const p = parseIpv6Prefix(prefix);
  return !!a && !!p && a.len >= p.len && ipv6PrefixMatch(a.addr, 0, p.addr, 0, p.len);
}

export function isDocumentationIpv4(text: string): boolean {
  const v = parseIpv4(text);
  return v !== null && classifyIpv4(v) === 'documentation';
}

export function ipv4PrefixLengthAt(text: string, from: SourceRef, what: string): number {
  const p = parseIpv4Prefix(text);
  if (!p) throw ImportError.at(from, `${what}: "${text}" is not an IPv4 prefix; correct it (e.g. 192.0.2.0/25)`);
  return p.len;
}

/**
 * A name the output repeats (an interface, a UCI section, the broker login): refused when it
 * holds a character that is not text, since no interface or login is named so and the output
 * would have to carry it into comments and values.
 */
export function nameAt(text: string, from: SourceRef, field: string): string {
  const bad = NOT_TEXT.exec(text);
  if (bad) throw ImportError.at(from, `${field} "${text}" holds ${codePoint(bad[0])}, a control or invisible formatting character, which no name may hold; correct the name in the input`);
  return text;
}

/** Whether a text holds a character nameAt refuses (for values taken from outside the input). */
export function hasNonText(text: string): boolean {
  return NOT_TEXT.test(text);
}

/** A tunnel name the configuration accepts, from an interface name (he.ipv6 → he_ipv6). */
export function tunnelNameOf(dev: string): string {
  const n = dev.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 32);
  return n || 'tunnel';
}
