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
import type { DataplaneSpec, FamilySpec, Snapshot } from '../../compiler/index.js';
import { Datastore, opArb } from './delta-arbitraries.js';
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
            const snapshot = store.snapshot();
            const oracle = compile(snapshot);
            mirror.expectEqual(oracle);
            expect(shape(graph.toSpec())).toEqual(shape(oracle));
            // The counters kept on the way match the oracle too.
            for (const family of [oracle.v4, oracle.v6]) {
              const rules = [...family.tables.filter.chains.values(), ...family.tables.raw.chains.values()].reduce((n, c) => n + c.rules.length, 0);
              expect(graph.desired(family.family).ruleCount).toBe(rules);
            }
            expect([graph.profileCount, graph.endpointCount]).toEqual([snapshot.profiles.size, snapshot.endpoints.size]);
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
