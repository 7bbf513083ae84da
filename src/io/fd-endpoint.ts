/**
 * An fd we own: readiness through the addon's poller (uv_poll on Node's main loop, no threadpool;
 * the addon's poll thread where there is no libuv) — to read, paused and resumed by back-pressure,
 * and once to write — and an idempotent close. libuv allows one poll handle per fd, so reading and
 * writing share one, whose event mask follows what is wanted.
 */
import { loadNative, type NativePoller } from './native.js';

export abstract class FdEndpoint {
  private poller: NativePoller | null = null;
  private onReadable: ((errorQueued: boolean) => void) | null = null;
  private reading = false;
  /** Everyone waiting to write (tunnels sharing this socket each wait for themselves). */
  private readonly onWritable = new Set<() => void>();
  private closed = false;

  protected constructor(readonly fd: number) {}

  /** `cb(errorQueued)`: errorQueued is true when the wake-up was POLLERR (an error is queued). */
  watch(cb: (errorQueued: boolean) => void): void {
    this.onReadable = cb;
    this.reading = true;
    this.arm();
  }

  /** Stops read readiness callbacks until resume() (the loop cannot take more for now). */
  pause(): void {
    this.reading = false;
    this.arm();
  }

  resume(): void {
    this.reading = this.onReadable !== null;
    this.arm();
  }

  /** Calls `cb` once, when the fd can be written again. */
  watchWritable(cb: () => void): void {
    if (this.closed) return;
    this.onWritable.add(cb);
    this.arm();
  }

  /** Points the one poll handle at what is wanted now: reading, writing, both or neither. */
  private arm(): void {
    if (this.closed) return;
    const native = loadNative();
    const events = (this.reading ? native.POLL_READABLE : 0) | (this.onWritable.size > 0 ? native.POLL_WRITABLE : 0);
    if (events === 0) {
      this.poller?.stop();
      return;
    }
    this.poller ??= new native.Poller(this.fd, (ev) => this.ready(ev));
    this.poller.start(events);
  }

  /**
   * A negative `events` is POLLERR (libuv's UV_EBADF): an error is queued. Both sides are told:
   * a reader drains the queue, a writer's next send gets past a pending report.
   */
  private ready(events: number): void {
    const native = loadNative();
    if ((events < 0 || (events & native.POLL_WRITABLE) !== 0) && this.onWritable.size > 0) {
      const waiting = [...this.onWritable];
      this.onWritable.clear();
      this.arm();
      for (const f of waiting) f();
    }
    if ((events < 0 || (events & native.POLL_READABLE) !== 0) && this.reading && !this.closed) this.onReadable?.(events < 0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    this.poller = null;
    this.onWritable.clear();
    loadNative().closeFd(this.fd);
  }
}
