/**
 * Incremental compilation: a producer that keeps one pair of Maps, mutates them in place and
 * bumps Snapshot.generations (what the agent's syncer does) must get, after every change,
 * exactly the spec a fresh Compiler produces for the same contents — and plans from the
 * previous kernel state must be the same text whether or not planFamily may take the
 * kernelStateOf shortcut (compiler/map-lineage.ts).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Compiler, kernelStateOf, planFamily, renderFamily } from '../../compiler/index.js';
import type {
  CompilerConfig,
  DataplaneSpec,
  EndpointInput,
  FamilySpec,
  KernelFamilyState,
  ProfileInput,
  Snapshot,
  SnapshotGenerations,
} from '../../compiler/index.js';
import { KernelSim, normaliseState } from '../helpers/kernel-sim.js';
import { endpointInput, profile, webAppSnapshot } from './fixtures.js';

/** Maps mutated in place; a counter bumped per mutation (unless told not to). */
class InPlaceProducer {
  readonly profiles = new Map<string, ProfileInput>();
  readonly endpoints = new Map<string, EndpointInput>();
  readonly generations: SnapshotGenerations = { profiles: 0, endpoints: 0 };
  config: CompilerConfig;

  constructor(initial: Snapshot) {
    for (const [id, value] of initial.profiles) this.profiles.set(id, value);
    for (const [key, value] of initial.endpoints) this.endpoints.set(key, value);
    this.config = initial.config;
  }
  snapshot(): Snapshot {
    return { hostname: 'host1', config: this.config, profiles: this.profiles, endpoints: this.endpoints, generations: { ...this.generations } };
  }
  setProfile(id: string, value: ProfileInput): void {
    this.profiles.set(id, value);
    this.generations.profiles++;
  }
  deleteProfile(id: string): void {
    this.profiles.delete(id);
    this.generations.profiles++;
  }
  setEndpoint([key, value]: [string, EndpointInput]): void {
    this.endpoints.set(key, value);
    this.generations.endpoints++;
  }
  deleteEndpoint(key: string): void {
    this.endpoints.delete(key);
    this.generations.endpoints++;
  }
}

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

/** The same state in new maps: nothing recorded about its origin, so planned entry by entry. */
function readBackCopy(state: KernelFamilyState): KernelFamilyState {
  const table = (t: KernelFamilyState['tables']['filter']) => ({ chains: new Map(t.chains), builtins: new Map(t.builtins) });
  return { tables: { filter: table(state.tables.filter), raw: table(state.tables.raw) }, ipsets: new Map(state.ipsets) };
}

/**
 * Checks `spec` against a fresh compile, and the plans from each earlier spec (the previous one
 * first): the same text whether the state is kernelStateOf's or a copy, and correct on a kernel.
 */
function expectFresh(producer: InPlaceProducer, spec: DataplaneSpec, ...earlier: DataplaneSpec[]): void {
  const snapshot = producer.snapshot();
  expect(shape(spec)).toEqual(shape(new Compiler().compile({ ...snapshot, generations: undefined })));
  for (const before of earlier) for (const family of ['v4', 'v6'] as const) {
    const state = kernelStateOf(before[family]);
    const plan = planFamily(spec[family], state);
    expect(plan).toEqual(planFamily(spec[family], readBackCopy(state)));
    const sim = new KernelSim();
    sim.applyPlan(renderFamily(before[family]));
    sim.applyPlan(plan);
    expect(normaliseState(sim.state())).toEqual(normaliseState(kernelStateOf(spec[family])));
  }
}

// ---- Random sequences of in-place changes ----------------------------------------------------

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

const profileArb: fc.Arbitrary<ProfileInput> = fc
  .record({
    hasRules: fc.constantFrom(true, true, true, false),
    inbound: fc.array(fc.constantFrom(...RULE_POOL), { maxLength: 3 }),
    outbound: fc.array(fc.constantFrom(...RULE_POOL), { maxLength: 2 }),
    tags: fc.subarray(TAGS),
  })
  .map(({ hasRules, inbound, outbound, tags }) =>
    hasRules ? profile({ inbound_rules: inbound, outbound_rules: outbound }, tags) : { tags },
  );

const endpointArb: fc.Arbitrary<[string, EndpointInput]> = fc
  .record({
    host: fc.constantFrom('host1', 'host2', 'host3'),
    id: fc.constantFrom('e1', 'e2', 'e3', 'e4', 'e5'),
    name: fc.constantFrom('cali1', 'cali2', 'caliab', 'eth9'),
    state: fc.constantFrom('active', 'active', 'inactive'),
    profile_ids: fc.subarray(PROFILE_IDS.concat('missing')).chain((ids) => fc.shuffledSubarray(ids, { minLength: ids.length })),
    v4: fc.subarray(['192.0.2.1/32', '192.0.2.2/32', '192.0.2.3/32', '203.0.113.0/28']),
    v6: fc.subarray(['2001:db8::1/128', '2001:db8:5::/64']),
  })
  .map((e) =>
    endpointInput(e.host, e.id, { state: e.state, name: e.name, profile_ids: e.profile_ids, ipv4_nets: e.v4, ipv6_nets: e.v6 }),
  );

type Op =
  | { op: 'setProfile'; id: string; value: ProfileInput }
  | { op: 'deleteProfile'; id: string }
  | { op: 'setEndpoint'; entry: [string, EndpointInput] }
  | { op: 'deleteEndpoint'; pick: number }
  | { op: 'config'; maxIpsetSize: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('setProfile' as const), id: fc.constantFrom(...PROFILE_IDS), value: profileArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteProfile' as const), id: fc.constantFrom(...PROFILE_IDS) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('setEndpoint' as const), entry: endpointArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('deleteEndpoint' as const), pick: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('config' as const), maxIpsetSize: fc.constantFrom(1, 2, 1048576) }) },
);

function apply(producer: InPlaceProducer, op: Op): void {
  switch (op.op) {
    case 'setProfile':
      return producer.setProfile(op.id, op.value);
    case 'deleteProfile':
      return producer.deleteProfile(op.id);
    case 'setEndpoint':
      return producer.setEndpoint(op.entry);
    case 'deleteEndpoint': {
      const keys = [...producer.endpoints.keys()];
      if (keys.length > 0) producer.deleteEndpoint(keys[op.pick % keys.length]!);
      return;
    }
    case 'config':
      producer.config = { ...producer.config, maxIpsetSize: op.maxIpsetSize };
      return;
  }
}

describe('compiling in-place Maps with generations', () => {
  test('property: after every batch of changes the spec is what a fresh Compiler produces', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { minLength: 4, maxLength: 14 }),
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 }),
        fc.constantFrom(1, 2, 1048576),
        (setup, batches, maxIpsetSize) => {
          const producer = new InPlaceProducer({ ...webAppSnapshot(), profiles: new Map(), endpoints: new Map() });
          producer.config = { ...producer.config, maxIpsetSize };
          for (const op of setup) apply(producer, op);
          const compiler = new Compiler();
          const specs: DataplaneSpec[] = [];
          for (const batch of [[], ...batches]) {
            for (const op of batch) apply(producer, op);
            const spec = compiler.compile(producer.snapshot());
            expectFresh(producer, spec, ...specs.slice(-3).reverse());
            specs.push(spec);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  test('tag membership, endpoints turning local/remote, profile tags changed and deleted', () => {
    const producer = new InPlaceProducer(webAppSnapshot());
    const compiler = new Compiler();
    const members = (spec: DataplaneSpec, set: string) => spec.v4.ipsets.get(set)?.members;
    let before = compiler.compile(producer.snapshot());
    expectFresh(producer, before);
    expect(members(before, 'cali4-tag-APP_7890')).toEqual(['192.0.2.10', '198.51.100.10']);
    const step = (change: () => void): DataplaneSpec => {
      change();
      const spec = compiler.compile(producer.snapshot());
      expectFresh(producer, spec, before);
      before = spec;
      return spec;
    };

    // A remote endpoint joins WEB: its address enters WEB's tag sets; no chain changes.
    const web3 = endpointInput('host2', 'web3', { state: 'active', name: 'caliweb3', profile_ids: ['WEB'], ipv4_nets: ['203.0.113.3/32'] });
    let spec = step(() => producer.setEndpoint(web3));
    expect(members(spec, 'cali4-tag-APP_7890')).toEqual(['192.0.2.10', '198.51.100.10', '203.0.113.3']);
    expect(spec.v4.tables.filter.chains.has('cali-tw-caliweb3')).toBe(false);

    // The same endpoint moves to this host: it becomes local (chains, dispatch), still a member.
    const [remoteKey] = web3;
    const web3Local = endpointInput('host1', 'web3', { state: 'active', name: 'caliweb3', profile_ids: ['WEB'], ipv4_nets: ['203.0.113.3/32'] });
    spec = step(() => {
      producer.deleteEndpoint(remoteKey);
      producer.setEndpoint(web3Local);
    });
    expect(spec.localEndpoints.has('caliweb3')).toBe(true);
    expect(spec.v4.tables.filter.chains.has('cali-tw-caliweb3')).toBe(true);
    expect(members(spec, 'cali4-tag-APP_7890')).toContain('203.0.113.3');

    // And back to remote: its chains go, its address stays in the set.
    spec = step(() => {
      producer.deleteEndpoint(web3Local[0]);
      producer.setEndpoint(web3);
    });
    expect(spec.localEndpoints.has('caliweb3')).toBe(false);
    expect(spec.v4.tables.filter.chains.has('cali-tw-caliweb3')).toBe(false);
    expect(members(spec, 'cali4-tag-APP_7890')).toContain('203.0.113.3');

    // WEB stops carrying APP_7890: the set APP's rule references is emptied, rules unchanged.
    const web = producer.profiles.get('WEB')!;
    spec = step(() => producer.setProfile('WEB', { ...web, tags: ['WEB'] }));
    expect(members(spec, 'cali4-tag-APP_7890')).toEqual([]);
    spec = step(() => producer.setProfile('WEB', web));
    expect(members(spec, 'cali4-tag-APP_7890')).toEqual(['192.0.2.10', '198.51.100.10', '203.0.113.3']);

    // Two profiles edited at once: both chains rewritten, in the spec's order (APP before WEB).
    const app = producer.profiles.get('APP')!;
    const withIcmp = (p: ProfileInput) => profile({ ...p.rules, outbound_rules: [{ action: 'allow', protocol: 'icmp' }] }, p.tags);
    const beforeBoth = before;
    spec = step(() => {
      producer.setProfile('WEB', withIcmp(web));
      producer.setProfile('APP', withIcmp(app));
    });
    expect(planFamily(spec.v4, kernelStateOf(beforeBoth.v4)).iptablesUpdates.filter.match(/^:\S+/gm)).toEqual([':cali-pro-APP', ':cali-pro-WEB']);
    spec = step(() => {
      producer.setProfile('WEB', web);
      producer.setProfile('APP', app);
    });

    // APP is deleted: its chains and the set only it referenced go; app1's chains drop.
    spec = step(() => producer.deleteProfile('APP'));
    expect(spec.v4.tables.filter.chains.has('cali-pri-APP')).toBe(false);
    expect(spec.v4.ipsets.has('cali4-tag-APP_7890')).toBe(false);
    expect(spec.v4.tables.filter.chains.get('cali-tw-caliapp1')!.rules.join('\n')).toContain('Profile APP is missing');
    expect(spec.diagnostics.map((d) => d.kind)).toContain('missing-profile');

    // A one-profile rule change with nothing else: only that profile's chain is rewritten.
    const previous = before;
    spec = step(() =>
      producer.setProfile('WEB', profile({ inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: [8443] }], outbound_rules: [{ action: 'allow' }] }, web.tags)),
    );
    const plan = planFamily(spec.v4, kernelStateOf(previous.v4));
    expect(plan.iptablesUpdates.filter.match(/^:\S+/gm)).toEqual([':cali-pri-WEB']);
    expect(plan.iptablesUpdates.filter).toContain('--destination-ports 8443');
    expect([plan.ipsetUpdates, plan.ipsetDeletions, plan.iptablesDeletions.filter]).toEqual(['', '', '']);
  });

  test('the counters are honoured: an unbumped in-place change is not seen (contract, not a bug)', () => {
    const producer = new InPlaceProducer(webAppSnapshot());
    const compiler = new Compiler();
    const first = compiler.compile(producer.snapshot());
    // Violates the contract on purpose: mutate without bumping.
    producer.profiles.delete('APP');
    expect(compiler.compile(producer.snapshot())).toBe(first);
    // Bumping (or handing in another Map object) makes the change visible.
    producer.generations.profiles++;
    expect(compiler.compile(producer.snapshot()).v4.tables.filter.chains.has('cali-pri-APP')).toBe(false);
  });
});
