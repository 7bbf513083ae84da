/**
 * A broker (openBroker) inside the namespace this process was started in, driven by one JSON
 * command per line on stdin, one JSON answer per line on stdout: `put` (tunnels), `stats` (id),
 * `status`, `close`. The first line out is `{"up": status}` once it forwards.
 */
import { createInterface } from 'node:readline';
import { openBroker } from '../../src/host/broker.js';
import type { BrokerTunnel } from '../../src/broker/tunnel.js';

type Command = { op: 'put'; tunnels: BrokerTunnel[] } | { op: 'stats'; id: string } | { op: 'status'; busiest?: number } | { op: 'close' };

const broker = await openBroker(JSON.parse(process.argv[2]));
const say = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
say({ up: broker.status() });
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as Command;
  try {
    if (cmd.op === 'put') {
      for (const t of cmd.tunnels) broker.tunnels.put(t);
      say({ result: broker.tunnels.size });
    } else if (cmd.op === 'stats') {
      say({ result: broker.tunnels.stats(cmd.id) ?? null });
    } else if (cmd.op === 'status') {
      say({ result: broker.status(cmd.busiest) });
    } else {
      await broker.close();
      say({ result: true });
      break;
    }
  } catch (e) {
    say({ error: (e as Error).message });
  }
}
process.exit(0);
