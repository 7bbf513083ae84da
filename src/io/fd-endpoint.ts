/**
 * An fd we own: readiness through uv_poll on the main loop (no threadpool) — to read, paused and
 * resumed by back-pressure, and once to write — and an idempotent close.
 */
import { closeSync } from 'node:fs';
import { loadNative, type NativePoller } from './native.js';

export abstract class FdEndpoint {
  private poller: NativePoller | null = null;
  private writePoller: NativePoller | null = null;
  /** Everyone waiting to write (tunnels sharing this socket each wait for themselves). */
  private readonly onWritable = new Set<() => void>();
  private closed = false;

  protected constructor(readonly fd: number) {}

  watch(cb: () => void): void {
    this.poller?.close();
    this.poller = new (loadNative().Poller)(this.fd, () => cb());
    this.poller.start();
  }

  /** Stops read readiness callbacks until resume() (the loop cannot take more for now). */
  pause(): void {
    this.poller?.stop();
  }

  resume(): void {
    if (!this.closed) this.poller?.start();
  }

  /** Calls `cb` once, when the fd can be written again. */
  watchWritable(cb: () => void): void {
    if (this.closed) return;
    this.onWritable.add(cb);
    this.writePoller ??= new (loadNative().Poller)(
      this.fd,
      () => {
        this.writePoller?.stop();
        const waiting = [...this.onWritable];
        this.onWritable.clear();
        for (const f of waiting) f();
      },
      true,
    );
    this.writePoller.start();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    this.poller = null;
    this.writePoller?.close();
    this.writePoller = null;
    closeSync(this.fd);
  }
}
