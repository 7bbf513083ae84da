/**
 * Issue 22 item 9: `tun6in4 lab` on a terminal printed each check twice (live on stderr, then in
 * the report on stdout). Without steps the report keeps only the failed checks and a count.
 */
import { describe, expect, it } from 'vitest';
import { formatLabReport, type LabReport } from '../src/lab/lab.js';

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
  cleanShutdown: {},
  environment: { cpu: 'test cpu', cores: 2, node: 'v20', kernel: '6.1' },
  durationSeconds: 1,
} as LabReport;

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
});
