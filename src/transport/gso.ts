/**
 * Which consecutive packets of a batch may leave as one UDP GSO (UDP_SEGMENT) message: the
 * decision, kept apart from the syscall that carries it out so it can be tested without a socket
 * (as wireguard-go keeps coalesceMessages beside conn/). The kernel cuts such a message into
 * datagrams of the first packet's size, all to one address with one set of IP options. The addon
 * only checks that each run is one (native/sockets.cc), against the same two limits, which it
 * exports (test/native.test.ts compares).
 */

/** The kernel's limit on segments per GSO message (UDP_MAX_SEGMENTS, 64 on older kernels). */
export const GSO_MAX_SEGMENTS = 64;
/** The largest UDP payload one IPv4 datagram can carry: 65,535 − 20 − 8. */
export const GSO_MAX_BYTES = 65_507;

/**
 * Splits packets [0, n) into runs, written to runs[0..returned) and ended by a 0: a run is consecutive packets to
 * the same destination with the same outer fields, all as long as its first but for a shorter
 * last one (which ends it), at most GSO_MAX_SEGMENTS of them and GSO_MAX_BYTES in all.
 */
export function gsoRuns(lens: Int32Array, dsts: Int32Array, fields: Int32Array, n: number, runs: Int32Array): number {
  let nRuns = 0;
  let i = 0;
  while (i < n) {
    const seg = lens[i];
    let k = 1;
    let bytes = seg;
    while (
      i + k < n &&
      k < GSO_MAX_SEGMENTS &&
      dsts[i + k] === dsts[i] &&
      fields[i + k] === fields[i] &&
      lens[i + k] > 0 &&
      lens[i + k] <= seg &&
      bytes + lens[i + k] <= GSO_MAX_BYTES
    ) {
      bytes += lens[i + k];
      k++;
      if (lens[i + k - 1] < seg) break; // a shorter segment can only be the last
    }
    runs[nRuns++] = k;
    i += k;
  }
  // the addon reads runs up to a 0: what an earlier, longer batch left behind ends here
  if (nRuns < runs.length) runs[nRuns] = 0;
  return nRuns;
}
