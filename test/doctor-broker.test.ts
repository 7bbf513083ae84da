/**
 * `tun6in4 doctor -c FILE` for a `[broker.NAME]`, in a namespace of its own, against the kernel's
 * real state: a local address the namespace has or lacks, a pool another route already takes,
 * IPv6 forwarding, a store directory that is missing, an API port another process holds, and a
 * token file that is not there.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../src/doctor/doctor.js';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';

const canRun = rootOrSkip();
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

/** `tun6in4 doctor --json -c FILE` inside `ns`: every finding. */
async function doctorFindings(ns: Namespace, file: string): Promise<Finding[]> {
  const r = await ns.run(process.execPath, [BIN, 'doctor', '--json', '-c', file], { timeoutMs: 60_000 });
  if (r.code !== 0 && r.code !== 1) throw new Error(`doctor exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Finding[];
}

describe.runIf(canRun)('doctor -c: what a broker needs of this host', () => {
  let set: NamespaceSet;
  let ns: Namespace;
  let dir: string;
  const brokerFindings = (fs: Finding[]) => Object.fromEntries(fs.filter((f) => f.check.startsWith('broker.edge')).map((f) => [f.check, f.level]));
  const config = (o: { local: string; store: string; listen: string; tokenFile: string }) => {
    const file = join(dir, `edge-${Math.random().toString(36).slice(2)}.toml`);
    writeFileSync(
      file,
      `[broker.edge]\nlocal = "${o.local}"\npools = ["2001:db8:4000::/48"]\nstore = "${o.store}"\ntransport = "raw"\n\n[broker.edge.api]\nlisten = "${o.listen}"\ntokenFile = "${o.tokenFile}"\n`,
      { mode: 0o600 },
    );
    return file;
  };

  beforeAll(async () => {
    await removeStaleNamespaces('docbrk');
    set = new NamespaceSet('docbrk');
    ns = await set.add('b');
    await ns.ip(['addr', 'add', '192.0.2.1/32', 'dev', 'lo']);
    dir = mkdtempSync(join(tmpdir(), 'docbrk-'));
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(dir, 'token'), 'a-bearer-token-of-some-length\n', { mode: 0o600 });
  }, 30_000);

  afterAll(async () => {
    await set?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a broker this host can run: every check of it passes', async () => {
    await ns.sysctl('net.ipv6.conf.all.forwarding', '1');
    const file = config({ local: '192.0.2.1', store: join(dir, 'state/edge.sqlite'), listen: '127.0.0.1:8641', tokenFile: join(dir, 'token') });
    expect(brokerFindings(await doctorFindings(ns, file))).toEqual({
      'broker.edge.local': 'ok',
      'broker.edge.pools': 'ok',
      'broker.edge IPv6 forwarding': 'ok',
      'broker.edge.store': 'ok',
      'broker.edge.api.listen': 'ok',
      'broker.edge.api.tokenFile': 'ok',
    });
  });

  it('an address it lacks, a pool routed elsewhere, forwarding off, no store directory, an API port taken, no token file: each fails with its fix', async () => {
    await ns.sysctl('net.ipv6.conf.all.forwarding', '0');
    await ns.ip(['-6', 'route', 'add', 'unreachable', '2001:db8:4000::/48']);
    const holder = ns.spawn(process.execPath, ['-e', "require('net').createServer().listen(8642, '127.0.0.1', () => console.log('listening'))"]);
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (d) => String(d).includes('listening') && resolve());
      holder.once('exit', (code) => reject(new Error(`the port holder exited ${code}`)));
    });
    const file = config({ local: '192.0.2.99', store: join(dir, 'missing/edge.sqlite'), listen: '127.0.0.1:8642', tokenFile: join(dir, 'no-token') });
    const found = await doctorFindings(ns, file).finally(() => holder.kill());
    expect(brokerFindings(found)).toEqual({
      'broker.edge.local': 'fail',
      'broker.edge.pools': 'fail',
      'broker.edge IPv6 forwarding': 'fail',
      'broker.edge.store': 'fail',
      'broker.edge.api.listen': 'fail',
      'broker.edge.api.tokenFile': 'fail',
    });
    const fix = (check: string) => found.find((f) => f.check === check)?.fix ?? '';
    expect(fix('broker.edge.pools')).toMatch(/ip -6 route del 2001:db8:4000::\/48/);
    expect(fix('broker.edge IPv6 forwarding')).toMatch(/net\.ipv6\.conf\.all\.forwarding=1/);
    expect(fix('broker.edge.store')).toMatch(/StateDirectory=tun6in4/);
    expect(fix('broker.edge.api.listen')).toMatch(/another process listens there/);
  });
});
