/**
 * Faults, as root in namespaces these tests create: random loss (nftables numgen; the kernel has
 * no netem), the peer engine killed and restarted mid-transfer, the TUN deleted underneath the
 * engine, sends refused by the firewall, and SIGTERM under load.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6, tcpTransfer } from '../src/lab/probes.js';
import { LabNetwork } from '../src/lab/topology.js';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { rootOrSkip, until } from './helpers/netlab.js';

const canRun = rootOrSkip();

/** Waits until an engine's status satisfies `ok` (e.g. a transfer is under way). */
const waitForStatus = (lab: LabNetwork, role: string, ok: (s: DaemonStatus) => boolean) =>
  until(`${role}'s status`, () => queryControl(lab.engines.get(role)!.control, 'status') as Promise<DaemonStatus>, ok, 20_000, 50);
const rxPackets = (s: DaemonStatus) => s.tunnels[0]?.counters.traffic.rx_packets ?? 0;

describe.runIf(canRun)('faults', () => {
  let lab: LabNetwork;
  beforeEach(async () => {
    await removeStaleNamespaces('fault');
    lab = await LabNetwork.create('6in4', 'fault', { engineArgs: { client: ['--keepalive', 'off'], broker: ['--keepalive', 'off'] } });
  }, 60_000);
  afterEach(async () => {
    await lab?.destroy();
  });

  it('5% random loss of protocol 41 on the path: a TCP transfer still arrives intact', async () => {
    await lab.host('wan').exec('nft', ['-f', '-'], {
      input: 'table inet loss {\n  chain fwd41 {\n    type filter hook forward priority 0; policy accept;\n    ip protocol 41 numgen random mod 100 < 5 counter drop\n  }\n}\n',
    });
    const t = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 16 << 20);
    expect(t.ok).toBe(true);
    const rules = await lab.host('wan').exec('nft', ['list', 'table', 'inet', 'loss']);
    const dropped = Number(/counter packets (\d+)/.exec(rules)?.[1]);
    expect(dropped).toBeGreaterThan(50); // the loss really happened
  }, 120_000);

  it('the peer engine killed and restarted mid-transfer: traffic resumes and the data arrives intact', async () => {
    const transfer = tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 48 << 20);
    await waitForStatus(lab, 'broker', (s) => rxPackets(s) > 3000);
    const killed = lab.engines.get('broker')!.child;
    const gone = new Promise((r) => killed.once('exit', r));
    killed.kill('SIGKILL');
    await gone; // its TUN (and tun0's name) is free once the process is gone
    await lab.restartEngine('broker');
    const t = await transfer;
    expect(t.ok).toBe(true);
    expect((await ping6(lab.host('client'), '2001:db8:1::1')).ok).toBe(true);
  }, 180_000);

  it('the TUN deleted underneath the engine: a clear error, exit 1, routes removed', async () => {
    const client = lab.engines.get('client')!;
    const exited = new Promise<number | null>((r) => client.child.once('exit', (code) => r(code)));
    await lab.host('client').ip(['link', 'del', 'tun0']);
    expect(await exited).toBe(1);
    const log = client.logs.join('\n');
    expect(log).toMatch(/interface tun0 disappeared \(read tun: File descriptor in bad state\)/);
    expect(log).not.toMatch(/at .*\.ts:\d+/); // an error line, not a crash with a stack
    expect(await lab.host('client').ip(['-6', 'route', 'show', 'table', 'all'])).not.toMatch(/unreachable 2001:db8:2::\/64|default/);
  }, 30_000);

  it('sends refused by the firewall (EPERM) are counted, the engine lives, traffic resumes after', async () => {
    const c = lab.host('client');
    await c.exec('nft', ['-f', '-'], { input: 'table inet block {\n  chain out41 {\n    type filter hook output priority 0; policy accept;\n    ip protocol 41 reject\n  }\n}\n' });
    expect((await ping6(c, '2001:db8:1::1', { count: 3, timeoutS: 1 })).received).toBe(0);
    await c.exec('nft', ['delete', 'table', 'inet', 'block']);
    expect((await ping6(c, '2001:db8:1::1', { count: 2 })).ok).toBe(true);
    const { down } = await lab.stopEngine('client');
    expect(down!.code).toBe(0);
    expect(down!.counters.drops.tx_send_error).toBeGreaterThanOrEqual(3);
    expect(lab.engines.get('client')!.logs.join('\n')).toMatch(/"where":"send","errno":1,"error":"EPERM"/);
  }, 30_000);

  it('SIGTERM under load: both engines exit 0 and leave no interface or route', async () => {
    const transfer = tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 1 << 30).catch((e: Error) => e);
    await waitForStatus(lab, 'broker', (s) => rxPackets(s) > 3000);
    const [c, b] = await Promise.all([lab.stopEngine('client'), lab.stopEngine('broker')]);
    expect([c.down?.code, b.down?.code]).toEqual([0, 0]);
    expect(c.down!.counters.traffic.tx_packets).toBeGreaterThan(1000); // it was under load
    for (const host of ['client', 'broker']) {
      expect(await lab.host(host).ip(['-o', 'link', 'show'])).not.toMatch(/tun0/);
      expect(await lab.host(host).ip(['-6', 'route', 'show', 'table', 'all'])).not.toMatch(/unreachable|default/);
    }
    void transfer; // it cannot finish now; the namespace teardown ends it
  }, 60_000);
});

describe.runIf(canRun)('io_uring refused while running', () => {
  let lab: LabNetwork;
  const denyIoUring = fileURLToPath(new URL('./helpers/deny_io_uring.py', import.meta.url));
  beforeEach(async () => {
    await removeStaleNamespaces('uring');
    // the client's engine runs under a seccomp filter: its ring is set up, then io_uring_enter fails
    lab = await LabNetwork.create('6in4', 'uring', {
      engineArgs: { client: ['--keepalive', 'off'], broker: ['--keepalive', 'off'] },
      engineWrapper: { client: ['/usr/bin/python3', denyIoUring] },
    });
  }, 60_000);
  afterEach(async () => {
    await lab?.destroy();
  });

  it('the engine falls back to read()/write() on its first batch: TCP both ways intact, status says why', async () => {
    const up = await tcpTransfer(lab.host('client'), lab.host('broker'), '2001:db8:1::1', 16 << 20);
    const down = await tcpTransfer(lab.host('broker'), lab.host('client'), '2001:db8:1::2', 16 << 20);
    expect(up.ok).toBe(true);
    expect(down.ok).toBe(true);
    const client = (await queryControl(lab.engines.get('client')!.control, 'status')) as DaemonStatus;
    expect(client.tunnels[0].tunIo).toMatchObject({ ioUring: false, ioUringFallback: 'io_uring_enter: Operation not permitted' });
    expect(client.tunnels[0].counters.drops.rx_tun_write_error).toBe(0);
    const broker = (await queryControl(lab.engines.get('broker')!.control, 'status')) as DaemonStatus;
    expect(broker.tunnels[0].tunIo.ioUring).toBe(true);
  }, 120_000);
});
