/**
 * The DHCP hooks in contrib/, as root, inside lab namespaces made here: udhcpc's script is run
 * the way udhcpc runs it (an event argument, the lease in the environment) and must bring a 6rd
 * CE up from $ip6rd alone, leave it alone on an unchanged renewal, replace it when option 212
 * changes, and remove it when the lease goes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6 } from '../src/lab/probes.js';
import { LAB_6RD_DHCP, LabNetwork } from '../src/lab/topology.js';
import { rootOrSkip, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const UDHCPC_HOOK = fileURLToPath(new URL('../contrib/udhcpc-6rd.sh', import.meta.url));
const CLI = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

describe.runIf(canRun)('contrib/udhcpc-6rd.sh: a CE from udhcpc\'s $ip6rd alone', () => {
  let lab: LabNetwork;
  let run: string;
  const sock = () => join(run, '6rd-eth0.sock');
  const pid = () => readFileSync(join(run, '6rd-eth0.pid'), 'utf8').trim();
  const udhcpc = (event: string, lease: Record<string, string>) =>
    lab.host('ce1').exec('env', [`TUN6IN4=${CLI}`, `TUN6IN4_RUN_DIR=${run}`, 'interface=eth0', ...Object.entries(lease).map(([k, v]) => `${k}=${v}`), UDHCPC_HOOK, event], { timeoutMs: 30_000 });
  const status = async () => ((await queryControl(sock(), 'status')) as DaemonStatus).tunnels[0];

  beforeAll(async () => {
    await removeStaleNamespaces('hook6rd');
    run = mkdtempSync(join(tmpdir(), 'tun6in4-hook-'));
    lab = await LabNetwork.create('6rd', 'hook6rd', { skipEngines: ['ce1'] });
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
    if (run) rmSync(run, { recursive: true, force: true });
  });

  it('bound: the tunnel comes up with the derived prefix and reaches the other CE and native IPv6', async () => {
    await udhcpc('bound', { ip: '192.0.2.10', ip6rd: LAB_6RD_DHCP });
    const s = await until('the hook\'s tunnel to answer status', status, (t) => t.state === 'running');
    expect(s).toMatchObject({ name: '6rd-eth0', address: '2001:db8:a140::1/36', relay: '203.0.113.1', sixrd: { delegatedPrefix: '2001:db8:a140::/43' } });
    expect((await ping6(lab.host('ce1'), '2001:db8:a280::1')).ok).toBe(true);
    expect((await ping6(lab.host('ce1'), '2001:db8:5::2')).ok).toBe(true);
  }, 60_000);

  it('renew with the same lease leaves the tunnel running; a changed option 212 replaces it', async () => {
    const first = pid();
    await udhcpc('renew', { ip: '192.0.2.10', ip6rd: LAB_6RD_DHCP });
    expect(pid()).toBe(first);
    await udhcpc('renew', { ip: '192.0.2.10', ip6rd: `${LAB_6RD_DHCP} 203.0.113.2` });
    expect(pid()).not.toBe(first);
    const s = await until('the replaced tunnel to answer status', status, (t) => t.sixrd?.relays.length === 2);
    expect(s.sixrd?.relays).toEqual(['203.0.113.1', '203.0.113.2']);
  }, 60_000);

  it('deconfig: the tunnel exits and its interface is gone', async () => {
    await udhcpc('deconfig', {});
    expect(await lab.host('ce1').ip(['-o', 'link', 'show'])).not.toMatch(/6rd-eth0/);
    expect(() => pid()).toThrow(/ENOENT/);
  }, 30_000);
});
