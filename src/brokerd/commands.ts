/**
 * The broker's control commands: one line on the daemon's control socket, `broker ` and a JSON
 * object, answered with one JSON document. `tun6in4 broker …` is the client (src/cli).
 *
 *   broker {"op":"list","broker":"b1"}
 *   broker {"op":"show","id":"alice"}
 *   broker {"op":"add","tunnel":{…}}            (a new id only)
 *   broker {"op":"set","id":"alice","fields":{"remote":"192.0.2.7"}}
 *   broker {"op":"del","id":"alice"}
 *   broker {"op":"import","tunnels":[{…},…]}    (one transaction: all or none)
 *   broker {"op":"export"}
 *
 * Keys arrive hashed (`keyHash`): the client hashes a plain key, so the daemon never runs
 * scrypt on its main loop and a key never crosses the socket. Every change is acknowledged
 * only once it is stored (BrokerService). `broker` may be left out when the daemon runs one.
 */
import { BrokerTunnelError, type BrokerTunnel } from '../broker/tunnel.js';
import { viewOf, type BrokerService } from './service.js';
import { exportLine, tunnelFields } from './tunnel-input.js';
import { checkBrokerTunnel } from '../broker/tunnel.js';

export const BROKER_COMMAND = 'broker';

/** Commands only root and the daemon's user may run: changes, the key hashes, and packet bytes (a show's last drops). */
const OWNER_ONLY = new Set(['add', 'set', 'del', 'import', 'export', 'show']);

/** The top-level op (parsed, not matched: a field's text could say "op" too), or null. */
function opOf(command: string): string | null {
  try {
    const req = JSON.parse(command.slice(BROKER_COMMAND.length + 1)) as { op?: unknown } | null;
    return typeof req?.op === 'string' ? req.op : null;
  } catch {
    return null;
  }
}

/** Why a peer who is not root or the daemon's user may not run `command`, or null: anyone who can connect may. */
export function brokerCommandRestriction(command: string): string | null {
  if (!command.startsWith(`${BROKER_COMMAND} `)) return null;
  const op = opOf(command);
  // a command that names no op is refused by its handler anyway; refusing it here says less
  if (op === null || !OWNER_ONLY.has(op)) return null;
  return op === 'show' ? 'shows packet bytes (the last drops)' : op === 'export' ? 'shows the update keys\' hashes' : 'changes the broker\'s tunnels';
}

export interface BrokerCommandReply {
  error?: string;
  field?: string;
  [k: string]: unknown;
}

function pick(brokers: ReadonlyMap<string, BrokerService>, name: unknown): BrokerService {
  if (name !== undefined) {
    const b = typeof name === 'string' ? brokers.get(name) : undefined;
    if (!b) throw new BrokerTunnelError('broker', `no broker ${JSON.stringify(name)} runs here; running: ${[...brokers.keys()].join(', ') || 'none'}`);
    return b;
  }
  if (brokers.size === 1) return [...brokers.values()][0];
  if (brokers.size === 0) throw new BrokerTunnelError('broker', 'this daemon runs no broker; add a [broker.NAME] table to its configuration');
  throw new BrokerTunnelError('broker', `this daemon runs ${brokers.size} brokers (${[...brokers.keys()].join(', ')}); name one with --broker`);
}

/** Tunnel fields as the client sent them, with a plain key refused (the client hashes it). */
function hashedFields(input: unknown): Record<string, unknown> {
  const f = tunnelFields(input);
  if (f.key !== undefined && f.key !== null) throw new BrokerTunnelError('key', 'the control socket takes keyHash only; tun6in4 broker hashes a key file for you (--key-file)');
  if (f.key === null) {
    delete f.key;
    f.keyHash = null;
  }
  return f;
}

function need(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw new BrokerTunnelError('id', 'give the tunnel id');
  return id;
}

/** Answers one `broker …` command line; errors come back as `{error, field}`. */
export function brokerCommand(command: string, brokers: ReadonlyMap<string, BrokerService>): BrokerCommandReply {
  try {
    let req: Record<string, unknown>;
    try {
      req = JSON.parse(command.slice(BROKER_COMMAND.length + 1)) as Record<string, unknown>;
    } catch {
      throw new BrokerTunnelError('command', 'broker takes one JSON object: {"op":"list"} (tun6in4 broker writes these)');
    }
    const b = pick(brokers, req.broker);
    switch (req.op) {
      case 'list':
        return { broker: b.name, tunnels: b.views() };
      case 'show': {
        const id = need(req.id);
        const t = b.get(id);
        if (!t) throw new BrokerTunnelError('id', `no tunnel ${id} on broker ${b.name}; broker list shows them`);
        const stats = b.stats(id);
        return { broker: b.name, tunnel: viewOf(t, stats), lastDrops: stats?.lastDrops ?? [] };
      }
      case 'add': {
        const t = checkBrokerTunnel(hashedFields(req.tunnel) as Partial<BrokerTunnel>);
        if (b.get(t.id)) throw new BrokerTunnelError('id', `${t.id} exists on broker ${b.name}; change it with broker set, or remove it first`);
        b.put(t);
        return { broker: b.name, added: t.id };
      }
      case 'set': {
        const id = need(req.id);
        const existing = b.get(id);
        if (!existing) throw new BrokerTunnelError('id', `no tunnel ${id} on broker ${b.name}; add it with broker add`);
        const fields = hashedFields({ ...(req.fields as object), id });
        b.put(checkBrokerTunnel({ ...existing, ...fields } as Partial<BrokerTunnel>));
        return { broker: b.name, changed: id };
      }
      case 'del': {
        const id = need(req.id);
        if (!b.delete(id)) throw new BrokerTunnelError('id', `no tunnel ${id} on broker ${b.name}`);
        return { broker: b.name, deleted: id };
      }
      case 'import': {
        if (!Array.isArray(req.tunnels)) throw new BrokerTunnelError('tunnels', 'a list of tunnels');
        const ts = req.tunnels.map((t, i) => {
          try {
            return checkBrokerTunnel(hashedFields(t) as Partial<BrokerTunnel>);
          } catch (e) {
            if (e instanceof BrokerTunnelError) throw new BrokerTunnelError(`tunnels.${i}.${e.field}`, e.detail);
            throw e;
          }
        });
        b.putMany(ts);
        return { broker: b.name, imported: ts.length };
      }
      case 'export':
        return { broker: b.name, lines: b.list().sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)).map(exportLine) };
      default:
        throw new BrokerTunnelError('op', `${JSON.stringify(req.op)} is not a broker command; use list, show, add, set, del, import or export`);
    }
  } catch (e) {
    if (e instanceof BrokerTunnelError) return { error: e.message, field: e.field };
    return { error: (e as Error).message };
  }
}
