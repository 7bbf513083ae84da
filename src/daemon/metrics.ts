/** Prometheus text exposition (format 0.0.4) of every tunnel's counters and health. */
import { DROP_REASONS, TRAFFIC_COUNTERS } from '../encap/counters.js';
import type { ManagedStatus } from './managed-tunnel.js';
import { PEERS_IN_STATUS } from '../host/status.js';
import type { DaemonBrokerStatus } from './brokers.js';

const HELP: Record<string, string> = {
  rx_packets: 'Inner IPv6 packets delivered to the TUN',
  rx_bytes: 'Inner IPv6 bytes delivered to the TUN',
  tx_packets: 'Inner IPv6 packets encapsulated toward the network',
  tx_bytes: 'Inner IPv6 bytes encapsulated toward the network',
};

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(tunnels: ManagedStatus[]): string {
  const out: string[] = [];
  for (const name of TRAFFIC_COUNTERS) {
    const metric = `tun6in4_${name}_total`;
    out.push(`# HELP ${metric} ${HELP[name] ?? name.replace(/_/g, ' ')}`, `# TYPE ${metric} counter`);
    for (const t of tunnels) out.push(`${metric}{tunnel="${esc(t.tunnel)}"} ${t.counters.traffic[name]}`);
  }
  out.push('# HELP tun6in4_drops_total Packets dropped, by reason', '# TYPE tun6in4_drops_total counter');
  for (const t of tunnels) for (const r of DROP_REASONS) out.push(`tun6in4_drops_total{tunnel="${esc(t.tunnel)}",reason="${r}"} ${t.counters.drops[r]}`);
  out.push('# HELP tun6in4_up 1 when the tunnel is up (keepalive answered or traffic seen), else 0', '# TYPE tun6in4_up gauge');
  for (const t of tunnels) out.push(`tun6in4_up{tunnel="${esc(t.tunnel)}",health="${t.health}"} ${t.health === 'up' ? 1 : 0}`);
  out.push('# HELP tun6in4_keepalive_rtt_seconds Last keepalive round-trip time', '# TYPE tun6in4_keepalive_rtt_seconds gauge');
  for (const t of tunnels) if (t.keepalive?.rttMs.last != null) out.push(`tun6in4_keepalive_rtt_seconds{tunnel="${esc(t.tunnel)}"} ${t.keepalive.rttMs.last / 1000}`);
  out.push('# HELP tun6in4_keepalive_loss_ratio Keepalive loss over the recent window', '# TYPE tun6in4_keepalive_loss_ratio gauge');
  for (const t of tunnels) if (t.keepalive?.lossPercent != null) out.push(`tun6in4_keepalive_loss_ratio{tunnel="${esc(t.tunnel)}"} ${t.keepalive.lossPercent / 100}`);
  out.push('# HELP tun6in4_tunnel_info Always 1: the tunnel\'s mode and outer transport (none = protocol 41, fou = Foo-over-UDP) as labels', '# TYPE tun6in4_tunnel_info gauge');
  for (const t of tunnels) out.push(`tun6in4_tunnel_info{tunnel="${esc(t.tunnel)}",mode="${t.mode}",encap="${t.transport?.encap ?? 'none'}"} 1`);
  out.push('# HELP tun6in4_mtu_bytes Configured tunnel MTU', '# TYPE tun6in4_mtu_bytes gauge');
  for (const t of tunnels) out.push(`tun6in4_mtu_bytes{tunnel="${esc(t.tunnel)}"} ${t.mtu}`);
  renderPeers(tunnels, out);
  renderAdvertise(tunnels, out);
  return `${out.join('\n')}\n`;
}

/**
 * 6to4 and 6rd peers: only the busiest few per tunnel (PEERS_IN_STATUS), so forged sources
 * cannot grow the label set. A peer that leaves the top (or the table) loses its series, and its
 * counters start over if it comes back: rate() reads that as a counter reset.
 */
function renderPeers(tunnels: ManagedStatus[], out: string[]): void {
  const withPeers = tunnels.filter((t) => t.peers);
  if (withPeers.length === 0) return;
  const series = (metric: string, help: string, type: string, rows: (t: ManagedStatus) => string[]) => {
    out.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} ${type}`);
    for (const t of withPeers) out.push(...rows(t).map((r) => `${metric}${r}`));
  };
  const label = (t: ManagedStatus, p: { ipv4: string; kind: string }) => `tunnel="${esc(t.tunnel)}",peer="${p.ipv4}",kind="${p.kind}"`;
  series('tun6in4_peer_packets_total', `Inner packets exchanged with a remote IPv4, the ${PEERS_IN_STATUS} busiest per 6to4/6rd tunnel`, 'counter', (t) =>
    t.peers!.top.flatMap((p) => [`{${label(t, p)},direction="rx"} ${p.rxPackets}`, `{${label(t, p)},direction="tx"} ${p.txPackets}`]),
  );
  series('tun6in4_peer_bytes_total', `Inner bytes exchanged with a remote IPv4, the ${PEERS_IN_STATUS} busiest per 6to4/6rd tunnel`, 'counter', (t) =>
    t.peers!.top.flatMap((p) => [`{${label(t, p)},direction="rx"} ${p.rxBytes}`, `{${label(t, p)},direction="tx"} ${p.txBytes}`]),
  );
  series('tun6in4_peer_drops_total', 'Packets from a remote IPv4 we dropped (status and trace give the reasons)', 'counter', (t) => t.peers!.top.map((p) => `{${label(t, p)}} ${p.dropsTotal}`));
  series('tun6in4_peer_table_entries', 'Remote IPv4s the peer table remembers now', 'gauge', (t) => [`{tunnel="${esc(t.tunnel)}"} ${t.peers!.tracked}`]);
  series('tun6in4_peer_table_evictions_total', 'Peers forgotten to make room for new ones (the table is bounded)', 'counter', (t) => [`{tunnel="${esc(t.tunnel)}"} ${t.peers!.evictions}`]);
}

/** Router advertisements on bridges (`advertise`): one series per tunnel and bridge. */
function renderAdvertise(tunnels: ManagedStatus[], out: string[]): void {
  const rows = tunnels.flatMap((t) => (t.advertise ?? []).map((a) => ({ t, a, l: `tunnel="${esc(t.tunnel)}",iface="${esc(a.iface)}"` })));
  if (rows.length === 0) return;
  out.push('# HELP tun6in4_ra_sent_total Router advertisements sent on a bridge (solicited: answering a router solicitation)', '# TYPE tun6in4_ra_sent_total counter');
  for (const { a, l } of rows) out.push(`tun6in4_ra_sent_total{${l},solicited="false"} ${a.counters.traffic.ra_sent - a.counters.traffic.ra_solicited}`, `tun6in4_ra_sent_total{${l},solicited="true"} ${a.counters.traffic.ra_solicited}`);
  out.push('# HELP tun6in4_rs_received_total Router solicitations heard on a bridge', '# TYPE tun6in4_rs_received_total counter');
  for (const { a, l } of rows) out.push(`tun6in4_rs_received_total{${l}} ${a.counters.traffic.rs_received}`);
  out.push('# HELP tun6in4_rs_dropped_total Router solicitations dropped by RFC 4861 6.1.1, by reason', '# TYPE tun6in4_rs_dropped_total counter');
  for (const { a, l } of rows) for (const [r, v] of Object.entries(a.counters.drops)) out.push(`tun6in4_rs_dropped_total{${l},reason="${r}"} ${v}`);
  out.push('# HELP tun6in4_ra_send_errors_total Router advertisements the kernel refused to send', '# TYPE tun6in4_ra_send_errors_total counter');
  for (const { a, l } of rows) out.push(`tun6in4_ra_send_errors_total{${l}} ${a.counters.traffic.send_errors}`);
}

/**
 * Brokers: a handful of series each, whatever the number of tunnels — the table's totals (each
 * number in its counters; a table of numbers, such as drops by reason, as one series per key)
 * and a series per tunnel only for the busiest few the table names, so a scrape of a broker
 * with 10,000 tunnels stays a few KB.
 */
export function renderBrokerMetrics(brokers: readonly DaemonBrokerStatus[]): string {
  if (brokers.length === 0) return '';
  const out: string[] = [];
  const name = (k: string) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^a-zA-Z0-9_]/g, '_').toLowerCase();
  out.push('# HELP tun6in4_broker_tunnels Tunnels in the broker\'s table', '# TYPE tun6in4_broker_tunnels gauge');
  for (const b of brokers) out.push(`tun6in4_broker_tunnels{broker="${esc(b.name)}"} ${b.tunnels}`);
  const totals = new Map<string, string[]>();
  for (const b of brokers) {
    for (const [k, v] of Object.entries(b.counters)) {
      if (typeof v === 'number') (totals.get(name(k)) ?? totals.set(name(k), []).get(name(k))!).push(`{broker="${esc(b.name)}"} ${v}`);
      else if (v && typeof v === 'object') {
        for (const [sub, n] of Object.entries(v as Record<string, unknown>)) {
          if (typeof n === 'number') (totals.get(name(k)) ?? totals.set(name(k), []).get(name(k))!).push(`{broker="${esc(b.name)}",key="${esc(sub)}"} ${n}`);
        }
      }
    }
  }
  for (const [k, rows] of totals) {
    const metric = `tun6in4_broker_${k}`;
    out.push(`# HELP ${metric} Broker total over every tunnel and none (${k.replace(/_/g, ' ')})`, `# TYPE ${metric} untyped`);
    for (const r of rows) out.push(`${metric}${r}`);
  }
  out.push('# HELP tun6in4_broker_busiest_packets_total Packets of the broker\'s busiest tunnels (only those: the rest are in the totals)', '# TYPE tun6in4_broker_busiest_packets_total counter');
  for (const b of brokers) for (const t of b.busiest.slice(0, BROKER_BUSIEST_IN_METRICS)) out.push(`tun6in4_broker_busiest_packets_total{broker="${esc(b.name)}",tunnel="${esc(t.id)}"} ${t.packets}`);
  return `${out.join('\n')}\n`;
}

/** Per-tunnel series at most per broker. */
export const BROKER_BUSIEST_IN_METRICS = 10;
