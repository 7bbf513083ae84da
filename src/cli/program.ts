/**
 * The `tun6in4` command: a thin shell over the library. Every sub-command parses flags into the
 * library's typed options, calls it, and prints; nothing here touches packets.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../encap/options.js';
import { TunnelSetupError } from '../host/open.js';
import { ConfigFileError, DEFAULT_CONTROL_SOCKET, loadDaemonConfig, type DaemonConfig } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';
import { healthSummary, SystemdNotifier } from '../daemon/systemd.js';
import { findControlSocket, queryControl } from '../daemon/control.js';
import { dropPrivileges, resolveDropTarget, resolveGroup } from '../daemon/privileges.js';
import { addRunFlags, addRunFlagsFor, configFromFlags, FLAG_FOR_FIELD, FlagError, integer } from './flags.js';
import { createLogger } from './log.js';
import { missingNetworkCapabilities } from '../doctor/doctor.js';
import { countersLine, formatStatus } from './status-format.js';
import type { ManagedStatus } from '../daemon/managed-tunnel.js';
import { addBrokerCommands } from './broker-command.js';
import { LAB_MODES } from '../lab/topology.js';

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

  addRunFlags(program.command('run').description('run one tunnel in the foreground until SIGINT or SIGTERM'))
    // the file form is `up`'s; taken here only to say so
    .addOption(new Option('-c, --config <file>').hideHelp())
    .addHelpText('after', BROKER_EXAMPLE)
    .action(async (flags: Record<string, unknown>) => {
      if (flags.config !== undefined) {
        throw new FlagError('--config', `run takes one tunnel from flags; a configuration file runs with: tun6in4 up -c ${String(flags.config)}`);
      }
      const config = configFromFlags(flags);
      requireNetworkPrivileges();
      await serve(config, null);
    });

  program
    .command('up [file]')
    .description('run the tunnels of a configuration file (given as -c FILE or FILE); SIGHUP reloads it')
    .option('-c, --config <file>', 'configuration, TOML (*.toml) or JSON (see examples/)')
    .option('--control <path>', 'control socket, instead of the file\'s control.socket (contrib/tun6in4@.service gives each instance its own)')
    .action(async (file: string | undefined, flags: { config?: string; control?: string }) => {
      const path = configFileOf('up', file, flags.config);
      const load = () => {
        const c = loadDaemonConfig(path);
        return flags.control === undefined ? c : { ...c, control: { ...c.control, socket: flags.control } };
      };
      const config = load();
      requireNetworkPrivileges();
      await serve(config, load);
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

  addBrokerCommands(program);

  program
    .command('check [file]')
    .description('validate a configuration file (-c FILE or FILE) and its update key files without touching the system (exit 0, or 2 naming the field and the fix)')
    .option('-c, --config <file>', 'configuration, TOML (*.toml) or JSON (see examples/)')
    .action(async (file: string | undefined, flags: { config?: string }) => (await import('./config-commands.js')).runCheckCommand(configFileOf('check', file, flags.config)));

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
    .command('import [files...]')
    .description('read a kernel sit tunnel\'s configuration (a broker\'s ip/ifconfig commands, systemd-networkd, ifupdown, netplan, OpenWrt UCI; - for standard input) and print the tun6in4 configuration for it, each value commented with its source line (exit 2 naming the line it cannot read)')
    .addOption(new Option('--format <format>', 'the input\'s format instead of recognising it').choices(['shell', 'networkd', 'ifupdown', 'netplan', 'uci']))
    .option('--key-file <path>', 'write the broker update key (UCI password/updatekey) to this file (a new file renamed into place: mode 0600, or 0640 where the old key was group-readable; a symlink there is refused) and enable the update, naming it by its absolute path; the key never goes into the configuration')
    .option('--check', 'run the result through `tun6in4 check` as well')
    .action(async (files: string[], flags: { format?: 'shell' | 'networkd' | 'ifupdown' | 'netplan' | 'uci'; keyFile?: string; check?: boolean }) =>
      (await import('./import-command.js')).runImportCommand(files, flags),
    );

  addRunFlagsFor(program.command('doctor').description('check this host for what a tunnel needs; each finding with its fix (exit 0 only if none fails)'), {
    mode: { help: 'check addresses for this mode too' },
    local: { help: 'our IPv4, or auto (the source address toward --remote / --relay)' },
    remote: {},
    relay: {},
    mtu: { help: 'the tunnel MTU you plan' },
    encap: { help: 'fou: check the Foo-over-UDP socket too (port, UDP GSO/GRO)' },
    encapDport: {},
    encapPort: { help: 'FOU: the local UDP port the tunnel will bind (default: --encap-dport, as run)' },
    '@user': { help: 'the user the daemon runs as (--user, systemd\'s User=; the shipped units use tun6in4): check it can open /dev/net/tun' },
    routed: { help: 'a prefix routed to this host: check forwarding, uplink accept_ra, FORWARD policies and the tunnel link for hosting it (repeatable)' },
    address: { help: 'the tunnel address, to check --routed against its link prefix' },
  })
    .option('-c, --config <file>', 'also check what each [broker.NAME] of this configuration needs of this host (its address, pool routes, forwarding, store, socket, API)')
    .option('--json', 'print JSON')
    .action(async (flags) => (await import('./doctor-command.js')).runDoctorCommand(flags));

  addRunFlagsFor(program.command('lab').description('the self-contained demo: network namespaces, two (or more) tunnel endpoints, traffic through them, a report (root)'), {
    encap: { help: 'fou: the 6in4 lab over Foo-over-UDP (port 5555)', default: 'none' },
  })
    // run's modes and the broker's: not run's --mode flag
    .addOption(new Option('--mode <mode>', 'which lab').choices(LAB_MODES).default('6in4'))
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

/** The configuration file of `up` or `check`: `-c FILE` or the argument, one of them. */
function configFileOf(command: string, argument: string | undefined, flag: string | undefined): string {
  if (argument !== undefined && flag !== undefined && argument !== flag) {
    throw new FlagError('--config', `two configuration files given (${flag} and ${argument}); ${command} takes one: tun6in4 ${command} -c FILE`);
  }
  const file = flag ?? argument;
  if (file === undefined) throw new FlagError('--config', `give the configuration file: tun6in4 ${command} -c FILE (or tun6in4 ${command} FILE)`);
  return file;
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

/** Runs the daemon until SIGINT/SIGTERM; SIGHUP reloads when there is a file to reload. */
async function serve(config: DaemonConfig, reload: (() => DaemonConfig) | null): Promise<void> {
  const log = createLogger(process.env.TUN6IN4_LOG_LEVEL ?? config.logLevel);
  // Under a Type=notify unit (NOTIFY_SOCKET set); null otherwise, and every call below is skipped.
  const notifier = SystemdNotifier.fromEnvironment(log);
  // A single tunnel from flags has nothing left to do once it has failed: exit 1 so a
  // supervisor restarts it. A config-file daemon keeps serving status and waits for SIGHUP.
  const daemon = new Daemon(
    log,
    () => {
      if (reload) return;
      log.error('no tunnel left running; exiting');
      notifier?.stopping('no tunnel left running; exiting');
      void daemon.stop().then(() => process.exit(1));
    },
    process.env.TUN6IN4_LOG_LEVEL,
  );
  try {
    const gid = config.control.group !== undefined ? resolveGroup(config.control.group) : undefined;
    // Before the host changes: a user that resolves to uid 0 would "drop" to root.
    if (config.user) resolveDropTarget(config.user, config.group);
    await daemon.start(config, gid);
    if (daemon.tunnels.size === 0 && daemon.brokers.size === 0) {
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
  } catch (e) {
    // No READY=1 then: systemd sees the exit and fails the start; `systemctl status` shows why.
    notifier?.status(`failed to start: ${describeError(e)}`);
    notifier?.close();
    // `run`'s settings came from flags: name the flag, not the file key it became
    throw !reload && e instanceof ConfigFileError ? FlagError.fromConfigPath(e.path, e.detail) : e;
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    notifier?.stopping(`stopping (${signal})`);
    const final = daemon.status().tunnels;
    await daemon.stop();
    for (const t of final) log.info(tunnelDown(signal, t), 'tunnel down');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // Only now READY=1: a manager may stop us the moment it reads it, and a SIGTERM before the
  // handler above would kill the process before it removes what it set up.
  const summary = () => healthSummary(daemon.status());
  notifier?.ready(summary);
  // One reload at a time: two applies at once would race over the same tunnels, and systemd
  // expects each RELOADING=1 to be closed by its own READY=1.
  let reloads = Promise.resolve();
  process.on('SIGHUP', () => {
    reloads = reloads.then(async () => {
      if (stopping) return;
      notifier?.reloading();
      try {
        if (reload) await daemon.reload(reload);
        else log.warn('SIGHUP: nothing to reload (tunnel from flags; use `tun6in4 up -c <file>` to reload a file)');
      } catch (e) {
        log.error({ error: (e as Error).message }, 'reload failed');
      } finally {
        // Also after a refused or failed reload: the daemon runs on, and systemd waits for this.
        if (!stopping) notifier?.ready(summary);
      }
    });
  });
}

/** The fields of a "tunnel down" line: on a terminal the one-line `down`, in JSON every counter too. */
export function tunnelDown(signal: string, t: ManagedStatus): Record<string, unknown> {
  return { signal, tunnel: t.tunnel, down: countersLine(t.counters), counters: t.counters };
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
