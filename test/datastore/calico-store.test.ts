/**
 * CalicoStore against a real etcd, through both of its paths to etcd (gRPC and the JSON
 * gateway): atomic create, conflict retries under in-process contention, raw endpoint updates that
 * keep unknown members, validation before writes, and typed errors.
 */
import { describe, expect, test } from 'vitest';
import {
  DatastoreDataError,
  EndpointNotFoundError,
  InvalidNameError,
  ProfileExistsError,
  ProfileInUseError,
  ProfileNotFoundError,
} from '../../src/datastore/index.js';
import { useEtcdStore, type KvKind } from '../helpers/etcd-store.js';

describe.each<KvKind>(['grpc', 'gateway'])('through %s', (kind) => {
  const fixture = useEtcdStore(kind);

  const ref = { host: 'h1', orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };

  describe('profiles', () => {
    test('create is atomic and refuses an existing profile', async () => {
      await fixture.store.createProfile('A');
      await expect(fixture.store.createProfile('A')).rejects.toBeInstanceOf(ProfileExistsError);
      expect(await fixture.store.getProfile('A')).toEqual({
        name: 'A',
        tags: ['A'],
        rules: { inbound_rules: [{ action: 'allow', src_tag: 'A' }], outbound_rules: [{ action: 'allow' }] },
      });
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => fixture.store.createProfile('RACY')));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    });

    test('50 concurrent in-process tag updates are all kept', async () => {
      await fixture.store.createProfile('T');
      const tags = Array.from({ length: 50 }, (_, i) => `tag${i}`);
      await Promise.all(tags.map((t) => fixture.store.updateTags('T', (current) => [...current, t])));
      expect([...(await fixture.store.getProfile('T')).tags].sort()).toEqual(['T', ...tags].sort());
    });

    test('invalid data is refused before writing; missing profiles are typed errors', async () => {
      await fixture.store.createProfile('V');
      await expect(fixture.store.updateTags('V', (t) => [...t, 'bad tag'])).rejects.toBeInstanceOf(DatastoreDataError);
      await expect(
        fixture.store.updateRules('V', (r) => ({ ...r, inbound_rules: [{ protocol: 'icmp', dst_ports: [1] } as never] })),
      ).rejects.toThrow(/refusing to write invalid rules for profile V: inbound_rules\[0\]\.dst_ports/);
      expect((await fixture.store.getProfile('V')).tags).toEqual(['V']);
      await expect(fixture.store.updateRules('NOPE', (r) => r)).rejects.toBeInstanceOf(ProfileNotFoundError);
      await expect(fixture.store.getProfile('a/b')).rejects.toBeInstanceOf(InvalidNameError);
    });

    test('remove refuses while referenced and reports which endpoints', async () => {
      await fixture.store.createProfile('R');
      await fixture.store.putEndpoint(ref, { state: 'active', name: 'calie1', profile_ids: ['R'], ipv4_nets: [], ipv6_nets: [] });
      const error = await fixture.store.removeProfile('R', { checkEndpoints: true }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProfileInUseError);
      expect((error as ProfileInUseError).endpointKeys).toEqual(['/calico/v1/host/h1/workload/docker/w1/endpoint/e1']);
      await fixture.store.removeProfile('R', { checkEndpoints: false });
      expect(await fixture.store.profileExists('R')).toBe(false);
      await expect(fixture.store.removeProfile('R', { checkEndpoints: true })).rejects.toBeInstanceOf(ProfileNotFoundError);
      expect(await fixture.store.deleteEndpoint(ref)).toBe(true);
      expect(await fixture.store.deleteEndpoint(ref)).toBe(false);
    });
  });

  describe('endpoints', () => {
    test('updateEndpoint works on raw JSON and keeps unknown members', async () => {
      await fixture.store.putEndpoint(ref, { state: 'active', name: 'calie1', profile_id: 'X', future: [1, 2], ipv4_nets: ['192.0.2.9'] });
      await fixture.store.updateEndpoint(ref, (raw) => ({ ...raw, state: 'inactive' }));
      const [stored] = await fixture.store.listEndpoints({ host: 'h1' });
      expect(stored?.raw).toEqual({ state: 'inactive', name: 'calie1', profile_id: 'X', future: [1, 2], ipv4_nets: ['192.0.2.9'] });
      expect(stored?.endpoint?.profile_ids).toEqual(['X']);
      expect(stored?.endpoint?.ipv4_nets).toEqual(['192.0.2.9/32']);
      await expect(fixture.store.updateEndpoint(ref, (raw) => ({ ...raw, mac: 'nonsense' }))).rejects.toBeInstanceOf(DatastoreDataError);
      await expect(fixture.store.updateEndpoint({ ...ref, endpointId: 'missing' }, (r) => r)).rejects.toBeInstanceOf(EndpointNotFoundError);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          fixture.store.updateEndpoint(ref, (raw) => ({ ...raw, future: [...(raw.future as number[]), i + 3] })),
        ),
      );
      expect(results.every((r) => r.written)).toBe(true);
      const [after] = await fixture.store.listEndpoints({ host: 'h1' });
      expect(((after?.raw as { future: number[] }).future).length).toBe(22);
    });
  });
});
