/**
 * The calculation graph against the oracle: after any sequence of per-key deltas (sets, deletes,
 * deletes of unknown keys, whole re-lists with synthesised deletes, as the syncer emits them),
 * `toSpec()` is exactly `compile()` of the snapshot holding the same keys, and applying every
 * reported change to a mirror of the previous desired state gives the current one (nothing the
 * writers need is ever left unreported). Plus worked examples of what one change reports.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { CalcGraph, compile, defaultCompilerConfig, type GraphChanges } from '../../compiler/index.js';
import type { DataplaneSpec, EndpointInput, FamilySpec, ProfileInput, Snapshot } from '../../compiler/index.js';
import { endpointInput, profile, webAppSnapshot } from './fixtures.js';

/** The whole spec as plain data, map order included. */
function shape(spec: DataplaneSpec): unknown {
  const family = (f: FamilySpec) => ({
    family: f.family,
    filter: [...f.tables.filter.chains].map(([name, c]) => [name, c.name, c.rules, c.hashes]),
    filterHooks: f.tables.filter.hooks,
    raw: [...f.tables.raw.chains].map(([name, c]) => [name, c.name, c.rules, c.hashes]),
    rawHooks: f.tables.raw.hooks,
    ipsets: [...f.ipsets].map(([name, s]) => [name, s]),
  });
  return {
    v4: family(spec.v4),
    v6: family(spec.v6),
    diagnostics: spec.diagnostics,
    local: [...spec.localEndpoints].map(([iface, e]) => [iface, e.ref, e.endpoint]),
  };
}

/** What a writer would hold after applying every reported change: chains and sets by name. */
class Mirror {
  readonly families = {
    4: { chains: new Map<string, readonly string[]>(), sets: new Map<string, { maxelem: number; members: Set<string> }>() },
    6: { chains: new Map<string, readonly string[]>(), sets: new Map<string, { maxelem: number; members: Set<string> }>() },
  };

  apply(graph: CalcGraph, changes: GraphChanges): void {
    for (const family of [4, 6] as const) {
      const desired = graph.desired(family);
      const mirror = this.families[family];
      const reported = changes.families[family];
      for (const name of reported.chains.filter) {
        const chain = desired.chain('filter', name);
        if (chain === undefined) mirror.chains.delete(name);
        else mirror.chains.set(name, chain.rules);
      }
      for (const name of reported.ipsets) {
        const set = desired.ipset(name);
        if (set === undefined) mirror.sets.delete(name);
        else mirror.sets.set(name, { maxelem: set.maxelem, members: new Set(set.members()) });
      }
      for (const [name, members] of reported.members) {
        const set = desired.ipset(name);
        const held = mirror.sets.get(name);
        if (set === undefined || held === undefined || reported.ipsets.has(name)) continue;
        for (const member of members) {
          if (set.has(member)) held.members.add(member);
          else held.members.delete(member);
        }
      }
    }
  }

  expectEqual(spec: DataplaneSpec): void {
    for (const family of [4, 6] as const) {
      const want = family === 4 ? spec.v4 : spec.v6;
      const mirror = this.families[family];
      expect(new Map([...mirror.chains].sort())).toEqual(new Map([...want.tables.filter.chains].map(([n, c]) => [n, c.rules] as const).sort()));
      const sets = [...mirror.sets].map(([name, s]) => [name, s.maxelem, [...s.members].sort()]).sort();
      expect(sets).toEqual([...want.ipsets.values()].map((s) => [s.name, s.maxelem, [...s.members]]).sort());
    }
  }
}

// ---- The datastore as the syncer sees it: keys set and deleted one at a time ------------------

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
  })
  .map((e) => endpointInput(e.host, e.id, { state: e.state, name: e.name, profile_ids: e.profile_ids, ipv4_nets: e.v4, ipv6_nets: e.v6 }));

type Op =
  | { op: 'rules'; id: string; value: ProfileInput['rules'] }
  | { op: 'tags'; id: string; value: string[] | undefined }
  | { op: 'endpoint'; entry: [string, EndpointInput] }
  | { op: 'deleteEndpoint'; pick: number }
  | { op: 'deleteUnknown' }
  | { op: 'relist'; rules: [string, ProfileInput['rules']][]; tags: [string, string[]][]; endpoints: [string, EndpointInput][] };

const opArb: fc.Arbitrary<Op> = fc.oneof(
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
class Datastore {
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

describe('calculation graph', () => {
  test('property: after any delta sequence, toSpec() is compile() of the same keys and the reported changes rebuild it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 14 }),
        fc.constantFrom(1, 2, 1048576),
        (batches, maxIpsetSize) => {
          const graph = new CalcGraph('host1', { ...defaultCompilerConfig(), maxIpsetSize });
          const store = new Datastore(graph, maxIpsetSize);
          const mirror = new Mirror();
          for (const batch of batches) {
            for (const op of batch) store.apply(op);
            mirror.apply(graph, graph.takeChanges());
            const oracle = compile(store.snapshot());
            mirror.expectEqual(oracle);
            expect(shape(graph.toSpec())).toEqual(shape(oracle));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  /** A graph fed the WEB/APP example, its changes taken. */
  function webAppGraph(): { graph: CalcGraph; snapshot: Snapshot } {
    const snapshot = webAppSnapshot();
    const graph = new CalcGraph(snapshot.hostname, snapshot.config);
    for (const [id, p] of snapshot.profiles) {
      graph.setProfileRules(id, p.rules);
      graph.setProfileTags(id, p.tags);
    }
    for (const [key, input] of snapshot.endpoints) graph.setEndpoint(key, input);
    graph.takeChanges();
    return { graph, snapshot };
  }

  const names = (set: ReadonlySet<string>) => [...set].sort();

  test('the WEB/APP example compiles to the golden spec', () => {
    const { graph, snapshot } = webAppGraph();
    expect(shape(graph.toSpec())).toEqual(shape(compile(snapshot)));
  });

  test('a remote endpoint joining a tag reports one member per set it enters, and no chain', () => {
    const { graph } = webAppGraph();
    const [key, input] = endpointInput('host7', 'web9', { state: 'active', name: 'caliweb9', profile_ids: ['WEB'], ipv4_nets: ['203.0.113.9/32'] });
    graph.setEndpoint(key, input);
    const changes = graph.takeChanges();
    expect(changes.families[4].members).toEqual(new Map([['cali4-tag-APP_7890', new Set(['203.0.113.9'])]]));
    expect(names(changes.families[4].chains.filter)).toEqual([]);
    expect(names(changes.families[4].ipsets)).toEqual([]);
    expect(changes.localEndpointsChanged).toBe(false);
    expect(graph.desired(4).ipset('cali4-tag-APP_7890')!.has('203.0.113.9')).toBe(true);
    // Leaving again removes the member; an address still contributed by another endpoint stays.
    const [twin, twinInput] = endpointInput('host8', 'web10', { state: 'active', name: 'caliweb10', profile_ids: ['WEB'], ipv4_nets: ['203.0.113.9/32'] });
    graph.setEndpoint(twin, twinInput);
    graph.setEndpoint(key, undefined);
    expect(graph.takeChanges().families[4].members).toEqual(new Map());
    expect(graph.desired(4).ipset('cali4-tag-APP_7890')!.has('203.0.113.9')).toBe(true);
    graph.setEndpoint(twin, undefined);
    expect(graph.takeChanges().families[4].members).toEqual(new Map([['cali4-tag-APP_7890', new Set(['203.0.113.9'])]]));
    expect(graph.desired(4).ipset('cali4-tag-APP_7890')!.has('203.0.113.9')).toBe(false);
  });

  test('a rule change reports that profile chain only; a profile nobody here uses reports nothing', () => {
    const { graph } = webAppGraph();
    graph.setProfileRules('WEB', profile({ inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: [8443] }], outbound_rules: [{ action: 'allow' }] }).rules);
    const changes = graph.takeChanges();
    expect(names(changes.families[4].chains.filter)).toEqual(['cali-pri-WEB']);
    expect(names(changes.families[6].chains.filter)).toEqual(['cali-pri-WEB']);
    expect(graph.desired(4).chain('filter', 'cali-pri-WEB')!.rules.join('\n')).toContain('--destination-ports 8443');
    graph.setProfileRules('ELSEWHERE', profile({ inbound_rules: [{ action: 'allow', src_tag: 'X' }], outbound_rules: [] }).rules);
    graph.setProfileTags('ELSEWHERE', ['X']);
    expect(graph.takeChanges().any).toBe(false);
  });

  test('deleting a profile in use: its chains, the set only it referenced, and the endpoint chains fail closed', () => {
    const { graph } = webAppGraph();
    graph.setProfileRules('APP', undefined);
    const changes = graph.takeChanges();
    expect(names(changes.families[4].chains.filter)).toEqual(['cali-fw-caliapp1', 'cali-pri-APP', 'cali-pro-APP', 'cali-tw-caliapp1']);
    expect(names(changes.families[4].ipsets)).toEqual(['cali4-tag-APP_7890']);
    expect(graph.desired(4).ipset('cali4-tag-APP_7890')).toBeUndefined();
    expect(graph.desired(4).chain('filter', 'cali-tw-caliapp1')!.rules.join('\n')).toContain('Profile APP is missing');
    expect(graph.diagnostics().map((d) => [d.kind, d.subject])).toEqual([['missing-profile', 'APP']]);
  });

  test('a new local endpoint reports its chains and the dispatch chains; the local view is a new Map', () => {
    const { graph } = webAppGraph();
    const before = graph.localEndpoints();
    const [key, input] = endpointInput('host1', 'web5', { state: 'active', name: 'caliweb5', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.50/32'] });
    graph.setEndpoint(key, input);
    const changes = graph.takeChanges();
    expect(names(changes.families[4].chains.filter)).toEqual(['cali-from-wl-dispatch', 'cali-fw-caliweb5', 'cali-to-wl-dispatch', 'cali-tw-caliweb5']);
    expect(changes.families[4].members).toEqual(new Map([['cali4-tag-APP_7890', new Set(['192.0.2.50'])]]));
    expect(changes.localEndpointsChanged).toBe(true);
    expect(graph.localEndpoints()).not.toBe(before);
    expect([...graph.localEndpoints().keys()]).toEqual(['caliapp1', 'caliweb1', 'caliweb5']);
    const view = graph.localEndpoints();
    graph.setProfileRules('WEB', profile({ inbound_rules: [], outbound_rules: [] }).rules);
    graph.takeChanges();
    expect(graph.localEndpoints()).toBe(view);
  });
});
