/** `tun6in4 doctor`: checks of this host for what a tunnel needs, each finding with its fix. */
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { classifyIpv4, parseIpv4 } from '../packet/address.js';
import { checkOption, FOU_MTU_MAX, MTU_DEFAULT, type TunnelOptions } from '../encap/options.js';
import { fouLocalPort } from '../encap/resolve.js';
import { BUILD_NATIVE_COMMAND, loadNative, NativeAddonError, nativeAddonInfo, type NativeAddon, type NativeAddonInfo } from '../io/native.js';
import { ip } from '../tun/iproute.js';
import { sourceAddressToward } from '../tun/interface.js';
import { formatTunNode, lookupTunUser, modeAllows, tunAccessFix, tunNode, tunOpenDenied } from '../host/tun-access.js';
import type { Finding } from './finding.js';
import { checkHosting } from './hosting.js';
import { checkBroker } from './broker.js';
import type { BrokerConfig } from '../brokerd/options.js';

export type { Finding, FindingLevel } from './finding.js';

/** The tunnel options doctor checks the host for; each means and is checked as it is for a tunnel. */
const DOCTOR_TUNNEL_KEYS = ['mode', 'local', 'remote', 'relay', 'mtu', 'encap', 'encapDport', 'encapPort', 'routed', 'address'] as const;

export type DoctorOptions = Partial<Pick<TunnelOptions, (typeof DOCTOR_TUNNEL_KEYS)[number]>> & {
  /** The user the daemon runs as (`--user`, systemd's `User=`): can it open /dev/net/tun? */
  user?: string;
  /** Brokers of a configuration file (`doctor -c FILE`): what each needs of this host (broker.ts). */
  brokers?: BrokerConfig[];
};

const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

function capabilities(): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

const NETWORK_CAPABILITIES = [['CAP_NET_ADMIN', CAP_NET_ADMIN], ['CAP_NET_RAW', CAP_NET_RAW]] as const;

/** Which of the two capabilities a tunnel needs this process lacks (none when root). */
export function missingNetworkCapabilities(): string[] {
  const caps = capabilities();
  return NETWORK_CAPABILITIES.filter(([, bit]) => ((caps >> BigInt(bit)) & 1n) === 0n).map(([name]) => name);
}

/** Runs every check; a malformed option is a ConfigError naming it, as it would be for a tunnel. */
export async function runDoctor(o: DoctorOptions = {}): Promise<Finding[]> {
  for (const key of DOCTOR_TUNNEL_KEYS) {
    if (o[key] !== undefined && !(key === 'local' && o.local === 'auto')) checkOption(key, o[key]);
  }
  const out: Finding[] = [];
  const add = (f: Finding) => out.push(f);

  // /dev/net/tun: opening it creates nothing (only TUNSETIFF does).
  if (!existsSync('/dev/net/tun')) {
    add({ check: '/dev/net/tun', level: 'fail', detail: 'missing', fix: 'load the tun module (modprobe tun), or pass the device into the container (--device /dev/net/tun)' });
  } else {
    try {
      closeSync(openSync('/dev/net/tun', 'r+'));
      add({ check: '/dev/net/tun', level: 'ok', detail: 'present and openable' });
    } catch (e) {
      add(tunOpenFinding(e as NodeJS.ErrnoException));
    }
  }
  if (o.user !== undefined) add(tunForUserFinding(o.user));

  const missing = missingNetworkCapabilities();
  for (const [name] of NETWORK_CAPABILITIES) {
    add(
      missing.includes(name)
        ? { check: name, level: 'fail', detail: 'missing', fix: `run as root, or give ${name} (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)` }
        : { check: name, level: 'ok', detail: 'in the effective set' },
    );
  }

  const native = checkNativeAddon(add);
  if (native) {
    try {
      native.closeFd(native.openRawSocket(0, 0, 0));
      add({ check: 'raw socket (protocol 41)', level: 'ok', detail: 'opens' });
    } catch (e) {
      const fix = missing.includes('CAP_NET_RAW') ? 'needs CAP_NET_RAW (see above)' : 'this sandbox refuses raw sockets (gVisor needs --net-raw); a protocol-41 tunnel cannot run here';
      add({ check: 'raw socket (protocol 41)', level: 'fail', detail: (e as Error).message, fix });
    }
  }

  if (native && o.encap === 'fou') checkFou(native, o, add);

  const sit = existsSync('/sys/module/sit') || /^sit /m.test(readFileSyncSafe('/proc/modules'));
  add({ check: 'kernel sit driver', level: 'info', detail: sit ? 'present: the kernel could run this tunnel too' : 'absent: this is the case tun6in4 is for' });

  if (o.mode) await checkAddresses(o, add);
  if (o.mode) checkEncapForMode(o, add);
  if (o.local && o.local !== 'auto') await checkLocalIsOurs(o.local, add);
  await checkHosting(o, add);
  for (const b of o.brokers ?? []) {
    await checkBroker(b, add, {
      localIsOurs: (local, a, what) => checkLocalIsOurs(local, a, what, 'give local an address from ip -4 addr, or "auto" (the address of the IPv4 default route)'),
      fouPort: (local, port, a, what) => (native ? checkFou(native, { local, encapPort: port }, a, what) : undefined),
    });
  }
  return out;
}

/** This process could not open /dev/net/tun: its mode (EACCES) or a device cgroup (EPERM), with the fix. */
function tunOpenFinding(e: NodeJS.ErrnoException): Finding {
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    const { problem, fix } = tunOpenDenied(e.code);
    return { check: '/dev/net/tun', level: 'fail', detail: `cannot open (${e.code}): ${problem}`, fix };
  }
  return { check: '/dev/net/tun', level: 'fail', detail: `cannot open: ${e.code ?? e.message}`, fix: 'run as root or grant access to /dev/net/tun (and CAP_NET_ADMIN)' };
}

/**
 * Whether the daemon's user (not this process, usually root) may open /dev/net/tun, read from the
 * node's owner and mode: root passes the open whatever the mode, so doctor run as root would
 * otherwise say "ok" for a service that then cannot start.
 */
function tunForUserFinding(name: string): Finding {
  const check = `/dev/net/tun for user ${name}`;
  const user = lookupTunUser(name);
  if (!user) return { check, level: 'fail', detail: `no user named "${name}" in /etc/passwd`, fix: `create it (useradd --system --no-create-home --shell /usr/sbin/nologin ${name}) or give the user the daemon runs as` };
  const node = tunNode();
  if (!node) return { check, level: 'fail', detail: 'missing', fix: 'load the tun module (modprobe tun), or pass the device into the container (--device /dev/net/tun)' };
  if (modeAllows(node, user)) return { check, level: 'ok', detail: `${formatTunNode(node)}: ${user.name} (uid ${user.uid}) may open it` };
  return {
    check,
    level: 'fail',
    detail: `${formatTunNode(node)}: ${user.name} (uid ${user.uid}) cannot open it, whatever its capabilities`,
    fix: tunAccessFix(node, user),
  };
}

/** `up` would refuse FOU for 6to4 and 6rd (their peers come from inner addresses; no UDP convention), and without the peer's port. */
function checkEncapForMode(o: DoctorOptions, add: (f: Finding) => void): void {
  if (o.encap !== 'fou') return;
  if (o.mode === '6in4' && o.encapDport === undefined) {
    add({ check: 'encapsulation', level: 'fail', detail: 'Foo-over-UDP needs the peer\'s UDP port', fix: 'add --encap-dport PORT (the peer\'s `ip fou add port PORT ipproto 41`; --encap-port defaults to it)' });
  } else if (o.mode === '6in4') {
    add({ check: 'encapsulation', level: 'ok', detail: 'Foo-over-UDP for a configured (6in4) tunnel' });
  } else {
    add({ check: 'encapsulation', level: 'fail', detail: `FOU carries 6in4 tunnels only; ${o.mode} finds its peers in the inner addresses and has no UDP convention`, fix: `use --encap none with --mode ${o.mode}` });
  }
}

/** A --local this host does not have cannot be bound: say so before `up` does. */
async function checkLocalIsOurs(
  local: string,
  add: (f: Finding) => void,
  check = 'local IPv4 on this host',
  fix = 'give --local an address from ip -4 addr, or --local auto (the source address toward --remote / --relay)',
): Promise<void> {
  let addrs: string;
  try {
    addrs = await ip(['-4', '-o', 'addr', 'show']);
  } catch (e) {
    add({ check: 'local IPv4 on this host', level: 'warn', detail: `cannot list addresses: ${(e as Error).message}` });
    return;
  }
  const dev = new RegExp(`^\\d+:\\s+(\\S+)\\s+inet ${local.replace(/\./g, '\\.')}/`, 'm').exec(addrs)?.[1];
  add(
    dev
      ? { check, level: 'ok', detail: `${local} is on ${dev}` }
      : { check, level: 'fail', detail: `${local} is not an address of this host (network namespace)`, fix },
  );
}

/** The addon loads (which build, io_uring compiled in and usable); returns it for the checks that need it. */
function checkNativeAddon(add: (f: Finding) => void): NativeAddon | null {
  let native: NativeAddon;
  let info: NativeAddonInfo;
  try {
    native = loadNative();
    info = nativeAddonInfo();
  } catch (e) {
    const known = e instanceof NativeAddonError;
    add({ check: 'native addon', level: 'fail', detail: known ? e.problem : (e as Error).message, fix: known ? e.fix : BUILD_NATIVE_COMMAND });
    return null;
  }
  const build = info.build === 'prebuilt' ? 'prebuilt binary from the package' : 'built on this host';
  const watch = info.readiness === 'uv_poll' ? 'fds watched with uv_poll on the main loop' : 'fds watched by the addon\'s poll thread (no libuv here, or TUN6IN4_READINESS=thread)';
  add({ check: 'native addon', level: 'ok', detail: `loads: ${build} (${info.path}); ${watch}` });
  if (!info.ioUringCompiled) {
    add({ check: 'io_uring', level: 'warn', detail: 'not compiled into this build: TUN packets move one syscall each', fix: `install liburing-dev and run ${BUILD_NATIVE_COMMAND}` });
  } else if (native.ioUringAvailable()) {
    add({ check: 'io_uring', level: 'ok', detail: 'compiled in and allowed by the kernel: TUN reads and writes go in batches' });
  } else {
    add({ check: 'io_uring', level: 'warn', detail: 'compiled in but refused here (kernel.io_uring_disabled, a seccomp profile, or an old kernel): TUN packets move one syscall each', fix: 'allow io_uring (sysctl kernel.io_uring_disabled=0, or the container\'s seccomp profile); tunnels work without it, slower' });
  }
  return native;
}

/**
 * FOU: the UDP port must be free on the local address (a running tunnel holds it), and what the
 * kernel grants decides the speed: UDP GSO (its sends carry checksums, unless --no-encap-csum), UDP GRO asked for.
 */
function checkFou(native: NativeAddon, o: DoctorOptions, add: (f: Finding) => void, check?: string): void {
  const port = fouLocalPort(o);
  if (port === undefined) {
    add({ check: 'UDP port (FOU)', level: 'fail', detail: 'no port to check: neither --encap-port nor --encap-dport is given', fix: 'add --encap-dport PORT (the peer\'s UDP port; the tunnel binds it too unless --encap-port says otherwise)' });
    return;
  }
  const local = o.local && o.local !== 'auto' ? (parseIpv4(o.local) ?? 0) : 0;
  try {
    const s = native.openUdpSocket(local, port, 0, 0, true, true);
    native.closeFd(s.fd);
    add({ check: check ?? `UDP port ${port} (FOU)`, level: 'ok', detail: 'free to bind' });
    add({
      check: 'UDP offloads (FOU)',
      level: s.gso && s.gro ? 'ok' : 'info',
      detail: `UDP GSO ${s.gso ? 'available (used unless --no-encap-csum: the GSO sends carry checksums)' : 'refused by this kernel'}, UDP GRO ${s.gro ? 'available' : 'refused by this kernel'}`,
    });
  } catch (e) {
    const busy = /EADDRINUSE|in use/i.test((e as Error).message);
    add({
      check: check ?? `UDP port ${port} (FOU)`,
      level: 'fail',
      detail: (e as Error).message,
      fix: busy ? `another socket holds it (ss -ulpn 'sport = :${port}'); stop it or choose --encap-port` : 'give --local an address of this host',
    });
  }
}

function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

async function checkAddresses(o: DoctorOptions, add: (f: Finding) => void): Promise<void> {
  const toward = o.mode === '6in4' ? o.remote : o.relay;
  let local = o.local && o.local !== 'auto' ? o.local : undefined;
  if (!toward) {
    // Said, not skipped in silence: a clean report must not read as "the path is fine".
    const flag = o.mode === '6in4' ? '--remote' : '--relay';
    const skipped = local ? 'the route and the MTU toward the far end' : 'the local IPv4 that --local auto would pick, the route and the MTU toward the far end';
    add({ check: 'path toward the far end', level: 'info', detail: `not checked without ${flag}: ${skipped}`, fix: `add ${flag} ADDRESS (the ${o.mode === '6in4' ? 'broker\'s server IPv4' : 'relay\'s IPv4'}) to check them` });
  }
  if (!local && toward) {
    try {
      local = await sourceAddressToward(toward);
      add({ check: 'local IPv4', level: 'ok', detail: `${local} (the source address toward ${toward})` });
    } catch (e) {
      add({ check: 'local IPv4', level: 'fail', detail: (e as Error).message, fix: `add a route toward ${toward}, or give --local` });
    }
  }
  const v4 = local ? parseIpv4(local) : null;
  if (v4 !== null) {
    const cls = classifyIpv4(v4);
    if (o.mode === '6to4' && cls !== 'global') {
      add({ check: 'local IPv4 class', level: 'fail', detail: `${local} is ${cls} space; 6to4 needs a public IPv4 (RFC 3056)`, fix: 'use a host with a public IPv4, or a tunnel broker (6in4), which works behind NAT' });
    } else if (o.mode === '6rd' && cls !== 'global') {
      add({ check: 'local IPv4 class', level: 'info', detail: `${local} is ${cls} space: fine inside an ISP's 6rd domain, which may use private or shared addresses` });
    } else if (o.mode === '6in4' && cls !== 'global') {
      const fouPort = fouLocalPort(o);
      const through = o.encap === 'fou' ? `UDP to ${fouPort === undefined ? 'the tunnel\'s port' : `port ${fouPort}`} both ways (keepalive holds its mapping)` : 'protocol 41 (keepalive holds its state)';
      add({ check: 'local IPv4 class', level: 'info', detail: `${local} is ${cls} space: fine behind a 1:1 NAT; the broker must see your public IPv4 and the NAT must pass ${through}` });
    } else {
      add({ check: 'local IPv4 class', level: 'ok', detail: `${local} is global unicast` });
    }
  }
  if (toward) {
    try {
      const route = await ip(['-4', '-o', 'route', 'get', toward]);
      const dev = / dev (\S+)/.exec(route)?.[1];
      const mtuRoute = / mtu (\d+)/.exec(route)?.[1];
      const link = dev ? await ip(['-o', 'link', 'show', 'dev', dev]) : '';
      const devMtu = Number(mtuRoute ?? / mtu (\d+)/.exec(link)?.[1] ?? 0);
      const overhead = o.encap === 'fou' ? 28 : 20;
      const tunnelMtu = o.mtu ?? (o.encap === 'fou' ? FOU_MTU_MAX : MTU_DEFAULT);
      if (devMtu && devMtu - overhead < tunnelMtu) {
        add({ check: 'MTU', level: 'warn', detail: `path to ${toward} leaves via ${dev} with MTU ${devMtu}; a ${tunnelMtu}-byte tunnel MTU needs ${tunnelMtu + overhead}`, fix: `use --mtu ${Math.max(1280, devMtu - overhead)} (or --pmtu dynamic); with --pmtu static IPv4 fragments every full-size packet` });
      } else if (devMtu) {
        add({ check: 'MTU', level: 'ok', detail: `${dev} MTU ${devMtu} carries a ${tunnelMtu}-byte tunnel MTU` });
      }
    } catch (e) {
      add({ check: 'route', level: 'fail', detail: `no route toward ${toward}: ${(e as Error).message}`, fix: 'give the host an IPv4 default route' });
    }
  }
}
