/**
 * Policy trace over compiled chains (compiler/packet-eval.ts, compiler/trace.ts): the seeds'
 * WEB/APP example case by case, every rule the compiler can emit is readable by the evaluator,
 * and for random policies and packets the trace's verdict equals an independent evaluation of
 * the v1 semantics written here (first match wins, profile fall-through, default deny, tags as
 * member sets).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compile,
  defaultCompilerConfig,
  PacketWalker,
  partyOf,
  resolveParty,
  traceFamily,
  TraceInputError,
  tracePacket,
  UnsupportedRuleError,
  type ClusterSnapshot,
  type EndpointInput,
  type TracedPacket,
  type TraceResult,
} from '../../compiler/index.js';
import { parseRule } from '../../compiler/packet-eval.js';
import { cidrContains, protocolName, ruleIpVersion, type Port, type Rule } from '../../src/model/index.js';
import { CalcGraph } from '../../compiler/index.js';
import { Datastore, opArb } from './delta-arbitraries.js';
import { endpointInput, profile, webAppSnapshot } from './fixtures.js';

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 };

function trace(cluster: ClusterSnapshot, from: string, to: string, fields: Partial<TracedPacket> & { protocolName?: string } = {}): TraceResult {
  const { protocolName: name, ...rest } = fields;
  const protocol = name === undefined ? undefined : PROTOCOLS[name];
  const source = resolveParty(cluster, from, 'source');
  const destination = resolveParty(cluster, to, 'destination');
  const family = traceFamily(source, destination, protocol);
  const a = partyOf(source, family, 'source');
  const b = partyOf(destination, family, 'destination');
  return tracePacket(cluster, a, b, { protocol, ...rest, family, source: a.address, destination: b.address });
}

const tcp = (port: number) => ({ protocolName: 'tcp', sourcePort: 32768, destinationPort: port });

describe('policy trace on the WEB/APP example', () => {
  const cluster = webAppSnapshot();

  it('allows web2 (another host, tagged APP_7890) to reach app1 on 7890 by APP rule 1', () => {
    const result = trace(cluster, 'web2', 'app1', tcp(7890));
    expect(result.verdict).toBe('allow');
    expect(result.sides.map((s) => [s.direction, s.decision, s.reason, s.profiles])).toEqual([
      ['outbound', 'allow', 'rule', [{ profile: 'WEB', outcome: 'allow', rule: 0 }]],
      ['inbound', 'allow', 'rule', [{ profile: 'APP', outcome: 'allow', rule: 0 }]],
    ]);
  });

  it('denies app1 → web1 on 7890 on one host: WEB has no matching rule, default deny', () => {
    const result = trace(cluster, 'app1', 'web1', tcp(7890));
    expect(result.verdict).toBe('deny');
    const inbound = result.sides.find((s) => s.direction === 'inbound')!;
    expect(inbound).toMatchObject({ decision: 'deny', reason: 'default-deny', profiles: [{ profile: 'WEB', outcome: 'fall-through' }] });
    expect(result.sides.find((s) => s.direction === 'outbound')!.decision).toBe('allow');
  });

  it('traces an outside address on the endpoint side only, and a ping by the rule that allows it', () => {
    const outside = trace(cluster, '203.0.113.9', 'web1', tcp(443));
    expect(outside.sides).toHaveLength(1);
    expect(outside.sides[0]).toMatchObject({ direction: 'inbound', decision: 'allow', profiles: [{ profile: 'WEB', outcome: 'allow', rule: 0 }] });
    const ping = trace(cluster, 'web1', '192.0.2.20', { protocolName: 'icmp', icmpType: 8, icmpCode: 0 });
    expect(ping.verdict).toBe('allow');
    expect(ping.sides[1]!.profiles).toEqual([{ profile: 'APP', outcome: 'allow', rule: 1 }]);
    expect(trace(cluster, 'web1', '192.0.2.20', { protocolName: 'icmp', icmpType: 0, icmpCode: 0 }).verdict).toBe('deny');
  });

  it('traces IPv6 through the raw table too (web1 → web2 over IPv6, tcp 80)', () => {
    const result = trace(cluster, '2001:db8::10', 'web2', tcp(80));
    expect(result.packet.family).toBe(6);
    expect(result.verdict).toBe('allow');
    expect(result.sides[0]!.steps.some((step) => step.table === 'raw')).toBe(true);
  });

  it('names an inactive endpoint, a missing profile and an unpoliced interface', () => {
    const endpoints = new Map(cluster.endpoints);
    endpoints.set(...endpointInput('host1', 'off', { state: 'inactive', name: 'calioff', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.30/32'] }));
    endpoints.set(...endpointInput('host1', 'lost', { state: 'active', name: 'calilost', profile_ids: ['NOPE', 'WEB'], ipv4_nets: ['192.0.2.31/32'] }));
    endpoints.set(...endpointInput('host1', 'plain', { state: 'active', name: 'eth9', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.32/32'] }));
    const changed = { ...cluster, endpoints };
    expect(trace(changed, 'web2', 'off', tcp(80)).sides[1]).toMatchObject({ decision: 'deny', reason: 'inactive-endpoint' });
    expect(trace(changed, 'web2', 'lost', tcp(80)).sides[1]).toMatchObject({ decision: 'deny', reason: 'missing-profile', profiles: [] });
    expect(trace(changed, 'web2', 'plain', tcp(80)).sides[1]).toMatchObject({ decision: 'allow', reason: 'unpoliced' });
  });

  it('reads a forged source MAC as anti-spoofing in the endpoint chain', () => {
    const walker = new PacketWalker(compile(cluster).v4);
    const packet: TracedPacket = { family: 4, source: '192.0.2.10', destination: '198.51.100.10', protocol: 6, sourcePort: 1, destinationPort: 80 };
    const forged = walker.walkForward(packet, { inInterface: 'caliweb1', outInterface: '(uplink)', sourceMac: 'ee:ee:ee:00:00:99', reversePathOk: true });
    expect(forged.outcome).toBe('drop');
    expect(forged.steps.at(-1)).toMatchObject({ chain: 'cali-fw-caliweb1', comment: 'Incorrect source MAC' });
    const genuine = walker.walkForward(packet, { inInterface: 'caliweb1', outInterface: '(uplink)', sourceMac: 'ee:ee:ee:00:00:01', reversePathOk: true });
    expect(genuine.outcome).toBe('accept');
  });

  it('refuses bad requests with one line', () => {
    expect(() => trace(cluster, 'nobody', 'web1')).toThrow(TraceInputError);
    expect(() => trace(cluster, '192.0.2.10', '2001:db8::10')).toThrow(/different IP versions/);
    expect(() => trace(cluster, '203.0.113.1', '203.0.113.2')).toThrow(/neither source nor destination/);
    expect(() => trace(cluster, 'app1', 'web1', { protocolName: 'icmpv6', icmpType: 128, icmpCode: 0 })).toThrow(/no IPv6 address/);
    const twice = new Map(cluster.endpoints);
    twice.set(...endpointInput('host2', 'dup', { state: 'active', name: 'calidup', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.10/32'] }));
    expect(() => trace({ ...cluster, endpoints: twice }, '192.0.2.10', 'app1')).toThrow(/ambiguous/);
  });
});

describe('the evaluator reads exactly what the compiler writes', () => {
  it('refuses an option it does not know rather than passing it', () => {
    const setHas = () => false;
    expect(() => parseRule('cali-x', '--match addrtype --dst-type LOCAL --jump ACCEPT', setHas)).toThrow(UnsupportedRuleError);
    expect(() => parseRule('cali-x', '--protocol tcp --tcp-flags SYN SYN --jump ACCEPT', setHas)).toThrow(/--tcp-flags/);
    expect(() => parseRule('cali-x', '--protocol tcp', setHas)).toThrow(/no target/);
    expect(() => parseRule('cali-x', '--jump LOG', setHas)).not.toThrow();
  });

  it('parses every rule of every compiled dataplane of random datastores, in every configuration', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 25 }), fc.constantFrom('DROP', 'ACCEPT', 'RETURN'), (ops, action) => {
        const store = new Datastore(new CalcGraph('host1', defaultCompilerConfig()), 1_048_576);
        for (const op of ops) store.apply(op);
        const snapshot = { ...store.snapshot(), config: { ...defaultCompilerConfig(), endpointToHostAction: action as 'DROP' } };
        for (const host of ['host1', 'host2', 'host3']) {
          const spec = compile({ ...snapshot, hostname: host });
          new PacketWalker(spec.v4).checkAll();
          new PacketWalker(spec.v6).checkAll();
        }
      }),
      { numRuns: 150 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The independent oracle: Calico v1 semantics straight from the data model.

function portMatches(ports: readonly Port[], port: number | undefined): boolean {
  return port !== undefined && ports.some((p) => (typeof p === 'number' ? p === port : port >= Number(p.split(':')[0]) && port <= Number(p.split(':')[1])));
}

function tagMembers(cluster: ClusterSnapshot, tag: string, address: string): boolean {
  for (const { endpoint } of cluster.endpoints.values()) {
    if (!endpoint.profile_ids.some((id) => cluster.profiles.get(id)?.tags?.includes(tag))) continue;
    if ([...endpoint.ipv4_nets, ...endpoint.ipv6_nets].some((net) => !net.endsWith('/0') && cidrContains(net, address))) return true;
  }
  return false;
}

function ruleMatches(cluster: ClusterSnapshot, rule: Rule, packet: TracedPacket): boolean {
  const version = ruleIpVersion(rule);
  if (version !== undefined && version !== packet.family) return false;
  const protocolOf = (p: string): number => PROTOCOLS[protocolName(p)] ?? Number(p);
  const icmp = (type: number | undefined, code: number | undefined): boolean => packet.icmpType === type && (code === undefined || packet.icmpCode === code);
  const checks: boolean[] = [
    rule.protocol === undefined || packet.protocol === protocolOf(rule.protocol),
    rule['!protocol'] === undefined || packet.protocol !== protocolOf(rule['!protocol']),
    rule.src_net === undefined || cidrContains(rule.src_net, packet.source),
    rule['!src_net'] === undefined || !cidrContains(rule['!src_net'], packet.source),
    rule.dst_net === undefined || cidrContains(rule.dst_net, packet.destination),
    rule['!dst_net'] === undefined || !cidrContains(rule['!dst_net'], packet.destination),
    rule.src_tag === undefined || tagMembers(cluster, rule.src_tag, packet.source),
    rule['!src_tag'] === undefined || !tagMembers(cluster, rule['!src_tag'], packet.source),
    rule.dst_tag === undefined || tagMembers(cluster, rule.dst_tag, packet.destination),
    rule['!dst_tag'] === undefined || !tagMembers(cluster, rule['!dst_tag'], packet.destination),
    rule.src_ports === undefined || rule.src_ports.length === 0 || portMatches(rule.src_ports, packet.sourcePort),
    rule['!src_ports'] === undefined || rule['!src_ports'].length === 0 || !portMatches(rule['!src_ports'], packet.sourcePort),
    rule.dst_ports === undefined || rule.dst_ports.length === 0 || portMatches(rule.dst_ports, packet.destinationPort),
    rule['!dst_ports'] === undefined || rule['!dst_ports'].length === 0 || !portMatches(rule['!dst_ports'], packet.destinationPort),
    rule.icmp_type === undefined || icmp(rule.icmp_type, rule.icmp_code),
    rule['!icmp_type'] === undefined || !icmp(rule['!icmp_type'], rule['!icmp_code']),
  ];
  return checks.every(Boolean);
}

/** allow or deny for one side, by the v1 semantics (the endpoint is active, local and genuine). */
function oracleSide(cluster: ClusterSnapshot, input: EndpointInput, direction: 'inbound' | 'outbound', packet: TracedPacket): 'allow' | 'deny' {
  if (input.endpoint.state !== 'active') return 'deny';
  for (const id of input.endpoint.profile_ids) {
    const rules = cluster.profiles.get(id)?.rules;
    if (rules === undefined) return 'deny';
    for (const rule of direction === 'inbound' ? rules.inbound_rules : rules.outbound_rules) {
      if (ruleMatches(cluster, rule, packet)) return rule.action === 'deny' ? 'deny' : 'allow';
    }
  }
  return 'deny';
}

const NETS = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.3/32', '10.2.0.0/16', 'fd00::/8', 'fd00::2/128'];
const TAGS = ['a', 'b', 'c'];
const PORT_LISTS: Port[][] = [[80], [22, 80], ['1000:2000'], [443, '5000:5100', 8080]];
/** Present in about one rule of five, so that rules often match and deep rules are reached. */
const sometimes = <T,>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
const ruleArb: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    action: fc.constantFrom('allow', 'deny'),
    protocol: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: fc.constantFrom('tcp', 'udp', 'icmp', '6') }),
    '!protocol': sometimes(fc.constantFrom('tcp', 'udp')),
    src_net: sometimes(fc.constantFrom(...NETS)),
    '!src_net': sometimes(fc.constantFrom(...NETS)),
    dst_net: sometimes(fc.constantFrom(...NETS)),
    src_tag: sometimes(fc.constantFrom(...TAGS)),
    '!src_tag': sometimes(fc.constantFrom(...TAGS)),
    dst_tag: sometimes(fc.constantFrom(...TAGS)),
    '!dst_tag': sometimes(fc.constantFrom(...TAGS)),
    ports: fc.option(fc.constantFrom(...PORT_LISTS), { nil: undefined }),
    portKey: fc.constantFrom('src_ports', 'dst_ports', '!src_ports', '!dst_ports'),
    icmp: fc.option(fc.constantFrom<[number, number | undefined]>([8, undefined], [8, 0], [8, 3], [0, undefined]), { nil: undefined }),
    negatedIcmp: fc.boolean(),
  })
  .map(({ ports, portKey, icmp, negatedIcmp, ...rule }) => {
    const out: Record<string, unknown> = Object.fromEntries(Object.entries(rule).filter(([, value]) => value !== undefined));
    const protocol = rule.protocol === '6' ? 'tcp' : rule.protocol;
    if ((protocol === 'tcp' || protocol === 'udp') && ports !== undefined) out[portKey] = ports;
    if (protocol === 'icmp' && icmp !== undefined) {
      const [type, code] = icmp;
      out[negatedIcmp ? '!icmp_type' : 'icmp_type'] = type;
      if (code !== undefined) out[negatedIcmp ? '!icmp_code' : 'icmp_code'] = code;
    }
    return out;
  });

/** Rules that mix IP versions are invalid data; drop the nets that make a rule mix them. */
function validRules(list: Record<string, unknown>[]): Record<string, unknown>[] {
  return list.map((rule) => {
    const v6 = Object.entries(rule).some(([key, value]) => key.endsWith('_net') && String(value).includes(':'));
    const v4 = rule.protocol === 'icmp' || Object.entries(rule).some(([key, value]) => key.endsWith('_net') && !String(value).includes(':'));
    return v4 && v6 ? Object.fromEntries(Object.entries(rule).filter(([key]) => !key.endsWith('_net'))) : rule;
  });
}

/** One IPv4 address per endpoint (up to 5), distinct: two local endpoints sharing one would see the later refused. */
const V4_ADDRESSES = ['10.1.2.3', '10.1.9.9', '10.2.0.5', '10.3.0.1', '10.1.2.4'];
const V6_ADDRESSES = ['fd00::2', 'fd00::7'];
const clusterArb: fc.Arbitrary<ClusterSnapshot> = fc
  .record({
    profiles: fc.array(
      fc.record({ inbound: fc.array(ruleArb, { maxLength: 4 }), outbound: fc.array(ruleArb, { maxLength: 3 }), tags: fc.subarray(TAGS), present: fc.boolean() }),
      { minLength: 3, maxLength: 3 },
    ),
    endpoints: fc.array(
      fc.record({
        host: fc.constantFrom('h1', 'h2'),
        profiles: fc.subarray(['p0', 'p1', 'p2', 'gone']).chain((ids) => fc.shuffledSubarray(ids, { minLength: ids.length })),
        state: fc.constantFrom('active', 'active', 'active', 'inactive'),
        mac: fc.option(fc.constant('ee:ee:ee:00:00:01'), { nil: undefined }),
      }),
      { minLength: 2, maxLength: 5 },
    ),
  })
  .map(({ profiles, endpoints }) => {
    const profileMap = new Map(
      profiles.flatMap((p, i) => (p.present || i === 0 ? [[`p${i}`, profile({ inbound_rules: validRules(p.inbound), outbound_rules: validRules(p.outbound) }, p.tags)] as const] : [])),
    );
    // Every endpoint owns distinct addresses (one v4 from 10.1.2.3/10.1.9.9/…, one v6 for the first two).
    const endpointMap = new Map(
      endpoints.map((e, i) =>
        endpointInput(e.host, `e${i}`, {
          state: e.state,
          name: `cali${i}`,
          profile_ids: e.profiles,
          ...(e.mac !== undefined ? { mac: e.mac } : {}),
          ipv4_nets: [`${V4_ADDRESSES[i]!}/32`],
          ipv6_nets: i < 2 ? [`${V6_ADDRESSES[i]!}/128`] : [],
        }),
      ),
    );
    return { profiles: profileMap, endpoints: endpointMap, config: defaultCompilerConfig() };
  });

const packetArb = fc.record({
  protocolName: fc.constantFrom('tcp', 'udp', 'icmp', undefined),
  destinationPort: fc.constantFrom(22, 80, 1000, 1500, 2000, 5000, 5050, 8080),
  sourcePort: fc.constantFrom(80, 1000, 2000, 40000),
  icmp: fc.constantFrom([8, 0], [0, 0], [8, 3], [8, 3]),
});

describe('trace verdicts equal the v1 semantics', () => {
  it('for random profiles, endpoints and packets (both hosts, outside addresses included)', () => {
    fc.assert(
      fc.property(clusterArb, fc.nat(), fc.nat(), fc.boolean(), packetArb, (cluster, a, b, outsideSource, p) => {
        const keys = [...cluster.endpoints.keys()];
        const dst = cluster.endpoints.get(keys[b % keys.length]!)!;
        const srcEntry = cluster.endpoints.get(keys[a % keys.length]!)!;
        if (srcEntry === dst && !outsideSource) return;
        const from = outsideSource ? '10.9.9.9' : srcEntry.ref.endpointId;
        const fields =
          p.protocolName === 'icmp'
            ? { protocolName: 'icmp', icmpType: p.icmp[0], icmpCode: p.icmp[1] }
            : p.protocolName === undefined
              ? {}
              : { protocolName: p.protocolName, sourcePort: p.sourcePort, destinationPort: p.destinationPort };
        const result = trace(cluster, from, dst.ref.endpointId, fields);
        const packet = result.packet;
        const expected: string[] = [];
        if (!outsideSource) expected.push(oracleSide(cluster, srcEntry, 'outbound', packet));
        expected.push(oracleSide(cluster, dst, 'inbound', packet));
        expect(result.sides.map((side) => side.decision)).toEqual(expected);
        expect(result.verdict).toBe(expected.includes('deny') ? 'deny' : 'allow');
        // The rule the trace names is the first rule of that profile the oracle finds matching.
        for (const side of result.sides) {
          for (const visit of side.profiles) {
            const rules = cluster.profiles.get(visit.profile)!.rules!;
            const list = side.direction === 'inbound' ? rules.inbound_rules : rules.outbound_rules;
            const first = list.findIndex((rule) => ruleMatches(cluster, rule, packet));
            expect(visit.rule ?? -1).toBe(first);
          }
        }
      }),
      { numRuns: 600 },
    );
  });
});
