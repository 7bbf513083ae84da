/** `tun6in4 lab`: runs the lab and prints its report. */
import { fstatSync } from 'node:fs';
import { formatLabReport, runLab } from '../lab/lab.js';
import type { LabMode } from '../lab/topology.js';

/**
 * Whether two descriptors write to one place (one terminal, one pipe, one file): checked by the
 * file they are open on, since `2>&1 | less` or a log capturing both is no terminal at all.
 */
export function sameDestination(a: number, b: number): boolean {
  try {
    const x = fstatSync(a);
    const y = fstatSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

export async function runLabCommand(flags: { mode: LabMode; encap: 'none' | 'fou'; json?: boolean; transferMib: number }): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('tun6in4 lab: needs root (network namespaces, TUN devices and raw sockets); run it with sudo\n');
    process.exit(2);
  }
  const progress = flags.json ? undefined : (line: string) => process.stderr.write(`${line}\n`);
  const report = await runLab({ mode: flags.mode, encap: flags.encap, transferBytes: flags.transferMib * 1024 * 1024, progress });
  // Where the progress lines went too, they already listed every check: the report does not repeat them.
  const progressShown = progress !== undefined && sameDestination(1, 2);
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatLabReport(report, { steps: !progressShown }));
  process.exit(report.interrupted ? 130 : report.passed ? 0 : 1);
}
