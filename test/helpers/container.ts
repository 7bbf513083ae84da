/**
 * A Debian 12 container booted with systemd as PID 1 (systemd-nspawn), in a network namespace a
 * test made. The root file system comes from debootstrap once and is cached under
 * /var/cache/tun6in4-test/, keyed by what was asked of debootstrap; each boot puts a tmpfs
 * overlay over it (--volatile=overlay), so a run changes nothing in the cache and the next one
 * starts clean.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { runCapture } from '../../src/lab/netns.js';

export const ROOTFS_CACHE = '/var/cache/tun6in4-test';
const SUITE = 'bookworm';
const MIRROR = 'http://deb.debian.org/debian';
/** What the units need on a minimal Debian: systemd as init, D-Bus for systemctl, `ip`, and Node's libstdc++. */
export const ROOTFS_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'libstdc++6'];

/** The cached root file system, made by debootstrap (1–3 minutes) when this key has none yet. */
export async function cachedRootfs(): Promise<string> {
  const key = createHash('sha256').update(JSON.stringify({ SUITE, MIRROR, variant: 'minbase', ROOTFS_PACKAGES })).digest('hex').slice(0, 16);
  const dir = `${ROOTFS_CACHE}/${SUITE}-${key}`;
  if (existsSync(`${dir}/.complete`)) return dir;
  mkdirSync(ROOTFS_CACHE, { recursive: true });
  // Built aside and renamed into place: an interrupted run leaves no half tree under the key,
  // and two runs building at once both end with a complete one.
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const r = await runCapture('debootstrap', ['--variant=minbase', `--include=${ROOTFS_PACKAGES.join(',')}`, SUITE, tmp, MIRROR], { noThrow: true, timeoutMs: 900_000 });
  if (r.code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`debootstrap ${SUITE} from ${MIRROR} failed (exit ${r.code}); is the mirror reachable?\n${(r.stdout + r.stderr).split('\n').slice(-30).join('\n')}`);
  }
  writeFileSync(`${tmp}/.complete`, `${new Date().toISOString()} ${ROOTFS_PACKAGES.join(' ')}\n`);
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!existsSync(`${dir}/.complete`)) throw new Error(`${dir}: no complete root file system after debootstrap`);
  return dir;
}

/**
 * Containers of runs that died without powering theirs off: an nspawn whose --machine names a
 * run (`<prefix><pid>`) whose process is gone gets SIGTERM (in --boot mode, a clean poweroff).
 */
export function removeStaleContainers(prefix: string): void {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const argv = readFileSafe(`/proc/${d}/cmdline`).split('\0');
    if (!argv[0]?.endsWith('systemd-nspawn')) continue;
    const m = argv.map((a) => new RegExp(`^--machine=${prefix}(\\d+)$`).exec(a)).find(Boolean);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      try {
        process.kill(Number(d), 'SIGTERM');
      } catch {
        /* gone meanwhile */
      }
    }
  }
}

/** Partial trees of runs that died (their pid is gone). */
export function removeStalePartials(): void {
  let names: string[] = [];
  try {
    names = readdirSync(ROOTFS_CACHE);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /\.partial-(\d+)$/.exec(n);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      rmSync(`${ROOTFS_CACHE}/${n}`, { recursive: true, force: true });
    }
  }
}

export interface BootOptions {
  rootfs: string;
  /** A network namespace name under /run/netns. */
  netns: string;
  machine: string;
  /** host path → container path */
  bind?: Record<string, string>;
  bindRo?: Record<string, string>;
  timeoutMs?: number;
}

export class Container {
  private output: string[] = [];
  private exited: Promise<number | null>;

  private constructor(
    private readonly nspawn: ChildProcess,
    readonly machine: string,
  ) {
    const keep = (d: Buffer) => {
      this.output.push(...d.toString().split('\n'));
      if (this.output.length > 400) this.output.splice(0, this.output.length - 400);
    };
    nspawn.stdout!.on('data', keep);
    nspawn.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => nspawn.once('exit', (code) => resolve(code)));
  }

  /** The container's init as the host numbers it, for nsenter. */
  initPid = 0;

  /** What nspawn and the container's console printed last. */
  log(lines = 60): string {
    return this.output.slice(-lines).join('\n');
  }

  /**
   * Boots and waits until systemd says the system is running (or degraded: some unit of the
   * minimal image failed, which the tests do not depend on). A container that does not get there
   * fails with nspawn's and the console's last lines.
   */
  static async boot(o: BootOptions): Promise<Container> {
    const args = ['-D', o.rootfs, '--volatile=overlay', '--register=no', '--keep-unit', '--capability=CAP_NET_ADMIN', `--network-namespace-path=/run/netns/${o.netns}`, `--machine=${o.machine}`, '--console=pipe'];
    for (const [h, c] of Object.entries(o.bind ?? {})) args.push(`--bind=${h}:${c}`);
    for (const [h, c] of Object.entries(o.bindRo ?? {})) args.push(`--bind-ro=${h}:${c}`);
    args.push('--boot');
    const child = spawn('systemd-nspawn', args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, SYSTEMD_LOG_LEVEL: 'info' } });
    const c = new Container(child, o.machine);
    const deadline = Date.now() + (o.timeoutMs ?? 120_000);
    let dead: number | null | undefined;
    void c.exited.then((code) => (dead = code));
    let state = '';
    while (Date.now() < deadline) {
      if (dead !== undefined) throw new Error(`systemd-nspawn exited ${dead} before the container booted:\n${c.log()}`);
      if (!c.initPid) c.initPid = findInit(child.pid!);
      if (c.initPid) {
        const r = await c.run(['systemctl', 'is-system-running'], { timeoutMs: 10_000 });
        state = r.stdout.trim();
        if (state === 'running' || state === 'degraded') return c;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const jobs = c.initPid ? (await c.run(['systemctl', 'list-jobs', '--no-pager'], { timeoutMs: 10_000 })).stdout : '';
    await c.shutdown();
    throw new Error(`the container did not finish booting (systemctl is-system-running: "${state}"${c.initPid ? '' : ', init never seen'}); jobs:\n${jobs}\nnspawn and console:\n${c.log()}`);
  }

  /** A command in every namespace of the container (its root, pid, mount and network namespaces). */
  run(cmd: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCapture('nsenter', ['-t', String(this.initPid), '-a', '--', ...cmd], { timeoutMs: 60_000, ...opts, noThrow: true });
  }

  /** Like run, but throws with both streams when the command fails. */
  async exec(cmd: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
    const r = await this.run(cmd, opts);
    if (r.code !== 0) throw new Error(`in the container: ${cmd.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  async writeFile(path: string, text: string, mode = '0644'): Promise<void> {
    await this.exec(['sh', '-c', 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', 'sh', path, mode], { input: text });
  }

  /** `systemctl show -p <prop> --value <unit>` */
  async show(unit: string, prop: string): Promise<string> {
    return (await this.exec(['systemctl', 'show', '-p', prop, '--value', unit])).trim();
  }

  /**
   * Powers the container off (nspawn turns SIGTERM into a clean shutdown in --boot mode); if it is
   * still there after 30 s, kills its init, which ends every process in the container. Never throws.
   */
  async shutdown(): Promise<void> {
    if (this.nspawn.exitCode !== null || this.nspawn.signalCode !== null) return;
    this.nspawn.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000).unref())]);
    if (done) return;
    if (this.initPid) {
      try {
        process.kill(this.initPid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    this.nspawn.kill('SIGKILL');
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
  }
}

/** The process that is PID 1 in its own PID namespace and descends from nspawn; 0 until it exists. */
function findInit(nspawnPid: number): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${d}/status`, 'utf8');
    } catch {
      continue;
    }
    const ns = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/);
    if (!ns || ns.length < 2 || ns.at(-1) !== '1') continue;
    // Walk up a few parents: nspawn forks an intermediate child before the container's init.
    let pid = Number(d);
    for (let i = 0; i < 4 && pid > 1; i++) {
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(readFileSafe(`/proc/${pid}/status`))?.[1] ?? 0);
      if (ppid === nspawnPid) return Number(d);
      pid = ppid;
    }
  }
  return 0;
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
