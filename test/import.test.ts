/**
 * `tun6in4 import` and importConfig/importFiles: realistic inputs per format (test/fixtures/import,
 * written from each tool's documentation on documentation addresses) give the tunnels written out
 * by hand below, and the commented TOML in test/fixtures/import/expected (golden files; regenerate
 * with TUN6IN4_UPDATE_GOLDEN=1 and read the diff). Lines that cannot be understood stop the import
 * naming file:line; update keys never reach the configuration, stdout, stderr or a printed result.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDaemonConfig, parseDaemonConfigText } from '../src/daemon/config.js';
import { checkImported, importConfig, importFiles, ImportError, writeKeyFile, type ImportFormat } from '../src/index.js';
import { detectFormat } from '../src/import/index.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/import/', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const fixture = (name: string) => ({ file: name, text: readFileSync(join(FIXTURES, name), 'utf8') });
const cli = (args: string[], input?: string) => spawnSync(process.execPath, [BIN, 'import', ...args], { cwd: FIXTURES, encoding: 'utf8', input, timeout: 30_000 });
const dir = mkdtempSync(join(tmpdir(), 'tun6in4-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HE = { mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' };
const NETWORKD = ['networkd/he-ipv6.netdev', 'networkd/he-ipv6.network', 'networkd/eth0.network', 'networkd/eth1.network', 'networkd/6rd.netdev', 'networkd/6rd.network'];
const KEY = 'Upd4teK3y-not-a-real-one';
/** This host's IPv4 addresses, as the CLI reads them. */
const HOST_IPV4 = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address));

/** Each fixture, its format, and the tunnels it must give (written from the input by hand, not from our output). */
const CASES: Array<{ golden: string; files: string[]; format: ImportFormat; tunnels: Record<string, Record<string, unknown>> }> = [
  {
    golden: 'he-route2',
    files: ['he-route2.sh'],
    format: 'shell',
    tunnels: { 'he-ipv6': { ...HE, routed: ['2001:db8:2::/64'], ttl: 255, dev: 'he-ipv6' } },
  },
  {
    golden: 'he-net-tools',
    files: ['he-net-tools.sh'],
    format: 'shell',
    // `ifconfig sit0 tunnel` makes sit1 with any local address and the kernel's inherited TTL
    tunnels: { sit1: { mode: '6in4', local: 'auto', remote: '198.51.100.1', address: '2001:db8:1::2/64', ttl: 'inherit', dev: 'sit1' } },
  },
  {
    golden: '6rd-route2',
    files: ['6rd-route2.sh'],
    format: 'shell',
    tunnels: { '6rd': { mode: '6rd', local: '192.0.2.20', sixrdPrefix: '2001:db8:a000::/36', ipv4MaskLen: 25, relay: '203.0.113.1', mtu: 1480, ttl: 64, dev: '6rd' } },
  },
  {
    golden: 'fou-route2',
    files: ['fou-route2.sh'],
    format: 'shell',
    tunnels: { 'he-fou': { ...HE, peer: '2001:db8:1::1', mtu: 1472, ttl: 64, encap: 'fou', encapDport: 5555, dev: 'he-fou' } },
  },
  {
    golden: 'networkd',
    files: NETWORKD,
    format: 'networkd',
    tunnels: {
      'he-ipv6': { ...HE, peer: '2001:db8:1::1', routed: ['2001:db8:2::/64'], mtu: 1480, ttl: 255, dev: 'he-ipv6' },
      // networkd has no 6rd relay prefix: mask length 0, the BR from the route's ::a.b.c.d gateway;
      // a second default route goes to the first tunnel only
      '6rd': { mode: '6rd', local: '192.0.2.10', sixrdPrefix: '2001:db8::/32', relay: '203.0.113.1', ttl: 64, dev: '6rd', defaultRoute: false },
    },
  },
  {
    golden: 'networkd-6to4',
    files: ['networkd-6to4.conf'],
    format: 'networkd',
    tunnels: { sit6to4: { mode: '6to4', local: '192.0.2.1', address: '2002:c000:201::1/16', relay: '203.0.113.1', ttl: 64, dev: 'sit6to4', allowNonGlobal: true } },
  },
  {
    golden: 'interfaces',
    files: ['interfaces'],
    format: 'ifupdown',
    tunnels: {
      'he-ipv6': { ...HE, peer: '2001:db8:1::1', routed: ['2001:db8:2::/64'], ttl: 255, dev: 'he-ipv6' },
      // ifupdown's 6to4 method routes via the deprecated anycast relay, which tun6in4 refuses
      tun6to4: { mode: '6to4', local: '192.0.2.1', ttl: 'inherit', dev: 'tun6to4', defaultRoute: false, allowNonGlobal: true },
    },
  },
  {
    golden: 'interfaces-ng',
    files: ['interfaces-ng'],
    format: 'ifupdown',
    tunnels: { 'he-ipv6': { ...HE, peer: '2001:db8:1::1', ttl: 255, dev: 'he-ipv6' } },
  },
  {
    golden: 'netplan',
    files: ['netplan.yaml'],
    format: 'netplan',
    tunnels: {
      'he-ipv6': { ...HE, peer: '2001:db8:1::1', ttl: 255, dev: 'he-ipv6' },
      'backup-ipv6': { mode: '6in4', local: '192.0.2.1', remote: '203.0.113.1', address: '2001:db8:100::2/64', mtu: 1472, ttl: 'inherit', dev: 'backup-ipv6', defaultRoute: false },
    },
  },
  {
    golden: 'uci',
    files: ['network'],
    format: 'uci',
    tunnels: {
      // the update is left as a comment without --key-file
      wan6: { mode: '6in4', local: 'auto', remote: '198.51.100.1', address: '2001:db8:1::2/64', routed: ['2001:db8:2::/64'], mtu: 1480, dev: '6in4-wan6' },
      sixrd: { mode: '6rd', local: '192.0.2.10', sixrdPrefix: '2001:db8:a000::/36', ipv4MaskLen: 25, relay: '203.0.113.1', mtu: 1280, dev: '6rd-sixrd', defaultRoute: false },
    },
  },
  {
    golden: 'uci-6rd',
    files: ['network-6rd'],
    format: 'uci',
    tunnels: { wan6: { mode: '6rd', local: 'auto', sixrdPrefix: '2001:db8:a000::/36', ipv4MaskLen: 25, relay: '203.0.113.1', mtu: 1280, ttl: 64, dev: '6rd-wan6' } },
  },
];

describe('import: golden files per format', () => {
  for (const c of CASES) {
    it(`${c.golden} (${c.format}): ${Object.keys(c.tunnels).join(', ')}`, () => {
      const r = importFiles(c.files.map(fixture));
      expect(r.formats.map((f) => f.format)).toEqual(c.files.map(() => c.format));
      expect(r.config.tunnels).toEqual(c.tunnels);
      // the TOML holds exactly that configuration, and the daemon's own loader accepts it
      expect(parseDaemonConfigText(r.toml, 'toml', `${c.golden}.toml`).tunnels).toEqual(parseDaemonConfig(r.config).tunnels);
      const golden = join(FIXTURES, 'expected', `${c.golden}.toml`);
      if (process.env.TUN6IN4_UPDATE_GOLDEN && !process.env.CI) {
        mkdirSync(join(FIXTURES, 'expected'), { recursive: true });
        writeFileSync(golden, r.toml);
      }
      expect(r.toml).toBe(readFileSync(golden, 'utf8'));
      // every value line names its source line, or says why it has none
      for (const line of r.toml.split('\n').filter((l) => /^[a-zA-Z]\w* = /.test(l))) expect(line).toMatch(/ # (\S+:\d+|no |the source |only because )/);
    });
  }

  it('the broker block: the routed /64 from the LAN address, the default route, the quoted source', () => {
    const r = importConfig(fixture('he-route2.sh').text, undefined, { file: 'he.sh' });
    expect(r.toml).toContain('# he-ipv6: he.sh:4  ip tunnel add he-ipv6 mode sit remote 198.51.100.1 local 192.0.2.1 ttl 255');
    expect(r.toml).toMatch(/^routed = \["2001:db8:2::\/64"\] +# he\.sh:11: routed to us/m);
    expect(r.toml).toMatch(/^# default route: he\.sh:7;/m);
    expect(r.toml).toMatch(/^#   he\.sh:3: modprobe ipv6: tun6in4 needs no kernel module$/m);
  });

  it('`ip route add default` without -6 is IPv4\'s default, not the tunnel\'s IPv6 default', () => {
    const base = 'ip tunnel add he mode sit remote 198.51.100.1\nip addr add 2001:db8:1::2/64 dev he\n';
    expect(importConfig(`${base}ip route add default dev he\n`, undefined, { file: 'x' }).config.tunnels.he.defaultRoute).toBe(false);
    expect(importConfig(`${base}ip -6 route add default dev he\n`, undefined, { file: 'x' }).config.tunnels.he.defaultRoute).toBeUndefined();
  });

  it('an address that is ::1 of the link (where brokers sit) is carried, with a warning and the ::2 peer', () => {
    const r = importConfig('ip tunnel add he mode sit remote 198.51.100.1\nip addr add 2001:db8:1::1/64 dev he\n', undefined, { file: 'x' });
    expect(r.config.tunnels.he.address).toBe('2001:db8:1::1/64');
    expect(r.toml).toMatch(/x:2: 2001:db8:1::1\/64 is ::1 of the link, where brokers put their own end .*check that it is the "Client IPv6 Address"/);
    expect(parseDaemonConfig(r.config).tunnels[0].spec.peer).toBeUndefined();
  });

  it('networkd Foo-over-UDP: the sit\'s FOUDestinationPort is encapDport, a Kind=fou receiver on another port is encapPort', () => {
    const text = [
      '[NetDev]', 'Name=fou5556', 'Kind=fou', '[FooOverUDP]', 'Port=5556', 'Protocol=41', '',
      '[NetDev]', 'Name=he-fou', 'Kind=sit', '[Tunnel]', 'Remote=198.51.100.1', 'FooOverUDP=yes', 'FOUDestinationPort=5555', '',
      '[Match]', 'Name=he-fou', '[Network]', 'Address=2001:db8:1::2/64', 'Gateway=2001:db8:1::1', '',
    ].join('\n');
    const r = importConfig(text, undefined, { file: 'fou.conf' });
    expect(r.config.tunnels['he-fou']).toMatchObject({ encap: 'fou', encapDport: 5555, encapPort: 5556 });
    expect(r.toml).toMatch(/^encapPort = 5556 +# fou\.conf:5: where this host's fou receiver listens$/m);
  });

  it('the 6rd CE address the source set is the one tun6in4 derives (not written, said so)', () => {
    expect(importFiles([fixture('6rd-route2.sh')]).toml).toContain('6rd-route2.sh:6: 2001:db8:a280::1/36: a 6rd CE\'s address is derived from the 6rd prefix and the local IPv4, and tun6in4 derives the same');
  });

  it('6to4 via the anycast relay: not carried over, with the reason (RFC 7526)', () => {
    expect(importFiles([fixture('interfaces')]).toml).toMatch(/interfaces:20: relay 192\.88\.99\.1: the 192\.88\.99\.0\/24 anycast relay is deprecated \(RFC 7526\)/);
  });

  it('a routed prefix with two brokers in the input is not guessed', () => {
    const r = importFiles([fixture('netplan.yaml')]);
    expect(r.notes.map((n) => n.text).join('\n')).toMatch(/2001:db8:2::1\/64 on eth1: several 6in4 tunnels.*add routed = \["2001:db8:2::\/64"\]/);
    expect(Object.values(r.config.tunnels).some((t) => 'routed' in t)).toBe(false);
  });

  it('detectFormat: each fixture is recognised by its content alone', () => {
    const byContent: Array<[string, ImportFormat]> = [
      ['he-route2.sh', 'shell'], ['he-net-tools.sh', 'shell'], ['networkd-6to4.conf', 'networkd'], ['interfaces', 'ifupdown'],
      ['interfaces-ng', 'ifupdown'], ['netplan.yaml', 'netplan'], ['network', 'uci'],
    ];
    for (const [name, format] of byContent) expect([name, detectFormat(fixture(name).text, 'pasted')]).toEqual([name, format]);
  });
});

describe('docs/import.md', () => {
  it('every example output is what the command prints for that input today', () => {
    const doc = readFileSync(fileURLToPath(new URL('../docs/import.md', import.meta.url)), 'utf8');
    const blocks = [...doc.matchAll(/^\$ tun6in4 import ([^|#\n]+?)\s*(?:[|#].*)?\n([\s\S]*?)^```$/gm)];
    expect(blocks.length).toBeGreaterThanOrEqual(9);
    for (const [, args, shown] of blocks) {
      const names = args.trim().split(/\s+/);
      // the example names each file as a user in that directory would
      const inputs = names.map((n) => ({ file: n, text: readFileSync(join(FIXTURES, existsSync(join(FIXTURES, n)) ? n : `networkd/${n}`), 'utf8') }));
      const printed = new Set(importFiles(inputs).toml.split('\n'));
      for (const line of shown.split('\n').filter((l) => l && !l.startsWith('tun6in4 import: '))) expect(printed.has(line), `docs line of "import ${args}": ${line}`).toBe(true);
    }
  });
});

describe('import: what it cannot understand stops it at file:line', () => {
  const BAD: Array<[string, string, ImportFormat | undefined, RegExp]> = [
    ['an unknown command in a broker block', 'ip tunnel add he-ipv6 mode sit remote 198.51.100.1 local 192.0.2.1\nip link set he-ipv6 up\niptables -A INPUT -p 41 -j ACCEPT\n', undefined, /^x:3: "iptables" is not a command tun6in4 import understands/],
    ['a GRE tunnel', 'ip tunnel add gre1 mode gre remote 198.51.100.1 local 192.0.2.1\n', undefined, /^x:1: ip tunnel: mode gre is not sit/],
    ['a malformed remote', 'ip tunnel add he mode sit remote 198.51.100.300 local 192.0.2.1\n', undefined, /^x:1: remote: "198\.51\.100\.300" is not an IPv4 address/],
    ['an unknown ip tunnel attribute', 'ip tunnel add he mode sit remote 198.51.100.1 frobnicate\n', undefined, /^x:1: ip tunnel: "frobnicate" is not understood/],
    ['a 6in4 block without an IPv6 address', 'ip tunnel add he mode sit remote 198.51.100.1 local 192.0.2.1\nip link set he up\n', undefined, /^x:1: he: the input gives the tunnel no IPv6 address/],
    ['networkd: an unknown key in [Tunnel]', '[NetDev]\nName=he\nKind=sit\n\n[Tunnel]\nRemote=198.51.100.1\nFlowLabel=7\n', undefined, /^x:7: FlowLabel= in \[Tunnel\] of the \.netdev: not understood/],
    ['networkd: a WireGuard netdev', '[NetDev]\nName=wg0\nKind=wireguard\n', undefined, /^x:3: wg0: Kind=wireguard is not a sit tunnel/],
    ['networkd: a line that is no key=value', '[NetDev]\nName=he\nKind sit\n', undefined, /^x:3: not a networkd line/],
    ['networkd: 6rd without a border relay', '[NetDev]\nName=6rd\nKind=sit\n[Tunnel]\nLocal=192.0.2.10\nIPv6RapidDeploymentPrefix=2001:db8::/32\n', undefined, /^x:6: 6rd: a 6rd CE needs its border relay/],
    ['ifupdown: an unknown option in v4tunnel', 'iface he inet6 v4tunnel\n  address 2001:db8:1::2\n  netmask 64\n  endpoint 198.51.100.1\n  hwaddress 02:00:00:00:00:01\n', undefined, /^x:5: hwaddress: not an option of inet6 v4tunnel/],
    ['ifupdown: address without netmask', 'iface he inet6 v4tunnel\n  address 2001:db8:1::2\n  endpoint 198.51.100.1\n', undefined, /^x:2: address 2001:db8:1::2 without \/len or a netmask line/],
    ['ifupdown-ng: a GRE tunnel', 'iface gre1\n  use tunnel\n  tunnel-mode gre\n', undefined, /^x:3: gre1: tunnel-mode gre is not sit/],
    ['netplan: a GRE tunnel', 'network:\n  version: 2\n  tunnels:\n    gre1:\n      mode: gre\n      remote: 198.51.100.1\n', undefined, /^x:5: gre1: mode gre is not sit/],
    ['netplan: an unknown tunnel key', 'network:\n  tunnels:\n    he:\n      mode: sit\n      remote: 198.51.100.1\n      keys: {input: 1}\n', undefined, /^x:6: he: keys is not a sit tunnel setting/],
    ['netplan: broken YAML', 'network:\n  tunnels:\n    he: [\n', 'netplan', /^x:\d: not valid YAML/],
    ['UCI: an unknown option in 6in4', "config interface 'wan6'\n\toption proto '6in4'\n\toption peeraddr '198.51.100.1'\n\toption sendstats '1'\n", undefined, /^x:4: option sendstats: not an option of proto '6in4'/],
    ['UCI: 6rd without ip6prefixlen', "config interface 'wan6'\n\toption proto '6rd'\n\toption peeraddr '203.0.113.1'\n\toption ip6prefix '2001:db8:a000::'\n", undefined, /^x:1: proto '6rd' needs ip6prefix and ip6prefixlen/],
    ['the gateway is our own address (client and server swapped)', 'ip tunnel add he mode sit remote 198.51.100.1\nip addr add 2001:db8:1::2/64 dev he\nip route add ::/0 via 2001:db8:1::2 dev he\n', undefined, /^x:3: he: the gateway 2001:db8:1::2 is the tunnel's own address \(x:2\)/],
    ['an IPv6 address without its length', 'ip tunnel add he mode sit remote 198.51.100.1\nip -6 addr add 2001:db8:1::2 dev he\n', undefined, /^x:2: ip addr add 2001:db8:1::2: no prefix length \(the kernel would take \/128\)/],
    ['nothing recognisable', 'hello world\n', undefined, /^x:1: not a configuration tun6in4 import recognises/],
    ['a format with no tunnel', 'auto eth0\niface eth0 inet dhcp\n', undefined, /^x:1: no sit tunnel .* found in the input/],
  ];
  for (const [what, text, format, message] of BAD) {
    it(what, () => {
      let err: unknown;
      try {
        importConfig(text, format, { file: 'x' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ImportError);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('the CLI: exit 2, one line naming the file and line', () => {
    const bad = join(dir, 'bad.sh');
    writeFileSync(bad, 'ip tunnel add he-ipv6 mode sit remote 198.51.100.1 local 192.0.2.1\nip addr add 2001:db8:1::2/64 dev he-ipv6\nnetsh interface ipv6 add v6v4tunnel\n');
    const r = cli([bad]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`tun6in4: ${bad}:3: "netsh" is not a command tun6in4 import understands (ip, ifconfig, route, modprobe); remove the line or write that part by hand\n`);
  }, 60_000);

  it('the CLI: a file that does not exist', () => {
    const r = cli([join(dir, 'missing.sh')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/missing\.sh: cannot read it \(ENOENT\); check the path/);
  }, 60_000);
});

describe('import: the CLI', () => {
  it('reads a pasted block on standard input (-) and names it stdin', () => {
    const r = cli(['-'], fixture('he-route2.sh').text);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('# he-ipv6: stdin:4  ip tunnel add he-ipv6');
    expect(parseDaemonConfigText(r.stdout, 'toml', 'stdin.toml').tunnels[0].spec).toMatchObject({ remote: '198.51.100.1', routed: ['2001:db8:2::/64'] });
  }, 60_000);

  it('networkd: the .netdev and .network files together, --check passes', () => {
    const r = cli([...NETWORKD, '--check']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^tun6in4 import: check: ok \(2 tunnels\); nothing on this host was changed\n$/m);
    // the golden file's, with this host's addresses for the local the source names
    expect(r.stdout).toBe(importFiles(NETWORKD.map(fixture), { hostAddresses: HOST_IPV4 }).toml);
  }, 60_000);

  it('--check refuses what check refuses, naming the field (6to4 on a private IPv4)', () => {
    const r = cli(['-', '--check'], 'ip tunnel add tun6to4 mode sit remote any local 10.1.2.3 ttl 64\nip -6 addr add 2002:a01:203::1/16 dev tun6to4\n'); // a private IPv4 (RFC 1918): refused
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tun6in4: the imported configuration does not pass check: tunnels\.tun6to4\.local: "10\.1\.2\.3" is not valid; 6to4 needs a global unicast IPv4/m);
  }, 60_000);

  it('--format overrides recognition', () => {
    const r = cli(['-', '--format', 'netplan'], 'ip tunnel add he mode sit remote 198.51.100.1\n');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^tun6in4: stdin:1: /);
  }, 60_000);
});

describe('import: secrets (UCI password / updatekey)', () => {
  const uci = fixture('network');

  it('never in the TOML, the result as JSON or inspected; the update left as a comment with what to do', () => {
    const r = importFiles([uci]);
    expect(r.toml).not.toContain(KEY);
    expect(JSON.stringify(r)).not.toContain(KEY);
    expect(inspect(r, { depth: 10 })).not.toContain(KEY);
    expect(String(r.tunnels[0].secret)).toBe('[updatekey from network:22]');
    expect(r.tunnels[0].secret!.reveal()).toBe(KEY);
    expect(r.config.tunnels.wan6.update).toBeUndefined();
    expect(r.toml).toMatch(/^# \[tunnels\.wan6\.update\]$/m);
    expect(r.toml).toMatch(/network:22: the updatekey is a secret and never goes into this file: re-run with --key-file/);
  });

  it('CLI without --key-file: says on stderr what to do; the key in neither stream', () => {
    const r = cli(['network']);
    expect(r.status).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(KEY);
    expect(r.stderr).toContain('tun6in4 import: wan6: network:22 holds the broker update key, which never goes into the configuration; re-run with --key-file /etc/tun6in4/wan6.key');
  }, 60_000);

  it('CLI with --key-file: the key goes to that file (mode 0600, also over an existing 0644 file), the update is enabled and --check reads it', () => {
    const keyFile = join(dir, 'wan6.key');
    writeFileSync(keyFile, 'old\n', { mode: 0o644 });
    const r = cli(['network', '--key-file', keyFile, '--check']);
    expect(r.status).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(KEY);
    expect(readFileSync(keyFile, 'utf8')).toBe(`${KEY}\n`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const config = parseDaemonConfigText(r.stdout, 'toml', 'wan6.toml');
    expect(config.tunnels.find((t) => t.name === 'wan6')!.spec.update).toEqual({ tunnelId: '123456', username: 'example-user', keyFile });
    expect(r.stderr).toMatch(/check: ok \(2 tunnels\)/);
  }, 60_000);

  it('CLI with a relative --key-file: the configuration names the file written, absolute (a relative keyFile means beside the configuration)', () => {
    const run = spawnSync(process.execPath, [BIN, 'import', join(FIXTURES, 'network'), '--key-file', 'wan6.key'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(join(dir, 'wan6.key'), 'utf8')).toBe(`${KEY}\n`);
    const config = parseDaemonConfigText(run.stdout, 'toml', '/elsewhere/wan6.toml');
    expect(config.tunnels.find((t) => t.name === 'wan6')!.spec.update?.keyFile).toBe(join(dir, 'wan6.key'));
  }, 60_000);

  it('CLI with --key-file in a directory that does not exist: exit 2 naming the flag, nothing on stdout', () => {
    const r = cli(['network', '--key-file', join(dir, 'no-such-dir', 'wan6.key')]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^tun6in4: --key-file .*no-such-dir\/wan6\.key: cannot write it \(ENOENT\); create its directory first$/m);
    expect(r.stderr).not.toContain(KEY);
  }, 60_000);

  it('CLI with --key-file at a planted symlink: refused (exit 2), the link\'s target neither written nor created', () => {
    const planted = mkdtempSync(join(dir, 'planted-'));
    const target = join(planted, 'shadow');
    writeFileSync(target, 'precious\n', { mode: 0o600 });
    const dangling = join(planted, 'created-elsewhere');
    for (const [link, to] of [['wan6.key', target], ['other.key', dangling]]) {
      symlinkSync(to, join(planted, link));
      const r = cli(['network', '--key-file', join(planted, link)]);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`tun6in4: --key-file ${join(planted, link)} is a symbolic link, and import writes a key file only as itself (as the daemon reads it); remove the link (rm ${join(planted, link)}) or name the real file\n`);
    }
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(existsSync(dangling)).toBe(false);
    expect(readdirSync(planted).sort()).toEqual(['other.key', 'shadow', 'wan6.key']);
  }, 60_000);

  it('library: writeKeyFile replaces an existing file whole (renamed over it, no temporary left), a root:group 0640 key stays 0640 in its group', () => {
    const keyDir = mkdtempSync(join(dir, 'replace-'));
    const keyFile = join(keyDir, 'wan6.key');
    const secret = importFiles([uci], { keyFile }).tunnels[0].secret!;
    expect(writeKeyFile(keyFile, secret)).toEqual({ replaced: false, mode: 0o600 });
    writeFileSync(keyFile, 'old-key\n');
    chmodSync(keyFile, 0o640);
    const before = statSync(keyFile);
    expect(writeKeyFile(keyFile, secret)).toEqual({ replaced: true, mode: 0o640 });
    const after = statSync(keyFile);
    expect(readFileSync(keyFile, 'utf8')).toBe(`${KEY}\n`);
    expect([after.mode & 0o777, after.gid]).toEqual([0o640, before.gid]);
    expect(after.ino).not.toBe(before.ino);
    expect(readdirSync(keyDir)).toEqual(['wan6.key']);
  });

  it('the password option is a secret too; with updatekey given as well, the updatekey is used', () => {
    const text = "config interface 'wan6'\n\toption proto '6in4'\n\toption peeraddr '198.51.100.1'\n\toption ip6addr '2001:db8:1::2/64'\n\toption tunnelid '7'\n\toption username 'u'\n\toption password 'Acc0unt-Passw0rd'\n";
    const r = importConfig(text, undefined, { file: 'n', keyFile: '/etc/tun6in4/wan6.key' });
    expect(r.toml).not.toContain('Acc0unt-Passw0rd');
    expect(r.tunnels[0].secret!.reveal()).toBe('Acc0unt-Passw0rd');
    expect(r.config.tunnels.wan6.update).toEqual({ tunnelId: '7', username: 'u', keyFile: '/etc/tun6in4/wan6.key' });
    const both = importConfig(text + "\toption updatekey 'K3y'\n", undefined, { file: 'n' });
    expect(both.tunnels[0].secret!.reveal()).toBe('K3y');
  });

  it('checkImported checks the text in memory: no temporary file (with TMPDIR a plain file, none could be made)', () => {
    const notADirectory = join(dir, 'tmpdir-is-a-file');
    writeFileSync(notADirectory, '');
    const before = process.env.TMPDIR;
    process.env.TMPDIR = notADirectory;
    try {
      expect(checkImported(importFiles(NETWORKD.map(fixture))).config.tunnels).toHaveLength(2);
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
    }
    expect(statSync(notADirectory).isFile()).toBe(true);
  });

  it('library: writeKeyFile then checkImported, as the CLI does', () => {
    const keyFile = join(dir, 'lib.key');
    const r = importFiles([uci], { keyFile });
    writeKeyFile(keyFile, r.tunnels[0].secret!);
    const check = checkImported(r);
    expect(check.keyFiles).toEqual([keyFile]);
    expect(existsSync(keyFile)).toBe(true);
  });
});

describe('import: long inputs are read in one pass', () => {
  // No clock: a reader quadratic in lines (40,000 blank lines once took 12–19 s to detect) does not
  // finish these within the suite's timeout.
  const LINES = 200_000;
  const block = 'ip tunnel add he mode sit remote 198.51.100.1\nip addr add 2001:db8:1::2/64 dev he\n';

  it('format detection after 200,000 blank lines (\\n, " \\n", \\r\\n): the block is found and imported from its line', () => {
    for (const blank of ['\n', ' \n', '\r\n']) {
      const text = blank.repeat(LINES) + block;
      expect(detectFormat(text, 'pasted')).toBe('shell');
      const r = importConfig(text, undefined, { file: 'x' });
      expect(r.config.tunnels.he).toMatchObject({ remote: '198.51.100.1', address: '2001:db8:1::2/64' });
      expect(r.toml).toContain(`# he: x:${LINES + 1}  ip tunnel add he mode sit remote 198.51.100.1`);
    }
  });

  it('200,000 blank lines and nothing else: not recognised, naming line 1', () => {
    expect(() => detectFormat('\n'.repeat(LINES), 'x')).toThrow(/^x:1: not a configuration tun6in4 import recognises/);
  });

  it('200,000 continuation lines (shell and ifupdown): one command, one stanza option, from its first line', () => {
    const shell = importConfig(`ip tunnel add he mode sit remote 198.51.100.1 \\\n${'ttl 64 \\\n'.repeat(LINES)}\nip addr add 2001:db8:1::2/64 dev he\n`, 'shell', { file: 'x' });
    expect(shell.config.tunnels.he).toMatchObject({ remote: '198.51.100.1', ttl: 64 });
    expect(shell.toml).toMatch(/^ttl = 64 +# x:1$/m);
    const ifupdown = importConfig(`iface he inet6 v4tunnel\n  address 2001:db8:1::2/64 \\\n${'  \\\n'.repeat(LINES)}\n  endpoint 198.51.100.1\n`, 'ifupdown', { file: 'x' });
    expect(ifupdown.config.tunnels.he).toMatchObject({ remote: '198.51.100.1', address: '2001:db8:1::2/64' });
  });
});

describe('import: ifupdown hooks', () => {
  const stanza = (...hooks: string[]) =>
    ['auto he-ipv6', 'iface he-ipv6 inet6 v4tunnel', '  address 2001:db8:1::2', '  netmask 64', '  endpoint 198.51.100.1', '  local 192.0.2.1', '  ttl 255', ...hooks.map((h) => `  ${h}`), ''].join('\n');

  it('an up hook routing the IPv6 default through the tunnel is its default route (defaultRoute true), not an error', () => {
    for (const hook of ['up ip -6 route add default dev he-ipv6', 'post-up ip route add ::/0 dev he-ipv6', 'up /sbin/ip -6 r a default dev $IFACE', 'up route -A inet6 add ::/0 dev he-ipv6', 'up ip -6 route add default via 2001:db8:1::1']) {
      const r = importConfig(stanza(hook), undefined, { file: 'interfaces' });
      expect(r.config.tunnels['he-ipv6'].defaultRoute, hook).toBeUndefined();
      expect(parseDaemonConfig(r.config).tunnels[0].spec.defaultRoute ?? true, hook).toBe(true);
      expect(r.toml, hook).toMatch(/^# default route: interfaces:8; tun6in4 routes the IPv6 default through the tunnel/m);
      expect(r.toml, hook).not.toContain('runs a command');
    }
    expect(importConfig(stanza('up ip -6 route add default via 2001:db8:1::1'), undefined, { file: 'interfaces' }).config.tunnels['he-ipv6'].peer).toBe('2001:db8:1::1');
  });

  it('the CLI: the issue\'s stanza imports (exit 0) and passes --check', () => {
    const r = cli(['-', '--check'], stanza('up ip -6 route add default dev he-ipv6'));
    expect(r.stderr).toMatch(/^tun6in4 import: check: ok \(1 tunnel\); nothing on this host was changed\n$/m);
    expect(r.status).toBe(0);
    expect(parseDaemonConfigText(r.stdout, 'toml', 'he.toml').tunnels[0].spec.defaultRoute ?? true).toBe(true);
  }, 60_000);

  it('other hooks become comments saying tun6in4 does not run them; a default through another interface is not the tunnel\'s', () => {
    const r = importConfig(stanza('up echo hi', 'down ip -6 route del default dev he-ipv6', 'up ip -6 route add default dev eth0', 'up ip -6 route add default dev he-ipv6 table 100'), undefined, { file: 'interfaces' });
    expect(r.config.tunnels['he-ipv6'].defaultRoute).toBe(false);
    for (const [line, hook] of [[8, 'up echo hi'], [9, 'down ip -6 route del default dev he-ipv6'], [10, 'up ip -6 route add default dev eth0'], [11, 'up ip -6 route add default dev he-ipv6 table 100']]) {
      expect(r.toml).toContain(`#   interfaces:${line}: ${hook}: runs a command; tun6in4 does not (run it yourself once the tunnel is up)`);
    }
  });

  it('a hook routing 2000::/3 through the tunnel: the whole default, said so', () => {
    const r = importConfig(stanza('post-up ip -6 route add 2000::/3 dev he-ipv6'), undefined, { file: 'interfaces' });
    expect(r.config.tunnels['he-ipv6'].defaultRoute).toBeUndefined();
    expect(r.toml).toContain('#   interfaces:8: post-up ip -6 route add 2000::/3 dev he-ipv6: tun6in4 routes the whole IPv6 default (::/0) through the tunnel');
  });
});

describe('import: networkd [Network] keys a tunnel .network often has', () => {
  const files = (network: string[]) => [
    { file: 'he-ipv6.netdev', text: '[NetDev]\nName=he-ipv6\nKind=sit\n[Tunnel]\nLocal=192.0.2.1\nRemote=198.51.100.1\nTTL=255\n' },
    { file: 'he-ipv6.network', text: ['[Match]', 'Name=he-ipv6', '[Network]', 'Address=2001:db8:1::2/64', ...network, ''].join('\n') },
  ];

  it('DefaultRouteOnDevice=yes: accepted; networkd\'s IPv4 default on the device, so no IPv6 default from it, said so', () => {
    const r = importFiles(files(['DefaultRouteOnDevice=yes']));
    expect(r.config.tunnels['he-ipv6']).toMatchObject({ ...HE, defaultRoute: false });
    expect(r.toml).toContain("#   he-ipv6.network:5: DefaultRouteOnDevice=yes: networkd's IPv4 default route on the device, and tun6in4 carries IPv6 only; the IPv6 default through the tunnel is networkd's [Route] Gateway=:: and tun6in4's defaultRoute (on unless false)");
    // with the IPv6 default networkd's way, the tunnel carries it
    const both = importFiles(files(['DefaultRouteOnDevice=yes', '[Route]', 'Gateway=::']));
    expect(both.config.tunnels['he-ipv6'].defaultRoute).toBeUndefined();
    expect(importFiles(files(['DefaultRouteOnDevice=no'])).toml).toContain('he-ipv6.network:5: DefaultRouteOnDevice=no: no IPv4 default route on the device; nothing to carry over');
  });

  it('IPv6Forwarding= (and IPv4Forwarding=, IPForward=): accepted, a comment that tun6in4 sets no sysctl', () => {
    const r = importFiles(files(['IPv6Forwarding=yes', 'IPv4Forwarding=no', 'IPForward=ipv6']));
    expect(r.config.tunnels['he-ipv6']).toMatchObject(HE);
    for (const [line, kv] of [[5, 'IPv6Forwarding=yes'], [6, 'IPv4Forwarding=no'], [7, 'IPForward=ipv6']]) {
      expect(r.toml).toContain(`#   he-ipv6.network:${line}: ${kv}: networkd sets a forwarding sysctl; tun6in4 changes no sysctl, so keep forwarding in /etc/sysctl.d if this host routes a prefix (\`tun6in4 doctor --routed PREFIX\` checks it)`);
    }
  });
});

describe('import: a local IPv4 this host does not hold (1:1 NAT, as on cloud VMs)', () => {
  const block = (local: string) => `ip tunnel add he mode sit remote 198.51.100.1 local ${local} ttl 255\nip addr add 2001:db8:1::2/64 dev he\nip -6 route add default dev he\n`;

  it('6in4: written as local = "auto", the comment naming the source\'s address and why; kept when the host holds it; untouched without host addresses', () => {
    const r = importConfig(block('203.0.113.7'), undefined, { file: 'he.sh', hostAddresses: ['127.0.0.1', '192.0.2.5'] });
    expect(r.config.tunnels.he.local).toBe('auto');
    expect(r.toml).toMatch(/^local = "auto" +# he\.sh:1 says 203\.0\.113\.7, which this host does not hold \(behind 1:1 NAT the broker knows the public IPv4\): auto, the address this host uses toward the remote$/m);
    expect(r.tunnels[0].localNotHere).toEqual({ value: '203.0.113.7', from: { file: 'he.sh', line: 1 } });
    expect(importConfig(block('192.0.2.5'), undefined, { file: 'he.sh', hostAddresses: ['127.0.0.1', '192.0.2.5'] }).config.tunnels.he.local).toBe('192.0.2.5');
    expect(importConfig(block('203.0.113.7'), undefined, { file: 'he.sh' }).config.tunnels.he.local).toBe('203.0.113.7');
  });

  it('6to4: kept (the site prefix derives from it), with a note that it must be this host\'s public IPv4', () => {
    const r = importFiles([fixture('networkd-6to4.conf')], { hostAddresses: ['192.0.2.5'] });
    expect(r.config.tunnels.sit6to4.local).toBe('192.0.2.1');
    expect(r.toml).toContain('#   networkd-6to4.conf:7: local 192.0.2.1 is not an address of this host; 6to4 derives the site prefix from it, so it must be this host\'s public IPv4 (6to4 does not work behind NAT)');
  });

  it('the CLI compares with this host\'s addresses: a documentation IPv4 becomes auto (said on stderr), 127.0.0.1 stays', () => {
    expect(HOST_IPV4).not.toContain('203.0.113.7');
    const r = cli(['-', '--check'], block('203.0.113.7'));
    expect(r.status).toBe(0);
    expect(parseDaemonConfigText(r.stdout, 'toml', 'he.toml').tunnels[0].spec.local).toBe('auto');
    expect(r.stderr).toContain('tun6in4 import: he: local 203.0.113.7 (stdin:1) is not an address of this host, so the configuration says local = "auto" (on a 1:1-NAT cloud VM the broker\'s "Client IPv4 Address" is the public one, which the host never holds); if the file is for another host that holds 203.0.113.7, write it back\n');
    const lo = cli(['-'], block('127.0.0.1'));
    expect(lo.stdout).toMatch(/^local = "127\.0\.0\.1" +# stdin:1$/m);
    expect(lo.stderr).toBe('');
  }, 60_000);
});
