/**
 * The Docker recipe of docs/containers.md with the real parts: Debian's dockerd in the 6in4 lab's
 * client namespace, the tunnel with a routed /48 and a user-defined IPv6 network on one /64 of it.
 * A container pings the far end of the tunnel and answers a TCP connection from it, with its own
 * address on the wire; the rest of the /48 stays unreachable.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../src/doctor/doctor.js';
import { parseIpv6 } from '../src/packet/address.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { LabNetwork } from '../src/lab/topology.js';
import { DockerInNamespace, BUSYBOX_IMAGE } from './helpers/docker.js';
import { rootOrSkip, startCapture, until } from './helpers/netlab.js';

const canRun = rootOrSkip();
const CONTAINER = '2001:db8:3:1::80';
const PAGE = 'hello from a container on the routed prefix\n';
const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));

let lab: LabNetwork;

/** Starts dockerd in the client namespace with `args`, and the recipe's network and web container. */
async function dockerWithWebContainer(args: string[]): Promise<DockerInNamespace> {
  const docker = await DockerInNamespace.start(lab.host('client'), args);
  try {
    await docker.importBusybox(PAGE);
    // the recipe: one /64 of the /48 per network; IPv4 too because Docker 20.10 has no IPv6-only networks
    await docker.docker(['network', 'create', '--ipv6', '--subnet', '2001:db8:3:1::/64', '--subnet', '203.0.113.0/24', 'hosting']);
    await docker.docker(['run', '-d', '--name', 'web', '--network', 'hosting', '--ip6', CONTAINER, BUSYBOX_IMAGE, '/bin/httpd', '-f', '-p', '8080', '-h', '/www']);
    return docker;
  } catch (e) {
    await docker.stop();
    throw e;
  }
}

/** An HTTP GET from the far end (the broker namespace) to the container; throws if it fails. */
async function fetchFromFarEnd(timeoutMs = 20_000): Promise<string> {
  const fetch = `require('http').get({ host: '${CONTAINER}', port: 8080, path: '/', timeout: 3000 }, (r) => r.pipe(process.stdout)).on('timeout', () => { console.error('timeout'); process.exit(1); }).on('error', (e) => { console.error(e.message); process.exit(1); })`;
  return lab.host('broker').exec(process.execPath, ['-e', fetch], { timeoutMs });
}

beforeAll(async () => {
  if (!canRun) return;
  await removeStaleNamespaces('dock');
  lab = await LabNetwork.create('6in4', 'dock', { skipEngines: ['client'] });
  await lab.host('client').sysctl('net.ipv6.conf.all.forwarding', '1');
  await lab.startEngine('client', ['--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64', '--routed', '2001:db8:3::/48']);
  // the broker's side of "Routed /48"
  await lab.host('broker').ip(['-6', 'route', 'replace', '2001:db8:3::/48', 'via', '2001:db8:1::2', 'dev', 'tun0']);
}, 120_000);

afterAll(async () => {
  await lab?.destroy();
}, 60_000);

describe.runIf(canRun)('Docker on the routed prefix (docs/containers.md), Debian 20.10 defaults: ip6tables off', () => {
  let docker: DockerInNamespace;

  beforeAll(async () => {
    docker = await dockerWithWebContainer([]);
  }, 180_000);

  afterAll(async () => {
    await docker?.stop();
  }, 90_000);

  it('the container has its own address from the routed /48 and a default route to Docker\'s gateway', async () => {
    const addrs = await docker.docker(['exec', 'web', 'ip', '-6', 'addr', 'show', 'dev', 'eth0']);
    expect(addrs).toContain(`${CONTAINER}/64`);
    expect(await docker.docker(['exec', 'web', 'ip', '-6', 'route'])).toMatch(/default via 2001:db8:3:1::1 dev eth0/);
  }, 30_000);

  it('Docker\'s /64 wins over --routed\'s unreachable /48; the rest of the /48 is refused at the host', async () => {
    const client = lab.host('client');
    expect(await client.ip(['-6', 'route', 'get', CONTAINER])).toMatch(/dev br-/);
    const rest = await client.run('ip', ['-6', 'route', 'get', '2001:db8:3:2::1']);
    expect(rest.stdout + rest.stderr).toMatch(/No route to host|unreachable/);
  }, 30_000);

  it('the container pings a host beyond the far end of the tunnel, from its own address', async () => {
    const seen = await startCapture(lab.host('broker'), 'tun0', `icmp6 and ip6 src ${CONTAINER} and ip6[40] = 128`, 1, 15_000);
    const out = await until('ping from the container', () => docker.docker(['exec', 'web', 'ping', '-c', '3', '-W', '2', '2001:db8:1::1']), (o) => / 0% packet loss/.test(o), 30_000, 500);
    expect(out).toMatch(/3 packets received/);
    expect((await seen.result).packets.length).toBe(1);
  }, 45_000);

  it('the far end opens a TCP connection to the container and the container answers from its own address', async () => {
    const synAck = await startCapture(lab.host('broker'), 'tun0', `tcp and ip6 src ${CONTAINER} and ip6[53] & 0x12 = 0x12`, 1, 15_000);
    synAck.result.catch(() => undefined); // awaited below; a failed fetch must not leave it unhandled
    const body = await fetchFromFarEnd();
    expect(body).toBe(PAGE);
    const [p] = (await synAck.result).packets;
    expect(p.subarray(8, 24).equals(parseIpv6(CONTAINER)!)).toBe(true); // SYN-ACK: source address, as captured
  }, 45_000);
});

describe.runIf(canRun)('Docker\'s default bridge on the routed prefix: fixed-cidr-v6 in daemon.json (docs/containers.md)', () => {
  let docker: DockerInNamespace;
  const DEFAULT_BRIDGE = '2001:db8:3:2::/64';

  beforeAll(async () => {
    docker = await DockerInNamespace.start(lab.host('client'), [], { ipv6: true, 'fixed-cidr-v6': DEFAULT_BRIDGE, bip: '203.0.113.1/24' });
    await docker.importBusybox(PAGE);
  }, 180_000);

  afterAll(async () => {
    await docker?.stop();
  }, 90_000);

  it('a container on the default bridge gets an address of that /64 and reaches the far end from it', async () => {
    await docker.docker(['run', '-d', '--name', 'plain', BUSYBOX_IMAGE, '/bin/sleep', '600']);
    const addrs = await docker.docker(['exec', 'plain', 'ip', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global']);
    const own = /inet6 (2001:db8:3:2:[0-9a-f:]+)\/64/.exec(addrs)?.[1];
    expect(own, addrs).toBeDefined();
    const seen = await startCapture(lab.host('broker'), 'tun0', `icmp6 and ip6 src ${own} and ip6[40] = 128`, 1, 15_000);
    await until('ping from the default bridge', () => docker.docker(['exec', 'plain', 'ping', '-c', '2', '-W', '2', '2001:db8:1::1']), (o) => / 0% packet loss/.test(o), 30_000, 500);
    expect((await seen.result).packets).toHaveLength(1);
  }, 60_000);
});

describe.runIf(canRun)('Docker with ip6tables on (Docker 27\'s default; --ip6tables on 20.10): doctor names its rules, the documented rules undo them', () => {
  let docker: DockerInNamespace;

  beforeAll(async () => {
    docker = await dockerWithWebContainer(['--experimental', '--ip6tables']);
  }, 180_000);

  afterAll(async () => {
    await docker?.stop();
    // dockerd leaves its ip6tables rules and the DROP policy behind when it exits
    for (const table of ['filter', 'nat']) await lab.host('client').run('nft', ['delete', 'table', 'ip6', table]);
  }, 90_000);

  it('Docker masquerades the container behind the host\'s address and drops connections from outside; doctor names its FORWARD policy', async () => {
    const client = lab.host('client');
    const seen = await startCapture(lab.host('broker'), 'tun0', 'icmp6 and ip6[40] = 128', 1, 15_000);
    await until('ping from the container', () => docker.docker(['exec', 'web', 'ping', '-c', '2', '-W', '2', '2001:db8:1::1']), (o) => / 0% packet loss/.test(o), 30_000, 500);
    const [echo] = (await seen.result).packets;
    expect(echo.subarray(8, 24).equals(parseIpv6('2001:db8:1::2')!)).toBe(true); // NAT66: not the container's own address
    await expect(fetchFromFarEnd()).rejects.toThrow(/timeout|ECONNREFUSED|EHOSTUNREACH/);
    const r = await client.run(process.execPath, [BIN, 'doctor', '--json', '--routed', '2001:db8:3::/48'], { timeoutMs: 60_000 });
    const policy = (JSON.parse(r.stdout) as Finding[]).filter((f) => f.check === 'IPv6 FORWARD policy');
    expect(policy).toHaveLength(1);
    expect(policy[0].detail).toMatch(/nftables ip6 filter FORWARD drops .*Docker's ip6tables rules/);
    expect(policy[0].fix).toMatch(/ip6tables -I FORWARD -d 2001:db8:3::\/48 -j ACCEPT/);
  }, 90_000);

  it('with the two rules from docs/containers.md the container is reached, and answers, at its own address', async () => {
    const client = lab.host('client');
    await client.exec('ip6tables', ['-t', 'nat', '-I', 'POSTROUTING', '-s', '2001:db8:3::/48', '-j', 'RETURN']);
    await client.exec('ip6tables', ['-I', 'FORWARD', '-d', '2001:db8:3::/48', '-j', 'ACCEPT']);
    const synAck = await startCapture(lab.host('broker'), 'tun0', `tcp and ip6 src ${CONTAINER} and ip6[53] & 0x12 = 0x12`, 1, 15_000);
    synAck.result.catch(() => undefined);
    expect(await fetchFromFarEnd()).toBe(PAGE);
    expect((await synAck.result).packets).toHaveLength(1);
    const seen = await startCapture(lab.host('broker'), 'tun0', `icmp6 and ip6 src ${CONTAINER} and ip6[40] = 128`, 1, 15_000);
    await docker.docker(['exec', 'web', 'ping', '-c', '2', '-W', '2', '2001:db8:1::1']);
    expect((await seen.result).packets).toHaveLength(1);
  }, 60_000);
});
