/**
 * TCP traffic run inside a lab namespace:
 *   transfer serve <port>                 -> prints {"bytes":N,"sha256":"…"} when the peer closes
 *   transfer send <addr> <port> <bytes>   -> prints {"bytes":N,"sha256":"…","seconds":S}
 *   transfer rr-serve <port> <bytes>      -> answers every 64-byte request with <bytes> bytes
 *   transfer rr <addr> <port> <count> <bytes> -> prints {"count":N,"p50Ms":…,"p99Ms":…,"maxMs":…}
 * The data is random; both ends hash what they saw, and the lab compares the hashes. A
 * request/response round that waits for new traffic (a stranded segment) shows in p99 and max.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);
/** Bytes of one request of the request/response mode. */
const RR_REQUEST = 64;

if (mode === 'serve') {
  const server = createServer((sock) => {
    const hash = createHash('sha256');
    let bytes = 0;
    sock.on('data', (d) => {
      bytes += d.length;
      hash.update(d);
    });
    sock.on('end', () => {
      process.stdout.write(`${JSON.stringify({ bytes, sha256: hash.digest('hex') })}\n`);
      sock.end(() => process.exit(0));
    });
  });
  server.listen({ port: Number(args[0]), host: '::' }, () => process.stdout.write('listening\n'));
} else if (mode === 'send') {
  const [host, port, total] = [args[0], Number(args[1]), Number(args[2])];
  const hash = createHash('sha256');
  const chunk = 256 * 1024;
  let sent = 0;
  const started = process.hrtime.bigint();
  const sock = createConnection({ host, port }, () => {
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk, total - sent);
        const data = randomBytes(n);
        hash.update(data);
        sent += n;
        if (!sock.write(data)) return void sock.once('drain', pump);
      }
      sock.end();
    };
    pump();
  });
  sock.resume();
  sock.on('close', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stdout.write(`${JSON.stringify({ bytes: sent, sha256: hash.digest('hex'), seconds })}\n`);
  });
  sock.on('error', (e) => {
    process.stderr.write(`transfer: ${e.message}\n`);
    process.exit(1);
  });
} else if (mode === 'rr-serve') {
  const [port, size] = [Number(args[0]), Number(args[1])];
  const answer = randomBytes(size);
  createServer((sock) => {
    let pending = 0;
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      pending += d.length;
      for (; pending >= RR_REQUEST; pending -= RR_REQUEST) sock.write(answer);
    });
    sock.on('error', () => undefined);
  }).listen({ port, host: '::' }, () => process.stdout.write('listening\n'));
} else if (mode === 'rr') {
  const [host, port, count, size] = [args[0], Number(args[1]), Number(args[2]), Number(args[3])];
  const times: number[] = [];
  let got = 0;
  let started = 0n;
  const sock = createConnection({ host, port }, () => {
    sock.setNoDelay(true);
    ask();
  });
  const ask = () => {
    got = 0;
    started = process.hrtime.bigint();
    sock.write(Buffer.alloc(RR_REQUEST));
  };
  sock.on('data', (d) => {
    got += d.length;
    if (got < size) return;
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (times.length < count) return ask();
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
    process.stdout.write(`${JSON.stringify({ count: times.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: times[times.length - 1] })}\n`);
    sock.destroy();
  });
  sock.on('error', (e) => {
    process.stderr.write(`transfer: ${e.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: transfer serve <port> | send <addr> <port> <bytes> | rr-serve <port> <bytes> | rr <addr> <port> <count> <bytes>\n');
  process.exit(2);
}
