/**
 * One broker as the operating side runs it: its store and its live table, changed together.
 * Every change (control command, HTTP API, nic/update) goes through here: checked, written to
 * the store, taken by the table, committed, and only then acknowledged. The table refusing it
 * (a prefix another tunnel holds) leaves the store as it was.
 */
import { BrokerTunnelError, checkBrokerTunnel, type BrokerTunnel, type BrokerTunnelStats, type TunnelDirectory } from '../broker/tunnel.js';
import type { TunnelStore } from './store.js';

/** A tunnel as `list --json` and `GET /tunnels` show it: never its key hash, only whether it has one. */
export interface TunnelView extends Omit<BrokerTunnel, 'keyHash'> {
  hasKey: boolean;
  counters: BrokerTunnelStats['counters'] | null;
}

export function viewOf(t: BrokerTunnel, stats: BrokerTunnelStats | undefined): TunnelView {
  return { id: t.id, remote: t.remote, link: t.link, routed: t.routed, mtu: t.mtu, user: t.user, hasKey: t.keyHash !== null, counters: stats?.counters ?? null };
}

/** A stored tunnel the table would not take at start (it stays stored; status names it). */
export interface RefusedTunnel {
  id: string;
  error: string;
}

export class BrokerService {
  /** Stored tunnels the table refused when they were loaded. */
  readonly refused: RefusedTunnel[] = [];

  constructor(
    readonly name: string,
    readonly store: TunnelStore,
    readonly table: TunnelDirectory,
  ) {}

  /** Puts every stored tunnel into the table; one it refuses is set aside, not fatal. */
  loadStored(): number {
    let loaded = 0;
    for (const t of this.store.load()) {
      try {
        this.table.put(t);
        loaded++;
      } catch (e) {
        this.refused.push({ id: t.id, error: (e as Error).message });
      }
    }
    return loaded;
  }

  get(id: string): BrokerTunnel | undefined {
    return this.table.get(id);
  }

  list(): BrokerTunnel[] {
    return this.table.list();
  }

  views(): TunnelView[] {
    return this.list()
      .map((t) => viewOf(t, this.table.stats(t.id)))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  stats(id: string): BrokerTunnelStats | undefined {
    return this.table.stats(id);
  }

  /** Adds or replaces one tunnel (checked here); true when it is new. */
  put(t: BrokerTunnel): boolean {
    const checked = checkBrokerTunnel(t);
    const isNew = this.table.get(checked.id) === undefined;
    this.apply([checked], []);
    return isNew;
  }

  /** Adds or replaces many in one transaction: all of them, or (one refused) none. */
  putMany(ts: readonly BrokerTunnel[]): void {
    this.apply(ts.map((t) => checkBrokerTunnel(t)), []);
  }

  /** Removes a tunnel; false when there was none. */
  delete(id: string): boolean {
    if (this.table.get(id) === undefined) return false;
    this.apply([], [id]);
    return true;
  }

  /**
   * Store first, table inside the same transaction, commit last. What the table took before a
   * refusal or a failed commit is put back as it was, so table and store never disagree.
   */
  private apply(puts: readonly BrokerTunnel[], deletes: readonly string[]): void {
    const before = new Map<string, BrokerTunnel | undefined>();
    const remember = (id: string) => {
      if (!before.has(id)) before.set(id, this.table.get(id));
    };
    const restore = () => {
      for (const [id, t] of before) {
        if (t) this.table.put(t);
        else this.table.delete(id);
      }
    };
    this.store.change(
      { puts, deletes },
      () => {
        try {
          for (const t of puts) {
            remember(t.id);
            this.table.put(t);
          }
          for (const id of deletes) {
            remember(id);
            this.table.delete(id);
          }
        } catch (e) {
          restore();
          throw e;
        }
      },
      restore,
    );
  }
}

/** Fields of a change request that name no field of a tunnel, refused rather than ignored. */
export function unknownFields(o: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new BrokerTunnelError(k, `unknown field; use ${allowed.join(', ')}`);
  }
}
