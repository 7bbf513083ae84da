/**
 * The package's public face (issue 34): `tun6in4` exports what people do — run a tunnel, embed the
 * Encapsulator, operate, import — and `tun6in4/engine` the parts a tunnel is built from. Every
 * name `tun6in4` exported before stays importable from it for one release, marked deprecated.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { publicNames } from './helpers/exports.js';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** What `tun6in4` exported before issue 34 split it: 231 names, each kept for one release. */
const BEFORE_ISSUE_34 = `
  openTunnel TunnelSetupError interfacePlan OpenTunnelOptions RunningTunnel HostOptions InterfaceOptions
  sixRdStatus peersStatus PEERS_IN_STATUS TunnelStatus SixRdStatus PeersStatus PeerKind Encapsulator
  ENCAP_HEADROOM tunnelMtuFromPath EncapsulatorEnvironment PacketResult Verdict ConfigError MTU_MIN MTU_MAX
  MTU_DEFAULT TTL_DEFAULT TOS_DEFAULT ICMP_RATE_DEFAULT ICMP_BURST_DEFAULT TunnelOptions TunnelMode PmtuMode
  SixToFourRole resolveTunnelOptions TunnelConfig parseSixRdDhcp sixRdPrefixProblem borderRelayProblem
  MAX_6RD_RELAYS SixRdParameters Counters Drop Traffic DROP_REASONS DROP_RULE describeDrop TRAFFIC_COUNTERS
  CountersSnapshot DropReason TrafficCounter parseIpv4 formatIpv4 parseIpv6 formatIpv6 parseIpv6Prefix
  formatIpv6Prefix parseIpv4Prefix classifyIpv4 linkLocalFromIpv4 Ipv4Class Ipv6Prefix SIX_TO_FOUR embedIpv4
  extractIpv4 delegatedPrefixLength SixRdDomain RouterAdvertiser AdvertiseTarget AdvertiserOptions
  AdvertiserStatus buildRouterAdvertisement buildRouterSolicitation validateRouterSolicitation icmpv6Checksum
  nextUnsolicitedDelayS solicitedAnswerAtMs NdpType NdpOption RouterAdvertisement RsVerdict TunnelEngine
  EngineOptions RxInterceptor TracePoint TraceDirection Tracer traceRecord formatTraceLine traceDecision
  TraceRecord TraceDirectionName TraceVerdictName PeerTable PEER_TABLE_SIZE PeerEntry pcapngSectionHeader
  pcapngInterface pcapngPacket isoToMicros LINKTYPE_RAW SLOT_HEADROOM SLOT_SIZE MAX_BATCH packOuterFields
  outerTtl outerTos outerDf OUTER_DF TunDevice LinuxTun OffloadTun OFFLOAD_WRITE_HEADROOM OffloadDrop
  ERROR_INFO_STRIDE ErrorOrigin OuterTransport RawTransport FouTransport FouOptions SharedTransports
  HOST_TRANSPORTS PortRole configureInterface removeRoutes sourceAddressToward InterfacePlan InstalledRoutes
  Daemon DaemonStatus RunningConfig loadDaemonConfig parseDaemonConfig parseDaemonConfigText configFormatOf
  daemonConfigToFile formatDaemonConfig ConfigFileError DEFAULT_CONTROL_SOCKET DaemonConfig DaemonConfigFile
  ConfigFormat checkDaemonConfig ConfigCheck ManagedTunnel KEEPALIVE_DEFAULT_S TunnelSpec ManagedStatus
  queryControl findControlSocket listenControl ControlSocketBusyError ControlStream ControlListener
  ControlHandler ControlLimits TraceRing TraceStream traceCommand TRACE_RING_SIZE TRACE_SNAP_LEN TraceLine
  TraceRequest TraceSink TraceSource TraceStreamOptions Keepalive KeepaliveStats TunnelHealth BrokerUpdater
  HE_UPDATE_URL redactUrl readUpdateKey UpdateKeyError BrokerUpdateOptions UpdateStatus UpdateOutcome
  renderMetrics dropPrivileges resolveUser resolveGroup resolveDropTarget UntrustedFileError readTrustedFile
  TrustedFileOptions runDoctor missingNetworkCapabilities Finding FindingLevel DoctorOptions tunNode
  formatTunNode lookupTunUser currentTunUser modeAllows tunOpenDenied tunOpenDeniedMessage TUN_PATH TunNode
  TunUser runLab formatLabReport LabReport LabStep RunLabOptions BUILD_NATIVE_COMMAND NativeAddonError
  nativeAddonInfo NativeAddonInfo buildNativeAddon NativeBuildError NativeBuildOptions importConfig importFiles
  detectFormat writeKeyFile checkImported IMPORT_FORMATS FORMAT_NAMES ImportError ImportedSecret ImportFormat
  ImportInput ImportOptions ImportResult ImportedTunnel ImportNote SourceRef Tunnel SharedSockets HOST_SOCKETS
  TunnelEnvironment TunnelState
`.split(/\s+/).filter(Boolean);

/** About 80: a name added to `tun6in4` should push another out, or go to tun6in4/engine. */
const MAIN_AT_MOST = 85;

describe('the public face', () => {
  const entries = publicNames();
  const current = (e: keyof typeof entries) => entries[e].filter((n) => n.deprecated === null);

  it(`tun6in4 exports at most ${MAIN_AT_MOST} names that are not deprecated`, () => {
    expect(BEFORE_ISSUE_34).toHaveLength(231);
    const names = current('tun6in4').map((n) => n.name);
    console.info(`tun6in4: ${names.length} names, and ${entries.tun6in4.length - names.length} deprecated; tun6in4/engine: ${entries['tun6in4/engine'].length}`);
    expect(names.length).toBeLessThanOrEqual(MAIN_AT_MOST);
    // what each group is for is still there
    expect(names).toEqual(expect.arrayContaining(['openTunnel', 'Encapsulator', 'PacketResult', 'Daemon', 'loadDaemonConfig', 'queryControl', 'traceRecord', 'BrokerUpdater', 'renderMetrics', 'importConfig']));
  });

  it('every name tun6in4 exported before is exported by it still: current, or deprecated', () => {
    const now = new Set(entries.tun6in4.map((n) => n.name));
    expect(BEFORE_ISSUE_34.filter((n) => !now.has(n))).toEqual([]);
  });

  it('each deprecated name says what to use and that 0.3.0 removes it; one sent to tun6in4/engine is exported there, current', () => {
    const engine = new Map(entries['tun6in4/engine'].map((n) => [n.name, n]));
    const deprecated = entries.tun6in4.filter((n) => n.deprecated !== null);
    expect(deprecated.length).toBeGreaterThan(100);
    for (const n of deprecated) {
      expect(n.deprecated, n.name).toMatch(/^(use|import it from|\w).*; removed (from tun6in4 )?in 0\.3\.0$/);
      if (!n.deprecated!.includes('tun6in4/engine')) continue;
      // moved under its own name (the same declaration), or renamed to one that is there
      const there = engine.get(n.name) ?? engine.get(n.deprecated!.match(/^use (\w+)/)?.[1] ?? '');
      expect(there, `${n.name} in tun6in4/engine`).toBeDefined();
      expect(there!.deprecated, n.name).toBeNull();
      if (there!.name === n.name) expect([there!.file, there!.original], n.name).toEqual([n.file, n.original]);
    }
  });

  it('tun6in4/engine and tun6in4/testing export no deprecated name, and no name is current in two entries', () => {
    expect(entries['tun6in4/engine'].filter((n) => n.deprecated !== null)).toEqual([]);
    expect(entries['tun6in4/testing'].filter((n) => n.deprecated !== null)).toEqual([]);
    const main = new Set(current('tun6in4').map((n) => n.name));
    expect(entries['tun6in4/engine'].filter((n) => main.has(n.name)).map((n) => n.name)).toEqual([]);
    expect(entries['tun6in4/testing'].filter((n) => main.has(n.name)).map((n) => n.name)).toEqual([]);
  });

  it('each value is the one its module declares, whichever entry it is imported from', async () => {
    const loaded = { tun6in4: await import('../src/index.js'), 'tun6in4/engine': await import('../src/engine-api.js'), 'tun6in4/testing': await import('../src/testing.js') } as Record<keyof typeof entries, Record<string, unknown>>;
    let checked = 0;
    for (const [entry, names] of Object.entries(entries) as Array<[keyof typeof entries, typeof entries.tun6in4]>) {
      for (const n of names.filter((x) => x.value)) {
        const declared = (await import(n.file)) as Record<string, unknown>;
        expect(loaded[entry][n.name], `${entry} ${n.name}`).toBeDefined();
        // the openTunnel that also takes 0.1's names is deprecated.ts's own, not a re-export
        expect(loaded[entry][n.name], `${entry} ${n.name}`).toBe(declared[n.original]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(150);
  });

  it('no folder of src/ has a barrel: every export * is in a top-level entry', () => {
    const barrels: string[] = [];
    for (const dir of readdirSync(SRC).filter((d) => statSync(join(SRC, d)).isDirectory())) {
      for (const f of readdirSync(join(SRC, dir)).filter((x) => x.endsWith('.ts'))) {
        if (/^export \* from /m.test(readFileSync(join(SRC, dir, f), 'utf8'))) barrels.push(`src/${dir}/${f}`);
      }
    }
    expect(barrels).toEqual([]);
  });
});
