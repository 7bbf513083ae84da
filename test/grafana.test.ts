/**
 * contrib/grafana-dashboard.json reads only what the daemon exports: every metric and label a
 * query, a legend or a variable names appears in the daemon's own /metrics text (rendered here by
 * renderMetrics for a tunnel with every part present), so renaming a metric fails this test
 * instead of blanking a panel. And the dashboard shows what the issue asks for.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Counters } from '../src/encap/counters.js';
import type { ManagedStatus } from '../src/daemon/managed-tunnel.js';
import { renderMetrics } from '../src/daemon/metrics.js';

interface Target {
  expr: string;
  legendFormat?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Target[];
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(new URL('../contrib/grafana-dashboard.json', import.meta.url), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; definition?: string }> };
};

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['instance', 'job'];

// A tunnel with every optional part present (keepalive RTT and loss), so every family has samples;
// and a 6rd one with a peer, for the per-peer families.
const tunnel = {
  tunnel: 'he',
  health: 'up',
  mtu: 1480,
  counters: new Counters().snapshot(),
  keepalive: { rttMs: { last: 12.5, average: 12.5 }, lossPercent: 0 },
} as unknown as ManagedStatus;
const sixrd = {
  tunnel: 'six',
  health: 'idle',
  mtu: 1480,
  counters: new Counters().snapshot(),
  keepalive: null,
  peers: { tracked: 1, capacity: 4096, evictions: 0, top: [{ ipv4: '192.0.2.20', kind: 'ce', rxPackets: 3, txPackets: 2, rxBytes: 300, txBytes: 200, dropsTotal: 1, icmpErrors: 0, drops: {}, lastSeen: null }] },
} as unknown as ManagedStatus;
const text = renderMetrics([tunnel, sixrd]);
const exported = new Map<string, Set<string>>();
for (const m of text.matchAll(/^# TYPE (\S+) \S+$/gm)) exported.set(m[1], new Set(TARGET_LABELS));
for (const m of text.matchAll(/^(\w+)\{([^}]*)\} \S+$/gm)) {
  for (const l of m[2].matchAll(/(\w+)="/g)) exported.get(m[1])?.add(l[1]);
}

const allPanels = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
const panels = allPanels(dashboard.panels);
const queries = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr, legend: t.legendFormat ?? '' }))),
  ...dashboard.templating.list.filter((v) => v.type === 'query').map((v) => ({ where: `variable $${v.name}`, expr: v.definition!, legend: '' })),
];
const metricsIn = (expr: string) => [...expr.matchAll(/\btun6in4_\w+/g)].map((m) => m[0]);

describe('Grafana dashboard (contrib/grafana-dashboard.json)', () => {
  it('the daemon exports the families this test reads (renderMetrics parsed)', () => {
    expect([...exported.keys()]).toEqual(expect.arrayContaining(['tun6in4_rx_bytes_total', 'tun6in4_drops_total', 'tun6in4_up', 'tun6in4_keepalive_rtt_seconds']));
    expect(exported.get('tun6in4_drops_total')).toContain('reason');
  });

  it('every query references at least one metric, and only metrics the daemon exports', () => {
    expect(queries.length).toBeGreaterThan(10);
    for (const q of queries) {
      const names = metricsIn(q.expr);
      expect(names.length, `${q.where}: ${q.expr}`).toBeGreaterThan(0);
      for (const n of names) expect([...exported.keys()], `${q.where}: ${n}`).toContain(n);
    }
  });

  it('every label a query selects, groups by or puts in a legend is one those metrics carry', () => {
    for (const q of queries) {
      const carried = new Set(metricsIn(q.expr).flatMap((n) => [...(exported.get(n) ?? [])]));
      const used = [
        ...[...q.expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1].matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1])),
        ...[...q.expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((l) => l.trim())),
        ...[...q.legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]),
        // label_values(metric, label)
        ...[...q.expr.matchAll(/label_values\([^,]+,\s*(\w+)\)/g)].map((m) => m[1]),
      ];
      for (const l of used) expect([...carried], `${q.where}: label ${l} in ${q.expr}`).toContain(l);
    }
  });

  it('shows throughput, drops by reason, keepalive RTT and loss, and health', () => {
    const used = new Set(queries.flatMap((q) => metricsIn(q.expr)));
    for (const m of ['tun6in4_rx_bytes_total', 'tun6in4_tx_bytes_total', 'tun6in4_drops_total', 'tun6in4_keepalive_rtt_seconds', 'tun6in4_keepalive_loss_ratio', 'tun6in4_up']) expect(used, m).toContain(m);
    expect(queries.some((q) => /by \([^)]*reason/.test(q.expr))).toBe(true);
  });

  it('has panels for the per-peer metrics of 6to4 and 6rd tunnels (issue 22)', () => {
    const used = new Set(queries.flatMap((q) => metricsIn(q.expr)));
    for (const m of ['tun6in4_peer_packets_total', 'tun6in4_peer_drops_total']) expect(used, m).toContain(m);
  });

  it('panel ids are unique and every query panel uses the chosen data source', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels.filter((p) => p.targets)) expect(p.datasource?.uid, p.title).toBe('${datasource}');
  });
});
