/**
 * An outer transport that sends through one transport and receives from two. Linux's sit with
 * `encap fou` still takes bare protocol 41 from its remote (captured in
 * reference/linux-sit/fou.log, F5), so a FOU tunnel listens on a raw protocol-41 socket too.
 */
import type { PacketBatch } from '../io/batch.js';
import type { OuterTransport } from './transport.js';

export class ReceiveAlso implements OuterTransport {
  constructor(
    private readonly primary: OuterTransport,
    private readonly secondary: OuterTransport,
  ) {}

  /** The primary's packets first; the secondary's when the primary has none waiting. */
  recv(batch: PacketBatch, max: number): number {
    const n = this.primary.recv(batch, max);
    if (n !== 0) return n;
    const m = this.secondary.recv(batch, max);
    // nothing was ever sent through the secondary: an error it reports is not ours to read
    return m < 0 ? 0 : m;
  }

  /**
   * The primary's errors. The secondary's are about packets this tunnel never sent through it
   * (forged, or another tunnel's that the hub already handed out), but its socket asks for errors,
   * and an undrained queue keeps it readable (POLLERR) for ever: read them here and let them go,
   * one batch a call, so a flood of them is bounded as the primary's errors are (F4).
   */
  recvErrors(batch: PacketBatch, max: number): number {
    const n = this.primary.recvErrors(batch, max);
    if (n > 0) return n;
    this.secondary.recvErrors(batch, max);
    return 0;
  }

  send(batch: PacketBatch, n: number): number {
    return this.primary.send(batch, n);
  }

  holding(): boolean {
    return this.primary.holding() || this.secondary.holding();
  }

  watchWritable(cb: () => void): void {
    this.primary.watchWritable(cb);
  }

  watch(cb: (errorQueued?: boolean) => void): void {
    this.primary.watch(cb);
    this.secondary.watch(cb);
  }

  close(): void {
    this.primary.close();
    this.secondary.close();
  }
}
