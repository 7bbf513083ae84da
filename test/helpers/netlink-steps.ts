/**
 * Interface set-up steps run inside a namespace a test made (a netlink socket belongs to the
 * namespace of the process that opened it): `ip netns exec NS node --import tsx netlink-steps.ts
 * <json steps>`. Every step runs, failed or not, and the output is one JSON line: per step
 * `{ ok: value }` or `{ error: { name, code, operation, message } }`. The test then reads the
 * result back with iproute2.
 */
import { parseIpv6, parseIpv6Prefix, type Ipv6Prefix } from '../../src/packet/address.js';
import { configureInterface, interfaceSetup, removeRoutes, sharedRtnetlink, type InstalledRoutes, type InterfacePlan, type InterfaceSetup } from '../../src/tun/interface.js';
import { NetlinkError, type Ipv6Route, type Link } from '../../src/tun/netlink.js';

/** A device by name (its index looked up), or by a given index (one that does not exist, say). */
type Dev = string | { name: string; index: number };
interface RouteText {
  dst: string;
  type?: 'unicast' | 'unreachable';
  dev?: Dev;
  via?: string;
  metric: number;
}
interface PlanText {
  mtu: number;
  multicast: boolean;
  addresses: string[];
  defaultRoute: { via: string | null; metric: number } | null;
  ownPrefixes: string[];
  deviceRoutes?: string[];
}
export type Step =
  | { op: 'interfaceSetup' }
  | { op: 'linkIndex'; name: string }
  | { op: 'setLink'; dev: Dev; set: { mtu?: number; up?: boolean; multicast?: boolean } }
  | { op: 'addrGenModeNone'; dev: Dev }
  | { op: 'replaceAddress'; dev: Dev; addr: string; nodad?: boolean }
  | { op: 'deleteAddress'; dev: Dev; addr: string }
  | { op: 'addRoute'; route: RouteText; how?: 'add' | 'replace' }
  | { op: 'deleteRoute'; route: RouteText }
  | { op: 'configure'; dev: string; plan: PlanText; setup: InterfaceSetup }
  | { op: 'removeRoutes'; routes: { unreachable: string[]; setup: InterfaceSetup } };
export type StepResult = { ok: unknown } | { error: { name: string; code?: string; operation?: string; errno?: number; message: string } };

const nl =
  sharedRtnetlink() ??
  (() => {
    throw new Error('the addon loaded has no rtnetlink calls: build it (npm run build:native)');
  })();

const prefix = (t: string): Ipv6Prefix => parseIpv6Prefix(t) ?? (() => { throw new Error(`bad prefix ${t}`); })();
const dev = (d: Dev): Link => (typeof d === 'string' ? nl.link(d) : d);
const route = (r: RouteText): Ipv6Route => ({ dst: r.dst === 'default' ? { addr: Buffer.alloc(16), len: 0 } : prefix(r.dst), type: r.type, dev: r.dev ? dev(r.dev) : undefined, via: r.via ? parseIpv6(r.via) : null, metric: r.metric });
const plan = (p: PlanText): InterfacePlan => ({
  mtu: p.mtu,
  multicast: p.multicast,
  addresses: p.addresses.map(prefix),
  defaultRoute: p.defaultRoute && { via: p.defaultRoute.via ? parseIpv6(p.defaultRoute.via) : null, metric: p.defaultRoute.metric },
  ownPrefixes: p.ownPrefixes.map(prefix),
  ...(p.deviceRoutes ? { deviceRoutes: p.deviceRoutes.map(prefix) } : {}),
});

async function run(s: Step): Promise<unknown> {
  switch (s.op) {
    case 'interfaceSetup':
      return interfaceSetup();
    case 'linkIndex':
      return nl.linkIndex(s.name);
    case 'setLink':
      return nl.setLink(dev(s.dev), s.set);
    case 'addrGenModeNone':
      return nl.addrGenModeNone(dev(s.dev));
    case 'replaceAddress':
      return nl.replaceAddress(dev(s.dev), prefix(s.addr), { nodad: s.nodad });
    case 'deleteAddress':
      return nl.deleteAddress(dev(s.dev), prefix(s.addr));
    case 'addRoute':
      return nl.addRoute(route(s.route), s.how);
    case 'deleteRoute':
      return nl.deleteRoute(route(s.route));
    case 'configure': {
      const r = await configureInterface(s.dev, plan(s.plan), s.setup);
      return { ...r, unreachable: r.unreachable.map((p) => `${p.addr.toString('hex')}/${p.len}`) };
    }
    case 'removeRoutes': {
      const routes: InstalledRoutes = { unreachable: s.routes.unreachable.map(prefix), setup: s.routes.setup };
      return removeRoutes(routes);
    }
  }
}

const steps = JSON.parse(process.argv[2] ?? '[]') as Step[];
const results: StepResult[] = [];
for (const s of steps) {
  try {
    results.push({ ok: (await run(s)) ?? null });
  } catch (e) {
    const err = e as Error & Partial<NetlinkError>;
    results.push({ error: { name: err.name, message: err.message, ...(e instanceof NetlinkError ? { code: e.code, operation: e.operation, errno: e.errno } : {}) } });
  }
}
process.stdout.write(`${JSON.stringify(results)}\n`, () => process.exit(0));
