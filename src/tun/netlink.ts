/**
 * rtnetlink for interface set-up, its messages built and read here (the addon only carries the
 * bytes: native/netlink.cc): a link's index by name, its flags, MTU and IPv6 address generation,
 * IPv6 addresses, IPv6 routes through a device or of type `unreachable`. Each request is named by
 * the `ip` command that does the same, so an error reads as a step an operator can repeat by hand.
 *
 * Layouts from linux/netlink.h, linux/rtnetlink.h, linux/if_link.h and linux/if_addr.h; netlink
 * is in host byte order, addresses in network order.
 */
import { constants as osConstants, endianness } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { formatIpv6, formatIpv6Prefix, type Ipv6Prefix } from '../packet/address.js';
import { loadNative, type NativeAddon } from '../io/native.js';

const LE = endianness() === 'LE';

/** struct nlmsghdr: length, type, flags, sequence number, port id. */
const NLMSG = { LEN: 0, TYPE: 4, FLAGS: 6, SEQ: 8, PID: 12, SIZE: 16 } as const;
/** struct nlmsgerr: the (negative) errno, then the request's header (capped: no payload), then TLVs. */
const NLMSGERR = { ERROR: 0, REQUEST: 4 } as const;
/** struct ifinfomsg: family, pad, device type, index, flags, the flags to change. */
const IFINFO = { FAMILY: 0, TYPE: 2, INDEX: 4, FLAGS: 8, CHANGE: 12, SIZE: 16 } as const;
/** struct ifaddrmsg: family, prefix length, flags, scope, index. */
const IFADDR = { FAMILY: 0, PREFIXLEN: 1, FLAGS: 2, SCOPE: 3, INDEX: 4, SIZE: 8 } as const;
/** struct rtmsg: family, destination and source lengths, TOS, table, protocol, scope, type, flags. */
const RTMSG = { FAMILY: 0, DST_LEN: 1, SRC_LEN: 2, TOS: 3, TABLE: 4, PROTOCOL: 5, SCOPE: 6, TYPE: 7, FLAGS: 8, SIZE: 12 } as const;
/** struct rtattr (struct nlattr): length (header included, padding not), type; then the payload. */
const RTA = { LEN: 0, TYPE: 2, SIZE: 4 } as const;

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** On an NLMSG_ERROR: the request is echoed without its payload; TLVs (the kernel's sentence) follow it. */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

const AF_UNSPEC = 0;
const AF_INET6 = 10;
const IFF_UP = 0x1;
const IFF_MULTICAST = 0x1000;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_AF_SPEC = 26;
const IFLA_INET6_ADDR_GEN_MODE = 8;
/** linux/if_link.h in6_addr_gen_mode: no link-local of the kernel's making (R17: ours is fe80::<IPv4>). */
const IN6_ADDR_GEN_MODE_NONE = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_F_NODAD = 0x02;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_TABLE_MAIN = 254;
/** What `ip route add` marks its routes with (shown by `ip route` only with -d). */
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RTN_UNREACHABLE = 7;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;

const NLMSG_ALIGN = (n: number): number => (n + 3) & ~3;

function u16(b: Buffer, off: number, v: number): void {
  if (LE) b.writeUInt16LE(v, off);
  else b.writeUInt16BE(v, off);
}
function u32(b: Buffer, off: number, v: number): void {
  if (LE) b.writeUInt32LE(v >>> 0, off);
  else b.writeUInt32BE(v >>> 0, off);
}
function readU16(b: Buffer, off: number): number {
  return LE ? b.readUInt16LE(off) : b.readUInt16BE(off);
}
function readU32(b: Buffer, off: number): number {
  return LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}
function readI32(b: Buffer, off: number): number {
  return LE ? b.readInt32LE(off) : b.readInt32BE(off);
}

/** One attribute, padded to 4 bytes; a nest is an attribute whose payload is attributes. */
export function rtattr(type: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(NLMSG_ALIGN(RTA.SIZE + payload.length));
  u16(b, RTA.LEN, RTA.SIZE + payload.length);
  u16(b, RTA.TYPE, type);
  b.set(payload, RTA.SIZE);
  return b;
}
function rtattrU32(type: number, v: number): Buffer {
  const p = Buffer.alloc(4);
  u32(p, 0, v);
  return rtattr(type, p);
}

/** One message: header, the family header (ifinfomsg, ifaddrmsg, rtmsg) and attributes. */
export function nlmsg(type: number, flags: number, seq: number, family: Buffer, attrs: Buffer[] = []): Buffer {
  const b = Buffer.concat([Buffer.alloc(NLMSG.SIZE), family, ...attrs]);
  u32(b, NLMSG.LEN, b.length);
  u16(b, NLMSG.TYPE, type);
  u16(b, NLMSG.FLAGS, flags);
  u32(b, NLMSG.SEQ, seq);
  return b;
}

function ifinfomsg(index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(IFINFO.SIZE);
  b[IFINFO.FAMILY] = AF_UNSPEC;
  u32(b, IFINFO.INDEX, index);
  u32(b, IFINFO.FLAGS, flags);
  u32(b, IFINFO.CHANGE, change);
  return b;
}

/** A link, as requests name it: the index goes in the message, the name in what it says. */
export interface Link {
  index: number;
  name: string;
}

/** An IPv6 route: to `dst` through `dev` (and `via` a gateway), or an `unreachable` one (no device). */
export interface Ipv6Route {
  dst: Ipv6Prefix;
  type?: 'unicast' | 'unreachable';
  dev?: Link;
  via?: Uint8Array | null;
  metric: number;
}

/** A request: its message (without the sequence number, which the socket gives) and the `ip` command it does. */
export interface NetlinkRequest {
  operation: string;
  type: number;
  flags: number;
  family: Buffer;
  attrs: Buffer[];
}

/** `ip link show dev NAME`: RTM_GETLINK by name; the answer is the link's RTM_NEWLINK, then the ACK that ends it. */
export function getLinkRequest(name: string): NetlinkRequest {
  return { operation: `ip link show dev ${name}`, type: RTM_GETLINK, flags: NLM_F_REQUEST | NLM_F_ACK, family: ifinfomsg(0), attrs: [rtattr(IFLA_IFNAME, Buffer.from(`${name}\0`))] };
}

/** `ip link set dev NAME [mtu N] [multicast on|off] [up|down]`: only what is given changes. */
export function setLinkRequest(link: Link, set: { mtu?: number; up?: boolean; multicast?: boolean }): NetlinkRequest {
  let flags = 0;
  let change = 0;
  const words = [`ip link set dev ${link.name}`];
  if (set.mtu !== undefined) words.push(`mtu ${set.mtu}`);
  if (set.multicast !== undefined) {
    change |= IFF_MULTICAST;
    if (set.multicast) flags |= IFF_MULTICAST;
    words.push(`multicast ${set.multicast ? 'on' : 'off'}`);
  }
  if (set.up !== undefined) {
    change |= IFF_UP;
    if (set.up) flags |= IFF_UP;
    words.push(set.up ? 'up' : 'down');
  }
  const attrs = set.mtu !== undefined ? [rtattrU32(IFLA_MTU, set.mtu)] : [];
  return { operation: words.join(' '), type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK, family: ifinfomsg(link.index, flags, change), attrs };
}

/** `ip link set dev NAME addrgenmode none`: the kernel makes no IPv6 link-local of its own on it. */
export function addrGenModeNoneRequest(link: Link): NetlinkRequest {
  const inet6 = rtattr(AF_INET6, rtattr(IFLA_INET6_ADDR_GEN_MODE, Buffer.of(IN6_ADDR_GEN_MODE_NONE)));
  return { operation: `ip link set dev ${link.name} addrgenmode none`, type: RTM_NEWLINK, flags: NLM_F_REQUEST | NLM_F_ACK, family: ifinfomsg(link.index), attrs: [rtattr(IFLA_AF_SPEC, inet6)] };
}

/**
 * `ip -6 addr replace ADDR/LEN dev NAME [nodad]`: added, or its flags and lifetimes set again if
 * the link has it already. `del`: `ip -6 addr del`.
 */
export function addressRequest(link: Link, a: Ipv6Prefix, opts: { nodad?: boolean; del?: boolean } = {}): NetlinkRequest {
  const b = Buffer.alloc(IFADDR.SIZE);
  b[IFADDR.FAMILY] = AF_INET6;
  b[IFADDR.PREFIXLEN] = a.len;
  b[IFADDR.FLAGS] = opts.nodad ? IFA_F_NODAD : 0;
  // as ip does; the kernel takes an IPv6 address's scope from the address itself
  b[IFADDR.SCOPE] = a.addr[0] === 0xfe && (a.addr[1] & 0xc0) === 0x80 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  u32(b, IFADDR.INDEX, link.index);
  const attrs = [rtattr(IFA_LOCAL, a.addr), rtattr(IFA_ADDRESS, a.addr)];
  const verb = opts.del ? 'del' : 'replace';
  const operation = `ip -6 addr ${verb} ${formatIpv6Prefix(a)} dev ${link.name}${opts.nodad && !opts.del ? ' nodad' : ''}`;
  return opts.del
    ? { operation, type: RTM_DELADDR, flags: NLM_F_REQUEST | NLM_F_ACK, family: b, attrs }
    : { operation, type: RTM_NEWADDR, flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, family: b, attrs };
}

/**
 * `ip -6 route add|replace|del [unreachable] DST [via GW] [dev NAME] metric M` in the main table.
 * `add` fails with EEXIST when a route to DST with that metric exists; `replace` takes its place.
 */
export function routeRequest(verb: 'add' | 'replace' | 'del', r: Ipv6Route): NetlinkRequest {
  const unreachable = r.type === 'unreachable';
  const b = Buffer.alloc(RTMSG.SIZE);
  b[RTMSG.FAMILY] = AF_INET6;
  b[RTMSG.DST_LEN] = r.dst.len;
  b[RTMSG.TABLE] = RT_TABLE_MAIN;
  // a delete matches any protocol and scope, as `ip route del` asks
  b[RTMSG.PROTOCOL] = verb === 'del' ? 0 : RTPROT_BOOT;
  b[RTMSG.SCOPE] = RT_SCOPE_UNIVERSE;
  b[RTMSG.TYPE] = unreachable ? RTN_UNREACHABLE : RTN_UNICAST;
  const attrs: Buffer[] = [];
  if (r.dst.len > 0) attrs.push(rtattr(RTA_DST, r.dst.addr));
  if (r.via) attrs.push(rtattr(RTA_GATEWAY, r.via));
  if (r.dev) attrs.push(rtattrU32(RTA_OIF, r.dev.index));
  attrs.push(rtattrU32(RTA_PRIORITY, r.metric));
  const dst = r.dst.len === 0 ? 'default' : formatIpv6Prefix(r.dst);
  const operation = `ip -6 route ${verb} ${unreachable ? 'unreachable ' : ''}${dst}${r.via ? ` via ${formatIpv6(r.via)}` : ''}${r.dev ? ` dev ${r.dev.name}` : ''} metric ${r.metric}`;
  const flags = NLM_F_REQUEST | NLM_F_ACK | (verb === 'add' ? NLM_F_CREATE | NLM_F_EXCL : verb === 'replace' ? NLM_F_CREATE | NLM_F_REPLACE : 0);
  return { operation, type: verb === 'del' ? RTM_DELROUTE : RTM_NEWROUTE, flags, family: b, attrs };
}

/** What the kernel said to one request: its errno (0: done) with its own sentence, and the messages it sent. */
export interface NetlinkAnswer {
  errno: number;
  /** The extended ACK's message, e.g. "Nexthop device is not up" (kernels from 4.12). */
  kernelMessage?: string;
  messages: Array<{ type: number; body: Buffer }>;
}

/**
 * The answers to request `seq` in `buf[0, n)`: its data messages, and the NLMSG_ERROR (or
 * NLMSG_DONE) that ends it. Answers to other sequence numbers are skipped. Throws on a message
 * that does not fit where it lies, or when nothing ended the request.
 */
export function readAnswer(buf: Buffer, n: number, seq: number): NetlinkAnswer {
  const messages: NetlinkAnswer['messages'] = [];
  for (let off = 0; n - off >= NLMSG.SIZE; ) {
    const len = readU32(buf, off + NLMSG.LEN);
    if (len < NLMSG.SIZE || len > n - off) throw new Error(`rtnetlink: an answer of ${len} bytes at offset ${off} runs past the ${n} received`);
    const type = readU16(buf, off + NLMSG.TYPE);
    const body = buf.subarray(off + NLMSG.SIZE, off + len);
    if (readU32(buf, off + NLMSG.SEQ) === seq >>> 0) {
      if (type === NLMSG_DONE) return { errno: 0, messages };
      if (type === NLMSG_ERROR) {
        if (body.length < NLMSGERR.REQUEST) throw new Error(`rtnetlink: an NLMSG_ERROR of ${len} bytes is too short to hold its errno`);
        const errno = -readI32(body, NLMSGERR.ERROR) | 0;
        const flags = readU16(buf, off + NLMSG.FLAGS);
        const kernelMessage = flags & NLM_F_ACK_TLVS ? extackMessage(body, (flags & NLM_F_CAPPED) !== 0) : undefined;
        return { errno, ...(kernelMessage ? { kernelMessage } : {}), messages };
      }
      messages.push({ type, body });
    }
    off += NLMSG_ALIGN(len);
  }
  throw new Error(`rtnetlink: the ${n} bytes received hold no end to request ${seq}`);
}

/** NLMSGERR_ATTR_MSG after the echoed request: its header alone when capped, else all of it (kernels before NETLINK_CAP_ACK). */
function extackMessage(body: Buffer, capped: boolean): string | undefined {
  if (body.length < NLMSGERR.REQUEST + NLMSG.SIZE) return undefined;
  const echoed = capped ? NLMSG.SIZE : readU32(body, NLMSGERR.REQUEST + NLMSG.LEN);
  return findStringAttr(body, NLMSGERR.REQUEST + NLMSG_ALIGN(echoed), NLMSGERR_ATTR_MSG);
}

function findStringAttr(b: Buffer, off: number, type: number): string | undefined {
  while (b.length - off >= RTA.SIZE) {
    const len = readU16(b, off + RTA.LEN);
    if (len < RTA.SIZE || off + len > b.length) return undefined;
    if ((readU16(b, off + RTA.TYPE) & 0x3fff) === type) return b.toString('utf8', off + RTA.SIZE, off + len).replace(/\0.*$/s, '');
    off += NLMSG_ALIGN(len);
  }
  return undefined;
}

const { ENODEV } = osConstants.errno;

/** The kernel refused a request, or its answer did not come: `operation` is the `ip` command that does the same. */
export class NetlinkError extends Error {
  /** `EEXIST`, `ENODEV`, …, as Node names errnos. */
  readonly code: string;
  constructor(
    readonly operation: string,
    readonly errno: number,
    readonly kernelMessage?: string,
    override readonly cause?: unknown,
  ) {
    // libuv's names and sentences, as Node's own errors carry them
    const [code, text] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, ''];
    super(`rtnetlink: ${operation}: ${text ? `${text} (${code})` : code}${kernelMessage ? `: ${kernelMessage}` : ''}`);
    this.name = 'NetlinkError';
    this.code = code;
  }
}

/** How long one request may wait for its answer: the kernel answers within the send unless rtnl_lock is held long. */
const ANSWER_TIMEOUT_MS = 5000;
/** Room for one request, and for the answers to one (a link's RTM_NEWLINK is about 1.5 KiB). */
const REQUEST_BYTES = 4096;
const ANSWER_BYTES = 64 * 1024;

type NetlinkCalls = Required<Pick<NativeAddon, 'openNetlinkRoute' | 'netlinkRequest' | 'closeFd'>>;

/**
 * A NETLINK_ROUTE socket of this process's network namespace, and the requests interface set-up
 * makes on it. Each call sends one request and returns when the kernel has answered it (the
 * kernel does the work inside the send); a refusal throws NetlinkError.
 */
export class Rtnetlink {
  private seq = 0;
  private readonly answers = Buffer.alloc(ANSWER_BYTES);

  private constructor(
    private readonly native: NetlinkCalls,
    private fd: number,
  ) {}

  /** The addon's socket, or null when the addon predates native/netlink.cc. */
  static open(native: NativeAddon = loadNative()): Rtnetlink | null {
    if (!native.openNetlinkRoute || !native.netlinkRequest) return null;
    const calls = native as NetlinkCalls;
    return new Rtnetlink(calls, calls.openNetlinkRoute());
  }

  /** Sends `req` and returns the kernel's answer; a refusal (errno ≠ 0) throws NetlinkError. */
  request(req: NetlinkRequest): NetlinkAnswer {
    if (this.fd < 0) throw new Error(`rtnetlink: ${req.operation}: the socket is closed`);
    this.seq = (this.seq + 1) >>> 0 || 1;
    const msg = nlmsg(req.type, req.flags, this.seq, req.family, req.attrs);
    if (msg.length > REQUEST_BYTES) throw new Error(`rtnetlink: ${req.operation}: a request of ${msg.length} bytes (at most ${REQUEST_BYTES})`);
    let n: number;
    try {
      n = this.native.netlinkRequest(this.fd, msg, msg.length, this.seq, this.answers, ANSWER_TIMEOUT_MS);
    } catch (e) {
      const err = e as { errno?: number; syscall?: string; message: string };
      throw new NetlinkError(req.operation, err.errno ?? 0, err.syscall ?? err.message, e);
    }
    const answer = readAnswer(this.answers, n, this.seq);
    if (answer.errno !== 0) throw new NetlinkError(req.operation, answer.errno, answer.kernelMessage);
    return answer;
  }

  /** The link's index, or null when there is no link of that name. */
  linkIndex(name: string): number | null {
    try {
      const answer = this.request(getLinkRequest(name));
      const link = answer.messages.find((m) => m.type === RTM_NEWLINK && m.body.length >= IFINFO.SIZE);
      if (!link) throw new Error(`rtnetlink: ip link show dev ${name}: the kernel answered without the link`);
      return readI32(link.body, IFINFO.INDEX);
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === ENODEV) return null;
      throw e;
    }
  }

  /** The link `name` by index, or a NetlinkError (ENODEV) naming it when it does not exist. */
  link(name: string): Link {
    const index = this.linkIndex(name);
    if (index === null) throw new NetlinkError(`ip link show dev ${name}`, ENODEV, 'no interface of that name');
    return { index, name };
  }

  setLink(link: Link, set: { mtu?: number; up?: boolean; multicast?: boolean }): void {
    this.request(setLinkRequest(link, set));
  }

  addrGenModeNone(link: Link): void {
    this.request(addrGenModeNoneRequest(link));
  }

  replaceAddress(link: Link, a: Ipv6Prefix, opts: { nodad?: boolean } = {}): void {
    this.request(addressRequest(link, a, opts));
  }

  deleteAddress(link: Link, a: Ipv6Prefix): void {
    this.request(addressRequest(link, a, { del: true }));
  }

  /** `add` throws NetlinkError EEXIST when a route to the prefix with that metric exists; `replace` takes its place. */
  addRoute(r: Ipv6Route, how: 'add' | 'replace' = 'add'): void {
    this.request(routeRequest(how, r));
  }

  deleteRoute(r: Ipv6Route): void {
    this.request(routeRequest('del', r));
  }

  close(): void {
    if (this.fd < 0) return;
    this.native.closeFd(this.fd);
    this.fd = -1;
  }
}
