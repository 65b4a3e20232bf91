/**
 * planFamily: minimal restore text from a kernel state to a spec, checked on examples and with
 * fast-check properties against the kernel simulator (test/helpers/kernel-sim.ts):
 * - compile is independent of snapshot map insertion order (and of the memo tables);
 * - planFamily(x, kernelStateOf(x)) is empty;
 * - applying planFamily(b, kernelStateOf(a)) to a kernel holding a yields kernelStateOf(b).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  compile,
  defaultCompilerConfig,
  emptyKernelState,
  isEmptyPlan,
  kernelStateOf,
  planFamily,
  renderFamily,
} from '../../compiler/index.js';
import type { DataplaneSpec, EndpointInput, FamilyPlan, FamilySpec, KernelFamilyState, ProfileInput, Snapshot } from '../../compiler/index.js';
import { KernelSim, normaliseState } from '../helpers/kernel-sim.js';
import { endpointInput, feedGraph, graphOf, profile, webAppSnapshot } from './fixtures.js';

function loadedSim(spec: FamilySpec): KernelSim {
  const sim = new KernelSim();
  sim.applyPlan(renderFamily(spec));
  return sim;
}

const planBytes = (plan: FamilyPlan) =>
  plan.ipsetUpdates.length + plan.ipsetDeletions.length +
  plan.iptablesUpdates.filter.length + plan.iptablesUpdates.raw.length +
  plan.iptablesDeletions.filter.length + plan.iptablesDeletions.raw.length;

function withProfile(snap: Snapshot, id: string, value: ProfileInput): Snapshot {
  const profiles = new Map(snap.profiles);
  profiles.set(id, value);
  return { ...snap, profiles };
}

describe('planFamily examples', () => {
  test('a spec planned against its own kernel state is empty (0 bytes)', () => {
    const spec = compile(webAppSnapshot());
    for (const family of [spec.v4, spec.v6]) {
      const plan = planFamily(family, kernelStateOf(family));
      expect(isEmptyPlan(plan)).toBe(true);
      expect(planBytes(plan)).toBe(0);
      // Also when the state was read back from a (simulated) kernel rather than produced here.
      expect(isEmptyPlan(planFamily(family, loadedSim(family).state()))).toBe(true);
    }
  });

  test('a one-rule change writes only the chain that contains it', () => {
    const before = webAppSnapshot();
    const after = withProfile(
      before,
      'WEB',
      profile(
        { inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: [80, 443, 8443] }, { action: 'allow', protocol: 'icmp', icmp_type: 8 }], outbound_rules: [{ action: 'allow' }] },
        ['WEB', 'APP_7890'],
      ),
    );
    const a = compile(before);
    const b = compile(after);
    const plan = planFamily(b.v4, loadedSim(a.v4).state());
    expect(plan.ipsetUpdates).toBe('');
    expect(plan.iptablesDeletions).toEqual({ filter: '', raw: '' });
    expect(plan.iptablesUpdates.raw).toBe('');
    const lines = plan.iptablesUpdates.filter.trimEnd().split('\n');
    expect(lines[0]).toBe('*filter');
    expect(lines[1]).toBe(':cali-pri-WEB - [0:0]');
    expect(lines.slice(2, -1).every((l) => l.startsWith('-A cali-pri-WEB '))).toBe(true);
    expect(lines.length - 3).toBe(4);
    expect(lines.at(-1)).toBe('COMMIT');
    expect(plan.iptablesUpdates.filter).toContain('--destination-ports 80,443,8443');
    expect(plan.iptablesUpdates.filter.length).toBeLessThan(1200);
  });

  test('a tag membership change writes only ipset deltas', () => {
    const before = webAppSnapshot();
    const endpoints = new Map(before.endpoints);
    const [key] = [...endpoints].find(([, v]) => v.ref.endpointId === 'web2')!;
    endpoints.delete(key);
    const [k, v] = endpointInput('host2', 'web9', { state: 'active', name: 'caliweb9', profile_ids: ['WEB'], ipv4_nets: ['203.0.113.9/32'] });
    endpoints.set(k, v);
    const a = compile(before);
    const b = compile({ ...before, endpoints });
    const plan = planFamily(b.v4, kernelStateOf(a.v4));
    expect(plan).toEqual({
      ipsetUpdates: 'del cali4-tag-APP_7890 198.51.100.10\nadd cali4-tag-APP_7890 203.0.113.9\n',
      iptablesUpdates: { filter: '', raw: '' },
      iptablesDeletions: { filter: '', raw: '' },
      ipsetDeletions: '',
    });
    expect(planFamily(b.v6, kernelStateOf(a.v6)).ipsetUpdates).toBe('del cali6-tag-APP_7890 2001:db8:1::10\n');
  });

  test('three or more member changes to one set are headed by its declaration (create -exist), which the kernel takes as a no-op', () => {
    const before = webAppSnapshot();
    const endpoints = new Map(before.endpoints);
    for (const n of [21, 22, 23]) {
      const [k, v] = endpointInput('host2', `web${n}`, { state: 'active', name: `caliweb${n}`, profile_ids: ['WEB'], ipv4_nets: [`203.0.113.${n}/32`] });
      endpoints.set(k, v);
    }
    const a = compile(before);
    const b = compile({ ...before, endpoints });
    const sim = loadedSim(a.v4);
    const plan = planFamily(b.v4, sim.state());
    expect(plan.ipsetUpdates).toBe(
      'create cali4-tag-APP_7890 hash:net family inet maxelem 1048576 -exist\n' +
        ['21', '22', '23'].map((n) => `add cali4-tag-APP_7890 203.0.113.${n}\n`).join(''),
    );
    sim.applyPlan(plan);
    expect(normaliseState(sim.state())).toEqual(normaliseState(kernelStateOf(b.v4)));
    // The same declaration against a set of other metadata is refused.
    const other = loadedSim(compile(webAppSnapshot({ ...defaultCompilerConfig(), maxIpsetSize: 65536 })).v4);
    expect(() => other.applyPlan(plan)).toThrow(/already exists/);
  });

  test('a maxelem change rebuilds the set through a scratch set and swap', () => {
    const a = compile(webAppSnapshot());
    const b = compile(webAppSnapshot({ ...defaultCompilerConfig(), maxIpsetSize: 65536 }));
    const sim = loadedSim(a.v4);
    const plan = planFamily(b.v4, sim.state());
    expect(plan.ipsetUpdates).toMatch(
      /^create (cali4-tmp-\w+) hash:net family inet maxelem 65536\nadd \1 192\.0\.2\.10\nadd \1 198\.51\.100\.10\nswap \1 cali4-tag-APP_7890\ndestroy \1\n$/,
    );
    expect(plan.iptablesUpdates.filter).toBe('');
    sim.applyPlan(plan);
    expect(normaliseState(sim.state())).toEqual(normaliseState(kernelStateOf(b.v4)));
  });

  test('stale chains are flushed then deleted; stale sets destroyed after', () => {
    const a = compile(webAppSnapshot());
    const b = compile(withProfile(webAppSnapshot(), 'APP', { tags: ['APP'] })); // APP missing → its chains go
    const plan = planFamily(b.v4, kernelStateOf(a.v4));
    expect(plan.iptablesDeletions.filter).toBe(
      '*filter\n-F cali-pri-APP\n-F cali-pro-APP\n-X cali-pri-APP\n-X cali-pro-APP\nCOMMIT\n',
    );
    expect(plan.ipsetDeletions).toBe('destroy cali4-tag-APP_7890\n');
    const sim = loadedSim(a.v4);
    sim.applyPlan(plan);
    expect(normaliseState(sim.state())).toEqual(normaliseState(kernelStateOf(b.v4)));
  });

  test('hooks: inserted at position 1 above foreign rules; stale and duplicate copies removed', () => {
    const spec = compile(webAppSnapshot()).v4;
    const sim = new KernelSim();
    sim.appendForeign('filter', 'INPUT', '-p tcp -j ACCEPT');
    sim.applyPlan(renderFamily(spec));
    let input = sim.state().tables.filter.builtins.get('INPUT')!;
    expect(input.map((r) => r.hash)).toEqual([spec.tables.filter.hooks[0]!.hash, null]);

    // Someone re-inserted a foreign rule on top and left a stale copy of an old hook.
    sim.applyIptables('filter', '*filter\n-I INPUT 1 -p udp -j ACCEPT\n-I INPUT 1 -m comment --comment "cali:0000000000000000" --jump cali-INPUT\n-I INPUT 1 -p icmp -j ACCEPT\nCOMMIT\n');
    sim.applyIptables('raw', '*raw\n:cali-old - [0:0]\n-A cali-old --jump DROP\n-I PREROUTING 1 -m comment --comment "cali:1111111111111111" --jump cali-old\nCOMMIT\n');
    const plan = planFamily(spec, sim.state());
    expect(plan.iptablesUpdates.filter).toBe(
      '*filter\n' +
        '-D INPUT -m comment --comment "cali:0000000000000000" --jump cali-INPUT\n' +
        `-D INPUT ${spec.tables.filter.hooks[0]!.rule}\n` +
        `-I INPUT 1 ${spec.tables.filter.hooks[0]!.rule}\n` +
        'COMMIT\n',
    );
    expect(plan.iptablesUpdates.raw).toBe('*raw\n-D PREROUTING -m comment --comment "cali:1111111111111111" --jump cali-old\nCOMMIT\n');
    expect(plan.iptablesDeletions.raw).toBe('*raw\n-F cali-old\n-X cali-old\nCOMMIT\n');
    sim.applyPlan(plan);
    input = sim.state().tables.filter.builtins.get('INPUT')!;
    expect(input.map((r) => r.hash)).toEqual([spec.tables.filter.hooks[0]!.hash, null, null, null]);
    expect(isEmptyPlan(planFamily(spec, sim.state()))).toBe(true);
  });

  test("a family's plan never destroys the other family's sets", () => {
    const spec = compile(webAppSnapshot());
    const mixed: KernelFamilyState = {
      ...kernelStateOf(spec.v4),
      ipsets: new Map([...kernelStateOf(spec.v4).ipsets, ...kernelStateOf(spec.v6).ipsets]),
    };
    expect(isEmptyPlan(planFamily(spec.v4, mixed))).toBe(true);
    expect(planFamily(spec.v6, { ...mixed, ipsets: new Map([...mixed.ipsets].filter(([n]) => n !== 'cali6-tag-APP_7890')) }).ipsetDeletions).toBe('');
  });

  test('a chain holding a rule without our hash comment is rewritten', () => {
    const spec = compile(webAppSnapshot()).v4;
    const sim = loadedSim(spec);
    sim.appendForeign('filter', 'cali-pro-WEB', '-j ACCEPT');
    const plan = planFamily(spec, sim.state());
    expect(plan.iptablesUpdates.filter.split('\n')[1]).toBe(':cali-pro-WEB - [0:0]');
    sim.applyPlan(plan);
    expect(normaliseState(sim.state())).toEqual(normaliseState(kernelStateOf(spec)));
  });
});

// ---- Properties ---------------------------------------------------------------------------

const RULE_POOL: Record<string, unknown>[] = [
  {},
  { action: 'deny' },
  { protocol: 'tcp', dst_ports: [80, 443] },
  { protocol: 'udp', src_ports: Array.from({ length: 18 }, (_, i) => i + 1), action: 'deny' },
  { protocol: 'icmp', icmp_type: 8 },
  { protocol: 'icmpv6', icmp_type: 128, icmp_code: 0 },
  { src_net: '192.0.2.0/24' },
  { '!dst_net': '2001:db8::/48', action: 'deny' },
  { src_tag: 't1' },
  { '!src_tag': 't2', protocol: 'tcp', '!dst_ports': ['1000:2000', 22] },
  { dst_tag: 't3', ip_version: 6 },
  { src_tag: 't1', dst_tag: 't2', src_net: '198.51.100.0/24' },
  { '!protocol': 'udp', '!icmp_type': 3, protocol: 'icmp' },
];
const PROFILE_IDS = ['p1', 'p2', 'p3', 'a-rather-long-profile-identifier-x'];
const TAGS = ['t1', 't2', 't3'];
const IFACES = ['cali1', 'cali2', 'cali10', 'caliab', 'eth9'];

const profileArb: fc.Arbitrary<ProfileInput> = fc.record(
  {
    rules: fc.record({
      inbound_rules: fc.array(fc.constantFrom(...RULE_POOL), { maxLength: 4 }),
      outbound_rules: fc.array(fc.constantFrom(...RULE_POOL), { maxLength: 3 }),
    }),
    tags: fc.subarray(TAGS),
  },
  { requiredKeys: ['tags'] },
).map(({ rules, tags }) => (rules === undefined ? { tags } : profile(rules, tags)));

const endpointArb = fc.record({
  host: fc.constantFrom('host1', 'host1', 'host2'),
  id: fc.constantFrom('e1', 'e2', 'e3', 'e4', 'e5', 'e6'),
  name: fc.constantFrom(...IFACES),
  state: fc.constantFrom('active', 'active', 'inactive'),
  mac: fc.option(fc.constant('02:00:00:00:00:01'), { nil: undefined }),
  profile_ids: fc.subarray(PROFILE_IDS.concat('missing')).chain((ids) => fc.shuffledSubarray(ids, { minLength: ids.length })),
  v4: fc.subarray(['192.0.2.1/32', '192.0.2.2/32', '203.0.113.0/28', '203.0.113.5/32']),
  v6: fc.subarray(['2001:db8::1/128', '2001:db8::2/128', '2001:db8:5::/64']),
});

const snapshotArb: fc.Arbitrary<Snapshot> = fc
  .record({
    profiles: fc.dictionary(fc.constantFrom(...PROFILE_IDS), profileArb),
    endpoints: fc.array(endpointArb, { maxLength: 7 }),
    action: fc.constantFrom('DROP' as const, 'RETURN' as const, 'ACCEPT' as const),
    maxIpsetSize: fc.constantFrom(1, 2, 1048576),
  })
  .map(({ profiles, endpoints, action, maxIpsetSize }) => ({
    hostname: 'host1',
    config: { ...defaultCompilerConfig(), endpointToHostAction: action, maxIpsetSize },
    profiles: new Map(Object.entries(profiles)),
    endpoints: new Map(
      endpoints.map((e) =>
        endpointInput(e.host, e.id, {
          state: e.state,
          name: e.name,
          mac: e.mac,
          profile_ids: e.profile_ids,
          ipv4_nets: e.v4,
          ipv6_nets: e.v6,
        }),
      ),
    ),
  }));

/** (a, b) pairs that share much of their content, so plans exercise deltas as well as rebuilds. */
const snapshotPairArb: fc.Arbitrary<[Snapshot, Snapshot]> = fc
  .tuple(snapshotArb, snapshotArb, fc.constantFrom('independent', 'profiles', 'endpoints', 'config'))
  .map(([a, other, kind]) => {
    switch (kind) {
      case 'independent':
        return [a, other];
      case 'profiles':
        return [a, { ...a, profiles: other.profiles }];
      case 'endpoints':
        return [a, { ...a, endpoints: new Map([...a.endpoints].slice(1).concat([...other.endpoints].slice(0, 2))) }];
      case 'config':
        return [a, { ...a, config: other.config }];
    }
  });

function shuffled<T>(entries: [string, T][], seed: number): Map<string, T> {
  const copy = [...entries];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = (seed * (i + 7)) % (i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return new Map(copy.reverse());
}

function rendered(spec: DataplaneSpec): unknown {
  return {
    v4: renderFamily(spec.v4),
    v6: renderFamily(spec.v6),
    diagnostics: spec.diagnostics,
    local: [...spec.localEndpoints].map(([iface, e]: [string, EndpointInput]) => [iface, e.ref.endpointId]),
  };
}

describe('planFamily properties', () => {
  test('compile does not depend on map insertion order; a graph fed the keys in any order, after any history, agrees', () => {
    fc.assert(
      fc.property(snapshotArb, snapshotArb, fc.nat(1000), (snap, other, seed) => {
        const reordered: Snapshot = {
          ...snap,
          profiles: shuffled([...snap.profiles], seed),
          endpoints: shuffled([...snap.endpoints], seed + 1),
        };
        const fresh = rendered(compile(snap));
        expect(rendered(compile(reordered))).toEqual(fresh);
        // A graph's config and host are fixed: the earlier history is `other`'s keys under `snap`'s.
        const history: Snapshot = { ...other, hostname: snap.hostname, config: snap.config };
        const graph = graphOf(history);
        expect(rendered(graph.toSpec())).toEqual(rendered(compile(history)));
        feedGraph(graph, reordered, history);
        expect(rendered(graph.toSpec())).toEqual(fresh);
      }),
      { numRuns: 150 },
    );
  });

  test('planFamily(x, kernelStateOf(x)) is empty', () => {
    fc.assert(
      fc.property(snapshotArb, (snap) => {
        const spec = compile(snap);
        for (const family of [spec.v4, spec.v6]) expect(isEmptyPlan(planFamily(family, kernelStateOf(family)))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  test('applying planFamily(b, state(a)) to a kernel holding a yields b', () => {
    fc.assert(
      fc.property(snapshotPairArb, fc.boolean(), ([snapA, snapB], readBack) => {
        const a = compile(snapA);
        const b = compile(snapB);
        for (const family of ['v4', 'v6'] as const) {
          const sim = loadedSim(a[family]);
          expect(normaliseState(sim.state())).toEqual(normaliseState(kernelStateOf(a[family])));
          const actual: KernelFamilyState = readBack ? sim.state() : kernelStateOf(a[family]);
          sim.applyPlan(planFamily(b[family], actual));
          expect(normaliseState(sim.state())).toEqual(normaliseState(kernelStateOf(b[family])));
          expect(isEmptyPlan(planFamily(b[family], sim.state()))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('from an empty kernel the plan is the full render', () => {
    const spec = compile(webAppSnapshot());
    expect(planFamily(spec.v6, emptyKernelState())).toEqual(renderFamily(spec.v6));
  });
});
