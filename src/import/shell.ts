/**
 * A tunnel broker's shell block: iproute2 (`ip tunnel add … mode sit …`, `ip link add … type sit`,
 * `ip tunnel 6rd …`, `ip link set`, `ip addr add`, `ip -6 route add`) and the net-tools variant
 * (`ifconfig sit0 tunnel ::REMOTE` creating sit1, `ifconfig sit1 inet6 add`, `route -A inet6 add`).
 */
import {
  ImportError,
  integerAt,
  ipv4At,
  ipv4PrefixLengthAt,
  ipv6At,
  ipv6PrefixAt,
  isDefaultDestination,
  joinedLines,
  nameAt,
  SitDraft,
  tosAt,
  ttlAt,
  tunnelNameOf,
  type LanAddress,
  type Note,
  type Sourced,
  type SourceRef,
} from './draft.js';

export interface ParsedInput {
  drafts: SitDraft[];
  lan: LanAddress[];
  notes: Note[];
  /** Foo-over-UDP receive ports for protocol 41 (`ip fou add port P ipproto 41`, networkd Kind=fou). */
  fouPorts: Array<Sourced<number>>;
}

/** Splits one command line into words (quotes removed; no expansion). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** iproute2 takes any unambiguous prefix of an object or command: `ip a a`, `ip ro add`. */
function isAbbrev(word: string | undefined, full: string, min = 1): boolean {
  return word !== undefined && word.length >= min && full.startsWith(word);
}

/**
 * The route one command line adds, read as this reader reads a broker block: `ip [-6] route
 * add|replace DEST [via GW] [dev DEV] [table T]` (with sudo, a path to ip, abbreviations) or
 * `route -A inet6 add DEST [gw GW] [dev DEV]`; null for any other command. ifupdown's `up`
 * hooks are such lines. `ipv6` is false for ip's `default` without -6 or an IPv6 gateway.
 */
export function routeAddedBy(command: string): { dest: string; gw?: string; dev?: string; table?: string; ipv6: boolean } | null {
  let w = words(command.replace(/(^|\s)#.*$/, '').trim().replace(/^\$\s+/, ''));
  while (w[0] === 'sudo' || w[0] === 'doas' || w[0] === 'exec') w = w.slice(1);
  const after = (args: string[], key: string) => (args.includes(key) ? args[args.indexOf(key) + 1] : undefined);
  const cmd = w[0]?.replace(/^.*\//, '');
  if (cmd === 'route') {
    const fam = w.indexOf('-A');
    const args = w.slice(1).filter((_, j) => j + 1 !== fam && j + 1 !== fam + 1);
    if (fam < 0 || w[fam + 1] !== 'inet6' || args[0] !== 'add' || !args[1]) return null;
    return { dest: args[1], gw: after(args, 'gw'), dev: after(args, 'dev'), ipv6: true };
  }
  if (cmd !== 'ip') return null;
  const { args: a, inet6 } = ipGlobalOptions(w.slice(1));
  const [object, verb, ...rest] = a;
  if (!(isAbbrev(object, 'route') || object === 'ro') || !(isAbbrev(verb, 'add') || isAbbrev(verb, 'replace')) || !rest[0]) return null;
  const gw = after(rest, 'via');
  return { dest: rest[0], gw, dev: after(rest, 'dev'), table: after(rest, 'table'), ipv6: inet6 || rest[0].includes(':') || !!gw?.includes(':') };
}

export function parseShell(file: string, text: string, into: ParsedInput): void {
  const tunnels = new Map<string, SitDraft>(into.drafts.filter((d) => d.format === 'shell').map((d) => [d.dev, d]));
  let sitCount = 0;
  for (const joined of joinedLines(text)) {
    const from: SourceRef = { file, line: joined.line };
    const line = joined.text.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    let w = words(line.replace(/^\$\s+/, ''));
    while (w[0] === 'sudo' || w[0] === 'doas' || w[0] === 'exec') w = w.slice(1);
    if (/\/(ip|ifconfig|route|modprobe)$/.test(w[0] ?? '')) w[0] = w[0].replace(/^.*\//, '');
    const cmd = w[0];
    const note = (text: string) => into.notes.push({ from, text });
    const tunnel = (dev: string, declare = false): SitDraft | undefined => {
      nameAt(dev, from, 'interface name');
      let t = tunnels.get(dev);
      if (!t && declare) {
        t = new SitDraft(dev, tunnelNameOf(dev), from, 'shell');
        tunnels.set(dev, t);
        into.drafts.push(t);
      }
      return t;
    };
    const fail = (detail: string): never => {
      throw ImportError.at(from, detail);
    };

    if (cmd === 'modprobe') {
      note(`${line}: tun6in4 needs no kernel module`);
    } else if (cmd === 'sysctl') {
      note(`${line}: tun6in4 changes no sysctl; keep it in /etc/sysctl.d if you need it`);
    } else if (cmd === 'ip') {
      parseIp(w.slice(1), from, line, { tunnel, fail, note, lan: into.lan, fouPorts: into.fouPorts });
    } else if (cmd === 'ifconfig') {
      const [dev, ...rest] = w.slice(1);
      if (!dev) fail('ifconfig without an interface; name one');
      const isSit0 = dev === 'sit0';
      let k = 0;
      while (k < rest.length) {
        const word = rest[k];
        if (word === 'up' || word === 'down') {
          if (isSit0 || !tunnel(dev)) note(`${line}: sets ${dev} ${word}; tun6in4 brings its interface up itself`);
          k++;
        } else if (word === 'inet6') {
          k++;
        } else if (word === 'tunnel') {
          if (!isSit0) fail(`ifconfig ${dev} tunnel: only sit0 creates tunnels this way; use sit0`);
          const remote = rest[k + 1] ?? fail('ifconfig sit0 tunnel needs ::REMOTE-IPv4');
          const v4 = /^::(\d+\.\d+\.\d+\.\d+)$/.exec(remote)?.[1] ?? fail(`ifconfig sit0 tunnel: "${remote}" is not ::a.b.c.d (the remote's IPv4); correct it`);
          // Each `ifconfig sit0 tunnel` makes the next sitN with that remote and any local address.
          const t = tunnel(`sit${++sitCount}`, true)!;
          t.remote = { value: ipv4At(v4, from, 'tunnel'), from };
          k += 2;
        } else if (word === 'add') {
          const a = rest[k + 1] ?? fail('ifconfig … inet6 add needs an address/len');
          const t = tunnel(dev);
          if (t) t.addresses.push({ value: ipv6PrefixAt(a, from, 'inet6 add'), from });
          else if (a.includes(':')) into.lan.push({ prefix: ipv6PrefixAt(a, from, 'inet6 add'), dev, from });
          k += 2;
        } else if (word === 'mtu') {
          const t = tunnel(dev);
          if (t) t.mtu = { value: integerAt(rest[k + 1] ?? '', from, 'mtu', 68, 65535), from };
          else note(`${line}: not a tunnel's MTU`);
          k += 2;
        } else {
          fail(`ifconfig: "${word}" is not something tun6in4 import understands here; remove it or write the tunnel by hand`);
        }
      }
    } else if (cmd === 'route') {
      // route -A inet6 add DEST [gw GW] dev DEV
      const r = w.slice(1);
      const fam = r.indexOf('-A');
      if (fam < 0 || r[fam + 1] !== 'inet6') {
        note(`${line}: an IPv4 route; tun6in4 needs none`);
        continue;
      }
      const args = r.filter((_, j) => j !== fam && j !== fam + 1);
      if (args[0] !== 'add') fail(`route -A inet6 ${args[0] ?? ''}: only "add" is understood; remove the line`);
      const dest = args[1] ?? fail('route -A inet6 add needs a destination');
      const gw = args.includes('gw') ? args[args.indexOf('gw') + 1] : undefined;
      const dev = args.includes('dev') ? args[args.indexOf('dev') + 1] : undefined;
      routeTo(dest, gw, dev, from, line, { tunnel, fail, note, lan: into.lan, fouPorts: into.fouPorts });
    } else {
      fail(`"${cmd}" is not a command tun6in4 import understands (ip, ifconfig, route, modprobe); remove the line or write that part by hand`);
    }
  }
}

interface Ctx {
  tunnel: (dev: string, declare?: boolean) => SitDraft | undefined;
  fail: (detail: string) => never;
  note: (text: string) => void;
  lan: LanAddress[];
  fouPorts: Array<Sourced<number>>;
}

/** `ip`'s global options (-6, -4, -f inet6, -family inet6) taken off the front of its arguments. */
function ipGlobalOptions(argv: string[]): { args: string[]; inet6: boolean } {
  let a = argv;
  let inet6 = false;
  while (a[0]?.startsWith('-')) {
    if (a[0] === '-6') inet6 = true;
    if (a[0] === '-f' || a[0] === '-family') {
      inet6 ||= a[1] === 'inet6';
      a = a.slice(2);
    } else a = a.slice(1);
  }
  return { args: a, inet6 };
}

function parseIp(argv: string[], from: SourceRef, line: string, c: Ctx): void {
  const { args: a, inet6 } = ipGlobalOptions(argv);
  const [object, command, ...rest] = a;
  if (isAbbrev(object, 'tunnel') || object === 'tunl') {
    if (command === '6rd') return ipTunnel6rd(rest, from, c);
    if (isAbbrev(command, 'add') || isAbbrev(command, 'change')) return sitAttributes(rest, from, c, 'ip tunnel');
    if (isAbbrev(command, 'del')) return c.note(`${line}: tun6in4 removes its interface itself`);
    return c.fail(`ip tunnel ${command ?? ''}: only add, change and 6rd are understood; remove the line`);
  }
  if (isAbbrev(object, 'link')) {
    if (isAbbrev(command, 'add')) {
      const t = rest.indexOf('type');
      if (t < 0 || rest[t + 1] !== 'sit') return c.fail(`ip link add: not a sit tunnel (type ${rest[t + 1] ?? 'missing'}); tun6in4 imports sit tunnels (6in4, 6to4, 6rd)`);
      return sitAttributes(rest.filter((_, j) => j !== t && j !== t + 1), from, c, 'ip link add');
    }
    if (isAbbrev(command, 'set')) {
      const args = rest[0] === 'dev' ? rest.slice(1) : rest;
      const dev = args[0] ?? c.fail('ip link set needs an interface');
      const t = c.tunnel(dev);
      for (let k = 1; k < args.length; k++) {
        if (args[k] === 'up' || args[k] === 'down') continue;
        if (args[k] === 'mtu' && t) t.mtu = { value: integerAt(args[++k] ?? '', from, 'mtu', 68, 65535), from };
        else if (args[k] === 'mtu') k++;
        else c.fail(`ip link set ${dev} ${args[k]}: not understood; tun6in4 import knows up, down and mtu here`);
      }
      if (!t) c.note(`${line}: not a tunnel`);
      return;
    }
    if (isAbbrev(command, 'del')) return c.note(`${line}: tun6in4 removes its interface itself`);
    return c.fail(`ip link ${command ?? ''}: not understood; remove the line`);
  }
  if (isAbbrev(object, 'address') || object === 'addr') {
    if (command === undefined || isAbbrev(command, 'show') || isAbbrev(command, 'list')) return c.note(`${line}: shows addresses; nothing to carry over`);
    if (!isAbbrev(command, 'add')) return c.fail(`ip addr ${command}: only add is understood; remove the line`);
    const addr = rest[0] ?? c.fail('ip addr add needs an address');
    const dev = rest.includes('dev') ? rest[rest.indexOf('dev') + 1] : c.fail('ip addr add: no "dev"; name the interface');
    const t = c.tunnel(dev);
    if (!addr.includes(':')) return c.note(`${line}: an IPv4 address of ${dev}; tun6in4 needs none`);
    // without a length the kernel takes /128, on which no peer can be reached
    if (!addr.includes('/')) return c.fail(`ip addr add ${addr}: no prefix length (the kernel would take /128); write it as the broker gives it, e.g. ${addr}/64`);
    const prefix = ipv6PrefixAt(addr, from, 'ip addr add');
    if (t) t.addresses.push({ value: prefix, from });
    else c.lan.push({ prefix, dev, from });
    return;
  }
  if (object === 'fou') {
    if (!isAbbrev(command, 'add')) return c.note(`${line}: tun6in4 binds its own UDP port`);
    const port = rest.includes('port') ? rest[rest.indexOf('port') + 1] : c.fail('ip fou add: no "port"; add it');
    if (rest.includes('gue')) return c.fail('ip fou add … gue: tun6in4 speaks plain Foo-over-UDP, not GUE; use ipproto 41');
    const proto = rest.includes('ipproto') ? rest[rest.indexOf('ipproto') + 1] : undefined;
    if (proto !== '41' && proto !== 'ipv6') return c.note(`${line}: a Foo-over-UDP receiver for IP protocol ${proto ?? '(none)'}, not 41; not for a sit tunnel`);
    c.fouPorts.push({ value: integerAt(port, from, 'port', 1, 65535), from });
    return;
  }
  if (isAbbrev(object, 'route') || object === 'ro') {
    if (command === undefined || isAbbrev(command, 'show') || isAbbrev(command, 'list')) return c.note(`${line}: shows routes; nothing to carry over`);
    if (!isAbbrev(command, 'add') && !isAbbrev(command, 'replace')) return c.fail(`ip route ${command}: only add and replace are understood; remove the line`);
    const dest = rest[0] ?? c.fail('ip route add needs a destination');
    const gw = rest.includes('via') ? rest[rest.indexOf('via') + 1] : undefined;
    const dev = rest.includes('dev') ? rest[rest.indexOf('dev') + 1] : undefined;
    // `default` without -6 is the IPv4 default (iproute2 infers the family from addresses only)
    if (dest === 'default' && !inet6 && !gw?.includes(':')) return c.note(`${line}: an IPv4 default route (no -6); tun6in4 carries IPv6 only`);
    return routeTo(dest, gw, dev, from, line, c);
  }
  return c.fail(`ip ${object ?? ''}: not understood (tun6in4 import knows ip tunnel, link, addr, route, fou); remove the line`);
}

/** `NAME mode sit remote R local L ttl T tos X dev D [no]pmtudisc encap fou encap-dport P …` */
function sitAttributes(args: string[], from: SourceRef, c: Ctx, what: string): void {
  let name: string | undefined;
  const attrs: Record<string, string> = {};
  const flags: string[] = [];
  const withValue = new Set(['mode', 'remote', 'local', 'ttl', 'hoplimit', 'tos', 'tclass', 'dsfield', 'dev', 'name', 'encap', 'encap-dport', 'encap-sport', '6rd-prefix', '6rd-relay_prefix', 'ikey', 'okey', 'key']);
  for (let k = 0; k < args.length; k++) {
    const word = args[k];
    if (withValue.has(word)) {
      attrs[word === 'hoplimit' ? 'ttl' : word === 'tclass' || word === 'dsfield' ? 'tos' : word] = args[++k] ?? c.fail(`${what}: "${word}" needs a value`);
    } else if (['pmtudisc', 'nopmtudisc', 'encap-csum', 'noencap-csum', 'encap-udp6-csum', 'noencap-udp6-csum', 'encap-remcsum', 'noencap-remcsum'].includes(word)) {
      flags.push(word);
    } else if (name === undefined) {
      name = word;
    } else {
      c.fail(`${what}: "${word}" is not understood; tun6in4 import knows mode, remote, local, ttl, tos, dev, pmtudisc and encap fou`);
    }
  }
  name = attrs.name ?? name ?? c.fail(`${what}: no interface name; add one`);
  if (attrs.mode !== undefined && attrs.mode !== 'sit' && attrs.mode !== 'ipv6/ipv4') c.fail(`${what}: mode ${attrs.mode} is not sit; tun6in4 imports sit tunnels (6in4, 6to4, 6rd)`);
  if (attrs.mode === undefined && what === 'ip tunnel') c.fail(`${what} ${name}: no "mode sit"; add it (tun6in4 imports sit tunnels)`);
  const t = c.tunnel(name, true)!;
  if (attrs.remote !== undefined && attrs.remote !== 'any') t.remote = { value: ipv4At(attrs.remote, from, 'remote'), from };
  if (attrs.local !== undefined && attrs.local !== 'any') t.local = { value: ipv4At(attrs.local, from, 'local'), from };
  if (attrs.ttl !== undefined) t.ttl = { value: ttlAt(attrs.ttl, from), from };
  if (attrs.tos !== undefined) t.tos = { value: tosAt(attrs.tos, from), from };
  if (flags.includes('nopmtudisc')) t.pmtu = { value: 'static', from };
  if (flags.includes('pmtudisc')) t.pmtu = { value: 'dynamic', from };
  if (attrs.dev !== undefined) t.note(from, `dev ${attrs.dev}: tun6in4 sends by the routing table, not bound to one interface`);
  if (attrs['6rd-prefix']) t.sixrdPrefix = { value: ipv6PrefixAt(attrs['6rd-prefix'], from, '6rd-prefix'), from };
  if (attrs['6rd-relay_prefix']) t.ipv4MaskLen = { value: ipv4PrefixLengthAt(attrs['6rd-relay_prefix'], from, '6rd-relay_prefix'), from };
  if (attrs.encap !== undefined) {
    if (attrs.encap !== 'fou') c.fail(`${what}: encap ${attrs.encap}: tun6in4 carries only fou (Foo-over-UDP); use encap fou`);
    t.encapDport = { value: integerAt(attrs['encap-dport'] ?? '', from, 'encap-dport', 1, 65535), from };
    if (attrs['encap-sport'] !== undefined && attrs['encap-sport'] !== 'auto') t.note(from, `encap-sport ${attrs['encap-sport']}: tun6in4 sends from its encapPort (default: the destination port)`);
    if (flags.includes('encap-csum')) t.note(from, 'encap-csum: add encapCsum = true by hand if the peer needs UDP checksums');
  }
  for (const k of ['ikey', 'okey', 'key']) if (attrs[k] !== undefined) c.fail(`${what}: ${k} is for GRE, not sit; remove it`);
}

/** `ip tunnel 6rd dev NAME 6rd-prefix P/len [6rd-relay_prefix V4/len]` */
function ipTunnel6rd(args: string[], from: SourceRef, c: Ctx): void {
  const at = (k: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : undefined);
  const dev = at('dev') ?? c.fail('ip tunnel 6rd: no "dev"; name the tunnel');
  const t = c.tunnel(dev) ?? c.fail(`ip tunnel 6rd dev ${dev}: no tunnel ${dev} was added before this line; add it first`);
  const prefix = at('6rd-prefix');
  if (prefix) t.sixrdPrefix = { value: ipv6PrefixAt(prefix, from, '6rd-prefix'), from };
  const relayPrefix = at('6rd-relay_prefix');
  if (relayPrefix) t.ipv4MaskLen = { value: ipv4PrefixLengthAt(relayPrefix, from, '6rd-relay_prefix'), from };
  if (!prefix && !relayPrefix) c.fail('ip tunnel 6rd: neither 6rd-prefix nor 6rd-relay_prefix; add them');
}

/** A route: the default through a tunnel (its gateway is the peer, or ::RELAY-IPv4), or something else. */
function routeTo(dest: string, gw: string | undefined, dev: string | undefined, from: SourceRef, line: string, c: Ctx): void {
  const t = dev ? c.tunnel(dev) : undefined;
  if (gw !== undefined && gw !== '::') ipv6At(gw, from, 'gateway');
  if (!t) return c.note(`${line}: not through a tunnel${dev ? '' : ' (no dev)'}; tun6in4 does not carry it`);
  if (isDefaultDestination(dest)) {
    t.defaultRoute = { value: gw && gw !== '::' ? gw : null, from };
    if (dest !== 'default' && dest !== '::/0') t.note(from, `${dest}: tun6in4 routes the whole IPv6 default (::/0) through the tunnel`);
    return;
  }
  ipv6PrefixAt(dest, from, 'route');
  t.note(from, `${line}: tun6in4 routes only the default and the routed prefixes; add this route yourself once the tunnel is up`);
}
