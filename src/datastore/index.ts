/**
 * The datastore layer: etcd settings, the KV calls (kv.ts) over etcd's JSON gateway, typed errors
 * and the CalicoStore (profiles and endpoints of the v1 data model). Shared by calicoctl, the
 * agent and the plugin. The gRPC client (client.ts, `etcd3`) is imported from its own module by
 * those that watch, so that calicoctl never loads it.
 */
export * from './errors.js';
export * from './settings.js';
export * from './kv.js';
export * from './gateway-kv.js';
export * from './python-json.js';
export * from './stored-values.js';
export * from './calico-store.js';
export * from './agent-status.js';
