/**
 * Interface set-up time: N TUN interfaces (default 100), each configured from the plan openTunnel
 * makes for a 6in4 tunnel (addrgenmode none, MTU and up, the address and the link-local, a
 * default route of its own metric, an unreachable route for its routed /64, one device route),
 * once over rtnetlink and once over iproute2, inside a namespace this script makes and removes.
 * As root:
 *   node --import tsx bench/setup-time.ts [--count 100] [--rounds 2] [--json]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadNative } from '../src/io/native.js';
import { parseIpv6, parseIpv6Prefix } from '../src/packet/address.js';
import { configureInterface, removeRoutes, type InstalledRoutes, type InterfacePlan, type InterfaceSetup } from '../src/tun/interface.js';

const { values: args } = parseArgs({ options: { count: { type: 'string', default: '100' }, rounds: { type: 'string', default: '2' }, json: { type: 'boolean', default: false }, inner: { type: 'boolean', default: false } } });
const count = Number(args.count);
const rounds = Number(args.rounds);
if (!Number.isInteger(count) || count < 1 || count > 4000) throw new Error(`--count: ${args.count} is not valid; use a whole number in 1..4000`);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: ${args.rounds} is not valid; use a whole number from 1`);

function plan(i: number): InterfacePlan {
  const h = (0x1000 + i).toString(16);
  return {
    mtu: 1480,
    multicast: true,
    addresses: [parseIpv6Prefix(`2001:db8:${h}::2/64`)!, parseIpv6Prefix('fe80::c000:201/64')!],
    defaultRoute: { via: parseIpv6(`2001:db8:${h}::1`), metric: 2000 + i },
    ownPrefixes: [parseIpv6Prefix(`2001:db8:${(0x8000 + i).toString(16)}::/64`)!],
    deviceRoutes: [parseIpv6Prefix(`2001:db8:${(0x4000 + i).toString(16)}::/64`)!],
  };
}

interface Run {
  setup: InterfaceSetup;
  /** Opening the N TUNs (the same for both). */
  openMs: number;
  /** Configuring them, one after the other as a daemon's start does. */
  configureMs: number;
  perInterfaceMs: number;
}

async function once(setup: InterfaceSetup): Promise<Run> {
  const native = loadNative();
  const fds: number[] = [];
  const routes: InstalledRoutes[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) fds.push(native.openTun(`bt${i}`, true, 0).fd);
  const t1 = performance.now();
  try {
    for (let i = 0; i < count; i++) routes.push(await configureInterface(`bt${i}`, plan(i), setup));
  } finally {
    const t2 = performance.now();
    for (const r of routes) await removeRoutes(r);
    for (const fd of fds) native.closeFd(fd);
    runs.push({ setup, openMs: t1 - t0, configureMs: t2 - t1, perInterfaceMs: (t2 - t1) / count });
  }
  return runs[runs.length - 1];
}

const runs: Run[] = [];

async function inner(): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    // alternating, so neither always runs on a warmer kernel
    for (const setup of r % 2 ? (['netlink', 'iproute2'] as const) : (['iproute2', 'netlink'] as const)) await once(setup);
  }
  const best = (s: InterfaceSetup) => Math.min(...runs.filter((r) => r.setup === s).map((r) => r.configureMs));
  const summary = { count, rounds, runs, bestMs: { netlink: best('netlink'), iproute2: best('iproute2') }, ratio: best('iproute2') / best('netlink') };
  if (args.json) {
    console.log(JSON.stringify(summary));
    return;
  }
  for (const r of runs) console.log(`${r.setup.padEnd(8)}  ${count} TUNs opened in ${r.openMs.toFixed(1)} ms, configured in ${r.configureMs.toFixed(1)} ms (${r.perInterfaceMs.toFixed(2)} ms each)`);
  console.log(`best of ${rounds}: netlink ${summary.bestMs.netlink.toFixed(1)} ms, iproute2 ${summary.bestMs.iproute2.toFixed(1)} ms: ${summary.ratio.toFixed(1)}x`);
}

if (args.inner) {
  await inner();
} else {
  if (process.getuid?.() !== 0) throw new Error('bench/setup-time.ts needs root (a network namespace, TUN devices)');
  const ns = `t6-setup-bench-${process.pid}`;
  const ip = (a: string[]) => spawnSync('ip', a, { stdio: 'inherit' });
  if (ip(['netns', 'add', ns]).status !== 0) throw new Error(`ip netns add ${ns} failed`);
  try {
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import', import.meta.resolve('tsx'), self, '--inner', '--count', String(count), '--rounds', String(rounds), ...(args.json ? ['--json'] : [])], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  } finally {
    ip(['netns', 'del', ns]);
  }
}
