/**
 * The CLI as a user meets it: bad flags and bad configuration files exit non-zero with one line
 * naming the flag (or the place in the file) and the fix, and touch nothing on the system.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NamespaceSet, type Namespace } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
const BROKER = ['run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64'];
const dir = mkdtempSync(join(tmpdir(), 'tun6in4-cli-'));
const file = (name: string, content: unknown, mode = 0o644) => {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  chmodSync(p, mode);
  return p;
};
/** What main printed last: before it, the daemon's own JSON log lines. */
const lastLine = (text: string) => `${text.trim().split('\n').at(-1)}\n`;
const he = { mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' };
const unreadable = file('unreadable.json', { tunnels: { he } });
chmodSync(unreadable, 0);

// [what, argv, expected message]. Validation happens before anything on the system is touched.
const BAD: Array<[string, string[], RegExp]> = [
  ['MTU out of range', [...BROKER, '--mtu', '9000'], /--mtu: 9000 is not valid; use an integer in 1280\.\.1480/],
  ['not a number', [...BROKER, '--ttl', 'sixty'], /--ttl.*whole number or "inherit"/],
  ['TOS out of range', [...BROKER, '--tos', '300'], /--tos: 300 is not valid; use an integer in 0\.\.255 or "inherit"/],
  ['unknown mode', ['run', '--mode', 'sit', '--local', '192.0.2.1'], /--mode.*Allowed choices are 6in4, 6to4, 6rd/],
  ['malformed IPv6 address', ['run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8::zz/64'], /--address: .*IPv6 address with prefix length/],
  ['malformed IPv4 address', ['run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.256', '--address', '2001:db8:1::2/64'], /--remote: .*dotted-quad/],
  ['malformed routed prefix', [...BROKER, '--routed', '2001:db8:2::'], /--routed: .*IPv6 prefixes/],
  ['6to4 on a private IPv4', ['run', '--mode', '6to4', '--local', '10.1.2.3'], /--local: "10\.1\.2\.3" .*global unicast.*private.*--allow-nonglobal/],
  ['contradictory: relay on 6in4', [...BROKER, '--relay', '203.0.113.1'], /--relay: .*6to4 only/],
  ['contradictory: peer on 6to4', ['run', '--mode', '6to4', '--local', '192.0.2.1', '--allow-nonglobal', '--peer', '2001:db8::1'], /--peer: .*6in4 only/],
  ['contradictory: relay router with a relay', ['run', '--mode', '6to4', '--role', 'relay', '--local', '192.0.2.1', '--allow-nonglobal', '--relay', '203.0.113.1'], /--relay: .*does not use another relay/],
  ['6rd: malformed option 212', ['run', '--mode', '6rd', '--local', '192.0.2.10', '--6rd-dhcp', '25 36 2001:db8:a000::'], /--6rd-dhcp: .*3 fields, at least 4.*\$ip6rd/],
  ['6rd: delegated prefix past /64 names both', ['run', '--mode', '6rd', '--local', '192.0.2.10', '--6rd-prefix', '2001:db8::/40', '--ipv4-mask-len', '4', '--relay', '203.0.113.1'], /--6rd-prefix: .*ipv4MaskLen 4 .*\/68, longer than \/64/],
  ['6rd: mask length 32', ['run', '--mode', '6rd', '--local', '192.0.2.10', '--6rd-prefix', '2001:db8::/32', '--ipv4-mask-len', '32', '--relay', '203.0.113.1'], /--ipv4-mask-len: 32 is not valid; use an integer in 0\.\.31/],
  ['half a broker update', [...BROKER, '--tunnel-id', '42'], /--tunnel-id: .*needs --tunnel-id, --username and --update-key-file together/],
  ['broker update over plain http', [...BROKER, '--tunnel-id', '42', '--username', 'u', '--update-key-file', '/k', '--update-url', 'http://198.51.100.1/nic/update'], /--update-url: .*cleartext; use https, or .*--update-insecure-http/],
  ['credentials in the update URL', [...BROKER, '--tunnel-id', '42', '--username', 'u', '--update-key-file', '/k', '--update-url', 'https://u:sEcReT@198.51.100.1/nic/update'], /--update-url: .*no credentials in the URL/],
  ['keepalive zero', [...BROKER, '--keepalive', '0'], /--keepalive.*seconds \(1 or more\) or "off"/],
  ['unknown flag', [...BROKER, '--mtuu', '1400'], /unknown option '--mtuu'/],
  // doctor and lab take run's flags: the same parsing, validation and message
  ['doctor: MTU out of range', ['doctor', '--mtu', '9000'], /^tun6in4: --mtu: 9000 is not valid; use an integer in 1280\.\.1480/],
  ['doctor: malformed IPv4 address', ['doctor', '--mode', '6in4', '--remote', '198.51.100.256'], /^tun6in4: --remote: .*dotted-quad/],
  ['doctor: not a number', ['doctor', '--encap-port', 'x'], /--encap-port.*expected a whole number/],
  ['lab: unknown mode (its own choices: the run modes and broker)', ['lab', '--mode', 'sit'], /--mode.*Allowed choices are 6in4, 6to4, 6rd, broker\./],
  ['missing config file', ['up', '-c', join(dir, 'missing.json')], /missing\.json: cannot read it \(ENOENT\); check the path/],
  ['config writable by others', ['up', '-c', file('writable.json', { tunnels: { he } }, 0o666)], /writable\.json: writable by group or others \(mode 0666\); chmod go-w/],
  ['dropping to root', [...BROKER, '--user', 'root'], /--user: .*dropping privileges to root drops nothing/],
  ['config not JSON', ['up', '-c', file('notjson.json', '{ tunnels: ')], /notjson\.json: not valid JSON/],
  ['config unknown key', ['up', '-c', file('unknown.json', { tunnels: { he: { ...he, mtuu: 1 } } })], /tunnels\.he\.mtuu: unknown key; did you mean "mtu"\?/],
  ['config out of range', ['up', '-c', file('range.json', { tunnels: { he: { ...he, mtu: 1000 } } })], /tunnels\.he\.mtu: 1000 is not valid; use an integer in 1280\.\.1480/],
  ['config 6to4 private', ['up', '-c', file('private.json', { tunnels: { s: { mode: '6to4', local: '172.16.0.1' } } })], /tunnels\.s\.local: .*private space/],
  ['config contradictory', ['up', '-c', file('contra.json', { tunnels: { he: { ...he, relay: '203.0.113.1' } } })], /tunnels\.he\.relay: .*6to4 only/],
  ['config TOML syntax', ['up', '-c', file('syntax.toml', '[tunnels.he]\nmode = "6in4\n')], /syntax\.toml: not valid TOML at line 2, column \d+: /],
  ['config TOML out of range', ['up', '-c', file('range.toml', '[tunnels.he]\nmode = "6in4"\nlocal = "192.0.2.1"\nremote = "198.51.100.1"\naddress = "2001:db8:1::2/64"\nmtu = 1000\n')], /tunnels\.he\.mtu: 1000 is not valid; use an integer in 1280\.\.1480/],
  // check: the same errors, each line naming the file too
  ['check out of range', ['check', '-c', file('check-range.toml', '[tunnels.he]\nmode = "6in4"\nlocal = "192.0.2.1"\nremote = "198.51.100.1"\naddress = "2001:db8:1::2/64"\nmtu = 1000\n')], /^tun6in4: \S+check-range\.toml: tunnels\.he\.mtu: 1000 is not valid; use an integer in 1280\.\.1480/],
  ['check missing key file', ['check', '-c', file('check-key.json', { tunnels: { he: { ...he, update: { tunnelId: '1', username: 'u', keyFile: join(dir, 'missing.key') } } } })], /check-key\.json: tunnels\.he\.update\.keyFile: \S+missing\.key: ENOENT; create it with the broker's update key \(chmod 600\)/],
  ['check writable config', ['check', '-c', file('check-writable.toml', '', 0o666)], /check-writable\.toml: writable by group or others \(mode 0666\); chmod go-w/],
  ['check unknown user', ['check', '-c', file('check-user.json', { tunnels: { he }, user: 'no-such-user-t6' })], /check-user\.json: user: no user named "no-such-user-t6"/],
];
if (process.getuid?.() !== 0) BAD.push(['unreadable config', ['up', '-c', unreadable], /unreadable\.json: cannot read it \(EACCES\)/]);

describe('tun6in4 CLI', () => {
  it('--help maps a broker\'s tunnel details page onto flags', () => {
    const r = run('run', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Server IPv4 Address: 198\.51\.100\.1\s+-> --remote 198\.51\.100\.1/);
    expect(r.stdout).toMatch(/Routed \/64:.*--routed/);
  });

  it('--version prints the package version', () => {
    const r = run('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version);
  });

  it('an unknown or misspelled flag exits 2 with one line naming it (and the likely flag)', () => {
    const r = run('run', '--mode', '6in4', '--lcoal', '192.0.2.1');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("tun6in4: unknown option '--lcoal' (Did you mean --local?) (see tun6in4 --help)\n");
  });

  for (const [what, args, message] of BAD) {
    it(`exits non-zero naming the flag or field and the fix: ${what}`, () => {
      const r = run(...args);
      expect(r.status).not.toBe(0);
      if (args[0] === 'check') expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    });
  }
});

describe('bin/tun6in4.js in a checkout before npm ci', () => {
  it('says in one line to run npm ci, not a stack trace about tsx', () => {
    // a checkout's shape (bin/, src/cli/main.ts, package.json) in a temporary directory, where no
    // node_modules is found up the tree
    const clone = mkdtempSync(join(tmpdir(), 'tun6in4-clone-'));
    mkdirSync(join(clone, 'bin'));
    mkdirSync(join(clone, 'src', 'cli'), { recursive: true });
    copyFileSync(BIN, join(clone, 'bin', 'tun6in4.js'));
    writeFileSync(join(clone, 'src', 'cli', 'main.ts'), '');
    writeFileSync(join(clone, 'package.json'), '{"type":"module"}');
    const r = spawnSync(process.execPath, [join(clone, 'bin', 'tun6in4.js'), '--version'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`tun6in4: this checkout's dependencies are not installed (no package tsx): run npm ci (or npm install) in ${clone}\n`);
  });
});

describe('where the configuration file goes (issue 33)', () => {
  const good = () => file('positional.json', { tunnels: { he } }, 0o600);

  it('check FILE and up FILE take the file as -c FILE does', () => {
    const r = run('check', good());
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/positional\.json: ok \(JSON, 1 tunnel\)/);
    // up reads the file first: a bad one is refused by name, so no tunnel is started here
    const bad = file('positional-bad.json', { tunnels: { he: { ...he, mtu: 1000 } } }, 0o600);
    expect(run('up', bad).stderr).toMatch(/tunnels\.he\.mtu: 1000 is not valid/);
  });

  it('two different files, or none, are one line saying what to type', () => {
    expect(run('check', '-c', good(), join(dir, 'other.json')).stderr).toMatch(/^tun6in4: --config: two configuration files given \(\S+positional\.json and \S+other\.json\); check takes one: tun6in4 check -c FILE\n$/);
    const none = run('up');
    expect(none.status).toBe(2);
    expect(none.stderr).toBe('tun6in4: --config: give the configuration file: tun6in4 up -c FILE (or tun6in4 up FILE)\n');
  });

  it('run --config says to use up, instead of asking for --mode', () => {
    const r = run('run', '--config', '/etc/tun6in4/he.toml');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('tun6in4: --config: run takes one tunnel from flags; a configuration file runs with: tun6in4 up -c /etc/tun6in4/he.toml\n');
    expect(run('run').stderr).toMatch(/^tun6in4: --mode: missing; use "6in4"/);
  });

  it('a TOML file named *.json is one line, its quoted text included', () => {
    const r = run('check', file('toml.json', '# he\n[tunnels.he]\nmode = "6in4"\n', 0o600));
    expect(r.stderr).toMatch(/^tun6in4: \S+toml\.json: not valid JSON \(.*"# he\\n\[tun.*\); it looks like TOML: name the file \*\.toml\n$/);
  });
});

describe('tun6in4 check', () => {
  it('a good file: exit 0 and a short summary, the key file read but its key never printed', () => {
    const key = join(dir, 'good.key');
    writeFileSync(key, 'sEcReT-update-key\n', { mode: 0o600 });
    const good = file(
      'good.toml',
      ['[tunnels.he]', 'mode = "6in4"', 'local = "auto"', 'remote = "198.51.100.1"', 'address = "2001:db8:1::2/64"', 'dev = "he-ipv6"', '[tunnels.he.update]', 'tunnelId = "1"', 'username = "u"', `keyFile = "${key}"`, '[control]', `socket = "${join(dir, 'check.sock')}"`, ''].join('\n'),
      0o600,
    );
    const r = run('check', '-c', good);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/good\.toml: ok \(TOML, 1 tunnel\)\n  he: 6in4 auto -> 198\.51\.100\.1, 2001:db8:1::2\/64, dev he-ipv6, broker update \(key file \S+good\.key holds a key\)\n/);
    expect(r.stdout).not.toMatch(/sEcReT/);
    expect(existsSync(join(dir, 'check.sock'))).toBe(false);
  });
});

describe.runIf(rootOrSkip())('bad configuration touches nothing (as root, in a namespace)', () => {
  const set = new NamespaceSet('cli');
  let ns: Namespace;
  beforeAll(async () => {
    ns = await set.add('ns');
  });
  afterAll(() => set.destroy());

  it('no interface, route or control socket appears for any bad flag or file', async () => {
    const before = [await ns.ip(['-o', 'link']), await ns.ip(['-6', 'route', 'show', 'table', 'all']), await ns.ip(['-4', 'route', 'show', 'table', 'all'])];
    const control = join(dir, 'control.sock');
    for (const [what, args] of BAD) {
      const argv = args[0] === 'run' ? [...args, '--control', control] : args;
      const r = await ns.run(process.execPath, [BIN, ...argv], { timeoutMs: 30_000 });
      expect(r.code, what).not.toBe(0);
    }
    const after = [await ns.ip(['-o', 'link']), await ns.ip(['-6', 'route', 'show', 'table', 'all']), await ns.ip(['-4', 'route', 'show', 'table', 'all'])];
    expect(after).toEqual(before);
    expect(existsSync(control)).toBe(false);
  }, 120_000);

  it('a --local address this host does not have is named as such, before anything is created', async () => {
    const before = await ns.ip(['-o', 'link']);
    const r = await ns.run(process.execPath, [BIN, ...BROKER.map((a) => (a === '192.0.2.1' ? '203.0.113.99' : a)), '--control', join(dir, 'local.sock')], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    // issue 33: a 1:1 NAT's public address is the usual way to get here; the message says "auto"
    expect(lastLine(r.stderr)).toBe('tun6in4: --local: "203.0.113.99" is not valid; it is not an address of this host (ip -4 addr lists them); behind a 1:1 NAT, as on most cloud VMs, the public IPv4 is the NAT\'s: use "auto" (--local auto, local = "auto"), the private address the NAT maps to it\n');
    expect(await ns.ip(['-o', 'link'])).toBe(before);
  }, 60_000);

  it('--local auto with no IPv4 route says so and what to do, not RTNETLINK', async () => {
    const r = await ns.run(process.execPath, [BIN, ...BROKER.map((a) => (a === '192.0.2.1' ? 'auto' : a)), '--control', join(dir, 'auto.sock')], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(lastLine(r.stderr)).toBe(
      'tun6in4: --local: "auto" is not valid; this host has no IPv4 route to 198.51.100.1 (Network is unreachable), so there is no source address to take; give the address to send from (--local ADDRESS, local = "ADDRESS"), or add a route toward 198.51.100.1 (ip route add default via GATEWAY)\n',
    );
  }, 60_000);

  describe('with addresses, and ports another program holds', () => {
    let holder: ChildProcess;
    let metricsPort: number;
    beforeAll(async () => {
      await ns.ip(['link', 'set', 'lo', 'up']);
      await ns.ip(['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
      await ns.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'd0']);
      await ns.ip(['addr', 'add', '198.51.100.1/24', 'dev', 'd0']);
      await ns.ip(['link', 'set', 'd0', 'up']);
      // holds FOU's UDP 5555 on 192.0.2.1 and a TCP port for metrics, and says which
      const hold = "const d=require('dgram').createSocket('udp4');d.bind(5555,'192.0.2.1',()=>{const s=require('net').createServer().listen(0,'127.0.0.1',()=>console.log(s.address().port))})";
      holder = ns.spawn(process.execPath, ['-e', hold]);
      metricsPort = await new Promise<number>((resolve) => holder.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
    });
    afterAll(() => {
      holder?.kill();
    });
    const runIn = (args: string[], sock: string) => ns.run(process.execPath, [BIN, ...args, '--control', join(dir, sock)], { timeoutMs: 30_000 });

    it('a remote that is this host\'s own address is refused at start: the tunnel would send to itself', async () => {
      const r = await runIn(BROKER, 'self.sock');
      expect(r.code).toBe(2);
      expect(lastLine(r.stderr)).toBe('tun6in4: --remote: "198.51.100.1" is not valid; it is an address of this host, so the tunnel would send to itself; use the broker\'s "Server IPv4 Address"\n');
    }, 60_000);

    it('a taken FOU port names the port, the address and the fix; nothing is left behind', async () => {
      const before = await ns.ip(['-o', 'link']);
      const r = await runIn(['run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '203.0.113.1', '--address', '2001:db8:1::2/64', '--encap', 'fou', '--encap-dport', '5555', '--no-default-route'], 'fou.sock');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/FOU: UDP port 5555 on 192\.0\.2\.1 is taken by another program \(.*Address already in use\); see which \(ss -ulpn 'sport = :5555'\) and stop it, or give this tunnel another local port \(--encap-port, encapPort; the peer must send there\)/);
      expect(await ns.ip(['-o', 'link'])).toBe(before);
    }, 60_000);

    it('a taken --metrics-listen is named by its flag', async () => {
      const r = await runIn([...BROKER.map((a) => (a === '198.51.100.1' ? '203.0.113.1' : a)), '--metrics-listen', `127.0.0.1:${metricsPort}`], 'metrics.sock');
      expect(r.code).toBe(2);
      expect(lastLine(r.stderr)).toMatch(new RegExp(`^tun6in4: --metrics-listen: cannot listen on 127\\.0\\.0\\.1:${metricsPort}: EADDRINUSE; choose a free port`));
    }, 60_000);
  });
});
