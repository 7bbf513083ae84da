/**
 * tun6in4, the library. Each group below is one way to use it; everything the `tun6in4` command
 * does is here. Nothing in the first two groups needs root or the native addon; the addon loads
 * the first time a tunnel opens a real TUN or raw socket. Test doubles are in `tun6in4/testing`.
 */

// Run a tunnel on this host, as `tun6in4 run` does.
export { openTunnel, TunnelSetupError, interfacePlan, type OpenTunnelOptions, type RunningTunnel } from './host/open.js';
export type { HostOptions, InterfaceOptions } from './host/options.js';
export { sixRdStatus, peersStatus, PEERS_IN_STATUS, type TunnelStatus, type SixRdStatus, type PeersStatus, type PeerKind } from './host/status.js';

// Embed the protocol: buffers in, verdicts out (no TUN, no root).
export { Encapsulator, ENCAP_HEADROOM, tunnelMtuFromPath, type EncapsulatorEnvironment } from './encap/encapsulator.js';
export { PacketResult, Verdict } from './encap/result.js';
export {
  ConfigError,
  MTU_MIN,
  MTU_MAX,
  MTU_DEFAULT,
  TTL_DEFAULT,
  TOS_DEFAULT,
  ICMP_RATE_DEFAULT,
  ICMP_BURST_DEFAULT,
  type TunnelOptions,
  type TunnelMode,
  type PmtuMode,
  type SixToFourRole,
} from './encap/options.js';
export { resolveTunnelOptions, type TunnelConfig } from './encap/resolve.js';
export { parseSixRdDhcp, sixRdPrefixProblem, borderRelayProblem, MAX_6RD_RELAYS, type SixRdParameters } from './encap/sixrd-dhcp.js';
export { Counters, Drop, Traffic, DROP_REASONS, DROP_RULE, describeDrop, TRAFFIC_COUNTERS, type CountersSnapshot, type DropReason, type TrafficCounter } from './encap/counters.js';
// Addresses, as the options and status use them.
export {
  parseIpv4,
  formatIpv4,
  parseIpv6,
  formatIpv6,
  parseIpv6Prefix,
  formatIpv6Prefix,
  parseIpv4Prefix,
  classifyIpv4,
  linkLocalFromIpv4,
  type Ipv4Class,
  type Ipv6Prefix,
} from './packet/address.js';
export { SIX_TO_FOUR, embedIpv4, extractIpv4, delegatedPrefixLength, type SixRdDomain } from './packet/sixrd.js';
// Router advertisements for the routed prefix on LAN bridges (`advertise`), and their bytes.
export { RouterAdvertiser, type AdvertiserOptions, type AdvertiserStatus } from './advertise/advertiser.js';
export type { AdvertiseTarget, AdvertiseOptions } from './advertise/options.js';
export { nextUnsolicitedDelayS, solicitedAnswerAtMs } from './advertise/schedule.js';
export {
  buildRouterAdvertisement,
  buildRouterSolicitation,
  validateRouterSolicitation,
  NdpType,
  NdpOption,
  type RouterAdvertisement,
  type RsVerdict,
} from './packet/ndp.js';
export { icmpv6Checksum } from './packet/icmpv6.js';

// Drive the batched forwarding loop over your own TUN-like devices and outer transports.
export { TunnelEngine, type EngineOptions, type RxInterceptor } from './engine/engine.js';
// Watch it: every packet decision (engine.setTracer), the 6to4/6rd peer table (engine.peers), pcapng.
export { TracePoint, TraceDirection, type Tracer } from './engine/trace.js';
export { traceRecord, formatTraceLine, traceDecision, type TraceRecord, type TraceDirectionName, type TraceVerdictName } from './daemon/trace-record.js';
export { PeerTable, PEER_TABLE_SIZE, type PeerEntry } from './engine/peers.js';
export { pcapngSectionHeader, pcapngInterface, pcapngPacket, isoToMicros, LINKTYPE_RAW } from './daemon/pcapng.js';
export { SLOT_HEADROOM, SLOT_SIZE, MAX_BATCH } from './io/slots.js';
export { packOuterFields, outerTtl, outerTos, outerDf, OUTER_DF } from './packet/ipv4.js';
export { type TunDevice } from './tun/device.js';
export { LinuxTun } from './tun/linux-tun.js';
export { OffloadTun, OFFLOAD_WRITE_HEADROOM, type OffloadDrop } from './tun/offload.js';
export { ERROR_INFO_STRIDE, ErrorOrigin, type OuterTransport } from './transport/transport.js';
export { RawTransport } from './transport/raw.js';
export { FouTransport, type FouOptions } from './transport/fou.js';
export { SharedTransports, HOST_TRANSPORTS, type PortRole } from './transport/shared-transports.js';
export { configureInterface, removeRoutes, sourceAddressToward, type InterfacePlan, type InstalledRoutes } from './tun/interface.js';

// Operate: several tunnels from a configuration (`tun6in4 up`), status over the control socket,
// keepalive and health, the broker update, metrics, least privilege, host checks, the lab.
export { Daemon, type DaemonStatus, type RunningConfig } from './daemon/daemon.js';
export {
  loadDaemonConfig,
  parseDaemonConfig,
  parseDaemonConfigText,
  configFormatOf,
  daemonConfigToFile,
  formatDaemonConfig,
  ConfigFileError,
  DEFAULT_CONTROL_SOCKET,
  type DaemonConfig,
  type DaemonConfigFile,
  type ConfigFormat,
} from './daemon/config.js';
export { checkDaemonConfig, type ConfigCheck } from './daemon/check.js';
export { ManagedTunnel, KEEPALIVE_DEFAULT_S, type TunnelSpec, type ManagedStatus } from './daemon/managed-tunnel.js';
export { queryControl, findControlSocket, listenControl, ControlSocketBusyError, ControlStream, type ControlListener, type ControlHandler, type ControlLimits } from './daemon/control.js';
export { TraceRing, TraceStream, traceCommand, TRACE_RING_SIZE, TRACE_SNAP_LEN, type TraceLine, type TraceRequest, type TraceSink, type TraceSource, type TraceStreamOptions } from './daemon/trace-stream.js';
export { Keepalive, type KeepaliveStats, type TunnelHealth } from './daemon/keepalive.js';
export { BrokerUpdater, HE_UPDATE_URL, redactUrl, readUpdateKey, UpdateKeyError, type BrokerUpdateOptions, type UpdateStatus, type UpdateOutcome } from './daemon/broker-update.js';
export { renderMetrics } from './daemon/metrics.js';
export { dropPrivileges, resolveUser, resolveGroup, resolveDropTarget } from './daemon/privileges.js';
export { UntrustedFileError, readTrustedFile, type TrustedFileOptions } from './daemon/trusted-file.js';
export { runDoctor, missingNetworkCapabilities, type Finding, type FindingLevel, type DoctorOptions } from './doctor/doctor.js';
export { tunNode, formatTunNode, lookupTunUser, currentTunUser, modeAllows, tunOpenDenied, tunOpenDeniedMessage, TUN_PATH, type TunNode, type TunUser } from './host/tun-access.js';
export { runLab, formatLabReport, type LabReport, type LabStep, type RunLabOptions } from './lab/lab.js';

// The native addon: which binary loaded, and building one from source where none fits.
export { BUILD_NATIVE_COMMAND, NativeAddonError, nativeAddonInfo, type NativeAddonInfo } from './io/native.js';
export { buildNativeAddon, NativeBuildError, type NativeBuildOptions } from './io/native-build.js';

// Bring a kernel sit tunnel's configuration over (`tun6in4 import`): a broker's shell block,
// systemd-networkd, ifupdown(-ng), netplan or OpenWrt UCI in, commented TOML out.
export {
  importConfig,
  importFiles,
  detectFormat,
  writeKeyFile,
  checkImported,
  IMPORT_FORMATS,
  FORMAT_NAMES,
  ImportError,
  ImportedSecret,
  type ImportFormat,
  type ImportInput,
  type ImportOptions,
  type ImportResult,
  type ImportedTunnel,
  type Note as ImportNote,
  type SourceRef,
} from './import/index.js';

// Names replaced after 0.1.0 (issue 24), kept for one release; CHANGELOG.md says what each became.
export { Tunnel, SharedSockets, HOST_SOCKETS, type TunnelEnvironment, type TunnelState } from './deprecated.js';
