/**
 * SCAFFOLD (issue 37, branch i37-table replaces it): how a broker opens on this host. Only the
 * shape is here so the operating side (src/brokerd) can be written against it in parallel.
 */
import type { BrokerOptions, TunnelDirectory } from '../broker/tunnel.js';

export interface BrokerStatus {
  name: string;
  dev: string;
  local: string;
  transport: 'raw' | 'fou';
  tunnels: number;
  /** Totals over every tunnel, and drops that belong to none (unknown outer source, no route). */
  counters: Record<string, unknown>;
  /** The busiest tunnels by packets, most first. */
  busiest: Array<{ id: string; packets: number }>;
}

export interface RunningBroker {
  readonly name: string;
  readonly dev: string;
  readonly tunnels: TunnelDirectory;
  status(): BrokerStatus;
  close(): Promise<void>;
}

export async function openBroker(options: BrokerOptions): Promise<RunningBroker> {
  throw new Error(`openBroker(${options.name}): not built yet (issue 37 scaffold)`);
}
