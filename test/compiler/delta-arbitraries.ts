/**
 * Test helper: random datastore histories as the syncer hands them on, key by key: profile rules
 * and tags set or deleted, endpoints of three hosts set or deleted, deletes of keys never seen,
 * and whole re-lists (every listed key set, vanished keys deleted). `Datastore` feeds them to a
 * calculation graph and keeps the snapshot they add up to, for compile() as the oracle.
 */
import fc from 'fast-check';
import { defaultCompilerConfig, type CalcGraph } from '../../compiler/index.js';
import type { EndpointInput, ProfileInput, Snapshot } from '../../compiler/index.js';
import { endpointInput, profile } from './fixtures.js';

const RULE_POOL: Record<string, unknown>[] = [
  {},
  { action: 'deny' },
  { protocol: 'tcp', dst_ports: [80, 443] },
  { protocol: 'icmpv6', icmp_type: 128 },
  { src_net: '192.0.2.0/24' },
  { src_tag: 't1' },
  { src_tag: 't2', action: 'deny' },
  { '!src_tag': 't2', protocol: 'tcp' },
  { dst_tag: 't3', ip_version: 6 },
  { src_tag: 't1', dst_tag: 't3' },
];
const PROFILE_IDS = ['p1', 'p2', 'p3', 'p4'];
const TAGS = ['t1', 't2', 't3'];

const rulesArb = fc
  .record({ inbound: fc.array(fc.constantFrom(...RULE_POOL), { maxLength: 3 }), outbound: fc.array(fc.constantFrom(...RULE_POOL), { maxLength: 2 }) })
  .map(({ inbound, outbound }) => profile({ inbound_rules: inbound, outbound_rules: outbound }).rules!);

const endpointArb: fc.Arbitrary<[string, EndpointInput]> = fc
  .record({
    host: fc.constantFrom('host1', 'host2', 'host3'),
    id: fc.constantFrom('e1', 'e2', 'e3', 'e4', 'e5'),
    name: fc.constantFrom('cali1', 'cali2', 'caliab', 'eth9'),
    state: fc.constantFrom('active', 'active', 'inactive'),
    profile_ids: fc.subarray(PROFILE_IDS.concat('missing')).chain((ids) => fc.shuffledSubarray(ids, { minLength: ids.length })),
    v4: fc.subarray(['192.0.2.1/32', '192.0.2.2/32', '192.0.2.3/32', '203.0.113.0/28', '0.0.0.0/0']),
    v6: fc.subarray(['2001:db8::1/128', '2001:db8:5::/64']),
    // Who claimed a shared address first (local-claims.ts); absent on some, as in old data.
    createRevision: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
  })
  .map((e): [string, EndpointInput] => {
    const [key, input] = endpointInput(e.host, e.id, { state: e.state, name: e.name, profile_ids: e.profile_ids, ipv4_nets: e.v4, ipv6_nets: e.v6 });
    return [key, e.createRevision === undefined ? input : { ...input, createRevision: e.createRevision }];
  });

export type Op =
  | { op: 'rules'; id: string; value: ProfileInput['rules'] }
  | { op: 'tags'; id: string; value: string[] | undefined }
  | { op: 'endpoint'; entry: [string, EndpointInput] }
  | { op: 'deleteEndpoint'; pick: number }
  | { op: 'deleteUnknown' }
  | { op: 'relist'; rules: [string, ProfileInput['rules']][]; tags: [string, string[]][]; endpoints: [string, EndpointInput][] };

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('rules' as const), id: fc.constantFrom(...PROFILE_IDS), value: fc.option(rulesArb, { nil: undefined, freq: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('tags' as const), id: fc.constantFrom(...PROFILE_IDS), value: fc.option(fc.subarray(TAGS), { nil: undefined, freq: 4 }) }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('endpoint' as const), entry: endpointArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('deleteEndpoint' as const), pick: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteUnknown' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('relist' as const),
      rules: fc.array(fc.tuple(fc.constantFrom(...PROFILE_IDS), rulesArb), { maxLength: 4 }),
      tags: fc.array(fc.tuple(fc.constantFrom(...PROFILE_IDS), fc.subarray(TAGS)), { maxLength: 4 }),
      endpoints: fc.array(endpointArb, { maxLength: 6 }),
    }),
  },
);

/** The keys the datastore holds, fed to the graph one delta at a time. */
export class Datastore {
  readonly rules = new Map<string, NonNullable<ProfileInput['rules']>>();
  readonly tags = new Map<string, string[]>();
  readonly endpoints = new Map<string, EndpointInput>();

  constructor(
    readonly graph: CalcGraph,
    readonly maxIpsetSize: number,
  ) {}

  apply(op: Op): void {
    const graph = this.graph;
    switch (op.op) {
      case 'rules':
        if (op.value === undefined) this.rules.delete(op.id);
        else this.rules.set(op.id, op.value);
        return graph.setProfileRules(op.id, op.value);
      case 'tags':
        if (op.value === undefined) this.tags.delete(op.id);
        else this.tags.set(op.id, op.value);
        return graph.setProfileTags(op.id, op.value);
      case 'endpoint':
        this.endpoints.set(op.entry[0], op.entry[1]);
        return graph.setEndpoint(...op.entry);
      case 'deleteEndpoint': {
        const keys = [...this.endpoints.keys()];
        if (keys.length === 0) return;
        const key = keys[op.pick % keys.length]!;
        this.endpoints.delete(key);
        return graph.setEndpoint(key, undefined);
      }
      case 'deleteUnknown':
        graph.setEndpoint('/calico/v1/host/nowhere/workload/docker/x/endpoint/y', undefined);
        graph.setProfileRules('never-seen', undefined);
        return graph.setProfileTags('never-seen', undefined);
      case 'relist': {
        // What the syncer does on a re-list: every listed key set, every vanished key deleted.
        const rules = new Map(op.rules);
        const tags = new Map(op.tags);
        const endpoints = new Map(op.endpoints);
        for (const id of [...this.rules.keys()]) if (!rules.has(id)) this.apply({ op: 'rules', id, value: undefined });
        for (const id of [...this.tags.keys()]) if (!tags.has(id)) this.apply({ op: 'tags', id, value: undefined });
        for (const key of [...this.endpoints.keys()]) {
          if (!endpoints.has(key)) {
            this.endpoints.delete(key);
            graph.setEndpoint(key, undefined);
          }
        }
        for (const [id, value] of rules) this.apply({ op: 'rules', id, value });
        for (const [id, value] of tags) this.apply({ op: 'tags', id, value });
        for (const entry of endpoints) this.apply({ op: 'endpoint', entry });
        return;
      }
    }
  }

  snapshot(): Snapshot {
    const profiles = new Map<string, ProfileInput>();
    for (const id of new Set([...this.rules.keys(), ...this.tags.keys()])) {
      const rules = this.rules.get(id);
      const tags = this.tags.get(id);
      profiles.set(id, { ...(rules !== undefined ? { rules } : {}), ...(tags !== undefined ? { tags } : {}) });
    }
    const config = { ...defaultCompilerConfig(), maxIpsetSize: this.maxIpsetSize };
    return { hostname: 'host1', config, profiles, endpoints: new Map(this.endpoints) };
  }
}

