/**
 * tun6in4, the library: what the `tun6in4` command does, as calls. Each group below is one way to
 * use it: run a tunnel, embed the protocol, operate tunnels, import a kernel configuration. Nothing
 * in the embedding group needs root or the native addon; the addon loads the first time a tunnel
 * opens a real TUN or raw socket. The parts a tunnel is built from (the loop, its devices and
 * transports, trace tooling, router advertisements) are in `tun6in4/engine`; test doubles in
 * `tun6in4/testing`. `test/public-api.test.ts` holds this list to its size.
 */

// Run a tunnel on this host, as `tun6in4 run` does. (openTunnel comes through deprecated.ts, which
// lets it take 0.1's option and member names until 0.3.0.)
export { openTunnel } from './deprecated.js';
export { TunnelSetupError, type OpenTunnelOptions, type RunningTunnel } from './host/open.js';
export type { TunnelStatus } from './host/status.js';

// Embed the protocol: buffers in, verdicts out (no TUN, no root); its options, counters and addresses.
export { Encapsulator, ENCAP_HEADROOM, type EncapsulatorEnvironment } from './encap/encapsulator.js';
export { PacketResult, Verdict } from './encap/result.js';
export { ConfigError, type TunnelOptions } from './encap/options.js';
export { resolveTunnelOptions, type TunnelConfig } from './encap/resolve.js';
export { Counters, Drop, Traffic, DROP_REASONS, describeDrop, type CountersSnapshot, type DropReason } from './encap/counters.js';
export { parseIpv4, formatIpv4, parseIpv6, formatIpv6, parseIpv6Prefix, formatIpv6Prefix, type Ipv6Prefix } from './packet/address.js';

// Operate: several tunnels from a configuration (`tun6in4 up`), status and traces over the control
// socket, keepalive health, the broker update, metrics, least privilege, host checks, the lab,
// and the native addon (which binary loaded; building one where none fits).
export { Daemon, type DaemonStatus, type RunningConfig } from './daemon/daemon.js';
export { loadDaemonConfig, parseDaemonConfig, daemonConfigToFile, formatDaemonConfig, ConfigFileError, type DaemonConfig, type DaemonConfigFile, type ConfigFormat } from './daemon/config.js';
export { checkDaemonConfig, type ConfigCheck } from './daemon/check.js';
export { ManagedTunnel, type TunnelSpec, type ManagedStatus } from './daemon/managed-tunnel.js';
export { queryControl, findControlSocket } from './daemon/control.js';
export type { TraceLine } from './daemon/trace-stream.js';
export { traceRecord, formatTraceLine, type TraceRecord } from './daemon/trace-record.js';
export { Keepalive, type KeepaliveStats, type TunnelHealth } from './daemon/keepalive.js';
export { BrokerUpdater, UpdateKeyError, type BrokerUpdateOptions, type UpdateStatus } from './daemon/broker-update.js';
export { renderMetrics } from './daemon/metrics.js';
export { dropPrivileges } from './daemon/privileges.js';
export { UntrustedFileError } from './daemon/trusted-file.js';
export { runDoctor, type Finding, type DoctorOptions } from './doctor/doctor.js';
export { runLab, formatLabReport, type LabReport, type RunLabOptions } from './lab/lab.js';
export { NativeAddonError, nativeAddonInfo, type NativeAddonInfo } from './io/native.js';
export { buildNativeAddon, NativeBuildError, type NativeBuildOptions } from './io/native-build.js';

// Bring a kernel sit tunnel's configuration over (`tun6in4 import`): a broker's shell block,
// systemd-networkd, ifupdown(-ng), netplan or OpenWrt UCI in, commented TOML out.
export {
  importConfig,
  importFiles,
  writeKeyFile,
  checkImported,
  ImportError,
  ImportedSecret,
  type ImportFormat,
  type ImportInput,
  type ImportOptions,
  type ImportResult,
} from './import/index.js';

// Deprecated names, each marked with what to use and the release that removes it. A star, not a
// list: only the star carries each name's deprecation mark through to the importing program's editor.
export * from './deprecated.js';
