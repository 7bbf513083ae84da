export * from './counters.js';
export * from './ecn.js';
export * from './mss.js';
export * from './options.js';
export * from './path-mtu.js';
export * from './result.js';
export * from './token-bucket.js';
export * from './tunnel.js';
