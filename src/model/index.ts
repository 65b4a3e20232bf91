/**
 * The data model's public surface: schemas, key layout and decoding shared by calicoctl,
 * the compiler, the agent and the Docker plugin. Pure: no I/O.
 */
export * from './ids.js';
export * from './limits.js';
export * from './ip.js';
export * from './rule.js';
export * from './endpoint.js';
export * from './keys.js';
export * from './decode.js';
export * from './hash.js';
export * from './detach.js';
export * from './dataplane-status.js';
