/**
 * Address parsing, formatting and classification. IPv4 addresses are unsigned 32-bit numbers;
 * IPv6 addresses are 16 bytes, read in place from packets (compare with `ipv6Equal`, never
 * by building strings). Parsing and formatting allocate and belong to configuration and logs.
 */

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Dotted-quad to number, or null. Leading zeros are refused (they mean octal to some tools). */
export function parseIpv4(text: string): number | null {
  const m = IPV4_RE.exec(text);
  if (!m) return null;
  return ((+m[1] << 24) | (+m[2] << 16) | (+m[3] << 8) | +m[4]) >>> 0;
}

/** "a.b.c.d/len" (len 0..32) to the network number and length, or null; host bits are cleared. */
export function parseIpv4Prefix(text: string): { addr: number; len: number } | null {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const addr = m ? parseIpv4(m[1]) : null;
  if (!m || addr === null || +m[2] > 32) return null;
  const len = +m[2];
  return { addr: len === 0 ? 0 : (addr & (0xffffffff << (32 - len))) >>> 0, len };
}

export function formatIpv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}

/** RFC 4291 §2.2 text form to 16 bytes, or null. Zone indices are refused. */
export function parseIpv6(text: string): Buffer | null {
  if (text.length < 2 || text.length > 45 || text.includes('%')) return null;
  const out = Buffer.alloc(16);
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : halves[0].split(':');
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1].split(':')) : [];
  const words: number[] = [];
  const tailWords: number[] = [];
  if (!pushGroups(head, words, halves.length === 1)) return null;
  if (halves.length === 2 && !pushGroups(tail, tailWords, true)) return null;
  const total = words.length + tailWords.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return null;
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  tailWords.forEach((w, i) => out.writeUInt16BE(w, (8 - tailWords.length + i) * 2));
  return out;
}

function pushGroups(groups: string[], into: number[], mayEndWithIpv4: boolean): boolean {
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    if (mayEndWithIpv4 && i === groups.length - 1 && g.includes('.')) {
      const v4 = parseIpv4(g);
      if (v4 === null) return false;
      into.push(v4 >>> 16, v4 & 0xffff);
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      into.push(parseInt(g, 16));
    }
  }
  return true;
}

/** RFC 5952 canonical text: lower case, longest run (≥ 2) of zero groups compressed. */
export function formatIpv6(buf: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((buf[off + 2 * i] << 8) | buf[off + 2 * i + 1]);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = w.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

export interface Ipv6Prefix {
  addr: Buffer;
  len: number;
}

/** "addr/len" (len 0..128), or null. The address keeps its host bits (an interface address). */
export function parseIpv6Prefix(text: string): Ipv6Prefix | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = parseIpv6(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!addr || !/^\d{1,3}$/.test(lenText)) return null;
  const len = +lenText;
  return len <= 128 ? { addr, len } : null;
}

export function formatIpv6Prefix(p: Ipv6Prefix): string {
  return `${formatIpv6(p.addr)}/${p.len}`;
}

export function ipv6Equal(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** True if the first `bits` bits of a[aOff] and b[bOff] agree. */
export function ipv6PrefixMatch(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[aOff + whole] & mask) === (b[bOff + whole] & mask);
}

/** Copy of `p` with host bits cleared. */
export function ipv6Network(p: Ipv6Prefix): Ipv6Prefix {
  const addr = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, p.len - 8 * i));
    addr[i] = p.addr[i] & ((0xff << (8 - bits)) & 0xff);
  }
  return { addr, len: p.len };
}

/** R17: the tunnel link-local address fe80::<IPv4 as 32 bits> (RFC 4213 §3.7). */
export function linkLocalFromIpv4(v4: number): Buffer {
  const out = Buffer.alloc(16);
  out[0] = 0xfe;
  out[1] = 0x80;
  out.writeUInt32BE(v4 >>> 0, 12);
  return out;
}

/** IPv4 address classes relevant to 6to4 (RFC 6890 special-purpose registry, RFC 3964 §5.3.1). */
export type Ipv4Class =
  | 'global'
  | 'this-network' // 0/8
  | 'private' // 10/8, 172.16/12, 192.168/16
  | 'shared' // 100.64/10
  | 'loopback' // 127/8
  | 'link-local' // 169.254/16
  | 'protocol-assignments' // 192.0.0/24
  | 'documentation' // 192.0.2/24, 198.51.100/24, 203.0.113/24
  | '6to4-relay-anycast' // 192.88.99/24 (RFC 7526: deprecated)
  | 'benchmarking' // 198.18/15
  | 'multicast' // 224/4
  | 'reserved' // 240/4
  | 'broadcast'; // 255.255.255.255

const CLASS_TABLE: ReadonlyArray<readonly [number, number, Ipv4Class]> = [
  [0xffffffff, 32, 'broadcast'],
  [0x00000000, 8, 'this-network'],
  [0x0a000000, 8, 'private'],
  [0x64400000, 10, 'shared'],
  [0x7f000000, 8, 'loopback'],
  [0xa9fe0000, 16, 'link-local'],
  [0xac100000, 12, 'private'],
  [0xc0000000, 24, 'protocol-assignments'],
  [0xc0000200, 24, 'documentation'],
  [0xc0586300, 24, '6to4-relay-anycast'],
  [0xc0a80000, 16, 'private'],
  [0xc6120000, 15, 'benchmarking'],
  [0xc6336400, 24, 'documentation'],
  [0xcb007100, 24, 'documentation'],
  [0xe0000000, 4, 'multicast'],
  [0xf0000000, 4, 'reserved'],
];

export function classifyIpv4(addr: number): Ipv4Class {
  for (const [net, len, cls] of CLASS_TABLE) {
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((addr & mask) >>> 0) === net) return cls;
  }
  return 'global';
}

/**
 * R31 (RFC 3964 §5.3.1): IPv4 addresses that must never appear as the outer source or as the
 * IPv4 embedded in a 2002:: address. With the lab override only the classes that can never be
 * a unicast host (0/8, 127/8, 224/4, 240/4, broadcast) stay bogus, so a lab may use private nets.
 * Documentation space is not on RFC 3964's list: labs use it without the override.
 */
export function isBogus6to4Ipv4(addr: number, allowNonGlobal: boolean): boolean {
  const top = addr >>> 24;
  if (top === 0 || top === 127 || top >= 224) return true;
  if (allowNonGlobal) return false;
  if (top === 10) return true;
  if ((addr & 0xffc00000) >>> 0 === 0x64400000) return true;
  if ((addr & 0xffff0000) >>> 0 === 0xa9fe0000) return true;
  if ((addr & 0xfff00000) >>> 0 === 0xac100000) return true;
  if ((addr & 0xffff0000) >>> 0 === 0xc0a80000) return true;
  return false;
}

/**
 * R15 (RFC 4213 §3.6 via RFC 4891): inner sources no tunnel may deliver: unspecified, loopback,
 * multicast, IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::/96).
 */
export function isBogusInnerSource(buf: Uint8Array, off: number): boolean {
  if (buf[off] === 0xff) return true;
  for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) return false;
  const w5 = (buf[off + 10] << 8) | buf[off + 11];
  // ::/96 covers ::, ::1 and the IPv4-compatible block; ::ffff:0:0/96 is IPv4-mapped.
  return w5 === 0 || w5 === 0xffff;
}

/**
 * R32 (RFC 3964 §5.3.1): inner addresses refused at the 6to4 boundary, on top of R15:
 * link-local fe80::/10 and site-local fec0::/10 (and multicast, which 6to4 cannot carry).
 */
export function isBogus6to4Inner(buf: Uint8Array, off: number): boolean {
  if (isBogusInnerSource(buf, off)) return true;
  return buf[off] === 0xfe && (buf[off + 1] & 0x80) === 0x80; // fe80::/10 and fec0::/10
}
