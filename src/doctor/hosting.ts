/**
 * Doctor checks for hosting a routed prefix (containers, VMs, bridges behind the tunnel): what
 * on this host stops packets to the routed prefix from reaching them, each with its fix.
 * Each check is its own function; `checkHosting` runs them all.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { formatIpv6Prefix, ipv6Network, ipv6PrefixMatch, parseIpv6, parseIpv6Prefix, type Ipv6Prefix } from '../packet/address.js';
import { ip } from '../tun/iproute.js';
import type { Finding } from './finding.js';

export interface HostingCheckOptions {
  /** The routed prefixes the tunnel will carry (`--routed`). */
  routed?: string[];
  /** The tunnel's own address with its link prefix (`--address`), e.g. 2001:db8:1::2/64. */
  address?: string;
}

type Add = (f: Finding) => void;

export async function checkHosting(o: HostingCheckOptions, add: Add): Promise<void> {
  const routed = (o.routed ?? []).map((r) => parseIpv6Prefix(r)).filter((p): p is Ipv6Prefix => p !== null).map(ipv6Network);
  if (routed.length === 0) return;
  const forwarding = checkForwarding(routed, add);
  await checkUplinkAcceptRa(forwarding, add);
  await checkForwardPolicy(routed, add);
  checkRoutedOnTunnelLink(routed, o.address, add);
  await checkRoutedAddressOnTun(routed, add);
}

function sysctl(path: string): string | null {
  try {
    return readFileSync(`/proc/sys/net/ipv6/${path}`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Runs a command; its exit code and stdout, or null if it is not installed. */
function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string } | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000 }, (e, stdout) => {
      if (e && (e as NodeJS.ErrnoException).code === 'ENOENT') return resolve(null);
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
}

const list = (ps: Ipv6Prefix[]) => ps.map(formatIpv6Prefix).join(', ');

/** Routed prefixes only reach containers and guests if this host forwards IPv6. Returns whether it does. */
export function checkForwarding(routed: Ipv6Prefix[], add: Add): boolean {
  const on = sysctl('conf/all/forwarding') === '1';
  add(
    on
      ? { check: 'IPv6 forwarding', level: 'ok', detail: `on: packets to ${list(routed)} are forwarded to the bridges and containers that hold them` }
      : {
          check: 'IPv6 forwarding',
          level: 'fail',
          detail: `off while ${list(routed)} is routed to this host: packets to it arrive through the tunnel and go no further`,
          fix: 'sysctl -w net.ipv6.conf.all.forwarding=1 (and put net.ipv6.conf.all.forwarding=1 in /etc/sysctl.d/90-tun6in4.conf); on an uplink that takes router advertisements set its accept_ra to 2 first (see below)',
        },
  );
  return on;
}

/**
 * With forwarding on, Linux ignores router advertisements on interfaces whose accept_ra is 1: an
 * uplink that takes its IPv6 default route or addresses from RAs loses them when they expire.
 * Such an uplink is one with a `proto ra` default route or a `dynamic` (SLAAC) global address.
 */
export async function checkUplinkAcceptRa(forwarding: boolean, add: Add): Promise<void> {
  const needs = new Map<string, string>();
  try {
    const routes = JSON.parse(await ip(['-j', '-6', 'route', 'show', 'default'])) as Array<{ dev?: string; protocol?: string }>;
    for (const r of routes) if (r.dev && r.protocol === 'ra') needs.set(r.dev, 'takes its IPv6 default route from router advertisements');
    const links = JSON.parse(await ip(['-j', '-6', 'addr', 'show', 'scope', 'global'])) as Array<{ ifname: string; addr_info?: Array<{ dynamic?: boolean }> }>;
    for (const l of links) if (!needs.has(l.ifname) && l.addr_info?.some((a) => a.dynamic)) needs.set(l.ifname, 'has SLAAC addresses from router advertisements');
  } catch (e) {
    add({ check: 'uplink accept_ra', level: 'warn', detail: `could not read routes and addresses: ${(e as Error).message}` });
    return;
  }
  for (const [dev, why] of needs) {
    const acceptRa = sysctl(`conf/${dev}/accept_ra`);
    if (acceptRa === '2') {
      add({ check: `accept_ra on ${dev}`, level: 'ok', detail: `${dev} ${why} and accept_ra is 2: it keeps taking them with forwarding on` });
      continue;
    }
    add({
      check: `accept_ra on ${dev}`,
      level: forwarding ? 'fail' : 'warn',
      detail: `${dev} ${why}, and accept_ra is ${acceptRa ?? 'unknown'}: ${forwarding ? 'with forwarding on the kernel ignores them: it drops their default route at once and the addresses expire' : 'once forwarding is on the kernel ignores them'}`,
      fix: `sysctl -w net.ipv6.conf.${dev}.accept_ra=2 (persist it in /etc/sysctl.d/; netplan: accept-ra: true; systemd-networkd: IPv6AcceptRA=yes)`,
    });
  }
}

interface NftChain {
  chain?: { family: string; table: string; name: string; hook?: string; policy?: string };
}

/** A forward chain that drops by policy, and the command that adds a rule to it with the tool that made it. */
interface DroppingChain {
  where: string;
  docker: boolean;
  /** Inserts an accept for `prefix` ahead of the policy. */
  acceptRule: (prefix: string) => string;
}

/**
 * iptables-nft keeps ip6tables' tables as nftables tables: family ip6, table "filter", the
 * built-in chains in capitals. A rule for such a chain goes in with ip6tables, not nft, which
 * would put it where iptables-nft does not expect one (it warns the table is not nft's to edit).
 */
function madeByIp6tables(c: { family: string; table: string; name: string }): boolean {
  return c.family === 'ip6' && c.table === 'filter' && c.name === 'FORWARD';
}

/**
 * A forward chain whose policy drops (Docker's ip6tables sets FORWARD to DROP) refuses packets to
 * the routed prefix unless a rule accepts them first. Reads nftables (which iptables-nft writes
 * too) and, where it exists, the legacy ip6tables; each fix uses the tool that set the policy.
 */
export async function checkForwardPolicy(routed: Ipv6Prefix[], add: Add): Promise<void> {
  const dropping: DroppingChain[] = [];
  const nft = await run('nft', ['-j', 'list', 'chains']);
  if (nft && nft.code === 0 && nft.stdout.trim()) {
    const items = (JSON.parse(nft.stdout) as { nftables: NftChain[] }).nftables;
    const chains = items.map((i) => i.chain).filter((c): c is NonNullable<NftChain['chain']> => c !== undefined);
    for (const c of chains) {
      if (c.hook !== 'forward' || c.policy !== 'drop' || (c.family !== 'ip6' && c.family !== 'inet')) continue;
      const sameTable = chains.filter((d) => d.table === c.table && d.family === c.family);
      const dockerUser = sameTable.some((d) => d.name === 'DOCKER-USER');
      dropping.push({
        where: `nftables ${c.family} ${c.table} ${c.name}`,
        docker: sameTable.some((d) => /^DOCKER/.test(d.name)),
        acceptRule: madeByIp6tables(c)
          ? (p) => `ip6tables -I ${dockerUser ? 'DOCKER-USER' : 'FORWARD'} -d ${p} -j ACCEPT`
          : (p) => `nft insert rule ${c.family} ${c.table} ${c.name} ip6 daddr ${p} accept`,
      });
    }
  }
  const legacy = await run('ip6tables-legacy', ['-S', 'FORWARD']);
  if (legacy && legacy.code === 0 && /^-P FORWARD DROP/m.test(legacy.stdout)) {
    const dockerUser = /DOCKER-USER/.test(legacy.stdout);
    dropping.push({ where: 'ip6tables-legacy FORWARD', docker: /DOCKER/.test(legacy.stdout), acceptRule: (p) => `ip6tables-legacy -I ${dockerUser ? 'DOCKER-USER' : 'FORWARD'} -d ${p} -j ACCEPT` });
  }
  if (dropping.length === 0) {
    add({ check: 'IPv6 FORWARD policy', level: 'ok', detail: 'no forward chain drops by policy' });
    return;
  }
  const p = formatIpv6Prefix(routed[0]);
  for (const d of dropping) {
    add({
      check: 'IPv6 FORWARD policy',
      level: 'warn',
      detail: `${d.where} drops what no rule accepts${d.docker ? ' (Docker\'s ip6tables rules)' : ''}: connections from outside to ${list(routed)} are refused unless a rule lets them in`,
      fix: d.docker
        ? `let the routed prefix in ahead of Docker's rules: ${d.acceptRule(p)}; or, Docker 27+, create the network with -o com.docker.network.bridge.gateway_mode_ipv6=routed (docs/containers.md)`
        : `accept it ahead of the policy, e.g. ${d.acceptRule(p)}`,
    });
  }
}

/**
 * A routed prefix is what the broker routes *to* us through the link; the link's own prefix is
 * not routed, so using it (or overlapping it) for hosts behind us breaks both.
 */
export function checkRoutedOnTunnelLink(routed: Ipv6Prefix[], address: string | undefined, add: Add): void {
  const a = address ? parseIpv6Prefix(address) : null;
  if (!a) return;
  const link = ipv6Network(a);
  const clash = routed.filter((r) => ipv6PrefixMatch(r.addr, 0, link.addr, 0, Math.min(r.len, link.len)));
  for (const r of clash) {
    add({
      check: 'routed prefix vs tunnel link',
      level: 'fail',
      detail: `${formatIpv6Prefix(r)} overlaps the tunnel link ${formatIpv6Prefix(link)}: the broker sends that prefix to the link itself, not to hosts behind you`,
      fix: 'use the broker\'s "Routed /64" (or /48) for --routed, not the "Client IPv6 Address" prefix',
    });
  }
  if (clash.length === 0) add({ check: 'routed prefix vs tunnel link', level: 'ok', detail: `${list(routed)} is apart from the tunnel link ${formatIpv6Prefix(link)}` });
}

/**
 * An address of the routed prefix on a TUN device (ours or any other) puts the prefix on that
 * link: the kernel looks for the containers on the tunnel instead of routing to their bridge.
 */
export async function checkRoutedAddressOnTun(routed: Ipv6Prefix[], add: Add): Promise<void> {
  let links: Array<{ ifname: string; linkinfo?: { info_kind?: string } }>;
  let addrs: Array<{ ifname: string; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>;
  try {
    links = JSON.parse(await ip(['-j', '-d', 'link', 'show']));
    addrs = JSON.parse(await ip(['-j', '-6', 'addr', 'show']));
  } catch {
    return;
  }
  const tuns = new Set(links.filter((l) => l.linkinfo?.info_kind === 'tun').map((l) => l.ifname));
  for (const l of addrs) {
    if (!tuns.has(l.ifname)) continue;
    for (const a of l.addr_info ?? []) {
      const addr = parseIpv6(a.local);
      // a single address (/128) is a host address, not the prefix on the link
      if (!addr || a.prefixlen >= 128) continue;
      const r = routed.find((p) => ipv6PrefixMatch(addr, 0, p.addr, 0, p.len));
      if (!r) continue;
      add({
        check: 'routed prefix on a tunnel device',
        level: 'warn',
        detail: `${a.local}/${a.prefixlen} on ${l.ifname} puts part of the routed ${formatIpv6Prefix(r)} on the tunnel link: packets to hosts in it are looked for there, not on their bridge`,
        fix: `move it to the bridge or LAN that holds those hosts: ip -6 addr del ${a.local}/${a.prefixlen} dev ${l.ifname}; ip -6 addr add ${a.local}/${a.prefixlen} dev br0 (or use a /128)`,
      });
    }
  }
}
