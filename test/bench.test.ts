/**
 * The macro benchmark harness, CI-sized (--quick: one 2-second run per measurement): it must
 * build the C reference, bring each forwarder up in its namespaces, measure, and write the
 * report, JSON and chart. A smoke check: numbers must exist and be positive, never fast enough
 * (timing on a shared machine is the benchmark's business, not a test's).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';

const canRun = rootOrSkip();
const MACRO = fileURLToPath(new URL('../bench/macro.ts', import.meta.url));
const MICRO = fileURLToPath(new URL('../bench/micro.ts', import.meta.url));

describe('npm run bench:micro -- --heap-only --check', () => {
  it('encapsulate, decapsulate, offload and the engine loop (6in4, 6to4, 6rd, dynamic PMTU; each way) allocate nothing per packet (the heap column)', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile(process.execPath, ['--expose-gc', '--import', 'tsx', MICRO, '--heap-only', ...args], { timeout: 240_000 }, (e, so, se) =>
          resolve({ code: e ? ((e as { code?: number }).code ?? -1) : 0, out: `${so}${se}` }),
        ),
      );
    const { code, out } = await run(['--check', '--json']);
    expect(out, out).not.toContain('bound');
    expect(code, out).toBe(0);
    const rows = (JSON.parse(out) as { results: Array<{ operation: string; bytesAllocatedPerPacket: number }> }).results;
    const engineRows = ['6in4', '6to4', '6rd', '6in4 pmtu dynamic'].flatMap((m) => [`engine ${m} tx`, `engine ${m} rx`]);
    expect(rows.map((r) => r.operation)).toEqual(expect.arrayContaining(['encapsulate', 'decapsulate', 'TSO segment', 'GRO merge', ...engineRows]));
    for (const r of rows) expect(r.bytesAllocatedPerPacket, r.operation).toBeLessThan(1);
  }, 300_000);
});

interface Stat {
  median: number;
}
interface Report {
  environment: { cpu: string; kernel: string; node: string };
  results: Array<{ forwarder: string; tcp1Gbps: Stat; udpPps: Stat; rttP50Ms: Stat; tcp1RatioToCBatched: number | null; udpRatioToBaseline: number | null; tcp1RatioToCFouOffload: number | null }>;
}

describe.runIf(canRun)('npm run bench:macro -- --quick (smoke)', () => {
  const out = mkdtempSync(join(tmpdir(), 'tun6in4-bench-'));
  afterAll(async () => {
    rmSync(out, { recursive: true, force: true });
    await removeStaleNamespaces('bench');
  });

  it('measures our engine (protocol 41 and FOU), the naive baseline and the C references, and writes report, JSON and chart', async () => {
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', MACRO, '--quick', '--only', 'tun6in4,naive-node,c-batched,tun6in4-fou,c-fou-offload', '--json', '--out', out], { timeout: 240_000, maxBuffer: 1 << 24 }, (e, so, se) =>
        e ? reject(new Error(`${e.message}\n${se}`)) : resolve(so),
      ),
    );
    const report = JSON.parse(stdout) as Report;
    expect(report.environment.node).toBe(process.version);
    expect(report.results.map((r) => r.forwarder)).toEqual(['tun6in4', 'tun6in4-fou', 'naive-node', 'c-batched', 'c-fou-offload']);
    for (const r of report.results) {
      expect(r.tcp1Gbps.median, r.forwarder).toBeGreaterThan(0);
      expect(r.udpPps.median, r.forwarder).toBeGreaterThan(0);
      expect(r.rttP50Ms.median, r.forwarder).toBeGreaterThan(0);
    }
    const ours = report.results[0];
    expect(ours.tcp1RatioToCBatched).toBeGreaterThan(0);
    expect(ours.udpRatioToBaseline).toBeGreaterThan(0);
    expect(report.results[1].tcp1RatioToCFouOffload).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'macro-latest.md'), 'utf8')).toContain('| tun6in4 |');
    expect(readFileSync(join(out, 'macro-latest.svg'), 'utf8')).toContain('<svg');
    expect(existsSync(join(out, 'macro-latest.json'))).toBe(true);
  }, 300_000);

  it('--node PATH runs our engine under that node (here Node 24 from scripts/runtime.sh), and the report names it', async () => {
    const node24 = execFileSync('bash', [fileURLToPath(new URL('../scripts/runtime.sh', import.meta.url)), 'node24'], { encoding: 'utf8', timeout: 300_000 }).trim();
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', MACRO, '--quick', '--only', 'tun6in4', '--node', node24, '--json', '--out', join(out, 'node24')], { timeout: 240_000, maxBuffer: 1 << 24 }, (e, so, se) =>
        e ? reject(new Error(`${e.message}\n${se}`)) : resolve(so),
      ),
    );
    const report = JSON.parse(stdout) as Report & { environment: { harnessNode: string } };
    expect(report.environment.node).toBe(execFileSync(node24, ['--version'], { encoding: 'utf8' }).trim());
    expect(report.environment.harnessNode).toBe(process.version);
    expect(report.results[0]).toMatchObject({ forwarder: 'tun6in4' });
    expect(report.results[0].tcp1Gbps.median).toBeGreaterThan(0);
  }, 300_000);
});
