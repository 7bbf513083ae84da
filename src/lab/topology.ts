/**
 * The lab networks, all on documentation addresses inside namespaces this run creates:
 *
 * 6in4:  client ── wan (router) ── broker        client 192.0.2.1, broker 198.51.100.1
 *        tunnel 2001:db8:1::2/64 ↔ 2001:db8:1::1/64, routed 2001:db8:2::/64 to the client
 *
 * 6to4:  site1 ── wan ── site2                   site1 192.0.2.1 (2002:c000:201::/48)
 *                  │                             site2 198.51.100.7 (2002:c633:6407::/48)
 *                relay ── native                 relay 203.0.113.1, native 2001:db8:5::2
 *
 * 6rd:   ce1 ── wan ── ce2                       6rd prefix 2001:db8:a000::/36, IPv4 mask length 25
 *                │                               (CEs in 192.0.2.0/25, 7 bits embedded, a /43 each)
 *               br ── native                     ce1 192.0.2.10 (2001:db8:a140::/43), from option 212
 *                                                ce2 192.0.2.20 (2001:db8:a280::/43), from flags
 *                                                br 203.0.113.1 (outside the CEs' /25), native 2001:db8:5::2
 *
 * broker: c1 ──┐                                 broker 192.0.2.1 (pool 2001:db8::/36, itself 2001:db8:ffff::1)
 *         c2 ── wan ── broker                    c1 198.51.100.1, c2 198.51.100.65 (a /26 each)
 *         c3 ──┘ (1:1 NAT in wan)                c3 203.0.113.10 inside, 198.51.100.200 outside;
 *                                                src/lab/broker-lab.ts starts every engine and moves the NAT
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { CountersSnapshot } from '../encap/counters.js';
import type { TunnelStatus } from '../host/status.js';
import { Namespace, NamespaceSet } from './netns.js';
import { nodeProgram } from './scripts.js';

/** The labs `tun6in4 lab --mode` runs: the three tunnel modes, and a broker with its clients. */
export const LAB_MODES = ['6in4', '6to4', '6rd', 'broker'] as const;
export type LabMode = (typeof LAB_MODES)[number];

/** The 6rd lab's domain, as DHCPv4 option 212 would hand it to ce1 (udhcpc's $ip6rd). */
export const LAB_6RD_DHCP = '25 36 2001:db8:a000:: 203.0.113.1';

interface HostPlan {
  role: string;
  /** `len` defaults to 24; the 6rd CEs share a /25 between them, so each gets a /28 of it. */
  v4?: { addr: string; gw: string; len?: number };
  /** `tun6in4 run` flags for this host's engine (without --dev). */
  engine?: string[];
}

const PLANS: Record<LabMode, HostPlan[]> = {
  '6in4': [
    {
      role: 'client',
      v4: { addr: '192.0.2.1', gw: '192.0.2.254' },
      engine: ['--mode', '6in4', '--local', '192.0.2.1', '--remote', '198.51.100.1', '--address', '2001:db8:1::2/64', '--routed', '2001:db8:2::/64'],
    },
    {
      role: 'broker',
      v4: { addr: '198.51.100.1', gw: '198.51.100.254' },
      engine: ['--mode', '6in4', '--local', '198.51.100.1', '--remote', '192.0.2.1', '--address', '2001:db8:1::1/64', '--no-default-route'],
    },
  ],
  '6to4': [
    {
      role: 'site1',
      v4: { addr: '192.0.2.1', gw: '192.0.2.254' },
      engine: ['--mode', '6to4', '--local', '192.0.2.1', '--relay', '203.0.113.1', '--allow-nonglobal'],
    },
    {
      role: 'site2',
      v4: { addr: '198.51.100.7', gw: '198.51.100.254' },
      engine: ['--mode', '6to4', '--local', '198.51.100.7', '--relay', '203.0.113.1', '--allow-nonglobal'],
    },
    {
      role: 'relay',
      v4: { addr: '203.0.113.1', gw: '203.0.113.254' },
      engine: ['--mode', '6to4', '--role', 'relay', '--local', '203.0.113.1', '--allow-nonglobal', '--no-default-route'],
    },
    { role: 'native' },
  ],
  '6rd': [
    {
      role: 'ce1',
      v4: { addr: '192.0.2.10', gw: '192.0.2.1', len: 28 },
      engine: ['--mode', '6rd', '--local', '192.0.2.10', '--6rd-dhcp', LAB_6RD_DHCP],
    },
    {
      role: 'ce2',
      v4: { addr: '192.0.2.20', gw: '192.0.2.17', len: 28 },
      engine: ['--mode', '6rd', '--local', '192.0.2.20', '--6rd-prefix', '2001:db8:a000::/36', '--ipv4-mask-len', '25', '--relay', '203.0.113.1'],
    },
    {
      role: 'br',
      v4: { addr: '203.0.113.1', gw: '203.0.113.254' },
      engine: ['--mode', '6rd', '--role', 'relay', '--local', '203.0.113.1', '--6rd-prefix', '2001:db8:a000::/36', '--ipv4-mask-len', '25', '--6rd-ipv4-prefix', '192.0.2.0/25', '--no-default-route'],
    },
    { role: 'native' },
  ],
  broker: [
    { role: 'broker', v4: { addr: '192.0.2.1', gw: '192.0.2.254' } },
    { role: 'c1', v4: { addr: '198.51.100.1', gw: '198.51.100.62', len: 26 } },
    { role: 'c2', v4: { addr: '198.51.100.65', gw: '198.51.100.126', len: 26 } },
    { role: 'c3', v4: { addr: '203.0.113.10', gw: '203.0.113.254' } },
  ],
};

/** The host that relays between the tunnels and native IPv6, when the lab has one. */
const RELAY_HOST: Record<LabMode, string | null> = { '6in4': null, '6to4': 'relay', '6rd': 'br', broker: null };

export interface EngineProcess {
  host: string;
  /** Its control socket, for `tun6in4 status --control`. */
  control: string;
  child: ChildProcess;
  /** The status the engine logged when its tunnel came up. */
  up: TunnelStatus;
  /** Filled when the engine exits: the counters it logged on the way down. */
  down?: { counters: CountersSnapshot; code: number | null; signal: string | null };
  logs: string[];
}

export interface LabOptions {
  /** Extra `tun6in4 run` flags per host role. */
  engineArgs?: Record<string, string[]>;
  /** Hosts whose engine the caller starts itself (e.g. from a config file). */
  skipEngines?: string[];
  /** Seconds to wait for an engine to come up. */
  startTimeoutS?: number;
  /** A command an engine is started under, per host role (e.g. one that installs a seccomp filter, then execs). */
  engineWrapper?: Record<string, string[]>;
}

/** Asks `ready` again each time it says no, until it says yes (true) or `gone` (false: the process exited). */
async function untilReady(ready: () => Promise<boolean>, gone: () => boolean): Promise<boolean> {
  while (!gone()) {
    if (await ready().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export class LabNetwork {
  readonly engines = new Map<string, EngineProcess>();

  private constructor(
    readonly mode: LabMode,
    readonly set: NamespaceSet,
    readonly hosts: Map<string, Namespace>,
  ) {}

  host(role: string): Namespace {
    const h = this.hosts.get(role);
    if (!h) throw new Error(`no host ${role} in the ${this.mode} lab`);
    return h;
  }

  /** Builds the namespaces and links, then starts an engine on every tunnel host. */
  static async create(mode: LabMode, tag: string, opts: LabOptions = {}): Promise<LabNetwork> {
    const set = new NamespaceSet(tag);
    const hosts = new Map<string, Namespace>();
    const lab = new LabNetwork(mode, set, hosts);
    try {
      const wan = await set.add('wan');
      hosts.set('wan', wan);
      for (const [role, wrapper] of Object.entries(opts.engineWrapper ?? {})) lab.wrapperOf.set(role, wrapper);
      await wan.sysctl('net.ipv4.ip_forward', '1');
      for (const plan of PLANS[mode]) {
        const ns = await set.add(plan.role);
        hosts.set(plan.role, ns);
        if (!plan.v4) continue;
        await set.link(ns, 'eth0', wan, `to-${plan.role}`);
        await ns.ip(['addr', 'add', `${plan.v4.addr}/${plan.v4.len ?? 24}`, 'dev', 'eth0']);
        await wan.ip(['addr', 'add', `${plan.v4.gw}/${plan.v4.len ?? 24}`, 'dev', `to-${plan.role}`]);
        await ns.ip(['route', 'add', 'default', 'via', plan.v4.gw]);
      }
      const relayHost = RELAY_HOST[mode];
      if (relayHost) {
        const relay = lab.host(relayHost);
        const native = lab.host('native');
        await set.link(relay, 'eth1', native, 'eth0');
        await relay.sysctl('net.ipv6.conf.all.forwarding', '1');
        await relay.ip(['-6', 'addr', 'add', '2001:db8:5::1/64', 'dev', 'eth1', 'nodad']);
        await native.ip(['-6', 'addr', 'add', '2001:db8:5::2/64', 'dev', 'eth0', 'nodad']);
        await native.ip(['-6', 'route', 'add', 'default', 'via', '2001:db8:5::1']);
      }
      await Promise.all(
        PLANS[mode].filter((p) => p.engine && !opts.skipEngines?.includes(p.role)).map((p) => {
          return lab.startEngine(p.role, [...p.engine!, ...(opts.engineArgs?.[p.role] ?? [])], opts.startTimeoutS ?? 20);
        }),
      );
      if (mode === '6in4' && lab.engines.has('broker')) {
        // The broker routes the client's /64 to it; the client uses an address of it on lo.
        await lab.routeClientPrefixAtBroker();
        await lab.host('client').ip(['-6', 'addr', 'add', '2001:db8:2::1/128', 'dev', 'lo']);
      }
      return lab;
    } catch (e) {
      await lab.destroy();
      throw e;
    }
  }

  private readonly argsOf = new Map<string, string[]>();
  private readonly wrapperOf = new Map<string, string[]>();

  /** Starts `tun6in4 run … --dev tun0` inside the host's namespace and waits for "tunnel up". */
  startEngine(role: string, args: string[], timeoutS = 20): Promise<EngineProcess> {
    const control = `/run/tun6in4/${this.host(role).name}.sock`;
    this.argsOf.set(role, args);
    return this.startTun6in4(role, ['run', '--dev', 'tun0', '--control', control, ...args], control, timeoutS);
  }

  /** Starts the host's engine again with the flags it last ran with (after a crash or a kill). */
  async restartEngine(role: string): Promise<EngineProcess> {
    const args = this.argsOf.get(role);
    if (!args) throw new Error(`no engine ran on ${role}`);
    const p = await this.startEngine(role, args);
    if (this.mode === '6in4' && role === 'broker') await this.routeClientPrefixAtBroker();
    return p;
  }

  /** 6in4: the broker routes the client's routed /64 through its tunnel (again after a restart). */
  private async routeClientPrefixAtBroker(): Promise<void> {
    await this.host('broker').ip(['-6', 'route', 'replace', '2001:db8:2::/64', 'via', '2001:db8:1::2', 'dev', 'tun0']);
  }

  /** Resident memory (kB), open fds and CPU time used so far (ms, user + system) of a host's engine process. */
  engineResources(role: string): { rssKb: number; fds: number; cpuMs: number } {
    const pid = this.engines.get(role)?.child.pid;
    if (!pid) throw new Error(`no engine on ${role}`);
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, in clock ticks of 1/100 s (USER_HZ)
    const cpuMs = (Number(f[11]) + Number(f[12])) * 10;
    return { rssKb: Number(/^VmRSS:\s+(\d+)/m.exec(st)?.[1] ?? 0), fds: readdirSync(`/proc/${pid}/fd`).length, cpuMs };
  }

  /**
   * Starts `tun6in4 <argv>` in the host's namespace and waits for its first "tunnel up", or, for
   * a daemon with no tunnel of its own (a broker), until `ready` says so.
   */
  async startTun6in4(role: string, argv: string[], control: string, timeoutS = 20, ready?: () => Promise<boolean>): Promise<EngineProcess> {
    const [cmd, pre] = nodeProgram('cli/main');
    const [wrap, ...wrapArgs] = [...(this.wrapperOf.get(role) ?? []), cmd];
    const child = this.host(role).spawn(wrap, [...wrapArgs, ...pre, ...argv]);
    const proc: EngineProcess = { host: role, control, child, up: undefined as unknown as TunnelStatus, logs: [] };
    this.engines.set(role, proc);
    const exited = new Promise<void>((resolve) =>
      child.on('exit', (code, signal) => {
        proc.down = { counters: proc.down?.counters ?? (undefined as unknown as CountersSnapshot), code, signal };
        resolve();
      }),
    );
    const lines = createInterface({ input: child.stderr! });
    const up = new Promise<void>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new Error(`engine on ${role} did not come up in ${timeoutS}s:\n${proc.logs.join('\n')}`));
      }, timeoutS * 1000);
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`engine on ${role} exited before coming up:\n${proc.logs.join('\n')}`));
      });
      lines.on('line', (line) => {
        proc.logs.push(line);
        let rec: { msg?: string; status?: TunnelStatus; counters?: CountersSnapshot };
        try {
          rec = JSON.parse(line);
        } catch {
          return;
        }
        if (rec.msg === 'tunnel up' && rec.status) {
          proc.up = rec.status;
          clearTimeout(timer);
          resolve();
        }
        if (rec.msg === 'tunnel down' && rec.counters) proc.down = { counters: rec.counters, code: null, signal: null };
      });
      if (ready) {
        void untilReady(ready, () => proc.down !== undefined || timedOut).then((ok) => {
          clearTimeout(timer);
          if (ok) resolve();
        });
      }
    });
    await up;
    return proc;
  }

  /** SIGTERMs the engine and waits for it to exit; returns what it logged on the way down. */
  async stopEngine(role: string, timeoutMs = 5000): Promise<EngineProcess> {
    const proc = this.engines.get(role);
    if (!proc) throw new Error(`no engine on ${role}`);
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      const gone = new Promise((resolve) => proc.child.once('exit', resolve));
      proc.child.kill('SIGTERM');
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
      await gone;
      clearTimeout(timer);
      // let the last stderr lines (the "tunnel down" record) be read
      await new Promise((r) => setImmediate(r));
    }
    return proc;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.engines.keys()].map((r) => this.stopEngine(r)));
  }

  /** Stops every engine and deletes every namespace of this lab. Never throws. */
  async destroy(): Promise<void> {
    await this.stopAll().catch(() => undefined);
    await this.set.destroy();
  }
}
