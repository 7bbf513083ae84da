/**
 * tun6in4/testing: in-memory stand-ins for the TUN device and the outer transport, so a program can
 * run `TunnelEngine` (and its own code around it) in tests without root. Kept out of the main
 * entry point so nobody ships them by accident.
 */
export { FakeTun } from './tun/fake.js';
export { FakeTransport, type SentPacket, type QueuedError } from './transport/fake.js';
