/**
 * `tun6in4 trace`: attach to the running daemon's control socket and follow its packet decisions,
 * one line each, or into a pcapng file whose packet comments carry the decisions.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { createInterface } from 'node:readline';
import { findControlSocket } from '../daemon/control.js';
import type { TraceLine } from '../daemon/trace-stream.js';
import { isoToMicros, pcapngInterface, pcapngPacket, pcapngSectionHeader } from '../daemon/pcapng.js';
import { formatTraceLine, traceDecision, type TraceRecord } from '../daemon/trace-record.js';

export interface TraceFlags {
  drops?: boolean;
  count?: number;
  pcapng?: string;
  json?: boolean;
  control: string;
  controlExplicit: boolean;
}

/** What Wireshark shows as the packet's comment: the direction, the outer addresses and the decision. */
export function pcapngComment(r: TraceRecord): string {
  // a tx packet dropped before an outer destination was chosen has no outer header to name
  const outer =
    r.direction === 'icmp' ? ` ICMPv4 ${r.icmp!.type}/${r.icmp!.code} about our packet to ${r.outerDst}` : r.outerSrc && r.outerDst ? ` ${r.outerSrc} > ${r.outerDst}` : r.outerSrc && r.direction === 'rx' ? ` from ${r.outerSrc}` : '';
  return `${r.tunnel ? `${r.tunnel} ` : ''}${r.direction}${outer}: ${traceDecision(r)}`;
}

export async function runTraceCommand(tunnel: string | undefined, flags: TraceFlags): Promise<void> {
  if (flags.count !== undefined && flags.count < 1) throw new Error('--count: give a number of decisions, 1 or more');
  const path = await findControlSocket(flags.control, flags.controlExplicit);
  const request = { ...(tunnel !== undefined ? { tunnel } : {}), drops: !!flags.drops, packets: flags.pcapng !== undefined };
  const toStdout = flags.pcapng === '-';
  const fd = flags.pcapng === undefined ? -1 : toStdout ? 1 : openSync(flags.pcapng, 'w', 0o600);
  // stdout through its stream (a pipe to wireshark may be non-blocking: no EAGAIN from writeSync)
  const put = (b: Buffer) => (toStdout ? process.stdout.write(b) : writeSync(fd, b));
  const say = (s: string) => process.stderr.write(`tun6in4 trace: ${s}\n`);
  let seen = 0;
  let lost = 0;
  let tunnels: string[] = [];

  const sock = createConnection(path);
  const done = new Promise<void>((resolve, reject) => {
    sock.on('error', (e: NodeJS.ErrnoException) => reject(new Error(`cannot reach the daemon at ${path}: ${e.code ?? e.message}`)));
    sock.on('close', () => resolve());
  });
  const finish = () => sock.destroy();
  process.once('SIGINT', finish);
  process.once('SIGTERM', finish);
  // `trace | head`: the reader went away; that is a normal way to stop
  process.stdout.on('error', finish);
  sock.on('connect', () => sock.write(`trace ${JSON.stringify(request)}\n`));

  let failure: Error | null = null;
  const lines = createInterface({ input: sock });
  lines.on('line', (text) => {
    if (sock.destroyed) return;
    let line: TraceLine;
    try {
      line = JSON.parse(text) as TraceLine;
    } catch {
      failure = new Error(`bad line from ${path}: ${text.slice(0, 200)}`);
      return finish();
    }
    if ('error' in line) {
      failure = new Error(line.error);
      return finish();
    }
    if ('trace' in line) {
      tunnels = line.trace.tunnels;
      if (fd >= 0) {
        put(pcapngSectionHeader());
        for (const t of tunnels) put(pcapngInterface(t, line.trace.snapLen));
      }
      say(`following ${tunnels.join(', ')}${line.trace.dropsOnly ? ' (drops only)' : ''}${fd >= 0 && !toStdout ? ` into ${flags.pcapng}` : ''}; Ctrl-C stops`);
      return;
    }
    if ('lost' in line) {
      lost += line.lost;
      say(`${line.lost} decisions not shown: this reader fell behind (the daemon kept forwarding)`);
      return;
    }
    if ('end' in line) {
      say(`the daemon ended the trace: ${line.end}`);
      return finish();
    }
    const r = line.event;
    if (fd >= 0) {
      const bytes = Buffer.from(line.packet ?? '', 'hex');
      put(pcapngPacket(Math.max(0, tunnels.indexOf(r.tunnel)), isoToMicros(r.time), bytes, r.length, pcapngComment(r)));
    } else {
      process.stdout.write(`${flags.json ? JSON.stringify(r) : formatTraceLine(r)}\n`);
    }
    if (++seen === flags.count) finish();
  });

  await done;
  process.removeListener('SIGINT', finish);
  process.removeListener('SIGTERM', finish);
  if (fd > 1) closeSync(fd);
  if (failure) throw failure;
  if (fd >= 0 && !toStdout) say(`${seen} packets written to ${flags.pcapng}${lost ? `, ${lost} not captured (reader too slow)` : ''}`);
  else if (lost) say(`${lost} decisions not shown (reader too slow)`);
}
