/**
 * Calculation-graph benchmark (prints figures, asserts nothing): a large host — 1,000 local
 * endpoints, 2,000 profiles of 10 rules, 100,000 endpoints cluster-wide, 2,000 tags — fed into the
 * graph key by key (cold), then single changes, each measured as the agent's pass does it:
 * the update into the graph, `takeChanges()`, and the writers' restore text for what changed
 * (against their cache of the previous state). `compile()` of the whole snapshot (the oracle) is
 * timed once for comparison. Targets (perf-reliability.md Part C): cold < 1 s, one change O(change).
 *
 * Run: npm run bench:compile
 */
import { IpsetWriter } from '../../agent/dataplane/ipset-writer.js';
import { TableWriter } from '../../agent/dataplane/table-writer.js';
import { CalcGraph, compile, defaultCompilerConfig, kernelStateOf, renderFamily } from '../../compiler/index.js';
import type { DataplaneSpec, EndpointInput, FamilyPlan, IpFamily, ProfileInput, Snapshot } from '../../compiler/index.js';
import { endpointKey, endpointSchema, rulesSchema, type EndpointRef } from '../../src/model/index.js';
import { prng } from './prng.js';

const LOCAL_ENDPOINTS = 1_000;
const PROFILES = 2_000;
const RULES_PER_PROFILE = 10;
const CLUSTER_ENDPOINTS = 100_000;
const HOST = 'bench-host';

const random = prng(42);
const pick = (n: number) => Math.floor(random() * n);

function ruleFor(i: number, j: number): Record<string, unknown> {
  switch (j % 5) {
    case 0:
      return { action: 'allow', protocol: 'tcp', dst_ports: [80 + (i % 100), 443, '8000:8100'], src_tag: `tag-${pick(PROFILES)}` };
    case 1:
      return { action: 'allow', protocol: 'udp', dst_ports: [53, 5353], '!src_tag': `tag-${pick(PROFILES)}` };
    case 2:
      return { action: 'deny', src_net: `10.${i % 256}.${j}.0/24` };
    case 3:
      return { action: 'allow', protocol: 'icmp', icmp_type: 8 };
    default:
      return { action: 'allow', protocol: 'tcp', src_net: `2001:db8:${i.toString(16)}::/48`, dst_ports: [22] };
  }
}

function profileInput(i: number, salt = 0): ProfileInput {
  const rules = Array.from({ length: RULES_PER_PROFILE }, (_, j) => ruleFor(i + salt, j));
  return {
    rules: rulesSchema.parse({ inbound_rules: rules.slice(0, 6), outbound_rules: rules.slice(6) }),
    tags: [`tag-${i}`],
  };
}

function endpointEntry(n: number, host: string): [string, EndpointInput] {
  const ref: EndpointRef = { host, orchestrator: 'k8s', workload: `wl${n}`, endpointId: `eth0-${n}` };
  const profileIds = [`prof-${pick(PROFILES)}`];
  if (random() < 0.5) profileIds.push(`prof-${pick(PROFILES)}`);
  const endpoint = endpointSchema.parse({
    state: 'active',
    name: `cali${(n * 2654435761 >>> 0).toString(16).padStart(8, '0')}${n.toString(16).slice(-3)}`.slice(0, 15),
    mac: '02:00:00:00:00:01',
    profile_ids: profileIds,
    ipv4_nets: [`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}/32`],
    ipv6_nets: n % 2 === 0 ? [`2001:db8::${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}/128`] : [],
  });
  return [endpointKey(ref), { ref, endpoint }];
}

function buildSnapshot(): Snapshot {
  const profiles = new Map<string, ProfileInput>();
  for (let i = 0; i < PROFILES; i++) profiles.set(`prof-${i}`, profileInput(i));
  const endpoints = new Map<string, EndpointInput>();
  for (let n = 0; n < CLUSTER_ENDPOINTS; n++) {
    const [key, input] = endpointEntry(n, n < LOCAL_ENDPOINTS ? HOST : `host-${n % 500}`);
    if (n < LOCAL_ENDPOINTS) {
      // Local endpoints cover every profile so all 2,000 profiles are programmed here.
      input.endpoint.profile_ids.splice(0, 1, `prof-${n}`, `prof-${n + LOCAL_ENDPOINTS}`);
    }
    endpoints.set(key, input);
  }
  return { hostname: HOST, config: defaultCompilerConfig(), profiles, endpoints };
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/**
 * Wall and CPU time of `fn` in ms. CPU time (user + system of this process) is printed too
 * because benchmarks often share the machine: wall time then includes waiting for a core.
 */
function timed<T>(fn: () => T): { value: T; wall: number; cpu: number } {
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  const value = fn();
  const wall = ms(start);
  const cpu = process.cpuUsage(cpuStart);
  return { value, wall, cpu: (cpu.user + cpu.system) / 1000 };
}

const fmt = (samples: { wall: number; cpu: number }[]) =>
  `median ${median(samples.map((s) => s.wall)).toFixed(2)} ms wall / ${median(samples.map((s) => s.cpu)).toFixed(2)} ms cpu` +
  ` (max ${Math.max(...samples.map((s) => s.wall)).toFixed(1)} ms wall)`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const planBytes = (p: FamilyPlan) =>
  p.ipsetUpdates.length + p.ipsetDeletions.length + p.iptablesUpdates.filter.length + p.iptablesUpdates.raw.length +
  p.iptablesDeletions.filter.length + p.iptablesDeletions.raw.length;

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function describeSpec(spec: DataplaneSpec): void {
  for (const family of [spec.v4, spec.v6]) {
    const chains = [...family.tables.filter.chains.values(), ...family.tables.raw.chains.values()];
    const rules = chains.reduce((n, c) => n + c.rules.length, 0);
    const members = [...family.ipsets.values()].reduce((n, s) => n + s.members.length, 0);
    const full = renderFamily(family);
    console.log(
      `  IPv${family.family}: ${chains.length} chains, ${rules} rules, ${family.ipsets.size} ipsets, ${members} members, ` +
        `restore ${(full.iptablesUpdates.filter.length / 1024).toFixed(0)} KiB iptables + ${(full.ipsetUpdates.length / 1024).toFixed(0)} KiB ipset`,
    );
  }
}

/** One family's writers, their caches adopted from the graph's current state. */
function writersOf(graph: CalcGraph, family: IpFamily) {
  const desired = graph.desired(family);
  const state = kernelStateOf(family === 4 ? graph.toSpec().v4 : graph.toSpec().v6);
  const tables = { filter: new TableWriter(family, 'filter', desired), raw: new TableWriter(family, 'raw', desired) };
  const ipsets = new IpsetWriter(family, desired);
  tables.filter.adopt(state.tables.filter);
  tables.raw.adopt(state.tables.raw);
  ipsets.adopt(state.ipsets);
  return { tables, ipsets };
}

type Writers = ReturnType<typeof writersOf>;

/** What a pass does after the inputs: take the graph's changes, plan and commit every writer; returns bytes. */
function pass(graph: CalcGraph, writers: readonly [IpFamily, Writers][]): number {
  const changes = graph.takeChanges();
  let bytes = 0;
  for (const [family, { tables, ipsets }] of writers) {
    const changed = changes.families[family];
    tables.filter.markDirty(changed.chains.filter);
    tables.raw.markDirty(changed.chains.raw);
    ipsets.markDirty(changed);
    for (const step of [ipsets, tables.raw, tables.filter] as const) {
      bytes += step.planUpdates().length;
      step.commitUpdates();
    }
    for (const step of [tables.raw, tables.filter, ipsets] as const) {
      bytes += step.planDeletions().length;
      step.commitDeletions();
    }
  }
  return bytes;
}

function measureChanges(graph: CalcGraph): void {
  const writers: [IpFamily, Writers][] = [[4, writersOf(graph, 4)], [6, writersOf(graph, 6)]];
  const noop = Array.from({ length: 9 }, () => timed(() => pass(graph, writers)));
  console.log(`no-op pass, both families: ${fmt(noop)}, ${noop[0]!.value} bytes`);
  const step = (change: () => void) => timed(() => {
    change();
    return pass(graph, writers);
  });
  const report = (label: string, samples: { value: number; wall: number; cpu: number }[]) =>
    console.log(`${label}: ${fmt(samples)}; writes ${median(samples.map((c) => c.value))} bytes`);

  report('single-profile rule change (graph + writers, both families)', Array.from({ length: 21 }, (_, round) => step(() => graph.setProfileRules('prof-7', profileInput(7, round + 1).rules))));
  const joined: string[] = [];
  report('remote endpoint joins its tags', Array.from({ length: 21 }, (_, round) => step(() => {
    const [key, input] = endpointEntry(CLUSTER_ENDPOINTS + round, 'host-new');
    joined.push(key);
    graph.setEndpoint(key, input);
  })));
  report('remote endpoint leaves its tags', joined.map((key) => step(() => graph.setEndpoint(key, undefined))));
  report('profile tag added (every member of the profile joins a set)', Array.from({ length: 21 }, (_, round) => step(() => graph.setProfileTags('prof-9', round % 2 === 0 ? ['tag-9', 'tag-11'] : ['tag-9']))));
  const locals: string[] = [];
  report('local endpoint added (its chains, dispatch)', Array.from({ length: 21 }, (_, round) => step(() => {
    const [key, input] = endpointEntry(CLUSTER_ENDPOINTS + 100 + round, HOST);
    locals.push(key);
    graph.setEndpoint(key, input);
  })));
}

function main(): void {
  global.gc?.();
  const start = process.hrtime.bigint();
  const snapshot = buildSnapshot();
  console.log(`built snapshot: ${PROFILES} profiles x ${RULES_PER_PROFILE} rules, ${CLUSTER_ENDPOINTS} endpoints (${LOCAL_ENDPOINTS} local) in ${ms(start).toFixed(0)} ms`);

  const oracle = timed(() => compile(snapshot));
  console.log(`compile() of the whole snapshot (the oracle): ${oracle.wall.toFixed(0)} ms wall / ${oracle.cpu.toFixed(0)} ms cpu`);
  describeSpec(oracle.value);
  const full = timed(() => [renderFamily(oracle.value.v4), renderFamily(oracle.value.v6)]);
  console.log(
    `render full restore text: ${full.wall.toFixed(0)} ms wall / ${full.cpu.toFixed(0)} ms cpu ` +
      `(${(full.value.reduce((n, p) => n + planBytes(p), 0) / 1024 / 1024).toFixed(1)} MiB)`,
  );

  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const cold = timed(() => {
    const graph = new CalcGraph(HOST, snapshot.config);
    for (const [id, p] of snapshot.profiles) {
      graph.setProfileRules(id, p.rules);
      graph.setProfileTags(id, p.tags);
    }
    for (const [key, input] of snapshot.endpoints) graph.setEndpoint(key, input);
    graph.takeChanges();
    return graph;
  });
  global.gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  console.log(
    `graph cold (every key fed, changes taken): ${cold.wall.toFixed(0)} ms wall / ${cold.cpu.toFixed(0)} ms cpu; heap held by the graph ` +
      `(with the snapshot's objects it shares): ${mib(heapAfter - heapBefore)}${global.gc ? '' : ' (run with --expose-gc for exact figures)'}`,
  );
  measureChanges(cold.value);
  console.log(`process RSS ${mib(process.memoryUsage().rss)}`);
}

main();
