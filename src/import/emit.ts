/**
 * From kernel sit tunnels (SitDraft) to tun6in4 tunnel options and the commented TOML that holds
 * them: every value says which line it came from, every default that differs from the kernel's is
 * written out, and what cannot be carried over is a comment saying why.
 */
import { FOU_MTU_MAX, MTU_MAX, MTU_MIN } from '../encap/options.js';
import { classifyIpv4, formatIpv6, parseIpv4, parseIpv6Prefix } from '../packet/address.js';
import { delegatedPrefixLength, embedIpv4, SIX_TO_FOUR, type SixRdDomain } from '../packet/sixrd.js';
import {
  at,
  escapeText,
  ImportError,
  inPrefix,
  ipv4OfCompatible,
  isDocumentationIpv4,
  networkOf,
  type ImportedSecret,
  type LanAddress,
  type Note,
  type SitDraft,
  type Sourced,
  type SourceRef,
} from './draft.js';

/** One line of a tunnel's table: a key and value with where it came from, or a comment alone. */
interface Line {
  key?: string;
  value?: unknown;
  comment: string;
}

export interface EmittedTunnel {
  name: string;
  /** The tunnel's options as the configuration file holds them (update included when enabled). */
  options: Record<string, unknown>;
  lines: Line[];
  updateLines: Line[];
  /** Whether the [update] table is written live (a key file was named) or as a commented template. */
  updateEnabled: boolean;
  notes: Note[];
  secret?: ImportedSecret;
  from: SourceRef;
  declaration: string;
  /** The source's local IPv4, which this host does not hold (see EmitOptions.hostAddresses). */
  localNotHere?: Sourced<string>;
}

export interface EmitOptions {
  /** Where the update key goes (`--key-file`); the TOML names this file, never the key. */
  keyFile?: string;
  /**
   * The IPv4 addresses this host holds, when the import runs for this host (the CLI); without
   * them the conversion does not look at the host.
   */
  hostAddresses?: readonly string[];
}


/** The tun6in4 options for one draft; LAN addresses of the input may become its routed prefixes. */
export function emitTunnel(d: SitDraft, declaration: string, opts: EmitOptions): EmittedTunnel {
  const lines: Line[] = [];
  const options: Record<string, unknown> = {};
  const notes = [...d.notes];
  const set = (key: string, value: unknown, comment: string) => {
    options[key] = value;
    lines.push({ key, value, comment });
  };
  const comment = (text: string) => lines.push({ comment: text });

  const mode = d.mode ?? (d.remote ? '6in4' : d.sixrdPrefix ? '6rd' : '6to4');
  const why = d.mode ? `: proto '${d.mode}'` : d.remote ? `: sit with a remote (${d.remote.value})` : d.sixrdPrefix ? ': sit without a remote, with a 6rd prefix' : ': sit without a remote, no 6rd prefix';
  set('mode', mode, `${at(d.from)}${why}`);

  const localNotHere = d.local && opts.hostAddresses && !opts.hostAddresses.includes(d.local.value) ? d.local : undefined;
  if (localNotHere && mode === '6in4') {
    // 1:1 NAT (a cloud VM): the broker was told the public IPv4, the host holds a private one
    set('local', 'auto', `${at(localNotHere.from)} says ${localNotHere.value}, which this host does not hold (behind 1:1 NAT the broker knows the public IPv4): auto, the address this host uses toward the remote`);
  } else if (d.local) {
    set('local', d.local.value, at(d.local.from));
    if (localNotHere) notes.push({ from: localNotHere.from, text: `local ${localNotHere.value} is not an address of this host; ${mode} derives the site prefix from it, so it must be this host's public IPv4 (${mode} does not work behind NAT)` });
  } else set('local', 'auto', `${d.format === 'uci' ? 'no ipaddr' : 'no local address (or "any")'}: the address this host uses toward the ${mode === '6in4' ? 'remote' : 'relay'}, followed when it changes`);

  let address: string | undefined;
  if (mode === '6in4') {
    if (!d.remote) throw ImportError.at(d.from, `${d.dev}: a 6in4 tunnel needs the broker's IPv4 (the remote / peeraddr) and the input names none; add it`);
    set('remote', d.remote.value, `${at(d.remote.from)}: the broker's "Server IPv4 Address"`);
    const first = d.addresses[0];
    if (!first) throw ImportError.at(d.from, `${d.dev}: the input gives the tunnel no IPv6 address (the broker's "Client IPv6 Address", e.g. 2001:db8:1::2/64); add it to the input or write address by hand`);
    address = first.value;
    set('address', address, `${at(first.from)}: the "Client IPv6 Address", ours on the link`);
    const peer = peerOf(d, address, notes);
    const ours = parseIpv6Prefix(address)!.addr;
    if (peer && parseIpv6Prefix(`${peer.value}/128`)!.addr.equals(ours)) {
      throw ImportError.at(peer.from, `${d.dev}: the gateway ${peer.value} is the tunnel's own address (${at(first.from)}); the broker's end is the "Server IPv6 Address", usually ::1 of the link`);
    }
    if (peer) set('peer', peer.value, `${at(peer.from)}: the broker's end of the link ("Server IPv6 Address")`);
    else if (ours[15] === 1 && ours.subarray(8, 15).every((b) => b === 0)) {
      comment(`peer: not in the source; tun6in4 uses ::2 of the link, since the address is ::1`);
      notes.push({ from: first.from, text: `${address} is ::1 of the link, where brokers put their own end ("Server IPv6 Address"): check that it is the "Client IPv6 Address"` });
    } else comment(`peer: not in the source; tun6in4 uses ::1 of the link (${networkOf(address)}), where brokers put their end`);
  } else if (mode === '6to4') {
    const first = d.addresses[0];
    if (first) {
      address = first.value;
      set('address', address, at(first.from));
    }
  } else {
    const site = sitePrefixOf(d);
    const derived = site ? `${site.replace(/::\/\d+$/, '::1')}/${parseIpv6Prefix(d.sixrdPrefix!.value)!.len}` : '<delegated prefix>::1/<6rd prefix length>';
    for (const a of d.addresses) {
      const same = site && a.value === derived;
      notes.push({ from: a.from, text: `${a.value}: a 6rd CE's address is derived from the 6rd prefix and the local IPv4${same ? ', and tun6in4 derives the same' : `; tun6in4 will use ${derived}`}, so it is not written` });
    }
  }
  for (const a of d.addresses.slice(1)) {
    if (mode !== '6rd') notes.push({ from: a.from, text: `${a.value}: tun6in4 puts one IPv6 address on the tunnel; add this one with \`ip -6 addr add ${a.value} dev ${d.dev}\` once it is up` });
  }
  if (d.routed.length) set('routed', [...new Set(d.routed.map((r) => r.value))], d.routed.map((r) => `${at(r.from)}`).join(', ') + ': routed to us; tun6in4 routes it, takes no address from it');

  if (mode === '6to4' || mode === '6rd') {
    const relay = relayOf(d, mode, notes);
    if (mode === '6rd') {
      set('sixrdPrefix', d.sixrdPrefix!.value, `${at(d.sixrdPrefix!.from)}: the ISP's 6rd prefix`);
      if (d.ipv4MaskLen) set('ipv4MaskLen', d.ipv4MaskLen.value, `${at(d.ipv4MaskLen.from)}: IPv4 bits every CE of the domain shares`);
      if (!relay) throw ImportError.at(d.sixrdPrefix!.from, `${d.dev}: a 6rd CE needs its border relay's IPv4 and the input names none (a route via ::BR-IPv4, or peeraddr); add it`);
    }
    if (relay) set('relay', relay.value, `${at(relay.from)}: ${mode === '6rd' ? 'the border relay' : 'the 6to4 relay for non-6to4 destinations'}`);
  }

  if (d.mtu) {
    const max = d.encapDport ? FOU_MTU_MAX : MTU_MAX;
    if (d.mtu.value >= MTU_MIN && d.mtu.value <= max) set('mtu', d.mtu.value, at(d.mtu.from));
    else notes.push({ from: d.mtu.from, text: `mtu ${d.mtu.value}: tun6in4 takes ${MTU_MIN}..${max}; left at the default ${max}` });
  } else if (d.format === 'uci') {
    // netifd's 6in4.sh and 6rd.sh use 1280 when mtu is not set; the kernel's sit default is 1480.
    set('mtu', 1280, `no mtu in ${at(d.from)}: OpenWrt's default for proto ${mode}`);
  }
  if (d.pmtu) set('pmtu', d.pmtu.value, at(d.pmtu.from));
  if (d.ttl) set('ttl', d.ttl.value, at(d.ttl.from));
  else if (d.format !== 'uci') set('ttl', 'inherit', 'no ttl in the source: the kernel\'s sit then copies the inner hop limit');
  if (d.tos) set('tos', d.tos.value, at(d.tos.from));
  if (d.encapDport) {
    set('encap', 'fou', `${at(d.encapDport.from)}: encap fou`);
    set('encapDport', d.encapDport.value, `${at(d.encapDport.from)}: the peer's UDP port`);
    if (d.encapPort) set('encapPort', d.encapPort.value, `${at(d.encapPort.from)}: where this host's fou receiver listens`);
  }
  if (/^[a-zA-Z0-9_.-]{1,15}$/.test(d.dev)) set('dev', d.dev, `${at(d.from)}: the interface name`);
  else notes.push({ from: d.from, text: `interface name "${d.dev}" is not one tun6in4 can create (1..15 letters, digits, "-", "_", "."); tun6in4 picks tun6in4-N` });

  if (d.defaultRouteFlag) {
    if (!d.defaultRouteFlag.value) set('defaultRoute', false, at(d.defaultRouteFlag.from));
    else comment(`default route: ${at(d.defaultRouteFlag.from)}; tun6in4 routes the IPv6 default through the tunnel unless defaultRoute = false`);
  } else if (d.defaultRoute) {
    comment(`default route: ${at(d.defaultRoute.from)}; tun6in4 routes the IPv6 default through the tunnel unless defaultRoute = false`);
  } else {
    set('defaultRoute', false, `the source routes no IPv6 default through ${d.dev}`);
  }

  if (mode === '6to4') {
    const docs = [options.local, options.relay].filter((v): v is string => typeof v === 'string' && isDocumentationIpv4(v));
    if (docs.length) set('allowNonGlobal', true, `only because ${docs.join(' and ')} ${docs.length > 1 ? 'are' : 'is'} documentation space (RFC 5737), which 6to4 refuses: delete it with real addresses`);
  }

  const { lines: updateLines, enabled } = updateOf(d, opts, notes);
  if (enabled) options.update = Object.fromEntries(updateLines.filter((l) => l.key).map((l) => [l.key!, l.value]));
  return { name: d.name, options, lines, updateLines, updateEnabled: enabled, notes, secret: d.update.secret, from: d.from, declaration, localNotHere: mode === '6in4' ? localNotHere : undefined };
}

function peerOf(d: SitDraft, address: string, notes: Note[]) {
  const link = networkOf(address);
  const candidates = [d.peer, d.gateway, d.defaultRoute?.value ? { value: d.defaultRoute.value, from: d.defaultRoute.from } : undefined];
  for (const c of candidates) {
    if (!c) continue;
    if (ipv4OfCompatible(c.value)) {
      notes.push({ from: c.from, text: `gateway ${c.value}: the kernel's way of saying "the remote's IPv4"; tun6in4 sends everything to the remote anyway` });
      continue;
    }
    if (inPrefix(c.value, link)) return c;
    notes.push({ from: c.from, text: `gateway ${c.value} is outside the tunnel's link ${link}; tun6in4 uses ::1 of the link as the peer` });
  }
  return undefined;
}

function relayOf(d: SitDraft, mode: '6to4' | '6rd', notes: Note[]) {
  const via = [d.relay, d.defaultRoute?.value ? { value: d.defaultRoute.value, from: d.defaultRoute.from } : undefined, d.gateway];
  for (const c of via) {
    if (!c) continue;
    const v4 = c === d.relay ? c.value : ipv4OfCompatible(c.value);
    if (!v4) {
      notes.push({ from: c.from, text: `gateway ${c.value}: a ${mode} relay is named by its IPv4 (::a.b.c.d); not carried over` });
      continue;
    }
    if (mode === '6to4' && classifyIpv4(parseIpv4(v4)!) === '6to4-relay-anycast') {
      notes.push({ from: c.from, text: `relay ${v4}: the 192.88.99.0/24 anycast relay is deprecated (RFC 7526) and tun6in4 refuses it; add relay = "<the unicast IPv4 of a relay you trust>" (without one only other 6to4 sites are reached)` });
      return undefined;
    }
    return { value: v4, from: c.from };
  }
  return undefined;
}

function updateOf(d: SitDraft, opts: EmitOptions, notes: Note[]): { lines: Line[]; enabled: boolean } {
  const u = d.update;
  if (!u.tunnelId && !u.username && !u.secret) return { lines: [], enabled: false };
  const lines: Line[] = [];
  if (u.tunnelId) lines.push({ key: 'tunnelId', value: u.tunnelId.value, comment: at(u.tunnelId.from) });
  if (u.username) lines.push({ key: 'username', value: u.username.value, comment: at(u.username.from) });
  const complete = !!(u.tunnelId && u.username && u.secret);
  if (!complete) {
    const missing = [!u.tunnelId && 'tunnelid', !u.username && 'username', !u.secret && 'password or updatekey'].filter(Boolean).join(', ');
    notes.push({ from: (u.tunnelId ?? u.username)?.from ?? u.secret?.from, text: `broker update: the input lacks ${missing}; the update is written below as a comment to fill in` });
    lines.push({ key: 'keyFile', value: '/etc/tun6in4/' + d.name + '.key', comment: 'a file holding the update key (chmod 600)' });
    return { lines, enabled: false };
  }
  if (opts.keyFile) {
    lines.push({ key: 'keyFile', value: opts.keyFile, comment: `--key-file: the ${u.secret!.option} from ${at(u.secret!.from)} is written there (mode 0600), never here` });
    return { lines, enabled: true };
  }
  notes.push({
    from: u.secret!.from,
    text: `the ${u.secret!.option} is a secret and never goes into this file: re-run with --key-file /etc/tun6in4/${d.name}.key to write it there (mode 0600) and enable the update, or put it in a file yourself and uncomment the update below`,
  });
  lines.push({ key: 'keyFile', value: `/etc/tun6in4/${d.name}.key`, comment: 'holds the key; not written by this import' });
  return { lines, enabled: false };
}

/**
 * LAN addresses of the input: one inside a 6to4/6rd tunnel's prefix is that site's own; any other
 * is taken from a routed prefix, which goes to the input's only 6in4 tunnel (with several, the
 * input does not say which broker routes it).
 */
export function assignLanAddresses(drafts: SitDraft[], lan: LanAddress[], global: Note[]): void {
  const brokers = drafts.filter((d) => (d.mode ?? (d.remote ? '6in4' : '')) === '6in4');
  const sites = drafts.map(sitePrefixOf).filter((p): p is string => p !== null);
  for (const a of lan) {
    const net = networkOf(a.prefix);
    if (sites.some((p) => inPrefix(a.prefix, p))) {
      global.push({ from: a.from, text: `${a.prefix} on ${a.dev}: from a 6to4/6rd site prefix, which the tunnel derives; keep it in ${a.dev}'s own configuration` });
      continue;
    }
    if (drafts.some((d) => d.addresses.some((x) => inPrefix(a.prefix, networkOf(x.value))))) {
      global.push({ from: a.from, text: `${a.prefix} on ${a.dev}: inside a tunnel's own link prefix; not carried over` });
      continue;
    }
    if (brokers.length === 1) {
      const d = brokers[0];
      if (!d.routed.some((r) => r.value === net)) d.routed.push({ value: net, from: a.from });
      d.note(a.from, `${a.prefix} stays ${a.dev}'s address (keep it in ${a.dev}'s configuration); tun6in4 routes ${net}, taking no address from it`);
    } else {
      global.push({ from: a.from, text: `${a.prefix} on ${a.dev}: ${brokers.length ? 'several 6in4 tunnels, and the input does not say which routes it' : 'no 6in4 tunnel to route it'}; add routed = ["${net}"] to the tunnel that routes it` });
    }
  }
}

/**
 * The prefix a 6to4 site or 6rd CE derives from its IPv4 (2002:V4ADDR::/48, or the 6rd delegated
 * prefix); the whole 6rd prefix when the local address is not known; null for 6in4.
 */
export function sitePrefixOf(d: SitDraft): string | null {
  const mode = d.mode ?? (d.remote ? '6in4' : d.sixrdPrefix ? '6rd' : '6to4');
  if (mode === '6in4') return null;
  let domain: SixRdDomain = SIX_TO_FOUR;
  if (mode === '6rd') {
    if (!d.sixrdPrefix) return null;
    const p = parseIpv6Prefix(d.sixrdPrefix.value)!;
    domain = { prefix: p.addr, prefixLen: p.len, v4MaskLen: d.ipv4MaskLen?.value ?? 0 };
    if (!d.local || delegatedPrefixLength(domain) > 128) return d.sixrdPrefix.value;
  } else if (!d.local) return '2002::/16';
  const out = Buffer.alloc(16);
  embedIpv4(domain, parseIpv4(d.local!.value)!, out, 0);
  return `${formatIpv6(out)}/${delegatedPrefixLength(domain)}`;
}

// --- TOML ---

/**
 * A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL escaped. Every
 * string written is checked text (addresses, names through nameAt, keyFile), so none holds half
 * a surrogate pair, which neither format can carry.
 */
function tomlValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v).replace(/\x7f/g, '\\u007f');
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  return String(v);
}

const COMMENT_COLUMN = 34;

/**
 * The one way text gets into a `#` comment: comments quote the input (its lines, names, file
 * names), and a newline there would end the comment and make the rest live TOML.
 */
const commentLine = (text: string) => `# ${escapeText(text)}`.trimEnd();

function renderLines(lines: Line[], prefix = ''): string[] {
  return lines.map((l) => {
    if (l.key === undefined) return commentLine(l.comment);
    const kv = `${prefix}${l.key} = ${tomlValue(l.value)}`;
    return `${kv.padEnd(COMMENT_COLUMN)} ${commentLine(l.comment)}`;
  });
}

function renderNotes(notes: Note[], heading: string): string[] {
  if (!notes.length) return [];
  return [commentLine(heading), ...notes.map((n) => commentLine(`  ${n.from ? `${at(n.from)}: ` : ''}${n.text}`))];
}

export function renderToml(header: string[], tunnels: EmittedTunnel[], globalNotes: Note[]): string {
  const out: string[] = header.map(commentLine);
  if (globalNotes.length) out.push('', ...renderNotes(globalNotes, 'Lines that concern no tunnel, and why they are not carried over:'));
  for (const t of tunnels) {
    out.push('', commentLine(`${t.name}: ${at(t.from)}  ${t.declaration}`), `[tunnels.${t.name}]`, ...renderLines(t.lines));
    if (t.updateLines.length) {
      if (t.updateEnabled) out.push('', commentLine('Tell the broker our IPv4 at start and whenever it changes.'), `[tunnels.${t.name}.update]`, ...renderLines(t.updateLines));
      else out.push('', commentLine('The broker update, to enable by hand (see below):'), commentLine(`[tunnels.${t.name}.update]`), ...renderLines(t.updateLines, '# '));
    }
    const notes = renderNotes(t.notes, `About ${t.name}: what is not carried over, and why:`);
    if (notes.length) out.push('', ...notes);
  }
  return `${out.join('\n')}\n`;
}
