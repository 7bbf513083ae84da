/**
 * The daemon's configuration file, TOML (`*.toml`) or JSON: one or more tunnels and the daemon's
 * own settings. Both formats go through one schema, so every error names the same place in the
 * file (`tunnels.he.mtu`), the value and the fix, whichever format it was written in.
 *
 *   [tunnels.he]
 *   mode = "6in4"
 *   local = "auto"
 *   remote = "…"
 *   address = "…"
 *
 *   [control]
 *   socket = "/run/tun6in4/tun6in4.sock"
 *   mode = "0660"
 *   group = "tun6in4"
 *
 *   [metrics]
 *   listen = "127.0.0.1:9641"
 *
 * and at the top `user`, `group`, and `[log] level`. A broker (`[broker.NAME]`, src/brokerd/options.ts)
 * may stand beside the tunnels or instead of them.
 */
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { closest, distance } from 'fastest-levenshtein';
import { parse as parseToml, stringify as stringifyToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { checkOptionRows, ConfigError, TUNNEL_OPTION_KEYS, type OptionDefinition, type OptionKey, type TunnelOptions } from '../encap/options.js';
import { HOST_OPTIONS } from '../host/options.js';
import { ADVERTISE_OPTION_KEYS, ADVERTISE_OPTIONS, resolveAdvertiseOptions } from '../advertise/options.js';
import { OPTIONS_GIVEN_BY, resolveTunnelOptions, type TunnelConfig } from '../encap/resolve.js';
import { HE_UPDATE_URL, updateUrlProblem } from './broker-update.js';
import { createSystemUser } from './privileges.js';
import { readTrustedFile, UntrustedFileError } from './trusted-file.js';
import type { TunnelSpec } from './managed-tunnel.js';
import { BROKER_API_KEYS, BROKER_KEYS, BROKER_TYPE_FIX, brokerConfigOf, brokerSchema, type BrokerConfig } from '../brokerd/options.js';

export const DEFAULT_CONTROL_SOCKET = '/run/tun6in4/tun6in4.sock';

/** One tunnel of a configuration: its options as written, and what they resolved to. */
export interface ConfiguredTunnel {
  name: string;
  spec: TunnelSpec;
  /**
   * The loader's resolution of the tunnel options, which the tunnel runs on (resolved once). None
   * with local "auto": the address is known only at start, and 6to4 and 6rd derive from it.
   */
  config?: TunnelConfig;
}

export interface DaemonConfig {
  /** The file it was read from (none when built from flags or an object). */
  file?: string;
  tunnels: ConfiguredTunnel[];
  /** `[broker.NAME]` tables: brokers this daemon runs (src/brokerd); none when left out. */
  brokers?: BrokerConfig[];
  /** `trace`: who may run trace (packet bytes): "owner" (root and the daemon's user, default) or "group" (anyone who can connect). */
  control: { socket: string; mode: number; group?: string; trace?: 'owner' | 'group' };
  metrics: { listen?: string };
  user?: string;
  group?: string;
  logLevel: string;
}

/** One problem in a configuration file: where (a dotted path), and what is wrong with the fix. */
export interface ConfigProblem {
  path: string;
  detail: string;
}

/**
 * Problems in a configuration file: `path` and `detail` are the first; `problems` holds every one
 * found (the message has one line each), so a file is fixed in one round, not one error a run.
 */
export class ConfigFileError extends Error {
  readonly problems: ConfigProblem[];
  constructor(
    /** Where in the file (`tunnels.he.mtu`), or the file itself. */
    readonly path: string,
    /** What is wrong there and the fix, without the path. */
    readonly detail: string,
    more: ConfigProblem[] = [],
  ) {
    const problems = [{ path, detail }, ...more];
    super(problems.map((p) => `${p.path}: ${p.detail}`).join('\n'));
    this.name = 'ConfigFileError';
    this.problems = problems;
  }

  static of(problems: ConfigProblem[]): ConfigFileError {
    return new ConfigFileError(problems[0].path, problems[0].detail, problems.slice(1));
  }

  /** The same problems with `prefix` (a file name) in front of each path. */
  within(prefix: string): ConfigFileError {
    return ConfigFileError.of(this.problems.map((p) => ({ path: p.path === prefix ? p.path : `${prefix}: ${p.path}`, detail: p.detail })));
  }
}

/** The known key closest to a misspelt one (`tunnelID` → `tunnelId`, `keepAlive` → `keepalive`), if any is close. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const same = known.find((k) => k.toLowerCase() === lower);
  if (same) return same;
  const best = closest(lower, known.map((k) => k.toLowerCase()));
  const k = known.find((c) => c.toLowerCase() === best);
  return k !== undefined && distance(lower, best) <= Math.max(2, Math.floor(key.length / 3)) ? k : undefined;
}

function unknownKey(key: string, known: readonly string[]): string {
  const guess = closestKey(key, known);
  return guess ? `unknown key; did you mean "${guess}"?` : `unknown key; remove it or use one of ${known.join(', ')}`;
}

function wholeNumber(min: number, max: number, what: string) {
  const msg = `use ${what}: a whole number in ${min}..${max}`;
  return z.number({ error: msg }).int({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
}

const KEEPALIVE = 'use seconds (1 or more) or "off"; at most 86400 (a day)';

/**
 * The broker update's keys (a tunnel's `update` table), in the shape of the tunnel options
 * (src/encap/options.ts): each with its `run` flag. tunnelId, username and keyFile are required.
 */
export const UPDATE_OPTIONS = {
  url: {
    schema: z.url({ error: 'an http(s) URL' }),
    expect: 'use an https URL such as the broker\'s update URL',
    flag: '--update-url <url>',
    help: `broker update URL (default ${HE_UPDATE_URL})`,
  },
  insecureHttp: {
    schema: z.boolean({ error: 'use true or false' }),
    expect: 'use true or false',
    flag: '--update-insecure-http',
    help: 'allow a plain http:// --update-url (the key crosses the network in cleartext)',
  },
  tunnelId: {
    schema: z.string().min(1, 'the broker\'s tunnel id'),
    expect: 'use the broker\'s tunnel id',
    flag: '--tunnel-id <id>',
    help: 'broker tunnel id: enables the broker endpoint update',
  },
  username: {
    schema: z.string().min(1, 'the broker account\'s username'),
    expect: 'use the broker account\'s username',
    flag: '--username <name>',
    help: 'broker account name, for the update',
  },
  keyFile: {
    schema: z.string().min(1, 'a file holding the update key (never put the key itself here)'),
    expect: 'use a file holding the update key (never put the key itself here)',
    flag: '--update-key-file <file>',
    help: 'file holding the broker update key (never put the key on the command line)',
  },
  timeoutMs: {
    schema: wholeNumber(100, 120_000, 'milliseconds'),
    expect: 'use milliseconds: a whole number in 100..120000',
    flag: null,
    help: 'per request; default 10 s',
  },
} as const satisfies Record<string, OptionDefinition>;

const UPDATE_REQUIRED: ReadonlySet<string> = new Set(['tunnelId', 'username', 'keyFile']);

const updateSchema = z
  .strictObject(Object.fromEntries(Object.entries(UPDATE_OPTIONS).map(([k, d]) => [k, UPDATE_REQUIRED.has(k) ? d.schema : d.schema.optional()])) as Record<string, z.ZodType>)
  .superRefine((u, ctx) => {
    const { url, insecureHttp } = u as { url?: string; insecureHttp?: boolean };
    const problem = url === undefined ? null : updateUrlProblem(url, insecureHttp ?? false);
    if (problem) ctx.addIssue({ code: 'custom', path: ['url'], message: problem });
  });

/**
 * A tunnel's keys that are the daemon's, not openTunnel's (TunnelSpec beyond OpenTunnelOptions),
 * in the shape of the tunnel options: each with its `run` flag, if it has one.
 */
export const DAEMON_TUNNEL_OPTIONS = {
  keepalive: {
    schema: z.union([z.literal('off'), z.number({ error: KEEPALIVE }).int({ error: KEEPALIVE }).min(1, { error: KEEPALIVE }).max(86_400, { error: KEEPALIVE })], { error: KEEPALIVE }),
    expect: KEEPALIVE,
    flag: '--keepalive <seconds|off>',
    help: '6in4, 6rd with --peer: ICMPv6 echo to the peer every N seconds (default 60)',
  },
  localCheckSeconds: {
    schema: wholeNumber(1, 86_400, 'seconds'),
    expect: 'use seconds: a whole number in 1..86400',
    flag: null,
    help: 'with local "auto": seconds between checks of the source address; default 30',
  },
  update: {
    schema: updateSchema,
    expect: 'use a table: [tunnels.NAME.update] with tunnelId, username and keyFile',
    // its keys have flags (UPDATE_OPTIONS); the table itself has none
    flag: null,
    help: 'broker endpoint update (6in4)',
  },
} as const satisfies Record<string, OptionDefinition>;

const optionalSchemas = (table: Record<string, OptionDefinition>) => Object.fromEntries(Object.entries(table).map(([k, d]) => [k, d.schema.optional()]));
const daemonTunnelKeys = z.strictObject({ ...optionalSchemas(HOST_OPTIONS), ...optionalSchemas(DAEMON_TUNNEL_OPTIONS) });
const DAEMON_KEYS = Object.keys(daemonTunnelKeys.shape);

const fileSchema = z.strictObject({
  tunnels: z.record(z.string(), z.record(z.string(), z.unknown(), { error: 'each tunnel is an object of options' }), { error: 'an object of named tunnels' }).optional(),
  broker: z.record(z.string(), z.record(z.string(), z.unknown(), { error: 'each broker is a table of settings' }), { error: 'a table of named brokers' }).optional(),
  control: z
    .strictObject({
      socket: z.string().min(1).optional(),
      mode: z
        .string()
        .regex(/^0?[0-7]{3}$/, 'an octal file mode such as "0600" or "0660"')
        .refine((m) => (parseInt(m, 8) & 0o007) === 0, 'a socket others can reach lets every local user read status and tunnel addresses; use "0600", or "0660" with control.group for the users who may')
        .optional(),
      group: z.string().min(1).optional(),
      trace: z.enum(['owner', 'group'], { error: 'use "owner" (root and the daemon\'s user may trace packets, the default) or "group" (anyone who can reach the socket)' }).optional(),
    })
    .optional(),
  metrics: z
    .strictObject({
      listen: z
        .string()
        .regex(/^([^\s:[\]]+|\[[0-9a-fA-F:.]+\]):\d{1,5}$/, 'host:port, e.g. "127.0.0.1:9641" (an IPv6 host in brackets: "[::1]:9641")')
        .refine((l) => {
          const port = Number(l.slice(l.lastIndexOf(':') + 1));
          return port >= 1 && port <= 65535;
        }, 'the port must be 1..65535, e.g. "127.0.0.1:9641"')
        .optional(),
    })
    .optional(),
  user: z
    .string()
    .min(1)
    .refine((u) => u !== 'root' && !/^0+$/.test(u), `dropping privileges to root drops nothing; name an unprivileged user (${createSystemUser('tun6in4')})`)
    .optional(),
  group: z.string().min(1).optional(),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).optional() }).optional(),
});

/** The keys each object of the file may hold (tunnel names as `*`), for "did you mean". */
const TUNNEL_KEYS = [...TUNNEL_OPTION_KEYS, ...ADVERTISE_OPTION_KEYS, ...DAEMON_KEYS];
const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': ['user', 'group', 'tunnels', 'broker', 'control', 'metrics', 'log'],
  control: ['socket', 'mode', 'group', 'trace'],
  metrics: ['listen'],
  log: ['level'],
  'tunnels.*': TUNNEL_KEYS,
  'tunnels.*.update': Object.keys(UPDATE_OPTIONS),
  'broker.*': BROKER_KEYS,
  'broker.*.api': BROKER_API_KEYS,
};

/** What to write instead, for a value of the wrong type (zod's own text names no fix). */
const TYPE_FIX: Record<string, string> = {
  user: 'a user name such as "tun6in4"',
  group: 'a group name such as "tun6in4"',
  tunnels: 'a table of named tunnels, such as [tunnels.he]',
  control: 'a table: [control] with socket, mode, group, trace',
  'control.socket': 'a path such as "/run/tun6in4/tun6in4.sock"',
  'control.mode': 'an octal mode in quotes, such as "0660"',
  'control.group': 'a group name such as "tun6in4"',
  metrics: 'a table: [metrics] with listen',
  'metrics.listen': 'host:port in quotes, such as "127.0.0.1:9641"',
  log: 'a table: [log] with level',
  'log.level': 'one of "trace", "debug", "info", "warn", "error", "fatal"',
  'tunnels.*': 'a table of the tunnel\'s options, such as [tunnels.he] mode = "6in4"',
  'tunnels.*.dev': 'an interface name in quotes, such as "he-ipv6"',
  'tunnels.*.update': 'a table: [tunnels.NAME.update] with tunnelId, username and keyFile',
  'tunnels.*.update.url': 'an https URL in quotes',
  'tunnels.*.update.tunnelId': 'the broker\'s tunnel id in quotes, such as "123456"',
  'tunnels.*.update.username': 'the broker account name in quotes',
  'tunnels.*.update.keyFile': 'the path of a file holding the update key, such as "/etc/tun6in4/he.key"',
  ...BROKER_TYPE_FIX,
};

const pattern = (path: readonly PropertyKey[]) => path.map((k, i) => (i === 1 && (path[0] === 'tunnels' || path[0] === 'broker') ? '*' : String(k))).join('.');

function typeOf(v: unknown): string {
  return v === undefined ? 'nothing' : v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a table' : `${typeof v} ${JSON.stringify(v)}`;
}

function valueIn(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/**
 * Every zod issue as a problem with a fix. A key reported missing is left out when a misspelt key
 * beside it is its "did you mean" (`tunnelID` is one mistake, not two).
 */
function issuesToProblems(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[], raw: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const guessed = new Set<string>();
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const at = [...prefix, ...issue.path];
    const known = KNOWN_KEYS[pattern(at)] ?? [];
    for (const key of issue.keys) {
      out.push({ path: [...at, key].map(String).join('.'), detail: unknownKey(key, known) });
      const guess = closestKey(key, known);
      if (guess) guessed.add([...at, guess].map(String).join('.'));
    }
  }
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') continue;
    const at = [...prefix, ...issue.path];
    const path = at.map(String).join('.') || '(file)';
    if (guessed.has(path)) continue;
    const value = valueIn(raw, issue.path);
    const fix = TYPE_FIX[pattern(at)];
    let detail = issue.message;
    if (issue.code === 'invalid_type' && /^Invalid input/.test(issue.message)) {
      detail = value === undefined ? `missing; add it: ${fix ?? `a ${issue.expected}`}` : `${typeOf(value)} is not valid; use ${fix ?? `a ${issue.expected}`}`;
    } else if (/^Invalid (option|input)/.test(issue.message) && fix) {
      detail = `${typeOf(value)} is not valid; use ${fix}`;
    } else if (/^Too small/.test(issue.message) && fix) {
      detail = `empty; use ${fix}`;
    }
    out.push({ path, detail });
  }
  return out;
}

/** Validates a parsed configuration object; a ConfigFileError lists every problem found. */
export function parseDaemonConfig(raw: unknown): DaemonConfig {
  const problems: ConfigProblem[] = [];
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) problems.push(...issuesToProblems(parsed.error.issues, [], raw));
  // The tunnels are checked even when something else in the file is wrong, so all is said at once.
  const entries = namedTables(raw, 'tunnels', 'tunnel', problems);
  const tunnels: ConfiguredTunnel[] = [];
  for (const [name, entry] of entries) {
    const t = parseTunnel(name, entry);
    if ('problems' in t) problems.push(...t.problems);
    else tunnels.push({ name, ...t });
  }
  const brokers = parseBrokers(raw, problems);
  // (a tunnel or broker with a problem is configured, wrongly: its own problem says so)
  if (parsed.success && entries.length === 0 && brokers.length === 0 && !problems.some((p) => /^(tunnels|broker)\./.test(p.path))) problems.push({ path: 'tunnels', detail: 'no tunnel configured; add at least one under "tunnels" (or a broker under "broker")' });
  const devs = tunnels.map((t) => t.spec.dev).filter(Boolean);
  const dup = devs.find((d, i) => devs.indexOf(d) !== i);
  if (dup) problems.push({ path: 'tunnels', detail: `two tunnels use dev "${dup}"; give each its own interface name` });
  if (problems.length || !parsed.success) throw ConfigFileError.of(problems);
  const f = parsed.data;
  return {
    tunnels,
    brokers,
    control: { socket: f.control?.socket ?? DEFAULT_CONTROL_SOCKET, mode: parseInt(f.control?.mode ?? '0600', 8), group: f.control?.group, ...(f.control?.trace !== undefined && { trace: f.control.trace }) },
    metrics: { listen: f.metrics?.listen },
    user: f.user,
    group: f.group,
    logLevel: f.log?.level ?? 'info',
  };
}

/**
 * The named tables under `key` (`[tunnels.NAME]`, `[broker.NAME]`) whose names are valid; a bad
 * name is a problem, an entry that is no table is left to the file schema, which says so.
 */
function namedTables(raw: unknown, key: string, what: string, problems: ConfigProblem[]): Array<[string, Record<string, unknown>]> {
  const tables = valueIn(raw, [key]);
  if (tables === null || typeof tables !== 'object' || Array.isArray(tables)) return [];
  const out: Array<[string, Record<string, unknown>]> = [];
  for (const [name, entry] of Object.entries(tables as Record<string, unknown>)) {
    if (!/^[a-zA-Z0-9_-]{1,32}$/.test(name)) problems.push({ path: `${key}.${name}`, detail: `${what} names are 1..32 letters, digits, "-" or "_"` });
    else if (entry !== null && typeof entry === 'object' && !Array.isArray(entry)) out.push([name, entry as Record<string, unknown>]);
  }
  return out;
}

/** The `[broker.NAME]` tables, checked; their problems go to `problems`. */
function parseBrokers(raw: unknown, problems: ConfigProblem[]): BrokerConfig[] {
  const out: BrokerConfig[] = [];
  for (const [name, entry] of namedTables(raw, 'broker', 'broker', problems)) {
    const b = brokerSchema.safeParse(entry);
    if (!b.success) problems.push(...issuesToProblems(b.error.issues, ['broker', name], entry));
    else out.push(brokerConfigOf(name, b.data));
  }
  const stores = out.map((b) => b.store);
  const dupStore = stores.find((s, i) => stores.indexOf(s) !== i);
  if (dupStore) problems.push({ path: 'broker', detail: `two brokers use store "${dupStore}"; give each its own file` });
  return out;
}

/** One tunnel's spec and resolved config, or every problem found in it. */
function parseTunnel(name: string, entry: Record<string, unknown>): Omit<ConfiguredTunnel, 'name'> | { problems: ConfigProblem[] } {
  const where = `tunnels.${name}`;
  const problems: ConfigProblem[] = [];
  const daemonPart: Record<string, unknown> = {};
  const tunnelPart: Record<string, unknown> = {};
  const advertisePart: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry)) {
    if (DAEMON_KEYS.includes(k)) daemonPart[k] = v;
    else if ((TUNNEL_OPTION_KEYS as readonly string[]).includes(k)) tunnelPart[k] = v;
    else if ((ADVERTISE_OPTION_KEYS as readonly string[]).includes(k)) advertisePart[k] = v;
    else problems.push({ path: `${where}.${k}`, detail: unknownKey(k, TUNNEL_KEYS) });
  }
  const d = daemonTunnelKeys.safeParse(daemonPart);
  if (!d.success) problems.push(...issuesToProblems(d.error.issues, ['tunnels', name], daemonPart));
  // Check every tunnel field now, before anything is touched. "auto" is resolved at start, so
  // validate the rest with a stand-in address. The options stop at their first problem: a field
  // found bad is set aside and the rest checked again, until they pass or what is missing is
  // one that was set aside (whose own problem is already said).
  const options: Record<string, unknown> = { ...tunnelPart };
  const setAside = new Set<string>();
  const standIn = options.local === 'auto';
  let config: TunnelConfig | undefined;
  for (let round = 0; round < TUNNEL_OPTION_KEYS.length; round++) {
    // the stand-in must not be the remote, or the check calls the tunnel one that sends to itself
    const check = standIn ? { ...options, local: options.remote === '192.0.2.1' ? '192.0.2.2' : '192.0.2.1', allowNonGlobal: true } : options;
    try {
      config = resolveTunnelOptions(check as unknown as TunnelOptions);
      break;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      const top = e.field.split('.')[0];
      if (setAside.has(top)) break;
      // missing because the option that gives it was set aside: that one's problem is the one to fix
      if (e.value === undefined && [...setAside].some((k) => OPTIONS_GIVEN_BY[k as OptionKey]?.includes(top as OptionKey))) break;
      problems.push({ path: `${where}.${e.field}`, detail: e.detail });
      if (!(top in options)) break;
      setAside.add(top);
      delete options[top];
    }
  }
  // router advertisements: against what the rest resolved to (their rows alone if it did not)
  try {
    if (config) resolveAdvertiseOptions(advertisePart, config);
    else checkOptionRows(ADVERTISE_OPTIONS, advertisePart);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push({ path: `${where}.${e.field}`, detail: e.detail });
  }
  if (problems.length || !d.success) return { problems };
  // in the file's order, as `show` writes it back
  const openPart = Object.fromEntries(Object.entries(entry).filter(([k]) => k in tunnelPart || k in advertisePart));
  const spec = { ...(openPart as unknown as TunnelSpec), ...d.data };
  return standIn ? { spec } : { spec, config };
}

export type ConfigFormat = 'toml' | 'json';

/**
 * `*.toml` is TOML; anything else is JSON, which is what every file name meant before TOML was
 * read, so existing configurations keep loading.
 */
export function configFormatOf(path: string): ConfigFormat {
  return extname(path).toLowerCase() === '.toml' ? 'toml' : 'json';
}

/** Parses configuration text (`path` names the file in errors) and validates it. */
export function parseDaemonConfigText(text: string, format: ConfigFormat, path: string): DaemonConfig {
  let raw: unknown;
  if (format === 'toml') {
    try {
      raw = parseToml(text);
    } catch (e) {
      if (!(e instanceof TomlError)) throw e;
      // The message's first line is the reason; the rest is a code excerpt that a one-line
      // error cannot carry, so the position is given as line and column instead.
      const why = e.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigFileError(path, `not valid TOML at line ${e.line}, column ${e.column}: ${why}`);
    }
  } else {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      const hint = /^\s*(#|\[|[A-Za-z_][\w-]*\s*=)/.test(text) ? '; it looks like TOML: name the file *.toml' : '';
      // V8 quotes the text it stopped in, line breaks and all: one problem stays one line
      throw new ConfigFileError(path, `not valid JSON (${(e as Error).message.replace(/\r?\n/g, '\\n')})${hint}`);
    }
  }
  return { file: path, ...keyFilesFrom(dirname(resolve(path)), parseDaemonConfig(raw)) };
}

/**
 * A relative keyFile names a file beside the configuration, as an include would: the daemon's
 * working directory (/ under systemd) is nothing its author could see.
 */
function keyFilesFrom(dir: string, config: DaemonConfig): DaemonConfig {
  for (const t of config.tunnels) {
    const u = t.spec.update;
    if (u && !isAbsolute(u.keyFile)) t.spec = { ...t.spec, update: { ...u, keyFile: resolve(dir, u.keyFile) } };
  }
  const beside = <T extends string | undefined>(p: T): T => (p === undefined || isAbsolute(p) ? p : (resolve(dir, p) as T));
  for (const b of config.brokers ?? []) {
    b.store = beside(b.store);
    if (b.api) b.api = { ...b.api, cert: beside(b.api.cert), key: beside(b.api.key), tokenFile: beside(b.api.tokenFile) };
    if (b.api) for (const k of ['cert', 'key', 'tokenFile'] as const) if (b.api[k] === undefined) delete b.api[k];
  }
  return config;
}

/** Reads and validates a configuration file, TOML or JSON by its extension (see configFormatOf). */
export function loadDaemonConfig(path: string): DaemonConfig {
  let text: string;
  try {
    text = readTrustedFile(path, 'config');
  } catch (e) {
    if (e instanceof UntrustedFileError) throw new ConfigFileError(path, e.problem);
    const code = (e as NodeJS.ErrnoException).code;
    const fix = code === 'ENOENT' ? 'check the path' : code === 'EACCES' ? 'make it readable by this user' : 'check the file';
    throw new ConfigFileError(path, `cannot read it (${code ?? (e as Error).message}); ${fix}`);
  }
  return parseDaemonConfigText(text, configFormatOf(path), path);
}

/** The configuration as the file that gives it: what `parseDaemonConfig` reads back unchanged. */
export interface DaemonConfigFile {
  user?: string;
  group?: string;
  log: { level: string };
  tunnels: Record<string, Record<string, unknown>>;
  broker?: Record<string, Omit<BrokerConfig, 'name'>>;
  control: { socket: string; mode: string; group?: string; trace?: 'owner' | 'group' };
  metrics?: { listen: string };
}

/** Broker update settings that may be shown; anything else (a key, now or later) never is. */
const SHOWN_UPDATE_KEYS = ['url', 'insecureHttp', 'tunnelId', 'username', 'keyFile', 'timeoutMs'] as const;

/**
 * The file form of a configuration, with the daemon's defaults written out. Tunnel options pass
 * through as given (`local = "auto"` stays auto: the daemon follows it); the broker update keeps
 * only the settings above, so a secret can never reach `show`, only the key file's path.
 */
export function daemonConfigToFile(config: DaemonConfig): DaemonConfigFile {
  const tunnels: DaemonConfigFile['tunnels'] = {};
  for (const { name, spec } of config.tunnels) {
    const entry: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(spec)) if (v !== undefined && k !== 'update') entry[k] = v;
    if (spec.update) {
      const u = spec.update as unknown as Record<string, unknown>;
      entry.update = Object.fromEntries(SHOWN_UPDATE_KEYS.filter((k) => u[k] !== undefined).map((k) => [k, u[k]]));
    }
    tunnels[name] = entry;
  }
  const control: DaemonConfigFile['control'] = { socket: config.control.socket, mode: `0${config.control.mode.toString(8).padStart(3, '0')}` };
  if (config.control.group !== undefined) control.group = config.control.group;
  if (config.control.trace !== undefined) control.trace = config.control.trace;
  // Written in the order people read a config: who runs it, the tunnels, then the daemon's ports.
  return {
    ...(config.user !== undefined && { user: config.user }),
    ...(config.group !== undefined && { group: config.group }),
    tunnels,
    ...(config.brokers?.length && { broker: Object.fromEntries(config.brokers.map(({ name, ...b }) => [name, b])) }),
    control,
    ...(config.metrics.listen !== undefined && { metrics: { listen: config.metrics.listen } }),
    log: { level: config.logLevel },
  };
}

/** A configuration file's text; `comments` head a TOML file (JSON has no comments). */
export function formatDaemonConfig(file: DaemonConfigFile, format: ConfigFormat, comments: string[] = []): string {
  if (format === 'json') return `${JSON.stringify(file, null, 2)}\n`;
  const head = comments.map((c) => `# ${c}`.trimEnd()).join('\n');
  return `${head ? `${head}\n\n` : ''}${stringifyToml(file).trim()}\n`;
}
