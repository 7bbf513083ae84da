/**
 * `tun6in4 doctor --routed …` in a namespace of its own, against the kernel's real state:
 * forwarding, forward-chain policies set with ip6tables (iptables-nft) and nft, an address of the
 * routed prefix on a TUN device, and a routed prefix that is the tunnel's link. (The accept_ra
 * check meets a real RA-configured uplink in advertise.test.ts, Docker's own ip6tables rules in
 * docker.test.ts.)
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../src/doctor/doctor.js';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';

const canRun = rootOrSkip();
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

/** `tun6in4 doctor --json …` run inside `ns`: its hosting findings. */
export async function hostingFindings(ns: Namespace, args: string[]): Promise<Finding[]> {
  const r = await ns.run(process.execPath, [BIN, 'doctor', '--json', ...args], { timeoutMs: 60_000 });
  if (r.code !== 0 && r.code !== 1) throw new Error(`doctor exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Finding[];
}

describe.runIf(canRun)('doctor: hosting a routed prefix', () => {
  let set: NamespaceSet;
  let ns: Namespace;
  const find = (fs: Finding[], check: string) => fs.filter((f) => f.check === check);

  beforeAll(async () => {
    await removeStaleNamespaces('dochost');
    set = new NamespaceSet('dochost');
    ns = await set.add('h');
  }, 30_000);

  afterAll(async () => {
    await set?.destroy();
  });

  it('IPv6 forwarding off while a prefix is routed here fails, with the sysctl that fixes it; on passes', async () => {
    await ns.sysctl('net.ipv6.conf.all.forwarding', '0');
    const off = find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64']), 'IPv6 forwarding');
    expect(off).toMatchObject([{ level: 'fail' }]);
    expect(off[0].fix).toMatch(/sysctl -w net\.ipv6\.conf\.all\.forwarding=1/);
    await ns.sysctl('net.ipv6.conf.all.forwarding', '1');
    expect(find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64']), 'IPv6 forwarding')).toMatchObject([{ level: 'ok' }]);
  }, 60_000);

  it('without --routed none of these checks run', async () => {
    const fs = await hostingFindings(ns, []);
    expect(fs.filter((f) => /forwarding|FORWARD|routed|accept_ra/.test(f.check))).toEqual([]);
  }, 60_000);

  it('a forward chain that drops by policy is named, set by ip6tables (nft backend) or by nft itself, each with a rule that lets the prefix in, in the tool that set it', async () => {
    expect(find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64']), 'IPv6 FORWARD policy')).toMatchObject([{ level: 'ok' }]);
    await ns.exec('ip6tables', ['-P', 'FORWARD', 'DROP']);
    await ns.exec('nft', ['add table inet hostfw; add chain inet hostfw fwdrop { type filter hook forward priority 0; policy drop; }']);
    const fs = find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64']), 'IPv6 FORWARD policy');
    expect(fs.map((f) => f.level)).toEqual(['warn', 'warn']);
    expect(fs.map((f) => f.detail).join('\n')).toMatch(/nftables ip6 filter FORWARD drops/);
    expect(fs.map((f) => f.detail).join('\n')).toMatch(/nftables inet hostfw fwdrop drops/);
    expect(fs.find((f) => f.detail.includes('inet hostfw'))!.fix).toBe('accept it ahead of the policy, e.g. nft insert rule inet hostfw fwdrop ip6 daddr 2001:db8:2::/64 accept');
    // the policy ip6tables set gets its rule from ip6tables, the tool that set it, not from nft
    expect(fs.find((f) => f.detail.includes('ip6 filter FORWARD'))!.fix).toBe('accept it ahead of the policy, e.g. ip6tables -I FORWARD -d 2001:db8:2::/64 -j ACCEPT');
    // each fix as given works where it is applied: after it, the chain has the rule
    await ns.exec('nft', ['insert rule inet hostfw fwdrop ip6 daddr 2001:db8:2::/64 accept']);
    expect(await ns.exec('nft', ['list', 'chain', 'inet', 'hostfw', 'fwdrop'])).toMatch(/ip6 daddr 2001:db8:2::\/64 accept/);
    await ns.exec('ip6tables', ['-I', 'FORWARD', '-d', '2001:db8:2::/64', '-j', 'ACCEPT']);
    expect(await ns.exec('ip6tables', ['-S', 'FORWARD'])).toMatch(/^-A FORWARD -d 2001:db8:2::\/64 -j ACCEPT$/m);
    await ns.exec('ip6tables', ['-P', 'FORWARD', 'ACCEPT']);
    await ns.exec('nft', ['delete table inet hostfw']);
    expect(find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64']), 'IPv6 FORWARD policy')).toMatchObject([{ level: 'ok' }]);
  }, 90_000);

  it('an address of the routed prefix on a TUN device is named, with where to move it; a /128 there is fine', async () => {
    await ns.exec('ip', ['tuntap', 'add', 'dev', 'tunx', 'mode', 'tun']);
    await ns.ip(['-6', 'addr', 'add', '2001:db8:2::1/64', 'dev', 'tunx', 'nodad']);
    const fs = find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64']), 'routed prefix on a tunnel device');
    expect(fs).toMatchObject([{ level: 'warn' }]);
    expect(fs[0].detail).toMatch(/2001:db8:2::1\/64 on tunx/);
    expect(fs[0].fix).toMatch(/ip -6 addr del 2001:db8:2::1\/64 dev tunx/);
    await ns.ip(['-6', 'addr', 'del', '2001:db8:2::1/64', 'dev', 'tunx']);
    await ns.ip(['-6', 'addr', 'add', '2001:db8:2::1/128', 'dev', 'tunx', 'nodad']);
    expect(find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64']), 'routed prefix on a tunnel device')).toEqual([]);
  }, 60_000);

  it('a routed prefix that is the tunnel link\'s own prefix fails; the broker\'s routed /64 passes', async () => {
    const bad = find(await hostingFindings(ns, ['--routed', '2001:db8:1::/64', '--address', '2001:db8:1::2/64']), 'routed prefix vs tunnel link');
    expect(bad).toMatchObject([{ level: 'fail' }]);
    expect(bad[0].fix).toMatch(/Routed \/64/);
    const good = find(await hostingFindings(ns, ['--routed', '2001:db8:2::/64', '--address', '2001:db8:1::2/64']), 'routed prefix vs tunnel link');
    expect(good).toMatchObject([{ level: 'ok' }]);
  }, 60_000);
});
