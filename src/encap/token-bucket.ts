/**
 * R23 (RFC 4443 §2.4(f)): ICMPv6 errors we originate are limited by a token bucket.
 * The clock is injected so tests control time.
 */
export type Clock = () => number;

/** Milliseconds from a monotonic source. */
export const monotonicMs: Clock = () => performance.now();

export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `ratePerSecond` tokens refill each second up to `burst`; rate 0 means never send. */
  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly clock: Clock = monotonicMs,
  ) {
    // rate 0 is "never": no initial burst either
    this.tokens = ratePerSecond > 0 ? burst : 0;
    this.last = clock();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const now = this.clock();
    const refill = ((now - this.last) * this.ratePerSecond) / 1000;
    if (refill > 0) {
      this.tokens = Math.min(this.burst, this.tokens + refill);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
