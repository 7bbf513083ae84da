/**
 * `tun6in4 run`'s flags, each defined once: its spelling, help, parser and where its value goes
 * in the one-tunnel configuration the flags become. The commander options, the flag named in an
 * error (FLAG_FOR_FIELD) and the configuration all come from RUN_FLAGS; what a value may be is the
 * library's business (src/encap/options.ts, src/daemon/config.ts), checked once, there.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../encap/options.js';
import { HE_UPDATE_URL } from '../daemon/broker-update.js';
import { ConfigFileError, DEFAULT_CONTROL_SOCKET, parseDaemonConfig, type DaemonConfig } from '../daemon/config.js';

export function integer(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number.');
  return Number(text);
}

export function integerOrInherit(text: string): number | 'inherit' {
  if (text === 'inherit') return 'inherit';
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number or "inherit".');
  return Number(text);
}

export function secondsOrOff(text: string): number | 'off' {
  if (text === 'off') return 'off';
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError('expected seconds (1 or more) or "off".');
  return Number(text);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

interface RunFlag {
  /** commander's spelling, e.g. `--mtu <bytes>` */
  spec: string;
  help: string;
  /**
   * Where the value goes: a tunnel key (`mtu`), a broker-update key (`update.keyFile`), or a daemon
   * key (`@control`, `@metrics.listen`).
   */
  to: string;
  // commander hands a repeatable flag's previous value back in
  parse?: (text: string, previous: never) => unknown;
  choices?: string[];
  default?: unknown;
  mandatory?: boolean;
  /** A `--no-x` flag: only its `false` is passed on (true is the library's default anyway). */
  negate?: boolean;
}

export const RUN_FLAGS: readonly RunFlag[] = [
  { spec: '--mode <mode>', to: 'mode', help: 'tunnel mode', choices: ['6in4', '6to4', '6rd'], mandatory: true },
  { spec: '--local <ipv4|auto>', to: 'local', default: 'auto', help: 'our IPv4 address, or auto (the source address toward --remote / --relay / the first BR; 6in4 follows it when it changes)' },
  { spec: '--remote <ipv4>', to: 'remote', help: '6in4: the broker\'s IPv4 ("Server IPv4 Address")' },
  { spec: '--address <ipv6/len>', to: 'address', help: '6in4: our tunnel address ("Client IPv6 Address"); 6to4 default 2002:V4ADDR::1/16' },
  { spec: '--peer <ipv6>', to: 'peer', help: '6in4: the broker\'s IPv6 ("Server IPv6 Address"); default ::1 of --address. 6rd CE: an address beyond the BR to probe (enables keepalive and BR failover)' },
  { spec: '--routed <prefix>', to: 'routed', parse: collect, help: 'a prefix routed to us ("Routed /64"); repeatable' },
  { spec: '--advertise <iface[=prefix]>', to: 'advertise', parse: collect, help: 'send router advertisements on this bridge for a /64 (default the first --routed /64), with the tunnel MTU; repeatable' },
  { spec: '--advertise-dns <ipv6>', to: 'advertiseDns', parse: collect, help: 'a DNS server those router advertisements announce (RFC 8106 RDNSS); repeatable' },
  { spec: '--relay <ipv4>', to: 'relay', help: '6to4: the relay for non-6to4 destinations (no default, RFC 7526); 6rd: the border relay (BR)' },
  { spec: '--role <role>', to: 'role', choices: ['site', 'relay'], help: '6to4: site (default) or relay (a 6to4 relay router); 6rd: site (a CE, default) or relay (a border relay)' },
  { spec: '--6rd-prefix <ipv6/len>', to: 'sixrdPrefix', help: '6rd: the ISP\'s 6rd prefix, e.g. 2001:db8:a000::/36' },
  { spec: '--ipv4-mask-len <0..31>', to: 'ipv4MaskLen', parse: integer, help: '6rd: high IPv4 bits all CEs of the domain share (default 0)' },
  { spec: '--6rd-ipv4-prefix <ipv4/len>', to: 'sixrdIpv4Prefix', help: '6rd border relay: the IPv4 prefix of the domain\'s CEs (its length is --ipv4-mask-len)' },
  { spec: '--6rd-customers <ipv4/len>', to: 'sixrdCustomers', parse: collect, help: '6rd border relay: an IPv4 prefix of the customers it serves, no others (repeatable; none: any IPv4, an open relay)' },
  { spec: '--6rd-dhcp <option212>', to: 'sixrdDhcp', help: '6rd: "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…" as udhcpc exports $ip6rd (instead of --6rd-prefix, --ipv4-mask-len, --relay)' },
  { spec: '--mtu <bytes>', to: 'mtu', parse: integer, help: 'tunnel MTU, 1280..1480 (1280 is the RFC 4213 conservative choice; FOU 1280..1472, default 1472)' },
  { spec: '--encap <kind>', to: 'encap', choices: ['none', 'fou'], help: 'none: bare protocol 41; fou: IPv6 in UDP, as Linux `sit … encap fou` (where protocol 41 is filtered; 6in4 only)' },
  { spec: '--encap-dport <port>', to: 'encapDport', parse: integer, help: 'FOU: the peer\'s UDP port (we always send there)' },
  { spec: '--encap-port <port>', to: 'encapPort', parse: integer, help: 'FOU: the local UDP port we bind, send from and receive on (default: --encap-dport)' },
  { spec: '--encap-csum', to: 'encapCsum', help: 'FOU: send UDP checksums (allows UDP GSO); default off, as Linux\'s noencap-csum' },
  { spec: '--no-encap-csum', to: 'encapCsum', help: 'FOU: zero UDP checksums (the default)' },
  { spec: '--pmtu <mode>', to: 'pmtu', choices: ['static', 'dynamic'], help: 'static: DF clear, IPv4 may fragment; dynamic: DF set, learn the path MTU' },
  { spec: '--ttl <1..255|inherit>', to: 'ttl', parse: integerOrInherit, help: 'outer TTL (default 64)' },
  { spec: '--tos <0..255|inherit>', to: 'tos', parse: integerOrInherit, help: 'outer TOS (default 0); ECN always follows RFC 6040' },
  { spec: '--keepalive <seconds|off>', to: 'keepalive', parse: secondsOrOff, help: '6in4, 6rd with --peer: ICMPv6 echo to the peer every N seconds (default 60)' },
  { spec: '--clamp-mss', to: 'clampMss', help: 'rewrite the MSS of TCP SYNs crossing the tunnel to fit its MTU' },
  { spec: '--no-offload', to: 'offload', negate: true, help: 'no TUN offload: the kernel segments TCP before the TUN and we merge nothing (default: offload on)' },
  { spec: '--no-io-uring', to: 'ioUring', negate: true, help: 'move TUN packets with read()/write() per packet instead of io_uring batches' },
  { spec: '--dev <name>', to: 'dev', help: 'interface to create (must not exist); default tun6in4-N' },
  { spec: '--no-default-route', to: 'defaultRoute', negate: true, help: 'do not route the IPv6 default through the tunnel' },
  { spec: '--default-route-metric <n>', to: 'defaultRouteMetric', parse: integer, help: 'metric of that default route (default 1024)' },
  { spec: '--allow-nonglobal', to: 'allowNonGlobal', help: 'lab override: accept non-global IPv4 addresses (R25/R31)' },
  { spec: '--icmp-rate <per-second>', to: 'icmpRate', parse: integer, help: 'ICMPv6 errors we send per second (default 100)' },
  { spec: '--icmp-burst <count>', to: 'icmpBurst', parse: integer, help: 'ICMPv6 errors we may send at once before the rate applies (default 100)' },
  { spec: '--update-url <url>', to: 'update.url', help: `broker update URL (default ${HE_UPDATE_URL})` },
  { spec: '--update-insecure-http', to: 'update.insecureHttp', help: 'allow a plain http:// --update-url (the key crosses the network in cleartext)' },
  { spec: '--tunnel-id <id>', to: 'update.tunnelId', help: 'broker tunnel id: enables the broker endpoint update' },
  { spec: '--username <name>', to: 'update.username', help: 'broker account name, for the update' },
  { spec: '--update-key-file <file>', to: 'update.keyFile', help: 'file holding the broker update key (never put the key on the command line)' },
  { spec: '--control <path>', to: '@control', default: DEFAULT_CONTROL_SOCKET, help: 'control socket for `tun6in4 status`' },
  { spec: '--metrics-listen <host:port>', to: '@metrics.listen', help: 'serve Prometheus metrics at http://host:port/metrics' },
  { spec: '--user <name>', to: '@user', help: 'drop to this user once the TUN and raw socket are open' },
  { spec: '--group <name>', to: '@group', help: 'and this group (default the user\'s)' },
];

function optionOf(f: RunFlag): Option {
  const o = new Option(f.spec, f.help);
  if (f.choices) o.choices(f.choices);
  if (f.parse) o.argParser(f.parse as (text: string, previous: unknown) => unknown);
  if (f.default !== undefined) o.default(f.default);
  if (f.mandatory) o.makeOptionMandatory();
  return o;
}

/** Fresh commander options for RUN_FLAGS (an Option belongs to the command it is added to). */
const options = () => RUN_FLAGS.map((f) => [f, optionOf(f)] as const);

/** Adds every RUN_FLAGS flag to `run`. */
export function addRunFlags(cmd: Command): Command {
  for (const [, o] of options()) cmd.addOption(o);
  return cmd;
}

/** Library / config-file field (any part of a key path) → the `tun6in4 run` flag that sets it. */
export const FLAG_FOR_FIELD: Readonly<Record<string, string>> = (() => {
  const map: Record<string, string> = {};
  for (const [f, o] of options()) {
    for (const part of f.to.replace(/^@/, '').split('.')) {
      if (part !== 'update') map[part] ??= o.long!;
    }
  }
  return map;
})();

/** A bad `run` flag: the message starts with the flag's name. */
export class FlagError extends Error {
  constructor(readonly flag: string, detail: string) {
    super(`${flag}: ${detail}`);
    this.name = 'FlagError';
  }

  /**
   * `run` validates its flags as a one-tunnel config file; a config path such as
   * `tunnels.tun0.update.keyFile` names the flag by its last part, `tunnels.tun0.mtu` by the field.
   */
  static fromConfigPath(path: string, detail: string): FlagError {
    const parts = path.split('.');
    const field = parts.length > 2 ? parts[parts.length - 1] : parts[0];
    return new FlagError(FLAG_FOR_FIELD[field] ?? FLAG_FOR_FIELD[parts[2] ?? ''] ?? path, detail);
  }
}

/** `run`'s parsed flags as a one-tunnel configuration, validated by the same code as a config file. */
export function configFromFlags(flags: Record<string, unknown>): DaemonConfig {
  const tunnel: Record<string, unknown> = {};
  const update: Record<string, unknown> = {};
  const daemon: Record<string, unknown> = {};
  for (const [f, o] of options()) {
    const v = flags[o.attributeName()];
    if (v === undefined || (f.negate && v !== false)) continue;
    const [root, ...rest] = f.to.split('.');
    if (root.startsWith('@')) setPath(daemon, [root.slice(1), ...rest], v);
    else if (root === 'update') update[rest[0]] = v;
    else tunnel[root] = v;
  }
  const asked = Object.keys(update).length > 0;
  if (asked && (update.tunnelId === undefined || update.username === undefined || update.keyFile === undefined)) {
    throw new ConfigError('tunnelId', update.tunnelId, 'the broker update needs --tunnel-id, --username and --update-key-file together');
  }
  if (asked) tunnel.update = update;
  try {
    return parseDaemonConfig({ tunnels: { [(tunnel.dev as string | undefined) ?? 'tunnel']: tunnel }, control: { socket: daemon.control }, ...withoutControl(daemon) });
  } catch (e) {
    throw e instanceof ConfigFileError ? FlagError.fromConfigPath(e.path, e.detail) : e;
  }
}

function setPath(o: Record<string, unknown>, path: string[], v: unknown): void {
  let at = o;
  for (const k of path.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
  at[path[path.length - 1]] = v;
}

function withoutControl(d: Record<string, unknown>): Record<string, unknown> {
  const { control: _control, ...rest } = d;
  return rest;
}
