/**
 * Test fixture for syncer tests: a private etcd and a client on it for the whole test file;
 * syncers registered with `track` are stopped after each test, and `/calico/` is emptied. Call
 * `useSyncerEtcd()` at module level; it registers the hooks and returns live accessors.
 */
import type { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Syncer } from '../../agent/syncer.js';
import { createEtcdClient } from '../../src/datastore/client.js';
import { startEtcd, type EtcdInstance } from './etcd.js';

export interface SyncerEtcdFixture {
  readonly etcd: EtcdInstance;
  readonly client: Etcd3;
  /** Stops `syncer` after the current test. */
  track(syncer: Syncer): Syncer;
}

export function useSyncerEtcd(): SyncerEtcdFixture {
  let etcd: EtcdInstance | undefined;
  let client: Etcd3 | undefined;
  const syncers: Syncer[] = [];
  beforeAll(async () => {
    etcd = await startEtcd();
    client = createEtcdClient({ endpoints: [etcd.endpoint], tls: {} });
  });
  afterEach(async () => {
    for (const syncer of syncers.splice(0)) await syncer.stop();
    await client?.delete().prefix('/calico/');
  });
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useSyncerEtcd: used outside a test');
    return value;
  };
  return {
    get etcd() {
      return ready(etcd);
    },
    get client() {
      return ready(client);
    },
    track(syncer) {
      syncers.push(syncer);
      return syncer;
    },
  };
}
