/** Configures the tunnel's TUN interface: MTU, addresses (with the R17 link-local), routes. */
import { formatIpv6, formatIpv6Prefix, ipv6Network, linkLocalFromIpv4, type Ipv6Prefix } from '../packet/address.js';
import type { TunnelConfig } from '../encap/options.js';
import { ip } from './iproute.js';

export interface InterfaceOptions {
  /** Install a default IPv6 route through the tunnel (6to4: only when a relay is set). Default true. */
  defaultRoute?: boolean;
  /** Metric of that default route; default 1024 (the kernel's own default). */
  defaultRouteMetric?: number;
}

/** Routes we add that do not vanish with the interface, kept so that teardown can remove them. */
export interface InstalledRoutes {
  unreachable: Ipv6Prefix[];
  /** Why no default route was added although one was asked for (another default route exists). */
  defaultRouteSkipped?: string;
}

/** Metric of the unreachable routes for our own prefixes: any real route for them wins. */
const UNREACHABLE_METRIC = 4294967295;

/**
 * Brings the interface up as the tunnel needs it. Routed prefixes (and the 6to4 site /48) get an
 * `unreachable` route of the worst metric, so packets to parts of them not assigned to a LAN are
 * refused here instead of bouncing through the tunnel and back until their hop limit runs out.
 */
export async function configureInterface(name: string, config: TunnelConfig, local: number, opts: InterfaceOptions = {}): Promise<InstalledRoutes> {
  // No kernel-generated link-local: the tunnel's is fe80::<IPv4> (R17, RFC 4213 §3.7).
  await ip(['link', 'set', 'dev', name, 'addrgenmode', 'none']);
  // 6to4 has no link to send multicast on (the engine would only drop MLD and RS); 6in4 does.
  const multicast = config.mode === '6to4' ? ['multicast', 'off'] : [];
  await ip(['link', 'set', 'dev', name, 'mtu', String(config.mtu), ...multicast, 'up']);
  await ip(['-6', 'addr', 'add', formatIpv6Prefix(config.address), 'dev', name, 'nodad']);
  await ip(['-6', 'addr', 'add', `${formatIpv6(linkLocalFromIpv4(local))}/64`, 'dev', name, 'nodad']);
  const wantDefault = (opts.defaultRoute ?? true) && (config.mode === '6in4' || config.relay !== 0);
  const installed: InstalledRoutes = { unreachable: [] };
  if (wantDefault) {
    const via = config.peer ? ['via', formatIpv6(config.peer)] : [];
    const metric = String(opts.defaultRouteMetric ?? 1024);
    try {
      await ip(['-6', 'route', 'add', 'default', ...via, 'dev', name, 'metric', metric]);
    } catch (e) {
      // Never take over a default route someone else installed: carry on without ours, and say so.
      if (!/File exists/.test((e as Error).message)) throw e;
      installed.defaultRouteSkipped = `an IPv6 default route with metric ${metric} already exists; give another --default-route-metric or remove it`;
    }
  }
  const own = [...config.routed];
  if (config.sitePrefix) own.push(ipv6Network(config.sitePrefix));
  for (const p of own) {
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
