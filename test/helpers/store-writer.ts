/**
 * `store-writer STORE`: adds tunnels w0, w1, … to the store through BrokerService, one change
 * at a time, and prints each id once the change is acknowledged (committed). stdout is a pipe,
 * which Node writes synchronously on Linux: a line the parent has read is a change acknowledged
 * before it. Runs until killed.
 */
import { BrokerService } from '../../src/brokerd/service.js';
import { TunnelStore } from '../../src/brokerd/store.js';
import { MemoryDirectory } from './memory-broker.js';

const store = TunnelStore.open(process.argv[2]);
const service = new BrokerService('w', store, new MemoryDirectory());
for (let i = 0; i < 60_000; i++) {
  service.put({ id: `w${i}`, remote: `198.18.${(i >> 8) & 255}.${i & 255}`, link: `2001:db8:${i.toString(16)}::/64`, routed: [], mtu: 1480, user: null, keyHash: null });
  process.stdout.write(`w${i}\n`);
}
