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
 * and at the top `user`, `group`, and `[log] level`.
 */
import { extname } from 'node:path';
import { parse as parseToml, stringify as stringifyToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { ConfigError, resolveTunnelOptions, type TunnelOptions } from '../encap/options.js';
import { updateUrlProblem } from './broker-update.js';
import { readTrustedFile, UntrustedFileError } from './trusted-file.js';
import type { TunnelSpec } from './managed-tunnel.js';

export const DEFAULT_CONTROL_SOCKET = '/run/tun6in4/tun6in4.sock';

export interface DaemonConfig {
  /** The file it was read from (none when built from flags or an object). */
  file?: string;
  tunnels: Array<{ name: string; spec: TunnelSpec }>;
  /** `trace`: who may run trace (packet bytes): "owner" (root and the daemon's user, default) or "group" (anyone who can connect). */
  control: { socket: string; mode: number; group?: string; trace?: 'owner' | 'group' };
  metrics: { listen?: string };
  user?: string;
  group?: string;
  logLevel: string;
}

/** A problem in a configuration file: where (a dotted path), and what to do. */
export class ConfigFileError extends Error {
  constructor(
    /** Where in the file (`tunnels.he.mtu`), or the file itself. */
    readonly path: string,
    /** What is wrong there and the fix, without the path. */
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'ConfigFileError';
  }
}

function wholeNumber(min: number, max: number, what: string) {
  const msg = `use ${what}: a whole number in ${min}..${max}`;
  return z.number({ error: msg }).int({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
}

const daemonTunnelKeys = z.strictObject({
  dev: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, 'an interface name of 1..15 letters, digits, "-", "_" or "."').optional(),
  defaultRoute: z.boolean().optional(),
  offload: z.boolean({ error: 'use true or false' }).optional(),
  ioUring: z.boolean({ error: 'use true or false' }).optional(),
  defaultRouteMetric: wholeNumber(1, 4294967295, 'a route metric').optional(),
  keepalive: z.custom<number | 'off'>((v) => v === 'off' || (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 86_400), { error: 'use seconds (1..86400) or "off"' }).optional(),
  localCheckSeconds: wholeNumber(1, 86_400, 'seconds').optional(),
  update: z
    .strictObject({
      url: z.url({ error: 'an http(s) URL' }).optional(),
      insecureHttp: z.boolean({ error: 'use true or false' }).optional(),
      tunnelId: z.string().min(1, 'the broker\'s tunnel id'),
      username: z.string().min(1, 'the broker account\'s username'),
      keyFile: z.string().min(1, 'a file holding the update key (never put the key itself here)'),
      timeoutMs: wholeNumber(100, 120_000, 'milliseconds').optional(),
    })
    .superRefine((u, ctx) => {
      const problem = u.url === undefined ? null : updateUrlProblem(u.url, u.insecureHttp ?? false);
      if (problem) ctx.addIssue({ code: 'custom', path: ['url'], message: problem });
    })
    .optional(),
});
const DAEMON_KEYS = Object.keys(daemonTunnelKeys.shape);

const fileSchema = z.strictObject({
  tunnels: z.record(z.string(), z.record(z.string(), z.unknown(), { error: 'each tunnel is an object of options' }), { error: 'an object of named tunnels' }),
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
    .refine((u) => u !== 'root' && !/^0+$/.test(u), 'dropping privileges to root drops nothing; name an unprivileged user (e.g. useradd --system tun6in4)')
    .optional(),
  group: z.string().min(1).optional(),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).optional() }).optional(),
});

function issueToError(issue: z.core.$ZodIssue, prefix: string): ConfigFileError {
  const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
  if (issue.code === 'unrecognized_keys') return new ConfigFileError([path, issue.keys[0]].filter(Boolean).join('.'), 'unknown key; remove it or check its spelling');
  return new ConfigFileError(path || '(file)', issue.message);
}

/** Validates a parsed configuration object. */
export function parseDaemonConfig(raw: unknown): DaemonConfig {
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) throw issueToError(parsed.error.issues[0], '');
  const f = parsed.data;
  const names = Object.keys(f.tunnels);
  const badName = names.find((n) => !/^[a-zA-Z0-9_-]{1,32}$/.test(n));
  if (badName !== undefined) throw new ConfigFileError(`tunnels.${badName}`, 'tunnel names are 1..32 letters, digits, "-" or "_"');
  if (names.length === 0) throw new ConfigFileError('tunnels', 'no tunnel configured; add at least one under "tunnels"');
  const tunnels = names.map((name) => ({ name, spec: parseTunnel(name, f.tunnels[name]) }));
  const devs = tunnels.map((t) => t.spec.dev).filter(Boolean);
  const dup = devs.find((d, i) => devs.indexOf(d) !== i);
  if (dup) throw new ConfigFileError('tunnels', `two tunnels use dev "${dup}"; give each its own interface name`);
  return {
    tunnels,
    control: { socket: f.control?.socket ?? DEFAULT_CONTROL_SOCKET, mode: parseInt(f.control?.mode ?? '0600', 8), group: f.control?.group, ...(f.control?.trace !== undefined && { trace: f.control.trace }) },
    metrics: { listen: f.metrics?.listen },
    user: f.user,
    group: f.group,
    logLevel: f.log?.level ?? 'info',
  };
}

function parseTunnel(name: string, entry: Record<string, unknown>): TunnelSpec {
  const where = `tunnels.${name}`;
  const daemonPart: Record<string, unknown> = {};
  const tunnelPart: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry)) (DAEMON_KEYS.includes(k) ? daemonPart : tunnelPart)[k] = v;
  const d = daemonTunnelKeys.safeParse(daemonPart);
  if (!d.success) throw issueToError(d.error.issues[0], where);
  const options = tunnelPart as unknown as TunnelOptions;
  // Check every tunnel field now, before anything is touched. "auto" is resolved at start, so
  // validate the rest with a stand-in address.
  const check = options.local === 'auto' ? { ...options, local: '192.0.2.1', allowNonGlobal: true } : options;
  try {
    resolveTunnelOptions(check);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigFileError(`${where}.${e.field}`, e.detail);
    throw e;
  }
  return { ...(tunnelPart as unknown as TunnelSpec), ...d.data };
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
      throw new ConfigFileError(path, `not valid JSON (${(e as Error).message})${hint}`);
    }
  }
  return { file: path, ...parseDaemonConfig(raw) };
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
