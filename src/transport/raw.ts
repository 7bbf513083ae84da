/** The protocol-41 raw socket over the native addon: sendmmsg/recvmmsg batches, the ICMP error queue. */
import { constants as osConstants } from 'node:os';
import type { PacketBatch } from '../io/batch.js';
import { FdEndpoint } from '../io/fd-endpoint.js';
import { loadNative, IP_PMTUDISC_DONT, IP_PMTUDISC_WANT } from '../io/native.js';
import { outerDf } from '../packet/ipv4.js';
import { receiveFilter, type ReceiveOwner } from './receive-filter.js';
import type { OuterTransport } from './transport.js';

const { EAGAIN } = osConstants.errno;

/** The send-only socket of dynamic mode: its own fd, so its own readiness to write. */
class DfClearSocket extends FdEndpoint {
  constructor(fd: number) {
    super(fd);
  }
}

export class RawTransport extends FdEndpoint implements OuterTransport {
  /** The last send met a full DF-clear socket (not the main one): wait for that one to drain. */
  private blockedOnDfClear = false;

  private constructor(
    fd: number,
    /**
     * Dynamic mode: DF is a socket option, so packets to go with DF clear (R07, path MTU below
     * 1300) leave through this second, send-only socket with discovery off.
     */
    private readonly dfClear: DfClearSocket | null,
  ) {
    super(fd);
  }

  /** A protocol-41 raw socket bound to `local`; `pmtu` picks DF clear (static) or path MTU discovery (dynamic). */
  static open(local: number, pmtu: 'static' | 'dynamic', bufferBytes = 4 << 20): RawTransport {
    const native = loadNative();
    const fd = native.openRawSocket(local, pmtu === 'dynamic' ? IP_PMTUDISC_WANT : IP_PMTUDISC_DONT, bufferBytes);
    if (pmtu === 'static') {
      native.setSendOptions(fd, {});
      return new RawTransport(fd, null);
    }
    let dfClearFd: number;
    try {
      dfClearFd = native.openRawSocket(local, IP_PMTUDISC_DONT, bufferBytes, true);
    } catch (e) {
      native.closeFd(fd);
      throw e;
    }
    native.setSendOptions(fd, { dfClearFd });
    return new RawTransport(fd, new DfClearSocket(dfClearFd));
  }

  override close(): void {
    super.close();
    this.dfClear?.close();
  }

  holding(): boolean {
    return false;
  }

  /** Other processes' raw sockets on this address get the same packets: keep only ours (receive-filter.ts). */
  receiveOnlyFor(owners: readonly ReceiveOwner[]): void {
    loadNative().setReceiveFilter(this.fd, receiveFilter(owners));
  }

  recv(b: PacketBatch, max: number): number {
    return loadNative().rawRecv(this.fd, b.arena, b.slotSize, b.headroom, max, b.lens);
  }

  recvErrors(b: PacketBatch, max: number): number {
    return loadNative().recvErrors(this.fd, b.arena, b.slotSize, b.headroom, max, b.lens, b.info);
  }

  send(b: PacketBatch, n: number): number {
    const sent = loadNative().sendBatch(this.fd, b, n);
    if (sent < n && this.dfClear !== null) {
      // the first EAGAIN is the packet the full socket refused; the rest were not tried
      let i = 0;
      while (i < n && b.errs[i] !== EAGAIN) i++;
      this.blockedOnDfClear = i < n && !outerDf(b.fields[i]);
    }
    return sent;
  }

  override watchWritable(cb: () => void): void {
    if (this.blockedOnDfClear && this.dfClear !== null) this.dfClear.watchWritable(cb);
    else super.watchWritable(cb);
  }
}
