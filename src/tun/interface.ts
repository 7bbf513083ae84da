/**
 * Configures a TUN interface from a plain plan: this file knows interfaces, not tunnel policy
 * (which addresses and routes a tunnel wants is decided in src/host/open.ts). A plan is carried
 * out over rtnetlink (./netlink.ts) when the addon has it, else with iproute2's `ip` (./iproute.ts);
 * both take the same steps in the same order.
 */
import { constants as osConstants } from 'node:os';
import { formatIpv6, formatIpv6Prefix, type Ipv6Prefix } from '../packet/address.js';
import { loadNative, NativeAddonError } from '../io/native.js';
import { ip, linkExists } from './iproute.js';
import { NetlinkError, Rtnetlink, type Link } from './netlink.js';

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
  /**
   * Prefixes routed into the interface (a broker's pools: one route each, whatever the number of
   * tunnels inside), metric `DEVICE_ROUTE_METRIC`. They go with the interface.
   */
  deviceRoutes?: Ipv6Prefix[];
}

/** Routes we add that do not vanish with the interface, kept so that teardown can remove them. */
export interface InstalledRoutes {
  unreachable: Ipv6Prefix[];
  /** Why no default route was added although one was asked for (another default route exists). */
  defaultRouteSkipped?: string;
  /** How they were added, so that removeRoutes takes the same way. */
  setup?: InterfaceSetup;
}

/** Metric of the unreachable routes for our own prefixes: any real route for them wins. */
const UNREACHABLE_METRIC = 4294967295;
/** Metric of a plan's device routes: the kernel's default for IPv6. */
export const DEVICE_ROUTE_METRIC = 1024;

/**
 * `netlink`: rtnetlink requests from this process (one syscall pair a step); `iproute2`: one `ip`
 * process a step, each a command in the log an operator can run by hand.
 */
export type InterfaceSetup = 'netlink' | 'iproute2';

/** Forces one way of setting interfaces up (`iproute2` to see each step as a command, say). */
export const INTERFACE_SETUP_ENV = 'TUN6IN4_INTERFACE_SETUP';

/** The way this process sets interfaces up: `TUN6IN4_INTERFACE_SETUP` if set, else netlink where the addon has it. */
export function interfaceSetup(env: NodeJS.ProcessEnv = process.env): InterfaceSetup {
  const forced = env[INTERFACE_SETUP_ENV];
  if (forced === 'iproute2') return 'iproute2';
  if (forced && forced !== 'netlink') {
    throw new Error(`${INTERFACE_SETUP_ENV}=${forced} is not valid; use netlink or iproute2 (or leave it unset: netlink where the addon has it, else iproute2)`);
  }
  const nl = sharedRtnetlink();
  if (nl) return 'netlink';
  if (forced) throw new Error(`${INTERFACE_SETUP_ENV}=netlink, but the native addon loaded has no rtnetlink calls (built before them); rebuild it (npx tun6in4 build-native) or unset ${INTERFACE_SETUP_ENV}`);
  return 'iproute2';
}

let shared: Rtnetlink | null | undefined;

/** This process's rtnetlink socket, opened on first use; null without the addon or its netlink calls. */
export function sharedRtnetlink(): Rtnetlink | null {
  if (shared !== undefined) return shared;
  try {
    shared = Rtnetlink.open(loadNative());
  } catch (e) {
    if (!(e instanceof NativeAddonError)) throw e;
    shared = null;
  }
  return shared;
}

/** Whether an interface of this name exists. */
export async function interfaceExists(name: string, setup: InterfaceSetup = interfaceSetup()): Promise<boolean> {
  return setup === 'netlink' ? sharedRtnetlink()!.linkIndex(name) !== null : linkExists(name);
}

/** Brings the interface `name` up as planned; returns what teardown must remove. */
export async function configureInterface(name: string, plan: InterfacePlan, setup: InterfaceSetup = interfaceSetup()): Promise<InstalledRoutes> {
  return setup === 'netlink' ? configureOverNetlink(sharedRtnetlink()!, name, plan) : configureWithIp(name, plan);
}

/** Removes what configureInterface added beyond the interface itself. Best effort, never throws. */
export async function removeRoutes(routes: InstalledRoutes): Promise<void> {
  const nl = routes.setup === 'netlink' ? sharedRtnetlink() : null;
  for (const p of routes.unreachable) {
    if (nl) {
      try {
        nl.deleteRoute(unreachableRoute(p));
      } catch {
        /* gone already, or taken away by someone else */
      }
    } else {
      await ip(['-6', 'route', 'del', 'unreachable', formatIpv6Prefix(p), 'metric', String(UNREACHABLE_METRIC)]).catch(() => undefined);
    }
  }
}

function defaultRouteSkipped(metric: number): string {
  return `an IPv6 default route with metric ${metric} already exists; give another --default-route-metric or remove it`;
}

const unreachableRoute = (p: Ipv6Prefix) => ({ dst: p, type: 'unreachable' as const, metric: UNREACHABLE_METRIC });
const DEFAULT: Ipv6Prefix = { addr: Buffer.alloc(16), len: 0 };
const { EEXIST } = osConstants.errno;

/** The plan over rtnetlink: the steps of configureWithIp, each one request. */
function configureOverNetlink(nl: Rtnetlink, name: string, plan: InterfacePlan): InstalledRoutes {
  const dev: Link = nl.link(name);
  // before it goes up: in the default mode the kernel would give it a link-local of its own making (R17)
  nl.addrGenModeNone(dev);
  nl.setLink(dev, { mtu: plan.mtu, ...(plan.multicast ? {} : { multicast: false }), up: true });
  for (const a of plan.addresses) nl.replaceAddress(dev, a, { nodad: true });
  for (const p of plan.deviceRoutes ?? []) nl.addRoute({ dst: p, dev, metric: DEVICE_ROUTE_METRIC }, 'replace');
  const installed: InstalledRoutes = { unreachable: [], setup: 'netlink' };
  if (plan.defaultRoute) {
    const { via, metric } = plan.defaultRoute;
    try {
      nl.addRoute({ dst: DEFAULT, dev, via, metric });
    } catch (e) {
      // Never take over a default route someone else installed: carry on without ours, and say so.
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
      installed.defaultRouteSkipped = defaultRouteSkipped(metric);
    }
  }
  try {
    for (const p of plan.ownPrefixes) {
      nl.addRoute(unreachableRoute(p), 'replace');
      installed.unreachable.push(p);
    }
  } catch (e) {
    // they outlive the interface: the caller never learns of these, so they go now
    for (const p of installed.unreachable) {
      try {
        nl.deleteRoute(unreachableRoute(p));
      } catch {
        /* best effort */
      }
    }
    throw e;
  }
  return installed;
}

/** The plan with one `ip` process a step. */
async function configureWithIp(name: string, plan: InterfacePlan): Promise<InstalledRoutes> {
  await ip(['link', 'set', 'dev', name, 'addrgenmode', 'none']);
  await ip(['link', 'set', 'dev', name, 'mtu', String(plan.mtu), ...(plan.multicast ? [] : ['multicast', 'off']), 'up']);
  for (const a of plan.addresses) await ip(['-6', 'addr', 'add', formatIpv6Prefix(a), 'dev', name, 'nodad']);
  for (const p of plan.deviceRoutes ?? []) await ip(['-6', 'route', 'replace', formatIpv6Prefix(p), 'dev', name, 'metric', String(DEVICE_ROUTE_METRIC)]);
  const installed: InstalledRoutes = { unreachable: [], setup: 'iproute2' };
  if (plan.defaultRoute) {
    const via = plan.defaultRoute.via ? ['via', formatIpv6(plan.defaultRoute.via)] : [];
    const metric = String(plan.defaultRoute.metric);
    try {
      await ip(['-6', 'route', 'add', 'default', ...via, 'dev', name, 'metric', metric]);
    } catch (e) {
      // Never take over a default route someone else installed: carry on without ours, and say so.
      if (!/File exists/.test((e as Error).message)) throw e;
      installed.defaultRouteSkipped = defaultRouteSkipped(plan.defaultRoute.metric);
    }
  }
  for (const p of plan.ownPrefixes) {
    await ip(['-6', 'route', 'replace', 'unreachable', formatIpv6Prefix(p), 'metric', String(UNREACHABLE_METRIC)]);
    installed.unreachable.push(p);
  }
  return installed;
}

/** `--local auto`: the source address the kernel would use toward `remote`. */
/**
 * This host's IPv4 on the interface of its IPv4 default route (its `src` when the route names
 * one): what a broker's `local = "auto"` is. A routing-table read; nothing is sent.
 */
export async function defaultRouteSource(): Promise<string> {
  const route = await ip(['-4', '-o', 'route', 'show', 'default']);
  const src = / src (\d+\.\d+\.\d+\.\d+)/.exec(route);
  if (src) return src[1];
  const dev = / dev (\S+)/.exec(route);
  if (!dev) throw new Error('no IPv4 default route to take the address from; give local explicitly');
  const addr = / inet (\d+\.\d+\.\d+\.\d+)\//.exec(await ip(['-4', '-o', 'addr', 'show', 'dev', dev[1], 'scope', 'global']));
  if (!addr) throw new Error(`no global IPv4 address on ${dev[1]}, the default route's interface; give local explicitly`);
  return addr[1];
}

export async function sourceAddressToward(remote: string): Promise<string> {
  const out = await ip(['-4', '-o', 'route', 'get', remote]);
  const m = / src (\d+\.\d+\.\d+\.\d+)/.exec(out);
  if (!m) throw new Error(`no IPv4 source address toward ${remote} (ip route get said: ${out.trim()}); give --local explicitly`);
  return m[1];
}
