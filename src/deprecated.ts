/**
 * Every deprecated name and member of the package, in one place, each saying what to use instead
 * and the release that removes it. Programs written against 0.1 still build and run; their
 * editors strike these through. CHANGELOG.md lists each change. (The renaming script of issue 24
 * skips this file.) `test/deprecated.test.ts` checks that each still works and is marked.
 *
 * src/index.ts re-exports this module with a star, which is what carries each @deprecated tag on
 * an export specifier below through to the user's editor; a named re-export would drop it.
 */
import { Encapsulator, type EncapsulatorEnvironment } from './encap/encapsulator.js';
import { Keepalive, type TunnelHealth } from './daemon/keepalive.js';
import type { TunnelConfig } from './encap/resolve.js';
import { TunnelEngine } from './engine/engine.js';
import type { TunnelPolicy } from './engine/policy.js';
import { openTunnel as open, type OpenTunnelOptions, type RunningTunnel } from './host/open.js';
import { HOST_TRANSPORTS, SharedTransports } from './transport/shared-transports.js';
import type { OuterTransport } from './transport/transport.js';

// Renamed after 0.1.0 (issue 24): one noun per concept.

/** @deprecated use Encapsulator (the class is the encapsulator of one tunnel, not the tunnel); removed in 0.3.0 */
export const Tunnel = Encapsulator;
/** @deprecated use Encapsulator; removed in 0.3.0 */
export type Tunnel = Encapsulator;
/** @deprecated use EncapsulatorEnvironment; removed in 0.3.0 */
export type TunnelEnvironment = EncapsulatorEnvironment;
/** @deprecated use TunnelHealth (TunnelStatus.state is running/stopped; this is the keepalive's verdict); removed in 0.3.0 */
export type TunnelState = TunnelHealth;
/** @deprecated use SharedTransports (from tun6in4/engine); removed in 0.3.0 */
export const SharedSockets = SharedTransports;
/** @deprecated use SharedTransports (from tun6in4/engine); removed in 0.3.0 */
export type SharedSockets = SharedTransports;
/** @deprecated use HOST_TRANSPORTS (from tun6in4/engine); removed in 0.3.0 */
export const HOST_SOCKETS = HOST_TRANSPORTS;

// Members renamed after 0.1.0 (issue 24). Declared onto the classes here and defined on their
// prototypes, so the classes' own files hold only the current names.

declare module './engine/engine.js' {
  interface TunnelEngine<P extends TunnelPolicy = Encapsulator> {
    /** @deprecated use replaceTransport; removed in 0.3.0 */
    replaceSocket(transport: OuterTransport): void;
    /** @deprecated use encapsulator; removed in 0.3.0 */
    readonly tunnel: P;
  }
}
declare module './advertise/advertiser.js' {
  // status --json's advertise[].counters before issue 34 (flat); the same numbers are in traffic and drops
  interface AdvertiserCounters {
    /** @deprecated use traffic.ra_sent; removed in 0.3.0 */ ra_sent: number;
    /** @deprecated use traffic.ra_solicited; removed in 0.3.0 */ ra_solicited: number;
    /** @deprecated use traffic.rs_received; removed in 0.3.0 */ rs_received: number;
    /** @deprecated use drops; removed in 0.3.0 */ rs_dropped: Record<RsDropReason, number>;
    /** @deprecated use traffic.send_errors; removed in 0.3.0 */ send_errors: number;
  }
}
declare module './daemon/keepalive.js' {
  interface Keepalive {
    /** @deprecated use health(), the same answer (renamed so it is not confused with TunnelStatus.state); removed in 0.3.0 */
    state(lastRxAt: number): TunnelHealth;
  }
}
Object.defineProperties(TunnelEngine.prototype, {
  replaceSocket: {
    value(this: TunnelEngine, transport: OuterTransport): void {
      this.replaceTransport(transport);
    },
    writable: true,
    configurable: true,
  },
  tunnel: {
    get(this: TunnelEngine<TunnelPolicy>): TunnelPolicy {
      return this.encapsulator;
    },
    configurable: true,
  },
});
Object.defineProperty(Keepalive.prototype, 'state', {
  value(this: Keepalive, lastRxAt: number): TunnelHealth {
    return this.health(lastRxAt);
  },
  writable: true,
  configurable: true,
});

/**
 * openTunnel (src/host/open.ts), also taking 0.1's `sharedSockets` option and answering 0.1's
 * `tunnel` member; the package's `openTunnel` until 0.3.0, when it is host/open.ts's again.
 */
export async function openTunnel(
  opts: OpenTunnelOptions & {
    /** @deprecated use sharedTransports; removed in 0.3.0 */
    sharedSockets?: SharedTransports;
  },
  resolved?: TunnelConfig,
): Promise<
  RunningTunnel & {
    /** @deprecated use encapsulator; removed in 0.3.0 */
    readonly tunnel: Encapsulator;
  }
> {
  const { sharedSockets, ...options } = opts;
  const t = await open({ ...options, sharedTransports: options.sharedTransports ?? sharedSockets }, resolved);
  return Object.defineProperty(t, 'tunnel', { get: () => t.encapsulator, enumerable: false }) as RunningTunnel & { readonly tunnel: Encapsulator };
}

// Exported by tun6in4 0.1 and now by tun6in4/engine only: the loop, its devices and transports,
// trace tooling, router advertisements, address maths (issue 34).

export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ interfacePlan,
} from './host/open.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type InterfaceOptions,
} from './host/options.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ sixRdStatus,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ peersStatus,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ PEERS_IN_STATUS,
} from './host/status.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ tunnelMtuFromPath,
} from './encap/encapsulator.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ parseSixRdDhcp,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ MAX_6RD_RELAYS,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type SixRdParameters,
} from './encap/sixrd-dhcp.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ parseIpv4Prefix,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ classifyIpv4,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ linkLocalFromIpv4,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type Ipv4Class,
} from './packet/address.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ SIX_TO_FOUR,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ embedIpv4,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ extractIpv4,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ delegatedPrefixLength,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type SixRdDomain,
} from './packet/sixrd.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ RouterAdvertiser,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type AdvertiserOptions,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type AdvertiserStatus,
} from './advertise/advertiser.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type AdvertiseTarget,
} from './advertise/options.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ nextUnsolicitedDelayS,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ solicitedAnswerAtMs,
} from './advertise/schedule.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ icmpv6Checksum,
} from './packet/icmpv6.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ buildRouterAdvertisement,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ buildRouterSolicitation,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ validateRouterSolicitation,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ NdpType,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ NdpOption,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type RouterAdvertisement,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type RsVerdict,
} from './packet/ndp.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ TunnelEngine,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type EngineOptions,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type RxInterceptor,
} from './engine/engine.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ TracePoint,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ TraceDirection,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type Tracer,
} from './engine/trace.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ traceDecision,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type TraceDirectionName,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type TraceVerdictName,
} from './daemon/trace-record.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ PeerTable,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ PEER_TABLE_SIZE,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type PeerEntry,
} from './engine/peers.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ pcapngSectionHeader,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ pcapngInterface,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ pcapngPacket,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ isoToMicros,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ LINKTYPE_RAW,
} from './daemon/pcapng.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ SLOT_HEADROOM,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ SLOT_SIZE,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ MAX_BATCH,
} from './io/slots.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ packOuterFields,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ outerTtl,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ outerTos,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ outerDf,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ OUTER_DF,
} from './packet/ipv4.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type TunDevice,
} from './tun/device.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ LinuxTun,
} from './tun/linux-tun.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ OffloadTun,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ OFFLOAD_WRITE_HEADROOM,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type OffloadDrop,
} from './tun/offload.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ ERROR_INFO_STRIDE,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ ErrorOrigin,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type OuterTransport,
} from './transport/transport.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ RawTransport,
} from './transport/raw.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ FouTransport,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type FouOptions,
} from './transport/fou.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ SharedTransports,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ HOST_TRANSPORTS,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type PortRole,
} from './transport/shared-transports.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ configureInterface,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ removeRoutes,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ sourceAddressToward,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type InterfacePlan,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type InstalledRoutes,
} from './tun/interface.js';
export {
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ TraceRing,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ TraceStream,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ TRACE_RING_SIZE,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ TRACE_SNAP_LEN,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type TraceSink,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type TraceSource,
  /** @deprecated import it from tun6in4/engine; removed from tun6in4 in 0.3.0 */ type TraceStreamOptions,
} from './daemon/trace-stream.js';

// Exported by tun6in4 0.1, for the package's own use: each says what a program does instead (issue 34).

export {
  /** @deprecated use OpenTunnelOptions, which extends it; removed in 0.3.0 */ type HostOptions,
} from './host/options.js';
export {
  /** @deprecated use TunnelStatus['sixrd']; removed in 0.3.0 */ type SixRdStatus,
  /** @deprecated use TunnelStatus['peers']; removed in 0.3.0 */ type PeersStatus,
  /** @deprecated use NonNullable<TunnelStatus['peers']>['top'][number]['kind']; removed in 0.3.0 */ type PeerKind,
} from './host/status.js';
export {
  /** @deprecated resolveTunnelOptions fills in each default, and a ConfigError states each range; removed in 0.3.0 */ MTU_MIN,
  /** @deprecated resolveTunnelOptions fills in each default, and a ConfigError states each range; removed in 0.3.0 */ MTU_MAX,
  /** @deprecated resolveTunnelOptions fills in each default, and a ConfigError states each range; removed in 0.3.0 */ MTU_DEFAULT,
  /** @deprecated resolveTunnelOptions fills in each default, and a ConfigError states each range; removed in 0.3.0 */ TTL_DEFAULT,
  /** @deprecated resolveTunnelOptions fills in each default, and a ConfigError states each range; removed in 0.3.0 */ TOS_DEFAULT,
  /** @deprecated resolveTunnelOptions fills in each default, and a ConfigError states each range; removed in 0.3.0 */ ICMP_RATE_DEFAULT,
  /** @deprecated resolveTunnelOptions fills in each default, and a ConfigError states each range; removed in 0.3.0 */ ICMP_BURST_DEFAULT,
  /** @deprecated use TunnelOptions['mode']; removed in 0.3.0 */ type TunnelMode,
  /** @deprecated use TunnelOptions['pmtu']; removed in 0.3.0 */ type PmtuMode,
  /** @deprecated use TunnelOptions['role']; removed in 0.3.0 */ type SixToFourRole,
} from './encap/options.js';
export {
  /** @deprecated resolveTunnelOptions checks the 6rd options and throws ConfigError; removed in 0.3.0 */ sixRdPrefixProblem,
  /** @deprecated resolveTunnelOptions checks the 6rd options and throws ConfigError; removed in 0.3.0 */ borderRelayProblem,
} from './encap/sixrd-dhcp.js';
export {
  /** @deprecated describeDrop(reason) names the rule; removed in 0.3.0 */ DROP_RULE,
  /** @deprecated Object.keys(Traffic), in index order; removed in 0.3.0 */ TRAFFIC_COUNTERS,
  /** @deprecated use keyof typeof Traffic; removed in 0.3.0 */ type TrafficCounter,
} from './encap/counters.js';
export {
  /** @deprecated use loadDaemonConfig(path), or parseDaemonConfig on the parsed object; removed in 0.3.0 */ parseDaemonConfigText,
  /** @deprecated loadDaemonConfig picks the format from the file name; removed in 0.3.0 */ configFormatOf,
  /** @deprecated findControlSocket finds the daemon's socket; removed in 0.3.0 */ DEFAULT_CONTROL_SOCKET,
} from './daemon/config.js';
export {
  /** @deprecated the daemon's default interval (docs/operating.md); removed in 0.3.0 */ KEEPALIVE_DEFAULT_S,
} from './daemon/managed-tunnel.js';
export {
  /** @deprecated the daemon's control server, not an API; talk to it with queryControl; removed in 0.3.0 */ listenControl,
  /** @deprecated the daemon's control server, not an API; talk to it with queryControl; removed in 0.3.0 */ ControlSocketBusyError,
  /** @deprecated the daemon's control server, not an API; talk to it with queryControl; removed in 0.3.0 */ ControlStream,
  /** @deprecated the daemon's control server, not an API; talk to it with queryControl; removed in 0.3.0 */ type ControlListener,
  /** @deprecated the daemon's control server, not an API; talk to it with queryControl; removed in 0.3.0 */ type ControlHandler,
  /** @deprecated the daemon's control server, not an API; talk to it with queryControl; removed in 0.3.0 */ type ControlLimits,
} from './daemon/control.js';
export {
  /** @deprecated the daemon's control server, not an API; talk to it with queryControl; removed in 0.3.0 */ traceCommand,
  /** @deprecated send `trace` as docs/operating.md writes it; removed in 0.3.0 */ type TraceRequest,
} from './daemon/trace-stream.js';
export {
  /** @deprecated BrokerUpdater's own; removed in 0.3.0 */ HE_UPDATE_URL,
  /** @deprecated BrokerUpdater's own; removed in 0.3.0 */ redactUrl,
  /** @deprecated BrokerUpdater's own; removed in 0.3.0 */ readUpdateKey,
  /** @deprecated use UpdateStatus['outcome']; removed in 0.3.0 */ type UpdateOutcome,
} from './daemon/broker-update.js';
export {
  /** @deprecated dropPrivileges(user, group) resolves the names and returns the ids; removed in 0.3.0 */ resolveUser,
  /** @deprecated dropPrivileges(user, group) resolves the names and returns the ids; removed in 0.3.0 */ resolveGroup,
  /** @deprecated dropPrivileges(user, group) resolves the names and returns the ids; removed in 0.3.0 */ resolveDropTarget,
} from './daemon/privileges.js';
export {
  /** @deprecated loadDaemonConfig checks each file it reads (UntrustedFileError); removed in 0.3.0 */ readTrustedFile,
  /** @deprecated loadDaemonConfig checks each file it reads (UntrustedFileError); removed in 0.3.0 */ type TrustedFileOptions,
} from './daemon/trusted-file.js';
export {
  /** @deprecated runDoctor reports missing capabilities as a Finding; removed in 0.3.0 */ missingNetworkCapabilities,
  /** @deprecated use Finding['level']; removed in 0.3.0 */ type FindingLevel,
} from './doctor/doctor.js';
export {
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ tunNode,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ formatTunNode,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ lookupTunUser,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ currentTunUser,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ modeAllows,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ tunOpenDenied,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ tunOpenDeniedMessage,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ TUN_PATH,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ type TunNode,
  /** @deprecated runDoctor checks /dev/net/tun; TunnelSetupError NO_PERMISSION says why it was refused; removed in 0.3.0 */ type TunUser,
} from './host/tun-access.js';
export {
  /** @deprecated use LabReport['steps'][number]; removed in 0.3.0 */ type LabStep,
} from './lab/lab.js';
export {
  /** @deprecated NativeAddonError.fix names the command; removed in 0.3.0 */ BUILD_NATIVE_COMMAND,
} from './io/native.js';
export {
  /** @deprecated importConfig(text) detects the format; removed in 0.3.0 */ detectFormat,
  /** @deprecated the ImportFormat type lists the formats; removed in 0.3.0 */ IMPORT_FORMATS,
  /** @deprecated the ImportFormat type lists the formats; removed in 0.3.0 */ FORMAT_NAMES,
  /** @deprecated use ImportResult['tunnels'][number]; removed in 0.3.0 */ type ImportedTunnel,
  /** @deprecated use ImportResult['tunnels'][number]['notes'][number]; removed in 0.3.0 */ type Note as ImportNote,
  /** @deprecated use ImportResult['tunnels'][number]['from']; removed in 0.3.0 */ type SourceRef,
} from './import/index.js';
