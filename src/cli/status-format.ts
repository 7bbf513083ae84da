/** Human-readable `tun6in4 status`. */
import type { CountersSnapshot } from '../encap/counters.js';
import type { DaemonStatus } from '../daemon/daemon.js';
import type { SixRdStatus } from '../host/status.js';

/** The derivation, so a wrong ISP parameter shows: 6rd prefix ‖ local's low bits = delegated prefix. */
function sixRdLine(local: string, relay: string | undefined, s: SixRdStatus): string {
  const domain = `6rd prefix ${s.prefix}, IPv4 mask length ${s.ipv4MaskLen}`;
  if (!s.relays.length) return `border relay at ${local}: ${domain}${s.ipv4Prefix ? ` (CEs in ${s.ipv4Prefix})` : ''}, own slot ${s.delegatedPrefix}`;
  const others = s.relays.length > 1 ? ` (of ${s.relays.join(', ')})` : '';
  return `${domain}; local ${local} → delegated ${s.delegatedPrefix}; BR ${relay}${others}`;
}

function ago(iso: string | null): string {
  if (!iso) return 'never';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return s < 120 ? `${s.toFixed(0)} s ago` : s < 7200 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}

export function formatStatus(d: DaemonStatus): string {
  const lines: string[] = [`tun6in4 daemon pid ${d.pid}, up since ${d.startedAt}${d.uid !== null ? `, uid ${d.uid}` : ''}`];
  if (d.lastReload) {
    const r = d.lastReload;
    const notes = [r.ok && r.error ? `, but ${r.error}` : '', r.restartNeeded?.length ? `; ${r.restartNeeded.join(', ')} changed: restart to apply (running on with the old values)` : ''].join('');
    lines.push(`last reload ${r.at}: ${r.ok ? `ok${notes}` : `refused: ${r.error}`}`);
  }
  for (const t of d.tunnels) {
    const ends =
      t.mode === '6in4'
        ? `local ${t.local}${t.localAuto ? ' (auto)' : ''} → remote ${t.remote}, peer ${t.peer}`
        : t.sixrd
          ? sixRdLine(t.local, t.relay, t.sixrd)
          : `local ${t.local}${t.relay ? `, relay ${t.relay}` : ', no relay'}`;
    lines.push('', `${t.tunnel} (${t.name}) ${t.mode} ${t.health.toUpperCase()}  ${t.address}  mtu ${t.mtu} (${t.pmtu})`, `  ${ends}`, `  tun I/O: ${t.tunIo.ioUring ? 'io_uring batches' : 'a syscall per packet'}${t.tunIo.offload ? `, offload (TSO/GRO${t.tunIo.udpOffload ? ', USO' : ''})` : ''}${t.tunIo.ioUringFallback ? ` (io_uring given up: ${t.tunIo.ioUringFallback})` : ''}`);
    const tr0 = t.transport;
    if (tr0?.encap === 'fou') {
      const off = [tr0.checksum === 'gso' ? 'UDP checksums on GSO sends' : tr0.checksum ? 'UDP checksums' : 'zero UDP checksums', tr0.gso ? 'UDP GSO' : 'no UDP GSO', tr0.gro ? 'UDP GRO' : 'no UDP GRO'].join(', ');
      lines.push(`  transport: Foo-over-UDP, port ${tr0.port} → ${tr0.dport} (${off})`);
    }
    if (t.relayFailovers !== undefined) {
      lines.push(`  BR failover: ${t.keepalive ? `${t.relayFailovers} so far` : 'off (give --peer, an address beyond the BR, to probe it)'}`);
    }
    if (t.keepalive) {
      const k = t.keepalive;
      lines.push(`  keepalive every ${k.intervalSeconds} s: rtt ${k.rttMs.last ?? '-'} ms (avg ${k.rttMs.average ?? '-'}), loss ${k.lossPercent ?? '-'}%, ${k.received}/${k.sent} answered, last reply ${ago(k.lastReplyAt)}`);
    }
    const tr = t.counters.traffic;
    lines.push(`  rx ${tr.rx_packets} packets / ${tr.rx_bytes} bytes (last ${ago(t.lastRxAt)}), tx ${tr.tx_packets} packets / ${tr.tx_bytes} bytes (last ${ago(t.lastTxAt)})`);
    const drops = Object.entries(t.counters.drops).filter(([, v]) => v > 0);
    lines.push(`  drops: ${drops.length ? drops.map(([k, v]) => `${k}=${v}`).join(' ') : 'none'}`);
    if (t.pathMtu.length) {
      const more = t.pathMtuCount > t.pathMtu.length ? ` (and ${t.pathMtuCount - t.pathMtu.length} more)` : '';
      lines.push(`  path MTU: ${t.pathMtu.map((p) => `${p.dst} ${p.mtu}`).join(', ')}${more}`);
    }
    if (t.peers) {
      const p = t.peers;
      lines.push(`  peers: ${p.tracked} remembered (of ${p.capacity}), ${p.evictions} evicted${p.top.length ? `; busiest ${p.top.length}:` : ''}`);
      for (const e of p.top) {
        const drops = Object.entries(e.drops).map(([k, v]) => `${k}=${v}`).join(' ');
        lines.push(`    ${e.ipv4.padEnd(15)} ${e.kind.padEnd(18)} rx ${e.rxPackets}/${e.rxBytes} B  tx ${e.txPackets}/${e.txBytes} B  last ${ago(e.lastSeen)}${e.icmpErrors ? `  icmp errors ${e.icmpErrors}` : ''}${drops ? `  drops ${drops}` : ''}`);
      }
    }
    for (const a of t.advertise ?? []) {
      const c = a.counters.traffic;
      const bad = Object.entries(a.counters.drops).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ');
      lines.push(
        `  advertising ${a.prefix} on ${a.iface} (mtu ${a.mtu}${a.rdnss.length ? `, dns ${a.rdnss.join(' ')}` : ''}): ${c.ra_sent} RAs (${c.ra_solicited} answering ${c.rs_received} RSs${bad ? `, dropped ${bad}` : ''}), last ${ago(a.lastRaAt)}${c.send_errors ? `, ${c.send_errors} send errors (last: ${a.lastError})` : ''}`,
      );
    }
    if (t.brokerUpdate) {
      const b = t.brokerUpdate;
      lines.push(`  broker update: ${b.outcome}${b.response ? ` ("${b.response}")` : ''} — ${b.detail}${b.nextRetryAt ? `, retry at ${b.nextRetryAt}` : ''}`);
    }
  }
  for (const b of d.brokers ?? []) {
    lines.push('', `broker ${b.name} (${b.dev}) ${b.transport === 'fou' ? 'FOU' : 'protocol 41'} on ${b.local}: ${b.tunnels} tunnel${b.tunnels === 1 ? '' : 's'}, store ${b.store}${b.api ? `, API ${b.api}` : ''}`);
    const totals = Object.entries(b.counters).flatMap(([k, v]) =>
      typeof v === 'number' ? (v > 0 ? [`${k}=${v}`] : []) : v && typeof v === 'object' ? Object.entries(v as Record<string, unknown>).filter(([, n]) => typeof n === 'number' && n > 0).map(([r, n]) => `${k}.${r}=${String(n)}`) : [],
    );
    lines.push(`  totals: ${totals.length ? totals.join(' ') : 'none yet'}`);
    if (b.busiest.length) lines.push(`  busiest: ${b.busiest.map((t) => `${t.id} ${t.packets}`).join(', ')} packets`);
    for (const r of b.refused) lines.push(`  stored but not running: ${r.id}: ${r.error}`);
  }
  for (const f of d.failed) lines.push('', `${f.tunnel} FAILED: ${f.error}`);
  return `${lines.join('\n')}\n`;
}

/** A tunnel's counters in one line: traffic each way, then only what is not zero. */
export function countersLine(c: CountersSnapshot): string {
  const { rx_packets, rx_bytes, tx_packets, tx_bytes, ...rest } = c.traffic;
  const nonZero = (o: Record<string, number>) => Object.entries(o).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`);
  const other = nonZero(rest);
  const drops = nonZero(c.drops);
  return `rx ${rx_packets} packets / ${rx_bytes} bytes, tx ${tx_packets} packets / ${tx_bytes} bytes${other.length ? `, ${other.join(' ')}` : ''}; drops: ${drops.length ? drops.join(' ') : 'none'}`;
}
