/**
 * Endpoint status reporting against a real private etcd: hundreds of statuses land in batched
 * transactions (more than etcd's 128 operations per transaction), only changes are written, and
 * statuses of endpoints that went away are deleted, including those a previous run left behind.
 */
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { silentLogger } from '../../agent/logger.js';
import type { EndpointStatus } from '../../agent/endpoint-plumber.js';
import { StatusReporter } from '../../agent/status.js';
import { createEtcdClient } from '../../src/datastore/client.js';
import { endpointKey, endpointStatusKey, hostStatusPrefix, type EndpointRef } from '../../src/model/index.js';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';

let etcd: EtcdInstance;
let client: Etcd3;
beforeAll(async () => {
  etcd = await startEtcd();
  client = createEtcdClient({ endpoints: [etcd.endpoint], tls: {} });
});
afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

const HOST = 'status-host';
const refOf = (i: number): EndpointRef => ({ host: HOST, orchestrator: 'k8s', workload: `w${i}`, endpointId: 'eth0' });
function statuses(count: number, status: EndpointStatus['status'] = 'up'): Map<string, EndpointStatus> {
  return new Map(Array.from({ length: count }, (_, i) => [endpointKey(refOf(i)), { ref: refOf(i), status }]));
}
const stored = async (): Promise<Record<string, string>> => client.getAll().prefix(`${hostStatusPrefix(HOST)}workload/`).strings();

test('hundreds of statuses are written in batches; changes only; gone endpoints deleted, also those a previous run left', async () => {
  await client.put(endpointStatusKey(refOf(999))).value('{"status":"up"}');
  const reporter = new StatusReporter({ client, hostname: HOST, log: silentLogger(), intervalMs: 0 });
  const before = Number((await client.get('x').exec()).header.revision);
  await reporter.update(statuses(300));
  let now = await stored();
  expect(Object.keys(now)).toHaveLength(300);
  expect(now[endpointStatusKey(refOf(299))]).toBe('{"status":"up"}');
  // 300 puts and one delete in ⌈301 / 128⌉ = 3 transactions: 3 revisions, not 301.
  const afterFirst = Number((await client.get('x').exec()).header.revision);
  expect(afterFirst - before).toBe(3);

  const changed = statuses(100);
  changed.set(endpointKey(refOf(5)), { ref: refOf(5), status: 'down' });
  await reporter.update(changed);
  now = await stored();
  expect(Object.keys(now)).toHaveLength(100);
  expect(now[endpointStatusKey(refOf(5))]).toBe('{"status":"down"}');
  expect(now[endpointStatusKey(refOf(200))]).toBeUndefined();
  // Nothing changed: nothing written.
  const settled = Number((await client.get('x').exec()).header.revision);
  await reporter.update(changed);
  expect(Number((await client.get('x').exec()).header.revision)).toBe(settled);
  await reporter.stop();
});
