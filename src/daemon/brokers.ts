/**
 * The daemon's side of a broker (`[broker.NAME]`): it reads what only it may read (the token and
 * TLS files, under the trusted-file rules), opens the store, opens the broker through an
 * opener it can be handed (tests run without root on an in-memory table), loads every stored
 * tunnel into the table and starts the HTTP API. src/brokerd does the rest.
 */
import type { Tracer } from '../engine/trace.js';
import type { TraceSource } from './trace-stream.js';
import type { BrokerOptions } from '../broker/tunnel.js';
import { startBrokerApi, BrokerApiError, type ApiLog, type BrokerApi } from '../brokerd/api.js';
import type { BrokerConfig } from '../brokerd/options.js';
import { BrokerService, type RefusedTunnel } from '../brokerd/service.js';
import { TunnelStore, TunnelStoreError } from '../brokerd/store.js';
import type { BrokerStatus, OpenedBroker } from '../host/broker.js';
import { ConfigFileError } from './config.js';
import { readTrustedFile, UntrustedFileError } from './trusted-file.js';

export type BrokerOpener = (options: BrokerOptions) => Promise<OpenedBroker>;

/** What `status` shows of a broker: the table's totals and busiest, and the daemon's own parts. */
export interface DaemonBrokerStatus extends BrokerStatus {
  store: string;
  /** Where the HTTP API listens (https:// or http://), or null. */
  api: string | null;
  /** Stored tunnels the table refused at start (they stay stored). */
  refused: RefusedTunnel[];
}

export interface DaemonBroker {
  readonly config: BrokerConfig;
  readonly service: BrokerService;
  /** `trace {"tunnel": NAME}`: every packet decision of the broker's loop, by the broker's name. */
  readonly trace: TraceSource;
  status(): DaemonBrokerStatus;
  close(): Promise<void>;
}

/** The broker options of a checked `[broker.NAME]`. */
export function brokerOptionsOf(c: BrokerConfig): BrokerOptions {
  return { name: c.name, local: c.local, ...(c.dev !== undefined && { dev: c.dev }), pools: c.pools, transport: c.transport, ...(c.port !== undefined && { port: c.port }) };
}

/** A file `[broker.NAME.api]` names, read under the trusted-file rules; the error names the key. */
function readApiFile(c: BrokerConfig, field: 'cert' | 'key' | 'tokenFile', kind: 'config' | 'secret', groups: readonly number[]): string {
  const path = c.api![field]!;
  try {
    const text = readTrustedFile(path, kind, { groups: [process.getgid?.() ?? 0, ...groups] });
    if (field === 'tokenFile' && text.trim().length < 16) throw new UntrustedFileError(path, 'holds fewer than 16 characters; put a long random token in it (openssl rand -hex 32 > FILE)');
    return field === 'tokenFile' ? text.trim() : text;
  } catch (e) {
    const detail = e instanceof UntrustedFileError ? e.message : `${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the path and that this user may read it`;
    throw new ConfigFileError(`broker.${c.name}.api.${field}`, detail);
  }
}

/** The API's files, read and checked, without touching anything (`check -c` reads them so too). */
export function readBrokerApiFiles(c: BrokerConfig, groups: readonly number[] = []): { tls?: { cert: string; key: string }; token: string | null } {
  if (!c.api) return { token: null };
  const tls = c.api.cert !== undefined && c.api.key !== undefined ? { cert: readApiFile(c, 'cert', 'config', groups), key: readApiFile(c, 'key', 'secret', groups) } : undefined;
  const token = c.api.tokenFile !== undefined ? readApiFile(c, 'tokenFile', 'secret', groups) : null;
  return { ...(tls && { tls }), token };
}

/**
 * Starts one broker: files first (nothing is touched while one is wrong), then the store, the
 * table, the stored tunnels, the API. What opened before a failure is closed again.
 */
export async function startDaemonBroker(c: BrokerConfig, open: BrokerOpener, log: ApiLog, groups: readonly number[] = []): Promise<DaemonBroker> {
  const files = readBrokerApiFiles(c, groups);
  let store: TunnelStore;
  try {
    store = TunnelStore.open(c.store, c.storeSync);
  } catch (e) {
    if (e instanceof TunnelStoreError) throw new ConfigFileError(`broker.${c.name}.store`, e.message);
    throw e;
  }
  let running: OpenedBroker | undefined;
  let api: BrokerApi | null = null;
  try {
    running = await open(brokerOptionsOf(c));
    const service = new BrokerService(c.name, store, running.tunnels);
    const loaded = service.loadStored();
    for (const r of service.refused) log.warn({ tunnel: r.id, error: r.error }, 'stored tunnel refused by the table; it stays stored (fix it with broker set, or remove it with broker del)');
    if (c.api) {
      try {
        api = await startBrokerApi({ listen: c.api.listen, ...(files.tls && { tls: files.tls }), token: files.token, service, log });
      } catch (e) {
        if (e instanceof BrokerApiError) throw new ConfigFileError(`broker.${c.name}.api.${e.field}`, e.detail);
        throw e;
      }
    }
    const apiUrl = api && c.api ? `${files.tls ? 'https' : 'http'}://${c.api.listen.replace(/:\d+$/, `:${api.address.port}`)}` : null;
    log.info({ dev: running.dev, tunnels: loaded, store: c.store, api: apiUrl }, 'broker up');
    const r = running;
    const a = api;
    // The loop has one tracer slot: the only watcher's tracer, or one that tells them all.
    const watchers = new Map<Tracer, (why: string) => void>();
    const install = () => {
      const all = [...watchers.keys()];
      r.setTracer(all.length === 0 ? null : all.length === 1 ? all[0] : (p) => all.forEach((t) => t(p)));
    };
    return {
      config: c,
      service,
      trace: {
        name: c.name,
        interfaceName: r.dev,
        watch(tracer, onEnd) {
          watchers.set(tracer, onEnd);
          install();
          return () => {
            if (watchers.delete(tracer)) install();
          };
        },
      },
      status: () => ({ ...r.status(), store: c.store, api: apiUrl, refused: service.refused }),
      close: async () => {
        for (const onEnd of watchers.values()) onEnd(`broker ${c.name} stopped`);
        watchers.clear();
        r.setTracer(null);
        await a?.close();
        await r.close();
        store.close();
      },
    };
  } catch (e) {
    await api?.close();
    await running?.close();
    store.close();
    throw e;
  }
}
