/** Helpers for tests that need root: namespaces, captures (cap / libpcap) and scapy senders inside them. */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Namespace, NamespaceSet } from '../../src/lab/netns.js';

/**
 * Tests that need root run in CI (which is root). They may skip only when we are not root and
 * CI is unset; in CI without root they fail loudly instead.
 */
export function rootOrSkip(): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI) throw new Error('this suite needs root (namespaces, TUN, raw sockets) and CI is set: run CI as root');
  console.warn('skipping: needs root (network namespaces, TUN, raw sockets); run as root or with CI=true');
  return false;
}

const CAPTURE = fileURLToPath(new URL('./cap-capture.ts', import.meta.url));

export interface Capture {
  linkType: string;
  /** Captured frames as bytes. */
  packets: Buffer[];
}

/**
 * Starts a libpcap capture (the `cap` package) in a namespace and resolves once it is capturing;
 * `result` settles when `count` packets were seen or the timeout passed. (The result is wrapped
 * in an object: an async function returning a bare promise would wait for it.)
 */
export async function startCapture(ns: Namespace, iface: string, filter: string, count: number, timeoutMs: number): Promise<{ result: Promise<Capture> }> {
  const child = ns.spawn(process.execPath, ['--import', import.meta.resolve('tsx'), CAPTURE, iface, filter, String(count), String(timeoutMs)]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const lines = createInterface({ input: child.stderr! });
  const errors: string[] = [];
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (l) => (l === 'ready' ? resolve() : errors.push(l)));
    child.on('exit', () => reject(new Error(`capture on ${iface} failed: ${errors.join('\n')}`)));
  });
  const result = new Promise<Capture>((resolve, reject) => {
    // 'close', not 'exit': the result line may still be in the pipe when the process exits.
    child.on('close', () => {
      try {
        const r = JSON.parse(out) as { linkType: string; packets: string[] };
        resolve({ linkType: r.linkType, packets: r.packets.map((h) => Buffer.from(h, 'hex')) });
      } catch {
        reject(new Error(`capture on ${iface} printed no result: ${errors.join('\n')}`));
      }
    });
  });
  return { result };
}

const SCAPY_TOOL = fileURLToPath(new URL('../interop/scapy_tool.py', import.meta.url));

/** Sends protocol-41 packets built by scapy from inside a namespace. */
export async function scapySend(
  ns: Namespace,
  p: { outer_src: string; outer_dst: string; inner_src: string; inner_dst: string; echo_id: number; count: number },
): Promise<void> {
  await ns.exec('/usr/bin/python3', [SCAPY_TOOL], { input: JSON.stringify({ op: 'send', ...p }), timeoutMs: 30_000 });
}

/** Sends Foo-over-UDP datagrams built by scapy (UDP checksum zero, correct or wrong) from inside a namespace. */
export async function scapySendFou(
  ns: Namespace,
  p: { outer_src: string; outer_dst: string; sport: number; dport: number; csum: 'zero' | 'good' | 'bad'; inner_src: string; inner_dst: string; echo_id: number; count: number },
): Promise<void> {
  await ns.exec('/usr/bin/python3', [SCAPY_TOOL], { input: JSON.stringify({ op: 'send_fou', ...p }), timeoutMs: 30_000 });
}

/** What scapy reads in packets we captured (see scapy_tool.py `parse`). */
export async function scapyParse(ns: Namespace, packets: Record<string, Buffer>): Promise<Record<string, Record<string, unknown>>> {
  const req = { op: 'parse', packets: Object.fromEntries(Object.entries(packets).map(([k, v]) => [k, v.toString('hex')])) };
  return JSON.parse(await ns.exec('/usr/bin/python3', [SCAPY_TOOL], { input: JSON.stringify(req), timeoutMs: 30_000 }));
}

/** Sends packets we built (IPv4 or IPv6, as bytes) through scapy from inside a namespace, each `count` times. */
export async function scapySendRaw(ns: Namespace, packets: Array<{ bytes: Buffer; count: number }>): Promise<void> {
  const req = { op: 'send_raw', packets: packets.map((p) => ({ hex: p.bytes.toString('hex'), count: p.count })) };
  await ns.exec('/usr/bin/python3', [SCAPY_TOOL], { input: JSON.stringify(req), timeoutMs: 120_000 });
}

/** Polls `probe` until `ok` holds (errors count as not yet), or fails after `timeoutMs` with the last value. */
export async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000, everyMs = 200): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A namespace `d` for a daemon with 192.0.2.1 on a veth to a second namespace of ours that answers
 * nothing: tunnels have an IPv4 and a route to send by, and what they send goes nowhere else.
 */
export async function isolatedDaemonHost(set: NamespaceSet): Promise<Namespace> {
  const ns = await set.add('d');
  const wan = await set.add('wan');
  await set.link(ns, 'v0', wan, 'v0');
  await ns.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'v0']);
  await ns.ip(['route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'v0']);
  return ns;
}

const SCENARIOS = fileURLToPath(new URL('./ns-scenarios.ts', import.meta.url));

/** Runs a data-path scenario of ns-scenarios.ts inside a namespace; resolves with what it printed. */
export async function runScenario<T = Record<string, unknown>>(ns: Namespace, name: string, args: Record<string, unknown>): Promise<T> {
  const out = await ns.exec(process.execPath, ['--import', import.meta.resolve('tsx'), SCENARIOS, name, JSON.stringify(args)], { timeoutMs: 60_000 });
  return JSON.parse(out) as T;
}
