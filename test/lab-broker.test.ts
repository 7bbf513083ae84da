/**
 * `tun6in4 lab --mode broker` (issue 37 item 6), as root in the namespaces the lab makes: the
 * broker daemon, three clients, c3 behind a 1:1 NAT whose public address moves mid-run and whose
 * own broker update tells the broker; every check passes and the report carries the tunnels.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { formatLabReport, runLab } from '../src/lab/lab.js';
import { removeStaleNamespaces } from '../src/lab/netns.js';
import { rootOrSkip } from './helpers/netlab.js';

const canRun = rootOrSkip();

describe.runIf(canRun)('the broker lab', () => {
  beforeAll(() => removeStaleNamespaces('lab'));

  it('passes: traffic both ways through three tunnels before and after the NAT move, and the report lists the tunnels with c3 at its new address', async () => {
    const r = await runLab({ mode: 'broker', transferBytes: 4 << 20 });
    expect(r.steps.filter((s) => !s.ok)).toEqual([]);
    expect(r.passed).toBe(true);
    expect(r.steps.filter((s) => s.name.startsWith('TCP ')).map((s) => s.name)).toEqual([
      'TCP 4 MiB c3 → broker host, sha256 at both ends (before the move)',
      'TCP 4 MiB c3 → broker host, sha256 at both ends (after the move)',
    ]);
    expect(r.nat).toMatchObject({ from: '198.51.100.200', to: '198.51.100.201' });
    expect(r.tunnels?.map((t) => [t.id, t.remote])).toEqual([
      ['c1', '198.51.100.1'],
      ['c2', '198.51.100.65'],
      ['c3', '198.51.100.201'],
    ]);
    for (const t of r.tunnels!) {
      expect(t.rxPackets, `${t.id} rx`).toBeGreaterThan(0);
      expect(t.txPackets, `${t.id} tx`).toBeGreaterThan(0);
    }
    expect(r.cleanShutdown).toEqual({ broker: true, c1: true, c2: true, c3: true });
    const text = formatLabReport(r);
    expect(text).toMatch(/^tun6in4 lab \(broker\) — PASSED in [\d.]+ s$/m);
    expect(text).toMatch(/^ {2}c3: remote 198\.51\.100\.201, rx \d+ packets, tx \d+ packets \| /m);
  }, 180_000);
});
