/** An fd we own: readiness through a uv_poll on the main loop (no threadpool), and an idempotent close. */
import { closeSync } from 'node:fs';
import { loadNative, type NativePoller } from './native.js';

export abstract class FdEndpoint {
  private poller: NativePoller | null = null;
  private closed = false;

  protected constructor(readonly fd: number) {}

  watch(cb: () => void): void {
    this.poller?.close();
    this.poller = new (loadNative().Poller)(this.fd, () => cb());
    this.poller.start();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    this.poller = null;
    closeSync(this.fd);
  }
}
