/**
 * The long-running process: tunnels from a configuration, reloaded on SIGHUP without disturbing
 * unchanged tunnels, a control socket for status, optional Prometheus metrics, and a privilege
 * drop once everything that needs root is open.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { Logger } from 'pino';
import { ConfigFileError, daemonConfigToFile, DEFAULT_CONTROL_SOCKET, type DaemonConfig, type DaemonConfigFile } from './config.js';
import { ControlSocketBusyError, listenControl, type ControlListener } from './control.js';
import { EBADFD, loadNative } from '../io/native.js';
import { ManagedTunnel, type ManagedStatus, type TunnelSpec } from './managed-tunnel.js';
import { renderMetrics } from './metrics.js';
import { resolveDropTarget } from './privileges.js';
import { traceCommand, type TraceSource } from './trace-stream.js';
import { openBroker } from '../host/broker.js';
import { BROKER_COMMAND, brokerCommand, brokerCommandRestriction } from '../brokerd/commands.js';
import type { BrokerService } from '../brokerd/service.js';
import { startDaemonBroker, type BrokerOpener, type DaemonBroker, type DaemonBrokerStatus } from './brokers.js';
import { renderBrokerMetrics } from './metrics.js';

export interface DaemonStatus {
  pid: number;
  startedAt: string;
  uid: number | null;
  tunnels: ManagedStatus[];
  /** Brokers (`[broker.NAME]`): totals, the busiest tunnels, store and API. */
  brokers: DaemonBrokerStatus[];
  /** Tunnels that failed to open, with the reason. */
  failed: Array<{ tunnel: string; error: string }>;
  /**
   * `restartNeeded`: keys the file changed that a running daemon cannot take (RESTART_KEYS; it
   * runs on with the old values); `error`: a key that could not be applied (kept as it was).
   */
  lastReload: { at: string; ok: boolean; error?: string; restartNeeded?: string[] } | null;
  /**
   * Crossings between JS and the addon so far (calls into it, its readiness callbacks): over the
   * packets moved, what the boundary costs a packet (the bench reports it).
   */
  nativeCrossings: number;
}

/**
 * Settings a reload cannot apply to a running daemon: the privilege drop happened once, and the
 * control socket is the one clients are talking on (recreating it after the drop could not set
 * its group). A reload keeps their old values and names them; `show` prints what runs.
 */
export const RESTART_KEYS = ['user', 'group', 'control.socket', 'control.mode', 'control.group'] as const;

/**
 * The RESTART_KEYS whose value differs between the running configuration and a new one, and
 * each `broker.NAME` added, removed or changed: a broker's table, store and API are opened
 * once; its tunnels change at run time through `tun6in4 broker` and the API, not the file.
 */
export function restartKeysChanged(running: DaemonConfig, next: DaemonConfig): string[] {
  const value = (c: DaemonConfig, key: string): unknown => (key.startsWith('control.') ? c.control[key.slice(8) as keyof DaemonConfig['control']] : c[key as 'user' | 'group']);
  const brokers = (c: DaemonConfig) => new Map((c.brokers ?? []).map((b) => [b.name, JSON.stringify(b)]));
  const [was, now] = [brokers(running), brokers(next)];
  const changed = [...new Set([...was.keys(), ...now.keys()])].filter((n) => was.get(n) !== now.get(n)).sort().map((n) => `broker.${n}`);
  return [...RESTART_KEYS.filter((k) => value(running, k) !== value(next, k)), ...changed];
}

/** What `tun6in4 show` prints: the configuration being run, and where it came from. */
export interface RunningConfig {
  pid: number;
  /** The file it was loaded from; null when it came from `run`'s flags. */
  source: string | null;
  appliedAt: string;
  /** The control socket answering, which differs from the configured one after a fallback. */
  controlSocket: string | null;
  config: DaemonConfigFile;
  tunnels: Array<{ tunnel: string; dev: string; health: string; local: string }>;
  failed: Array<{ tunnel: string; error: string }>;
}

/** Stable text of a spec, to tell changed tunnels from unchanged ones. */
function canonical(spec: TunnelSpec): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sort) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])])) : v;
  return JSON.stringify(sort(spec));
}

export interface DaemonOptions {
  /** How a broker is opened on this host (default openBroker, src/host/broker.ts); tests pass an in-memory table. */
  openBroker?: BrokerOpener;
}

export class Daemon {
  readonly tunnels = new Map<string, ManagedTunnel>();
  readonly brokers = new Map<string, DaemonBroker>();
  /** The brokers' services by name, as the broker control commands find them. */
  private readonly brokerServices = new Map<string, BrokerService>();
  /** Why each failed tunnel failed: the message status shows, and the error itself. */
  private readonly failed = new Map<string, { message: string; error: unknown }>();
  private control: ControlListener | null = null;
  private metrics: HttpServer | null = null;
  private readonly startedAt = new Date().toISOString();
  private lastReload: DaemonStatus['lastReload'] = null;
  private running: { config: DaemonConfig; at: string } | null = null;
  /** Who may trace; a reload may change forGroup (control.trace). */
  private readonly access = { restricted: (cmd: string) => cmd === 'trace' || cmd.startsWith('trace '), forGroup: false, ownerOnly: brokerCommandRestriction };
  /** Each tunnel's logger (a pino child keeps its own level): a reload's log.level reaches them too. */
  private readonly loggers = new Map<string, Logger>();

  /**
   * `onAllFailed`: every tunnel has died at run time (the `run` command exits then).
   * `logLevelOverride`: a level fixed from outside (TUN6IN4_LOG_LEVEL), which the file's log.level
   * does not change and `show` reports.
   */
  constructor(
    private readonly log: Logger,
    private readonly onAllFailed: () => void = () => undefined,
    private readonly logLevelOverride?: string,
    private readonly options: DaemonOptions = {},
  ) {}

  /** What trace may watch: every tunnel, and every broker's loop by the broker's name (a tunnel of that name wins). */
  private traceSources(): Map<string, TraceSource> {
    const sources = new Map<string, TraceSource>();
    for (const [name, b] of this.brokers) sources.set(name, b.trace);
    for (const [name, t] of this.tunnels) sources.set(name, t);
    return sources;
  }

  private tunnelFailed(name: string, t: ManagedTunnel, e: Error): void {
    if (this.tunnels.get(name) !== t) return;
    this.tunnels.delete(name);
    const msg = (e as { errno?: number }).errno === EBADFD ? `interface ${t.running.name} disappeared (${e.message}); tunnel stopped, reload or restart to recreate it` : e.message;
    this.failed.set(name, { message: msg, error: e });
    this.log.error({ tunnel: name, error: msg }, 'tunnel failed');
    if (this.tunnels.size === 0 && this.brokers.size === 0) this.onAllFailed();
  }

  /** The error a tunnel failed with (to open, or later), if it has. */
  failure(name: string): unknown {
    return this.failed.get(name)?.error;
  }

  /** Starts the control socket (and metrics) of `config`, then its tunnels. */
  async start(config: DaemonConfig, gid?: number): Promise<void> {
    let path = config.control.socket;
    const handler = (cmd: string) => this.command(cmd);
    // trace carries packet bytes: root and our own user only, unless the file says the group may.
    const access = this.access;
    access.forGroup = config.control.trace === 'group';
    try {
      this.control = await listenControl(path, config.control.mode, gid, handler, undefined, access);
    } catch (e) {
      // Another daemon (e.g. in another network namespace: /run is shared) has the default path.
      // The tunnels matter more than the control socket: take a per-process one and say where.
      if (path !== DEFAULT_CONTROL_SOCKET || !(e instanceof ControlSocketBusyError)) throw e;
      path = DEFAULT_CONTROL_SOCKET.replace(/\.sock$/, `-${process.pid}.sock`);
      this.control = await listenControl(path, config.control.mode, gid, handler, undefined, access);
      this.log.warn({ control: path }, `${DEFAULT_CONTROL_SOCKET} is in use by another tun6in4; this one answers on ${path} (tun6in4 status --control ${path})`);
    }
    if (config.metrics.listen) {
      try {
        this.metrics = await this.listenMetrics(config.metrics.listen);
      } catch (e) {
        // Nothing else has started: give the control socket (and its lock file) back.
        await this.control.close();
        this.control = null;
        // a ConfigFileError, so whoever set it (a file, a flag) can be named
        const problem = new ConfigFileError('metrics.listen', (e as Error).message);
        throw config.file ? problem.within(config.file) : problem;
      }
    }
    this.setLogLevel(config.logLevel);
    try {
      await this.startBrokers(config);
    } catch (e) {
      // a broker is the file's whole point or a large part of it: refuse to start without it
      await this.stop();
      throw e instanceof ConfigFileError && config.file ? e.within(config.file) : e;
    }
    await this.apply({ ...config, logLevel: this.logLevelOverride ?? config.logLevel });
  }

  private async startBrokers(config: DaemonConfig): Promise<void> {
    const open = this.options.openBroker ?? openBroker;
    for (const c of config.brokers ?? []) {
      const b = await startDaemonBroker(c, open, this.log.child({ broker: c.name }), dropGroups(config));
      this.brokers.set(c.name, b);
      this.brokerServices.set(c.name, b.service);
    }
  }

  private setLogLevel(level: string): void {
    const effective = this.logLevelOverride ?? level;
    this.log.level = effective;
    for (const l of this.loggers.values()) l.level = effective;
  }

  /**
   * Moves metrics to `next` (undefined: none); the old listener closes only once the new one
   * listens, so a bad address keeps the old one. Returns the address in effect and any error.
   */
  private async moveMetrics(current: string | undefined, next: string | undefined): Promise<{ listen: string | undefined; error?: string }> {
    if (current === next) return { listen: current };
    let server: HttpServer | null = null;
    if (next) {
      try {
        server = await this.listenMetrics(next);
      } catch (e) {
        return { listen: current, error: `metrics.listen: ${(e as Error).message}; still ${current ? `on ${current}` : 'off'}` };
      }
    }
    const old = this.metrics;
    this.metrics = server;
    if (old) await new Promise((r) => old.close(r));
    if (!next) this.log.info({ was: current }, 'metrics stopped');
    return { listen: next };
  }

  private command(cmd: string): unknown {
    if (cmd === 'status') return this.status();
    if (cmd === 'metrics') {
      const s = this.status();
      return { text: renderMetrics(s.tunnels) + renderBrokerMetrics(s.brokers) };
    }
    if (cmd.startsWith(`${BROKER_COMMAND} `)) return brokerCommand(cmd, this.brokerServices);
    if (cmd === 'config') return this.runningConfig();
    if (cmd === 'trace' || cmd.startsWith('trace ')) return traceCommand(cmd.slice(5), this.traceSources());
    return { error: `unknown command "${cmd}"; known: status, metrics, config, trace, broker` };
  }

  private async listenMetrics(listen: string): Promise<HttpServer> {
    const i = listen.lastIndexOf(':');
    const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = Number(listen.slice(i + 1));
    const server = createHttpServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('try /metrics\n');
        return;
      }
      const s = this.status();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderMetrics(s.tunnels) + renderBrokerMetrics(s.brokers));
    });
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new Error(`cannot listen on ${listen}: ${(e as NodeJS.ErrnoException).code ?? e.message}; choose a free port (ss -ltn shows the taken ones) or an address of this host`));
      server.once('error', fail);
      try {
        server.listen(port, host, () => resolve());
      } catch (e) {
        // a port out of range throws here rather than emitting 'error'
        fail(e as Error);
      }
    });
    this.log.info({ listen }, 'metrics listening');
    if (!/^(127\.|localhost$|::1$|\[::1\]$)/.test(host)) {
      this.log.warn({ listen }, `metrics on ${host} are reachable from other hosts: they show tunnel addresses and traffic; prefer 127.0.0.1 behind a firewall or a reverse proxy`);
    }
    return server;
  }

  /**
   * Makes the running tunnels match `config`: removed ones stop, added ones start, changed ones
   * restart, unchanged ones are not touched. A tunnel that fails to open is logged and shown in
   * status; the others run on.
   */
  async apply(config: DaemonConfig): Promise<void> {
    // From here on this is the configuration being run; tunnels that fail to open are part of
    // it (a reload retries them) and are reported apart.
    this.running = { config, at: new Date().toISOString() };
    const keyGroups = dropGroups(config);
    // The same spec every time for the same file, so an unchanged tunnel compares unchanged.
    const wanted = new Map(config.tunnels.map((t) => [t.name, t.spec.update && keyGroups.length ? { ...t.spec, update: { ...t.spec.update, keyGroups } } : t.spec]));
    const resolved = new Map(config.tunnels.map((t) => [t.name, t.config]));
    for (const [name, t] of this.tunnels) {
      const spec = wanted.get(name);
      if (!spec || canonical(spec) !== canonical(t.spec)) {
        await t.close();
        this.tunnels.delete(name);
        this.loggers.delete(name);
        this.log.info({ tunnel: name }, spec ? 'tunnel changed; restarting it' : 'tunnel removed; stopped');
      }
    }
    for (const name of this.failed.keys()) if (!wanted.has(name)) this.failed.delete(name);
    for (const [name, spec] of wanted) {
      if (this.tunnels.has(name)) continue;
      try {
        let opened: ManagedTunnel | undefined;
        const log = this.log.child({ tunnel: name });
        this.loggers.set(name, log);
        const t = await ManagedTunnel.open(name, spec, log, (e) => opened && this.tunnelFailed(name, opened, e), resolved.get(name));
        opened = t;
        this.tunnels.set(name, t);
        this.failed.delete(name);
        const st = t.status();
        // `up` is the line a person reads; `status` (all of it) is for programs reading the
        // JSON log, and a terminal's pretty log leaves it out.
        this.log.info({ tunnel: name, up: describeUp(st), status: st }, 'tunnel up');
      } catch (e) {
        this.failed.set(name, { message: (e as Error).message, error: e });
        this.log.error({ tunnel: name, error: (e as Error).message }, 'tunnel failed to start');
      }
    }
  }

  /** SIGHUP: load and apply a new configuration; a bad one keeps the old running and says why. */
  async reload(load: () => DaemonConfig): Promise<void> {
    let config: DaemonConfig;
    try {
      config = load();
    } catch (e) {
      this.lastReload = { at: new Date().toISOString(), ok: false, error: (e as Error).message };
      this.log.error({ error: (e as Error).message }, 'reload refused: keeping the running configuration');
      return;
    }
    const old = this.running?.config ?? config;
    const restartNeeded = restartKeysChanged(old, config);
    const metrics = await this.moveMetrics(old.metrics.listen, config.metrics.listen);
    this.setLogLevel(config.logLevel);
    this.access.forGroup = config.control.trace === 'group';
    // A trace the new file no longer allows ends now, not whenever its client stops it.
    this.control?.accessChanged();
    // What runs from now on: the new tunnels, log level, metrics and trace access, and the old
    // values of what only a restart can change. `show` prints this.
    await this.apply({
      ...config,
      brokers: old.brokers,
      user: old.user,
      group: old.group,
      control: { ...old.control, trace: config.control.trace },
      metrics: { listen: metrics.listen },
      logLevel: this.logLevelOverride ?? config.logLevel,
    });
    this.lastReload = { at: new Date().toISOString(), ok: true, ...(metrics.error && { error: metrics.error }), ...(restartNeeded.length && { restartNeeded }) };
    if (metrics.error) this.log.error({ error: metrics.error }, 'reload: metrics not moved');
    if (restartNeeded.length) {
      this.log.warn({ restartNeeded }, `reload: ${restartNeeded.join(', ')} changed in the file but take effect only on a restart; running on with the old values (tun6in4 show prints them)`);
    }
    this.log.info({ tunnels: [...this.tunnels.keys()] }, 'configuration reloaded');
  }

  status(): DaemonStatus {
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      uid: process.getuid?.() ?? null,
      tunnels: [...this.tunnels.values()].map((t) => t.status()),
      brokers: [...this.brokers.values()].map((b) => b.status()),
      failed: [...this.failed].map(([tunnel, f]) => ({ tunnel, error: f.message })),
      lastReload: this.lastReload,
      nativeCrossings: loadNative().crossings(),
    };
  }

  /** The configuration being run, as a file would give it (never an update key, only its file). */
  runningConfig(): RunningConfig {
    if (!this.running) throw new Error('no configuration applied yet');
    const st = this.status();
    return {
      pid: st.pid,
      source: this.running.config.file ?? null,
      appliedAt: this.running.at,
      controlSocket: this.control?.path ?? null,
      config: daemonConfigToFile(this.running.config),
      tunnels: st.tunnels.map((t) => ({ tunnel: t.tunnel, dev: t.name, health: t.health, local: t.local })),
      failed: st.failed,
    };
  }

  async stop(): Promise<void> {
    for (const t of this.tunnels.values()) await t.close();
    this.tunnels.clear();
    for (const [name, b] of this.brokers) {
      try {
        await b.close();
      } catch (e) {
        this.log.error({ broker: name, error: (e as Error).message }, 'broker did not close cleanly');
      }
    }
    this.brokers.clear();
    this.brokerServices.clear();
    await new Promise((r) => (this.metrics ? this.metrics.close(r) : r(undefined)));
    this.metrics = null;
    await this.control?.close();
    this.control = null;
  }
}

/** The group the daemon will run as after its privilege drop, which may read a key file. */
function dropGroups(config: DaemonConfig): number[] {
  if (config.user === undefined) return [];
  try {
    return [resolveDropTarget(config.user, config.group).gid];
  } catch {
    // serve() refuses such a user before anything starts; a library caller learns at the drop
    return [];
  }
}

/** `tun6in4-0: 6in4 192.0.2.1 -> 198.51.100.1[, FOU udp 5555 -> 5555], 2001:db8:1::2/64, MTU 1480, offload, io_uring`. */
function describeUp(s: ManagedStatus): string {
  const far = s.remote ?? (s.relay ? `relay ${s.relay}` : 'any');
  const io = [s.tunIo.offload ? 'offload' : 'no offload', s.tunIo.ioUring ? 'io_uring' : 'read/write'].join(', ');
  const t = s.transport;
  const over = t.encap === 'fou' ? `, FOU udp ${t.port} -> ${t.dport}` : '';
  return `${s.name}: ${s.mode} ${s.local} -> ${far}${over}, ${s.address}, MTU ${s.mtu} (${s.pmtu}), ${io}`;
}
