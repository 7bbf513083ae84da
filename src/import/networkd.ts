/**
 * systemd-networkd: a `.netdev` with `[NetDev] Kind=sit` and `[Tunnel] Local= Remote= TTL=
 * IPv6RapidDeploymentPrefix=` (systemd.netdev(5)), the tunnel's `.network` (`[Match] Name=`,
 * `Address=`, `Gateway=`, `[Route]`), and the underlying link's `.network` (`Tunnel=`, its own
 * IPv6 addresses). Several files, or one paste of them, make one input.
 */
import { basename } from 'node:path';
import {
  ImportError,
  integerAt,
  ipv4At,
  ipv6At,
  ipv6PrefixAt,
  isDefaultDestination,
  nameAt,
  SitDraft,
  tosAt,
  ttlAt,
  tunnelNameOf,
  type Sourced,
  type SourceRef,
} from './draft.js';
import type { ParsedInput } from './shell.js';

interface Entry {
  key: string;
  value: string;
  from: SourceRef;
}
interface Section {
  name: string;
  from: SourceRef;
  entries: Entry[];
}
interface Unit {
  kind: 'netdev' | 'network';
  sections: Section[];
  from: SourceRef;
}

/** Splits a file (or a paste of several) into units; a new [NetDev] or [Match] after content starts the next. */
function units(file: string, text: string): Unit[] {
  const out: Unit[] = [];
  let unit: Unit | null = null;
  let section: Section | null = null;
  text.split(/\r?\n/).forEach((raw, i) => {
    const from = { file, line: i + 1 };
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const head = /^\[([A-Za-z0-9]+)\]$/.exec(line);
    if (head) {
      const name = head[1];
      const startsUnit = name === 'NetDev' || name === 'Match';
      if (!unit || (startsUnit && unit.sections.some((s) => s.name !== 'Match' || name === 'Match'))) {
        unit = { kind: 'network', sections: [], from };
        out.push(unit);
      }
      if (name === 'NetDev') unit.kind = 'netdev';
      section = { name, from, entries: [] };
      unit.sections.push(section);
      return;
    }
    // `s`: a value may hold a character JavaScript counts as a line end (\r, U+2028); only \n ends it
    const kv = /^([A-Za-z0-9]+)\s*=\s*(.*)$/s.exec(line);
    if (!kv) throw ImportError.at(from, `not a networkd line ("[Section]" or "Key=Value"): ${line}`);
    if (!section) throw ImportError.at(from, `${kv[1]}= before any [Section]; put it under its section`);
    section.entries.push({ key: kv[1], value: kv[2].trim(), from });
  });
  return out;
}

const one = (u: Unit, section: string, key: string): Entry | undefined => {
  const all = u.sections.filter((s) => s.name === section).flatMap((s) => s.entries.filter((e) => e.key === key));
  return all[all.length - 1];
};
const all = (u: Unit, section: string, key: string): Entry[] => u.sections.filter((s) => s.name === section).flatMap((s) => s.entries.filter((e) => e.key === key));

/** What each section of the tunnel's own units may hold; `null`: understood, nothing to carry. */
const NETDEV_KEYS: Record<string, readonly string[]> = {
  Match: [],
  NetDev: ['Name', 'Kind', 'MTUBytes', 'Description', 'MACAddress'],
  FooOverUDP: ['Port', 'Protocol', 'Encapsulation', 'PeerPort', 'Peer', 'Local'],
  Tunnel: ['Local', 'Remote', 'TTL', 'TOS', 'DiscoverPathMTU', 'IPv6RapidDeploymentPrefix', 'Independent', 'AssignToLoopback', 'Encapsulation', 'FooOverUDP', 'FOUDestinationPort', 'FOUSourcePort', 'ISATAP'],
};
const TUNNEL_NETWORK_KEYS: Record<string, readonly string[]> = {
  Match: ['Name'],
  Link: ['MTUBytes', 'RequiredForOnline', 'ActivationPolicy'],
  Network: ['Address', 'Gateway', 'Description', 'DHCP', 'IPv6AcceptRA', 'LinkLocalAddressing', 'ConfigureWithoutCarrier', 'IPForward', 'IPv4Forwarding', 'IPv6Forwarding', 'DefaultRouteOnDevice', 'IPv6SendRA', 'DNS', 'Domains', 'KeepConfiguration'],
  Address: ['Address', 'Peer', 'PreferredLifetime'],
  Route: ['Destination', 'Gateway', 'Metric', 'GatewayOnLink', 'PreferredSource', 'Table', 'Scope'],
};
const IGNORED = new Set(['Description', 'DHCP', 'IPv6AcceptRA', 'LinkLocalAddressing', 'ConfigureWithoutCarrier', 'IPv6SendRA', 'DNS', 'Domains', 'KeepConfiguration', 'RequiredForOnline', 'ActivationPolicy', 'Independent', 'AssignToLoopback', 'MACAddress', 'GatewayOnLink', 'Metric', 'PreferredLifetime', 'Scope', 'Table', 'PreferredSource']);

const FORWARDING = new Set(['IPForward', 'IPv4Forwarding', 'IPv6Forwarding']);
const YES = /^(yes|true|on|1)$/i;

function checkKeys(u: Unit, allowed: Record<string, readonly string[]>, what: string): void {
  for (const s of u.sections) {
    const keys = allowed[s.name];
    if (!keys) throw ImportError.at(s.from, `[${s.name}] in the ${what}: not a section tun6in4 import understands; remove it or write that part by hand`);
    if (s.name === 'Match' && keys.length === 0) continue;
    for (const e of s.entries) {
      if (!keys.includes(e.key)) throw ImportError.at(e.from, `${e.key}= in [${s.name}] of the ${what}: not understood by tun6in4 import; remove the line or write that part by hand`);
    }
  }
}

export function parseNetworkd(inputs: Array<{ file: string; text: string }>, into: ParsedInput): void {
  const us = inputs.flatMap((i) => units(i.file, i.text));
  const netdevs = us.filter((u) => u.kind === 'netdev');
  const networks = us.filter((u) => u.kind === 'network');
  const tunnelNames = new Set<string>();
  for (const nd of netdevs) {
    checkKeys(nd, NETDEV_KEYS, `.netdev`);
    const kind = one(nd, 'NetDev', 'Kind');
    if (kind?.value === 'fou') {
      // the receiving side of Foo-over-UDP: tun6in4 binds its own port (encapPort)
      const port = one(nd, 'FooOverUDP', 'Port') ?? (() => {
        throw ImportError.at(kind.from, 'Kind=fou without [FooOverUDP] Port=; add it');
      })();
      const proto = one(nd, 'FooOverUDP', 'Protocol');
      const enc = one(nd, 'FooOverUDP', 'Encapsulation');
      if (enc && enc.value !== 'FooOverUDP') throw ImportError.at(enc.from, `Encapsulation=${enc.value}: tun6in4 speaks plain Foo-over-UDP, not GUE`);
      if (proto && proto.value !== '41' && proto.value !== 'ipv6') into.notes.push({ from: proto.from, text: `Protocol=${proto.value}: a Foo-over-UDP receiver for another protocol, not for a sit tunnel` });
      else into.fouPorts.push({ value: integerAt(port.value, port.from, 'Port=', 1, 65535), from: port.from });
      continue;
    }
    const name = one(nd, 'NetDev', 'Name') ?? (() => {
      throw ImportError.at(nd.from, '.netdev without [NetDev] Name=; add it');
    })();
    if (!kind || kind.value !== 'sit') throw ImportError.at(kind?.from ?? nd.from, `${name.value}: Kind=${kind?.value ?? '(none)'} is not a sit tunnel; tun6in4 imports sit tunnels (6in4, 6to4, 6rd)`);
    nameAt(name.value, name.from, '[NetDev] Name=');
    const d = new SitDraft(name.value, tunnelNameOf(name.value), name.from, 'networkd');
    tunnelNames.add(name.value);
    const local = one(nd, 'Tunnel', 'Local');
    if (local && !['any', 'dhcp4', 'dhcp6', 'slaac', 'static', ''].includes(local.value)) d.local = { value: ipv4At(local.value, local.from, 'Local='), from: local.from };
    else if (local && local.value !== 'any' && local.value !== '') d.note(local.from, `Local=${local.value}: tun6in4 follows the address this host uses toward the far end (local = "auto")`);
    const remote = one(nd, 'Tunnel', 'Remote');
    if (remote && remote.value !== 'any' && remote.value !== '') d.remote = { value: ipv4At(remote.value, remote.from, 'Remote='), from: remote.from };
    const ttl = one(nd, 'Tunnel', 'TTL');
    if (ttl) d.ttl = { value: ttlAt(ttl.value, ttl.from), from: ttl.from };
    const tos = one(nd, 'Tunnel', 'TOS');
    if (tos) d.tos = { value: tosAt(tos.value, tos.from), from: tos.from };
    const pmtu = one(nd, 'Tunnel', 'DiscoverPathMTU');
    if (pmtu) d.pmtu = { value: YES.test(pmtu.value) ? 'dynamic' : 'static', from: pmtu.from };
    const sixrd = one(nd, 'Tunnel', 'IPv6RapidDeploymentPrefix');
    if (sixrd) {
      d.sixrdPrefix = { value: ipv6PrefixAt(sixrd.value, sixrd.from, 'IPv6RapidDeploymentPrefix='), from: sixrd.from };
      d.note(sixrd.from, 'networkd has no 6rd relay prefix (the kernel\'s 6rd-relay_prefix), so ipv4MaskLen stays 0 as there; if the ISP\'s option 212 gives an IPv4 mask length, add ipv4MaskLen');
    }
    const isatap = one(nd, 'Tunnel', 'ISATAP');
    if (isatap && YES.test(isatap.value)) throw ImportError.at(isatap.from, 'ISATAP is out of tun6in4\'s scope (RFC 5214, off by default since 2018); remove the tunnel');
    const fouFlag = one(nd, 'Tunnel', 'FooOverUDP');
    const enc = one(nd, 'Tunnel', 'Encapsulation') ?? (fouFlag && YES.test(fouFlag.value) ? { ...fouFlag, value: 'FooOverUDP' } : undefined);
    if (enc && enc.value !== 'FooOverUDP') throw ImportError.at(enc.from, `Encapsulation=${enc.value}: tun6in4 carries only FooOverUDP`);
    if (enc) {
      const port = one(nd, 'Tunnel', 'FOUDestinationPort') ?? (() => {
        throw ImportError.at(enc.from, 'Encapsulation=FooOverUDP without FOUDestinationPort=; add it');
      })();
      d.encapDport = { value: integerAt(port.value, port.from, 'FOUDestinationPort=', 1, 65535), from: port.from };
    }
    const mtu = one(nd, 'NetDev', 'MTUBytes');
    if (mtu) d.mtu = { value: integerAt(mtu.value, mtu.from, 'MTUBytes=', 68, 65535), from: mtu.from };
    into.drafts.push(d);
  }

  for (const nw of networks) {
    const match = all(nw, 'Match', 'Name').flatMap((e) => e.value.split(/\s+/).map((n) => ({ n: nameAt(n, e.from, '[Match] Name='), e })));
    const own = match.find((m) => tunnelNames.has(m.n));
    if (own) {
      checkKeys(nw, TUNNEL_NETWORK_KEYS, `.network of ${own.n}`);
      tunnelNetwork(nw, into.drafts.find((d) => d.format === 'networkd' && d.dev === own.n)!);
      continue;
    }
    // the underlying link: only Tunnel= and IPv6 addresses concern us
    const dev = match[0]?.n ?? basename(nw.from.file).replace(/\.network$/, '');
    const tunnelRefs = all(nw, 'Network', 'Tunnel');
    for (const t of tunnelRefs) if (!tunnelNames.has(nameAt(t.value, t.from, '[Network] Tunnel='))) into.notes.push({ from: t.from, text: `Tunnel=${t.value}: no .netdev in the input defines it, so it is not imported; add that file to import it too` });
    for (const a of [...all(nw, 'Network', 'Address'), ...all(nw, 'Address', 'Address')]) {
      if (a.value.includes(':')) into.lan.push({ prefix: ipv6PrefixAt(a.value, a.from, 'Address='), dev, from: a.from });
    }
    if (!tunnelRefs.length && !match.length) throw ImportError.at(nw.from, 'a .network without [Match] Name=: tun6in4 import cannot tell which link it is for; add [Match] Name=');
  }
  for (const d of into.drafts) {
    if (d.format === 'networkd' && !networks.some((nw) => all(nw, 'Match', 'Name').some((e) => e.value.split(/\s+/).includes(d.dev)))) {
      d.note(d.from, `no .network with [Match] Name=${d.dev} in the input, so no address or route for it; add that file to the import`);
    }
  }
}

function tunnelNetwork(nw: Unit, d: SitDraft): void {
  for (const a of [...all(nw, 'Network', 'Address'), ...all(nw, 'Address', 'Address')]) {
    if (!a.value.includes(':')) {
      d.note(a.from, `Address=${a.value}: an IPv4 address on the tunnel; tun6in4 carries IPv6 only`);
      continue;
    }
    d.addresses.push({ value: ipv6PrefixAt(a.value, a.from, 'Address='), from: a.from });
  }
  const peer = one(nw, 'Address', 'Peer');
  if (peer) d.peer = { value: ipv6At(peer.value.replace(/\/\d+$/, ''), peer.from, 'Peer='), from: peer.from };
  const gw = one(nw, 'Network', 'Gateway');
  if (gw) {
    ipv6At(gw.value, gw.from, 'Gateway=');
    d.gateway = { value: gw.value, from: gw.from };
    d.defaultRoute = { value: gw.value, from: gw.from };
  }
  // [Route] sections, each its own route
  for (const s of nw.sections.filter((x) => x.name === 'Route')) {
    const dest = s.entries.filter((e) => e.key === 'Destination').pop();
    const via = s.entries.filter((e) => e.key === 'Gateway').pop();
    if (via && via.value !== '::' && via.value !== '') ipv6At(via.value, via.from, 'Gateway=');
    const to = dest?.value ?? '::/0';
    const from = (dest ?? via ?? { from: s.from }).from;
    if (isDefaultDestination(to)) {
      const r: Sourced<string | null> = { value: via && via.value !== '::' && via.value !== '' ? via.value : null, from };
      d.defaultRoute = r;
    } else {
      ipv6PrefixAt(to, from, 'Destination=');
      d.note(from, `[Route] Destination=${to}: tun6in4 routes only the default and the routed prefixes; add this route yourself once the tunnel is up`);
    }
  }
  // systemd.network(5): "sets up the IPv4 default route bound to the interface"; the IPv6 one is [Route] Gateway=::
  const onDevice = one(nw, 'Network', 'DefaultRouteOnDevice');
  if (onDevice && YES.test(onDevice.value)) {
    d.note(onDevice.from, `DefaultRouteOnDevice=${onDevice.value}: networkd's IPv4 default route on the device, and tun6in4 carries IPv6 only; the IPv6 default through the tunnel is networkd's [Route] Gateway=:: and tun6in4's defaultRoute (on unless false)`);
  } else if (onDevice) d.note(onDevice.from, `DefaultRouteOnDevice=${onDevice.value}: no IPv4 default route on the device; nothing to carry over`);
  for (const e of nw.sections.flatMap((s) => (s.name === 'Network' ? s.entries : [])).filter((x) => FORWARDING.has(x.key))) {
    d.note(e.from, `${e.key}=${e.value}: networkd sets a forwarding sysctl; tun6in4 changes no sysctl, so keep forwarding in /etc/sysctl.d if this host routes a prefix (\`tun6in4 doctor --routed PREFIX\` checks it)`);
  }
  for (const s of nw.sections) for (const e of s.entries) if (IGNORED.has(e.key)) d.note(e.from, `${e.key}=${e.value}: networkd's own setting; nothing to carry over`);
  const mtu = one(nw, 'Link', 'MTUBytes');
  if (mtu) d.mtu = { value: integerAt(mtu.value, mtu.from, 'MTUBytes=', 68, 65535), from: mtu.from };
}
