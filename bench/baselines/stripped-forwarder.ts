/**
 * A probe, not a baseline to beat: the least a Node 6in4 forwarder can run per wake-up. The same
 * addon calls as the engine (uv_poll readiness, TUN reads and writes, recvmmsg and sendmmsg on a
 * raw protocol-41 socket, batches of 64) with no policy, no offload, no io_uring and no counters:
 * it sends whatever the TUN hands it to the remote and writes every received payload past the
 * IPv4 header into the TUN. What it costs above the C forwarder is what any Node process pays to
 * be woken and to call into an addon; what the engine costs above it is the engine's own.
 *
 *   stripped-forwarder --local <v4> --remote <v4> --address <v6/len> --dev <name>
 * Prints "ready" on stdout when forwarding.
 */
import { parseArgs } from 'node:util';
import { resolveTunnelOptions } from '../../src/encap/resolve.js';
import { PacketBatch } from '../../src/io/batch.js';
import { IP_PMTUDISC_DONT, loadNative } from '../../src/io/native.js';
import { packOuterFields } from '../../src/packet/ipv4.js';
import { configureInterface } from '../../src/tun/interface.js';
import { interfacePlan } from '../../src/host/open.js';

const { values } = parseArgs({ options: { local: { type: 'string' }, remote: { type: 'string' }, address: { type: 'string' }, dev: { type: 'string' } } });
const config = resolveTunnelOptions({ mode: '6in4', local: values.local!, remote: values.remote!, address: values.address! });
const native = loadNative();
const { fd: tun, name } = native.openTun(values.dev ?? 'stripped%d', true);
await configureInterface(name, interfacePlan(config, config.local));
const raw = native.openRawSocket(config.local | 0, IP_PMTUDISC_DONT, 4 << 20);
native.setSendOptions(raw, {});
const remote = config.remote | 0;
const fields = packOuterFields(64, 0, false);
const tx = new PacketBatch(64);
const rx = new PacketBatch(64);

new native.Poller(tun, () => {
  const n = native.tunRead(tun, tx.arena, tx.slotSize, tx.headroom, 64, tx.lens);
  for (let i = 0; i < n; i++) {
    tx.offs[i] = i * tx.slotSize + tx.headroom;
    tx.dsts[i] = remote;
    tx.fields[i] = fields;
  }
  if (n > 0) native.sendBatch(raw, tx, n);
}).start();

new native.Poller(raw, (events) => {
  // POLLERR: an ICMP error is queued (the far end was not up yet); read it, or the fd stays ready
  if (events < 0) native.recvErrors(raw, rx.arena, rx.slotSize, rx.headroom, 64, rx.lens, rx.info);
  const n = native.rawRecv(raw, rx.arena, rx.slotSize, rx.headroom, 64, rx.lens);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const off = i * rx.slotSize + rx.headroom;
    const ihl = (rx.arena[off] & 0x0f) * 4;
    if (rx.lens[i] <= ihl) continue;
    rx.offs[k] = off + ihl;
    rx.lens[k++] = rx.lens[i] - ihl;
  }
  if (k > 0) native.tunWrite(tun, rx.arena, rx.offs, rx.lens, k, rx.errs);
}).start();

process.stdout.write('ready\n');
