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

export interface UdpBulkOptions {
  /** Datagrams to send and their UDP payload size. */
  datagrams: number;
  size: number;
  /** The sender uses UDP_SEGMENT (as QUIC stacks do): `perSend` datagrams a send; else one a send. */
  gso: boolean;
  perSend?: number;
  /** The receiver asks for UDP_GRO: merged datagrams arrive as one read, with their segment size. */
  gro: boolean;
  port?: number;
  /** The receiver gives up after this long without a datagram. */
  idleS?: number;
  /** Send for this long instead of `datagrams` (a benchmark's load; the count is then what was sent). */
  seconds?: number;
  /** The receiver checks every datagram's bytes (default); off, it only counts (less of its CPU). */
  verify?: boolean;
}

export interface UdpBulkResult {
  sent: number;
  received: number;
  /** Datagrams whose length or bytes were not what was sent. */
  corrupt: number;
  /** Reads that held more than one datagram (the kernel delivered a UDP GSO frame as one). */
  coalescedReads: number;
  maxPerRead: number;
  /** Sender's time from first to last send, and its rate (what the sender pushed, not what arrived). */
  seconds: number;
  sentMbitPerSecond: number;
  /** Received payload bits over the receiver's first-to-last datagram time. */
  receivedMbitPerSecond: number;
}

/** Datagram i: its number, then bytes from a 251-periodic pattern starting at i mod 251. */
const UDP_BULK_COMMON = `
import socket, struct, sys, time, json
SOL_UDP, UDP_SEGMENT, UDP_GRO = 17, 103, 104
PAT = bytes(range(251)) * 300
def payload(i, size):
    k = i % 251
    return struct.pack('!Q', i) + PAT[k:k + size - 8]
`;

const UDP_BULK_RECEIVER = `${UDP_BULK_COMMON}
addr, port, size, count, gro, idle, verify = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == '1', float(sys.argv[6]), sys.argv[7] == '1'
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE (root): past rmem_max
except OSError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
if gro:
    s.setsockopt(SOL_UDP, UDP_GRO, 1)
s.bind((addr, port))
print('listening', flush=True)
s.settimeout(idle)
got = corrupt = coalesced = maxper = 0
first = last = None
seen = set()
while got < count:
    try:
        data, anc, _, _ = s.recvmsg(65535, socket.CMSG_SPACE(4))
    except socket.timeout:
        break
    now = time.monotonic()
    first = now if first is None else first
    last = now
    seg = len(data)
    for lvl, typ, d in anc:
        if lvl == SOL_UDP and typ == UDP_GRO:
            seg = struct.unpack('i', d[:4])[0]
    n = 0
    if not verify:
        n = (len(data) + seg - 1) // seg
        got += n
        if n > 1:
            coalesced += 1
        maxper = max(maxper, n)
        continue
    for off in range(0, len(data), seg):
        d = data[off:off + seg]
        n += 1
        i = struct.unpack('!Q', d[:8])[0] if len(d) >= 8 else -1
        if len(d) != size or i in seen or d != payload(i, size):
            corrupt += 1
        else:
            seen.add(i)
            got += 1
    if n > 1:
        coalesced += 1
    maxper = max(maxper, n)
span = (last - first) if first is not None and last > first else 0
print(json.dumps({'received': got, 'corrupt': corrupt, 'coalescedReads': coalesced, 'maxPerRead': maxper, 'seconds': span}), flush=True)
`;

const UDP_BULK_SENDER = `${UDP_BULK_COMMON}
addr, port, size, count, gso, per, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == '1', int(sys.argv[6]), float(sys.argv[7])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
if gso:
    s.setsockopt(SOL_UDP, UDP_SEGMENT, size)
else:
    per = 1
s.connect((addr, port))
sent = 0
t0 = time.monotonic()
# timed: the same burst again and again (building bursts would cost the CPU the forwarders need)
fixed = b''.join(payload(j, size) for j in range(per)) if seconds > 0 else None
while (time.monotonic() - t0 < seconds) if seconds > 0 else sent < count:
    k = per if seconds > 0 else min(per, count - sent)
    buf = fixed if seconds > 0 else b''.join(payload(sent + j, size) for j in range(k))
    try:
        s.send(buf)
    except BlockingIOError:
        continue
    except OSError as e:
        if e.errno == 105:  # ENOBUFS: the TUN's queue is full; this burst is lost, as on any link
            sent += k
            continue
        raise
    sent += k
print(json.dumps({'sent': sent, 'seconds': time.monotonic() - t0}), flush=True)
`;

/**
 * Inner-UDP bulk from `from` to `addr` on `to` with Python's sockets over the kernel: with `gso`
 * the sender hands the kernel 64-datagram-ish super-packets (UDP_SEGMENT, as QUIC stacks do), and
 * with `gro` the receiver takes merged ones (UDP_GRO). Every datagram is numbered and patterned,
 * so the receiver counts what arrived intact; UDP has no retransmission, so loss is reported, not
 * an error.
 */
export async function udpBulk(from: Namespace, to: Namespace, addr: string, o: UdpBulkOptions): Promise<UdpBulkResult> {
  const port = o.port ?? 5401;
  const perSend = o.perSend ?? 32;
  const timed = (o.seconds ?? 0) > 0;
  const server = to.spawn('/usr/bin/python3', ['-c', UDP_BULK_RECEIVER, addr, String(port), String(o.size), String(timed ? 2 ** 50 : o.datagrams), o.gro ? '1' : '0', String(o.idleS ?? 3), o.verify === false || timed ? '0' : '1']);
  try {
    const lines = createInterface({ input: server.stdout! });
    const it = lines[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.value !== 'listening') throw new Error('UDP bulk receiver did not start');
    const sender = JSON.parse(
      await from.exec('/usr/bin/python3', ['-c', UDP_BULK_SENDER, addr, String(port), String(o.size), String(o.datagrams), o.gso ? '1' : '0', String(perSend), String(o.seconds ?? 0)], { timeoutMs: 120_000 }),
    ) as { sent: number; seconds: number };
    const got = await it.next();
    const r = JSON.parse(String(got.value)) as { received: number; corrupt: number; coalescedReads: number; maxPerRead: number; seconds: number };
    return {
      sent: sender.sent,
      received: r.received,
      corrupt: r.corrupt,
      coalescedReads: r.coalescedReads,
      maxPerRead: r.maxPerRead,
      seconds: sender.seconds,
      sentMbitPerSecond: (sender.sent * o.size * 8) / sender.seconds / 1e6,
      receivedMbitPerSecond: r.seconds > 0 ? (r.received * o.size * 8) / r.seconds / 1e6 : 0,
    };
  } finally {
    if (server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit').catch(() => undefined);
    }
  }
}
