/**
 * The lab's report. Issue 22 item 9: `tun6in4 lab` printed each check twice (live on stderr, then
 * in the report on stdout); without steps the report keeps only the failed checks and a count.
 * Issue 33: it still did whenever both streams went to one pipe or file, not a terminal (the
 * steps are now left out whenever stdout and stderr are one place); and a passing lab showed
 * ICMP counters from its own start-up with no word why.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { CountersSnapshot } from '../src/encap/counters.js';
import { sameDestination } from '../src/cli/lab-command.js';
import { formatLabReport, type LabReport } from '../src/lab/lab.js';
import { rootOrSkip } from './helpers/netlab.js';

const BIN = fileURLToPath(new URL('../bin/tun6in4.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 't6-labreport-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const report: LabReport = {
  mode: '6in4',
  encap: 'none',
  interrupted: false,
  passed: false,
  steps: [
    { name: 'ping client → broker', ok: true, detail: '3/3' },
    { name: 'tcp transfer', ok: false, detail: 'timed out' },
    { name: 'clean shutdown', ok: true, detail: 'all engines' },
  ],
  transfer: null,
  counters: {},
  icmpAtStart: {},
  cleanShutdown: {},
  environment: { cpu: 'test cpu', cores: 2, node: 'v20', kernel: '6.1' },
  durationSeconds: 1,
} as LabReport;

const counters = (traffic: Record<string, number>, drops: Record<string, number> = {}) => ({ traffic, drops }) as unknown as CountersSnapshot;

describe('lab report', () => {
  it('lists every check by default (stdout to a file or pipe)', () => {
    const text = formatLabReport(report);
    expect(text).toContain('✔ ping client → broker: 3/3');
    expect(text).toContain('✘ tcp transfer: timed out');
  });

  it('after live progress on the same terminal, names only the failed checks once and counts the rest', () => {
    const text = formatLabReport(report, { steps: false });
    expect(text).not.toContain('ping client → broker');
    expect(text.match(/tcp transfer/g)).toHaveLength(1);
    expect(text).toContain('2 of 3 checks passed (each shown above as it ran)');
  });

  it('says why a passing lab shows ICMP counters from its start-up, under the engine that has them', () => {
    const text = formatLabReport({
      ...report,
      counters: { client: counters({ rx_packets: 5 }), broker: counters({ rx_packets: 7, icmp6_errors_relayed: 1 }, { icmp4_not_relayable: 1 }) },
      icmpAtStart: { client: { relayed: 0, notRelayable: 0 }, broker: { relayed: 1, notRelayable: 1 } },
    });
    const lines = text.split('\n');
    const broker = lines.findIndex((l) => l.startsWith('  broker: '));
    expect(lines[broker]).toBe('  broker: rx_packets=7 icmp6_errors_relayed=1 | drops: icmp4_not_relayable=1');
    expect(lines[broker + 1]).toBe(
      "    at start-up, as expected: icmp6_errors_relayed 1 (relayed as ICMPv6, R11) and icmp4_not_relayable 1 (not relayed: about a packet to a multicast group, such as a router solicitation). The engines start together, so broker's first packets reached an end whose engine was not listening yet, and that kernel answered with ICMPv4 unreachables.",
    );
    expect(text.match(/at start-up/g)).toHaveLength(1);
  });

  it('the broker lab lists each tunnel from broker list --json: remote, packets each way, drops', () => {
    const text = formatLabReport({
      ...report,
      mode: 'broker',
      tunnels: [
        { id: 'c1', remote: '198.51.100.1', rxPackets: 40, txPackets: 37, drops: {} },
        { id: 'c3', remote: '198.51.100.201', rxPackets: 900, txPackets: 462, drops: { rx_source_not_tunnels: 2 } },
      ],
    });
    expect(text).toContain('tun6in4 lab (broker) — FAILED');
    expect(text).toContain('Tunnels at the broker (tun6in4 broker list --json):\n  c1: remote 198.51.100.1, rx 40 packets, tx 37 packets | no drops\n  c3: remote 198.51.100.201, rx 900 packets, tx 462 packets | drops: rx_source_not_tunnels=2\n');
    expect(formatLabReport(report)).not.toContain('Tunnels at the broker');
  });

  it('explains nothing when the ICMP came later, during the checks', () => {
    const text = formatLabReport({ ...report, counters: { broker: counters({ icmp6_errors_relayed: 3 }) }, icmpAtStart: { broker: { relayed: 0, notRelayable: 0 } } });
    expect(text).toContain('  broker: icmp6_errors_relayed=3 | no drops');
    expect(text).not.toContain('at start-up');
  });
});

describe('sameDestination: where the progress lines and the report both go', () => {
  it('one file opened twice is one place; two files are two', () => {
    const a = openSync(join(dir, 'a'), 'w');
    const a2 = openSync(join(dir, 'a'), 'a');
    const b = openSync(join(dir, 'b'), 'w');
    try {
      expect(sameDestination(a, a2)).toBe(true);
      expect(sameDestination(a, b)).toBe(false);
      expect(sameDestination(a, 9999)).toBe(false);
    } finally {
      for (const fd of [a, a2, b]) closeSync(fd);
    }
  });
});

describe.runIf(rootOrSkip())('tun6in4 lab with stdout and stderr in one file (2>&1, no terminal)', () => {
  it('prints each check once', () => {
    const out = join(dir, 'lab.log');
    const fd = openSync(out, 'w');
    let status: number | null;
    try {
      status = spawnSync(process.execPath, [BIN, 'lab', '--transfer-mib', '1'], { stdio: ['ignore', fd, fd], timeout: 120_000 }).status;
    } finally {
      closeSync(fd);
    }
    const text = readFileSync(out, 'utf8');
    expect(status, text).toBe(0);
    for (const check of ['engines up', 'ping6 client → broker', 'ping6 link-local (R17)', 'engines stopped cleanly on SIGTERM']) {
      expect(text.split('\n').filter((l) => l.includes(`${check}:`)), check).toHaveLength(1);
    }
    expect(text).toMatch(/^ {2}\d+ of \d+ checks passed \(each shown above as it ran\)$/m);
  }, 150_000);
});
