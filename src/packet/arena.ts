/**
 * Packet arenas: the long-lived buffers the data path reads packets into and builds them in (the
 * data path makes them as slot arenas, src/io/slots.ts `slotArena`; tests and benches by size).
 * Each arena is the memory of its own small WebAssembly instance, so that a checksum over a packet
 * in it runs 32 bytes a step in SIMD (checksum-simd.wat): over a 1,428-byte segment that is ~5×
 * the fastest JavaScript sum, and every TCP or UDP segment cut or merged behind the TUN is summed
 * once (`npm run bench:micro`: the TSO and GRO rows, in arenas and in plain Buffers). Where WebAssembly SIMD is missing, or the runtime
 * refuses another memory (an address-space limit), an arena is a plain Buffer and checksums take
 * the JavaScript path: the same results, slower.
 */

/** checksum-simd.wat, assembled (test/arena.test.ts assembles the text again and compares). */
const SUM_WASM =
  'AGFzbQEAAAABBwFgAn9/AX8CEQEFYXJlbmEGbWVtb3J5AgABAwIBAAcJAQVzdW0zMgAACs0BAcoBAwF/AnsBfyAAIAFqIQICQCAAIAJPDQADQCADIAD9AAQA/X/9rgEhAyAEIAD9AAQQ/X/9rgEhBCAAQSBqIQAgACACSQ0ACwsgA/0M//8AAP//AAD//wAA//8AAP1OIANBEP2tAf2uASEDIAT9DP//AAD//wAA//8AAP//AAD9TiAEQRD9rQH9rgEhBCADIAT9rgEhAyAD/RsAIAP9GwFqIAP9GwIgA/0bA2pqIQUgBUH//wNxIAVBEHZqIQUgBUH//wNxIAVBEHZqCw==';
export const SUM_WASM_BYTES: Uint8Array<ArrayBuffer> = Uint8Array.from(Buffer.from(SUM_WASM, 'base64'));

/**
 * The one's-complement sum of the little-endian 16-bit words in an arena's bytes [p, p + n),
 * n a multiple of 32 and at most SIMD_SUM_MAX, folded to 16 bits.
 */
export type ArenaSum = (p: number, n: number) => number;

/** The longest run one ArenaSum call may sum: its 32-bit lanes cannot carry out below this. */
export const SIMD_SUM_MAX = 512 * 1024;

const WASM_PAGE = 65536;

/** Compiled once for the process: every arena is an instance of the same module. */
const sumModule: WebAssembly.Module | null = (() => {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SUM_WASM_BYTES) ? new WebAssembly.Module(SUM_WASM_BYTES) : null;
  } catch {
    return null;
  }
})();

/**
 * Each arena's sum, keyed by the ArrayBuffer behind its Buffer: sum16 is handed Buffers, not
 * arenas, and finds the SIMD sum of any view into one here. The key dies with the arena.
 */
const sums = new WeakMap<ArrayBufferLike, ArenaSum>();

/** Whether arenas are WebAssembly memories here (false: plain Buffers, JavaScript checksums). */
export const simdArenas: boolean = sumModule !== null;

/**
 * A zero-filled buffer of at least `bytes` bytes for packets. Its memory is never grown, so the
 * Buffer stays valid for its whole life (growing a WebAssembly memory would detach it).
 */
export function packetArena(bytes: number): Buffer {
  if (sumModule !== null && bytes > 0) {
    const pages = Math.ceil(bytes / WASM_PAGE);
    try {
      const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
      const instance = new WebAssembly.Instance(sumModule, { arena: { memory } });
      sums.set(memory.buffer, instance.exports.sum32 as ArenaSum);
      return Buffer.from(memory.buffer, 0, bytes);
    } catch {
      // no address space for another memory: a plain arena still works
    }
  }
  return Buffer.alloc(bytes);
}

/** The SIMD sum over `buf`'s memory if it is a packet arena, else null. */
export function arenaSum(buf: Uint8Array): ArenaSum | null {
  return sums.get(buf.buffer) ?? null;
}
