/** The CLI as a user meets it: bad flags exit non-zero with one line naming the flag and the fix. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
const BROKER = ['run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64'];

describe('tun6in4 CLI', () => {
  it('--help maps a broker\'s tunnel details page onto flags', () => {
    const r = run('run', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Server IPv4 Address: 198\.51\.100\.1\s+-> --remote 198\.51\.100\.1/);
    expect(r.stdout).toMatch(/Routed \/64:.*--routed/);
  });

  // Validation happens before anything on the system is touched, so these need no root.
  const cases: Array<[string, string[], RegExp]> = [
    ['MTU out of range', [...BROKER, '--mtu', '9000'], /--mtu: 9000 is not valid; use an integer in 1280\.\.1480/],
    ['not a number', [...BROKER, '--ttl', 'sixty'], /--ttl.*whole number or "inherit"/],
    ['unknown mode', ['run', '--mode', 'sit', '--local', '192.0.2.1'], /--mode.*Allowed choices are 6in4, 6to4/],
    ['bad address', ['run', '--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8::zz/64'], /--address: .*IPv6 address with prefix length/],
    ['6to4 on a private IPv4', ['run', '--mode', '6to4', '--local', '10.1.2.3'], /--local: "10\.1\.2\.3" .*global unicast.*private.*--allow-nonglobal/],
    ['relay on 6in4', [...BROKER, '--relay', '203.0.113.1'], /--relay: .*6to4 only/],
    ['unknown flag', [...BROKER, '--mtuu', '1400'], /unknown option '--mtuu'/],
  ];
  for (const [what, args, message] of cases) {
    it(`exits non-zero naming the flag: ${what}`, () => {
      const r = run(...args);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(message);
    });
  }
});
