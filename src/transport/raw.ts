/** The protocol-41 raw socket over the native addon: sendmmsg/recvmmsg batches, the ICMP error queue. */
import { closeSync } from 'node:fs';
import { FdEndpoint } from '../io/fd-endpoint.js';
import { loadNative, IP_PMTUDISC_DONT, IP_PMTUDISC_WANT } from '../io/native.js';
import type { OuterTransport } from './transport.js';

export class RawTransport extends FdEndpoint implements OuterTransport {
  private constructor(
    fd: number,
    /**
     * Dynamic mode: DF is a socket option, so packets to go with DF clear (R07, path MTU below
     * 1300) leave through this second, send-only socket with discovery off.
     */
    private dfClearFd: number,
  ) {
    super(fd);
  }

  /** A protocol-41 raw socket bound to `local`; `pmtu` picks DF clear (static) or path MTU discovery (dynamic). */
  static open(local: number, pmtu: 'static' | 'dynamic', bufferBytes = 4 << 20): RawTransport {
    const native = loadNative();
    const fd = native.openRawSocket(local, pmtu === 'dynamic' ? IP_PMTUDISC_WANT : IP_PMTUDISC_DONT, bufferBytes);
    if (pmtu === 'static') return new RawTransport(fd, -1);
    try {
      return new RawTransport(fd, native.openRawSocket(local, IP_PMTUDISC_DONT, bufferBytes, true));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  override close(): void {
    super.close();
    if (this.dfClearFd >= 0) closeSync(this.dfClearFd);
    this.dfClearFd = -1;
  }

  recv(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array): number {
    return loadNative().rawRecv(this.fd, arena, slotSize, headroom, max, lens);
  }

  recvErrors(arena: Buffer, slotSize: number, headroom: number, max: number, lens: Int32Array, info: Int32Array): number {
    return loadNative().recvErrors(this.fd, arena, slotSize, headroom, max, lens, info);
  }

  send(arena: Buffer, offs: Int32Array, lens: Int32Array, dsts: Int32Array, fields: Int32Array, n: number, errs: Int32Array): number {
    return loadNative().sendBatch(this.fd, arena, offs, lens, n, errs, dsts, fields, 0, this.dfClearFd, false);
  }
}
