export * from './transport.js';
export * from './raw.js';
export * from './socket-hub.js';
export * from './fake.js';
export * from './fou.js';
export * from './receive-also.js';
