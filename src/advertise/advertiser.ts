/**
 * Router advertisements for a routed prefix on a LAN bridge (LXC, libvirt, a plain br0): guests
 * there get a SLAAC address in the prefix, us as their default router, and the tunnel MTU as
 * their link MTU (RFC 4861 §4.6.4), so they never send a packet the tunnel cannot carry. One raw
 * ICMPv6 socket per bridge on the main loop; unsolicited advertisements on RFC 4861 §6.2.4's
 * schedule, answers to solicitations (§6.2.6), and a final advertisement with router lifetime 0
 * on close (§6.2.5). The bytes come from src/packet/ndp.ts, the timing from ./schedule.ts.
 */
import { formatIpv6, formatIpv6Prefix, parseIpv6 } from '../packet/address.js';
import { buildRouterAdvertisement, validateRouterSolicitation, type RsVerdict } from '../packet/ndp.js';
import { ip } from '../tun/iproute.js';
import type { AdvertiseTarget } from './options.js';
import { ADV_DEFAULT_LIFETIME_S, ADV_PREFERRED_LIFETIME_S, ADV_VALID_LIFETIME_S, nextUnsolicitedDelayS, solicitedAnswerAtMs } from './schedule.js';
import { Icmp6Socket } from './socket.js';

export interface AdvertiserOptions {
  /** The tunnel MTU: the MTU option (lowered to the bridge's own MTU if that is smaller). */
  mtu: number;
  /** RFC 8106 recursive DNS servers to announce. */
  rdnss?: Uint8Array[];
  /** For tests: [0, 1) random numbers; default Math.random. */
  random?: () => number;
}

/** Why a solicitation was dropped (RFC 4861 §6.1.1). */
export type RsDropReason = Extract<RsVerdict, { ok: false }>['reason'];
/** Every reason at 0: a Record, so a reason ndp.ts adds cannot go uncounted. */
const NO_DROPS: Readonly<Record<RsDropReason, number>> = { hop_limit: 0, type: 0, code: 0, length: 0, option_length: 0, unspecified_with_sllao: 0 };
export const RS_DROP_REASONS = Object.keys(NO_DROPS) as readonly RsDropReason[];

/** What an advertiser counts besides drops. `ra_solicited` is of `ra_sent`, those that answered a solicitation. */
export const ADVERTISER_TRAFFIC = ['ra_sent', 'ra_solicited', 'rs_received', 'send_errors'] as const;
export type AdvertiserTrafficCounter = (typeof ADVERTISER_TRAFFIC)[number];

/**
 * An advertiser's counters in the shape of a tunnel's (CountersSnapshot): traffic, drops by
 * reason, the drops' total. The flat names beside them are the shape before; kept one release.
 */
export interface AdvertiserCounters {
  traffic: Record<AdvertiserTrafficCounter, number>;
  /** Solicitations dropped by RFC 4861 §6.1.1, by reason. */
  drops: Record<RsDropReason, number>;
  dropsTotal: number;
  // the flat names of before are declared onto this in src/deprecated.ts
}

export interface AdvertiserStatus {
  iface: string;
  prefix: string;
  /** The MTU option sent. */
  mtu: number;
  rdnss: string[];
  state: 'advertising' | 'stopped';
  /** `added`: we added `PREFIX dev IFACE` and remove it on close; `present`: the host had it. */
  onLinkRoute: 'added' | 'present';
  counters: AdvertiserCounters;
  lastError: string | null;
  lastRaAt: string | null;
}

const ALL_NODES = parseIpv6('ff02::1')!;
/** Solicitations read per wake: a flood on the LAN cannot hold the loop. */
const MAX_READS_PER_WAKE = 64;
const RDNSS_LIFETIME_S = 3 * 600; // RFC 8106 §5.1: at least 3 × MaxRtrAdvInterval
const CUR_HOP_LIMIT = 64;

export class RouterAdvertiser {
  private unsolicitedTimer: NodeJS.Timeout | null = null;
  private answerTimer: NodeJS.Timeout | null = null;
  private lastMulticastMs: number | null = null;
  /** Multicast advertisements sent so far: the first MAX_INITIAL_RTR_ADVERTISEMENTS follow the shorter schedule. */
  private multicastSent = 0;
  private closed = false;
  private readonly ra: Buffer;
  private readonly rxBuf = Buffer.alloc(1500);
  private readonly rxSrc = Buffer.alloc(16);
  private readonly rxMeta = new Int32Array(1);
  private readonly random: () => number;
  private readonly traffic = Object.fromEntries(ADVERTISER_TRAFFIC.map((n) => [n, 0])) as Record<AdvertiserTrafficCounter, number>;
  private readonly drops: Record<RsDropReason, number> = { ...NO_DROPS };
  private lastError: string | null = null;
  private lastRaAt: number | null = null;

  private constructor(
    readonly target: AdvertiseTarget,
    private readonly socket: Icmp6Socket,
    private readonly mac: Uint8Array | null,
    readonly mtu: number,
    private readonly rdnss: Uint8Array[],
    private readonly onLinkRoute: 'added' | 'present',
    random: () => number,
  ) {
    this.random = random;
    this.ra = this.build(false);
  }

  /**
   * Opens the socket on `target.iface`, makes the prefix on-link there (unless the host already
   * routes it to that interface), sends the first advertisement and starts the schedule.
   */
  static async open(target: AdvertiseTarget, o: AdvertiserOptions): Promise<RouterAdvertiser> {
    const link = await linkInfo(target.iface);
    const socket = Icmp6Socket.open(target.iface);
    let route: 'added' | 'present' = 'present';
    try {
      route = await ensureOnLinkRoute(target);
      const mtu = link.mtu > 0 ? Math.min(o.mtu, link.mtu) : o.mtu;
      const a = new RouterAdvertiser(target, socket, link.mac, mtu, o.rdnss ?? [], route, o.random ?? Math.random);
      a.start();
      return a;
    } catch (e) {
      socket.close();
      if (route === 'added') await removeOnLinkRoute(target);
      throw e;
    }
  }

  private build(final: boolean): Buffer {
    const p = this.target.prefix;
    return buildRouterAdvertisement({
      curHopLimit: CUR_HOP_LIMIT,
      // §6.2.5: a router that stops advertising says so with lifetime 0; the prefix is deprecated
      // too (preferred 0) because its only way out, the tunnel, is going away.
      routerLifetime: final ? 0 : ADV_DEFAULT_LIFETIME_S,
      sourceLinkLayer: this.mac,
      mtu: this.mtu,
      prefixes: [{ prefix: p.addr, len: p.len, validLifetime: ADV_VALID_LIFETIME_S, preferredLifetime: final ? 0 : ADV_PREFERRED_LIFETIME_S }],
      rdnss: this.rdnss,
      rdnssLifetime: final ? 0 : RDNSS_LIFETIME_S,
    });
  }

  private start(): void {
    this.socket.watch(() => this.onReadable());
    // The first one at once (as radvd does): guests already up learn of us without soliciting.
    this.sendUnsolicited();
  }

  private sendUnsolicited(): void {
    if (this.closed) return;
    this.send(this.ra, false);
    this.scheduleUnsolicited();
  }

  private scheduleUnsolicited(): void {
    if (this.unsolicitedTimer) clearTimeout(this.unsolicitedTimer);
    const delayMs = nextUnsolicitedDelayS(this.multicastSent, this.random()) * 1000;
    this.unsolicitedTimer = setTimeout(() => this.sendUnsolicited(), delayMs);
    this.unsolicitedTimer.unref();
  }

  private send(msg: Buffer, solicited: boolean): void {
    try {
      this.socket.send(msg, ALL_NODES);
      this.traffic.ra_sent++;
      this.multicastSent++;
      if (solicited) this.traffic.ra_solicited++;
      this.lastMulticastMs = Date.now();
      this.lastRaAt = this.lastMulticastMs;
    } catch (e) {
      // e.g. EADDRNOTAVAIL while the bridge has no link-local address yet (no port up): the
      // schedule and the next solicitation try again.
      this.traffic.send_errors++;
      this.lastError = (e as Error).message;
    }
  }

  private onReadable(): void {
    for (let i = 0; i < MAX_READS_PER_WAKE; i++) {
      let n: number;
      try {
        n = this.socket.receive(this.rxBuf, this.rxSrc, this.rxMeta);
      } catch (e) {
        this.lastError = (e as Error).message;
        return;
      }
      if (n < 0) return;
      this.traffic.rs_received++;
      const unspecified = this.rxSrc.every((b) => b === 0);
      const v = validateRouterSolicitation(this.rxBuf.subarray(0, n), this.rxMeta[0], unspecified);
      if (!v.ok) {
        this.drops[v.reason]++;
        continue;
      }
      this.scheduleAnswer();
    }
  }

  /** §6.2.6: one multicast answer for any number of solicitations heard before it goes out. */
  private scheduleAnswer(): void {
    if (this.answerTimer || this.closed) return;
    const now = Date.now();
    const at = solicitedAnswerAtMs(now, this.lastMulticastMs, this.random());
    this.answerTimer = setTimeout(() => {
      this.answerTimer = null;
      if (this.closed) return;
      this.send(this.ra, true);
      // §6.2.4: whenever a multicast advertisement goes out, the unsolicited timer starts over
      this.scheduleUnsolicited();
    }, at - now);
    this.answerTimer.unref();
  }

  status(): AdvertiserStatus {
    return {
      iface: this.target.iface,
      prefix: formatIpv6Prefix(this.target.prefix),
      mtu: this.mtu,
      rdnss: this.rdnss.map((a) => formatIpv6(a)),
      state: this.closed ? 'stopped' : 'advertising',
      onLinkRoute: this.onLinkRoute,
      counters: this.counters(),
      lastError: this.lastError,
      lastRaAt: this.lastRaAt === null ? null : new Date(this.lastRaAt).toISOString(),
    };
  }

  private counters(): AdvertiserCounters {
    const traffic = { ...this.traffic };
    const drops = { ...this.drops };
    const dropsTotal = RS_DROP_REASONS.reduce((sum, r) => sum + drops[r], 0);
    return { traffic, drops, dropsTotal, ...traffic, rs_dropped: { ...drops } }; // the flat copies of before, for one release (src/deprecated.ts)
  }

  /**
   * Sends the final advertisement (router lifetime 0; one, of the MAX_FINAL_RTR_ADVERTISEMENTS
   * §6.2.5 allows, so that closing never waits), stops, and removes the route it added. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.send(this.build(true), false);
    this.closed = true;
    if (this.unsolicitedTimer) clearTimeout(this.unsolicitedTimer);
    if (this.answerTimer) clearTimeout(this.answerTimer);
    this.unsolicitedTimer = this.answerTimer = null;
    this.socket.close();
    if (this.onLinkRoute === 'added') await removeOnLinkRoute(this.target);
  }
}

/** The interface's MAC (for the source link-layer address option) and MTU; throws if it does not exist. */
async function linkInfo(iface: string): Promise<{ mac: Uint8Array | null; mtu: number }> {
  let out: string;
  try {
    out = await ip(['-j', 'link', 'show', 'dev', iface]);
  } catch (e) {
    throw new Error(`interface ${iface} does not exist here (${(e as Error).message.split('\n')[0]}); create the bridge first (ip link add ${iface} type bridge) or name an existing one`);
  }
  const link = (JSON.parse(out) as Array<{ address?: string; mtu?: number; link_type?: string }>)[0];
  const mac = link?.link_type === 'ether' && link.address ? Buffer.from(link.address.split(':').map((h) => parseInt(h, 16))) : null;
  return { mac: mac && mac.length === 6 ? mac : null, mtu: link?.mtu ?? 0 };
}

/**
 * The prefix must be on-link on the bridge, or the host sends guests' traffic to the routed
 * prefix's `unreachable` route. An address of the prefix on the bridge already gives that route.
 */
async function ensureOnLinkRoute(t: AdvertiseTarget): Promise<'added' | 'present'> {
  const p = formatIpv6Prefix(t.prefix);
  const have = await ip(['-6', 'route', 'show', 'exact', p, 'dev', t.iface]);
  if (have.trim() !== '') return 'present';
  await ip(['-6', 'route', 'add', p, 'dev', t.iface, 'metric', '1024']);
  return 'added';
}

async function removeOnLinkRoute(t: AdvertiseTarget): Promise<void> {
  await ip(['-6', 'route', 'del', formatIpv6Prefix(t.prefix), 'dev', t.iface, 'metric', '1024']).catch(() => undefined);
}
