/**
 * The lab: the README's main command. Builds a namespace network, runs our engine at every
 * tunnel endpoint, shows the tunnel working (ping6 both ways, a full-MTU packet, link-local,
 * multicast, a TCP transfer with an integrity check), collects every engine's counters, and
 * removes everything it made, also on Ctrl-C.
 */
import { cpus } from 'node:os';
import type { CountersSnapshot } from '../encap/counters.js';
import { queryControl } from '../daemon/control.js';
import type { DaemonStatus } from '../daemon/daemon.js';
import { BrokerLab, brokerTrafficRound, brokerTunnelLines, LAB_NAT, type LabBrokerTunnel } from './broker-lab.js';
import { removeStaleNamespaces } from './netns.js';
import { ping6, tcpTransfer, type PingOptions, type TransferResult } from './probes.js';
import { LabNetwork, type LabMode } from './topology.js';

export type LabEncap = 'none' | 'fou';

/** `tun6in4 run` flags that put both ends of the 6in4 lab on Foo-over-UDP. */
export function labFouArgs(extra: string[] = []): Record<string, string[]> {
  const fou = ['--encap', 'fou', '--encap-dport', String(LAB_FOU_PORT), ...extra];
  return { client: fou, broker: fou };
}

export interface LabStep {
  name: string;
  ok: boolean;
  detail: string;
}

export interface LabReport {
  mode: LabMode;
  /** How the tunnels carried IPv6: bare protocol 41 or Foo-over-UDP. */
  encap: LabEncap;
  /** Stopped early by Ctrl-C / SIGTERM: not a pass. */
  interrupted: boolean;
  passed: boolean;
  steps: LabStep[];
  transfer: TransferResult | null;
  counters: Record<string, CountersSnapshot | null>;
  /**
   * ICMPv4 errors each engine had taken in once every engine was up, relayed as ICMPv6 (R11) or
   * not relayable: the engines start together, so one end's first packets can reach another
   * before that engine listens, and the kernel there answers with an ICMPv4 unreachable.
   */
  icmpAtStart: Record<string, { relayed: number; notRelayable: number }>;
  cleanShutdown: Record<string, boolean>;
  /** Broker mode: every tunnel as `tun6in4 broker list --json` showed it at the end. */
  tunnels?: LabBrokerTunnel[];
  /** Broker mode: c3's public address before and after its NAT moved, and how long the broker took to follow. */
  nat?: { from: string; to: string; followedInSeconds: number | null };
  environment: { cpu: string; cores: number; node: string; kernel: string };
  durationSeconds: number;
}

export interface RunLabOptions {
  mode: LabMode;
  /** `fou`: the 6in4 lab over Foo-over-UDP (port 5555 both ends), as where protocol 41 is filtered. */
  encap?: LabEncap;
  transferBytes?: number;
  progress?: (line: string) => void;
}

interface PingStep {
  name: string;
  from: string;
  to: string;
  opts?: PingOptions;
  /** Multicast: replies come from every listener (ourselves too); success = one came from this address. */
  expectReplyFrom?: string;
  /** 6rd: the host whose engine must (via) or must not (notVia) carry this ping, by its counters. */
  via?: string;
  notVia?: string;
}

type TunnelLabMode = Exclude<LabMode, 'broker'>;

const PINGS: Record<TunnelLabMode, PingStep[]> = {
  '6in4': [
    { name: 'ping6 client → broker', from: 'client', to: '2001:db8:1::1' },
    { name: 'ping6 broker → client', from: 'broker', to: '2001:db8:1::2' },
    { name: 'ping6 filling the 1480-byte MTU, DF', from: 'client', to: '2001:db8:1::1', opts: { size: 1432, dontFragment: true } },
    { name: 'ping6 link-local (R17)', from: 'client', to: 'fe80::c633:6401%tun0' },
    { name: 'ping6 multicast ff02::1 across the link', from: 'client', to: 'ff02::1%tun0', expectReplyFrom: 'fe80::c633:6401' },
    { name: 'ping6 broker → routed /64', from: 'broker', to: '2001:db8:2::1' },
  ],
  '6to4': [
    { name: 'ping6 site1 → site2 (direct)', from: 'site1', to: '2002:c633:6407::1' },
    { name: 'ping6 site2 → site1 (direct)', from: 'site2', to: '2002:c000:201::1' },
    { name: 'ping6 site1 → native via relay', from: 'site1', to: '2001:db8:5::2' },
    { name: 'ping6 native → site1 via relay', from: 'native', to: '2002:c000:201::1' },
    { name: 'ping6 filling the 1480-byte MTU, DF', from: 'site1', to: '2002:c633:6407::1', opts: { size: 1432, dontFragment: true } },
  ],
  '6rd': [
    { name: 'ping6 ce1 → ce2 (direct, not via the BR)', from: 'ce1', to: '2001:db8:a280::1', notVia: 'br' },
    { name: 'ping6 ce2 → ce1 (direct, not via the BR)', from: 'ce2', to: '2001:db8:a140::1', notVia: 'br' },
    { name: 'ping6 ce1 → native via the BR', from: 'ce1', to: '2001:db8:5::2', via: 'br' },
    { name: 'ping6 native → ce2 via the BR', from: 'native', to: '2001:db8:a280::1', via: 'br' },
    { name: 'ping6 filling the 1480-byte MTU, DF', from: 'ce1', to: '2001:db8:a280::1', opts: { size: 1432, dontFragment: true } },
  ],
};

/** The lab's FOU port, both ends (Linux: `ip fou add port 5555 ipproto 41`). */
export const LAB_FOU_PORT = 5555;

/** The steps of a lab, with the MTU-filling ping sized for the transport (FOU's MTU is 8 bytes less). */
function pingsFor(mode: TunnelLabMode, encap: LabEncap): PingStep[] {
  if (encap === 'none') return PINGS[mode];
  return PINGS[mode].map((p) =>
    p.opts?.dontFragment ? { ...p, name: 'ping6 filling the 1472-byte FOU MTU, DF', opts: { ...p.opts, size: 1472 - 48 } } : p,
  );
}

const TRANSFER: Record<TunnelLabMode, { from: string; to: string; addr: string }> = {
  '6in4': { from: 'client', to: 'broker', addr: '2001:db8:1::1' },
  '6to4': { from: 'site1', to: 'site2', addr: '2002:c633:6407::1' },
  '6rd': { from: 'ce1', to: 'ce2', addr: '2001:db8:a280::1' },
};

/** A host's engine's counters so far, asked over its control socket. */
async function engineCounters(lab: LabNetwork, host: string): Promise<CountersSnapshot> {
  const s = (await queryControl(lab.engines.get(host)!.control, 'status')) as DaemonStatus;
  return s.tunnels[0].counters;
}

/** What every lab run shares: its checks as they pass or fail, and Ctrl-C. */
class LabRun {
  readonly started = Date.now();
  readonly steps: LabStep[] = [];
  interrupted = false;
  /** What a second Ctrl-C removes at once. */
  private teardown: (() => Promise<void>) | null = null;
  readonly record = (s: LabStep): void => {
    if (this.interrupted) return; // steps failing because we are tearing down are not results
    this.steps.push(s);
    this.say(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name}: ${s.detail}`);
  };
  private readonly onSignal = (): void => {
    if (this.interrupted) {
      // a second Ctrl-C: do not wait for the current step
      void (this.teardown?.() ?? Promise.resolve()).then(() => process.exit(130));
      return;
    }
    this.interrupted = true;
    this.say('interrupted: finishing the current step, then cleaning up (Ctrl-C again to stop now)');
  };

  constructor(readonly say: (line: string) => void) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  removesOnSecondSignal(teardown: () => Promise<void>): void {
    this.teardown = teardown;
  }

  end(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }

  recordShutdown(cleanShutdown: Record<string, boolean>): void {
    this.record({
      name: 'engines stopped cleanly on SIGTERM',
      ok: Object.values(cleanShutdown).every(Boolean),
      detail: Object.entries(cleanShutdown).map(([h, ok]) => `${h}: ${ok ? 'exit 0' : 'failed'}`).join(', '),
    });
  }

  get passed(): boolean {
    return !this.interrupted && this.steps.every((s) => s.ok);
  }

  get seconds(): number {
    return (Date.now() - this.started) / 1000;
  }
}

async function environment(): Promise<LabReport['environment']> {
  const kernel = (await import('node:os')).release();
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, kernel };
}

export async function runLab(o: RunLabOptions): Promise<LabReport> {
  await removeStaleNamespaces('lab');
  const encap = o.encap ?? 'none';
  if (encap === 'fou' && o.mode !== '6in4') throw new Error('the FOU lab is a 6in4 lab: FOU carries configured tunnels only');
  const say = o.progress ?? (() => undefined);
  if (o.mode === 'broker') return runBrokerLab(o, say);
  const mode = o.mode;
  const run = new LabRun(say);
  const { record } = run;
  say(`building the ${mode}${encap === 'fou' ? ' over FOU' : ''} lab (namespaces, veth, engines)…`);
  let lab: LabNetwork;
  try {
    lab = await LabNetwork.create(mode, 'lab', { engineArgs: encap === 'fou' ? labFouArgs() : undefined });
  } catch (e) {
    run.end();
    throw e;
  }
  run.removesOnSecondSignal(() => lab.destroy());
  let transfer: TransferResult | null = null;
  const counters: Record<string, CountersSnapshot | null> = {};
  const cleanShutdown: Record<string, boolean> = {};
  const icmpAtStart: LabReport['icmpAtStart'] = {};
  try {
    for (const host of lab.engines.keys()) {
      const c = await engineCounters(lab, host);
      icmpAtStart[host] = { relayed: c.traffic.icmp6_errors_relayed, notRelayable: c.drops.icmp4_not_relayable };
    }
    record({ name: 'engines up', ok: true, detail: [...lab.engines.values()].map((e) => `${e.host}: ${e.up.name} ${e.up.address}`).join('; ') });
    for (const p of pingsFor(mode, encap)) {
      if (run.interrupted) break;
      const watched = p.via ?? p.notVia;
      const before = watched ? (await engineCounters(lab, watched)).traffic.rx_packets : 0;
      const r = await ping6(lab.host(p.from), p.to, p.opts);
      let ok = p.expectReplyFrom ? r.output.includes(`from ${p.expectReplyFrom}`) : r.ok;
      let path = '';
      if (watched) {
        const carried = (await engineCounters(lab, watched)).traffic.rx_packets - before;
        ok &&= p.via ? carried >= r.received : carried === 0;
        path = `, ${watched} took in ${carried} packet${carried === 1 ? '' : 's'}`;
      }
      record({ name: p.name, ok, detail: `${r.received}/${r.transmitted} replies${r.duplicates ? ` (+${r.duplicates} dup)` : ''}${r.rttAvgMs !== null ? `, rtt avg ${r.rttAvgMs} ms` : ''}${path}` });
    }
    if (run.interrupted) throw new Error('interrupted');
    const t = TRANSFER[mode];
    const bytes = o.transferBytes ?? 64 * 1024 * 1024;
    transfer = await tcpTransfer(lab.host(t.from), lab.host(t.to), t.addr, bytes);
    record({
      name: `TCP ${fmtBytes(bytes)} ${t.from} → ${t.to}, sha256 at both ends`,
      ok: transfer.ok,
      detail: `${transfer.ok ? 'hashes match' : `MISMATCH sent ${transfer.sentSha256.slice(0, 16)} got ${transfer.receivedSha256.slice(0, 16)} (${transfer.receivedBytes} bytes)`}, ${transfer.mbitPerSecond.toFixed(0)} Mbit/s over ${transfer.seconds.toFixed(2)} s`,
    });
  } catch (e) {
    if (!run.interrupted) record({ name: 'lab run', ok: false, detail: (e as Error).message });
  } finally {
    await lab.stopAll();
    for (const [host, e] of lab.engines) {
      counters[host] = e.down?.counters ?? null;
      cleanShutdown[host] = e.down?.code === 0;
    }
    await lab.destroy();
    run.end();
  }
  run.recordShutdown(cleanShutdown);
  return {
    mode,
    encap,
    interrupted: run.interrupted,
    passed: run.passed,
    steps: run.steps,
    transfer,
    counters,
    icmpAtStart,
    cleanShutdown,
    environment: await environment(),
    durationSeconds: run.seconds,
  };
}

/**
 * The broker lab: the broker daemon and three clients (src/lab/broker-lab.ts); a round of traffic,
 * c3's NAT moving and the broker following its nic/update, the same round again.
 */
async function runBrokerLab(o: RunLabOptions, say: (line: string) => void): Promise<LabReport> {
  const run = new LabRun(say);
  const { record } = run;
  const bytes = o.transferBytes ?? 64 * 1024 * 1024;
  say('building the broker lab (namespaces, a 1:1 NAT, the broker daemon, three clients)…');
  let b: BrokerLab;
  try {
    b = await BrokerLab.create('lab', say, record);
  } catch (e) {
    run.end();
    throw e;
  }
  run.removesOnSecondSignal(() => b.destroy());
  let transfer: TransferResult | null = null;
  let tunnels: LabBrokerTunnel[] = [];
  const nat: NonNullable<LabReport['nat']> = { from: LAB_NAT.before.public, to: LAB_NAT.after.public, followedInSeconds: null };
  const counters: Record<string, CountersSnapshot | null> = {};
  const cleanShutdown: Record<string, boolean> = {};
  const stop = () => run.interrupted;
  try {
    transfer = await brokerTrafficRound(b.lab, 'before the move', bytes, record, stop);
    if (run.interrupted) throw new Error('interrupted');
    nat.followedInSeconds = await b.moveNat();
    record({
      name: `NAT moves c3's public address; its updater's nic/update moves the tunnel`,
      ok: true,
      detail: `${LAB_NAT.before.public} → ${LAB_NAT.after.public} (inside ${LAB_NAT.before.inside} → ${LAB_NAT.after.inside}); the broker had it ${nat.followedInSeconds.toFixed(1)} s after the move`,
    });
    transfer = (await brokerTrafficRound(b.lab, 'after the move', bytes, record, stop)) ?? transfer;
    tunnels = await brokerTunnelLines(b.control);
    const c3 = tunnels.find((t) => t.id === 'c3');
    record({ name: 'tun6in4 broker list: c3 at its new public address', ok: c3?.remote === LAB_NAT.after.public, detail: `c3 remote ${c3?.remote ?? 'missing'}` });
  } catch (e) {
    if (!run.interrupted) record({ name: 'lab run', ok: false, detail: (e as Error).message });
  } finally {
    await b.lab.stopAll();
    for (const [host, e] of b.lab.engines) {
      // the broker daemon runs no tunnel of its own: its traffic is in the per-tunnel lines
      if (host !== 'broker') counters[host] = e.down?.counters ?? null;
      cleanShutdown[host] = e.down?.code === 0;
    }
    await b.destroy();
    run.end();
  }
  run.recordShutdown(cleanShutdown);
  return {
    mode: 'broker',
    encap: 'none',
    interrupted: run.interrupted,
    passed: run.passed,
    steps: run.steps,
    transfer,
    counters,
    icmpAtStart: {},
    cleanShutdown,
    tunnels,
    nat,
    environment: await environment(),
    durationSeconds: run.seconds,
  };
}

function fmtBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(0)} MiB` : `${n} bytes`;
}

/**
 * The report as text. `steps: false` leaves the checks out (a terminal already showed each one
 * as it ran), except the failed ones, which the summary must not hide.
 */
export function formatLabReport(r: LabReport, opts: { steps?: boolean } = {}): string {
  const lines = [`tun6in4 lab (${r.mode}${r.encap === 'fou' ? ' over FOU' : ''}) — ${r.interrupted ? 'INTERRUPTED' : r.passed ? 'PASSED' : 'FAILED'} in ${r.durationSeconds.toFixed(1)} s`, ''];
  const all = opts.steps ?? true;
  for (const s of r.steps) if (all || !s.ok) lines.push(`  ${s.ok ? '✔' : '✘'} ${s.name}: ${s.detail}`);
  if (!all) lines.push(`  ${r.steps.filter((s) => s.ok).length} of ${r.steps.length} checks passed (each shown above as it ran)`);
  if (r.tunnels) {
    lines.push('', 'Tunnels at the broker (tun6in4 broker list --json):');
    for (const t of r.tunnels) {
      const drops = Object.entries(t.drops).map(([k, v]) => `${k}=${v}`).join(' ');
      lines.push(`  ${t.id}: remote ${t.remote ?? 'parked'}, rx ${t.rxPackets} packets, tx ${t.txPackets} packets${drops ? ` | drops: ${drops}` : ' | no drops'}`);
    }
  }
  lines.push('', 'Counters per engine (non-zero):');
  for (const [host, c] of Object.entries(r.counters)) {
    if (!c) {
      lines.push(`  ${host}: (no counters: the engine did not shut down cleanly)`);
      continue;
    }
    const traffic = Object.entries(c.traffic).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' ');
    const drops = Object.entries(c.drops).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' ');
    lines.push(`  ${host}: ${traffic || 'no traffic'}${drops ? ` | drops: ${drops}` : ' | no drops'}`);
    const atStart = r.icmpAtStart?.[host];
    const startup = [
      atStart?.relayed ? `icmp6_errors_relayed ${atStart.relayed} (relayed as ICMPv6, R11)` : '',
      atStart?.notRelayable ? `icmp4_not_relayable ${atStart.notRelayable} (not relayed: about a packet to a multicast group, such as a router solicitation)` : '',
    ].filter(Boolean);
    if (startup.length) {
      lines.push(`    at start-up, as expected: ${startup.join(' and ')}. The engines start together, so ${host}'s first packets reached an end whose engine was not listening yet, and that kernel answered with ICMPv4 unreachables.`);
    }
  }
  lines.push('', `Environment: ${r.environment.cpu}, ${r.environment.cores} cores, Node ${r.environment.node}, Linux ${r.environment.kernel}`, '');
  return lines.join('\n');
}
