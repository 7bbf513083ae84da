/**
 * When a router advertises (RFC 4861 §6.2): its constants (§10) and interface defaults (§6.2.1),
 * the delay before each unsolicited advertisement (§6.2.4) and the moment a solicitation is
 * answered (§6.2.6). Plain arithmetic; the RouterAdvertiser sets its timers from it.
 */

/** RFC 4861 §10 router constants. */
export const MAX_INITIAL_RTR_ADVERT_INTERVAL_S = 16;
export const MAX_INITIAL_RTR_ADVERTISEMENTS = 3;
export const MAX_FINAL_RTR_ADVERTISEMENTS = 3;
export const MIN_DELAY_BETWEEN_RAS_S = 3;
export const MAX_RA_DELAY_TIME_S = 0.5;

/** RFC 4861 §6.2.1 defaults: MaxRtrAdvInterval, MinRtrAdvInterval (0.33 × Max), AdvDefaultLifetime (3 × Max). */
export const MAX_RTR_ADV_INTERVAL_S = 600;
export const MIN_RTR_ADV_INTERVAL_S = 198;
export const ADV_DEFAULT_LIFETIME_S = 1800;
/** §6.2.1 AdvValidLifetime and AdvPreferredLifetime defaults (30 and 7 days). */
export const ADV_VALID_LIFETIME_S = 2_592_000;
export const ADV_PREFERRED_LIFETIME_S = 604_800;

/**
 * RFC 4861 §6.2.4: the delay before the next unsolicited advertisement, uniformly random in
 * [MinRtrAdvInterval, MaxRtrAdvInterval], and for the first MAX_INITIAL_RTR_ADVERTISEMENTS at most
 * MAX_INITIAL_RTR_ADVERT_INTERVAL. `sent` counts the advertisements sent so far; `random` in [0, 1).
 */
export function nextUnsolicitedDelayS(sent: number, random: number, minS = MIN_RTR_ADV_INTERVAL_S, maxS = MAX_RTR_ADV_INTERVAL_S): number {
  const d = minS + random * (maxS - minS);
  return sent < MAX_INITIAL_RTR_ADVERTISEMENTS ? Math.min(d, MAX_INITIAL_RTR_ADVERT_INTERVAL_S) : d;
}

/**
 * RFC 4861 §6.2.6: when to answer a solicitation heard at `nowMs`: after a random delay up to
 * MAX_RA_DELAY_TIME, and no sooner than MIN_DELAY_BETWEEN_RAS after the last multicast
 * advertisement (`lastMs`, or null if none was sent). Returns the absolute time in ms.
 */
export function solicitedAnswerAtMs(nowMs: number, lastMs: number | null, random: number): number {
  const at = nowMs + random * MAX_RA_DELAY_TIME_S * 1000;
  if (lastMs === null) return at;
  return Math.max(at, lastMs + MIN_DELAY_BETWEEN_RAS_S * 1000);
}
