/**
 * The one value a batch of packets travels in, through the TUN device, the outer transport and the
 * addon: the arena the packets live in and, per packet, where it is, how long, whither and with
 * which outer fields, and what became of it. The loop allocates one per direction up front and
 * passes it whole, so a wrapper (offload, a shared socket, a second socket) hands on one value.
 *
 * On a read, packet i lands in slot i: at `slot(i)`, `lens[i]` bytes (-1: larger than a slot).
 * On a write or send, packet i is at `offs[i]`, `lens[i]` bytes, to `dsts[i]` with `fields[i]`
 * (packOuterFields); `errs[i]` gets 0 or an errno. A read of error-queue entries fills `info`
 * (ERROR_INFO_STRIDE ints per entry) beside the quoted packets.
 *
 * The five per-packet columns are one Int32Array, `columns`, in the order of BatchColumn, each
 * MAX_BATCH long: the addon finds them all from the one array (native/sockets.cc's BatchView).
 */
import { MAX_BATCH, SLOT_HEADROOM, SLOT_SIZE, slotArena } from './slots.js';

/** The order of the per-packet columns inside PacketBatch.columns (the addon's kBatch* indices). */
export const BatchColumn = { offs: 0, lens: 1, dsts: 2, fields: 3, errs: 4 } as const;
const COLUMNS = 5;

/** Ints per error-queue entry in `info`: origin, type, code, info, original destination, errno (the addon's kErrInfoStride). */
export const ERROR_INFO_STRIDE = 6;

export class PacketBatch {
  readonly columns: Int32Array;
  readonly offs: Int32Array;
  readonly lens: Int32Array;
  readonly dsts: Int32Array;
  readonly fields: Int32Array;
  readonly errs: Int32Array;
  /** Error-queue entries, ERROR_INFO_STRIDE ints each; made on first use (only the network side reads errors). */
  private infoArray: Int32Array | null = null;

  /**
   * `slots` slots of `slotSize` bytes, each packet `headroom` bytes in (room for the outer header,
   * or an ICMPv6 error built in place). `arena`: share another batch's packets (a second list of
   * packets over the same memory, e.g. the replies a TX batch sends back to the TUN).
   */
  constructor(
    readonly slots: number,
    readonly slotSize: number = SLOT_SIZE,
    readonly headroom: number = SLOT_HEADROOM,
    readonly arena: Buffer = slotArena(slots, slotSize),
    columns: Int32Array = new Int32Array(COLUMNS * MAX_BATCH),
  ) {
    if (!(slots >= 1 && slots <= MAX_BATCH)) throw new RangeError(`a batch holds 1..${MAX_BATCH} packets, not ${slots}`);
    if (arena.length < slots * slotSize) throw new RangeError(`an arena of ${arena.length} bytes holds no ${slots} slots of ${slotSize}`);
    this.columns = columns;
    const col = (c: number): Int32Array => this.columns.subarray(c * MAX_BATCH, (c + 1) * MAX_BATCH);
    this.offs = col(BatchColumn.offs);
    this.lens = col(BatchColumn.lens);
    this.dsts = col(BatchColumn.dsts);
    this.fields = col(BatchColumn.fields);
    this.errs = col(BatchColumn.errs);
  }

  /** Where a read puts packet i. */
  slot(i: number): number {
    return i * this.slotSize + this.headroom;
  }

  get info(): Int32Array {
    return (this.infoArray ??= new Int32Array(MAX_BATCH * ERROR_INFO_STRIDE));
  }

  /** Another list of packets over the same arena and slots (its own columns). */
  sharing(): PacketBatch {
    return new PacketBatch(this.slots, this.slotSize, this.headroom, this.arena);
  }

  /**
   * The same arena, slots and lengths, with packets `headroom` bytes into each slot: a device that
   * reads a header of its own in front of each packet (a virtio_net_hdr) reads through this.
   */
  withHeadroom(headroom: number): PacketBatch {
    return new PacketBatch(this.slots, this.slotSize, headroom, this.arena, this.columns);
  }
}
