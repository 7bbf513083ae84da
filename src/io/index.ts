export * from './types.js';
export * from './fake.js';
export * from './raw-socket.js';
export * from './socket-hub.js';
