/**
 * The options of a tunnel on this host, beside the tunnel options of src/encap/options.ts and in
 * the same shape: the interface, its routes and how packets cross the TUN. openTunnel's options,
 * the config file's keys and the `run` flags for them all come from HOST_OPTIONS.
 */
import { z } from 'zod';
import type { OptionDefinition, OptionValues } from '../encap/options.js';

const IFNAME = 'an interface name of 1..15 letters, digits, "-", "_" or "."';
/** Linux's IFNAMSIZ less the terminating NUL. */
const IFNAME_MAX = 15;
const ROUTE_METRIC = 'use a route metric: a whole number in 1..4294967295';

export const HOST_OPTIONS = {
  /** Interface name to create (must not exist); default `tun6in4-%d`, numbered by the kernel. */
  dev: {
    schema: z.string().superRefine((s, ctx) => {
      // the value is in the message: a name that looks right may be one character too long
      if (s.length > IFNAME_MAX) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)} is ${s.length} characters; Linux allows ${IFNAME_MAX}: use a shorter name, such as "he-ipv6"` });
      else if (!/^[a-zA-Z0-9_.-]+$/.test(s)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)} is not valid; use ${IFNAME}` });
    }),
    expect: `use ${IFNAME}`,
    flag: '--dev <name>',
    help: 'interface to create (must not exist); default tun6in4-N',
  },
  /** Install a default IPv6 route through the tunnel (6to4: only when a relay is set). Default true. */
  defaultRoute: {
    schema: z.boolean(),
    expect: 'use true or false',
    flag: '--no-default-route',
    help: 'do not route the IPv6 default through the tunnel',
  },
  /**
   * TUN offload: the kernel hands us 64 KiB TCP super-packets that we cut into tunnel-MTU
   * segments, and we hand it merged runs of received segments (GRO); what crosses the wire is
   * the same. Default on: ~1.4x the single-stream TCP throughput (bench/); off costs nothing
   * but that speed.
   */
  offload: {
    schema: z.boolean({ error: 'use true or false' }),
    expect: 'use true or false',
    flag: '--no-offload',
    help: 'no TUN offload: the kernel segments TCP before the TUN and we merge nothing (default: offload on)',
  },
  /**
   * Move batches of TUN reads and writes through io_uring where the kernel allows it (one
   * syscall a batch instead of one a packet). Default on; off, or where io_uring is missing or
   * refused (e.g. by a container's seccomp profile), plain read()/write() loops are used.
   */
  ioUring: {
    schema: z.boolean({ error: 'use true or false' }),
    expect: 'use true or false',
    flag: '--no-io-uring',
    help: 'move TUN packets with read()/write() per packet instead of io_uring batches',
  },
  /** Metric of the default route through the tunnel; default 1024 (the kernel's own default). */
  defaultRouteMetric: {
    schema: z.number({ error: ROUTE_METRIC }).int({ error: ROUTE_METRIC }).min(1, { error: ROUTE_METRIC }).max(4294967295, { error: ROUTE_METRIC }),
    expect: ROUTE_METRIC,
    flag: '--default-route-metric <n>',
    help: 'metric of the IPv6 default route through the tunnel (default 1024)',
  },
} as const satisfies Record<string, OptionDefinition>;

export type HostOptionKey = keyof typeof HOST_OPTIONS;
export const HOST_OPTION_KEYS = Object.keys(HOST_OPTIONS) as readonly HostOptionKey[];

/** HOST_OPTIONS as a type: each optional. */
export type HostOptions = Partial<OptionValues<typeof HOST_OPTIONS>>;

/** What interfacePlan needs of the host options. */
export type InterfaceOptions = Pick<HostOptions, 'defaultRoute' | 'defaultRouteMetric'>;
