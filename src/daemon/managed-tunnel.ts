/**
 * One tunnel as the daemon runs it: the engine (openTunnel) plus what keeps it healthy over time
 * — keepalive probes and the state derived from them, failing over between a 6rd CE's border
 * relays, following `--local auto`, and telling the broker our IPv4.
 */
import { constants as osConstants } from 'node:os';
import { formatIpv4, parseIpv4 } from '../packet/address.js';
import { openTunnel, type OpenTunnelOptions, type RunningTunnel } from '../host/open.js';
import type { TunnelStatus } from '../host/status.js';
import type { TunnelConfig } from '../encap/resolve.js';
import { Keepalive, type KeepaliveStats, type TunnelHealth } from './keepalive.js';
import { monotonicMs } from '../encap/token-bucket.js';
import { sourceAddressToward } from '../tun/interface.js';
import { BrokerUpdater, type BrokerUpdateOptions, type UpdateLog, type UpdateStatus } from './broker-update.js';
import type { Tracer, TracePoint } from '../engine/trace.js';

export interface TunnelSpec extends OpenTunnelOptions {
  /**
   * Seconds between keepalive probes, or "off". Default 60 for 6in4 and for a 6rd CE given a
   * peer to probe beyond its BR; 6to4 has no single peer.
   */
  keepalive?: number | 'off';
  /** Broker endpoint update (6in4). */
  update?: BrokerUpdateOptions;
  /** With local "auto": seconds between checks of the source address; default 30. */
  localCheckSeconds?: number;
}

export interface ManagedStatus extends TunnelStatus {
  tunnel: string;
  health: TunnelHealth;
  keepalive: KeepaliveStats | null;
  brokerUpdate: UpdateStatus | null;
  localAuto: boolean;
  /** 6rd CE with several BRs: failovers so far (none without a keepalive peer). */
  relayFailovers?: number;
}

export const KEEPALIVE_DEFAULT_S = 60;
/** Probe interval until the first answer. */
const EARLY_PROBE_S = 5;

function errnoName(errno: number): string {
  const entry = Object.entries(osConstants.errno).find(([, v]) => v === errno);
  return entry ? entry[0] : `errno ${errno}`;
}

export class ManagedTunnel {
  private timers: NodeJS.Timeout[] = [];
  private keepalive: Keepalive | null = null;
  private updater: BrokerUpdater | null = null;
  private checkingLocal = false;
  /** 6rd CE: how many times the BR in use was given up. */
  private failovers = 0;
  /** Trace clients watching this tunnel's decisions, and what to tell each when the tunnel stops. */
  private readonly watchers = new Map<Tracer, (why: string) => void>();

  private constructor(
    readonly name: string,
    readonly spec: TunnelSpec,
    readonly running: RunningTunnel,
    private readonly log: UpdateLog,
  ) {}

  /**
   * `log` is this tunnel's own logger: its lines do not repeat the name, so bind it (the daemon
   * passes `log.child({ tunnel: name })`). `onFailed` is told when the tunnel dies underneath us
   * (e.g. its interface was deleted). `config`: the spec's tunnel options as the loader resolved
   * them, if it could (see ConfiguredTunnel).
   */
  static async open(name: string, spec: TunnelSpec, log: UpdateLog, onFailed: (e: Error) => void = () => undefined, config?: TunnelConfig): Promise<ManagedTunnel> {
    const { keepalive, update, localCheckSeconds, ...options } = spec;
    // Read the key before touching the host: a missing key file is a configuration error.
    const updater = update ? new BrokerUpdater(update, log) : null;
    let m: ManagedTunnel | undefined;
    // Under a persistent fault every batch fails: log the first, then at most once a second.
    let lastIoLog = 0;
    let suppressed = 0;
    const running = await openTunnel({
      ...options,
      onIoError: (where, errno) => {
        const now = Date.now();
        if (now - lastIoLog < 1000) {
          suppressed++;
          return;
        }
        log.warn({ where, errno, error: errnoName(errno), suppressedSinceLast: suppressed }, 'packet I/O error');
        lastIoLog = now;
        suppressed = 0;
      },
      onFatal: (e) => {
        void m?.close();
        onFailed(e);
      },
    }, config);
    m = new ManagedTunnel(name, spec, running, log);
    const skipped = running.status().defaultRouteSkipped;
    if (skipped) log.warn({}, `no default route through the tunnel: ${skipped}`);
    m.updater = updater;
    const probes = running.encapsulator.config.peer !== null;
    const seconds = keepalive === 'off' ? 0 : (keepalive ?? (probes ? KEEPALIVE_DEFAULT_S : 0));
    if (seconds > 0 && probes) m.startKeepalive(seconds);
    if (spec.local === 'auto' && spec.mode === '6in4') m.every((localCheckSeconds ?? 30) * 1000, () => void m.checkLocal());
    updater?.start(running.encapsulator.localAddress);
    return m;
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private startKeepalive(seconds: number): void {
    this.keepalive = this.newKeepalive(seconds);
    this.probe();
    this.every(seconds * 1000, () => this.probe());
    // Until the peer has answered once (it may start after us), probe every few seconds so the
    // state leaves "starting" promptly; then the configured interval alone.
    const early = Math.min(seconds, EARLY_PROBE_S) * 1000;
    if (early < seconds * 1000) {
      const t = setInterval(() => {
        if (this.keepalive!.stats().received > 0) return clearInterval(t);
        this.probe();
      }, early);
      t.unref();
      this.timers.push(t);
    }
  }

  private newKeepalive(seconds: number): Keepalive {
    const ka = new Keepalive(this.running.encapsulator, seconds, monotonicMs);
    this.running.engine.setRxInterceptor(ka.intercept);
    return ka;
  }

  private probe(): void {
    const ka = this.keepalive!;
    const [buf, off, len] = ka.nextProbe();
    // 6rd: whether the BR answers is the probe's alone to say (state(0)): direct traffic from
    // other CEs arriving meanwhile proves nothing about the BR.
    if (this.running.encapsulator.config.relays.length > 1 && ka.health(0) === 'down') return this.failOver();
    this.running.engine.sendOwn(buf, off, len);
  }

  /**
   * 6rd CE: the BR in use stopped answering; move to the next one option 212 listed (round
   * robin, so a recovered first BR is tried again after the others) and probe it afresh.
   */
  private failOver(): void {
    const t = this.running.encapsulator;
    const relays = t.config.relays;
    const from = t.relayAddress;
    const to = relays[(relays.indexOf(from) + 1) % relays.length];
    t.setRelay(to);
    this.failovers++;
    this.log.warn({ from: formatIpv4(from), to: formatIpv4(to) }, 'border relay not answering keepalive; failing over to the next');
    this.keepalive = this.newKeepalive(this.keepalive!.intervalSeconds);
    this.probe();
  }

  /** The interface this tunnel created (`status` calls it `name`). */
  get interfaceName(): string {
    return this.running.name;
  }

  /** `--local auto`: follow the kernel's source address toward the remote without a restart. */
  async checkLocal(): Promise<void> {
    if (this.checkingLocal) return;
    this.checkingLocal = true;
    try {
      const now = parseIpv4(await sourceAddressToward(this.spec.remote!));
      const was = this.running.encapsulator.localAddress;
      if (now === null || now === was) return;
      this.running.changeLocalAddress(now);
      this.log.info({ from: formatIpv4(was), to: formatIpv4(now) }, 'local IPv4 changed; tunnel follows');
      this.updater?.start(now);
    } catch (e) {
      this.log.warn({ error: (e as Error).message }, 'could not check the local IPv4');
    } finally {
      this.checkingLocal = false;
    }
  }

  /**
   * Adds a tracer of this tunnel's packet decisions (several clients may watch at once); `onEnd`
   * is told when the tunnel stops. Returns what removes it.
   */
  watch(tracer: Tracer, onEnd: (why: string) => void): () => void {
    this.watchers.set(tracer, onEnd);
    this.installTracers();
    return () => {
      if (this.watchers.delete(tracer)) this.installTracers();
    };
  }

  /** The engine has one tracer slot: the only watcher's tracer, or one that tells them all. */
  private installTracers(): void {
    const all = [...this.watchers.keys()];
    const fan = all.length === 1 ? all[0] : all.length === 0 ? null : (p: TracePoint) => all.forEach((t) => t(p));
    this.running.engine.setTracer(fan);
  }

  status(): ManagedStatus {
    const s = this.running.status();
    const keepalive = this.keepalive?.stats() ?? null;
    // The engine stamps lastRxAt when it writes to the TUN; the keepalive's replies it hands to
    // the probe instead arrived too (status showed "rx 1 packets (last never)").
    const replyAt = keepalive?.lastReplyAt ? Date.parse(keepalive.lastReplyAt) : 0;
    const lastRx = Math.max(this.running.engine.lastRxAt, replyAt);
    const health: TunnelHealth = s.state === 'stopped' ? 'down' : this.keepalive ? this.keepalive.health(lastRx) : lastRx && Date.now() - lastRx < 5 * 60_000 ? 'up' : 'idle';
    return {
      ...s,
      lastRxAt: lastRx ? new Date(lastRx).toISOString() : null,
      tunnel: this.name,
      health,
      keepalive,
      brokerUpdate: this.updater?.status() ?? null,
      localAuto: this.spec.local === 'auto',
      ...(s.sixrd && s.sixrd.relays.length > 1 ? { relayFailovers: this.failovers } : {}),
    };
  }

  async close(why = 'tunnel stopped'): Promise<void> {
    const watchers = [...this.watchers.values()];
    this.watchers.clear();
    this.installTracers();
    for (const end of watchers) end(`${this.name}: ${why}`);
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.updater?.stop();
    await this.running.close();
  }
}
