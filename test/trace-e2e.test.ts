/**
 * `tun6in4 trace` and the per-peer view against real engines, as root, inside namespaces these
 * tests create and remove: drops provoked with scapy (R14 in 6in4; R29, R30 and an unconfigured
 * relay in 6to4) and by the kernel (a Packet Too Big, R08), read back as trace lines and as
 * pcapng comments through tshark; a flood of forged peers against the bounded peer table.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryControl } from '../src/daemon/control.js';
import type { DaemonStatus } from '../src/daemon/daemon.js';
import { removeStaleNamespaces, type Namespace } from '../src/lab/netns.js';
import { ping6 } from '../src/lab/probes.js';
import { nodeProgram } from '../src/lab/scripts.js';
import { LabNetwork } from '../src/lab/topology.js';
import { ipv4Packet, ipv6Packet } from './helpers/packets.js';
import { rootOrSkip, scapySend, scapySendRaw, until } from './helpers/netlab.js';

const canRun = rootOrSkip() && spawnSync('tshark', ['--version']).status === 0;

interface TraceRun {
  child: ChildProcess;
  /** Settles when the trace exits: its exit code and both streams. */
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Resolves with the first line printed (so far or later) that matches. */
  line(re: RegExp): Promise<string>;
}

/** Starts `tun6in4 trace …` in a namespace and resolves once it follows the daemon (its "following" line). */
async function startTrace(ns: Namespace, control: string, args: string[]): Promise<TraceRun> {
  const [cmd, pre] = nodeProgram('cli/main');
  const child = ns.spawn(cmd, [...pre, 'trace', '--control', control, ...args]);
  let stdout = '';
  let stderr = '';
  const printed: string[] = [];
  const waiting: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  child.stdout!.on('data', (d) => (stdout += d));
  createInterface({ input: child.stdout! }).on('line', (l) => {
    printed.push(l);
    for (const w of waiting.filter((x) => x.re.test(l))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(l);
    }
  });
  const line = (re: RegExp) =>
    new Promise<string>((resolve) => {
      const seen = printed.find((l) => re.test(l));
      if (seen !== undefined) resolve(seen);
      else waiting.push({ re, resolve });
    });
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (l) => {
      stderr += `${l}\n`;
      if (l.includes('following')) resolve();
    });
    void exited.then(() => reject(new Error(`trace exited before following: ${stderr}`)));
  });
  return { child, exited, line };
}

function comments(file: string): string[] {
  const out = spawnSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.comment'], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`tshark: ${out.stderr}`);
  return out.stdout.trim().split('\n');
}

describe.runIf(canRun)('trace, 6in4', () => {
  let lab: LabNetwork;
  let control: string;

  beforeAll(async () => {
    await removeStaleNamespaces('trace');
    // no keepalive either side: the only traffic is what the tests send
    lab = await LabNetwork.create('6in4', 'trace', { engineArgs: { client: ['--mtu', '1400', '--keepalive', 'off'], broker: ['--keepalive', 'off'] } });
    control = lab.engines.get('client')!.control;
    // above the tunnel MTU, so the kernel hands the engine packets it must answer with Packet Too Big
    await lab.host('client').ip(['link', 'set', 'tun0', 'mtu', '1480']);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('R14: --drops shows only the wrong-source drops, with outer and inner addresses and the rule; --count stops it', async () => {
    const trace = await startTrace(lab.host('client'), control, ['--drops', '--count', '3']);
    // forwarded both ways, not shown
    expect((await ping6(lab.host('client'), '2001:db8:1::1', { count: 1 })).ok).toBe(true);
    await scapySend(lab.host('wan'), { outer_src: '198.51.100.99', outer_dst: '192.0.2.1', inner_src: '2001:db8:1::1', inner_dst: '2001:db8:1::2', echo_id: 0x7171, count: 3 });
    const r = await trace.exited;
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(l).toMatch(/^\d\d:\d\d:\d\d\.\d{6} tun0 rx   198\.51\.100\.99 > 192\.0\.2\.1 \| 2001:db8:1::1 > 2001:db8:1::2 icmp6 len \d+ \| drop rx_wrong_outer_source \(R14\)$/);
    }
  }, 60_000);

  it('without --drops every decision shows, forwards included; Ctrl-C ends it cleanly', async () => {
    const trace = await startTrace(lab.host('client'), control, []);
    await ping6(lab.host('client'), '2001:db8:1::1', { count: 1 });
    // the echo request (104 bytes inside) and its reply (124 with the outer header)
    await trace.line(/ tx   192\.0\.2\.1 > 198\.51\.100\.1 \| 2001:db8:1::2 > 2001:db8:1::1 icmp6 len 104 \| forward$/);
    await trace.line(/ rx   198\.51\.100\.1 > 192\.0\.2\.1 \| 2001:db8:1::1 > 2001:db8:1::2 icmp6 len 124 \| forward$/);
    trace.child.kill('SIGINT');
    expect((await trace.exited).code).toBe(0);
  }, 60_000);

  it('R08/R14: --pcapng writes the packets with their decisions as comments that tshark reads', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tun6in4-trace-')), 'drops.pcapng');
    const trace = await startTrace(lab.host('client'), control, ['--drops', '--count', '2', '--pcapng', file]);
    await ping6(lab.host('client'), '2001:db8:1::1', { count: 1, size: 1432, dontFragment: true, timeoutS: 1 });
    await scapySend(lab.host('wan'), { outer_src: '203.0.113.99', outer_dst: '192.0.2.1', inner_src: '2001:db8:1::1', inner_dst: '2001:db8:1::2', echo_id: 0x7272, count: 1 });
    const r = await trace.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`2 packets written to ${file}`);
    expect(comments(file)).toEqual([
      'tun0 tx: drop tx_too_big (R08), Packet Too Big mtu 1400 sent back',
      'tun0 rx 203.0.113.99 > 192.0.2.1: drop rx_wrong_outer_source (R14)',
    ]);
    // the packets themselves: what the Packet Too Big quoted, and the outer IPv4 as received
    const fields = spawnSync('tshark', ['-r', file, '-T', 'fields', '-e', 'ipv6.dst', '-e', 'ip.src', '-e', 'frame.len'], { encoding: 'utf8' });
    const rows = fields.stdout.trim().split('\n').map((l) => l.split('\t'));
    expect(rows[0]).toEqual(['2001:db8:1::1', '', '1480']);
    expect(rows[1].slice(0, 2)).toEqual(['2001:db8:1::2', '203.0.113.99']);
  }, 60_000);
});

describe.runIf(canRun)('trace and the peer view, 6to4', () => {
  let lab: LabNetwork;
  let control: string;
  const status = async () => (await queryControl(control, 'status')) as DaemonStatus;

  beforeAll(async () => {
    lab = await LabNetwork.create('6to4', 'trace6to4');
    control = lab.engines.get('site1')!.control;
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('R29/R30: a spoofed 6to4 source and a foreign destination prefix are traced with their rules', async () => {
    // no --count: the kernel's router solicitations (to ff02::2, R32) may be dropped meanwhile
    const trace = await startTrace(lab.host('site1'), control, ['--drops']);
    await scapySend(lab.host('wan'), { outer_src: '198.51.100.7', outer_dst: '192.0.2.1', inner_src: '2002:cb00:7199::1', inner_dst: '2002:c000:201::1', echo_id: 0x6060, count: 1 });
    await scapySend(lab.host('wan'), { outer_src: '198.51.100.7', outer_dst: '192.0.2.1', inner_src: '2002:c633:6407::1', inner_dst: '2002:cb00:7101::1', echo_id: 0x6161, count: 1 });
    await trace.line(/rx   198\.51\.100\.7 > 192\.0\.2\.1 \| 2002:cb00:7199::1 > 2002:c000:201::1 icmp6 len \d+ \| drop rx_6to4_spoofed_source \(R29\)$/);
    await trace.line(/rx   198\.51\.100\.7 > 192\.0\.2\.1 \| 2002:c633:6407::1 > 2002:cb00:7101::1 icmp6 len \d+ \| drop rx_6to4_not_our_prefix \(R30\)$/);
    trace.child.kill('SIGINT');
    const r = await trace.exited;
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.includes(' rx ') && !/drop rx_6to4_(spoofed_source|not_our_prefix)/.test(l))).toEqual([]);
  }, 60_000);

  it('status shows which relay answers: ours, and one relaying native traffic unasked; direct sites apart', async () => {
    expect((await ping6(lab.host('site1'), '2001:db8:5::2', { count: 2 })).ok).toBe(true);
    expect((await ping6(lab.host('site1'), '2002:c633:6407::1', { count: 2 })).ok).toBe(true);
    await scapySend(lab.host('wan'), { outer_src: '203.0.113.50', outer_dst: '192.0.2.1', inner_src: '2001:db8:5::2', inner_dst: '2002:c000:201::1', echo_id: 0x6262, count: 2 });
    const s = await until('the unconfigured relay in status', status, (st) => !!st.tunnels[0].peers?.top.some((p) => p.ipv4 === '203.0.113.50'));
    const by = Object.fromEntries(s.tunnels[0].peers!.top.map((p) => [p.ipv4, p]));
    expect(by['203.0.113.1']).toMatchObject({ kind: 'relay', rxPackets: 2, txPackets: 2 });
    expect(by['198.51.100.7']).toMatchObject({ kind: 'site', rxPackets: 2, txPackets: 2, drops: { rx_6to4_spoofed_source: 1, rx_6to4_not_our_prefix: 1 } });
    expect(by['203.0.113.50']).toMatchObject({ kind: 'unconfigured relay', rxPackets: 0, drops: { rx_6to4_not_from_relay: 2 } });
    const [cmd, pre] = nodeProgram('cli/main');
    const text = await lab.host('site1').exec(cmd, [...pre, 'status', '--control', control]);
    expect(text).toMatch(/peers: 3 remembered \(of 256\), 0 evicted; busiest 3:/);
    expect(text).toMatch(/203\.0\.113\.50 +unconfigured relay +rx 0\/0 B +tx 0\/0 B +last \d+ s ago +drops rx_6to4_not_from_relay=2/);
  }, 60_000);

  it('the peer table stays bounded under 300 forged peers: evictions counted, metrics keep 10 per tunnel', async () => {
    const spoofedBefore = (await status()).tunnels[0].counters.drops.rx_6to4_spoofed_source;
    const sources = [...Array.from({ length: 254 }, (_, h) => `203.0.113.${h + 1}`), ...Array.from({ length: 46 }, (_, h) => `198.51.100.${h + 100}`)];
    await scapySendRaw(
      lab.host('wan'),
      sources.map((src) => ({ bytes: ipv4Packet({ src, dst: '192.0.2.1', payload: ipv6Packet({ src: '2002:c633:64c8::1', dst: '2002:c000:201::1' }) }), count: 1 })),
    );
    // a 2002:: source none of them embeds (198.51.100.200): every one is a spoof
    const s = await until('300 forged packets counted', status, (st) => st.tunnels[0].counters.drops.rx_6to4_spoofed_source >= spoofedBefore + sources.length);
    const p = s.tunnels[0].peers!;
    expect(p.tracked).toBe(256);
    // 3 peers known before, 300 sources of which 2 were among them: 301 peers in 256 places
    expect(p.evictions).toBeGreaterThanOrEqual(301 - 256);
    expect(p.top.length).toBe(10);
    const metrics = ((await queryControl(control, 'metrics')) as { text: string }).text;
    expect(metrics.split('\n').filter((l) => l.startsWith('tun6in4_peer_packets_total{'))).toHaveLength(20);
    expect(metrics).toMatch(/tun6in4_peer_table_evictions_total\{tunnel="tun0"\} \d+/);
  }, 90_000);
});
