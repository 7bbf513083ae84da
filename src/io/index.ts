export * from './types.js';
export * from './fake.js';
export * from './linux.js';
export * from './socket-hub.js';
