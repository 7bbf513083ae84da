/**
 * `tun6in4 show`: the running daemon's configuration printed as a file `up -c` accepts. As root,
 * a daemon in a namespace this test creates runs a broker tunnel (with an update key file) and a
 * 6to4 tunnel from a TOML file; what `show` prints, loaded again, is the same configuration, and
 * reloading the daemon with it restarts nothing and leaves the same status. The key never shows.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDaemonConfig, parseDaemonConfig, type DaemonConfig } from '../src/daemon/config.js';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { isolatedDaemonHost, rootOrSkip, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const SECRET = 'sEcReT-update-key-t6';

const withoutFile = ({ file: _file, ...rest }: DaemonConfig) => rest;

describe.runIf(canRun)('tun6in4 show (a daemon in a namespace)', () => {
  const set = new NamespaceSet('show');
  let ns: Namespace;
  let daemon: ChildProcess;
  const logs: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'tun6in4-show-'));
  const configPath = join(dir, 'tun6in4.toml');
  const keyFile = join(dir, 'he.key');
  let control: string;
  let configText: string;
  const status = () => queryControl(control, 'status') as Promise<DaemonStatus>;
  const show = async (...args: string[]) => {
    const r = await ns.run(process.execPath, [BIN, 'show', '--control', control, ...args], { timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  };
  const ifindex = async (dev: string) => Number(/^(\d+):/.exec(await ns.ip(['-o', 'link', 'show', dev]))?.[1]);
  /** What a reload must leave as it was: each tunnel's identity, addresses and MTU. */
  const shape = (s: DaemonStatus) =>
    s.tunnels.map((t) => ({ tunnel: t.tunnel, dev: t.name, mode: t.mode, local: t.local, remote: t.remote, relay: t.relay, address: t.address, mtu: t.mtu, localAuto: t.localAuto })).sort((a, b) => a.tunnel.localeCompare(b.tunnel));

  beforeAll(async () => {
    await removeStaleNamespaces('show');
    ns = await isolatedDaemonHost(set);
    control = `/run/tun6in4/${ns.name}.sock`;
    writeFileSync(keyFile, `${SECRET}\n`, { mode: 0o600 });
    configText = [
      '# broker tunnel and a 6to4 site, both on 192.0.2.1',
      '[tunnels.he]',
      'mode = "6in4"',
      'local = "auto"',
      'remote = "198.51.100.1"',
      'address = "2001:db8:1::2/64"',
      'routed = ["2001:db8:2::/64"]',
      'dev = "he0"',
      'keepalive = 30',
      'clampMss = true',
      '[tunnels.he.update]',
      'url = "http://198.51.100.1:8080/nic/update"',
      'insecureHttp = true',
      'tunnelId = "4242"',
      'username = "lab"',
      `keyFile = "${keyFile}"`,
      'timeoutMs = 1000',
      '[tunnels.six]',
      'mode = "6to4"',
      'local = "192.0.2.1"',
      'allowNonGlobal = true',
      'relay = "203.0.113.1"',
      'dev = "six0"',
      'ttl = "inherit"',
      'defaultRoute = false',
      '[control]',
      `socket = "${control}"`,
      'mode = "0660"',
      '[metrics]',
      'listen = "127.0.0.1:9641"',
      '',
    ].join('\n');
    writeFileSync(configPath, configText, { mode: 0o600 });
    daemon = ns.spawn(process.execPath, [BIN, 'up', '-c', configPath]);
    createInterface({ input: daemon.stderr! }).on('line', (l) => logs.push(l));
    daemon.stdout!.resume();
    await until('both tunnels up', status, (s) => s.tunnels.length === 2, 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${logs.join('\n')}`);
    });
  }, 60_000);

  afterAll(async () => {
    daemon?.kill('SIGKILL');
    await set.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('show: the running configuration in TOML, headed by what runs; the key file named, the key never printed', async () => {
    const out = await show();
    expect(out).toMatch(new RegExp(`^# Running configuration of tun6in4 pid \\d+, applied \\S+, from ${configPath.replace(/\./g, '\\.')}\\n`));
    expect(out).toMatch(/^# he: he0 \w+, local 192\.0\.2\.1$/m);
    expect(out).toMatch(/^# six: six0 \w+, local 192\.0\.2\.1$/m);
    expect(out).toContain(`keyFile = "${keyFile}"`);
    expect(out).not.toContain(SECRET);
    expect(withoutFile(parseConfig(out, 'annotated.toml'))).toEqual(withoutFile(loadDaemonConfig(configPath)));
  }, 30_000);

  it('show --json: the same configuration as JSON, without the key', async () => {
    const out = await show('--json');
    expect(out).not.toContain(SECRET);
    expect(parseDaemonConfig(JSON.parse(out))).toEqual(withoutFile(loadDaemonConfig(configPath)));
  }, 30_000);

  it('show --config round-trips: loaded, it is the running configuration; reloaded with it, nothing restarts and status is the same', async () => {
    const out = await show('--config');
    expect(out).not.toMatch(/^#/m);
    expect(out).not.toContain(SECRET);
    const before = await status();
    const indexes = [await ifindex('he0'), await ifindex('six0')];
    expect(withoutFile(parseConfig(out, 'shown.toml'))).toEqual(withoutFile(loadDaemonConfig(configPath)));

    writeFileSync(configPath, out);
    chmodSync(configPath, 0o600);
    daemon.kill('SIGHUP');
    const after = await until('reloaded', status, (s) => s.lastReload?.ok === true);
    expect([await ifindex('he0'), await ifindex('six0')]).toEqual(indexes);
    expect(shape(after)).toEqual(shape(before));
    expect(after.failed).toEqual([]);
    // and what it shows now is what it showed before
    expect(await show('--config')).toBe(out);
  }, 30_000);

  function parseConfig(text: string, name: string): DaemonConfig {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return loadDaemonConfig(p);
  }
});
