/**
 * Moving bytes between places in packet arenas. Buffer#copy builds a Uint8Array view of the source
 * range on every call (an allocation per packet on the hot path); when source and destination are
 * the same buffer, as they are in the engine's arenas, copyWithin moves the bytes with none.
 */
export function moveBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): void {
  if (src === dst) dst.copyWithin(at, start, end);
  else dst.set(src.subarray(start, end), at);
}
