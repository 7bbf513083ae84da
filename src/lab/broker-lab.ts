/**
 * The broker lab: one `tun6in4 up -c` daemon terminating three tunnels on one TUN, three
 * tun6in4 clients, one of them behind a 1:1 NAT whose public address moves mid-run. The broker's
 * update API speaks HTTPS on its public address, with a certificate made for this run: what an
 * operator does (clients reach the API where they reach the tunnel; plain HTTP is for loopback
 * only, and the key must not cross a network in cleartext), the clients trusting it as they
 * would a private CA (NODE_EXTRA_CA_CERTS).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { queryControl } from '../daemon/control.js';
import type { TunnelView } from '../brokerd/service.js';
import { runCapture } from './netns.js';
import { ping6, tcpTransfer, type TransferResult } from './probes.js';
import { nodeProgram } from './scripts.js';
import { LabNetwork } from './topology.js';

export const BROKER_V4 = '192.0.2.1';
/** The broker host's own IPv6, outside its pool: what it pings from, and clients ping. */
export const BROKER_HOST_V6 = '2001:db8:ffff::1';
const POOL = '2001:db8::/36';
const API_PORT = 8641;

interface LabClient {
  id: string;
  /** Its IPv4 on its own link (inside the NAT for c3). */
  v4: string;
  link: string;
  routed: string;
}

const CLIENTS: LabClient[] = [
  { id: 'c1', v4: '198.51.100.1', link: '2001:db8:1::/64', routed: '2001:db8:100::/48' },
  { id: 'c2', v4: '198.51.100.65', link: '2001:db8:2::/64', routed: '2001:db8:200::/48' },
  { id: 'c3', v4: '203.0.113.10', link: '2001:db8:3::/64', routed: '2001:db8:300::/48' },
];

/**
 * c3's 1:1 NAT, before and after the move. The inside address moves too, as a VM's does when
 * its provider re-homes it: the client's updater runs when its local IPv4 changes, and cannot
 * see a public address that moves behind an unchanged inside one.
 */
export const LAB_NAT = {
  before: { inside: '203.0.113.10', public: '198.51.100.200' },
  after: { inside: '203.0.113.11', public: '198.51.100.201' },
};

const addrIn = (prefix: string, host: string) => prefix.replace(/::\/\d+$/, `::${host}`);

/** One tunnel as `tun6in4 broker list --json` showed it at the end of the run. */
export interface LabBrokerTunnel {
  id: string;
  remote: string | null;
  rxPackets: number;
  txPackets: number;
  drops: Record<string, number>;
}

export interface BrokerLabStep {
  name: string;
  ok: boolean;
  detail: string;
}

/** `tun6in4 <args>` from the lab's own process (the control socket is a path, seen from every namespace). */
async function cli(args: string[]): Promise<string> {
  const [cmd, pre] = nodeProgram('cli/main');
  return (await runCapture(cmd, [...pre, ...args], { timeoutMs: 60_000 })).stdout;
}

async function until<T>(what: string, timeoutS: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutS} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function natRules(inside: string, outside: string): string {
  return `table ip t6lab {
  chain pre { type nat hook prerouting priority -100; ip daddr ${outside} dnat to ${inside}; }
  chain post { type nat hook postrouting priority 100; ip saddr ${inside} snat to ${outside}; }
}
`;
}

export class BrokerLab {
  private constructor(
    readonly lab: LabNetwork,
    readonly dir: string,
    readonly control: string,
  ) {}

  /** Builds the network, the broker daemon, the three tunnels and the clients. */
  static async create(tag: string, say: (line: string) => void, record: (s: BrokerLabStep) => void): Promise<BrokerLab> {
    const dir = mkdtempSync(join(tmpdir(), 't6-brokerlab-'));
    const cert = join(dir, 'api.crt');
    const lab = await LabNetwork.create('broker', tag, { engineWrapper: { c3: ['env', `NODE_EXTRA_CA_CERTS=${cert}`] } }).catch((e) => {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    });
    const control = `/run/tun6in4/${lab.host('broker').name}.sock`;
    const b = new BrokerLab(lab, dir, control);
    try {
      await b.build(cert, say, record);
    } catch (e) {
      await b.destroy();
      throw e;
    }
    return b;
  }

  private async build(cert: string, say: (line: string) => void, record: (s: BrokerLabStep) => void): Promise<void> {
    const { lab, dir } = this;
    const wan = lab.host('wan');
    const broker = lab.host('broker');
    await wan.sysctl('net.ipv4.conf.all.rp_filter', '0');
    await wan.exec('nft', ['-f', '-'], { input: natRules(LAB_NAT.before.inside, LAB_NAT.before.public) });
    await broker.sysctl('net.ipv6.conf.all.forwarding', '1');
    await broker.ip(['-6', 'addr', 'add', `${BROKER_HOST_V6}/128`, 'dev', 'lo']);

    say('making the API certificate (openssl) and the broker daemon\'s configuration…');
    await runCapture('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', `/CN=${BROKER_V4}`, '-addext', `subjectAltName=IP:${BROKER_V4}`, '-keyout', join(dir, 'api.key'), '-out', cert,
    ]).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'ENOENT' ? new Error('the broker lab needs openssl (its API\'s certificate): apt-get install openssl, or bash scripts/setup.sh lab') : e;
    });
    chmodSync(join(dir, 'api.key'), 0o600);
    writeFileSync(
      join(dir, 'broker.toml'),
      `[control]\nsocket = "${this.control}"\n\n[broker.lab]\nlocal = "${BROKER_V4}"\npools = ["${POOL}"]\nstore = "lab.sqlite"\ntransport = "raw"\n\n[broker.lab.api]\nlisten = "${BROKER_V4}:${API_PORT}"\ncert = "api.crt"\nkey = "api.key"\n`,
      { mode: 0o600 },
    );
    await lab.startTun6in4('broker', ['up', '-c', join(dir, 'broker.toml')], this.control, 20, async () => (await this.list(), true));
    record({ name: 'broker daemon up (tun6in4 up -c)', ok: true, detail: `pool ${POOL}, store on SQLite, nic/update at https://${BROKER_V4}:${API_PORT}` });

    for (const c of CLIENTS) {
      const key = join(dir, `${c.id}.key`);
      writeFileSync(key, `lab-key-${c.id}-${process.pid}\n`, { mode: 0o600 });
      // c3 is parked until its own first nic/update says where it is
      const remote = c.id === 'c3' ? 'none' : c.v4;
      await cli(['broker', 'add', c.id, '--remote', remote, '--link', c.link, '--routed', c.routed, '--user', c.id, '--key-file', key, '--control', this.control]);
    }
    record({ name: 'tunnels provisioned (tun6in4 broker add, each with --user and --key-file)', ok: true, detail: CLIENTS.map((c) => `${c.id} ${c.id === 'c3' ? 'parked' : c.v4}`).join(', ') });

    writeFileSync(
      join(dir, 'c3.toml'),
      `[control]\nsocket = "/run/tun6in4/${lab.host('c3').name}.sock"\n\n[tunnels.c3]\nmode = "6in4"\nlocal = "auto"\nremote = "${BROKER_V4}"\naddress = "${addrIn(CLIENTS[2].link, '2')}/64"\nrouted = ["${CLIENTS[2].routed}"]\ndev = "tun0"\n# the lab moves the NAT: notice the new inside address within a second\nlocalCheckSeconds = 1\n\n[tunnels.c3.update]\nurl = "https://${BROKER_V4}:${API_PORT}/nic/update"\ntunnelId = "c3"\nusername = "c3"\nkeyFile = "c3.key"\n`,
      { mode: 0o600 },
    );
    await Promise.all(
      CLIENTS.map((c) =>
        c.id === 'c3'
          ? lab.startTun6in4('c3', ['up', '-c', join(dir, 'c3.toml')], `/run/tun6in4/${lab.host('c3').name}.sock`)
          : lab.startEngine(c.id, ['--mode', '6in4', '--local', c.v4, '--remote', BROKER_V4, '--address', `${addrIn(c.link, '2')}/64`, '--routed', c.routed]),
      ),
    );
    for (const c of CLIENTS) await lab.host(c.id).ip(['-6', 'addr', 'add', `${addrIn(c.routed, '1')}/128`, 'dev', 'lo']);
    record({ name: 'clients up', ok: true, detail: 'c1, c2: tun6in4 run; c3: tun6in4 up -c with the broker update' });
    await this.remoteOf('c3', LAB_NAT.before.public, 30);
    record({ name: 'c3 behind the NAT: its first nic/update gives the broker its public address', ok: true, detail: `parked → ${LAB_NAT.before.public} (the request's source: c3 sends no myip from its non-global ${LAB_NAT.before.inside})` });
  }

  /** The broker's tunnels, over its control socket (what `tun6in4 broker list --json` prints). */
  async list(): Promise<TunnelView[]> {
    const r = (await queryControl(this.control, `broker ${JSON.stringify({ op: 'list' })}`)) as { tunnels?: TunnelView[]; error?: string };
    if (!r.tunnels) throw new Error(r.error ?? 'no answer');
    return r.tunnels;
  }

  /** Waits until the broker has `remote` for tunnel `id`. */
  async remoteOf(id: string, remote: string, timeoutS: number): Promise<void> {
    await until(`tunnel ${id} at ${remote}`, timeoutS, async () => ((await this.list()).find((t) => t.id === id)?.remote === remote ? true : undefined));
  }

  /** Moves c3's public address: a new inside address and a new 1:1 mapping, as a re-homed VM gets. */
  async moveNat(): Promise<number> {
    const wan = this.lab.host('wan');
    const c3 = this.lab.host('c3');
    await wan.exec('nft', ['-f', '-'], { input: `delete table ip t6lab\n${natRules(LAB_NAT.after.inside, LAB_NAT.after.public)}` });
    await c3.ip(['addr', 'del', `${LAB_NAT.before.inside}/24`, 'dev', 'eth0']);
    await c3.ip(['addr', 'add', `${LAB_NAT.after.inside}/24`, 'dev', 'eth0']);
    await c3.ip(['route', 'add', 'default', 'via', '203.0.113.254']);
    const started = Date.now();
    await this.remoteOf('c3', LAB_NAT.after.public, 60);
    return (Date.now() - started) / 1000;
  }

  async destroy(): Promise<void> {
    await this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface Probe {
  name: string;
  from: string;
  to: string;
}

/** Every ping of a round: each client to its server and the broker host, the broker host to each client, client to client. */
export function brokerPings(): Probe[] {
  const out: Probe[] = [];
  for (const c of CLIENTS) {
    out.push({ name: `ping6 ${c.id} → its server ${addrIn(c.link, '1')}`, from: c.id, to: addrIn(c.link, '1') });
    out.push({ name: `ping6 ${c.id} → broker host ${BROKER_HOST_V6}`, from: c.id, to: BROKER_HOST_V6 });
    out.push({ name: `ping6 broker host → ${c.id} ${addrIn(c.link, '2')}`, from: 'broker', to: addrIn(c.link, '2') });
    out.push({ name: `ping6 broker host → ${c.id}'s routed ${addrIn(c.routed, '1')}`, from: 'broker', to: addrIn(c.routed, '1') });
  }
  for (const [a, b] of [[0, 1], [1, 2], [2, 0]]) {
    out.push({ name: `ping6 ${CLIENTS[a].id} → ${CLIENTS[b].id}'s routed ${addrIn(CLIENTS[b].routed, '1')} through the broker`, from: CLIENTS[a].id, to: addrIn(CLIENTS[b].routed, '1') });
  }
  return out;
}

/** One round of traffic: every ping, then a TCP transfer from c3 (behind the NAT) to the broker host. */
export async function brokerTrafficRound(lab: LabNetwork, when: string, bytes: number, record: (s: BrokerLabStep) => void, stop: () => boolean): Promise<TransferResult | null> {
  for (const p of brokerPings()) {
    if (stop()) return null;
    const r = await ping6(lab.host(p.from), p.to);
    record({ name: `${p.name} (${when})`, ok: r.ok, detail: `${r.received}/${r.transmitted} replies${r.rttAvgMs !== null ? `, rtt avg ${r.rttAvgMs} ms` : ''}` });
  }
  if (stop()) return null;
  const t = await tcpTransfer(lab.host('c3'), lab.host('broker'), BROKER_HOST_V6, bytes);
  record({
    name: `TCP ${bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(0)} MiB` : `${bytes} bytes`} c3 → broker host, sha256 at both ends (${when})`,
    ok: t.ok,
    detail: `${t.ok ? 'hashes match' : `MISMATCH (${t.receivedBytes} bytes)`}, ${t.mbitPerSecond.toFixed(0)} Mbit/s over ${t.seconds.toFixed(2)} s`,
  });
  return t;
}

/** The per-tunnel lines of the report, from `tun6in4 broker list --json` (the CLI, as an operator reads it). */
export async function brokerTunnelLines(control: string): Promise<LabBrokerTunnel[]> {
  const views = JSON.parse(await cli(['broker', 'list', '--json', '--control', control])) as TunnelView[];
  return views.map((v) => ({
    id: v.id,
    remote: v.remote,
    rxPackets: v.counters?.rxPackets ?? 0,
    txPackets: v.counters?.txPackets ?? 0,
    drops: Object.fromEntries(Object.entries(v.counters?.drops ?? {}).filter(([, n]) => n > 0)),
  }));
}
