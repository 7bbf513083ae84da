/**
 * `tun6in4 trace`: attach to the running daemon's control socket and follow its packet decisions,
 * one line each, or into a pcapng file whose packet comments carry the decisions.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { findControlSocket, unreachableMessage } from '../daemon/control.js';
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

/**
 * A pcapng file being written: a new file beside `path` (created exclusively, so nothing planted
 * there is followed or written through), renamed over `path` once the trace ends; a trace that
 * fails leaves nothing behind.
 */
class PcapngOutput {
  readonly fd: number;
  private readonly temp: string;

  constructor(readonly path: string) {
    this.temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      this.fd = openSync(this.temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (e) {
      throw new Error(`--pcapng: cannot create a file in ${dirname(path)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a path in a directory this user can write`);
    }
  }

  write(b: Buffer): void {
    writeSync(this.fd, b);
  }

  /** Puts the file in place (a symlink or file at `path` is replaced, never followed). */
  keep(): void {
    closeSync(this.fd);
    renameSync(this.temp, this.path);
  }

  discard(): void {
    closeSync(this.fd);
    rmSync(this.temp, { force: true });
  }
}

export async function runTraceCommand(tunnel: string | undefined, flags: TraceFlags): Promise<void> {
  if (flags.count !== undefined && flags.count < 1) throw new Error('--count: give a number of decisions, 1 or more');
  const path = await findControlSocket(flags.control, flags.controlExplicit);
  const request = { ...(tunnel !== undefined ? { tunnel } : {}), drops: !!flags.drops, packets: flags.pcapng !== undefined };
  const toStdout = flags.pcapng === '-';
  const file = flags.pcapng === undefined || toStdout ? null : new PcapngOutput(flags.pcapng);
  const pcapng = toStdout || file !== null;
  // stdout through its stream (a pipe to wireshark may be non-blocking: no EAGAIN from writeSync)
  const put = (b: Buffer) => (file ? file.write(b) : process.stdout.write(b));
  const say = (s: string) => process.stderr.write(`tun6in4 trace: ${s}\n`);
  let seen = 0;
  let lost = 0;
  let tunnels: string[] = [];

  const sock = createConnection(path);
  let failure: Error | null = null;
  const done = new Promise<void>((resolve) => {
    sock.on('error', (e: NodeJS.ErrnoException) => (failure ??= new Error(unreachableMessage(path, e))));
    sock.on('close', () => resolve());
  });
  const finish = () => sock.destroy();
  process.once('SIGINT', finish);
  process.once('SIGTERM', finish);
  // `trace | head`: the reader went away; that is a normal way to stop
  process.stdout.on('error', finish);
  sock.on('connect', () => sock.write(`trace ${JSON.stringify(request)}\n`));

  const lines = createInterface({ input: sock });
  // readline repeats the socket's errors; the socket's own handler has already taken them
  lines.on('error', () => undefined);
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
      if (pcapng) {
        put(pcapngSectionHeader());
        for (const t of tunnels) put(pcapngInterface(t, line.trace.snapLen));
      }
      say(`following ${tunnels.join(', ')}${line.trace.dropsOnly ? ' (drops only)' : ''}${file ? ` into ${file.path}` : ''}; Ctrl-C stops`);
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
    if (pcapng) {
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
  // A trace that never started (no daemon, refused) has no file to show for it.
  if (tunnels.length === 0) file?.discard();
  else file?.keep();
  if (failure) throw failure;
  if (file) say(`${seen} packets written to ${file.path}${lost ? `, ${lost} not captured (reader too slow)` : ''}`);
  else if (lost) say(`${lost} decisions not shown (reader too slow)`);
}
