import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';

let etcd: EtcdInstance;
beforeAll(async () => { etcd = await startEtcd(); });
afterAll(async () => { await etcd.stop(); });

test('private etcd answers on its own port and survives a restart', async () => {
  const put = await fetch(`${etcd.endpoint}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: btoa('k'), value: btoa('v') }) });
  expect(put.ok).toBe(true);
  await etcd.kill();
  await etcd.restart();
  const got = await fetch(`${etcd.endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: btoa('k') }) });
  const body = (await got.json()) as { kvs?: { value: string }[] };
  expect(atob(body.kvs?.[0]?.value ?? '')).toBe('v');
});
