/**
 * Test fixture: a private etcd plus a CalicoStore on it for the whole test file. Call
 * `useEtcdStore()` at module level; it registers the beforeAll/afterAll hooks and returns live
 * accessors (valid inside tests).
 */
import { afterAll, beforeAll } from 'vitest';
import { createEtcdClient, etcd3Kv } from '../../src/datastore/client.js';
import { CalicoStore, etcdSettingsFromEnv, gatewayKv } from '../../src/datastore/index.js';
import { startEtcd, type EtcdInstance } from './etcd.js';

export interface EtcdStoreFixture {
  readonly etcd: EtcdInstance;
  readonly store: CalicoStore;
}

/** How the store reaches etcd: gRPC (agent, plugin) or the JSON gateway (calicoctl). */
export type KvKind = 'grpc' | 'gateway';

export function useEtcdStore(kind: KvKind = 'grpc'): EtcdStoreFixture {
  let etcd: EtcdInstance | undefined;
  let store: CalicoStore | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
    const settings = etcdSettingsFromEnv(etcd.env);
    store = new CalicoStore(kind === 'grpc' ? etcd3Kv(createEtcdClient(settings), settings) : gatewayKv(settings));
  });
  afterAll(async () => {
    store?.close();
    await etcd?.stop();
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useEtcdStore: used outside a test');
    return value;
  };
  return {
    get etcd() {
      return ready(etcd);
    },
    get store() {
      return ready(store);
    },
  };
}
