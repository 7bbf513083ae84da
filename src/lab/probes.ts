/** Traffic the lab and the end-to-end tests send through a tunnel: ping6 and a TCP integrity transfer. */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Namespace } from './netns.js';
import { nodeProgram } from './scripts.js';

export interface PingResult {
  ok: boolean;
  transmitted: number;
  received: number;
  duplicates: number;
  rttAvgMs: number | null;
  output: string;
}

export interface PingOptions {
  count?: number;
  /** ICMPv6 payload bytes (-s); 1432 fills a 1480-byte MTU. */
  size?: number;
  /** Forbid fragmentation (-M do). */
  dontFragment?: boolean;
  hopLimit?: number;
  /** Traffic class (-Q). */
  tclass?: number;
  timeoutS?: number;
}

export async function ping6(from: Namespace, target: string, o: PingOptions = {}): Promise<PingResult> {
  const args = ['-6', '-n', '-c', String(o.count ?? 3), '-i', '0.2', '-W', String(o.timeoutS ?? 2)];
  if (o.size !== undefined) args.push('-s', String(o.size));
  if (o.dontFragment) args.push('-M', 'do');
  if (o.hopLimit !== undefined) args.push('-t', String(o.hopLimit));
  if (o.tclass !== undefined) args.push('-Q', String(o.tclass));
  args.push(target);
  const r = await from.run('ping', args, { timeoutMs: 30_000 });
  const output = r.stdout + r.stderr;
  const stats = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(output);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(output);
  const transmitted = stats ? Number(stats[1]) : 0;
  const received = stats ? Number(stats[2]) : 0;
  return {
    ok: transmitted > 0 && received === transmitted,
    transmitted,
    received,
    duplicates: stats?.[3] ? Number(stats[3]) : 0,
    rttAvgMs: rtt ? Number(rtt[1]) : null,
    output,
  };
}

export interface TransferResult {
  ok: boolean;
  bytes: number;
  seconds: number;
  mbitPerSecond: number;
  sentSha256: string;
  receivedSha256: string;
  receivedBytes: number;
}

/** Sends `bytes` of random data over TCP from one namespace to `addr` in another; compares SHA-256 at both ends. */
export async function tcpTransfer(from: Namespace, to: Namespace, addr: string, bytes: number, port = 5001): Promise<TransferResult> {
  const [cmd, pre] = nodeProgram('lab/transfer');
  const server = to.spawn(cmd, [...pre, 'serve', String(port)]);
  try {
    const lines = createInterface({ input: server.stdout! });
    const it = lines[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.value !== 'listening') throw new Error('transfer server did not start');
    const sent = JSON.parse(await from.exec(cmd, [...pre, 'send', addr, String(port), String(bytes)], { timeoutMs: 120_000 })) as {
      bytes: number;
      sha256: string;
      seconds: number;
    };
    const got = await it.next();
    const received = JSON.parse(String(got.value)) as { bytes: number; sha256: string };
    return {
      ok: received.sha256 === sent.sha256 && received.bytes === bytes,
      bytes: sent.bytes,
      seconds: sent.seconds,
      mbitPerSecond: (sent.bytes * 8) / sent.seconds / 1e6,
      sentSha256: sent.sha256,
      receivedSha256: received.sha256,
      receivedBytes: received.bytes,
    };
  } finally {
    if (server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit').catch(() => undefined);
    }
  }
}

export interface RequestResponseResult {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * `count` request/response rounds over one TCP connection: 64 bytes to `addr`, `bytes` back, the
 * next request as soon as the answer is complete. A packet held somewhere until new traffic
 * arrives costs its round a retransmission timeout (≥ 200 ms): it shows in p99 and max.
 */
export async function requestResponse(from: Namespace, to: Namespace, addr: string, count: number, bytes: number, port = 5002): Promise<RequestResponseResult> {
  const [cmd, pre] = nodeProgram('lab/transfer');
  const server = to.spawn(cmd, [...pre, 'rr-serve', String(port), String(bytes)]);
  try {
    const lines = createInterface({ input: server.stdout! });
    const first = await lines[Symbol.asyncIterator]().next();
    if (first.value !== 'listening') throw new Error('request/response server did not start');
    return JSON.parse(await from.exec(cmd, [...pre, 'rr', addr, String(port), String(count), String(bytes)], { timeoutMs: 120_000 })) as RequestResponseResult;
  } finally {
    if (server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit').catch(() => undefined);
    }
  }
}

/**
 * UDP from one namespace to `addr` in another (iperf3), offered at `mbit` Mbit/s until `mbytes`
 * MB were sent: a flood, when that is far above what the path carries.
 */
export async function udpFlood(from: Namespace, to: Namespace, addr: string, mbit: number, mbytes: number, port = 5301): Promise<void> {
  const server = to.spawn('iperf3', ['-s', '-1', '--forceflush', '-B', addr, '-p', String(port)]);
  try {
    const lines = createInterface({ input: server.stdout! });
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (l) => l.includes('Server listening') && resolve());
      server.once('exit', () => reject(new Error('iperf3 server exited before listening')));
    });
    await from.exec('iperf3', ['-c', addr, '-p', String(port), '-u', '-b', `${mbit}M`, '-l', '1200', '-n', `${mbytes}M`], { timeoutMs: 120_000 });
  } finally {
    if (server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit').catch(() => undefined);
    }
  }
}
