/**
 * The datastore layer: etcd settings, client construction, typed errors and the CalicoStore
 * (profiles and endpoints of the v1 data model). Shared by calicoctl, the agent and the plugin.
 */
export * from './errors.js';
export * from './settings.js';
export * from './client.js';
export * from './python-json.js';
export * from './stored-values.js';
export * from './calico-store.js';
