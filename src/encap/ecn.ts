/** ECN across the tunnel (RFC 6040, normal mode). */

export const ECN_NOT_ECT = 0;
export const ECN_ECT1 = 1;
export const ECN_ECT0 = 2;
export const ECN_CE = 3;

/** R13, RFC 6040 §4.1 normal mode: the outer ECN field is a copy of the inner one. */
export function encapOuterTos(dscpTos: number, innerTrafficClass: number): number {
  return (dscpTos & 0xfc) | (innerTrafficClass & 0x03);
}

/** Result of `decapInnerEcn` meaning "drop the packet" (RFC 6040 §4.2: CE on a Not-ECT inner). */
export const ECN_DROP = -1;

/**
 * R13, RFC 6040 §4.2 Figure 4: the inner ECN field after decapsulation, or ECN_DROP.
 *   inner \ outer   Not-ECT  ECT(0)  ECT(1)  CE
 *   Not-ECT         Not-ECT  Not-ECT Not-ECT drop
 *   ECT(0)          ECT(0)   ECT(0)  ECT(1)  CE
 *   ECT(1)          ECT(1)   ECT(1)  ECT(1)  CE
 *   CE              CE       CE      CE      CE
 */
export function decapInnerEcn(outer: number, inner: number): number {
  if (outer === ECN_CE) return inner === ECN_NOT_ECT ? ECN_DROP : ECN_CE;
  if (outer === ECN_ECT1 && inner === ECN_ECT0) return ECN_ECT1;
  return inner;
}
