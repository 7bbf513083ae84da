/**
 * Captures packets with the `cap` package (libpcap) inside a namespace: run with
 * `ip netns exec NS node --import tsx cap-capture.ts <iface> <bpf filter> <count> <timeout ms>`.
 * Prints "ready" on stderr once capturing, then one JSON line {linkType, packets: [hex]} on stdout.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Cap } = require('cap') as {
  Cap: new () => {
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
    on(ev: 'packet', cb: (nbytes: number, truncated: boolean) => void): void;
    setMinBytes?(n: number): void;
    close(): void;
  };
};

const [iface, filter, count, timeoutMs] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const buffer = Buffer.alloc(65536);
const cap = new Cap();
const linkType = cap.open(iface, filter, 4 * 1024 * 1024, buffer);
cap.setMinBytes?.(0);
const packets: string[] = [];
let done = false;
const finish = () => {
  if (done) return;
  done = true;
  cap.close();
  // stdout into a pipe is written asynchronously: exit once all of it is out, or a large capture is cut short
  process.stdout.write(`${JSON.stringify({ linkType, packets })}\n`, () => process.exit(0));
};
cap.on('packet', (nbytes) => {
  packets.push(buffer.toString('hex', 0, nbytes));
  if (packets.length >= count) finish();
});
setTimeout(finish, timeoutMs);
process.stderr.write('ready\n');
