/**
 * A real Docker daemon (Debian's docker.io) inside a test namespace: started with `nsenter
 * --net=` so it sees the host's cgroup mounts but only the namespace's network, with its own data
 * root, exec root, socket and pid file under a per-run directory; and a busybox image made with
 * `docker import` from Debian's busybox-static, since no image registry is reachable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCapture, type Namespace } from '../../src/lab/netns.js';
import { until } from './netlab.js';

/** Debian's client, matching Debian's daemon (another docker CLI may be first on PATH). */
export const DOCKER_CLI = '/usr/bin/docker';
export const BUSYBOX_IMAGE = 't6-busybox:test';

export class DockerInNamespace {
  private constructor(
    readonly dir: string,
    readonly socket: string,
    private readonly child: ChildProcess,
    private readonly log: () => string,
  ) {}

  /**
   * Starts dockerd in `ns` with `extraArgs` and `daemonJson` as its daemon.json, and waits until it answers. Debian 20.10's defaults
   * otherwise: iptables on, ip6tables off (as a user's host would have them).
   */
  static async start(ns: Namespace, extraArgs: string[] = [], daemonJson: Record<string, unknown> = {}): Promise<DockerInNamespace> {
    const dir = mkdtempSync(join(tmpdir(), `t6-docker-${process.pid}-`));
    const socket = join(dir, 'docker.sock');
    // a daemon.json of its own: the host's /etc/docker/daemon.json must not change what is tested
    writeFileSync(join(dir, 'daemon.json'), `${JSON.stringify(daemonJson)}\n`);
    // no default bridge unless the test gives it an address (`bip`): Docker's own pick is 172.17/16
    const bridge = daemonJson.bip === undefined ? ['--bridge', 'none'] : [];
    // vfs: no overlay mounts left behind if a run is killed; the image is 2 MB
    const args = [`--net=/run/netns/${ns.name}`, 'dockerd', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '-H', `unix://${socket}`, '--pidfile', join(dir, 'docker.pid'), '--config-file', join(dir, 'daemon.json'), '--storage-driver', 'vfs', ...bridge, ...extraArgs];
    const child = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout!.on('data', (d) => (log += d));
    child.stderr!.on('data', (d) => (log += d));
    const d = new DockerInNamespace(dir, socket, child, () => log);
    try {
      await until('dockerd to answer', () => d.docker(['info', '--format', '{{.ServerVersion}}']), (v) => v.trim().length > 0, 60_000, 300);
    } catch (e) {
      await d.stop();
      throw new Error(`dockerd did not start in ${ns.name}: ${(e as Error).message}\n${log.split('\n').filter((l) => /level=(error|fatal)|failed/i.test(l)).slice(-20).join('\n')}`);
    }
    return d;
  }

  /** Runs the Docker CLI against this daemon; throws with stderr on failure. */
  async docker(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await runCapture(DOCKER_CLI, ['-H', `unix://${this.socket}`, ...args], { timeoutMs: opts.timeoutMs ?? 60_000 });
    return r.stdout;
  }

  /** An image holding only Debian's static busybox (its applets as links) and `/www/index.html` saying `page`. */
  async importBusybox(page: string): Promise<void> {
    const root = join(this.dir, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    mkdirSync(join(root, 'www'), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    for (const applet of ['sh', 'ip', 'ping', 'httpd', 'wget', 'nc', 'sleep', 'cat']) symlinkSync('busybox', join(root, 'bin', applet));
    writeFileSync(join(root, 'www/index.html'), page);
    await runCapture('bash', ['-c', `tar -C '${root}' -c . | '${DOCKER_CLI}' -H 'unix://${this.socket}' import - ${BUSYBOX_IMAGE}`], { timeoutMs: 60_000 });
  }

  daemonLog(): string {
    return this.log();
  }

  /** Removes every container and user-defined network, stops dockerd (SIGTERM, then SIGKILL) and deletes its directory. Never throws. */
  async stop(): Promise<void> {
    const ids = await this.docker(['ps', '-aq'], { timeoutMs: 20_000 }).catch(() => '');
    if (ids.trim()) await this.docker(['rm', '-f', ...ids.trim().split(/\s+/)], { timeoutMs: 30_000 }).catch(() => undefined);
    // dockerd leaves its networks' bridges (and their routes) behind when it exits
    const nets = await this.docker(['network', 'ls', '-q', '--filter', 'type=custom'], { timeoutMs: 20_000 }).catch(() => '');
    if (nets.trim()) await this.docker(['network', 'rm', ...nets.trim().split(/\s+/)], { timeoutMs: 30_000 }).catch(() => undefined);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
      await gone;
      clearTimeout(t);
    }
    // a containerd it started is its child; make sure none outlives it
    const pid = readPid(join(this.dir, 'exec/containerd/containerd.pid'));
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // never delete through a mount (a netns bind mount under exec/ if dockerd was killed)
    const mounted = readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1]?.startsWith(this.dir));
    if (!mounted) rmSync(this.dir, { recursive: true, force: true });
  }
}

function readPid(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return n > 0 ? n : null;
  } catch {
    return null;
  }
}
