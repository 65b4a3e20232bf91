/**
 * CalicoStore against a real etcd: atomic create, conflict retries under in-process
 * contention, raw endpoint updates that keep unknown members, validation before writes, and
 * typed errors.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  CalicoStore,
  createEtcdClient,
  DatastoreDataError,
  EndpointNotFoundError,
  etcdSettingsFromEnv,
  InvalidNameError,
  ProfileExistsError,
  ProfileInUseError,
  ProfileNotFoundError,
} from '../../src/datastore/index.js';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';

let etcd: EtcdInstance;
let store: CalicoStore;
beforeAll(async () => {
  etcd = await startEtcd();
  const settings = etcdSettingsFromEnv(etcd.env);
  store = new CalicoStore(createEtcdClient(settings), settings);
});
afterAll(async () => {
  store?.close();
  await etcd?.stop();
});

const ref = { host: 'h1', orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };

describe('profiles', () => {
  test('create is atomic and refuses an existing profile', async () => {
    await store.createProfile('A');
    await expect(store.createProfile('A')).rejects.toBeInstanceOf(ProfileExistsError);
    expect(await store.getProfile('A')).toEqual({
      name: 'A',
      tags: ['A'],
      rules: { inbound_rules: [{ action: 'allow', src_tag: 'A' }], outbound_rules: [{ action: 'allow' }] },
    });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => store.createProfile('RACY')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  test('50 concurrent in-process tag updates are all kept', async () => {
    await store.createProfile('T');
    const tags = Array.from({ length: 50 }, (_, i) => `tag${i}`);
    await Promise.all(tags.map((t) => store.updateTags('T', (current) => [...current, t])));
    expect([...(await store.getProfile('T')).tags].sort()).toEqual(['T', ...tags].sort());
  });

  test('invalid data is refused before writing; missing profiles are typed errors', async () => {
    await store.createProfile('V');
    await expect(store.updateTags('V', (t) => [...t, 'bad tag'])).rejects.toBeInstanceOf(DatastoreDataError);
    await expect(
      store.updateRules('V', (r) => ({ ...r, inbound_rules: [{ protocol: 'icmp', dst_ports: [1] } as never] })),
    ).rejects.toThrow(/refusing to write invalid rules for profile V: inbound_rules\[0\]\.dst_ports/);
    expect((await store.getProfile('V')).tags).toEqual(['V']);
    await expect(store.updateRules('NOPE', (r) => r)).rejects.toBeInstanceOf(ProfileNotFoundError);
    await expect(store.getProfile('a/b')).rejects.toBeInstanceOf(InvalidNameError);
  });

  test('remove refuses while referenced and reports which endpoints', async () => {
    await store.createProfile('R');
    await store.putEndpoint(ref, { state: 'active', name: 'calie1', profile_ids: ['R'], ipv4_nets: [], ipv6_nets: [] });
    const error = await store.removeProfile('R', { checkEndpoints: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProfileInUseError);
    expect((error as ProfileInUseError).endpointKeys).toEqual(['/calico/v1/host/h1/workload/docker/w1/endpoint/e1']);
    await store.removeProfile('R', { checkEndpoints: false });
    expect(await store.profileExists('R')).toBe(false);
    await expect(store.removeProfile('R', { checkEndpoints: true })).rejects.toBeInstanceOf(ProfileNotFoundError);
    expect(await store.deleteEndpoint(ref)).toBe(true);
    expect(await store.deleteEndpoint(ref)).toBe(false);
  });
});

describe('endpoints', () => {
  test('updateEndpoint works on raw JSON and keeps unknown members', async () => {
    await store.putEndpoint(ref, { state: 'active', name: 'calie1', profile_id: 'X', future: [1, 2], ipv4_nets: ['192.0.2.9'] });
    await store.updateEndpoint(ref, (raw) => ({ ...raw, state: 'inactive' }));
    const [stored] = await store.listEndpoints({ host: 'h1' });
    expect(stored?.raw).toEqual({ state: 'inactive', name: 'calie1', profile_id: 'X', future: [1, 2], ipv4_nets: ['192.0.2.9'] });
    expect(stored?.endpoint?.profile_ids).toEqual(['X']);
    expect(stored?.endpoint?.ipv4_nets).toEqual(['192.0.2.9/32']);
    await expect(store.updateEndpoint(ref, (raw) => ({ ...raw, mac: 'nonsense' }))).rejects.toBeInstanceOf(DatastoreDataError);
    await expect(store.updateEndpoint({ ...ref, endpointId: 'missing' }, (r) => r)).rejects.toBeInstanceOf(EndpointNotFoundError);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.updateEndpoint(ref, (raw) => ({ ...raw, future: [...(raw.future as number[]), i + 3] })),
      ),
    );
    expect(results.every((r) => r.written)).toBe(true);
    const [after] = await store.listEndpoints({ host: 'h1' });
    expect(((after?.raw as { future: number[] }).future).length).toBe(22);
  });
});
