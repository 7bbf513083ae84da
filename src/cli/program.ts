/**
 * The `tun6in4` command: a thin shell over the library. Every sub-command parses flags into the
 * library's typed options, calls it, and prints; nothing here touches packets.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, type TunnelOptions } from '../encap/options.js';
import { TunnelSetupError } from '../host/open.js';
import { ConfigFileError, DEFAULT_CONTROL_SOCKET, loadDaemonConfig, parseDaemonConfig, type DaemonConfig } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';
import type { TunnelSpec } from '../daemon/managed-tunnel.js';
import { findControlSocket, queryControl } from '../daemon/control.js';
import { dropPrivileges, resolveGroup } from '../daemon/privileges.js';
import { HE_UPDATE_URL } from '../daemon/broker-update.js';
import { collect, FLAG_FOR_FIELD, FlagError, integer, integerOrInherit, secondsOrOff } from './flags.js';
import { createLogger } from './log.js';
import { missingNetworkCapabilities } from '../doctor/doctor.js';
import { formatStatus } from './status-format.js';

const BROKER_EXAMPLE = `
Examples, from a tunnel broker's "Tunnel Details" page:
  Server IPv4 Address: 198.51.100.1      -> --remote 198.51.100.1
  Server IPv6 Address: 2001:db8:1::1/64  -> --peer 2001:db8:1::1   (the default: ::1 of --address)
  Client IPv4 Address: 192.0.2.10        -> --local 192.0.2.10     (or --local auto behind a 1:1 NAT)
  Client IPv6 Address: 2001:db8:1::2/64  -> --address 2001:db8:1::2/64
  Routed /64:          2001:db8:2::/64   -> --routed 2001:db8:2::/64
  Tunnel ID: 123456, your account name   -> --tunnel-id 123456 --username you --update-key-file /etc/tun6in4/he.key

  tun6in4 run --mode 6in4 --local auto --remote 198.51.100.1 \\
      --address 2001:db8:1::2/64 --routed 2001:db8:2::/64

6to4 (a public IPv4, no broker; pick a relay you trust, there is no default):
  tun6in4 run --mode 6to4 --local 203.0.113.10 --relay 198.51.100.99

6rd (the ISP's parameters by hand, or DHCPv4 option 212 as udhcpc exports it in $ip6rd):
  tun6in4 run --mode 6rd --local auto --6rd-prefix 2001:db8:a000::/36 --ipv4-mask-len 25 --relay 203.0.113.1
  tun6in4 run --mode 6rd --local 192.0.2.10 --6rd-dhcp "$ip6rd"
`;

export function buildProgram(): Command {
  const program = new Command('tun6in4')
    .description('Userspace IPv6-in-IPv4 (protocol 41) tunnels: 6in4 (tunnel brokers), 6to4 and 6rd, without the kernel sit driver')
    .version(packageVersion(), '-V, --version', 'print the version')
    // Flag errors are ours to print (one line, exit 2; see main), not commander's.
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .addHelpText('after', BROKER_EXAMPLE);

  program
    .command('run')
    .description('run one tunnel in the foreground until SIGINT or SIGTERM')
    .addOption(new Option('--mode <mode>', 'tunnel mode').choices(['6in4', '6to4', '6rd']).makeOptionMandatory())
    .option('--local <ipv4|auto>', 'our IPv4 address, or auto (the source address toward --remote / --relay / the first BR; 6in4 follows it when it changes)', 'auto')
    .option('--remote <ipv4>', '6in4: the broker\'s IPv4 ("Server IPv4 Address")')
    .option('--address <ipv6/len>', '6in4: our tunnel address ("Client IPv6 Address"); 6to4 default 2002:V4ADDR::1/16')
    .option('--peer <ipv6>', '6in4: the broker\'s IPv6 ("Server IPv6 Address"); default ::1 of --address. 6rd CE: an address beyond the BR to probe (enables keepalive and BR failover)')
    .option('--routed <prefix>', 'a prefix routed to us ("Routed /64"); repeatable', collect)
    .option('--relay <ipv4>', '6to4: the relay for non-6to4 destinations (no default, RFC 7526); 6rd: the border relay (BR)')
    .addOption(new Option('--role <role>', '6to4: site (default) or relay (a 6to4 relay router); 6rd: site (a CE, default) or relay (a border relay)').choices(['site', 'relay']))
    .option('--6rd-prefix <ipv6/len>', '6rd: the ISP\'s 6rd prefix, e.g. 2001:db8:a000::/36')
    .option('--ipv4-mask-len <0..31>', '6rd: high IPv4 bits all CEs of the domain share (default 0)', integer)
    .option('--6rd-ipv4-prefix <ipv4/len>', '6rd border relay: the IPv4 prefix of the domain\'s CEs (its length is --ipv4-mask-len)')
    .option('--6rd-dhcp <option212>', '6rd: "IPv4MaskLen 6rdPrefixLen 6rdPrefix BR…" as udhcpc exports $ip6rd (instead of --6rd-prefix, --ipv4-mask-len, --relay)')
    .option('--mtu <bytes>', 'tunnel MTU, 1280..1480 (1280 is the RFC 4213 conservative choice; FOU 1280..1472, default 1472)', integer)
    .addOption(new Option('--encap <kind>', 'none: bare protocol 41; fou: IPv6 in UDP, as Linux `sit … encap fou` (where protocol 41 is filtered; 6in4 only)').choices(['none', 'fou']))
    .option('--encap-dport <port>', 'FOU: the peer\'s UDP port (we always send there)', integer)
    .option('--encap-port <port>', 'FOU: the local UDP port we bind, send from and receive on (default: --encap-dport)', integer)
    .option('--encap-csum', 'FOU: send UDP checksums (allows UDP GSO); default off, as Linux\'s noencap-csum')
    .option('--no-encap-csum', 'FOU: zero UDP checksums (the default)')
    .addOption(new Option('--pmtu <mode>', 'static: DF clear, IPv4 may fragment; dynamic: DF set, learn the path MTU').choices(['static', 'dynamic']))
    .option('--ttl <1..255|inherit>', 'outer TTL (default 64)', integerOrInherit)
    .option('--tos <0..255|inherit>', 'outer TOS (default 0); ECN always follows RFC 6040', integerOrInherit)
    .option('--keepalive <seconds|off>', '6in4, 6rd with --peer: ICMPv6 echo to the peer every N seconds (default 60)', secondsOrOff)
    .option('--clamp-mss', 'rewrite the MSS of TCP SYNs crossing the tunnel to fit its MTU')
    .option('--no-offload', 'no TUN offload: the kernel segments TCP before the TUN and we merge nothing (default: offload on)')
    .option('--no-io-uring', 'move TUN packets with read()/write() per packet instead of io_uring batches')
    .option('--dev <name>', 'interface to create (must not exist); default tun6in4-N')
    .option('--no-default-route', 'do not route the IPv6 default through the tunnel')
    .option('--default-route-metric <n>', 'metric of that default route (default 1024)', integer)
    .option('--allow-nonglobal', 'lab override: accept non-global IPv4 addresses (R25/R31)')
    .option('--icmp-rate <per-second>', 'ICMPv6 errors we send per second (default 100)', integer)
    .option('--icmp-burst <count>', 'ICMPv6 errors we may send at once before the rate applies (default 100)', integer)
    .option('--update-url <url>', `broker update URL (default ${HE_UPDATE_URL})`)
    .option('--update-insecure-http', 'allow a plain http:// --update-url (the key crosses the network in cleartext)')
    .option('--tunnel-id <id>', 'broker tunnel id: enables the broker endpoint update')
    .option('--username <name>', 'broker account name, for the update')
    .option('--update-key-file <file>', 'file holding the broker update key (never put the key on the command line)')
    .option('--control <path>', 'control socket for `tun6in4 status`', DEFAULT_CONTROL_SOCKET)
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://host:port/metrics')
    .option('--user <name>', 'drop to this user once the TUN and raw socket are open')
    .option('--group <name>', 'and this group (default the user\'s)')
    .addHelpText('after', BROKER_EXAMPLE)
    .action(async (flags: RunFlags) => {
      const config = configFromFlags(flags);
      requireNetworkPrivileges();
      await serve(config, null);
    });

  program
    .command('up')
    .description('run the tunnels of a configuration file; SIGHUP reloads it')
    .requiredOption('-c, --config <file>', 'configuration, TOML (*.toml) or JSON (see examples/)')
    .action(async (flags: { config: string }) => {
      const path = flags.config;
      const config = loadDaemonConfig(path);
      requireNetworkPrivileges();
      await serve(config, () => loadDaemonConfig(path));
    });

  program
    .command('status')
    .description('ask the running daemon for each tunnel\'s state, counters and drops')
    .option('--json', 'print JSON')
    .option('--control <path>', 'the daemon\'s control socket', DEFAULT_CONTROL_SOCKET)
    .action(async (flags: { json?: boolean; control: string }, cmd: Command) => {
      const s = await queryControl(await findControlSocket(flags.control, cmd.getOptionValueSource('control') !== 'default'), 'status');
      process.stdout.write(flags.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s as never));
    });

  program
    .command('trace [tunnel]')
    .description('follow the running daemon\'s packet decisions (one line each: time, direction, outer and inner addresses, verdict, drop reason and rule), or write them to a pcapng file for Wireshark')
    .option('--drops', 'only drops (including packets answered with Packet Too Big)')
    .option('--count <n>', 'stop after N decisions', integer)
    .option('--pcapng <file>', 'write the packets to FILE (- for stdout), each with its decision as the packet comment')
    .option('--json', 'print each decision as JSON')
    .option('--control <path>', 'the daemon\'s control socket', DEFAULT_CONTROL_SOCKET)
    .action(async (tunnel: string | undefined, flags: { drops?: boolean; count?: number; pcapng?: string; json?: boolean; control: string }, cmd: Command) =>
      (await import('./trace-command.js')).runTraceCommand(tunnel, { ...flags, controlExplicit: cmd.getOptionValueSource('control') !== 'default' }),
    );

  program
    .command('check')
    .description('validate a configuration file and its update key files without touching the system (exit 0, or 2 naming the field and the fix)')
    .requiredOption('-c, --config <file>', 'configuration, TOML (*.toml) or JSON (see examples/)')
    .action(async (flags: { config: string }) => (await import('./config-commands.js')).runCheckCommand(flags.config));

  program
    .command('show')
    .description('print the running daemon\'s configuration as a file `up -c` accepts (update keys never shown, only their files)')
    .option('--config', 'only the configuration, without the comment header on what runs (for `> file.toml`)')
    .option('--json', 'print JSON instead of TOML')
    .option('--control <path>', 'the daemon\'s control socket', DEFAULT_CONTROL_SOCKET)
    .action(async (flags: { config?: boolean; json?: boolean; control: string }, cmd: Command) =>
      (await import('./config-commands.js')).runShowCommand({ ...flags, controlExplicit: cmd.getOptionValueSource('control') !== 'default' }),
    );

  program
    .command('doctor')
    .description('check this host for what a tunnel needs; each finding with its fix (exit 0 only if none fails)')
    .addOption(new Option('--mode <mode>', 'check addresses for this mode too').choices(['6in4', '6to4']))
    .option('--local <ipv4|auto>', 'our IPv4 (default: the source address toward --remote / --relay)')
    .option('--remote <ipv4>', '6in4: the broker\'s IPv4')
    .option('--relay <ipv4>', '6to4: the relay\'s IPv4')
    .option('--mtu <bytes>', 'the tunnel MTU you plan', integer)
    .option('--json', 'print JSON')
    .action(async (flags) => (await import('./doctor-command.js')).runDoctorCommand(flags));

  program
    .command('lab')
    .description('the self-contained demo: network namespaces, two (or more) tunnel endpoints, traffic through them, a report (root)')
    .addOption(new Option('--mode <mode>', 'which lab').choices(['6in4', '6to4', '6rd']).default('6in4'))
    .addOption(new Option('--encap <kind>', 'fou: the 6in4 lab over Foo-over-UDP (port 5555)').choices(['none', 'fou']).default('none'))
    .option('--json', 'print the report as JSON')
    .option('--transfer-mib <MiB>', 'size of the TCP integrity transfer', integer, 64)
    .action(async (flags) => (await import('./lab-command.js')).runLabCommand(flags));

  program
    .command('build-native')
    .description('build the native addon from source for this host (when no prebuilt binary fits it): needs g++, make and python3; uses this host\'s Node headers, downloads nothing')
    .action(async () => {
      const { buildNativeAddon } = await import('../io/native-build.js');
      const { nativeAddonInfo } = await import('../io/native.js');
      await buildNativeAddon();
      const info = nativeAddonInfo();
      process.stdout.write(`built ${info.path} (io_uring ${info.ioUringCompiled ? 'compiled in' : 'not compiled in: install liburing-dev and build again for faster TUN I/O'})\n`);
    });

  return program;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Before anything else `run`/`up` do: say what they need rather than fail on the first socket. */
function requireNetworkPrivileges(): void {
  const missing = missingNetworkCapabilities();
  if (missing.length) {
    throw new TunnelSetupError(
      'NO_PERMISSION',
      `a tunnel needs root, or CAP_NET_ADMIN and CAP_NET_RAW (${missing.join(' and ')} missing here): run it with sudo, or grant them (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW; see contrib/tun6in4.service)`,
    );
  }
}

/** What commander parses for `run`: the library's own option types where the names agree. */
type RunFlags = Pick<TunnelOptions, 'mode' | 'remote' | 'address' | 'peer' | 'routed' | 'relay' | 'role' | 'mtu' | 'pmtu' | 'ttl' | 'tos' | 'clampMss' | 'icmpRate' | 'icmpBurst' | 'encap' | 'encapDport' | 'encapPort' | 'encapCsum'> &
  Pick<TunnelSpec, 'keepalive' | 'dev' | 'defaultRouteMetric'> & {
    local: string;
    // commander's names for the --6rd-* flags (it camel-cases after the leading digit)
    '6rdPrefix'?: string;
    ipv4MaskLen?: number;
    '6rdIpv4Prefix'?: string;
    '6rdDhcp'?: string;
    defaultRoute: boolean;
    offload: boolean;
    ioUring: boolean;
    allowNonglobal?: boolean;
    updateUrl?: string;
    updateInsecureHttp?: boolean;
    tunnelId?: string;
    username?: string;
    updateKeyFile?: string;
    control: string;
    metricsListen?: string;
    user?: string;
    group?: string;
  };

/** `run`'s flags as a one-tunnel configuration, validated by the same code as a config file. */
function configFromFlags(f: RunFlags): DaemonConfig {
  const updateAsked = f.tunnelId !== undefined || f.username !== undefined || f.updateKeyFile !== undefined || f.updateUrl !== undefined;
  if (updateAsked && (f.tunnelId === undefined || f.username === undefined || f.updateKeyFile === undefined)) {
    throw new ConfigError('tunnelId', f.tunnelId, 'the broker update needs --tunnel-id, --username and --update-key-file together');
  }
  const tunnel = prune({
    mode: f.mode,
    local: f.local,
    remote: f.remote,
    address: f.address,
    peer: f.peer,
    routed: f.routed,
    relay: f.relay,
    role: f.role,
    sixrdPrefix: f['6rdPrefix'],
    ipv4MaskLen: f.ipv4MaskLen,
    sixrdIpv4Prefix: f['6rdIpv4Prefix'],
    sixrdDhcp: f['6rdDhcp'],
    mtu: f.mtu,
    encap: f.encap,
    encapDport: f.encapDport,
    encapPort: f.encapPort,
    encapCsum: f.encapCsum,
    pmtu: f.pmtu,
    ttl: f.ttl,
    tos: f.tos,
    keepalive: f.keepalive,
    clampMss: f.clampMss,
    offload: f.offload === false ? false : undefined,
    ioUring: f.ioUring === false ? false : undefined,
    dev: f.dev,
    defaultRoute: f.defaultRoute === false ? false : undefined,
    defaultRouteMetric: f.defaultRouteMetric,
    allowNonGlobal: f.allowNonglobal,
    icmpRate: f.icmpRate,
    icmpBurst: f.icmpBurst,
    update: updateAsked ? prune({ url: f.updateUrl, insecureHttp: f.updateInsecureHttp, tunnelId: f.tunnelId, username: f.username, keyFile: f.updateKeyFile }) : undefined,
  });
  try {
    return parseDaemonConfig(
      prune({
        tunnels: { [f.dev ?? 'tunnel']: tunnel },
        control: { socket: f.control },
        metrics: f.metricsListen ? { listen: f.metricsListen } : undefined,
        user: f.user,
        group: f.group,
      }),
    );
  } catch (e) {
    throw e instanceof ConfigFileError ? FlagError.fromConfigPath(e.path, e.detail) : e;
  }
}

function prune<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

/** Runs the daemon until SIGINT/SIGTERM; SIGHUP reloads when there is a file to reload. */
async function serve(config: DaemonConfig, reload: (() => DaemonConfig) | null): Promise<void> {
  const log = createLogger(process.env.TUN6IN4_LOG_LEVEL ?? config.logLevel);
  // A single tunnel from flags has nothing left to do once it has failed: exit 1 so a
  // supervisor restarts it. A config-file daemon keeps serving status and waits for SIGHUP.
  const daemon = new Daemon(log, () => {
    if (reload) return;
    log.error('no tunnel left running; exiting');
    void daemon.stop().then(() => process.exit(1));
  });
  const gid = config.control.group !== undefined ? resolveGroup(config.control.group) : undefined;
  await daemon.start(config, gid);
  if (daemon.tunnels.size === 0) {
    const failed = daemon.status().failed;
    const why = failed.map((f) => `${f.tunnel}: ${f.error}`).join('; ');
    await daemon.stop();
    // One tunnel from flags: its own error names the flag (e.g. --local), as a bad flag does.
    const only = failed.length === 1 && !reload ? daemon.failure(failed[0].tunnel) : undefined;
    if (only instanceof ConfigError) throw only;
    throw new TunnelSetupError('SETUP_FAILED', why || 'no tunnel started');
  }
  if (config.user) {
    const ids = dropPrivileges(config.user, config.group);
    log.info(ids, 'dropped privileges (keeping CAP_NET_ADMIN and CAP_NET_RAW)');
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const final = daemon.status().tunnels;
    await daemon.stop();
    for (const t of final) log.info({ signal, tunnel: t.tunnel, counters: t.counters }, 'tunnel down');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGHUP', () => {
    if (reload) void daemon.reload(reload);
    else log.warn('SIGHUP: nothing to reload (tunnel from flags; use `tun6in4 up -c <file>` to reload a file)');
  });
}

/** Turns library errors into one line that names the flag (or config path) and the fix. */
export function describeError(e: unknown): string {
  if (e instanceof ConfigError) {
    const field = e.field.split('.')[0];
    return `${FLAG_FOR_FIELD[field] ?? field}: ${e.detail}`;
  }
  return (e as Error)?.message ?? String(e);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help, --version and help for a missing sub-command end here too, already printed.
      if (e.exitCode === 0 || e.code === 'commander.help') process.exit(e.exitCode);
      process.stderr.write(`tun6in4: ${e.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')} (see tun6in4 --help)\n`);
      process.exit(2);
    }
    process.stderr.write(`tun6in4: ${describeError(e)}\n`);
    process.exit(2);
  }
}
