/**
 * Issue 22 item 9: doctor says what `up` would refuse. Run as the CLI inside a namespace made
 * here (a veth pair, one end with 192.0.2.1/24): a --local this host does not have, FOU with
 * 6to4/6rd, and a NAT hint that speaks of UDP, not protocol 41, under --encap fou.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../src/doctor/doctor.js';
import { NamespaceSet, type Namespace } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

describe.runIf(rootOrSkip())('doctor, in a namespace with 192.0.2.1/24', () => {
  const set = new NamespaceSet('doctor');
  let ns: Namespace;
  const doctor = async (...args: string[]) => {
    const r = await ns.run(process.execPath, [BIN, 'doctor', '--json', ...args], { timeoutMs: 60_000 });
    return { code: r.code, findings: JSON.parse(r.stdout) as Finding[] };
  };
  const finding = (fs: Finding[], check: string) => fs.find((f) => f.check === check);

  beforeAll(async () => {
    ns = await set.add('ns');
    await ns.ip(['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
    await ns.ip(['link', 'set', 'd1', 'up']);
    await ns.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'd0']);
    await ns.ip(['link', 'set', 'd0', 'up']);
  }, 30_000);
  afterAll(() => set.destroy());

  it('a --local this host does not have fails, with the fix; one it has passes', async () => {
    const bad = await doctor('--mode', '6in4', '--local', '203.0.113.99', '--remote', '192.0.2.7');
    expect(bad.code).toBe(1);
    expect(finding(bad.findings, 'local IPv4 on this host')).toMatchObject({ level: 'fail', detail: '203.0.113.99 is not an address of this host (network namespace)', fix: expect.stringMatching(/ip -4 addr/) });
    const good = await doctor('--mode', '6in4', '--local', '192.0.2.1', '--remote', '192.0.2.7');
    expect(finding(good.findings, 'local IPv4 on this host')).toMatchObject({ level: 'ok', detail: '192.0.2.1 is on d0' });
  }, 120_000);

  it('--mode without --remote (6in4) or --relay says which checks it skipped and the flag that runs them; with it, they run', async () => {
    const without = await doctor('--mode', '6in4');
    expect(finding(without.findings, 'path toward the far end')).toMatchObject({
      level: 'info',
      detail: 'not checked without --remote: the local IPv4 that --local auto would pick, the route and the MTU toward the far end',
      fix: "add --remote ADDRESS (the broker's server IPv4) to check them",
    });
    expect(finding(without.findings, 'MTU')).toBeUndefined();
    expect(finding((await doctor('--mode', '6to4', '--local', '192.0.2.1')).findings, 'path toward the far end')).toMatchObject({ detail: 'not checked without --relay: the route and the MTU toward the far end' });
    const withRemote = await doctor('--mode', '6in4', '--remote', '192.0.2.7');
    expect(finding(withRemote.findings, 'path toward the far end')).toBeUndefined();
    expect(finding(withRemote.findings, 'MTU')).toMatchObject({ level: 'ok' });
  }, 120_000);

  it('FOU with 6to4 fails as up would; with 6in4 the NAT hint speaks of UDP, not protocol 41', async () => {
    const sixToFour = await doctor('--mode', '6to4', '--encap', 'fou', '--local', '192.0.2.1', '--relay', '192.0.2.7');
    expect(finding(sixToFour.findings, 'encapsulation')).toMatchObject({ level: 'fail', fix: 'use --encap none with --mode 6to4' });
    // a private (RFC 1918) local IPv4 gets the NAT hint; doctor only reads it, nothing is bound to it or sent
    const privateLocal = '10.0.0.1';
    await ns.ip(['addr', 'add', `${privateLocal}/24`, 'dev', 'd0']);
    const fou = await doctor('--mode', '6in4', '--encap', 'fou', '--encap-port', '5600', '--local', privateLocal, '--remote', '192.0.2.7');
    const hint = finding(fou.findings, 'local IPv4 class')!.detail;
    expect(hint).toMatch(/the NAT must pass UDP to port 5600 both ways/);
    expect(hint).not.toMatch(/protocol 41/);
  }, 120_000);

  it('FOU: the port checked is --encap-port, else --encap-dport, as run binds; with neither, both findings name --encap-dport', async () => {
    const base = ['--mode', '6in4', '--encap', 'fou', '--local', '192.0.2.1', '--remote', '192.0.2.7'];
    const dport = await doctor(...base, '--encap-dport', '5601');
    expect(finding(dport.findings, 'UDP port 5601 (FOU)')).toMatchObject({ level: 'ok' });
    expect(finding(dport.findings, 'encapsulation')).toMatchObject({ level: 'ok' });
    const both = await doctor(...base, '--encap-dport', '5601', '--encap-port', '5602');
    expect(finding(both.findings, 'UDP port 5602 (FOU)')).toMatchObject({ level: 'ok' });
    const neither = await doctor(...base);
    expect(neither.code).toBe(1);
    expect(finding(neither.findings, 'UDP port (FOU)')).toMatchObject({ level: 'fail', fix: expect.stringMatching(/--encap-dport/) });
    expect(finding(neither.findings, 'encapsulation')).toMatchObject({ level: 'fail', fix: expect.stringMatching(/--encap-dport/) });
  }, 120_000);
});
