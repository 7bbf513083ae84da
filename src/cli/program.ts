/**
 * The `tun6in4` command: a thin shell over the library. Every sub-command parses flags into the
 * library's typed options, calls it, and prints; nothing here touches packets.
 */
import { Command, Option } from 'commander';
import { ConfigError } from '../encap/options.js';
import { openTunnel, TunnelSetupError, type OpenTunnelOptions } from '../engine/open.js';
import { collect, FLAG_FOR_FIELD, integer, integerOrInherit } from './flags.js';
import { createLogger } from './log.js';

const BROKER_EXAMPLE = `
Examples, from a tunnel broker's "Tunnel Details" page:
  Server IPv4 Address: 198.51.100.1      -> --remote 198.51.100.1
  Server IPv6 Address: 2001:db8:1::1/64  -> --peer 2001:db8:1::1   (the default: ::1 of --address)
  Client IPv4 Address: 192.0.2.10        -> --local 192.0.2.10     (or --local auto behind a 1:1 NAT)
  Client IPv6 Address: 2001:db8:1::2/64  -> --address 2001:db8:1::2/64
  Routed /64:          2001:db8:2::/64   -> --routed 2001:db8:2::/64

  tun6in4 run --mode 6in4 --local auto --remote 198.51.100.1 \\
      --address 2001:db8:1::2/64 --routed 2001:db8:2::/64

6to4 (a public IPv4, no broker; pick a relay you trust, there is no default):
  tun6in4 run --mode 6to4 --local 203.0.113.10 --relay 198.51.100.99
`;

export function buildProgram(): Command {
  const program = new Command('tun6in4')
    .description('Userspace IPv6-in-IPv4 (protocol 41) tunnels: 6in4 (tunnel brokers) and 6to4, without the kernel sit driver')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', BROKER_EXAMPLE);

  program
    .command('run')
    .description('run one tunnel in the foreground until SIGINT or SIGTERM')
    .addOption(new Option('--mode <mode>', 'tunnel mode').choices(['6in4', '6to4']).makeOptionMandatory())
    .option('--local <ipv4|auto>', 'our IPv4 address, or auto (the source address toward --remote / --relay)', 'auto')
    .option('--remote <ipv4>', '6in4: the broker\'s IPv4 ("Server IPv4 Address")')
    .option('--address <ipv6/len>', '6in4: our tunnel address ("Client IPv6 Address"); 6to4 default 2002:V4ADDR::1/16')
    .option('--peer <ipv6>', '6in4: the broker\'s IPv6 ("Server IPv6 Address"); default ::1 of --address')
    .option('--routed <prefix>', 'a prefix routed to us ("Routed /64"); repeatable', collect)
    .option('--relay <ipv4>', '6to4: the relay for non-6to4 destinations (no default, RFC 7526)')
    .addOption(new Option('--role <role>', '6to4: site (default) or relay (a 6to4 relay router)').choices(['site', 'relay']))
    .option('--mtu <bytes>', 'tunnel MTU, 1280..1480 (1280 is the RFC 4213 conservative choice)', integer)
    .addOption(new Option('--pmtu <mode>', 'static: DF clear, IPv4 may fragment; dynamic: DF set, learn the path MTU').choices(['static', 'dynamic']))
    .option('--ttl <1..255|inherit>', 'outer TTL (default 64)', integerOrInherit)
    .option('--tos <0..255|inherit>', 'outer TOS (default 0); ECN always follows RFC 6040', integerOrInherit)
    .option('--dev <name>', 'interface to create (must not exist); default tun6in4-N')
    .option('--no-default-route', 'do not route the IPv6 default through the tunnel')
    .option('--allow-nonglobal', 'lab override: accept non-global IPv4 addresses (R25/R31)')
    .option('--icmp-rate <per-second>', 'ICMPv6 errors we send per second (default 100)', integer)
    .addHelpText('after', BROKER_EXAMPLE)
    .action(async (flags) => runCommand(flags));

  program
    .command('lab')
    .description('the self-contained demo: network namespaces, two (or more) tunnel endpoints, traffic through them, a report (root)')
    .addOption(new Option('--mode <mode>', 'which lab').choices(['6in4', '6to4']).default('6in4'))
    .option('--json', 'print the report as JSON')
    .option('--transfer-mib <MiB>', 'size of the TCP integrity transfer', integer, 64)
    .action(async (flags) => (await import('./lab-command.js')).runLabCommand(flags));

  return program;
}

interface RunFlags {
  mode: '6in4' | '6to4';
  local: string;
  remote?: string;
  address?: string;
  peer?: string;
  routed?: string[];
  relay?: string;
  role?: 'site' | 'relay';
  mtu?: number;
  pmtu?: 'static' | 'dynamic';
  ttl?: number | 'inherit';
  tos?: number | 'inherit';
  dev?: string;
  defaultRoute: boolean;
  allowNonglobal?: boolean;
  icmpRate?: number;
}

async function runCommand(flags: RunFlags): Promise<void> {
  const log = createLogger();
  const options: OpenTunnelOptions = {
    mode: flags.mode,
    local: flags.local,
    remote: flags.remote,
    address: flags.address,
    peer: flags.peer,
    routed: flags.routed,
    relay: flags.relay,
    role: flags.role,
    mtu: flags.mtu,
    pmtu: flags.pmtu,
    ttl: flags.ttl,
    tos: flags.tos,
    dev: flags.dev,
    defaultRoute: flags.defaultRoute,
    allowNonGlobal: flags.allowNonglobal,
    icmpRate: flags.icmpRate,
    onIoError: (where, errno) => log.warn({ where, errno }, 'packet I/O error'),
  };
  for (const k of Object.keys(options) as Array<keyof OpenTunnelOptions>) if (options[k] === undefined) delete options[k];

  const running = await openTunnel(options);
  log.info({ status: running.status() }, 'tunnel up');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const status = running.status();
    await running.close();
    log.info({ signal, counters: status.counters }, 'tunnel down');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/** Turns library errors into one line that names the flag and the fix. */
export function describeError(e: unknown): string {
  if (e instanceof ConfigError) {
    const field = e.field.split('.')[0];
    const flag = FLAG_FOR_FIELD[field] ?? field;
    return `${flag}: ${e.message.slice(e.field.length + 2)}`;
  }
  if (e instanceof TunnelSetupError) return e.message;
  return (e as Error)?.message ?? String(e);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    process.stderr.write(`tun6in4: ${describeError(e)}\n`);
    process.exit(2);
  }
}
