/**
 * Opening a broker on this host: one TUN (with offload) for every tunnel, one outer socket of its
 * own (raw protocol 41 bound to `local`, or FOU on one UDP port; never shared with client tunnels),
 * the loop with a BrokerPolicy, the interface up and one route per pool into it. Tunnels are
 * added, moved and removed through `tunnels` while it runs; nothing here is per tunnel.
 */
import { BrokerPolicy } from '../broker/policy.js';
import { BrokerTunnelError, type BrokerOptions, type TunnelDirectory } from '../broker/tunnel.js';
import { Drop, type CountersSnapshot } from '../encap/counters.js';
import { FOU_MTU_MAX, MTU_MAX } from '../encap/options.js';
import { TunnelEngine } from '../engine/engine.js';
import type { Tracer } from '../engine/trace.js';
import { ipv6Network, parseIpv4, parseIpv6Prefix, type Ipv6Prefix } from '../packet/address.js';
import { FouTransport } from '../transport/fou.js';
import { RawTransport } from '../transport/raw.js';
import type { OuterTransport } from '../transport/transport.js';
import type { TunDevice } from '../tun/device.js';
import { configureInterface, defaultRouteSource, interfaceExists } from '../tun/interface.js';
import { LinuxTun } from '../tun/linux-tun.js';
import { OffloadTun } from '../tun/offload.js';
import { TunnelSetupError } from './open.js';

export interface BrokerStatus {
  name: string;
  dev: string;
  local: string;
  transport: 'raw' | 'fou';
  tunnels: number;
  /** Totals over every tunnel, and drops that belong to none (unknown outer source, no route). */
  counters: CountersSnapshot;
  /** The busiest tunnels by packets, most first. */
  busiest: Array<{ id: string; packets: number }>;
}

/** What operating a broker needs of it (the daemon, its API and commands): the table, status, close. */
export interface OpenedBroker {
  readonly name: string;
  readonly dev: string;
  readonly tunnels: TunnelDirectory;
  /** `busiest`: how many of the busiest tunnels to list (default 10). */
  status(busiest?: number): BrokerStatus;
  /** Stops forwarding and deletes the TUN (its routes go with it). Idempotent. */
  close(): Promise<void>;
  /** Tells `fn` about every packet decision of the broker's loop (TunnelEngine.setTracer); null stops. */
  setTracer(fn: Tracer | null): void;
}

export interface RunningBroker extends OpenedBroker {
  /** The loop's policy (per-tunnel MTU, drop rings) and the loop: for traces and tests. */
  readonly policy: BrokerPolicy;
  readonly engine: TunnelEngine<BrokerPolicy>;
}

/** Linux's IFNAMSIZ less the terminating zero. */
const IFNAME_MAX = 15;

export async function openBroker(options: BrokerOptions): Promise<RunningBroker> {
  if (options.local === 'auto') {
    try {
      options = { ...options, local: await defaultRouteSource() };
    } catch (e) {
      throw new BrokerTunnelError('local', `"auto": ${(e as Error).message}`);
    }
  }
  const local = parseIpv4(options.local);
  if (local === null) throw new BrokerTunnelError('local', `${JSON.stringify(options.local)} is not an IPv4 address; give the address of this host clients send to`);
  const dev = options.dev ?? `t6b-${options.name}`;
  if (dev.length > IFNAME_MAX || !/^[A-Za-z0-9_.-]+$/.test(dev)) throw new BrokerTunnelError('dev', `${JSON.stringify(dev)} is not an interface name of 1–${IFNAME_MAX} letters, digits, '.', '_' or '-'; give dev, or a shorter broker name`);
  const fou = options.transport === 'fou';
  if (fou && !(Number.isInteger(options.port) && options.port! > 0 && options.port! < 65536)) throw new BrokerTunnelError('port', `transport "fou" needs the UDP port clients use (1–65535), not ${JSON.stringify(options.port)}`);
  const pools = options.pools.map((p, i) => {
    const parsed = parseIpv6Prefix(p);
    if (!parsed || parsed.len > 64) throw new BrokerTunnelError(`pools.${i}`, `${JSON.stringify(p)} is not an IPv6 prefix of length 0–64 (e.g. 2001:db8:100::/40)`);
    return ipv6Network(parsed);
  });
  const policy = new BrokerPolicy({ local: options.local, pools: options.pools, transport: options.transport, pmtu: options.pmtu, clampMss: options.clampMss, ttl: options.ttl, tos: options.tos });
  if (await interfaceExists(dev)) throw new TunnelSetupError('DEVICE_EXISTS', `interface ${dev} already exists; choose another dev, or delete it (ip link del ${dev})`);

  const pmtu = options.pmtu ?? 'dynamic';
  let tun: LinuxTun | undefined;
  let transport: OuterTransport | undefined;
  try {
    tun = LinuxTun.open(dev, options.offload ?? true, options.ioUring ?? true);
    await setUpInterface(tun.name, fou ? FOU_MTU_MAX : MTU_MAX, pools);
    transport = fou ? FouTransport.open({ local, port: options.port!, dport: options.port!, pmtu, checksum: 'gso' }) : RawTransport.open(local, pmtu);
  } catch (e) {
    transport?.close();
    tun?.close();
    if (e instanceof BrokerTunnelError || e instanceof TunnelSetupError) throw e;
    throw new TunnelSetupError('SETUP_FAILED', `broker ${options.name}: setting up ${dev} failed: ${(e as Error).message}`, e);
  }
  const drops = policy.counters.drops;
  const device: TunDevice = tun.offload ? new OffloadTun(tun, (reason) => drops[Drop[reason]]++, { udp: tun.udpOffload }) : tun;
  let running = true;
  const engine = new TunnelEngine(policy, device, transport, { onFatal: () => (running = false) });
  engine.start();
  const table = policy.tunnels;
  return {
    name: options.name,
    dev: tun.name,
    tunnels: table,
    policy,
    engine,
    status(busiest = 10): BrokerStatus {
      const top: Array<{ slot: number; packets: number }> = [];
      for (const slot of table.slots()) {
        const packets = table.packets(slot);
        if (packets === 0 || (top.length === busiest && packets <= top[top.length - 1].packets)) continue;
        let at = top.length;
        while (at > 0 && top[at - 1].packets < packets) at--;
        top.splice(at, 0, { slot, packets });
        if (top.length > busiest) top.pop();
      }
      return {
        name: options.name,
        dev: tun!.name,
        local: options.local,
        transport: fou ? 'fou' : 'raw',
        tunnels: table.size,
        counters: policy.counters.snapshot(),
        busiest: top.map((t) => ({ id: table.idOf(t.slot)!, packets: t.packets })),
      };
    },
    async close(): Promise<void> {
      if (!running) return;
      running = false;
      engine.stop();
    },
    setTracer(fn: Tracer | null): void {
      engine.setTracer(fn);
    },
  };
}

/**
 * The TUN up with `mtu`, no address of its own and no multicast, and one route per pool into it:
 * over rtnetlink (or iproute2: configureInterface picks). The routes go
 * with the interface when the TUN closes.
 */
async function setUpInterface(dev: string, mtu: number, pools: Ipv6Prefix[]): Promise<void> {
  await configureInterface(dev, { mtu, multicast: false, addresses: [], defaultRoute: null, ownPrefixes: [], deviceRoutes: pools });
}
