/**
 * tun6in4/engine: the parts `openTunnel` is built from, for a program that builds its own host or
 * loop — the batched engine and the device and transport interfaces it drives, their Linux
 * implementations, the arena layout and outer-field packing they share, the tracer hook, the peer
 * table, a broker's table of many tunnels, trace tooling, the interface plan, router advertisements and the address maths under
 * them. A program that runs, embeds, operates or imports tunnels needs only `tun6in4`. These
 * names follow the loop: they may change in a minor release (CHANGELOG.md says how).
 */
// Members that 0.1 programs still call on these classes (TunnelEngine.replaceSocket, .tunnel) live there.
import './deprecated.js';

// The loop: batches from a TunDevice through the Encapsulator to an OuterTransport, and back.
export { TunnelEngine, type EngineOptions, type RxInterceptor } from './engine/engine.js';
export type { TunnelPolicy } from './engine/policy.js';
export { tierUpEarly } from './engine/tiering.js';
// What the loop, the devices, the transports and the addon pass a batch of packets in.
export { PacketBatch, BatchColumn } from './io/batch.js';
export { SLOT_HEADROOM, SLOT_SIZE, MAX_BATCH } from './io/slots.js';
export { packOuterFields, outerTtl, outerTos, outerDf, OUTER_DF } from './packet/ipv4.js';
export { tunnelMtuFromPath } from './encap/encapsulator.js';

// A broker: many tunnels behind one TUN and one socket, found by inner prefix and by outer source;
// the loop's policy over them, the live table, and opening one on this host.
export { BrokerPolicy, type BrokerPolicyOptions } from './broker/policy.js';
export { BrokerTable, DROP_RING_SIZE, DROP_SNAP_LEN, type BrokerTableOptions } from './broker/table.js';
export { BrokerTunnelError, checkBrokerTunnel, type BrokerTunnel, type BrokerTunnelStats, type BrokerOptions, type TunnelDirectory } from './broker/tunnel.js';
export { openBroker, type OpenedBroker, type RunningBroker, type BrokerStatus } from './host/broker.js';

// The TUN side: the interface the loop reads and writes, Linux's device, offload (TSO/GRO) over it.
export { type TunDevice } from './tun/device.js';
export { LinuxTun } from './tun/linux-tun.js';
export { OffloadTun, OFFLOAD_WRITE_HEADROOM, type OffloadDrop } from './tun/offload.js';

// The outer side: the interface the loop sends through, raw protocol 41, Foo-over-UDP, sharing per address.
export { ERROR_INFO_STRIDE, ErrorOrigin, type OuterTransport } from './transport/transport.js';
export { RawTransport } from './transport/raw.js';
export { FouTransport, type FouOptions } from './transport/fou.js';
export { SharedTransports, HOST_TRANSPORTS, type PortRole } from './transport/shared-transports.js';

// Watching the loop: the tracer hook and its reused point, the 6to4/6rd peer table, the daemon's
// bounded trace ring and stream, decision names, pcapng blocks.
export { TracePoint, TraceDirection, type Tracer } from './engine/trace.js';
export { PeerTable, PEER_TABLE_SIZE, type PeerEntry } from './engine/peers.js';
export { TraceRing, TraceStream, TRACE_RING_SIZE, TRACE_SNAP_LEN, type TraceSink, type TraceSource, type TraceStreamOptions } from './daemon/trace-stream.js';
export { traceDecision, type TraceDirectionName, type TraceVerdictName } from './daemon/trace-record.js';
export { pcapngSectionHeader, pcapngInterface, pcapngPacket, isoToMicros, LINKTYPE_RAW } from './daemon/pcapng.js';

// The host around it: the interface plan and its steps (rtnetlink, or iproute2), the status pieces openTunnel builds.
export { interfacePlan } from './host/open.js';
export type { InterfaceOptions } from './host/options.js';
export { configureInterface, removeRoutes, sourceAddressToward, interfaceSetup, INTERFACE_SETUP_ENV, type InterfacePlan, type InstalledRoutes, type InterfaceSetup } from './tun/interface.js';
export { Rtnetlink, NetlinkError, type Ipv6Route, type Link } from './tun/netlink.js';
export { sixRdStatus, peersStatus, PEERS_IN_STATUS } from './host/status.js';

// Router advertisements for the routed prefix on LAN bridges (`advertise`), and their bytes.
export { RouterAdvertiser, type AdvertiserOptions, type AdvertiserStatus } from './advertise/advertiser.js';
export type { AdvertiseTarget, AdvertiseOptions } from './advertise/options.js';
export { nextUnsolicitedDelayS, solicitedAnswerAtMs } from './advertise/schedule.js';
export { icmpv6Checksum } from './packet/icmpv6.js';
export {
  buildRouterAdvertisement,
  buildRouterSolicitation,
  validateRouterSolicitation,
  NdpType,
  NdpOption,
  type RouterAdvertisement,
  type RsVerdict,
} from './packet/ndp.js';

// Address maths: IPv4 classes and prefixes, the link-local address, 6to4 and 6rd mapping, option 212.
export { parseIpv4Prefix, classifyIpv4, linkLocalFromIpv4, type Ipv4Class } from './packet/address.js';
export { SIX_TO_FOUR, embedIpv4, extractIpv4, delegatedPrefixLength, type SixRdDomain } from './packet/sixrd.js';
export { parseSixRdDhcp, MAX_6RD_RELAYS, type SixRdParameters } from './encap/sixrd-dhcp.js';
