/**
 * netplan YAML (netplan(5) "Properties for device type tunnels"): `network: tunnels: NAME:` with
 * `mode: sit`, `remote`, `local`, `addresses`, `routes` (`to`/`via`), the older `gateway6`,
 * `ttl`, `mtu`; IPv6 addresses of ethernets, bridges, vlans and bonds are the LAN's.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type YAMLMap } from 'yaml';
import { ImportError, integerAt, ipv4At, ipv6At, ipv6PrefixAt, isDefaultDestination, nameAt, SitDraft, ttlAt, tunnelNameOf, type SourceRef } from './draft.js';
import type { ParsedInput } from './shell.js';

const TUNNEL_KEYS = new Set(['mode', 'remote', 'local', 'addresses', 'routes', 'gateway6', 'ttl', 'mtu', 'dhcp4', 'dhcp6', 'accept-ra', 'link-local', 'optional', 'renderer', 'critical', 'ipv6-privacy']);
const ROUTE_KEYS = new Set(['to', 'via', 'metric', 'on-link', 'table', 'scope', 'from', 'type']);
const LAN_KINDS = ['ethernets', 'bridges', 'vlans', 'bonds', 'wifis', 'dummy-devices', 'virtual-ethernets'];

export function parseNetplan(file: string, text: string, into: ParsedInput): void {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new ImportError(file, e.linePos?.[0].line ?? 1, `not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const where = (n: YamlNode | null | undefined): SourceRef => ({ file, line: n?.range ? lc.linePos(n.range[0]).line : 1 });
  const fail = (n: YamlNode | null | undefined, detail: string): never => {
    throw ImportError.at(where(n), detail);
  };
  const root = doc.contents;
  if (!isMap(root)) return fail(root, 'netplan YAML starts with "network:"');
  const network = root.get('network', true);
  if (!isMap(network)) return fail(root, 'no "network:" mapping; this is not netplan YAML');
  const str = (n: unknown, what: string): string => {
    if (!isScalar(n) || (typeof n.value !== 'string' && typeof n.value !== 'number')) return fail(n as YamlNode, `${what}: expected a single value`);
    return String(n.value);
  };
  const list = (n: unknown, what: string): YamlNode[] => {
    if (!isSeq(n)) return fail(n as YamlNode, `${what}: expected a list`);
    return n.items as YamlNode[];
  };

  for (const kind of LAN_KINDS) {
    const devs = network.get(kind, true);
    if (!isMap(devs)) continue;
    for (const pair of devs.items) {
      const dev = nameAt(str(pair.key, kind), where(pair.key as YamlNode), `${kind}: the name`);
      const addrs = isMap(pair.value) ? pair.value.get('addresses', true) : undefined;
      if (!addrs) continue;
      for (const a of list(addrs, `${dev}: addresses`)) {
        const v = str(a, `${dev}: addresses`);
        if (v.includes(':')) into.lan.push({ prefix: ipv6PrefixAt(v, where(a), 'addresses'), dev, from: where(a) });
      }
    }
  }

  const tunnels = network.get('tunnels', true);
  if (tunnels === undefined) return;
  if (!isMap(tunnels)) return fail(tunnels as YamlNode, 'tunnels: expected a mapping of tunnel names');
  for (const pair of tunnels.items) {
    const name = nameAt(str(pair.key, 'tunnels'), where(pair.key as YamlNode), 'tunnels: the name');
    const t = pair.value as YAMLMap;
    if (!isMap(t)) fail(pair.key as YamlNode, `${name}: expected a mapping of tunnel settings`);
    const get = (k: string) => t.get(k, true) as YamlNode | undefined;
    const mode = get('mode');
    if (!mode || str(mode, 'mode') !== 'sit') fail(mode ?? (pair.key as YamlNode), `${name}: mode ${mode ? str(mode, 'mode') : '(none)'} is not sit; tun6in4 imports sit tunnels (6in4, 6to4, 6rd)`);
    const d = new SitDraft(name, tunnelNameOf(name), where(pair.key as YamlNode), 'netplan');
    for (const p of t.items) {
      const k = str(p.key, name);
      if (!TUNNEL_KEYS.has(k)) fail(p.key as YamlNode, `${name}: ${k} is not a sit tunnel setting tun6in4 import understands; remove it or write that part by hand`);
      if (['dhcp4', 'dhcp6', 'accept-ra', 'link-local', 'optional', 'renderer', 'critical', 'ipv6-privacy'].includes(k)) d.note(where(p.key as YamlNode), `${k}: netplan's own setting; nothing to carry over`);
    }
    const remote = get('remote');
    if (remote && str(remote, 'remote') !== 'any') d.remote = { value: ipv4At(str(remote, 'remote'), where(remote), 'remote'), from: where(remote) };
    const local = get('local');
    if (local && str(local, 'local') !== 'any') d.local = { value: ipv4At(str(local, 'local'), where(local), 'local'), from: where(local) };
    const ttl = get('ttl');
    if (ttl) d.ttl = { value: ttlAt(str(ttl, 'ttl'), where(ttl)), from: where(ttl) };
    const mtu = get('mtu');
    if (mtu) d.mtu = { value: integerAt(str(mtu, 'mtu'), where(mtu), 'mtu', 68, 65535), from: where(mtu) };
    const addrs = get('addresses');
    for (const a of addrs ? list(addrs, `${name}: addresses`) : []) {
      const v = str(a, 'addresses');
      if (!v.includes(':')) d.note(where(a), `${v}: an IPv4 address on the tunnel; tun6in4 carries IPv6 only`);
      else d.addresses.push({ value: ipv6PrefixAt(v, where(a), 'addresses'), from: where(a) });
    }
    const gw6 = get('gateway6');
    if (gw6) {
      const v = ipv6At(str(gw6, 'gateway6'), where(gw6), 'gateway6');
      d.gateway = { value: v, from: where(gw6) };
      d.defaultRoute = { value: v, from: where(gw6) };
    }
    const routes = get('routes');
    for (const r of routes ? list(routes, `${name}: routes`) : []) {
      if (!isMap(r)) fail(r, `${name}: each route is a mapping with "to" and "via"`);
      for (const p of (r as YAMLMap).items) if (!ROUTE_KEYS.has(str(p.key, 'route'))) fail(p.key as YamlNode, `${name}: route setting ${str(p.key, 'route')} not understood; remove it`);
      const toNode = (r as YAMLMap).get('to', true) as YamlNode | undefined;
      const viaNode = (r as YAMLMap).get('via', true) as YamlNode | undefined;
      const to = toNode ? str(toNode, 'to') : fail(r, `${name}: a route without "to"; add it`);
      const via = viaNode ? ipv6At(str(viaNode, 'via'), where(viaNode), 'via') : null;
      if (isDefaultDestination(to)) d.defaultRoute = { value: via, from: where(toNode) };
      else {
        ipv6PrefixAt(to, where(toNode), 'to');
        d.note(where(toNode), `route to ${to}: tun6in4 routes only the default and the routed prefixes; add this route yourself once the tunnel is up`);
      }
    }
    into.drafts.push(d);
  }
}
