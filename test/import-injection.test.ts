/**
 * What `import` prints is exactly the tunnels its input describes, whatever text that input
 * holds: what each reader copies into the output (names, values it notes, hook commands, whole
 * source lines) lands only in `#` comments, escaped, and a name holding a control character is
 * refused naming its field. netplan's quoted strings may hold "\n", which once closed a comment and
 * made the rest of a device name live TOML (issue 33, security 1).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { importConfig, ImportError, type ImportFormat } from '../src/index.js';

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tun6in4-import-injection-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What no name may hold: controls, line and paragraph separators, bidi overrides, lone surrogates. */
const NOT_TEXT = /[\p{Cc}\p{Zl}\p{Zp}\p{Cs}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
/** Where TOML, or a reader of the file, sees a new line. */
const LINE_BREAK = /[\n\r\u2028\u2029\u0085]/;

/** The issue's device name: in a comment it once opened trace to a group and metrics to every address. */
const ISSUE_NAME = 'eth0\n[control]\ngroup = "users"\ntrace = "group"\n[metrics]\nlisten = "0.0.0.0:9641"\n#';

const PIECES = ['\n', '\r', '\r\n', '\t', '\0', '\x1b', '\x7f', '\x85', '\u2028', '\u2029', '\u202e', '\ud800', '\udc00', '"', "'", '#', '[', ']', '=', '\\', ' ', 'a', '0', '.', '[control]', 'trace = "group"', ISSUE_NAME];
/** Any string, and strings built from what breaks TOML, YAML and the readers' own syntax. */
const anyText = fc.oneof(fc.string({ unit: 'binary', maxLength: 24 }), fc.array(fc.constantFrom(...PIECES), { maxLength: 10 }).map((a) => a.join('')));
/** Text on one line of a line-based format (a newline there is the next line of the input, by that format's definition). */
const oneLine = (without = '') => anyText.map((s) => s.replace(new RegExp(`[\\n${without}]`, 'g'), ''));

/** A YAML double-quoted scalar holding exactly `s` (every character outside printable ASCII escaped). */
function yamlQuoted(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (s[i] === '"' || s[i] === '\\') out += `\\${s[i]}`;
    else if (c >= 0x20 && c < 0x7f) out += s[i];
    else out += `\\u${c.toString(16).padStart(4, '0')}`;
  }
  return `${out}"`;
}

const HE = { mode: '6in4', local: '192.0.2.1', remote: '198.51.100.1', address: '2001:db8:1::2/64' };
const KEY_FILE = '/etc/tun6in4/wan6.key';

/**
 * Imports `text`. It either stops with one ImportError line because a name holds a character
 * that is not text, or prints TOML that parses to exactly `tunnels` — no table, key or value
 * more, whatever the copied strings hold.
 */
function importsExactly(text: string, format: ImportFormat, names: string[], tunnels: Record<string, unknown>, keyFile?: string): void {
  let toml: string;
  try {
    toml = importConfig(text, format, { file: 'in', keyFile }).toml;
  } catch (e) {
    expect(e).toBeInstanceOf(ImportError);
    expect((e as Error).message).not.toMatch(LINE_BREAK);
    expect(names.some((n) => NOT_TEXT.test(n)), (e as Error).message).toBe(true);
    return;
  }
  expect(names.filter((n) => NOT_TEXT.test(n))).toEqual([]);
  expect(parse(toml)).toEqual({ tunnels });
}

describe('import: text from the input reaches the output only as comments (property, every format)', () => {
  const runs = { numRuns: 300 };

  it('shell: a LAN interface name, modprobe and sysctl lines', () => {
    fc.assert(
      fc.property(oneLine('"#'), oneLine(), oneLine(), (lan, a, b) => {
        fc.pre(lan !== 'he');
        const text = [
          'ip tunnel add he mode sit remote 198.51.100.1 local 192.0.2.1 ttl 255',
          'ip link set he up',
          'ip addr add 2001:db8:1::2/64 dev he',
          'ip -6 route add default dev he',
          `ip -6 addr add 2001:db8:2::1/64 dev "${lan}"`,
          `modprobe ${a}`,
          `sysctl ${b}`,
          '',
        ].join('\n');
        importsExactly(text, 'shell', [lan], { he: { ...HE, routed: ['2001:db8:2::/64'], ttl: 255, dev: 'he' } });
      }),
      runs,
    );
  });

  it('networkd: a LAN [Match] Name=, and values it notes (Description=, DNS=)', () => {
    fc.assert(
      fc.property(oneLine(), oneLine(), oneLine().filter((n) => n !== '' && n !== 'he' && !/\s/.test(n)), (description, dns, lan) => {
        const text = [
          '[NetDev]', 'Name=he', 'Kind=sit', '[Tunnel]', 'Local=192.0.2.1', 'Remote=198.51.100.1', 'TTL=255',
          '[Match]', 'Name=he', '[Network]', 'Address=2001:db8:1::2/64', 'Gateway=2001:db8:1::1', `Description=${description}`, `DNS=${dns}`,
          '[Match]', `Name=${lan}`, '[Network]', 'Address=2001:db8:2::1/64', '',
        ].join('\n');
        importsExactly(text, 'networkd', [lan], { he: { ...HE, peer: '2001:db8:1::1', routed: ['2001:db8:2::/64'], ttl: 255, dev: 'he' } });
      }),
      runs,
    );
  });

  it('ifupdown: a LAN iface name, up and post-up hooks, tunnel-dev', () => {
    fc.assert(
      fc.property(oneLine(), oneLine(), oneLine(), oneLine().filter((n) => n !== '' && n !== 'he' && !/\s/.test(n)), (up, postUp, tunnelDev, lan) => {
        const text = [
          'iface he inet6 v4tunnel', '  address 2001:db8:1::2/64', '  endpoint 198.51.100.1', '  local 192.0.2.1', '  ttl 255', '  gateway 2001:db8:1::1',
          `  up ${up} ;`, `  post-up ${postUp} ;`, `  tunnel-dev ${tunnelDev} ;`,
          `iface ${lan} inet6 static`, '  address 2001:db8:2::1/64', '',
        ].join('\n');
        importsExactly(text, 'ifupdown', [lan], { he: { ...HE, peer: '2001:db8:1::1', routed: ['2001:db8:2::/64'], ttl: 255, dev: 'he' } });
      }),
      runs,
    );
  });

  it('netplan: an ethernets name and an IPv4 address on the tunnel (noted), as YAML quoted strings that may hold anything', () => {
    fc.assert(
      fc.property(anyText, anyText.map((s) => s.replace(/:/g, '')), (lan, v4) => {
        const text = [
          'network:', '  version: 2', '  ethernets:', `    ${yamlQuoted(lan)}:`, '      addresses: ["2001:db8:2::1/64"]',
          '  tunnels:', '    he:', '      mode: sit', '      remote: 198.51.100.1', '      local: 192.0.2.1', '      ttl: 255',
          `      addresses: ["2001:db8:1::2/64", ${yamlQuoted(v4)}]`, '      routes:', '        - to: default', '          via: "2001:db8:1::1"', '',
        ].join('\n');
        importsExactly(text, 'netplan', [lan], { he: { ...HE, peer: '2001:db8:1::1', routed: ['2001:db8:2::/64'], ttl: 255, dev: 'he' } });
      }),
      runs,
    );
  });

  it('UCI: a LAN section name, a noted option, and the broker login (a TOML value with --key-file, a commented one without)', () => {
    fc.assert(
      fc.property(oneLine("'"), oneLine("'"), oneLine("'"), oneLine("'"), fc.boolean(), (lan, zone, tunnelId, username, withKeyFile) => {
        const text = [
          "config interface 'wan6'", "\toption proto '6in4'", "\toption peeraddr '198.51.100.1'", "\toption ip6addr '2001:db8:1::2/64'",
          `\toption zone '${zone}'`, `\toption tunnelid '${tunnelId}'`, `\toption username '${username}'`, "\toption updatekey 'K3y'",
          `config interface '${lan}'`, "\toption proto 'static'", "\toption ip6addr '2001:db8:2::1/64'", '',
        ].join('\n');
        const wan6 = { mode: '6in4', local: 'auto', remote: '198.51.100.1', address: '2001:db8:1::2/64', routed: ['2001:db8:2::/64'], mtu: 1280, dev: '6in4-wan6' };
        const update = withKeyFile ? { update: { tunnelId, username, keyFile: KEY_FILE } } : {};
        importsExactly(text, 'uci', [lan, tunnelId, username], { wan6: { ...wan6, ...update } }, withKeyFile ? KEY_FILE : undefined);
      }),
      runs,
    );
  });
});

describe('import: the issue\'s netplan device name', () => {
  const netplan = (ethernet: string, tunnel = 'he-ipv6') =>
    [
      'network:', '  version: 2', '  ethernets:', `    ${JSON.stringify(ethernet)}:`, '      addresses: ["2001:db8:2::1/64"]',
      '  tunnels:', `    ${JSON.stringify(tunnel)}:`, '      mode: sit', '      remote: 198.51.100.1', '      local: 192.0.2.1',
      '      addresses: ["2001:db8:1::2/64"]', '      routes:', '        - to: default', '          via: "2001:db8:1::1"', '',
    ].join('\n');

  it('as an ethernets name: refused, naming the field, the line and the character, on one line', () => {
    expect(() => importConfig(netplan(ISSUE_NAME), undefined, { file: 'x.yaml' })).toThrow(
      'x.yaml:4: ethernets: the name "eth0\\n[control]\\ngroup = "users"\\ntrace = "group"\\n[metrics]\\nlisten = "0.0.0.0:9641"\\n#" holds U+000A, a control or invisible formatting character, which no name may hold; correct the name in the input',
    );
  });

  it('as a tunnel name: refused the same way', () => {
    expect(() => importConfig(netplan('eth1', ISSUE_NAME), undefined, { file: 'x.yaml' })).toThrow(/^x\.yaml:7: tunnels: the name "eth0\\n\[control\]\\n.*" holds U\+000A/);
  });

  it('a value copied into a comment stays in it, escaped: the file is the tunnel and nothing else', () => {
    const text = netplan('eth1').replace('["2001:db8:1::2/64"]', '["2001:db8:1::2/64", "192.0.2.9\\n[control]\\ntrace = \\"group\\"\\n#"]');
    const r = importConfig(text, undefined, { file: 'x.yaml' });
    expect(r.toml).toContain('#   x.yaml:11: 192.0.2.9\\n[control]\\ntrace = "group"\\n#: an IPv4 address on the tunnel; tun6in4 carries IPv6 only');
    expect(parse(r.toml)).toEqual({ tunnels: { 'he-ipv6': { ...HE, peer: '2001:db8:1::1', routed: ['2001:db8:2::/64'], ttl: 'inherit', dev: 'he-ipv6' } } });
  });

  it('the CLI with --check: exit 2, one line on stderr, nothing on stdout', () => {
    const file = join(dir, '60-tunnels.yaml');
    writeFileSync(file, netplan(ISSUE_NAME));
    const r = spawnSync(process.execPath, [BIN, 'import', file, '--check'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^tun6in4: .*60-tunnels\.yaml:4: ethernets: the name "eth0\\n\[control\].*correct the name in the input\n$/);
  });
});
