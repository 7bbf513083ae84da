/** `tun6in4 check` and `tun6in4 show`: a configuration validated before it runs, and the one running. */
import { checkDaemonConfig, type ConfigCheck } from '../daemon/check.js';
import { ConfigFileError, formatDaemonConfig } from '../daemon/config.js';
import { findControlSocket, queryControl } from '../daemon/control.js';
import type { RunningConfig } from '../daemon/daemon.js';

/** Exit 0 with a summary, or throw (main prints one line and exits 2) naming the file, the field and the fix. */
export function runCheckCommand(file: string): void {
  let check: ConfigCheck;
  try {
    check = checkDaemonConfig(file);
  } catch (e) {
    // An error inside the file names only its field; a check is often one of several (a script
    // over /etc/tun6in4/*.toml), so the line names the file too.
    if (e instanceof ConfigFileError && e.path !== file) throw e.within(file);
    throw e;
  }
  process.stdout.write(formatCheck(check));
}

export function formatCheck({ file, format, config, notes }: ConfigCheck): string {
  const n = config.tunnels.length;
  const brokers = config.brokers ?? [];
  const nb = brokers.length;
  const lines = [`${file}: ok (${format.toUpperCase()}, ${n} tunnel${n === 1 ? '' : 's'}${nb ? `, ${nb} broker${nb === 1 ? '' : 's'}` : ''})`];
  for (const { name, spec } of config.tunnels) {
    const far = spec.mode === '6in4' ? ` -> ${spec.remote}` : spec.relay ? `, relay ${spec.relay}` : spec.role === 'relay' ? ', relay router' : '';
    const parts = [`${spec.mode} ${spec.local}${far}`];
    if (spec.address) parts.push(spec.address);
    if (spec.dev) parts.push(`dev ${spec.dev}`);
    if (spec.update) parts.push(`broker update (key file ${spec.update.keyFile} holds a key)`);
    lines.push(`  ${name}: ${parts.join(', ')}`);
  }
  for (const b of brokers) {
    const api = b.api ? `, API ${b.api.cert ? 'https' : 'http'}://${b.api.listen}${b.api.tokenFile ? ' (JSON with token)' : ''}` : '';
    lines.push(`  broker ${b.name}: ${b.transport === 'fou' ? `FOU port ${b.port}` : 'protocol 41'} on ${b.local}, pools ${b.pools.join(' ')}, store ${b.store}${b.dev ? `, dev ${b.dev}` : ''}${api}`);
  }
  const mode = `0${config.control.mode.toString(8).padStart(3, '0')}`;
  const daemon = [`control socket ${config.control.socket} (mode ${mode}${config.control.group ? `, group ${config.control.group}` : ''})`];
  if (config.metrics.listen) daemon.push(`metrics ${config.metrics.listen}`);
  if (config.user) daemon.push(`runs as ${config.user}${config.group ? `:${config.group}` : ''}`);
  lines.push(`  ${daemon.join(', ')}`);
  for (const n of notes) lines.push(`note: ${n}`);
  lines.push('nothing on this host was changed; apply with `systemctl reload tun6in4` or SIGHUP to the daemon');
  return `${lines.join('\n')}\n`;
}

export interface ShowFlags {
  config?: boolean;
  json?: boolean;
  control: string;
  controlExplicit: boolean;
}

/**
 * Prints the daemon's running configuration as a file `up -c` accepts: TOML (with a comment header
 * of what runs, unless `--config` asks for the bare file) or, with `--json`, JSON.
 */
export async function runShowCommand(flags: ShowFlags): Promise<void> {
  const socket = await findControlSocket(flags.control, flags.controlExplicit);
  const reply = (await queryControl(socket, 'config')) as RunningConfig | { error: string };
  if ('error' in reply) throw new Error(`the daemon at ${socket} cannot show its configuration: ${reply.error}`);
  const comments = flags.config || flags.json ? [] : describeRunning(reply);
  process.stdout.write(formatDaemonConfig(reply.config, flags.json ? 'json' : 'toml', comments));
}

function describeRunning(r: RunningConfig): string[] {
  const lines = [`Running configuration of tun6in4 pid ${r.pid}, applied ${r.appliedAt}, ${r.source ? `from ${r.source}` : 'from command-line flags'}`];
  if (r.controlSocket && r.controlSocket !== r.config.control.socket) lines.push(`control socket in use: ${r.controlSocket} (the configured one was taken)`);
  for (const t of r.tunnels) lines.push(`${t.tunnel}: ${t.dev} ${t.health}, local ${t.local}`);
  for (const f of r.failed) lines.push(`${f.tunnel}: not running: ${f.error}`);
  lines.push('Update keys are never shown, only the file that holds each.');
  return lines;
}
