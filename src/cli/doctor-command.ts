/** `tun6in4 doctor`: prints each finding with its fix; exit 0 only if nothing failed. */
import { runDoctor, type DoctorOptions } from '../doctor/doctor.js';

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', info: 'info' } as const;

export async function runDoctorCommand(flags: DoctorOptions & { json?: boolean; config?: string }): Promise<void> {
  const { config, json, ...options } = flags;
  const brokers = config === undefined ? undefined : (await import('../daemon/config.js')).loadDaemonConfig(config).brokers ?? [];
  const findings = await runDoctor({ ...options, brokers });
  if (json) {
    process.stdout.write(`${JSON.stringify(findings, null, 2)}\n`);
  } else {
    for (const f of findings) {
      process.stdout.write(`${MARK[f.level]} ${f.check}: ${f.detail}\n`);
      if (f.fix) process.stdout.write(`     fix: ${f.fix}\n`);
    }
  }
  process.exit(findings.some((f) => f.level === 'fail') ? 1 : 0);
}
