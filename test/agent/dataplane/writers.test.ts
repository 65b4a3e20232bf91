/**
 * The table and ipset writers driven by the calculation graph, against the kernel simulator
 * (test/helpers/kernel-sim.ts, which enforces the ordering rules of the real kernel: no jump to a
 * missing chain, no reference to a missing set, no destroy of a set in use). Properties: after any
 * history of per-key deltas, one pass (graph changes → writers → restore text in the agent's
 * order) leaves the simulated kernel holding exactly compile() of the snapshot, and a second pass
 * writes nothing. Examples: one member change is one line; drift found by verify() is repaired by
 * rewriting only what drifted; adopting a kernel with stale chains and sets removes them.
 * (Foreign chains and sets are never read as ours: names.ts prefixes, tested with real tools.)
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { IpsetWriter } from '../../../agent/dataplane/ipset-writer.js';
import { TableWriter } from '../../../agent/dataplane/table-writer.js';
import { CalcGraph, compile, defaultCompilerConfig, kernelStateOf, type IpFamily } from '../../../compiler/index.js';
import { KernelSim, normaliseState } from '../../helpers/kernel-sim.js';
import { Datastore, opArb } from '../../compiler/delta-arbitraries.js';
import { endpointInput, feedGraph, webAppSnapshot } from '../../compiler/fixtures.js';

/** One family's writers and the simulated kernel they write to. */
class FamilyRig {
  readonly sim = new KernelSim();
  readonly tables: { filter: TableWriter; raw: TableWriter };
  readonly ipsets: IpsetWriter;
  /** Every restore input of the last pass, in order. */
  written: string[] = [];

  constructor(
    readonly family: IpFamily,
    graph: CalcGraph,
  ) {
    const desired = graph.desired(family);
    this.tables = { filter: new TableWriter(family, 'filter', desired), raw: new TableWriter(family, 'raw', desired) };
    this.ipsets = new IpsetWriter(family, desired);
  }

  /** Reads the simulated kernel into every writer (what the agent's first pass does). */
  adopt(): void {
    const state = this.sim.state();
    this.tables.filter.adopt(state.tables.filter);
    this.tables.raw.adopt(state.tables.raw);
    this.ipsets.adopt(state.ipsets);
  }

  /**
   * One pass in the reconciler's order; returns the bytes written. `midWrite` runs while the
   * ipset and table writes are in flight (after planning, before committing): the graph moving,
   * as a watch event does during a real write.
   */
  pass(graph: CalcGraph, midWrite: () => void = () => {}): number {
    const changes = graph.takeChanges().families[this.family];
    this.tables.filter.markDirty(changes.chains.filter);
    this.tables.raw.markDirty(changes.chains.raw);
    this.ipsets.markDirty(changes);
    this.written = [];
    const ipset = (text: string) => (this.written.push(text), this.sim.applyIpset(text));
    const iptables = (table: 'filter' | 'raw', text: string) => (this.written.push(text), this.sim.applyIptables(table, text));
    const sets = this.ipsets.planUpdates();
    midWrite();
    ipset(sets);
    this.ipsets.commitUpdates();
    for (const table of ['raw', 'filter'] as const) {
      const text = this.tables[table].planUpdates();
      midWrite();
      iptables(table, text);
      this.tables[table].commitUpdates();
    }
    for (const table of ['raw', 'filter'] as const) {
      iptables(table, this.tables[table].planDeletions());
      this.tables[table].commitDeletions();
    }
    ipset(this.ipsets.planDeletions());
    this.ipsets.commitDeletions();
    return this.written.reduce((n, text) => n + text.length, 0);
  }
}

/** Both families' rigs on one graph; the first pass reads the (empty) simulated kernels. */
function rigs(graph: CalcGraph): FamilyRig[] {
  const both = [new FamilyRig(4, graph), new FamilyRig(6, graph)];
  for (const rig of both) rig.adopt();
  return both;
}

/** Both families in one pass, as the agent does (one takeChanges for both); `midWrite` as in FamilyRig.pass. */
function passBoth(graph: CalcGraph, both: FamilyRig[], midWrite?: () => void): number {
  const changes = graph.takeChanges();
  let bytes = 0;
  for (const rig of both) {
    const replay = { takeChanges: () => changes } as unknown as CalcGraph;
    bytes += rig.pass(replay, midWrite);
  }
  return bytes;
}

describe('writers driven by the calculation graph', () => {
  test('property: after any history, one pass leaves the kernel holding compile() of the snapshot; a second writes nothing', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 10 }),
        fc.constantFrom(1, 1048576),
        (batches, maxIpsetSize) => {
          const graph = new CalcGraph('host1', { ...defaultCompilerConfig(), maxIpsetSize });
          const store = new Datastore(graph, maxIpsetSize);
          const both = rigs(graph);
          for (const batch of batches) {
            for (const op of batch) store.apply(op);
            passBoth(graph, both);
            const oracle = compile(store.snapshot());
            for (const rig of both) {
              const want = rig.family === 4 ? oracle.v4 : oracle.v6;
              expect(normaliseState(rig.sim.state())).toEqual(normaliseState(kernelStateOf(want)));
            }
            expect(passBoth(graph, both)).toBe(0);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('property: deltas arriving while a pass writes are not lost: the next pass writes them, and the kernel ends as compile()', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(opArb, { minLength: 1, maxLength: 5 }), fc.array(fc.array(opArb, { maxLength: 2 }), { maxLength: 6 })), { minLength: 1, maxLength: 6 }),
        (batches) => {
          const graph = new CalcGraph('host1', defaultCompilerConfig());
          const store = new Datastore(graph, 1048576);
          const both = rigs(graph);
          for (const [batch, during] of batches) {
            for (const op of batch) store.apply(op);
            // One small batch of deltas lands during each write of the pass (3 per family).
            const pending = [...during];
            passBoth(graph, both, () => pending.shift()?.forEach((op) => store.apply(op)));
            for (const ops of pending) for (const op of ops) store.apply(op);
            passBoth(graph, both);
            const oracle = compile(store.snapshot());
            for (const rig of both) {
              expect(normaliseState(rig.sim.state())).toEqual(normaliseState(kernelStateOf(rig.family === 4 ? oracle.v4 : oracle.v6)));
            }
            expect(passBoth(graph, both)).toBe(0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  function webApp(): { graph: CalcGraph; both: FamilyRig[] } {
    const snapshot = webAppSnapshot();
    const graph = feedGraph(new CalcGraph(snapshot.hostname, snapshot.config), snapshot);
    const both = rigs(graph);
    passBoth(graph, both);
    return { graph, both };
  }

  test('a remote endpoint joining a tag writes one ipset line per family it has an address in', () => {
    const { graph, both } = webApp();
    const [key, input] = endpointInput('host9', 'w9', { state: 'active', name: 'caliw9', profile_ids: ['WEB'], ipv4_nets: ['203.0.113.9/32'] });
    graph.setEndpoint(key, input);
    passBoth(graph, both);
    expect(both[0]!.written.filter((text) => text !== '')).toEqual(['add cali4-tag-APP_7890 203.0.113.9\n']);
    expect(both[1]!.written.filter((text) => text !== '')).toEqual([]);
  });

  test('verify() reports drift (a flushed chain, a deleted member) and the next pass repairs only that', () => {
    const { graph, both } = webApp();
    const [v4] = both as [FamilyRig, FamilyRig];
    v4.sim.applyIptables('filter', '*filter\n-F cali-pri-WEB\nCOMMIT\n');
    v4.sim.applyIpset('del cali4-tag-APP_7890 198.51.100.10\n');
    const observed = v4.sim.state();
    expect(v4.tables.filter.verify(observed.tables.filter)).toEqual(['cali-pri-WEB']);
    expect(v4.tables.raw.verify(observed.tables.raw)).toEqual([]);
    expect(v4.ipsets.verify(observed.ipsets)).toEqual(['cali4-tag-APP_7890']);
    v4.pass(graph);
    expect(v4.written.filter((text) => text !== '')).toEqual([
      'add cali4-tag-APP_7890 198.51.100.10\n',
      expect.stringMatching(/^\*filter\n:cali-pri-WEB - \[0:0\]\n(-A cali-pri-WEB .*\n)+COMMIT\n$/),
    ]);
    // Nothing drifted any more.
    const after = v4.sim.state();
    expect(v4.tables.filter.verify(after.tables.filter)).toEqual([]);
    expect(v4.ipsets.verify(after.ipsets)).toEqual([]);
  });

  test('adopting a kernel with stale chains and sets of ours removes them (rules first, then the set)', () => {
    const graph = new CalcGraph('host1', defaultCompilerConfig());
    const rig = new FamilyRig(4, graph);
    rig.sim.applyIpset('create cali4-tag-OLD hash:net family inet maxelem 1048576\nadd cali4-tag-OLD 192.0.2.1\n');
    rig.sim.applyIptables('filter', '*filter\n:cali-pri-OLD - [0:0]\n-A cali-pri-OLD -m set --match-set cali4-tag-OLD src -j ACCEPT\nCOMMIT\n');
    rig.adopt();
    rig.pass(graph);
    const state = rig.sim.state();
    expect([...state.tables.filter.chains.keys()].filter((name) => name.includes('OLD'))).toEqual([]);
    expect([...state.ipsets.keys()]).not.toContain('cali4-tag-OLD');
    expect(normaliseState(state)).toEqual(normaliseState(kernelStateOf(compile({ hostname: 'host1', config: defaultCompilerConfig(), profiles: new Map(), endpoints: new Map() }).v4)));
  });

  test('a writer that does not know the kernel refuses to plan', () => {
    const graph = new CalcGraph('host1', defaultCompilerConfig());
    expect(() => new TableWriter(4, 'filter', graph.desired(4)).planUpdates()).toThrow('filter table of IPv4: kernel state unknown; read it first');
    expect(() => new IpsetWriter(6, graph.desired(6)).planUpdates()).toThrow('ipsets of IPv6: kernel state unknown; read them first');
  });
});
