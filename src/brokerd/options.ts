/**
 * `[broker.NAME]` of the daemon's file, and `[broker.NAME.api]`: the schema the daemon's
 * configuration checks them with (src/daemon/config.ts names every problem `broker.NAME.field`),
 * and what a broker runs with once checked.
 *
 *   [broker.edge]
 *   local = "203.0.113.1"          # or "auto"
 *   pools = ["2001:db8:4000::/36"]
 *   store = "/var/lib/tun6in4/edge.sqlite"
 *   transport = "raw"              # or "fou", with port
 *   [broker.edge.api]
 *   listen = "127.0.0.1:8641"
 *   tokenFile = "/etc/tun6in4/edge.token"
 */
import { z } from 'zod';
import { HOST_OPTIONS } from '../host/options.js';
import { parseIpv4, parseIpv6Prefix } from '../packet/address.js';
import { parseListen, plainHttpProblem } from './api.js';

export interface BrokerApiConfig {
  listen: string;
  /** PEM files; both or neither. */
  cert?: string;
  key?: string;
  /** A file holding the JSON API's bearer token; none: the JSON API is off. */
  tokenFile?: string;
}

export interface BrokerConfig {
  name: string;
  /** Our IPv4 that clients send to, or "auto". */
  local: string;
  dev?: string;
  pools: string[];
  /** The SQLite file of its tunnels. */
  store: string;
  /** When a change is durable (store.ts): "normal", against a kill of the daemon (default), or "full", against a power cut too. */
  storeSync: 'normal' | 'full';
  transport: 'raw' | 'fou';
  port?: number;
  api?: BrokerApiConfig;
}

const LISTEN = 'host:port in quotes, such as "127.0.0.1:8641" (an IPv6 host in brackets: "[::1]:8641")';

const apiSchema = z
  .strictObject({
    listen: z.string().superRefine((l, ctx) => {
      try {
        parseListen(l);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message.replace(/^listen: /, '') });
      }
    }),
    cert: z.string().min(1, 'the path of a PEM certificate file').optional(),
    key: z.string().min(1, 'the path of its PEM private key file').optional(),
    tokenFile: z.string().min(1, 'the path of a file holding the JSON API\'s bearer token').optional(),
  })
  .superRefine((a, ctx) => {
    if ((a.cert === undefined) !== (a.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: [a.cert === undefined ? 'cert' : 'key'], message: 'missing; HTTPS needs cert and key together (or neither, on a loopback listen)' });
      return;
    }
    if (a.cert === undefined) {
      let problem: string | null = null;
      try {
        problem = plainHttpProblem(a.listen);
      } catch {
        // the listen's own problem is said above
      }
      if (problem) ctx.addIssue({ code: 'custom', path: ['listen'], message: problem });
    }
  });

export const brokerSchema = z
  .strictObject({
    local: z.string().refine((l) => l === 'auto' || (parseIpv4(l) ?? 0) !== 0, 'use our IPv4 that clients send to, such as "203.0.113.1", or "auto" (the source address of the default route)'),
    dev: HOST_OPTIONS.dev.schema.optional(),
    pools: z
      .array(z.string().refine((p) => { const q = parseIpv6Prefix(p); return q !== null && q.len >= 16 && q.len <= 64; }, 'each pool is an IPv6 prefix of length 16–64, such as "2001:db8:4000::/36"'), { error: 'a list of IPv6 prefixes, such as ["2001:db8:4000::/36"]' })
      .min(1, 'give at least one pool: the prefixes routed into the broker, such as ["2001:db8:4000::/36"]'),
    store: z.string().min(1, 'empty; use the path of the tunnel store, such as "/var/lib/tun6in4/NAME.sqlite"'),
    storeSync: z.enum(['normal', 'full'], { error: 'use "normal" (a change survives a kill of the daemon; the default) or "full" (a power cut too, at an fsync a change)' }).optional(),
    transport: z.enum(['raw', 'fou'], { error: 'use "raw" (protocol 41) or "fou" (Foo-over-UDP, with port)' }).optional(),
    port: z.number({ error: 'a UDP port: a whole number in 1..65535' }).int('a UDP port: a whole number in 1..65535').min(1, 'a UDP port: a whole number in 1..65535').max(65535, 'a UDP port: a whole number in 1..65535').optional(),
    api: apiSchema.optional(),
  })
  .superRefine((b, ctx) => {
    if (b.transport === 'fou' && b.port === undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: 'missing; transport "fou" needs the UDP port, ours and the clients\' (e.g. 5555)' });
    if (b.transport !== 'fou' && b.port !== undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: 'only for transport = "fou"; remove it, or set transport = "fou"' });
  });

/** The keys of each table, for "did you mean". */
export const BROKER_KEYS = ['local', 'dev', 'pools', 'store', 'storeSync', 'transport', 'port', 'api'] as const;
export const BROKER_API_KEYS = ['listen', 'cert', 'key', 'tokenFile'] as const;

/** What to write instead, by dotted pattern under `broker.*` (zod's own text names no fix). */
export const BROKER_TYPE_FIX: Record<string, string> = {
  broker: 'a table of named brokers, such as [broker.edge]',
  'broker.*': 'a table of the broker\'s settings, such as [broker.edge] local = "203.0.113.1"',
  'broker.*.local': 'our IPv4 in quotes, such as "203.0.113.1", or "auto"',
  'broker.*.dev': 'an interface name in quotes, such as "t6b-edge"',
  'broker.*.store': 'the path of the tunnel store, such as "/var/lib/tun6in4/edge.sqlite"',
  'broker.*.transport': '"raw" (protocol 41) or "fou" (Foo-over-UDP, with port)',
  'broker.*.api': 'a table: [broker.NAME.api] with listen, and cert, key, tokenFile',
  'broker.*.api.listen': LISTEN,
  'broker.*.api.cert': 'the path of a PEM certificate file',
  'broker.*.api.key': 'the path of its PEM private key file',
  'broker.*.api.tokenFile': 'the path of a file holding the bearer token',
};

/** A checked broker table as the daemon runs it. */
export function brokerConfigOf(name: string, b: z.infer<typeof brokerSchema>): BrokerConfig {
  return {
    name,
    local: b.local,
    ...(b.dev !== undefined && { dev: b.dev }),
    pools: b.pools,
    store: b.store,
    storeSync: b.storeSync ?? 'normal',
    transport: b.transport ?? 'raw',
    ...(b.port !== undefined && { port: b.port }),
    ...(b.api && { api: b.api }),
  };
}
