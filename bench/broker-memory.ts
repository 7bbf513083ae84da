/**
 * Memory per idle tunnel: what 10,000 tunnels add to the JavaScript heap and to ArrayBuffer
 * memory (typed arrays live outside the heap), as a broker's table holds them and, for
 * comparison, as one Encapsulator each would; and what the daemon's side adds, loaded from a store
 * (the store's SQLite open, the service, the table each tunnel went into), once the loading's
 * garbage is collected. Issue 37's target: ≤ 1 KiB per idle tunnel beyond the base. Run:
 * `node --expose-gc --import tsx bench/broker-memory.ts` (`--json`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrokerPolicy } from '../src/broker/policy.js';
import { BrokerService } from '../src/brokerd/service.js';
import { TunnelStore } from '../src/brokerd/store.js';
import { Encapsulator } from '../src/encap/encapsulator.js';
import { formatIpv4 } from '../src/packet/address.js';

const N = 10_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function used(): number {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const remote = (i: number) => formatIpv4(((198 << 24) | (18 << 16)) + 1 + i);
const hex = (n: number) => n.toString(16);

/** Bytes per tunnel that `make` adds, holding what it returns. */
function perTunnel(make: () => unknown): number {
  const before = used();
  const held = make();
  const after = used();
  if (held === null) throw new Error('unreachable');
  return (after - before) / N;
}

const encapsulators = perTunnel(() => Array.from({ length: N }, (_, i) => new Encapsulator({ mode: '6in4', local: '192.0.2.1', remote: remote(i), address: `2001:db8:0:${hex(i)}::1/64`, routed: [`2001:db8:${hex(0x100 + (i >> 8))}:${hex((i & 0xff) << 8)}::/56`] })));
const broker = perTunnel(() => {
  const p = new BrokerPolicy({ local: '192.0.2.1', pools: ['2001:db8::/32'] });
  for (let i = 0; i < N; i++) p.tunnels.put({ id: `tunnel-${i}`, remote: remote(i), link: `2001:db8:0:${hex(i)}::/64`, routed: [`2001:db8:${hex(0x100 + (i >> 8))}:${hex((i & 0xff) << 8)}::/56`], mtu: 1480, user: `user${i}`, keyHash: null });
  return p;
});

const spec = (i: number) => ({ id: `tunnel-${i}`, remote: remote(i), link: `2001:db8:0:${hex(i)}::/64`, routed: [`2001:db8:${hex(0x100 + (i >> 8))}:${hex((i & 0xff) << 8)}::/56`], mtu: 1480, user: `user${i}`, keyHash: `scrypt$16384$8$1$${'s'.repeat(22)}$${'h'.repeat(43)}` });
const dir = mkdtempSync(join(tmpdir(), 'tun6in4-broker-memory-'));
let loaded: number;
try {
  const file = join(dir, 'bench.sqlite');
  const writing = TunnelStore.open(file, 'normal');
  new BrokerService('bench', writing, new BrokerPolicy({ local: '192.0.2.1', pools: ['2001:db8::/32'] }).tunnels).putMany(Array.from({ length: N }, (_, i) => spec(i)));
  writing.close();
  // the daemon's start: the store opened, every stored tunnel loaded into the table
  loaded = perTunnel(() => {
    const store = TunnelStore.open(file, 'normal');
    const service = new BrokerService('bench', store, new BrokerPolicy({ local: '192.0.2.1', pools: ['2001:db8::/32'] }).tunnels);
    if (service.loadStored() !== N) throw new Error('the store did not load back every tunnel');
    return service;
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const result = { tunnels: N, encapsulatorBytesPerTunnel: Math.round(encapsulators), brokerTableBytesPerTunnel: Math.round(broker), loadedFromStoreBytesPerTunnel: Math.round(loaded) };
if (process.argv.includes('--json')) console.log(JSON.stringify(result));
else {
  console.log(`${N} idle tunnels, heap + ArrayBuffer bytes each:`);
  console.log(`  one Encapsulator each: ${result.encapsulatorBytesPerTunnel}`);
  console.log(`  a broker table entry:  ${result.brokerTableBytesPerTunnel} (target ≤ 1024)`);
  console.log(`  loaded from the store (store, service and table, after GC): ${result.loadedFromStoreBytesPerTunnel}`);
}
