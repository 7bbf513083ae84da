/**
 * The forwarders the benches run, one endpoint at a time in a namespace: this engine in its
 * variants, the naive Node baseline, the C references (built here when their source is newer)
 * and the kernel's own IPv6 as the ceiling. Shared by bench/macro.ts and bench/latency.ts.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Namespace, NamespaceSet } from '../src/lab/netns.js';
import { queryControl } from '../src/daemon/control.js';

const TSX = import.meta.resolve('tsx');
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export interface End {
  local: string;
  remote: string;
  address: string;
}
export const A: End = { local: '192.0.2.1', remote: '192.0.2.2', address: '2001:db8:1::2/64' };
export const B: End = { local: '192.0.2.2', remote: '192.0.2.1', address: '2001:db8:1::1/64' };

export interface Forwarder {
  name: string;
  kind: 'tunnel' | 'kernel';
  description: string;
  /** Starts one endpoint; resolves with its process (null for the kernel) once it forwards. */
  start(ns: Namespace, end: End): Promise<ChildProcess | null>;
}

export async function waitFor(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp, what: string): Promise<void> {
  const lines = createInterface({ input: child[stream]! });
  const seen: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not start: ${seen.join('\n')}`)), 20_000);
    lines.on('line', (l) => {
      if (seen.length < 50) seen.push(l);
      if (pattern.test(l)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.on('exit', () => reject(new Error(`${what} exited: ${seen.join('\n')}`)));
  });
}

export type Variant = 'threads' | 'uring' | 'offload' | 'fou' | 'fou-offload';
const VARIANT_FLAGS: Record<Variant, string[]> = {
  threads: ['-DTHREADS', '-pthread'],
  uring: ['-DURING', '-luring'],
  offload: ['-DOFFLOAD'],
  fou: ['-DFOU'],
  'fou-offload': ['-DFOU', '-DOFFLOAD'],
};
/** Foo-over-UDP runs: port 5555 both ends, tunnel MTU 1472. */
export const FOU_ARGS = ['--encap', 'fou', '--encap-dport', '5555'];

/** The C reference, compiled when its source is newer than the binary. */
export function buildReference(batch: number, variant?: Variant): string {
  const src = here('reference/forwarder.c');
  const out = here(`reference/build/forwarder-${batch}${variant ? `-${variant}` : ''}`);
  mkdirSync(here('reference/build'), { recursive: true });
  const flags = variant ? VARIANT_FLAGS[variant] : [];
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) execFileSync('gcc', ['-O2', '-Wall', `-DBATCH=${batch}`, '-o', out, src, ...flags]);
  return out;
}

/**
 * Every forwarder the benches know. Ours and the naive baseline run under `node`; ours from the
 * checkout at `tree` (this one by default), so a bench can set two checkouts side by side.
 */
export function forwarders(node: string, tree = here('..')): Forwarder[] {
  const startOurs = (ns: Namespace, e: End, extra: string[], env: string[] = []) => startEngine(node, tree, ns, e, extra, env);
  return [
  {
    name: 'tun6in4',
    kind: 'tunnel',
    description: 'this engine as it runs by default: TUN offload (TSO super-packets cut in TS, received segments merged, GRO), TUN reads and writes in io_uring batches, recvmmsg/sendmmsg, uv_poll readiness',
    start: (ns, e) => startOurs(ns, e, []),
  },
  {
    name: 'tun6in4-thread',
    kind: 'tunnel',
    description: 'this engine as by default, but fds watched by the addon\'s epoll thread waking JS through a threadsafe function (TUN6IN4_READINESS=thread; what Bun and Deno get) instead of uv_poll',
    start: (ns, e) => startOurs(ns, e, [], ['TUN6IN4_READINESS=thread']),
  },
  {
    name: 'tun6in4-no-offload',
    kind: 'tunnel',
    description: 'this engine with --no-offload: one TUN packet per tunnel packet (io_uring batches still)',
    start: (ns, e) => startOurs(ns, e, ['--no-offload']),
  },
  {
    name: 'tun6in4-no-uring',
    kind: 'tunnel',
    description: 'this engine with --no-offload --no-io-uring: one read()/write() per packet on the TUN',
    start: (ns, e) => startOurs(ns, e, ['--no-offload', '--no-io-uring']),
  },
  {
    name: 'tun6in4-fou',
    kind: 'tunnel',
    description: 'this engine over Foo-over-UDP as by default: zero UDP checksums as Linux\'s noencap-csum but on the UDP GSO sends (which need them), UDP GRO asked for on receive, TUN offload and io_uring as by default',
    start: (ns, e) => startOurs(ns, e, FOU_ARGS),
  },
  {
    name: 'tun6in4-fou-csum',
    kind: 'tunnel',
    description: 'this engine over Foo-over-UDP with --encap-csum: UDP checksums on every datagram',
    start: (ns, e) => startOurs(ns, e, [...FOU_ARGS, '--encap-csum']),
  },
  {
    name: 'tun6in4-fou-nocsum',
    kind: 'tunnel',
    description: 'this engine over Foo-over-UDP with --no-encap-csum: zero UDP checksums on every datagram (the kernel allows no UDP GSO then)',
    start: (ns, e) => startOurs(ns, e, [...FOU_ARGS, '--no-encap-csum']),
  },
  {
    name: 'naive-node',
    kind: 'tunnel',
    description: 'baseline: fs.read/fs.writeSync on the TUN fd + the raw-socket package, one packet per call',
    async start(ns, e) {
      const c = ns.spawn(node, ['--import', TSX, here('baselines/naive-forwarder.ts'), '--dev', 'tun0', '--local', e.local, '--remote', e.remote, '--address', e.address]);
      await waitFor(c, 'stdout', /^ready$/, 'naive forwarder');
      return c;
    },
  },
  {
    name: 'node-stripped',
    kind: 'tunnel',
    description: 'probe: the least a Node forwarder runs per wake-up (the addon\'s uv_poll, TUN read/write, recvmmsg/sendmmsg; no policy, offload or io_uring): what any Node process pays above C',
    async start(ns, e) {
      const c = ns.spawn(node, ['--import', TSX, here('baselines/stripped-forwarder.ts'), '--dev', 'tun0', '--local', e.local, '--remote', e.remote, '--address', e.address]);
      await waitFor(c, 'stdout', /^ready$/, 'stripped forwarder');
      return c;
    },
  },
  {
    name: 'c-per-packet',
    kind: 'tunnel',
    description: 'reference: minimal C, one packet per syscall',
    async start(ns, e) {
      return startC(ns, e, 1);
    },
  },
  {
    name: 'c-batched',
    kind: 'tunnel',
    description: 'reference: minimal C, TUN drain + sendmmsg / recvmmsg, batches of 64',
    async start(ns, e) {
      return startC(ns, e, 64);
    },
  },
  {
    name: 'c-threaded',
    kind: 'tunnel',
    description: 'probe: the batched C reference with one thread per direction (does a worker per direction help on 2 cores?)',
    async start(ns, e) {
      return startC(ns, e, 64, 'threads');
    },
  },
  {
    name: 'c-uring',
    kind: 'tunnel',
    description: 'probe: the batched C reference through io_uring (64 TUN reads per submission, sends and TUN writes as ring entries)',
    async start(ns, e) {
      return startC(ns, e, 64, 'uring');
    },
  },
  {
    name: 'c-offload',
    kind: 'tunnel',
    description: 'reference: the batched C forwarder with TUN offload done as our engine does it (TSO super-packets cut in C, verified segments merged into GSO writes)',
    async start(ns, e) {
      return startC(ns, e, 64, 'offload');
    },
  },
  {
    name: 'c-fou',
    kind: 'tunnel',
    description: 'reference: the batched C forwarder over Foo-over-UDP (UDP socket, sendmmsg / recvmmsg, batches of 64)',
    async start(ns, e) {
      return startC(ns, e, 64, 'fou');
    },
  },
  {
    name: 'c-fou-offload',
    kind: 'tunnel',
    description: 'reference: the C forwarder over Foo-over-UDP with TUN offload (TSO cut, GRO into the TUN) and UDP GSO sends, as our FOU engine does; no UDP GRO',
    async start(ns, e) {
      return startC(ns, e, 64, 'fou-offload');
    },
  },
  {
    name: 'kernel-veth',
    kind: 'kernel',
    description: 'ceiling: kernel IPv6 straight over the veth, offloads on (no tunnel)',
    async start(ns, e) {
      await ns.ip(['-6', 'addr', 'add', e.address, 'dev', 'eth0', 'nodad']);
      return null;
    },
  },
  {
    name: 'kernel-veth-no-offload',
    kind: 'kernel',
    description: 'ceiling: kernel IPv6 over the veth with TSO/GSO/GRO and checksum offload off',
    async start(ns, e) {
      await ns.exec('ethtool', ['-K', 'eth0', 'tso', 'off', 'gso', 'off', 'gro', 'off', 'tx', 'off', 'rx', 'off', 'sg', 'off']);
      await ns.ip(['-6', 'addr', 'add', e.address, 'dev', 'eth0', 'nodad']);
      return null;
    },
  },
  ];
}

export const gcLog = new Map<ChildProcess, string[]>();
/** Our engines' control sockets: their status counts the JS/addon crossings. */
export const controlOf = new Map<ChildProcess, string>();

export async function crossings(procs: ChildProcess[]): Promise<number | null> {
  let sum = 0;
  for (const p of procs) {
    const sock = controlOf.get(p);
    if (!sock) return null;
    sum += ((await queryControl(sock, 'status')) as { nativeCrossings: number }).nativeCrossings;
  }
  return sum;
}

/**
 * Whether our engines run with --trace-gc on stdout so the heap allocated per packet can be
 * measured, the young generation capped at 1 MiB so that a few bytes a packet still show as
 * scavenges within one run (Node lets it grow to 16 MiB, and a run without two scavenges
 * measures nothing). bench/latency.ts turns it off: it runs the engines as a user would.
 */
export const engineRuns = { measureHeap: true };

export async function startEngine(node: string, tree: string, ns: Namespace, e: End, extra: string[], env: string[] = []): Promise<ChildProcess> {
  const [cmd, pre] = env.length ? ['env', [...env, node]] : [node, []];
  const heap = engineRuns.measureHeap ? ['--trace-gc', '--max-semi-space-size=1'] : [];
  const c = ns.spawn(cmd, [...pre, ...heap, '--import', TSX, `${tree}/src/cli/main.ts`, 'run', '--mode', '6in4', ...extra, '--dev', 'tun0', '--local', e.local, '--remote', e.remote, '--address', e.address, '--no-default-route', '--keepalive', 'off', '--control', `/run/tun6in4/${ns.name}.sock`]);
  gcLog.set(c, []);
  controlOf.set(c, `/run/tun6in4/${ns.name}.sock`);
  createInterface({ input: c.stdout! }).on('line', (l) => gcLog.get(c)!.push(l));
  await waitFor(c, 'stderr', /"tunnel up"/, `tun6in4 ${extra.join(' ')}`);
  return c;
}

export async function startC(ns: Namespace, e: End, batch: number, variant?: Variant): Promise<ChildProcess> {
  const c = ns.spawn(buildReference(batch, variant), ['tun0', e.local, e.remote]);
  await waitFor(c, 'stdout', /^ready$/, `C forwarder (batch ${batch}${variant ? `, ${variant}` : ''})`);
  await ns.ip(['link', 'set', 'dev', 'tun0', 'addrgenmode', 'none']);
  await ns.ip(['link', 'set', 'dev', 'tun0', 'mtu', variant?.startsWith('fou') ? '1472' : '1480', 'up']);
  await ns.ip(['-6', 'addr', 'add', e.address, 'dev', 'tun0', 'nodad']);
  return c;
}

/**
 * Two namespaces joined by a veth (192.0.2.1 and .2) with one forwarder at each end; the
 * forwarders' processes (none for the kernel) are pushed to `procs` as they start, so a caller's
 * `finally` can stop them even when the second fails to start.
 */
export async function startPair(set: NamespaceSet, fw: Forwarder, procs: ChildProcess[]): Promise<{ a: Namespace; b: Namespace }> {
  const a = await set.add('a');
  const b = await set.add('b');
  await set.link(a, 'eth0', b, 'eth0');
  await a.ip(['addr', 'add', `${A.local}/24`, 'dev', 'eth0']);
  await b.ip(['addr', 'add', `${B.local}/24`, 'dev', 'eth0']);
  for (const [ns, e] of [[a, A], [b, B]] as const) {
    const p = await fw.start(ns, e);
    if (p) procs.push(p);
  }
  return { a, b };
}
