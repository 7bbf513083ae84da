/**
 * The pcapng blocks a trace file needs (draft-ietf-opsawg-pcapng): a section header, one interface
 * per tunnel, and an Enhanced Packet Block per decision whose opt_comment says what happened to
 * the packet, so Wireshark shows it in the packet list and `tshark -T fields -e frame.comment`
 * prints it. Little-endian, as the byte-order magic says; microsecond timestamps (the default
 * if_tsresol). Packets are raw IP (LINKTYPE_RAW): the outer IPv4 of what we received, the inner
 * IPv6 of what we sent. Only `tun6in4 trace --pcapng` writes these, but it lives beside the trace
 * stream that feeds it rather than in the CLI: the library exports it, and the library does not
 * import the CLI.
 */

/** LINKTYPE_RAW: the packet starts with an IPv4 or IPv6 header, told apart by its version. */
export const LINKTYPE_RAW = 101;

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const IF_NAME = 2;

const pad4 = (n: number) => (n + 3) & ~3;

/** Options as pcapng lays them out: code, length, value padded to 4, then opt_endofopt. */
function options(opts: Array<[number, Buffer]>): Buffer {
  if (opts.length === 0) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for (const [code, value] of opts) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(code, 0);
    h.writeUInt16LE(value.length, 2);
    parts.push(h, value, Buffer.alloc(pad4(value.length) - value.length));
  }
  parts.push(Buffer.from([OPT_ENDOFOPT, 0, 0, 0]));
  return Buffer.concat(parts);
}

/** A block: type, total length, body, total length again. */
function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(total, 4);
  body.copy(b, 8);
  b.writeUInt32LE(total, total - 4);
  return b;
}

/** Section Header Block: version 1.0, section length unknown (-1). */
export function pcapngSectionHeader(): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  body.writeUInt16LE(1, 4);
  body.writeUInt16LE(0, 6);
  body.writeBigInt64LE(-1n, 8);
  return block(SHB, body);
}

/** Interface Description Block; interfaces are numbered from 0 in the order they are written. */
export function pcapngInterface(name: string, snapLen: number, linkType = LINKTYPE_RAW): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(linkType, 0);
  fixed.writeUInt32LE(snapLen, 4);
  return block(IDB, Buffer.concat([fixed, options([[IF_NAME, Buffer.from(name, 'utf8')]])]));
}

/**
 * Enhanced Packet Block: `data` as captured (at most the snap length), `originalLength` of the
 * whole packet, at `timeMicros` since the epoch, with `comment` as its opt_comment.
 */
export function pcapngPacket(interfaceId: number, timeMicros: bigint, data: Buffer, originalLength: number, comment: string): Buffer {
  const fixed = Buffer.alloc(20);
  fixed.writeUInt32LE(interfaceId, 0);
  fixed.writeUInt32LE(Number(timeMicros >> 32n), 4);
  fixed.writeUInt32LE(Number(timeMicros & 0xffffffffn), 8);
  fixed.writeUInt32LE(data.length, 12);
  fixed.writeUInt32LE(Math.max(originalLength, data.length), 16);
  const padded = Buffer.alloc(pad4(data.length));
  data.copy(padded);
  return block(EPB, Buffer.concat([fixed, padded, options(comment ? [[OPT_COMMENT, Buffer.from(comment, 'utf8')]] : [])]));
}

/** Microseconds since the epoch of an ISO 8601 time with up to six fractional digits. */
export function isoToMicros(iso: string): bigint {
  const m = /\.(\d{1,6})Z$/.exec(iso);
  const frac = m ? m[1].padEnd(6, '0') : '000000';
  const seconds = Math.floor(Date.parse(iso.replace(/\.\d+Z$/, 'Z')) / 1000);
  return BigInt(seconds) * 1_000_000n + BigInt(frac);
}
