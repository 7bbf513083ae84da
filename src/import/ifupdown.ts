/**
 * ifupdown's /etc/network/interfaces (interfaces(5)): `iface NAME inet6 v4tunnel` with address,
 * netmask, endpoint, local, ttl, gateway, mtu; `iface NAME inet6 6to4` with local; and
 * ifupdown-ng's `iface NAME` + `use tunnel` + `tunnel-mode sit` (tunnel-remote, tunnel-local,
 * tunnel-ttl). IPv6 addresses of other stanzas are the LAN's (a routed prefix shows there).
 */
import {
  ImportError,
  inPrefix,
  integerAt,
  ipv4At,
  ipv6At,
  ipv6PrefixAt,
  isDefaultDestination,
  joinedLines,
  nameAt,
  networkOf,
  SitDraft,
  ttlAt,
  tunnelNameOf,
  type Sourced,
  type SourceRef,
} from './draft.js';
import { routeAddedBy, type ParsedInput } from './shell.js';

interface Stanza {
  name: string;
  family?: string;
  method?: string;
  from: SourceRef;
  options: Array<{ key: string; value: string; from: SourceRef }>;
}

const STANZA_WORDS = new Set(['auto', 'mapping', 'source', 'source-directory', 'rename', 'template']);

const HOOKS = new Set(['up', 'down', 'pre-up', 'post-up', 'pre-down', 'post-down']);
const TUNNEL_KEYS = new Set([
  'address', 'netmask', 'endpoint', 'local', 'gateway', 'ttl', 'mtu', 'preferred-lifetime', 'metric', 'dad-attempts', 'dad-interval',
  'use', 'requires', 'tunnel-mode', 'tunnel-remote', 'tunnel-endpoint', 'tunnel-local', 'tunnel-ttl', 'tunnel-dev', 'tunnel-tos', 'description',
]);

export function parseIfupdown(file: string, text: string, into: ParsedInput): void {
  const stanzas: Stanza[] = [];
  let current: Stanza | null = null;
  for (const joined of joinedLines(text)) {
    const from = { file, line: joined.line };
    const line = joined.text.trim();
    if (!line || line.startsWith('#')) continue;
    const [word, ...rest] = line.split(/\s+/);
    if (word === 'iface') {
      const [name, family, method] = rest;
      if (!name) throw ImportError.at(from, 'iface without a name; add one');
      nameAt(name, from, 'iface');
      current = { name, family, method, from, options: [] };
      stanzas.push(current);
    } else if (STANZA_WORDS.has(word) || word.startsWith('allow-')) {
      current = null;
      if (word === 'source' || word === 'source-directory') into.notes.push({ from, text: `${line}: other files are not read; import them too` });
    } else {
      if (!current) throw ImportError.at(from, `"${word}" outside an iface stanza: not understood; put it under its iface`);
      current.options.push({ key: word, value: rest.join(' '), from });
    }
  }

  for (const s of stanzas) {
    const opt = (k: string) => s.options.filter((o) => o.key === k).pop();
    const isV4tunnel = s.family === 'inet6' && s.method === 'v4tunnel';
    const is6to4 = s.family === 'inet6' && s.method === '6to4';
    const ngMode = opt('tunnel-mode');
    const isNg = !s.family && (s.options.some((o) => o.key === 'use' && o.value === 'tunnel') || ngMode !== undefined);
    if (isNg && ngMode?.value !== 'sit') throw ImportError.at(ngMode?.from ?? s.from, `${s.name}: tunnel-mode ${ngMode?.value ?? '(none)'} is not sit; tun6in4 imports sit tunnels (6in4, 6to4, 6rd)`);
    if (!isV4tunnel && !is6to4 && !isNg) {
      if (s.family === 'inet6' && s.method === 'tunnel') throw ImportError.at(s.from, `${s.name}: inet6 tunnel is ifupdown's IPv6-in-IPv6 / GRE method, not sit; tun6in4 imports v4tunnel and 6to4`);
      lanAddresses(s, into);
      continue;
    }
    const d = new SitDraft(s.name, tunnelNameOf(s.name), s.from, 'ifupdown');
    for (const o of s.options) {
      // hooks are read below, once the tunnel's address is known
      if (!HOOKS.has(o.key) && !TUNNEL_KEYS.has(o.key)) throw ImportError.at(o.from, `${o.key}: not an option of ${isNg ? 'an ifupdown-ng sit tunnel' : `inet6 ${s.method}`} that tun6in4 import understands; remove the line or write that part by hand`);
    }
    const remote = opt('endpoint') ?? opt('tunnel-remote') ?? opt('tunnel-endpoint');
    if (remote && remote.value !== 'any') d.remote = { value: ipv4At(remote.value, remote.from, remote.key), from: remote.from };
    if (is6to4 && !opt('local')) throw ImportError.at(s.from, `${s.name}: inet6 6to4 needs "local" (the public IPv4); add it`);
    const local = opt('local') ?? opt('tunnel-local');
    if (local && local.value !== 'any') d.local = { value: ipv4At(local.value, local.from, local.key), from: local.from };
    const ttl = opt('ttl') ?? opt('tunnel-ttl');
    if (ttl) d.ttl = { value: ttlAt(ttl.value, ttl.from), from: ttl.from };
    const mtu = opt('mtu');
    if (mtu) d.mtu = { value: integerAt(mtu.value, mtu.from, 'mtu', 68, 65535), from: mtu.from };
    const dev = opt('tunnel-dev');
    if (dev) d.note(dev.from, `tunnel-dev ${dev.value}: tun6in4 sends by the routing table, not bound to one interface`);
    const tos = opt('tunnel-tos');
    if (tos) d.note(tos.from, `tunnel-tos ${tos.value}: add tos by hand if you need it`);
    for (const a of s.options.filter((o) => o.key === 'address')) d.addresses.push({ value: addressWithMask(a, opt('netmask')), from: a.from });
    if (is6to4) {
      // ifupdown's 6to4 method adds 2002:V4ADDR::1/16 and routes 2000::/3 via the anycast relay
      // (its `ip -6 route add 2000::/3 via ::192.88.99.1`).
      d.defaultRoute = { value: '::192.88.99.1', from: s.from };
      d.note(s.from, 'inet6 6to4: ifupdown adds 2002:V4ADDR::1/16, which is tun6in4\'s 6to4 default address too');
    }
    const gw = opt('gateway');
    if (gw) {
      ipv6At(gw.value, gw.from, 'gateway');
      d.gateway = { value: gw.value, from: gw.from };
      d.defaultRoute = { value: gw.value, from: gw.from };
    }
    for (const o of s.options.filter((x) => HOOKS.has(x.key))) {
      const route = defaultRouteHook(o, d);
      if (route) {
        d.defaultRoute ??= route;
        if (!/\b(default|::\/0)\b/.test(o.value)) d.note(o.from, `${o.key} ${o.value}: tun6in4 routes the whole IPv6 default (::/0) through the tunnel`);
      }
      else d.note(o.from, `${o.key} ${o.value}: runs a command; tun6in4 does not (run it yourself once the tunnel is up)`);
    }
    into.drafts.push(d);
  }
}

/**
 * An `up` hook that routes the IPv6 default through this tunnel (`ip -6 route add default dev
 * he-ipv6`, `dev $IFACE`, or via a gateway on the tunnel's link): the hook a v4tunnel stanza needs
 * for a default route, and what tun6in4's own default route does, so it is carried, not noted.
 */
function defaultRouteHook(o: { key: string; value: string; from: SourceRef }, d: SitDraft): Sourced<string | null> | null {
  if (o.key !== 'up' && o.key !== 'post-up') return null;
  const r = routeAddedBy(o.value);
  if (!r || !r.ipv6 || !isDefaultDestination(r.dest) || (r.table !== undefined && r.table !== 'main' && r.table !== '254')) return null;
  const gw = r.gw !== undefined && r.gw !== '::' ? r.gw : null;
  const viaOurLink = gw !== null && d.addresses.some((a) => inPrefix(gw, networkOf(a.value)));
  const throughUs = r.dev === undefined ? viaOurLink : r.dev === d.dev || r.dev === '$IFACE' || r.dev === '${IFACE}';
  if (!throughUs) return null;
  if (gw !== null) ipv6At(gw, o.from, `${o.key}: via`);
  return { value: gw, from: o.from };
}

function addressWithMask(a: { value: string; from: SourceRef }, netmask?: { value: string; from: SourceRef }): string {
  if (a.value.includes('/')) return ipv6PrefixAt(a.value, a.from, 'address');
  if (!netmask) throw ImportError.at(a.from, `address ${a.value} without /len or a netmask line; add "netmask 64" (or write ${a.value}/64)`);
  return ipv6PrefixAt(`${a.value}/${netmask.value}`, netmask.from, 'address/netmask');
}

function lanAddresses(s: Stanza, into: ParsedInput): void {
  const netmask = s.options.filter((o) => o.key === 'netmask').pop();
  for (const a of s.options.filter((o) => o.key === 'address' && o.value.includes(':'))) {
    into.lan.push({ prefix: addressWithMask(a, s.family === 'inet6' ? netmask : undefined), dev: s.name, from: a.from });
  }
}
