/**
 * The raw ICMPv6 socket of one bridge (native/icmp6.cc: hop limit 255, joined to ff02::2, Router
 * Solicitations only) as an FdEndpoint: readiness on the main loop like every socket of ours, and
 * one idempotent close.
 */
import { FdEndpoint } from '../io/fd-endpoint.js';
import { loadNative } from '../io/native.js';

export class Icmp6Socket extends FdEndpoint {
  private readonly native = loadNative();

  private constructor(
    fd: number,
    /** The bridge's interface index: the scope of the link-local multicast it sends to. */
    readonly ifindex: number,
  ) {
    super(fd);
  }

  /** Opens the socket on `iface`; throws (with errno) if the interface does not exist or we lack CAP_NET_RAW. */
  static open(iface: string): Icmp6Socket {
    const { fd, ifindex } = loadNative().openIcmp6Socket(iface);
    return new Icmp6Socket(fd, ifindex);
  }

  /** One message to `dst` on the bridge; the kernel picks the link-local source and fills the checksum. */
  send(msg: Buffer, dst: Uint8Array): void {
    this.native.icmp6Send(this.fd, msg, msg.length, dst, this.ifindex);
  }

  /** One message into `buf`, its sender into `src`, the hop limit it came with into meta[0]; -1 when none waits. */
  receive(buf: Uint8Array, src: Uint8Array, meta: Int32Array): number {
    return this.native.icmp6Recv(this.fd, buf, src, meta);
  }
}
