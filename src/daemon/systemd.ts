/**
 * systemd's readiness protocol (sd_notify(3)) for `Type=notify` units: READY=1 once every
 * configured tunnel is up or has failed and been logged; RELOADING=1 with MONOTONIC_USEC, then
 * READY=1, around each SIGHUP reload; STATUS= with a one-line health summary at READY and whenever
 * it changes; WATCHDOG=1 when the unit has a watchdog; STOPPING=1 on the way out. None of it
 * happens without $NOTIFY_SOCKET, and a failure to notify never stops the daemon.
 */
import type { Logger } from 'pino';
import { loadNative } from '../io/native.js';
import type { DaemonStatus } from './daemon.js';

/** Sends one datagram to the notify socket (the addon's `notifySocket`; tests pass a fake). */
export type NotifySend = (address: string, message: string) => void;

/**
 * How often the health summary is recomputed. Keepalive state changes with the passing of time
 * (probes unanswered, traffic gone quiet), not with an event we could hook, so it is polled.
 */
export const HEALTH_POLL_MS = 1000;
/** `systemctl status` shows STATUS= on one line: an error quoted in it is cut to this. */
const STATUS_ERROR_CHARS = 160;
/** The variables systemd sets for the protocol; removed once read so no child (`ip`) inherits them. */
const NOTIFY_ENV = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/**
 * The socket NOTIFY_SOCKET names: an absolute path, or `@name` in the abstract namespace. Null
 * when unset or empty. Anything else (systemd 254's `vsock:` addresses among them) is refused
 * with the reason, so the daemon can say why it will not notify.
 */
export function notifySocketAddress(value: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  if (value.startsWith('/') || (value.startsWith('@') && value.length > 1)) return value;
  throw new Error(`NOTIFY_SOCKET=${JSON.stringify(value)} is not an absolute path or an @abstract socket name (the only kinds tun6in4 can send to)`);
}

/**
 * Milliseconds between WATCHDOG=1 messages: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
 * advises; null when there is no watchdog, or it is meant for another process (WATCHDOG_PID).
 */
export function watchdogIntervalMs(env: Record<string, string | undefined>, pid: number): number | null {
  const usec = env.WATCHDOG_USEC;
  if (!usec || !/^\d+$/.test(usec) || Number(usec) === 0) return null;
  const forPid = env.WATCHDOG_PID;
  if (forPid !== undefined && forPid !== '' && forPid !== String(pid)) return null;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ');
}

/**
 * One notification datagram: `KEY=value` lines in the order given. A value never spans lines
 * (a newline would start a new assignment systemd would act on).
 */
export function formatNotify(fields: Record<string, string | number | bigint>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${oneLine(String(v))}`)
    .join('\n');
}

/**
 * CLOCK_MONOTONIC in µs, what MONOTONIC_USEC carries: libuv's hrtime reads that clock on Linux,
 * the clock systemd compares with the time it asked for the reload (Type=notify-reload).
 */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/**
 * `2 tunnels: he up, lab down`: each tunnel's health (failed ones `failed`), by name, then each
 * broker's size (`broker edge: 812 tunnels`); a refused last reload is added, since the daemon
 * then runs an older configuration than the file's.
 */
export function healthSummary(s: Pick<DaemonStatus, 'tunnels' | 'failed' | 'lastReload'> & Partial<Pick<DaemonStatus, 'brokers'>>): string {
  const each = [...s.tunnels.map((t) => [t.tunnel, t.health]), ...s.failed.map((f) => [f.tunnel, 'failed'])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const n = each.length;
  const brokers = (s.brokers ?? []).map((b) => `broker ${b.name}: ${b.tunnels} tunnel${b.tunnels === 1 ? '' : 's'}`);
  let line = n === 0 ? (brokers.length ? '' : 'no tunnels') : `${n} tunnel${n === 1 ? '' : 's'}: ${each.map(([name, health]) => `${name} ${health}`).join(', ')}`;
  if (brokers.length) line = [line, ...brokers].filter(Boolean).join('; ');
  if (s.lastReload && !s.lastReload.ok) {
    const why = oneLine(s.lastReload.error ?? 'see the log');
    line += `; last reload refused: ${why.length > STATUS_ERROR_CHARS ? `${why.slice(0, STATUS_ERROR_CHARS - 1)}…` : why}`;
  }
  return line;
}

export class SystemdNotifier {
  private warned = false;
  private watchdog: NodeJS.Timeout | null = null;
  private healthPoll: NodeJS.Timeout | null = null;
  private summary: (() => string) | null = null;
  private lastStatus: string | null = null;
  /** Between RELOADING=1 and its READY=1: the health poll keeps quiet so STATUS says "reloading". */
  private reloadingNow = false;

  /**
   * From systemd's environment, which is then removed from it; null when not started by a notify
   * unit (or NOTIFY_SOCKET is unusable, which is logged). The watchdog starts here, before the
   * tunnels open, so a slow start cannot look like a hang.
   */
  static fromEnvironment(log: Logger, env: Record<string, string | undefined> = process.env, send?: NotifySend): SystemdNotifier | null {
    let address: string | null = null;
    try {
      address = notifySocketAddress(env.NOTIFY_SOCKET);
    } catch (e) {
      log.warn({ error: (e as Error).message }, 'not notifying systemd');
    }
    const watchdogMs = watchdogIntervalMs(env, process.pid);
    for (const k of NOTIFY_ENV) delete env[k];
    if (address === null) return null;
    return new SystemdNotifier(address, watchdogMs, log, send ?? ((a, m) => loadNative().notifySocket(a, m)));
  }

  constructor(
    readonly address: string,
    /** WATCHDOG=1 every this many ms; null: no watchdog. */
    readonly watchdogMs: number | null,
    private readonly log: Logger,
    private readonly sendFn: NotifySend,
  ) {
    if (watchdogMs !== null) {
      // On the main loop on purpose: if the loop stalls, the pings stop and systemd restarts us.
      this.watchdog = setInterval(() => this.send({ WATCHDOG: 1 }), watchdogMs);
      this.watchdog.unref();
    }
  }

  /** READY=1 with the health summary (at start, and when a reload is over); STATUS= follows each change from then on. */
  ready(summary: () => string): void {
    this.summary = summary;
    this.reloadingNow = false;
    const status = this.currentSummary();
    this.lastStatus = status;
    this.send(status === null ? { READY: 1 } : { READY: 1, STATUS: status });
    if (this.healthPoll === null) {
      this.healthPoll = setInterval(() => this.pollHealth(), HEALTH_POLL_MS);
      this.healthPoll.unref();
    }
  }

  /** SIGHUP: a reload begins; `ready` ends it, whether it was applied or refused. */
  reloading(): void {
    this.reloadingNow = true;
    this.lastStatus = 'reloading the configuration';
    this.send({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: this.lastStatus });
  }

  /** A STATUS= line of our own (why the start failed, say). */
  status(text: string): void {
    this.lastStatus = text;
    this.send({ STATUS: text });
  }

  /** Shutdown has begun: STOPPING=1, and no more pings or health lines. */
  stopping(why: string): void {
    this.close();
    this.send({ STOPPING: 1, STATUS: why });
  }

  close(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.healthPoll) clearInterval(this.healthPoll);
    this.watchdog = this.healthPoll = null;
  }

  private currentSummary(): string | null {
    try {
      return this.summary ? this.summary() : null;
    } catch (e) {
      this.log.debug({ error: (e as Error).message }, 'systemd: no health summary');
      return null;
    }
  }

  private pollHealth(): void {
    if (this.reloadingNow) return;
    const status = this.currentSummary();
    if (status === null || status === this.lastStatus) return;
    this.lastStatus = status;
    this.send({ STATUS: status });
  }

  private send(fields: Record<string, string | number | bigint>): void {
    try {
      this.sendFn(this.address, formatNotify(fields));
    } catch (e) {
      const detail = { socket: this.address, error: (e as Error).message };
      if (this.warned) return void this.log.debug(detail, 'systemd notification not sent');
      this.warned = true;
      this.log.warn(detail, 'cannot notify systemd (NOTIFY_SOCKET); running on without it, later failures only at debug level');
    }
  }
}
