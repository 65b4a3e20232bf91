/**
 * Compiler benchmark (prints figures, asserts nothing): a large host — 1,000 local endpoints,
 * 2,000 profiles of 10 rules, 100,000 endpoints cluster-wide, 2,000 tags — compiled cold and
 * warm, rendered, and then a single-profile change and a single tag-member change compiled and
 * diffed against the previous kernel state. Targets (perf-reliability.md Part C): compile < 1 s,
 * single-profile change < 5 ms and O(changed chain) bytes.
 *
 * Two producers are measured, each with its own Compiler:
 * - "fresh maps": every change hands in new Maps without change counters, so every compile walks
 *   all profiles and endpoints;
 * - "in place + generations": the agent's way (agent/syncer.ts): one pair of Maps mutated in
 *   place, with Snapshot.generations bumped on every mutation, so unchanged Maps are not walked.
 *
 * Run: npm run bench:compile
 */
import {
  Compiler,
  defaultCompilerConfig,
  kernelStateOf,
  planFamily,
  renderFamily,
} from '../../compiler/index.js';
import type { DataplaneSpec, EndpointInput, FamilyPlan, KernelFamilyState, ProfileInput, Snapshot } from '../../compiler/index.js';
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

/** The same state in new maps, as the agent's read-back produces: planned entry by entry. */
function readBackCopy(state: KernelFamilyState): KernelFamilyState {
  const table = (t: KernelFamilyState['tables']['filter']) => ({ chains: new Map(t.chains), builtins: new Map(t.builtins) });
  return { tables: { filter: table(state.tables.filter), raw: table(state.tables.raw) }, ipsets: new Map(state.ipsets) };
}

/** Hands snapshots to the compiler and applies changes the way some datastore client would. */
interface Producer {
  snapshot(): Snapshot;
  setProfile(id: string, profile: ProfileInput): void;
  setEndpoint(key: string, input: EndpointInput): void;
}

/** New Maps on every change and no change counters: the compiler walks everything each time. */
function freshMapsProducer(initial: Snapshot): Producer {
  let current = initial;
  return {
    snapshot: () => current,
    setProfile(id, profile) {
      current = { ...current, profiles: new Map(current.profiles).set(id, profile) };
    },
    setEndpoint(key, input) {
      current = { ...current, endpoints: new Map(current.endpoints).set(key, input) };
    },
  };
}

/** One pair of Maps mutated in place, a counter bumped per mutation (what the agent's syncer does). */
function inPlaceProducer(initial: Snapshot): Producer {
  const profiles = new Map(initial.profiles);
  const endpoints = new Map(initial.endpoints);
  const generations = { profiles: 0, endpoints: 0 };
  return {
    snapshot: () => ({ hostname: initial.hostname, config: initial.config, profiles, endpoints, generations: { ...generations } }),
    setProfile(id, profile) {
      profiles.set(id, profile);
      generations.profiles++;
    },
    setEndpoint(key, input) {
      endpoints.set(key, input);
      generations.endpoints++;
    },
  };
}

function measureChanges(label: string, producer: Producer): void {
  console.log(`-- ${label}`);
  const compiler = new Compiler();
  const cold = timed(() => compiler.compile(producer.snapshot()));
  console.log(`cold compile: ${cold.wall.toFixed(0)} ms wall / ${cold.cpu.toFixed(0)} ms cpu`);
  const warm = Array.from({ length: 9 }, () => timed(() => compiler.compile(producer.snapshot())));
  console.log(`warm recompile, nothing changed: ${fmt(warm)}`);

  let state4 = kernelStateOf(cold.value.v4);
  let state6 = kernelStateOf(cold.value.v6);
  const noop = Array.from({ length: 9 }, () => timed(() => [planFamily(cold.value.v4, state4), planFamily(cold.value.v6, state6)]));
  console.log(`no-op plan, both families, state from kernelStateOf: ${fmt(noop)}, ${noop[0]!.value.reduce((n, p) => n + planBytes(p), 0)} bytes`);
  const [read4, read6] = [readBackCopy(state4), readBackCopy(state6)];
  const noopRead = Array.from({ length: 9 }, () => timed(() => [planFamily(cold.value.v4, read4), planFamily(cold.value.v6, read6)]));
  console.log(`no-op plan, both families, state as read back (entry by entry): ${fmt(noopRead)}`);

  const stateCaching: { wall: number; cpu: number }[] = [];
  const step = (change: () => void) => {
    change();
    const result = timed(() => {
      const next = compiler.compile(producer.snapshot());
      return { next, plans: [planFamily(next.v4, state4), planFamily(next.v6, state6)] };
    });
    // What the reconciler caches after a successful write (not part of compile + diff).
    const cached = timed(() => [kernelStateOf(result.value.next.v4), kernelStateOf(result.value.next.v6)] as const);
    stateCaching.push(cached);
    [state4, state6] = cached.value;
    return { ...result, bytes: result.value.plans.reduce((n, p) => n + planBytes(p), 0) };
  };

  // Single-profile change: one profile's rules edited (the datastore replaces that profile object).
  const profileChanges = Array.from({ length: 21 }, (_, round) => step(() => producer.setProfile('prof-7', profileInput(7, round + 1))));
  console.log(
    `single-profile change, compile + diff both families: ${fmt(profileChanges)}; writes ${median(profileChanges.map((c) => c.bytes))} bytes`,
  );

  // Tag membership change: a remote endpoint joins (its address enters its profiles' tag sets).
  const memberChanges = Array.from({ length: 21 }, (_, round) =>
    step(() => producer.setEndpoint(...endpointEntry(CLUSTER_ENDPOINTS + round, 'host-new'))),
  );
  console.log(`remote endpoint joins tags, compile + diff: ${fmt(memberChanges)}; writes ${median(memberChanges.map((c) => c.bytes))} bytes`);
  console.log(`kernelStateOf both families after each change (reconciler's cache): ${fmt(stateCaching)}`);
}

function main(): void {
  global.gc?.();
  const start = process.hrtime.bigint();
  const snapshot = buildSnapshot();
  console.log(`built snapshot: ${PROFILES} profiles x ${RULES_PER_PROFILE} rules, ${CLUSTER_ENDPOINTS} endpoints (${LOCAL_ENDPOINTS} local) in ${ms(start).toFixed(0)} ms`);

  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const compiler = new Compiler();
  const cold = timed(() => compiler.compile(snapshot));
  const spec = cold.value;
  global.gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  console.log(
    `cold compile: ${cold.wall.toFixed(0)} ms wall / ${cold.cpu.toFixed(0)} ms cpu; heap held by spec + memo tables: ` +
      `${mib(heapAfter - heapBefore)}${global.gc ? '' : ' (run with --expose-gc for exact figures)'}`,
  );
  describeSpec(spec);

  const full = timed(() => [renderFamily(spec.v4), renderFamily(spec.v6)]);
  console.log(
    `render full restore text: ${full.wall.toFixed(0)} ms wall / ${full.cpu.toFixed(0)} ms cpu ` +
      `(${(full.value.reduce((n, p) => n + planBytes(p), 0) / 1024 / 1024).toFixed(1)} MiB)`,
  );

  measureChanges('fresh maps per change, no generations (every Map walked)', freshMapsProducer(snapshot));
  measureChanges('maps mutated in place + generations (the agent)', inPlaceProducer(snapshot));
  console.log(`process RSS ${mib(process.memoryUsage().rss)}`);
}

main();
