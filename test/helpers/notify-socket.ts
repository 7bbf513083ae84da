/**
 * A fake systemd notify socket: notify-socket.py in a child process (on the host, or in a
 * namespace through `spawner`), and the datagrams it received, awaited one by one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./notify-socket.py', import.meta.url));

export interface Notification {
  /** CLOCK_MONOTONIC µs when the receiver read it. */
  at: bigint;
  message: string;
  /** Its `KEY=value` lines. */
  fields: Record<string, string>;
}

export function parseNotification(message: string): Record<string, string> {
  return Object.fromEntries(
    message
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

export class FakeNotifySocket {
  readonly received: Notification[] = [];
  private cursor = 0;
  private wake: (() => void) | null = null;
  private stderr = '';

  private constructor(readonly child: ChildProcess) {}

  /** Binds `address` (a path, or `@name`) and resolves once it can receive. */
  static async listen(address: string, spawner: (cmd: string, args: string[]) => ChildProcess = (c, a) => spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] })): Promise<FakeNotifySocket> {
    const f = new FakeNotifySocket(spawner('/usr/bin/python3', [SCRIPT, address]));
    f.child.stderr!.on('data', (d) => (f.stderr += d));
    const lines = createInterface({ input: f.child.stdout! });
    await new Promise<void>((resolve, reject) => {
      lines.once('line', (l) => (l === 'ready' ? resolve() : reject(new Error(`notify socket: ${l}`))));
      f.child.once('exit', (code) => reject(new Error(`notify socket at ${address} exited ${code}: ${f.stderr}`)));
    });
    lines.on('line', (l) => {
      const r = JSON.parse(l) as { at: number; message: string };
      f.received.push({ at: BigInt(r.at), message: r.message, fields: parseNotification(r.message) });
      f.wake?.();
    });
    return f;
  }

  /**
   * The first notification after the last one returned that `ok` accepts (those skipped are
   * passed over for good); fails after `timeoutMs`, listing what did arrive.
   */
  async next(what: string, ok: (n: Notification) => boolean, timeoutMs = 30_000): Promise<Notification> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.received.length) {
        const n = this.received[this.cursor++];
        if (ok(n)) return n;
      }
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; received: ${JSON.stringify(this.received.map((n) => n.message))}`);
      await this.arrival(left);
    }
  }

  /** Waits, without moving on, until `n` of everything received so far satisfy `ok`; returns those. */
  async count(what: string, ok: (n: Notification) => boolean, n: number, timeoutMs = 30_000): Promise<Notification[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.filter(ok);
      if (found.length >= n) return found;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} × ${what}; received: ${JSON.stringify(this.received.map((r) => r.message))}`);
      await this.arrival(left);
    }
  }

  private arrival(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  /** The next notification that is not a watchdog ping: what the daemon says about its state. */
  nextEvent(what: string, timeoutMs?: number): Promise<Notification> {
    return this.next(what, (n) => n.message !== 'WATCHDOG=1', timeoutMs);
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}
