export * from './engine.js';
export * from './open.js';
