/**
 * Network namespaces for the lab and the end-to-end tests: every namespace made here carries a
 * per-run prefix, so cleanup removes exactly what this run made, by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { ip } from '../tun/iproute.js';

export class Namespace {
  constructor(readonly name: string) {}

  /** Runs a command inside the namespace and returns its stdout (throws with stderr on failure). */
  async exec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
    const { stdout } = await runCapture('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
    return stdout;
  }

  /** Like exec, but resolves with the exit code and both streams instead of throwing. */
  async run(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCapture('ip', ['netns', 'exec', this.name, cmd, ...args], { ...opts, noThrow: true });
  }

  spawn(cmd: string, args: string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  ip(args: string[]): Promise<string> {
    return ip(['-n', this.name, ...args]);
  }

  async sysctl(key: string, value: string): Promise<void> {
    await this.exec('sysctl', ['-qw', `${key}=${value}`]);
  }
}

export function runCapture(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string; noThrow?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const c = code ?? (signal ? 128 : 1);
      if (c !== 0 && !opts.noThrow) reject(new Error(`${cmd} ${args.join(' ')} exited ${c}${signal ? ` (${signal})` : ''}: ${stderr.trim()}`));
      else resolve({ code: c, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** A set of namespaces created together and removed together. */
export class NamespaceSet {
  readonly namespaces: Namespace[] = [];
  private readonly prefix: string;

  /** `tag` names the run (e.g. "lab", "e2e"); the pid keeps parallel runs apart. */
  constructor(tag: string) {
    this.prefix = `t6-${tag}-${process.pid}-`;
  }

  async add(role: string): Promise<Namespace> {
    const ns = new Namespace(this.prefix + role);
    await ip(['netns', 'add', ns.name]);
    this.namespaces.push(ns);
    await ns.ip(['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A veth pair between two namespaces, with optional IPv4 addresses (address/len). */
  async link(a: Namespace, aIf: string, b: Namespace, bIf: string): Promise<void> {
    const tmpA = `v${process.pid % 100000}a${this.namespaces.indexOf(a)}${this.namespaces.indexOf(b)}`;
    const tmpB = `v${process.pid % 100000}b${this.namespaces.indexOf(a)}${this.namespaces.indexOf(b)}`;
    await ip(['link', 'add', tmpA, 'netns', a.name, 'type', 'veth', 'peer', 'name', tmpB, 'netns', b.name]);
    await a.ip(['link', 'set', tmpA, 'name', aIf]);
    await b.ip(['link', 'set', tmpB, 'name', bIf]);
    await a.ip(['link', 'set', aIf, 'up']);
    await b.ip(['link', 'set', bIf, 'up']);
  }

  /** Deletes every namespace of this set (killing what still runs inside). Never throws. */
  async destroy(): Promise<void> {
    for (const ns of this.namespaces.splice(0)) {
      const pids = await runCapture('ip', ['netns', 'pids', ns.name], { noThrow: true });
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await ip(['netns', 'del', ns.name]).catch(() => undefined);
      removeControlSockets(ns.name);
    }
  }
}

/** Engines in lab namespaces use /run/tun6in4/<namespace>*.sock (and .sock.lock); a killed one leaves them. */
const CONTROL_DIR = '/run/tun6in4';
function removeControlSockets(prefix: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(CONTROL_DIR);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(prefix) && /\.sock(\.lock)?$/.test(n)) rmSync(`${CONTROL_DIR}/${n}`, { force: true });
}

/** Removes namespaces left by earlier runs of `tag` whose process is gone (e.g. after a crash). */
export async function removeStaleNamespaces(tag: string): Promise<void> {
  const out = await ip(['netns', 'list']).catch(() => '');
  for (const line of out.split('\n')) {
    const name = line.split(' ')[0];
    const m = new RegExp(`^t6-${tag}-(\\d+)-`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) await ip(['netns', 'del', name]).catch(() => undefined);
  }
  // sockets of earlier runs whose namespaces are already gone
  try {
    for (const n of readdirSync(CONTROL_DIR)) {
      const m = new RegExp(`^t6-${tag}-(\\d+)-`).exec(n);
      if (!m) continue;
      try {
        process.kill(Number(m[1]), 0);
      } catch {
        rmSync(`${CONTROL_DIR}/${n}`, { force: true });
      }
    }
  } catch {
    /* no control directory yet */
  }
}
