export * from './transport.js';
export * from './raw.js';
export * from './shared-transports.js';
export * from './fake.js';
export * from './fou.js';
export * from './receive-also.js';
