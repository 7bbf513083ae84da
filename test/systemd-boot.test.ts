/**
 * The shipped units under a real systemd: a Debian 12 container (debootstrap minbase + systemd,
 * booted by systemd-nspawn, systemd as PID 1) whose network is a namespace with a veth to far-end
 * engines, and whose /dev/net/tun is a node this test made 0600 root:root, as devtmpfs leaves it
 * where no udev rule widens it. The package is installed from its own packed tarball, the units
 * copied from it as their comments say. Both units, one boot: start (READY only once the tunnel
 * exists), the Status line, reload (one that adds a tunnel, and a refused one), the watchdog,
 * Restart= after SIGKILL, two template instances, stop — and what a 0600 device does.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NamespaceSet, removeStaleNamespaces, runCapture, type Namespace } from '../src/lab/netns.js';
import { cachedRootfs, Container, removeStaleContainers, removeStalePartials } from './helpers/container.js';
import { installForAnyUser, type InstalledCopy } from './helpers/installed.js';
import { rootOrSkip, until } from './helpers/netlab.js';

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const canRun = rootOrSkip();

/** One tunnel of a configuration file, on documentation addresses. */
const tunnelToml = (name: string, remote: string, address: string, keepalive: number | 'off') =>
  [`[tunnels.${name}]`, 'mode = "6in4"', 'local = "192.0.2.1"', `remote = "${remote}"`, `address = "${address}"`, `dev = "${name}"`, `keepalive = ${keepalive === 'off' ? '"off"' : keepalive}`, 'defaultRoute = false', ''].join('\n');
const HE = tunnelToml('he', '198.51.100.1', '2001:db8:1::2/64', 1);
// Added by a reload: a remote nobody answers, so it stays idle.
const HE2 = tunnelToml('he2', '198.51.100.3', '2001:db8:3::2/64', 'off');
const B = tunnelToml('b', '198.51.100.2', '2001:db8:2::2/64', 1);

describe.runIf(canRun)('the units in contrib/ under a real systemd (Debian 12 booted by systemd-nspawn)', () => {
  const set = new NamespaceSet('sdboot');
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-sdboot-'));
  const node = join(dir, 'tun');
  const farEngines: ChildProcess[] = [];
  const farLogs: string[] = [];
  let installed: InstalledCopy | undefined;
  let c: Container | undefined;
  let cns: Namespace;
  let far: Namespace;
  const ct = () => c!;
  /** Mode, owner and group of the node the container sees as /dev/net/tun. */
  const nodeMode = () => {
    const st = statSync(node);
    return `${(st.mode & 0o777).toString(8)}:${st.uid}:${st.gid}`;
  };
  const systemctl = (...args: string[]) => ct().run(['systemctl', '--no-pager', ...args], { timeoutMs: 90_000 });
  const journal = async (unit: string) => (await ct().run(['journalctl', '--no-pager', '-o', 'cat', '-u', unit])).stdout;
  const linkIn = async (dev: string) => (await cns.run('ip', ['-o', 'link', 'show', 'dev', dev])).code === 0;
  /** Test failures carry what systemd and the daemon said. */
  const explain = async (unit: string) => `\n--- systemctl status ${unit}:\n${(await systemctl('status', '-n', '30', unit)).stdout}\n--- far end:\n${farLogs.slice(-10).join('\n')}`;
  const waitFor = async <T>(what: string, unit: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> => {
    try {
      return await until(what, probe, ok, timeoutMs);
    } catch (e) {
      throw new Error(`${(e as Error).message}${await explain(unit)}`);
    }
  };

  function startFarEngine(dev: string, local: string, address: string): void {
    const p = far.spawn(process.execPath, [BIN, 'run', '--mode', '6in4', '--local', local, '--remote', '192.0.2.1', '--address', address, '--dev', dev, '--no-default-route', '--control', `/run/tun6in4/${far.name}-${dev}.sock`]);
    p.stderr!.on('data', (d: Buffer) => farLogs.push(...d.toString().trim().split('\n')));
    p.stdout!.resume();
    farEngines.push(p);
  }

  beforeAll(async () => {
    removeStaleContainers('t6-sdboot-');
    await removeStaleNamespaces('sdboot');
    removeStalePartials();
    for (const tool of ['debootstrap', 'systemd-nspawn', 'nsenter']) {
      if ((await runCapture('sh', ['-c', `command -v ${tool}`], { noThrow: true })).code !== 0) throw new Error(`${tool} is missing: scripts/setup.sh installs it (debootstrap, systemd-container, util-linux)`);
    }
    const rootfs = await cachedRootfs();
    installed = installForAnyUser();
    const project = installed.bin.replace(/\/node_modules\/.*$/, '');

    // The container's network: 192.0.2.1 on a veth to `far`, where the brokers are 198.51.100.1 and .2.
    cns = await set.add('c');
    far = await set.add('far');
    await set.link(cns, 'v0', far, 'v0');
    await cns.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'v0']);
    await cns.ip(['route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'v0']);
    await far.ip(['addr', 'add', '192.0.2.254/24', 'dev', 'v0']);
    for (const a of ['198.51.100.1/32', '198.51.100.2/32']) await far.ip(['addr', 'add', a, 'dev', 'lo']);
    startFarEngine('fhe', '198.51.100.1', '2001:db8:1::1/64');
    startFarEngine('fb', '198.51.100.2', '2001:db8:2::1/64');

    // What devtmpfs makes when no udev rule widens it.
    await runCapture('mknod', ['-m', '0600', node, 'c', '10', '200']);
    c = await Container.boot({
      rootfs,
      netns: cns.name,
      machine: `t6-sdboot-${process.pid}`,
      bind: { [node]: '/dev/net/tun' },
      bindRo: { [project]: '/opt/tun6in4', [process.execPath]: '/usr/local/bin/node' },
    });
    const nodeOk = await c.run(['node', '--version']);
    if (nodeOk.code !== 0) throw new Error(`this host's node (${process.execPath}) does not run inside the Debian 12 container; it needs a self-contained build (nodejs.org or NodeSource): ${nodeOk.stderr}`);
    // Installed as the units' comments say, from the package's own copy of them.
    await c.exec(['ln', '-s', '/opt/tun6in4/node_modules/.bin/tun6in4', '/usr/local/bin/tun6in4']);
    await c.exec(['useradd', '--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'tun6in4']);
    await c.exec(['cp', '/opt/tun6in4/node_modules/tun6in4/contrib/tun6in4.service', '/opt/tun6in4/node_modules/tun6in4/contrib/tun6in4@.service', '/etc/systemd/system/']);
    await c.writeFile('/etc/tun6in4/he.toml', HE);
    await c.writeFile('/etc/tun6in4/b.toml', B);
    await c.writeFile('/etc/tun6in4/tun6in4.toml', HE);
    // The watchdog case, shortened (30 s in the units): only for the instance and unit it kills.
    for (const u of ['tun6in4@he', 'tun6in4']) await c.writeFile(`/etc/systemd/system/${u}.service.d/watchdog.conf`, '[Service]\nWatchdogSec=3s\n');
    // Units that need the tunnel: ordered after it, they check its interface is there and addressed.
    for (const [probe, unit] of [['after-he', 'tun6in4@he'], ['after-main', 'tun6in4']]) {
      await c.writeFile(
        `/etc/systemd/system/${probe}.service`,
        `[Unit]\nRequires=${unit}.service\nAfter=${unit}.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'ip -o addr show dev he | grep -q "inet6 2001:db8:1::2/64"'\n`,
      );
    }
    await c.exec(['systemctl', 'daemon-reload']);
    await until('the far ends\' interfaces', async () => (await far.run('ip', ['link', 'show', 'fb'])).code === 0 && (await far.run('ip', ['link', 'show', 'fhe'])).code === 0, (v) => v, 60_000);
  }, 900_000);

  afterAll(async () => {
    await c?.shutdown();
    for (const p of farEngines) p.kill('SIGKILL');
    await set.destroy();
    installed?.remove();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('a tree that cannot boot fails at once with nspawn\'s own words', async () => {
    const empty = join(dir, 'empty-root');
    mkdirSync(empty);
    const boot = Container.boot({ rootfs: empty, netns: cns.name, machine: `t6-sdboot-${process.pid}-bad`, timeoutMs: 60_000 });
    await expect(boot).rejects.toThrow(/^systemd-nspawn exited 1 before the container booted:\n[^]*\S/);
  }, 90_000);

  it('boots; /dev/net/tun is 0600 root:root in there, and the service user cannot open it: doctor --user says so, a daemon run as it says why and the fix', async () => {
    expect((await ct().exec(['stat', '-c', '%a:%u:%g', '/dev/net/tun'])).trim()).toBe('600:0:0');
    const doctor = await ct().run(['tun6in4', 'doctor', '--user', 'tun6in4', '--json']);
    const finding = (JSON.parse(doctor.stdout) as Array<{ check: string; level: string; detail: string; fix?: string }>).find((f) => f.check === '/dev/net/tun for user tun6in4');
    expect(finding, doctor.stdout + doctor.stderr).toMatchObject({ level: 'fail', detail: expect.stringMatching(/^crw------- root:root \(0600\): tun6in4 \(uid \d+\) cannot open it/), fix: expect.stringContaining('chmod 0666 /dev/net/tun') });
    expect(doctor.code).toBe(1);
    // The daemon as the unit ran it before this change: the user, both capabilities, nothing else.
    const r = await ct().run([
      'systemd-run', '--wait', '--pipe', '--quiet', '-p', 'User=tun6in4', '-p', 'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW',
      'tun6in4', 'run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:9::2/64', '--dev', 'denied0', '--no-default-route', '--control', '/tmp/denied.sock',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/open \/dev\/net\/tun: Permission denied: \/dev\/net\/tun is crw------- root:root \(0600\) and this runs as tun6in4 \(uid \d+\); capabilities do not override a device's mode: give it udev's usual mode: chmod 0666 \/dev\/net\/tun/);
    expect(await linkIn('denied0')).toBe(false);
    expect(nodeMode()).toBe('600:0:0');
  }, 120_000);

  for (const u of [
    { unit: 'tun6in4@he', probe: 'after-he', config: '/etc/tun6in4/he.toml', control: '/run/tun6in4/he.sock' },
    { unit: 'tun6in4', probe: 'after-main', config: '/etc/tun6in4/tun6in4.toml', control: '/run/tun6in4/tun6in4.sock' },
  ]) {
    describe(`${u.unit}.service`, () => {
      let mainPid = '';

      it('start: ExecStartPre=+ gives the 0600 device to group tun6in4 (0660, not 0666), the daemon runs as tun6in4, READY=1 only once the tunnel exists (a unit ordered After= sees it)', async () => {
        // The other unit's start already changed it: put the host back to 0600 root:root for this one.
        chownSync(node, 0, 0);
        chmodSync(node, 0o600);
        const r = await systemctl('start', `${u.probe}.service`);
        expect(r.code, r.stderr + (await explain(u.unit))).toBe(0);
        expect(await ct().show(`${u.probe}.service`, 'Result')).toBe('success');
        expect(await ct().show(u.unit, 'ActiveState')).toBe('active');
        // READY=1 is what turns a notify unit active; the probe started after that.
        const ready = BigInt(await ct().show(u.unit, 'ActiveEnterTimestampMonotonic'));
        expect(BigInt(await ct().show(`${u.probe}.service`, 'ExecMainStartTimestampMonotonic'))).toBeGreaterThanOrEqual(ready);
        const group = (await ct().exec(['getent', 'group', 'tun6in4'])).split(':')[2];
        expect(nodeMode()).toBe(`660:0:${group}`);
        expect(await journal(u.unit)).toContain('/dev/net/tun was 0600 root:root; made it 0660 root:tun6in4 so this service (group tun6in4) can open it; other users still cannot');
        mainPid = await ct().show(u.unit, 'MainPID');
        expect((await ct().exec(['stat', '-c', '%U', `/proc/${mainPid}`])).trim()).toBe('tun6in4');
        expect(await linkIn('he')).toBe(true);
      }, 120_000);

      it('Status: "1 tunnel: he up" once the far end answers; IPv6 crosses the tunnel', async () => {
        await waitFor('StatusText "1 tunnel: he up"', u.unit, () => ct().show(u.unit, 'StatusText'), (s) => s === '1 tunnel: he up');
        await waitFor('ping6 through the tunnel', u.unit, () => cns.run('ping', ['-6', '-c', '1', '-W', '2', '2001:db8:1::1']), (r) => r.code === 0);
        expect((await ct().exec(['tun6in4', 'status', '--control', u.control])).trim()).toMatch(/\bhe\b/);
      }, 120_000);

      if (u.unit === 'tun6in4@he') {
        it('two template instances side by side: tun6in4@b starts, runs and stops on its own', async () => {
          const r = await systemctl('start', 'tun6in4@b');
          expect(r.code, r.stderr + (await explain('tun6in4@b'))).toBe(0);
          await waitFor('StatusText "1 tunnel: b up"', 'tun6in4@b', () => ct().show('tun6in4@b', 'StatusText'), (s) => s === '1 tunnel: b up');
          await waitFor('ping6 through b', 'tun6in4@b', () => cns.run('ping', ['-6', '-c', '1', '-W', '2', '2001:db8:2::1']), (r) => r.code === 0);
          expect(await ct().show(u.unit, 'MainPID')).toBe(mainPid);
          expect(await ct().show(u.unit, 'StatusText')).toBe('1 tunnel: he up');
          expect((await ct().run(['test', '-S', '/run/tun6in4/b.sock'])).code).toBe(0);
          expect((await systemctl('stop', 'tun6in4@b')).code).toBe(0);
          expect(await linkIn('b')).toBe(false);
          // he's socket is still there: the instances share /run/tun6in4 (RuntimeDirectoryPreserve=yes).
          expect((await ct().run(['test', '-S', u.control])).code).toBe(0);
          expect(await ct().show(u.unit, 'ActiveState')).toBe('active');
        }, 120_000);
      }

      it('reload: ExecReload checks the file, then the daemon applies it — a tunnel added now opens /dev/net/tun as tun6in4', async () => {
        await ct().writeFile(u.config, HE + HE2);
        const r = await systemctl('reload', u.unit);
        expect(r.code, r.stderr + (await explain(u.unit))).toBe(0);
        await waitFor('StatusText with two tunnels', u.unit, () => ct().show(u.unit, 'StatusText'), (s) => /^2 tunnels: he up, he2 \w+$/.test(s));
        expect(await linkIn('he2')).toBe(true);
        expect(await ct().show(u.unit, 'MainPID')).toBe(mainPid);
      }, 120_000);

      it('a bad file fails the reload, with the field and the fix in systemctl status; the daemon runs on with the old one', async () => {
        await ct().writeFile(u.config, HE.replace('keepalive = 1', 'keepalive = 1\nmtu = 9000'));
        const r = await systemctl('reload', u.unit);
        expect(r.code).not.toBe(0);
        const status = (await systemctl('status', '-n', '20', u.unit)).stdout;
        expect(status).toMatch(/tunnels\.he\.mtu.*9000/);
        expect(status).toMatch(/1280\.\.1480/);
        expect(await ct().show(u.unit, 'ActiveState')).toBe('active');
        expect(await ct().show(u.unit, 'MainPID')).toBe(mainPid);
        expect(await ct().show(u.unit, 'StatusText')).toMatch(/^2 tunnels: he up, he2 \w+$/);
        await ct().writeFile(u.config, HE);
        expect((await systemctl('reload', u.unit)).code).toBe(0);
        await waitFor('StatusText back to one tunnel', u.unit, () => ct().show(u.unit, 'StatusText'), (s) => s === '1 tunnel: he up');
        expect(await linkIn('he2')).toBe(false);
      }, 120_000);

      it('watchdog: a daemon whose loop stops (SIGSTOP) is killed after WatchdogSec and restarted; the tunnel comes back', async () => {
        const restarts = Number(await ct().show(u.unit, 'NRestarts'));
        await ct().exec(['sh', '-c', 'kill -STOP "$1"', 'sh', mainPid]);
        const now = await waitFor('a restart after the watchdog', u.unit, async () => [await ct().show(u.unit, 'NRestarts'), await ct().show(u.unit, 'ActiveState'), await ct().show(u.unit, 'MainPID')], ([n, state, pid]) => Number(n) === restarts + 1 && state === 'active' && pid !== mainPid && pid !== '0');
        expect(await journal(u.unit)).toMatch(/[Ww]atchdog timeout/);
        mainPid = now[2];
        await waitFor('he up again', u.unit, () => ct().show(u.unit, 'StatusText'), (s) => s === '1 tunnel: he up');
        expect(await linkIn('he')).toBe(true);
      }, 120_000);

      it('Restart=on-failure: SIGKILL, and systemd brings the daemon and its tunnel back', async () => {
        const restarts = Number(await ct().show(u.unit, 'NRestarts'));
        await ct().exec(['sh', '-c', 'kill -KILL "$1"', 'sh', mainPid]);
        const now = await waitFor('a restart after SIGKILL', u.unit, async () => [await ct().show(u.unit, 'NRestarts'), await ct().show(u.unit, 'ActiveState'), await ct().show(u.unit, 'MainPID')], ([n, state, pid]) => Number(n) === restarts + 1 && state === 'active' && pid !== mainPid && pid !== '0');
        mainPid = now[2];
        await waitFor('he up again', u.unit, () => ct().show(u.unit, 'StatusText'), (s) => s === '1 tunnel: he up');
        await waitFor('ping6 through the tunnel', u.unit, () => cns.run('ping', ['-6', '-c', '1', '-W', '2', '2001:db8:1::1']), (r) => r.code === 0);
      }, 120_000);

      it('stop removes the interface; /run/tun6in4 outlives it (RuntimeDirectoryPreserve=yes)', async () => {
        expect((await systemctl('stop', `${u.probe}.service`, u.unit)).code).toBe(0);
        expect(await ct().show(u.unit, 'ActiveState')).toBe('inactive');
        expect(await ct().show(u.unit, 'Result')).toBe('success');
        expect(await linkIn('he')).toBe(false);
        expect((await ct().run(['test', '-d', '/run/tun6in4'])).code).toBe(0);
      }, 120_000);
    });
  }

  it('a broker under tun6in4@edge: its store goes to StateDirectory /var/lib/tun6in4 as the service user, a tunnel added with tun6in4 broker survives a restart', async () => {
    await ct().writeFile('/etc/tun6in4/edge.toml', '[broker.edge]\nlocal = "192.0.2.1"\npools = ["2001:db8:4000::/48"]\nstore = "/var/lib/tun6in4/edge.sqlite"\ntransport = "raw"\n');
    const r = await systemctl('start', 'tun6in4@edge');
    expect(r.code, r.stderr + (await explain('tun6in4@edge'))).toBe(0);
    await waitFor('StatusText naming the broker', 'tun6in4@edge', () => ct().show('tun6in4@edge', 'StatusText'), (t) => /broker edge: 0 tunnels/.test(t));
    expect(await linkIn('t6b-edge')).toBe(true);
    const add = await ct().run(['tun6in4', 'broker', 'add', 'alice', '--remote', '198.51.100.3', '--link', '2001:db8:4000::/64', '--control', '/run/tun6in4/edge.sock']);
    expect(add.code, add.stderr + (await explain('tun6in4@edge'))).toBe(0);
    expect((await ct().exec(['stat', '-c', '%U %a', '/var/lib/tun6in4', '/var/lib/tun6in4/edge.sqlite'])).trim().split('\n')).toEqual(['tun6in4 750', expect.stringMatching(/^tun6in4 /)]);
    expect((await systemctl('restart', 'tun6in4@edge')).code).toBe(0);
    await waitFor('the stored tunnel loaded back', 'tun6in4@edge', () => ct().show('tun6in4@edge', 'StatusText'), (t) => /broker edge: 1 tunnel/.test(t));
    const list = JSON.parse(await ct().exec(['tun6in4', 'broker', 'list', '--json', '--control', '/run/tun6in4/edge.sock'])) as Array<{ id: string; remote: string }>;
    expect(list.map((t) => [t.id, t.remote])).toEqual([['alice', '198.51.100.3']]);
    expect((await systemctl('stop', 'tun6in4@edge')).code).toBe(0);
    expect(await linkIn('t6b-edge')).toBe(false);
  }, 180_000);
});
