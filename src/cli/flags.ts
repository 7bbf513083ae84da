/**
 * `tun6in4 run`'s flags. Each comes from the row that defines its option (src/encap/options.ts
 * OPTIONS, src/advertise/options.ts ADVERTISE_OPTIONS, src/host/options.ts HOST_OPTIONS,
 * src/daemon/config.ts DAEMON_TUNNEL_OPTIONS and UPDATE_OPTIONS): its spelling and help from the row, its parser and choices from the row's
 * schema. Only the daemon's own flags (control socket, metrics, user) are declared here. The
 * commander options, the flag named in an error (FLAG_FOR_FIELD) and the configuration all come
 * from RUN_FLAGS; what a value may be is the library's business, checked once, there. `doctor` and
 * `lab` take some of the same flags (addRunFlagsFor).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, OPTIONS, type OptionDefinition } from '../encap/options.js';
import { HOST_OPTIONS } from '../host/options.js';
import { ADVERTISE_OPTIONS } from '../advertise/options.js';
import { ConfigFileError, DAEMON_TUNNEL_OPTIONS, DEFAULT_CONTROL_SOCKET, parseDaemonConfig, UPDATE_OPTIONS, type DaemonConfig } from '../daemon/config.js';

export function integer(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number.');
  return Number(text);
}

/** A whole number or one word (`inherit`, `off`). */
function integerOr(word: string): (text: string) => number | string {
  return (text) => {
    if (text === word) return word;
    if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`expected a whole number or "${word}".`);
    return Number(text);
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export interface RunFlag {
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
  choices?: readonly string[];
  default?: unknown;
  /** A `--no-x` flag: only its `false` is passed on (true is the library's default anyway). */
  negate?: boolean;
}

interface ZodDef {
  type: string;
  options?: ReadonlyArray<{ def: ZodDef }>;
  values?: readonly unknown[];
  entries?: Record<string, string>;
}

/** How a flag's text becomes the value the row's schema checks. */
function argumentOf(d: OptionDefinition): Pick<RunFlag, 'parse' | 'choices'> {
  const def = (d.schema as unknown as { def: ZodDef }).def;
  if (def.type === 'number') return { parse: integer };
  if (def.type === 'array') return { parse: collect };
  if (def.type === 'enum') return { choices: Object.values(def.entries!) };
  if (def.type === 'union') {
    const word = def.options!.find((o) => o.def.type === 'literal')?.def.values?.[0];
    if (typeof word === 'string' && def.options!.some((o) => o.def.type === 'number')) return { parse: integerOr(word) };
  }
  return {};
}

/** The flags of a table of options; `to` says where each value goes (`update.` + key for the update's). */
export function flagsOf(table: Record<string, OptionDefinition>, to: (key: string) => string = (k) => k): RunFlag[] {
  const out: RunFlag[] = [];
  for (const [key, d] of Object.entries(table)) {
    if (d.flag === null) continue;
    out.push({ spec: d.flag, help: d.help, to: to(key), ...argumentOf(d), ...(d.flag.startsWith('--no-') && { negate: true }) });
    if (d.negatedHelp !== undefined) out.push({ spec: d.flag.replace(/^--/, '--no-'), help: d.negatedHelp, to: to(key) });
  }
  return out;
}

/** Flags of the daemon itself, not of a tunnel: where they go in the configuration file. */
const DAEMON_FLAGS: readonly RunFlag[] = [
  { spec: '--control <path>', to: '@control', default: DEFAULT_CONTROL_SOCKET, help: 'control socket for `tun6in4 status`' },
  { spec: '--metrics-listen <host:port>', to: '@metrics.listen', help: 'serve Prometheus metrics at http://host:port/metrics' },
  { spec: '--user <name>', to: '@user', help: 'drop to this user once the TUN and raw socket are open' },
  { spec: '--group <name>', to: '@group', help: 'and this group (default the user\'s)' },
];

/**
 * What `run` adds to a row's flag: --local defaults to auto. (--mode must be given, but is
 * checked with the rest of the tunnel, so a missing one is said as a missing file key is.)
 */
const RUN_ONLY: Readonly<Record<string, Partial<RunFlag>>> = {
  local: { default: 'auto' },
};

export const RUN_FLAGS: readonly RunFlag[] = [
  ...flagsOf(OPTIONS),
  ...flagsOf(ADVERTISE_OPTIONS),
  ...flagsOf(DAEMON_TUNNEL_OPTIONS),
  ...flagsOf(HOST_OPTIONS),
  ...flagsOf(UPDATE_OPTIONS, (k) => `update.${k}`),
  ...DAEMON_FLAGS,
].map((f) => ({ ...f, ...RUN_ONLY[f.to] }));

function optionOf(f: RunFlag): Option {
  const o = new Option(f.spec, f.help);
  if (f.choices) o.choices(f.choices as string[]);
  if (f.parse) o.argParser(f.parse as (text: string, previous: unknown) => unknown);
  if (f.default !== undefined) o.default(f.default);
  return o;
}

/** Fresh commander options for RUN_FLAGS (an Option belongs to the command it is added to). */
const options = () => RUN_FLAGS.map((f) => [f, optionOf(f)] as const);

/** Adds every RUN_FLAGS flag to `run`. */
export function addRunFlags(cmd: Command): Command {
  for (const [, o] of options()) cmd.addOption(o);
  return cmd;
}

/** How another command takes one of `run`'s flags: its own help or default. */
export type FlagUse = Partial<Pick<RunFlag, 'help' | 'default'>>;

/**
 * Adds `run`'s flags for `uses`' keys (as RUN_FLAGS' `to`: `mtu`, `encapPort`, `@user`) to another
 * command: the same spelling, parser and choices, so a value means what it means to `run`; only
 * the help and default may differ.
 */
export function addRunFlagsFor(cmd: Command, uses: Readonly<Record<string, FlagUse>>): Command {
  for (const [key, use] of Object.entries(uses)) {
    const f = RUN_FLAGS.find((r) => r.to === key && !r.spec.startsWith('--no-'));
    if (!f) throw new Error(`no run flag sets ${key}`);
    cmd.addOption(optionOf({ ...f, ...use }));
  }
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
