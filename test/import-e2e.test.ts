/**
 * Every imported configuration runs the same tunnel: as root, each fixture of test/fixtures/import
 * is imported by the CLI (with --check), run with `tun6in4 up -c` on the lab host it describes
 * (namespaces made here, documentation addresses), and pinged across the tunnel against the lab's
 * peer — the broker's engine for 6in4, the border relay for 6rd, the relay and another site for
 * 6to4. Each tunnel the daemon reports must be the one the file names (dev, mode, addresses, MTU).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { ping6 } from '../src/lab/probes.js';
import { labFouArgs } from '../src/lab/lab.js';
import { LabNetwork } from '../src/lab/topology.js';
import { rootOrSkip, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const FIXTURES = fileURLToPath(new URL('./fixtures/import/', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const NETWORKD_HE = ['networkd/he-ipv6.netdev', 'networkd/he-ipv6.network', 'networkd/eth0.network', 'networkd/eth1.network'];

/** Runs `tun6in4 import FILES --check` and writes what it printed into a configuration file. */
function importToFile(dir: string, files: string[], name: string): string {
  const r = spawnSync(process.execPath, [BIN, 'import', ...files, '--check'], { cwd: FIXTURES, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`import ${files.join(' ')} failed: ${r.stderr}`);
  const path = join(dir, `${name}.toml`);
  writeFileSync(path, r.stdout, { mode: 0o600 });
  return path;
}

interface Expect {
  tunnel: string;
  dev: string;
  mode: string;
  mtu: number;
  address?: string;
}

/** Starts `up -c` on a lab host and waits until every tunnel of the file runs (none failed). */
async function up(lab: LabNetwork, role: string, config: string, tunnels: Expect[]): Promise<DaemonStatus> {
  const control = `/run/tun6in4/${lab.host(role).name}-import.sock`;
  await lab.startTun6in4(role, ['up', '-c', config, '--control', control], control, 30);
  const s = await until('every imported tunnel running', () => queryControl(control, 'status') as Promise<DaemonStatus>, (s) => s.failed.length > 0 || (s.tunnels.length === tunnels.length && s.tunnels.every((t) => t.state === 'running')), 30_000);
  expect(s.failed).toEqual([]);
  for (const e of tunnels) {
    const t = s.tunnels.find((x) => x.tunnel === e.tunnel);
    expect(t, `tunnel ${e.tunnel}`).toBeDefined();
    expect({ tunnel: t!.tunnel, dev: t!.name, mode: t!.mode, mtu: t!.mtu }).toEqual({ tunnel: e.tunnel, dev: e.dev, mode: e.mode, mtu: e.mtu });
    if (e.address) expect(t!.address).toBe(e.address);
  }
  return s;
}

const pingOk = async (lab: LabNetwork, role: string, target: string) => {
  const r = await ping6(lab.host(role), target, { count: 3, timeoutS: 3 });
  expect(r.ok, `${role} → ${target}\n${r.output}`).toBe(true);
};

describe.runIf(canRun)('import → up: 6in4 against the lab broker', () => {
  let lab: LabNetwork;
  let dir: string;

  beforeAll(async () => {
    await removeStaleNamespaces('imp4');
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-import-e2e-'));
    lab = await LabNetwork.create('6in4', 'imp4', { skipEngines: ['client'] });
  }, 90_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const HE: Expect = { tunnel: 'he-ipv6', dev: 'he-ipv6', mode: '6in4', mtu: 1480, address: '2001:db8:1::2/64' };
  const CASES: Array<{ what: string; files: string[]; tunnels: Expect[]; routed?: boolean }> = [
    { what: 'the broker\'s iproute2 block, routed /64 included', files: ['he-route2.sh'], tunnels: [HE], routed: true },
    { what: 'the broker\'s net-tools block (sit1, local any)', files: ['he-net-tools.sh'], tunnels: [{ ...HE, tunnel: 'sit1', dev: 'sit1' }] },
    { what: 'systemd-networkd .netdev + .network files, routed /64 from eth1', files: NETWORKD_HE, tunnels: [HE], routed: true },
    { what: 'ifupdown: v4tunnel and a 6to4 stanza in one file', files: ['interfaces'], tunnels: [HE, { tunnel: 'tun6to4', dev: 'tun6to4', mode: '6to4', mtu: 1480, address: '2002:c000:201::1/16' }], routed: true },
    { what: 'ifupdown-ng tunnel-mode sit', files: ['interfaces-ng'], tunnels: [HE] },
    { what: 'netplan: two broker tunnels', files: ['netplan.yaml'], tunnels: [HE, { tunnel: 'backup-ipv6', dev: 'backup-ipv6', mode: '6in4', mtu: 1472, address: '2001:db8:100::2/64' }] },
  ];

  for (const c of CASES) {
    it(`${c.what}: up, ping6 the broker through it`, async () => {
      const config = importToFile(dir, c.files, c.tunnels[0].tunnel + c.files.length);
      try {
        await up(lab, 'client', config, c.tunnels);
        await pingOk(lab, 'client', '2001:db8:1::1');
        // from the broker's side, to the client's address on the link and to one in the routed /64
        await pingOk(lab, 'broker', '2001:db8:1::2');
        if (c.routed) {
          await pingOk(lab, 'broker', '2001:db8:2::1');
          expect(await lab.host('client').ip(['-6', 'route', 'show', '2001:db8:2::/64'])).toMatch(/^unreachable 2001:db8:2::\/64 .*metric/m);
        }
      } finally {
        await lab.stopEngine('client');
      }
    }, 90_000);
  }

  it('OpenWrt UCI proto 6in4 (6in4-wan6), and its 6rd section alongside (6rd-sixrd, MTU 1280: netifd\'s default)', async () => {
    const config = importToFile(dir, ['network'], 'uci');
    // the 6rd section's ipaddr: the daemon opens only tunnels whose local address the host has
    await lab.host('client').ip(['addr', 'add', '192.0.2.10/24', 'dev', 'eth0']);
    try {
      const s = await up(lab, 'client', config, [
        { tunnel: 'wan6', dev: '6in4-wan6', mode: '6in4', mtu: 1480, address: '2001:db8:1::2/64' },
        { tunnel: 'sixrd', dev: '6rd-sixrd', mode: '6rd', mtu: 1280 },
      ]);
      expect(s.tunnels.find((t) => t.tunnel === 'wan6')!.brokerUpdate).toBeNull();
      await pingOk(lab, 'client', '2001:db8:1::1');
      await pingOk(lab, 'broker', '2001:db8:2::1');
    } finally {
      await lab.stopEngine('client');
      await lab.host('client').ip(['addr', 'del', '192.0.2.10/24', 'dev', 'eth0']);
    }
  }, 90_000);
});

describe.runIf(canRun)('import → up: 6rd CEs against the lab border relay', () => {
  let lab: LabNetwork;
  let dir: string;
  const BR_LAB = ['--mode', '6rd', '--role', 'relay', '--local', '203.0.113.1', '--6rd-prefix', '2001:db8:a000::/36', '--ipv4-mask-len', '25', '--6rd-ipv4-prefix', '192.0.2.0/25', '--no-default-route'];

  beforeAll(async () => {
    await removeStaleNamespaces('imp6rd');
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-import-e2e-'));
    lab = await LabNetwork.create('6rd', 'imp6rd', { skipEngines: ['ce1', 'ce2', 'br'] });
  }, 90_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('iproute2 `ip tunnel 6rd` on ce2 and UCI proto 6rd on ce1: each reaches native IPv6 through the BR, and the other CE directly', async () => {
    await lab.startEngine('br', BR_LAB);
    try {
      await up(lab, 'ce2', importToFile(dir, ['6rd-route2.sh'], 'ce2'), [{ tunnel: '6rd', dev: '6rd', mode: '6rd', mtu: 1480, address: '2001:db8:a280::1/36' }]);
      await up(lab, 'ce1', importToFile(dir, ['network-6rd'], 'ce1'), [{ tunnel: 'wan6', dev: '6rd-wan6', mode: '6rd', mtu: 1280, address: '2001:db8:a140::1/36' }]);
      await pingOk(lab, 'ce2', '2001:db8:5::2');
      await pingOk(lab, 'ce1', '2001:db8:5::2');
      await pingOk(lab, 'ce2', '2001:db8:a140::1');
    } finally {
      await Promise.all(['ce1', 'ce2', 'br'].map((r) => lab.stopEngine(r).catch(() => undefined)));
    }
  }, 120_000);

  it('systemd-networkd IPv6RapidDeploymentPrefix= (mask length 0, a /64 each): ce1 imported, ce2 and the BR on that domain, the CEs reach each other directly', async () => {
    // A /32 6rd prefix with mask length 0 covers all of 2001:db8::/32, the lab's native host
    // included, so here the traffic that crosses is CE to CE (RFC 5969 §7.1.1: direct, not via the BR).
    const domain = ['--6rd-prefix', '2001:db8::/32', '--ipv4-mask-len', '0'];
    await lab.startEngine('br', ['--mode', '6rd', '--role', 'relay', '--local', '203.0.113.1', ...domain, '--no-default-route']);
    try {
      await lab.startEngine('ce2', ['--mode', '6rd', '--local', '192.0.2.20', ...domain, '--relay', '203.0.113.1']);
      await up(lab, 'ce1', importToFile(dir, ['networkd/6rd.netdev', 'networkd/6rd.network'], 'nd6rd'), [{ tunnel: '6rd', dev: '6rd', mode: '6rd', mtu: 1480, address: '2001:db8:c000:20a::1/32' }]);
      await pingOk(lab, 'ce1', '2001:db8:c000:214::1');
      await pingOk(lab, 'ce2', '2001:db8:c000:20a::1');
    } finally {
      await Promise.all(['ce1', 'ce2', 'br'].map((r) => lab.stopEngine(r).catch(() => undefined)));
    }
  }, 120_000);
});

describe.runIf(canRun)('import → up: 6to4 against the lab relay and another site', () => {
  let lab: LabNetwork;
  let dir: string;

  beforeAll(async () => {
    await removeStaleNamespaces('imp6to4');
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-import-e2e-'));
    lab = await LabNetwork.create('6to4', 'imp6to4', { skipEngines: ['site1'] });
  }, 90_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('systemd-networkd Kind=sit without Remote= (6to4, relay from the ::a.b.c.d gateway)', async () => {
    try {
      await up(lab, 'site1', importToFile(dir, ['networkd-6to4.conf'], 'six'), [{ tunnel: 'sit6to4', dev: 'sit6to4', mode: '6to4', mtu: 1480, address: '2002:c000:201::1/16' }]);
      await pingOk(lab, 'site1', '2002:c633:6407::1');
      await pingOk(lab, 'site1', '2001:db8:5::2');
    } finally {
      await lab.stopEngine('site1');
    }
  }, 90_000);
});

describe.runIf(canRun)('import → up: Foo-over-UDP against the lab broker', () => {
  let lab: LabNetwork;
  let dir: string;

  beforeAll(async () => {
    await removeStaleNamespaces('impfou');
    dir = mkdtempSync(join(tmpdir(), 'tun6in4-import-e2e-'));
    lab = await LabNetwork.create('6in4', 'impfou', { engineArgs: labFouArgs(), skipEngines: ['client'] });
  }, 90_000);

  afterAll(async () => {
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('`ip fou add` + `ip link add … type sit … encap fou encap-dport 5555`: up, ping6 both ways', async () => {
    try {
      await up(lab, 'client', importToFile(dir, ['fou-route2.sh'], 'fou'), [{ tunnel: 'he-fou', dev: 'he-fou', mode: '6in4', mtu: 1472, address: '2001:db8:1::2/64' }]);
      await pingOk(lab, 'client', '2001:db8:1::1');
      await pingOk(lab, 'broker', '2001:db8:1::2');
    } finally {
      await lab.stopEngine('client');
    }
  }, 90_000);
});
