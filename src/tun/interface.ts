/**
 * Configures a TUN interface with iproute2 from a plain plan: this file knows interfaces, not
 * tunnel policy (which addresses and routes a tunnel wants is decided in src/host/open.ts).
 */
import { formatIpv6, formatIpv6Prefix, type Ipv6Prefix } from '../packet/address.js';
import { ip } from './iproute.js';

/** What the interface gets. */
export interface InterfacePlan {
  mtu: number;
  /** Off where there is no link to send multicast on (6to4). */
  multicast: boolean;
  /** The tunnel address, and the link-local one (R17: fe80::<local IPv4>/64; none is generated). */
  addresses: Ipv6Prefix[];
  /** A default route through the interface, unless one with this metric exists already. */
  defaultRoute: { via: Uint8Array | null; metric: number } | null;
  /**
   * Prefixes routed to us (and the 6to4 site /48): each gets an `unreachable` route of the worst
   * metric, so packets to parts of them no LAN uses are refused here instead of bouncing through
   * the tunnel and back until their hop limit runs out.
   */
  ownPrefixes: Ipv6Prefix[];
}

/** Routes we add that do not vanish with the interface, kept so that teardown can remove them. */
export interface InstalledRoutes {
  unreachable: Ipv6Prefix[];
  /** Why no default route was added although one was asked for (another default route exists). */
  defaultRouteSkipped?: string;
}

/** Metric of the unreachable routes for our own prefixes: any real route for them wins. */
const UNREACHABLE_METRIC = 4294967295;

/** Brings the interface `name` up as planned; returns what teardown must remove. */
export async function configureInterface(name: string, plan: InterfacePlan): Promise<InstalledRoutes> {
  await ip(['link', 'set', 'dev', name, 'addrgenmode', 'none']);
  await ip(['link', 'set', 'dev', name, 'mtu', String(plan.mtu), ...(plan.multicast ? [] : ['multicast', 'off']), 'up']);
  for (const a of plan.addresses) await ip(['-6', 'addr', 'add', formatIpv6Prefix(a), 'dev', name, 'nodad']);
  const installed: InstalledRoutes = { unreachable: [] };
  if (plan.defaultRoute) {
    const via = plan.defaultRoute.via ? ['via', formatIpv6(plan.defaultRoute.via)] : [];
    const metric = String(plan.defaultRoute.metric);
    try {
      await ip(['-6', 'route', 'add', 'default', ...via, 'dev', name, 'metric', metric]);
    } catch (e) {
      // Never take over a default route someone else installed: carry on without ours, and say so.
      if (!/File exists/.test((e as Error).message)) throw e;
      installed.defaultRouteSkipped = `an IPv6 default route with metric ${metric} already exists; give another --default-route-metric or remove it`;
    }
  }
  for (const p of plan.ownPrefixes) {
    await ip(['-6', 'route', 'replace', 'unreachable', formatIpv6Prefix(p), 'metric', String(UNREACHABLE_METRIC)]);
    installed.unreachable.push(p);
  }
  return installed;
}

/** Removes what configureInterface added beyond the interface itself. Best effort, never throws. */
export async function removeRoutes(routes: InstalledRoutes): Promise<void> {
  for (const p of routes.unreachable) {
    await ip(['-6', 'route', 'del', 'unreachable', formatIpv6Prefix(p), 'metric', String(UNREACHABLE_METRIC)]).catch(() => undefined);
  }
}

/** `--local auto`: the source address the kernel would use toward `remote`. */
export async function sourceAddressToward(remote: string): Promise<string> {
  const out = await ip(['-4', '-o', 'route', 'get', remote]);
  const m = / src (\d+\.\d+\.\d+\.\d+)/.exec(out);
  if (!m) throw new Error(`no IPv4 source address toward ${remote} (ip route get said: ${out.trim()}); give --local explicitly`);
  return m[1];
}
