/** PacketBatch values over a test's own arena, filled from plain lists, for calls that take one. */
import { PacketBatch } from '../../src/io/batch.js';

export interface BatchLists {
  offs: ArrayLike<number>;
  lens: ArrayLike<number>;
  dsts?: ArrayLike<number>;
  fields?: ArrayLike<number>;
}

/** A batch over `arena` (`slotSize` bytes a slot, packets `headroom` in) listing the given packets. */
export function batchOver(arena: Buffer, slotSize: number, headroom: number, lists?: BatchLists): PacketBatch {
  const b = new PacketBatch(Math.min(256, Math.floor(arena.length / slotSize)), slotSize, headroom, arena);
  if (lists) fill(b, lists);
  return b;
}

/** Writes the lists into the batch's columns (from packet 0). */
export function fill(b: PacketBatch, lists: BatchLists): PacketBatch {
  b.offs.set(lists.offs);
  b.lens.set(lists.lens);
  if (lists.dsts) b.dsts.set(lists.dsts);
  if (lists.fields) b.fields.set(lists.fields);
  return b;
}
