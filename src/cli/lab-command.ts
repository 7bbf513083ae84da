/** `tun6in4 lab`: runs the lab and prints its report. */
import { formatLabReport, runLab } from '../lab/lab.js';
import type { LabMode } from '../lab/topology.js';

export async function runLabCommand(flags: { mode: LabMode; encap: 'none' | 'fou'; json?: boolean; transferMib: number }): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('tun6in4 lab: needs root (network namespaces, TUN devices and raw sockets); run it with sudo\n');
    process.exit(2);
  }
  const progress = flags.json ? undefined : (line: string) => process.stderr.write(`${line}\n`);
  const report = await runLab({ mode: flags.mode, encap: flags.encap, transferBytes: flags.transferMib * 1024 * 1024, progress });
  // On one terminal the progress lines already listed every check: the report does not repeat them.
  const sameTerminal = Boolean(process.stdout.isTTY && process.stderr.isTTY);
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatLabReport(report, { steps: !sameTerminal }));
  process.exit(report.interrupted ? 130 : report.passed ? 0 : 1);
}
