/**
 * The names issue 24 replaced (one noun per concept), kept for one release so programs written
 * against 0.1 still build; each says what to use instead. Removed in the release after next.
 * CHANGELOG.md lists every rename. (The renaming script skips this file.)
 */
import { Encapsulator, type EncapsulatorEnvironment } from './encap/encapsulator.js';
import type { TunnelHealth } from './daemon/keepalive.js';
import { HOST_TRANSPORTS, SharedTransports } from './transport/shared-transports.js';

/** @deprecated use Encapsulator (the class is the encapsulator of one tunnel, not the tunnel) */
export const Tunnel = Encapsulator;
/** @deprecated use Encapsulator */
export type Tunnel = Encapsulator;
/** @deprecated use EncapsulatorEnvironment */
export type TunnelEnvironment = EncapsulatorEnvironment;
/** @deprecated use TunnelHealth (TunnelStatus.state is running/stopped; this is the keepalive's verdict) */
export type TunnelState = TunnelHealth;
/** @deprecated use SharedTransports */
export const SharedSockets = SharedTransports;
/** @deprecated use SharedTransports */
export type SharedSockets = SharedTransports;
/** @deprecated use HOST_TRANSPORTS */
export const HOST_SOCKETS = HOST_TRANSPORTS;
