/**
 * The obvious Node 6in4 forwarder, kept as the benchmark's baseline: fs.read on a blocking TUN
 * fd (each call a libuv threadpool hand-off), fs.writeSync into it (ordered: parallel async
 * writes would reorder TCP segments and make this a straw man), the `raw-socket` package, one
 * packet per call, a Buffer per packet. It checks the outer source and lets the kernel build
 * the outer header, as a competent first attempt would.
 *
 *   naive-forwarder --local <v4> --remote <v4> --address <v6/len> --dev <name>
 * Prints "ready" on stdout when forwarding; on SIGTERM prints {"rxPackets":N,"txPackets":N}.
 */
import { read, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { resolveTunnelOptions } from '../../src/encap/resolve.js';
import { loadNative } from '../../src/io/native.js';
import { configureInterface } from '../../src/tun/interface.js';
import { interfacePlan } from '../../src/host/open.js';

const require = createRequire(import.meta.url);
const raw = require('raw-socket') as {
  createSocket(o: { protocol: number }): {
    on(ev: 'message', cb: (buf: Buffer, source: string) => void): void;
    send(buf: Buffer, off: number, len: number, addr: string, cb: (err?: Error) => void): void;
  };
};

const { values } = parseArgs({ options: { local: { type: 'string' }, remote: { type: 'string' }, address: { type: 'string' }, dev: { type: 'string' } } });
const config = resolveTunnelOptions({ mode: '6in4', local: values.local!, remote: values.remote!, address: values.address! });
const { fd, name } = loadNative().openTun(values.dev ?? 'naive%d', false);
await configureInterface(name, interfacePlan(config, config.local));
const socket = raw.createSocket({ protocol: 41 });
const remote = values.remote!;
let rxPackets = 0;
let txPackets = 0;

const readBuf = Buffer.alloc(65536);
function readLoop(): void {
  read(fd, readBuf, 0, readBuf.length, null, (err, n) => {
    if (err) return setTimeout(readLoop, 10);
    const pkt = Buffer.from(readBuf.subarray(0, n));
    socket.send(pkt, 0, pkt.length, remote, () => undefined);
    txPackets++;
    readLoop();
  });
}

socket.on('message', (buf, source) => {
  if (source !== remote) return;
  const ihl = (buf[0] & 0x0f) * 4;
  const inner = buf.subarray(ihl);
  writeSync(fd, inner);
  rxPackets++;
});

readLoop();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ rxPackets, txPackets })}\n`);
  // A read parked on the threadpool would keep a plain exit waiting; leave at once.
  process.kill(process.pid, 'SIGKILL');
});
