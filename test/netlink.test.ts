/**
 * Interface set-up over rtnetlink (src/tun/netlink.ts, native/netlink.cc), as root inside a
 * namespace this file makes: each request is made from a child in the namespace
 * (test/helpers/netlink-steps.ts) and its effect read back with iproute2, so the kernel and `ip`
 * judge what our messages said. The codec's reading of answers runs without root.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NamespaceSet, removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import type { NativeAddon } from '../src/io/native.js';
import { NetlinkError, NLMSG_ERROR, readAnswer, Rtnetlink, RTM_NEWLINK } from '../src/tun/netlink.js';
import { rootOrSkip } from './helpers/netlab.js';
import type { Step, StepResult } from './helpers/netlink-steps.js';

const STEPS = fileURLToPath(new URL('./helpers/netlink-steps.ts', import.meta.url));
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A message as the kernel lays it out: header (host order), then the body. */
function message(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const b = Buffer.alloc(16 + body.length + ((4 - (body.length % 4)) % 4));
  const w32 = (v: number, o: number) => (LE ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  const w16 = (v: number, o: number) => (LE ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  w32(16 + body.length, 0);
  w16(type, 4);
  w16(flags, 6);
  w32(seq, 8);
  body.copy(b, 16);
  return b;
}
function errorBody(errno: number, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(4 + 16);
  if (LE) b.writeInt32LE(-errno, 0);
  else b.writeInt32BE(-errno, 0);
  return Buffer.concat([b, tlvs]);
}
function attr(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(4 + payload.length + ((4 - (payload.length % 4)) % 4));
  if (LE) {
    b.writeUInt16LE(4 + payload.length, 0);
    b.writeUInt16LE(type, 2);
  } else {
    b.writeUInt16BE(4 + payload.length, 0);
    b.writeUInt16BE(type, 2);
  }
  payload.copy(b, 4);
  return b;
}

describe('reading rtnetlink answers', () => {
  it('an NLMSG_ERROR with an extended ACK gives the errno and the kernel\'s sentence', () => {
    const buf = message(NLMSG_ERROR, 0x100 | 0x200, 7, errorBody(17, attr(1, Buffer.from('Route exists\0'))));
    expect(readAnswer(buf, buf.length, 7)).toEqual({ errno: 17, kernelMessage: 'Route exists', messages: [] });
  });

  it('from a kernel that echoes the whole request (no capped ACKs), the sentence is found after it', () => {
    const request = message(24, 0x405, 7, Buffer.alloc(12 + 8, 9));
    const body = Buffer.concat([errorBody(19).subarray(0, 4), request, attr(1, Buffer.from('No such device\0'))]);
    const buf = message(NLMSG_ERROR, 0x200, 7, body);
    expect(readAnswer(buf, buf.length, 7)).toEqual({ errno: 19, kernelMessage: 'No such device', messages: [] });
  });

  it('data messages before the ACK are kept; answers to another sequence number are skipped', () => {
    const stale = message(NLMSG_ERROR, 0, 6, errorBody(110));
    const link = message(RTM_NEWLINK, 0, 7, Buffer.alloc(16, 1));
    const ack = message(NLMSG_ERROR, 0x100, 7, errorBody(0));
    const buf = Buffer.concat([stale, link, ack]);
    const a = readAnswer(buf, buf.length, 7);
    expect(a.errno).toBe(0);
    expect(a.messages.map((m) => [m.type, m.body.length])).toEqual([[RTM_NEWLINK, 16]]);
  });

  it('a message running past what was received, or no end to the request, is an error, not a guess', () => {
    const ack = message(NLMSG_ERROR, 0, 7, errorBody(0));
    expect(() => readAnswer(ack, ack.length - 4, 7)).toThrow(/runs past the 32 received/);
    expect(() => readAnswer(ack, ack.length, 8)).toThrow(/no end to request 8/);
  });

  it('an addon built before native/netlink.cc gives no socket, so set-up falls back to ip', () => {
    expect(Rtnetlink.open({} as NativeAddon)).toBeNull();
  });

  it('NetlinkError names the operation, the errno by name and text, and the kernel\'s sentence', () => {
    const e = new NetlinkError('ip -6 route add 2001:db8::/64 dev t0 metric 1024', 17, 'Route exists');
    expect(e.message).toBe('rtnetlink: ip -6 route add 2001:db8::/64 dev t0 metric 1024: file already exists (EEXIST): Route exists');
    expect(e.code).toBe('EEXIST');
  });
});

const canRun = rootOrSkip();

describe.runIf(canRun)('rtnetlink set-up, read back with iproute2 (namespace)', () => {
  const set = new NamespaceSet('nl');
  let ns: Namespace;

  async function steps(list: Step[]): Promise<StepResult[]> {
    const out = await ns.exec(process.execPath, ['--import', import.meta.resolve('tsx'), STEPS, JSON.stringify(list)], { timeoutMs: 60_000 });
    return JSON.parse(out) as StepResult[];
  }
  /** The steps' values, or the first error thrown. */
  async function ok(list: Step[]): Promise<unknown[]> {
    const r = await steps(list);
    const failed = r.find((x) => 'error' in x);
    if (failed && 'error' in failed) throw new Error(`step failed: ${failed.error.message}`);
    return r.map((x) => ('ok' in x ? x.ok : undefined));
  }
  const route6 = async (...sel: string[]) => (await ns.ip(['-6', 'route', 'show', ...sel])).trim();

  beforeAll(async () => {
    await removeStaleNamespaces('nl');
    ns = await set.add('a');
    // persistent TUNs (no reader, so no carrier: routes through them show `linkdown`); no dummy
    // interfaces, which a container's kernel may lack
    for (const t of ['t0', 't1', 't7', 't8', 'd0', 'dn0']) await ns.ip(['tuntap', 'add', 'dev', t, 'mode', 'tun']);
  }, 60_000);

  afterAll(async () => {
    await set.destroy();
  });

  it('the addon built here has the rtnetlink calls, so openTunnel takes netlink; TUN6IN4_INTERFACE_SETUP=iproute2 forces ip', async () => {
    expect(await ok([{ op: 'interfaceSetup' }])).toEqual(['netlink']);
    const forced = await ns.exec('env', [`TUN6IN4_INTERFACE_SETUP=iproute2`, process.execPath, '--import', import.meta.resolve('tsx'), STEPS, JSON.stringify([{ op: 'interfaceSetup' }])]);
    expect(JSON.parse(forced)).toEqual([{ ok: 'iproute2' }]);
    const bad = await ns.exec('env', [`TUN6IN4_INTERFACE_SETUP=ioctl`, process.execPath, '--import', import.meta.resolve('tsx'), STEPS, JSON.stringify([{ op: 'interfaceSetup' }])]);
    expect(JSON.parse(bad)[0].error.message).toMatch(/TUN6IN4_INTERFACE_SETUP=ioctl is not valid; use netlink or iproute2/);
  }, 60_000);

  it('link index by name is the one ip link shows; a missing name is null', async () => {
    const [index, none] = await ok([{ op: 'linkIndex', name: 't0' }, { op: 'linkIndex', name: 'nothere0' }]);
    const shown = JSON.parse(await ns.ip(['-j', 'link', 'show', 'dev', 't0'])) as Array<{ ifindex: number }>;
    expect(index).toBe(shown[0].ifindex);
    expect(none).toBeNull();
  }, 60_000);

  it('addrgenmode none, MTU, multicast off and up: ip -d link shows each', async () => {
    await ok([{ op: 'addrGenModeNone', dev: 't0' }, { op: 'setLink', dev: 't0', set: { mtu: 1400, multicast: false, up: true } }]);
    const link = await ns.ip(['-d', 'link', 'show', 'dev', 't0']);
    expect(link).toMatch(/<[^>]*\bUP\b[^>]*>/);
    expect(link).not.toMatch(/<[^>]*\bMULTICAST\b[^>]*>/);
    expect(link).toMatch(/ mtu 1400 /);
    expect(link).toMatch(/addrgenmode none/);
    await ok([{ op: 'setLink', dev: 't0', set: { multicast: true, up: false } }]);
    const after = await ns.ip(['link', 'show', 'dev', 't0']);
    expect(after).toMatch(/<[^>]*\bMULTICAST\b[^>]*>/);
    expect(after).toMatch(/state DOWN/);
  }, 60_000);

  it('IPv6 addresses with their prefix length, the link-local among them, nodad; replacing one again is no error', async () => {
    await ok([
      { op: 'setLink', dev: 'd0', set: { up: true } },
      { op: 'replaceAddress', dev: 'd0', addr: '2001:db8:1::2/64', nodad: true },
      { op: 'replaceAddress', dev: 'd0', addr: 'fe80::c000:201/64', nodad: true },
      { op: 'replaceAddress', dev: 'd0', addr: '2001:db8:1::2/64', nodad: true },
    ]);
    const addrs = JSON.parse(await ns.ip(['-j', '-6', 'addr', 'show', 'dev', 'd0'])) as Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string; nodad?: boolean }> }>;
    const info = addrs[0].addr_info.map((a) => ({ local: a.local, prefixlen: a.prefixlen, scope: a.scope, nodad: a.nodad ?? false }));
    expect(info).toEqual(
      expect.arrayContaining([
        { local: '2001:db8:1::2', prefixlen: 64, scope: 'global', nodad: true },
        { local: 'fe80::c000:201', prefixlen: 64, scope: 'link', nodad: true },
      ]),
    );
    expect(info.filter((a) => a.local === '2001:db8:1::2')).toHaveLength(1);
    await ok([{ op: 'deleteAddress', dev: 'd0', addr: '2001:db8:1::2/64' }]);
    expect(await ns.ip(['-6', 'addr', 'show', 'dev', 'd0'])).not.toMatch(/2001:db8:1::2/);
  }, 60_000);

  it('routes to a prefix via a device with a metric, unreachable ones, the default via a gateway: ip -6 route shows each, and each delete removes it', async () => {
    await ok([
      { op: 'setLink', dev: 't1', set: { up: true } },
      { op: 'replaceAddress', dev: 't1', addr: '2001:db8:1::2/64', nodad: true },
      { op: 'addRoute', route: { dst: '2001:db8:20::/48', dev: 't1', metric: 1024 } },
      { op: 'addRoute', route: { dst: '2001:db8:30::/64', type: 'unreachable', metric: 4294967295 }, how: 'replace' },
      { op: 'addRoute', route: { dst: 'default', dev: 't1', via: '2001:db8:1::1', metric: 3333 } },
    ]);
    expect(await route6('2001:db8:20::/48')).toMatch(/^2001:db8:20::\/48 dev t1 metric 1024 /);
    expect(await route6('2001:db8:30::/64')).toMatch(/^unreachable 2001:db8:30::\/64 dev lo metric 4294967295 /);
    expect(await route6('default')).toMatch(/^default via 2001:db8:1::1 dev t1 metric 3333 /m);
    await ok([
      { op: 'deleteRoute', route: { dst: '2001:db8:20::/48', dev: 't1', metric: 1024 } },
      { op: 'deleteRoute', route: { dst: '2001:db8:30::/64', type: 'unreachable', metric: 4294967295 } },
      { op: 'deleteRoute', route: { dst: 'default', dev: 't1', via: '2001:db8:1::1', metric: 3333 } },
    ]);
    expect(await route6('2001:db8:20::/48')).toBe('');
    expect(await route6('2001:db8:30::/64')).toBe('');
    expect(await route6('default')).not.toMatch(/metric 3333/);
  }, 60_000);

  it('refusals come back as NetlinkError naming the operation and errno: a missing device, a duplicate route, a route that is not there, a device that is down (with the kernel\'s sentence)', async () => {
    const r = await steps([
      { op: 'setLink', dev: 'nothere0', set: { up: true } },
      { op: 'addRoute', route: { dst: '2001:db8:40::/64', dev: { name: 'ghost0', index: 999_999 }, metric: 1024 } },
      { op: 'setLink', dev: 'd0', set: { up: true } },
      { op: 'addRoute', route: { dst: '2001:db8:41::/64', dev: 'd0', metric: 1024 } },
      { op: 'addRoute', route: { dst: '2001:db8:41::/64', dev: 'd0', metric: 1024 } },
      { op: 'addRoute', route: { dst: '2001:db8:41::/64', dev: 'd0', metric: 1024 }, how: 'replace' },
      { op: 'deleteRoute', route: { dst: '2001:db8:42::/64', dev: 'd0', metric: 1024 } },
      { op: 'addRoute', route: { dst: '2001:db8:43::/64', dev: 'dn0', metric: 1024 } },
    ]);
    expect(r[0]).toEqual({ error: expect.objectContaining({ name: 'NetlinkError', code: 'ENODEV', operation: 'ip link show dev nothere0' }) });
    expect(r[1]).toEqual({ error: expect.objectContaining({ name: 'NetlinkError', code: 'ENODEV', operation: 'ip -6 route add 2001:db8:40::/64 dev ghost0 metric 1024' }) });
    expect(r[3]).toEqual({ ok: null });
    expect(r[4]).toEqual({ error: expect.objectContaining({ name: 'NetlinkError', code: 'EEXIST', operation: 'ip -6 route add 2001:db8:41::/64 dev d0 metric 1024' }) });
    expect((r[4] as { error: { message: string } }).error.message).toMatch(/^rtnetlink: ip -6 route add 2001:db8:41::\/64 dev d0 metric 1024: file already exists \(EEXIST\)/);
    expect(r[5]).toEqual({ ok: null });
    expect(r[6]).toEqual({ error: expect.objectContaining({ name: 'NetlinkError', code: 'ESRCH', operation: 'ip -6 route del 2001:db8:42::/64 dev d0 metric 1024' }) });
    // the kernel's own sentence (extended ACK), the one `ip` prints for the same refusal
    expect(r[7]).toEqual({ error: expect.objectContaining({ code: 'ENETDOWN', message: 'rtnetlink: ip -6 route add 2001:db8:43::/64 dev dn0 metric 1024: network is down (ENETDOWN): Nexthop device is not up' }) });
    const byIp = await ns.run('ip', ['-6', 'route', 'add', '2001:db8:43::/64', 'dev', 'dn0', 'metric', '1024']);
    expect(byIp.stderr).toMatch(/Nexthop device is not up/);
    expect(await route6('2001:db8:41::/64')).toMatch(/^2001:db8:41::\/64 dev d0 metric 1024 /);
  }, 60_000);

  it('one plan over netlink and over iproute2 leaves the same interface, addresses and routes; removeRoutes takes the unreachable ones away', async () => {
    const plan = (n: number) => ({
      mtu: 1480,
      multicast: n === 7,
      addresses: [`2001:db8:${n}0::2/64`, `fe80::c000:20${n}/64`],
      defaultRoute: { via: `2001:db8:${n}0::1`, metric: 5000 + n },
      ownPrefixes: [`2001:db8:${n}1::/64`, `2001:db8:${n}2::/48`],
      deviceRoutes: [`2001:db8:${n}3::/48`],
    });
    const [viaNetlink] = (await ok([{ op: 'configure', dev: 't7', plan: plan(7), setup: 'netlink' }])) as Array<{ setup: string }>;
    const [viaIp] = (await ok([{ op: 'configure', dev: 't8', plan: plan(8), setup: 'iproute2' }])) as Array<{ setup: string }>;
    expect(viaNetlink.setup).toBe('netlink');
    expect(viaIp.setup).toBe('iproute2');
    // what the kernel holds for each, the plan's numbers and the device's name made the same
    const seen = async (dev: string, n: number) => {
      const norm = (s: string) => s.replaceAll(`dev ${dev}`, 'dev DEV').replaceAll(`2001:db8:${n}`, '2001:db8:N').replaceAll(`fe80::c000:20${n}`, 'fe80::LL').replaceAll(`metric ${5000 + n}`, 'metric M').trim();
      const link = await ns.ip(['-d', 'link', 'show', 'dev', dev]);
      const flags = /<([^>]*)>/.exec(link)![1].split(',').filter((f) => f !== 'MULTICAST').sort();
      // (its first line is the link's, compared above)
      const addrs = norm((await ns.ip(['-6', 'addr', 'show', 'dev', dev])).replace(/^.*\n/, ''));
      const routes = norm(await ns.ip(['-6', 'route', 'show', 'dev', dev]));
      const unreachable = [norm(await route6(`2001:db8:${n}1::/64`)), norm(await route6(`2001:db8:${n}2::/48`))];
      return { flags, mtu: / mtu (\d+)/.exec(link)![1], addrgenmode: / addrgenmode (\S+)/.exec(link)?.[1], addrs, routes, unreachable };
    };
    const a = await seen('t7', 7);
    const b = await seen('t8', 8);
    expect(a).toEqual(b);
    expect(a.mtu).toBe('1480');
    expect(a.addrgenmode).toBe('none');
    expect(a.flags).toContain('UP');
    expect(a.routes).toMatch(/default via 2001:db8:N0::1 metric M/);
    expect(a.routes).toMatch(/2001:db8:N3::\/48 metric 1024/);
    expect(a.unreachable[0]).toMatch(/^unreachable 2001:db8:N1::\/64 dev lo metric 4294967295/);
    expect(a.unreachable[1]).toMatch(/^unreachable 2001:db8:N2::\/48 dev lo metric 4294967295/);
    expect(a.addrs).toMatch(/inet6 2001:db8:N0::2\/64 scope global nodad/);
    expect(a.addrs).toMatch(/inet6 fe80::LL\/64 scope link nodad/);
    // multicast as planned: left on where the plan says on, turned off where it says off
    expect(await ns.ip(['link', 'show', 'dev', 't7'])).toMatch(/MULTICAST/);
    expect(await ns.ip(['link', 'show', 'dev', 't8'])).not.toMatch(/MULTICAST/);

    await ok([{ op: 'removeRoutes', routes: { unreachable: ['2001:db8:71::/64', '2001:db8:72::/48'], setup: 'netlink' } }]);
    expect(await route6('2001:db8:71::/64')).toBe('');
    expect(await route6('2001:db8:72::/48')).toBe('');
    expect(await route6('2001:db8:81::/64')).toMatch(/^unreachable/);
  }, 120_000);

  it('a default route with the plan\'s metric already there is left alone and the plan says so, as with iproute2', async () => {
    // t7 holds a default route of metric 5007 (the test before)
    const plan = { mtu: 1480, multicast: true, addresses: ['2001:db8:50::2/64'], defaultRoute: { via: null, metric: 5007 }, ownPrefixes: [] };
    const [r] = (await ok([{ op: 'configure', dev: 't0', plan, setup: 'netlink' }])) as Array<{ defaultRouteSkipped?: string }>;
    expect(r.defaultRouteSkipped).toBe('an IPv6 default route with metric 5007 already exists; give another --default-route-metric or remove it');
    expect(await route6('default', 'metric', '5007')).toMatch(/dev t7/);
  }, 60_000);
});
