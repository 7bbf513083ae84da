/**
 * A broker's table in memory, for the operating side's tests without root: it keeps tunnels,
 * refuses a link or routed prefix another tunnel holds (as the real table does), and has
 * counters and last drops the test may set. `memoryBrokerOpener` stands in for openBroker.
 */
import { BrokerTunnelError, checkBrokerTunnel, type BrokerOptions, type BrokerTunnel, type BrokerTunnelStats, type TunnelDirectory } from '../../src/broker/tunnel.js';
import { Counters, Traffic } from '../../src/encap/counters.js';
import type { Tracer } from '../../src/engine/trace.js';
import type { BrokerStatus, OpenedBroker } from '../../src/host/broker.js';

const emptyStats = (): BrokerTunnelStats => ({ counters: { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, drops: {} }, lastDrops: [] });

export class MemoryDirectory implements TunnelDirectory {
  readonly tunnels = new Map<string, BrokerTunnel>();
  readonly statsOf = new Map<string, BrokerTunnelStats>();
  /** Every put and delete, in order: a test sees what reached the table. */
  readonly changes: string[] = [];

  put(t: BrokerTunnel): void {
    const c = checkBrokerTunnel(t);
    for (const other of this.tunnels.values()) {
      if (other.id === c.id) continue;
      const mine = [c.link, ...c.routed];
      const held = [other.link, ...other.routed].find((p) => mine.includes(p));
      if (held) throw new BrokerTunnelError('link', `${held} is held by tunnel ${other.id}; give each tunnel its own prefixes`);
    }
    this.tunnels.set(c.id, c);
    if (!this.statsOf.has(c.id)) this.statsOf.set(c.id, emptyStats());
    this.changes.push(`put ${c.id}`);
  }

  delete(id: string): boolean {
    this.statsOf.delete(id);
    const had = this.tunnels.delete(id);
    if (had) this.changes.push(`delete ${id}`);
    return had;
  }

  get(id: string): BrokerTunnel | undefined {
    return this.tunnels.get(id);
  }

  list(): BrokerTunnel[] {
    return [...this.tunnels.values()];
  }

  stats(id: string): BrokerTunnelStats | undefined {
    return this.statsOf.get(id);
  }

  get size(): number {
    return this.tunnels.size;
  }
}

export interface MemoryBroker extends OpenedBroker {
  readonly tunnels: MemoryDirectory;
  readonly options: BrokerOptions;
  closed: boolean;
  /** The tracer the daemon installed (a test calls it as the loop would), or null. */
  tracer: Tracer | null;
}

export function memoryBroker(options: BrokerOptions, directory = new MemoryDirectory()): MemoryBroker {
  const b: MemoryBroker = {
    name: options.name,
    dev: options.dev ?? `t6b-${options.name}`,
    tunnels: directory,
    options,
    closed: false,
    status(): BrokerStatus {
      const busiest = [...directory.statsOf]
        .map(([id, s]) => ({ id, packets: s.counters.rxPackets + s.counters.txPackets }))
        .filter((t) => t.packets > 0)
        .sort((x, y) => y.packets - x.packets)
        .slice(0, 10);
      const totals = new Counters();
      totals.traffic[Traffic.rx_packets] = [...directory.statsOf.values()].reduce((n, s) => n + s.counters.rxPackets, 0);
      return { name: options.name, dev: b.dev, local: options.local, transport: options.transport, tunnels: directory.size, counters: totals.snapshot(), busiest };
    },
    close: async () => {
      b.closed = true;
    },
    tracer: null,
    setTracer(fn) {
      b.tracer = fn;
    },
  };
  return b;
}

/** An opener for Daemon's `openBroker` option; `opened` holds what it opened. */
export function memoryBrokerOpener(): { open: (o: BrokerOptions) => Promise<MemoryBroker>; opened: MemoryBroker[] } {
  const opened: MemoryBroker[] = [];
  return {
    opened,
    open: async (o) => {
      const b = memoryBroker(o);
      opened.push(b);
      return b;
    },
  };
}
