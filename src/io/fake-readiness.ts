/** Readiness for the in-memory test doubles (FakeTun, FakeTransport): a level-triggered poller on setImmediate. */

export abstract class Watchable {
  private cb: ((errorQueued?: boolean) => void) | null = null;
  private scheduled = false;
  private paused = false;
  closed = false;
  watch(cb: (errorQueued?: boolean) => void): void {
    this.cb = cb;
    this.kick();
  }
  /** Like a level-triggered poller: calls back (once, soon) while something is waiting. */
  protected kick(): void {
    if (this.scheduled || !this.cb || this.closed || this.paused) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.cb && !this.closed && !this.paused && this.pending()) {
        this.cb(this.errorQueued());
        if (this.pending()) this.kick();
      }
    });
  }
  protected abstract pending(): boolean;
  /** What the wake-up says of the error queue, as POLLERR does (undefined: nothing said). */
  protected errorQueued(): boolean | undefined {
    return undefined;
  }

  /**
   * Resolves once the engine has taken everything injected. The engine handles what it takes
   * before its callback returns, so its output is complete then too: wait on this, not on time.
   */
  async drained(): Promise<void> {
    while (this.scheduled || (this.cb && !this.closed && !this.paused && this.pending())) await new Promise((r) => setImmediate(r));
  }

  /** As a real device under back-pressure: no callbacks while paused. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  close(): void {
    this.closed = true;
  }
}
