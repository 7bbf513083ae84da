/**
 * UDP offload on a real TUN, with the kernel on both sides: in the lab's namespaces a Python
 * sender uses UDP_SEGMENT (the kernel hands our TUN UDP super-packets), and a Python receiver
 * with UDP_GRO takes what our far end merged (the kernel accepted our GSO_UDP_L4 frames). Over
 * protocol 41 and FOU. Rates are printed, never asserted.
 */
import { release } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { udpBulk } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { rootOrSkip } from './helpers/netlab.js';

const canRun = rootOrSkip();
const [major, minor] = release().split('.').map(Number);
/** TUN_F_USO4/USO6 exist from Linux 6.2; before, the engine runs with TCP offload only. */
const kernelHasUso = major > 6 || (major === 6 && minor >= 2);

const TRANSPORTS = [
  { name: 'protocol 41', args: [] as string[] },
  { name: 'FOU with checksums', args: ['--encap', 'fou', '--encap-dport', '5555', '--encap-csum'] },
];

const statusOf = async (lab: LabNetwork, role: string) => ((await queryControl(lab.engines.get(role)!.control, 'status')) as DaemonStatus).tunnels[0];

for (const t of TRANSPORTS) {
  describe.runIf(canRun)(`UDP offload on the TUN, ${t.name}`, () => {
    let lab: LabNetwork;
    beforeAll(async () => {
      await removeStaleNamespaces('uso');
      const args = ['--keepalive', 'off', ...t.args];
      lab = await LabNetwork.create('6in4', 'uso', { engineArgs: { client: args, broker: args } });
    }, 60_000);
    afterAll(async () => {
      await lab?.destroy();
    });

    it(`the TUN is given UDP offload where the kernel has it (this kernel: ${release()})`, async () => {
      for (const role of ['client', 'broker']) expect((await statusOf(lab, role)).tunIo).toMatchObject({ offload: true, udpOffload: kernelHasUso });
    });

    it('1,200-byte datagrams sent with UDP_SEGMENT arrive intact; super-packets cut at one end, merged at the other', async () => {
      const before = [(await statusOf(lab, 'client')).tunIo.superPackets!, (await statusOf(lab, 'broker')).tunIo.superPackets!];
      const r = await udpBulk(lab.host('client'), lab.host('broker'), '2001:db8:1::1', { datagrams: 4000, size: 1200, gso: true, gro: true });
      const after = [(await statusOf(lab, 'client')).tunIo.superPackets!, (await statusOf(lab, 'broker')).tunIo.superPackets!];
      console.log(`USO ${t.name}: ${r.received}/${r.sent} datagrams, sender ${r.sentMbitPerSecond.toFixed(0)} Mbit/s, receiver ${r.receivedMbitPerSecond.toFixed(0)} Mbit/s, ${r.coalescedReads} merged reads (≤ ${r.maxPerRead} datagrams); client cut ${after[0].readUdp - before[0].readUdp}, broker merged ${after[1].writtenUdp - before[1].writtenUdp}`);
      expect(r.corrupt).toBe(0);
      // UDP has no retransmission: a datagram may be lost to a full buffer on a loaded machine, never altered
      expect(r.received).toBeGreaterThan(r.sent / 10);
      if (!kernelHasUso) return;
      expect(after[0].readUdp - before[0].readUdp).toBeGreaterThan(0);
      expect(after[1].writtenUdp - before[1].writtenUdp).toBeGreaterThan(0);
      expect(r.coalescedReads).toBeGreaterThan(0);
      expect(r.maxPerRead).toBeLessThanOrEqual(64);
    }, 120_000);

    it('a receiver without UDP_GRO gets the merged datagrams one by one, each intact (the kernel cuts our frames)', async () => {
      const r = await udpBulk(lab.host('client'), lab.host('broker'), '2001:db8:1::1', { datagrams: 2000, size: 1200, gso: true, gro: false, port: 5402 });
      expect(r.corrupt).toBe(0);
      expect(r.coalescedReads).toBe(0);
      expect(r.received).toBeGreaterThan(r.sent / 10);
    }, 120_000);

    it('datagrams of every size up to the tunnel MTU, one a send, arrive intact', async () => {
      for (const size of [8, 9, 600, 1432]) {
        const r = await udpBulk(lab.host('client'), lab.host('broker'), '2001:db8:1::1', { datagrams: 300, size, gso: false, gro: true, port: 5403 + size });
        expect(r.corrupt, `size ${size}`).toBe(0);
        expect(r.received, `size ${size}`).toBeGreaterThan(0);
      }
    }, 120_000);
  });
}
