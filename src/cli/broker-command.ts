/**
 * `tun6in4 broker add|set|del|list|show|import|export`: a client of the running daemon's broker
 * control commands (src/brokerd/commands.ts). A key is read from its file and hashed here, so
 * it never crosses the socket; a bad flag is refused here, before the daemon is asked, naming
 * the flag and the fix.
 */
import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { BrokerTunnelError, checkBrokerTunnel, type BrokerTunnel } from '../broker/tunnel.js';
import type { TunnelView } from '../brokerd/service.js';
import { BROKER_COMMAND } from '../brokerd/commands.js';
import { parseImportLine } from '../brokerd/tunnel-input.js';
import { hashUpdateKey } from '../brokerd/update-key.js';
import { readUpdateKey, UpdateKeyError } from '../daemon/broker-update.js';
import { DEFAULT_CONTROL_SOCKET } from '../daemon/config.js';
import { findControlSocket, queryControl } from '../daemon/control.js';
import { collect, FlagError, integer } from './flags.js';

/** A tunnel field → the flag that sets it. */
const FLAG_OF_FIELD: Record<string, string> = {
  id: 'ID',
  remote: '--remote',
  link: '--link',
  routed: '--routed',
  mtu: '--mtu',
  user: '--user',
  key: '--key-file',
  keyHash: '--key-file',
  broker: '--broker',
};

/** A control command stays under the socket's line limit (4096) with room to spare. */
const MAX_COMMAND = 3800;

/** A tunnel refused for a field, as the flag that set it. */
function asFlagError(e: unknown): unknown {
  if (!(e instanceof BrokerTunnelError)) return e;
  const flag = FLAG_OF_FIELD[e.field.split('.')[0]];
  // the flag's word for a parked tunnel is none, JSON's null
  return flag ? new FlagError(flag, flag === '--remote' ? e.detail.replace('or null to park', 'or none to park') : e.detail) : e;
}

interface Common {
  control: string;
  broker?: string;
}

function commonOptions(cmd: Command): Command {
  return cmd.option('--control <path>', 'the daemon\'s control socket', DEFAULT_CONTROL_SOCKET).option('--broker <name>', 'which broker (needed when the daemon runs more than one)');
}

async function ask(cmd: Command, flags: Common, request: Record<string, unknown>): Promise<Record<string, unknown>> {
  const text = `${BROKER_COMMAND} ${JSON.stringify({ ...request, ...(flags.broker !== undefined && { broker: flags.broker }) })}`;
  if (text.length > MAX_COMMAND) throw new FlagError(String(request.op), `the request is ${text.length} bytes, more than one control command carries (${MAX_COMMAND}); give fewer routed prefixes, or use the HTTP API`);
  const socket = await findControlSocket(flags.control, cmd.getOptionValueSource('control') !== 'default');
  const reply = (await queryControl(socket, text)) as Record<string, unknown>;
  if (typeof reply.error === 'string') {
    const field = typeof reply.field === 'string' ? reply.field : null;
    const flag = field ? FLAG_OF_FIELD[field.split('.')[0]] : undefined;
    throw flag ? new FlagError(flag, reply.error.slice(field!.length + 2)) : new Error(reply.error);
  }
  return reply;
}

/** `none` parks a tunnel (no remote until its first update). */
const remoteOf = (text: string): string | null => (text === 'none' ? null : text);

async function keyHashOf(keyFile: string | undefined): Promise<{ keyHash?: string }> {
  if (keyFile === undefined) return {};
  try {
    return { keyHash: await hashUpdateKey(readUpdateKey(keyFile)) };
  } catch (e) {
    if (e instanceof UpdateKeyError) throw new FlagError('--key-file', `${e.keyFile}: ${e.detail}`);
    throw e;
  }
}

interface TunnelFlags extends Common {
  remote?: string;
  link?: string;
  routed?: string[];
  mtu?: number;
  user?: string;
  keyFile?: string;
  key?: boolean;
}

function tunnelOptions(cmd: Command, required: boolean): Command {
  const remote = new Option('--remote <ipv4|none>', 'the client\'s public IPv4, or none: parked until its first nic/update');
  const link = new Option('--link <prefix>', 'the link /64: the server is ::1 on it, the client ::2');
  if (required) {
    remote.makeOptionMandatory();
    link.makeOptionMandatory();
  }
  return cmd
    .addOption(remote)
    .addOption(link)
    .option('--routed <prefix>', 'a prefix routed to the client, /32–/64 (repeatable; with set: replaces the list, "none" empties it)', collect)
    .option('--mtu <bytes>', 'the tunnel MTU, 1280–1480 (default 1480)', integer)
    .option('--user <name>', 'who may update it over nic/update (HTTP Basic user)')
    .option('--key-file <file>', 'a file holding its update key (hashed here; the key never reaches the daemon)');
}

function fieldsOf(flags: TunnelFlags): Partial<BrokerTunnel> {
  const routed = flags.routed?.length === 1 && flags.routed[0] === 'none' ? [] : flags.routed;
  return {
    ...(flags.remote !== undefined && { remote: remoteOf(flags.remote) }),
    ...(flags.link !== undefined && { link: flags.link }),
    ...(routed !== undefined && { routed }),
    ...(flags.mtu !== undefined && { mtu: flags.mtu }),
    ...(flags.user !== undefined && { user: flags.user }),
  };
}

function countersText(v: TunnelView): string {
  const c = v.counters;
  if (!c) return '';
  const drops = Object.entries(c.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`);
  return `rx ${c.rxPackets}/${c.rxBytes} B, tx ${c.txPackets}/${c.txBytes} B${drops.length ? `, drops ${drops.join(' ')}` : ''}`;
}

export function formatTunnelList(broker: string, tunnels: TunnelView[]): string {
  const lines = [`broker ${broker}: ${tunnels.length} tunnel${tunnels.length === 1 ? '' : 's'}`];
  for (const t of tunnels) {
    lines.push(`  ${t.id}  ${t.remote ?? 'parked'}  ${t.link}${t.routed.length ? `  routed ${t.routed.join(' ')}` : ''}  mtu ${t.mtu}${t.user ? `  user ${t.user}${t.hasKey ? '' : ' (no key)'}` : ''}${t.counters ? `  ${countersText(t)}` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatTunnelShow(broker: string, t: TunnelView, lastDrops: Array<{ time: string; reason: string; outerSrc: string | null; bytes: string }>): string {
  const lines = [
    `${t.id} on broker ${broker}`,
    `  remote ${t.remote ?? 'none (parked until its first nic/update)'}`,
    `  link ${t.link} (server ::1, client ::2)`,
    `  routed ${t.routed.length ? t.routed.join(', ') : 'none'}`,
    `  mtu ${t.mtu}`,
    `  update ${t.user ? `by user ${t.user}, ${t.hasKey ? 'with a key' : 'no key set (nic/update refuses it)'}` : 'off (no user)'}`,
  ];
  if (t.counters) lines.push(`  ${countersText(t)}`);
  lines.push(`  last drops: ${lastDrops.length ? '' : 'none'}`);
  for (const d of lastDrops) lines.push(`    ${d.time} ${d.reason} from ${d.outerSrc ?? '-'}: ${d.bytes}`);
  return `${lines.join('\n')}\n`;
}

/** The lines of an import (blank lines and `#` comments passed over), keys hashed, each checked. */
export async function importTunnels(text: string): Promise<BrokerTunnel[]> {
  const out: BrokerTunnel[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const { key, ...fields } = parseImportLine(line, i + 1);
    try {
      const keyHash = key === undefined ? fields.keyHash : key === null ? null : await hashUpdateKey(key as string);
      out.push(checkBrokerTunnel({ ...fields, keyHash } as Partial<BrokerTunnel>));
    } catch (e) {
      if (e instanceof BrokerTunnelError) throw new BrokerTunnelError(`line ${i + 1}: ${e.field}`, e.detail);
      throw e;
    }
  }
  return out;
}

/** Tunnels in batches, each one control command under the line limit. */
function batches(tunnels: BrokerTunnel[], room: number): BrokerTunnel[][] {
  const out: BrokerTunnel[][] = [];
  let cur: BrokerTunnel[] = [];
  let size = 0;
  for (const t of tunnels) {
    const n = JSON.stringify(t).length + 1;
    if (cur.length && size + n > room) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(t);
    size += n;
  }
  if (cur.length) out.push(cur);
  return out;
}

export function addBrokerCommands(program: Command): void {
  const broker = program.command('broker').description('change and read a running broker\'s tunnels over the control socket (the daemon stores each change before it answers)');

  tunnelOptions(commonOptions(broker.command('add <id>').description('add a tunnel')), true).action(async (id: string, flags: TunnelFlags, cmd: Command) => {
    let t: BrokerTunnel;
    try {
      t = checkBrokerTunnel({ id, ...fieldsOf(flags), ...(await keyHashOf(flags.keyFile)) });
    } catch (e) {
      throw asFlagError(e);
    }
    const r = await ask(cmd, flags, { op: 'add', tunnel: t });
    process.stdout.write(`added ${t.id} to broker ${String(r.broker)}\n`);
  });

  tunnelOptions(commonOptions(broker.command('set <id>').description('change a tunnel: only the fields given')), false)
    .option('--no-key', 'remove its update key (nic/update then refuses it)')
    .action(async (id: string, flags: TunnelFlags, cmd: Command) => {
      const fields: Record<string, unknown> = fieldsOf(flags);
      if (flags.key === false && flags.keyFile !== undefined) throw new FlagError('--no-key', 'give --key-file or --no-key, not both');
      if (flags.key === false) fields.keyHash = null;
      Object.assign(fields, await keyHashOf(flags.keyFile));
      if (Object.keys(fields).length === 0) throw new FlagError('set', 'nothing to change; give --remote, --link, --routed, --mtu, --user, --key-file or --no-key');
      try {
        // what can be checked without the tunnel: each field given, over a stand-in for the rest
        checkBrokerTunnel({ id, link: '2001:db8::/64', ...fields });
      } catch (e) {
        throw asFlagError(e);
      }
      const r = await ask(cmd, flags, { op: 'set', id, fields });
      process.stdout.write(`changed ${id} on broker ${String(r.broker)}\n`);
    });

  commonOptions(broker.command('del <id>').description('remove a tunnel')).action(async (id: string, flags: Common, cmd: Command) => {
    const r = await ask(cmd, flags, { op: 'del', id });
    process.stdout.write(`removed ${id} from broker ${String(r.broker)}\n`);
  });

  commonOptions(broker.command('list').description('the tunnels, with their counters'))
    .option('--json', 'print a JSON array (id, remote, link, routed, mtu, user, hasKey, counters)')
    .action(async (flags: Common & { json?: boolean }, cmd: Command) => {
      const r = await ask(cmd, flags, { op: 'list' });
      const tunnels = r.tunnels as TunnelView[];
      process.stdout.write(flags.json ? `${JSON.stringify(tunnels, null, 2)}\n` : formatTunnelList(String(r.broker), tunnels));
    });

  commonOptions(broker.command('show <id>').description('one tunnel: its settings, counters and last drops (with the first bytes of each)'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Common & { json?: boolean }, cmd: Command) => {
      const r = await ask(cmd, flags, { op: 'show', id });
      process.stdout.write(flags.json ? `${JSON.stringify({ ...(r.tunnel as object), lastDrops: r.lastDrops }, null, 2)}\n` : formatTunnelShow(String(r.broker), r.tunnel as TunnelView, r.lastDrops as never));
    });

  commonOptions(broker.command('import <file>').description('add or replace the tunnels of a JSON-lines file (- for standard input), as export writes them; a plain update key as "key" is hashed here')).action(
    async (file: string, flags: Common, cmd: Command) => {
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (e) {
        throw new FlagError('import', `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a JSON-lines file, or - for standard input`);
      }
      let tunnels: BrokerTunnel[];
      try {
        tunnels = await importTunnels(text);
      } catch (e) {
        if (e instanceof BrokerTunnelError) throw new Error(`${file}: ${e.message}`);
        throw e;
      }
      let done = 0;
      for (const batch of batches(tunnels, MAX_COMMAND - 200)) {
        try {
          await ask(cmd, flags, { op: 'import', tunnels: batch });
        } catch (e) {
          throw new Error(`${file}: ${done} of ${tunnels.length} tunnels imported, then: ${(e as Error).message}`);
        }
        done += batch.length;
      }
      process.stdout.write(`imported ${done} tunnel${done === 1 ? '' : 's'}\n`);
    },
  );

  commonOptions(broker.command('export').description('every tunnel as JSON lines (the update key as keyHash), for import')).action(async (flags: Common, cmd: Command) => {
    const r = await ask(cmd, flags, { op: 'export' });
    const lines = r.lines as string[];
    process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
  });
}
