/**
 * A TCP transfer with an integrity check, run inside a lab namespace:
 *   transfer serve <port>                 -> prints {"bytes":N,"sha256":"…"} when the peer closes
 *   transfer send <addr> <port> <bytes>   -> prints {"bytes":N,"sha256":"…","seconds":S}
 * The data is random; both ends hash what they saw, and the lab compares the hashes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);

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
} else {
  process.stderr.write('usage: transfer serve <port> | transfer send <addr> <port> <bytes>\n');
  process.exit(2);
}
