/**
 * Policy trace: which rule decides a packet between two parties, answered by walking the chains
 * and sets the agents program (compile() of each host involved, then packet-eval.ts), never by a
 * second model of the policy. Pure: the caller supplies the datastore's contents.
 *
 * A party is an endpoint (with one of its addresses) or an address outside the cluster. The
 * packet is walked through the FORWARD path of the source endpoint's host (in from its
 * interface, out to the network) and of the destination endpoint's host (in from the network,
 * out to its interface). Two endpoints of one host get the same two walks: the kernel makes
 * them in one FORWARD pass, through the same chains, and the inbound chain starts by clearing
 * the mark, so nothing carries over from one side to the other. Each side is then
 * read back from the steps: the profiles its endpoint chain tried, in order, and which rule of
 * each matched (mapped to the profile rule through the renderer's origins), or why the endpoint
 * chain itself dropped (anti-spoofing, missing profile, inactive endpoint, default deny), or the
 * dispatch chain (interface unknown to that host's dataplane).
 *
 * Invariants: both sides are always evaluated (each independently); the verdict is deny when
 * either side denies, and its reason is the outbound side's first. Bad requests throw
 * TraceInputError with a one-line message.
 */
import { cidrContains, parseIp, type IpVersion } from '../src/model/index.js';
import { compile } from './compile.js';
import { endpointDropReason, type EndpointDropReason } from './endpoint-chains.js';
import {
  endpointChainName,
  FROM_WORKLOAD_DISPATCH,
  PREROUTING_CHAIN,
  profileChainName,
  TO_WORKLOAD_DISPATCH,
  type Direction,
} from './names.js';
import { PacketWalker, type Hop, type TracedPacket, type WalkStep } from './packet-eval.js';
import { renderProfileChain } from './profile-chains.js';
import type { EndpointInput, Snapshot } from './types.js';

export class TraceInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceInputError';
  }
}

/** The datastore's contents, as for compile() but for no host in particular. */
export type ClusterSnapshot = Omit<Snapshot, 'hostname'>;

export type TraceParty =
  | { kind: 'endpoint'; key: string; input: EndpointInput; address: string }
  | { kind: 'outside'; address: string };

export interface ProfileVisit {
  profile: string;
  outcome: 'allow' | 'deny' | 'fall-through';
  /** 0-based position of the matching rule in the profile's rule list (allow/deny only). */
  rule?: number;
}

export type SideReason = 'rule' | EndpointDropReason | 'unknown-interface' | 'unpoliced';

export interface SideTrace {
  direction: Direction;
  endpointKey: string;
  endpoint: EndpointInput;
  profiles: ProfileVisit[];
  decision: 'allow' | 'deny';
  /** `rule`: the last visit decided; `unpoliced`: the host's dataplane has no chain for this interface. */
  reason: SideReason;
  /** Every rule that matched on this side's walk, in order (the whole walk of the host). */
  steps: WalkStep[];
}

export interface TraceResult {
  packet: TracedPacket;
  sides: SideTrace[];
  verdict: 'allow' | 'deny';
}

/** Stands for the host's network-facing interface: never a workload interface name. */
const UPLINK = '(uplink)';

/** Resolves SRC/DST text: an IP address (endpoint or outside), an endpoint id, or a workload id. */
export function resolveParty(cluster: ClusterSnapshot, text: string, role: 'source' | 'destination'): { kind: 'address'; address: string; version: IpVersion; owners: [string, EndpointInput][] } | { kind: 'endpoint'; key: string; input: EndpointInput } {
  const ip = parseIp(text);
  if (ip) {
    const owners = [...cluster.endpoints].filter(([, { endpoint }]) =>
      (ip.version === 4 ? endpoint.ipv4_nets : endpoint.ipv6_nets).some((net) => cidrContains(net, text)),
    );
    if (owners.length > 1) throw new TraceInputError(`${role} ${text} is ambiguous: it belongs to ${owners.length} endpoints (${owners.map(([, e]) => e.ref.endpointId).join(', ')})`);
    return { kind: 'address', address: text, version: ip.version, owners };
  }
  const byEndpoint = [...cluster.endpoints].filter(([, input]) => input.ref.endpointId === text);
  const matches = byEndpoint.length > 0 ? byEndpoint : [...cluster.endpoints].filter(([, input]) => input.ref.workload === text);
  if (matches.length === 0) throw new TraceInputError(`${role} ${text} is neither an IP address nor a known endpoint or workload id`);
  if (matches.length > 1) throw new TraceInputError(`${role} ${text} is ambiguous: it names ${matches.length} endpoints (${matches.map(([key]) => key).join(', ')})`);
  const [key, input] = matches[0]!;
  return { kind: 'endpoint', key, input };
}

type Resolved = ReturnType<typeof resolveParty>;

function addressesOf(input: EndpointInput, family: IpVersion): string[] {
  return (family === 4 ? input.endpoint.ipv4_nets : input.endpoint.ipv6_nets).map((net) => net.slice(0, net.indexOf('/')));
}

/** The IP family of the trace: fixed by an address given, else by the protocol, else IPv4 if both have one. */
export function traceFamily(source: Resolved, destination: Resolved, protocol: number | undefined): IpVersion {
  const given = [source, destination].flatMap((party) => (party.kind === 'address' ? [party.version] : []));
  if (given.length === 2 && given[0] !== given[1]) throw new TraceInputError('source and destination are of different IP versions');
  if (given.length > 0) return given[0]!;
  if (protocol === 58) return 6;
  if (protocol === 1) return 4;
  const both = (family: IpVersion): boolean =>
    [source, destination].every((party) => party.kind === 'endpoint' && addressesOf(party.input, family).length > 0);
  if (both(4)) return 4;
  if (both(6)) return 6;
  throw new TraceInputError('source and destination share no IP version: no packet can pass between them');
}

/** The party a resolved text stands for in `family`. */
export function partyOf(resolved: Resolved, family: IpVersion, role: 'source' | 'destination'): TraceParty {
  if (resolved.kind === 'address') {
    const owner = resolved.owners[0];
    return owner ? { kind: 'endpoint', key: owner[0], input: owner[1], address: resolved.address } : { kind: 'outside', address: resolved.address };
  }
  const address = addressesOf(resolved.input, family)[0];
  if (address === undefined) throw new TraceInputError(`${role} endpoint ${resolved.input.ref.endpointId} has no IPv${family} address`);
  return { kind: 'endpoint', key: resolved.key, input: resolved.input, address };
}

/** Walks `packet` from `source` to `destination` through the compiled dataplanes of their hosts. */
export function tracePacket(cluster: ClusterSnapshot, source: TraceParty, destination: TraceParty, packet: TracedPacket): TraceResult {
  if (source.kind === 'outside' && destination.kind === 'outside') {
    throw new TraceInputError('neither source nor destination is an endpoint: no agent polices that packet');
  }
  const walkers = new Map<string, PacketWalker>();
  const walkOn = (host: string, hop: Hop): WalkStep[] => {
    let walker = walkers.get(host);
    if (walker === undefined) {
      walker = new PacketWalker(compile({ ...cluster, hostname: host })[packet.family === 4 ? 'v4' : 'v6']);
      walkers.set(host, walker);
    }
    return walker.walkForward(packet, hop).steps;
  };
  const sides: SideTrace[] = [];
  if (source.kind === 'endpoint') {
    // The workload's own packet: its MAC, from an address routed back to it.
    const mac = source.input.endpoint.mac;
    const hop: Hop = { inInterface: source.input.endpoint.name, outInterface: UPLINK, ...(mac !== undefined ? { sourceMac: mac } : {}), reversePathOk: true };
    sides.push(readSide(cluster, packet.family, 'outbound', source, walkOn(source.input.ref.host, hop)));
  }
  if (destination.kind === 'endpoint') {
    const hop: Hop = { inInterface: UPLINK, outInterface: destination.input.endpoint.name, reversePathOk: true };
    sides.push(readSide(cluster, packet.family, 'inbound', destination, walkOn(destination.input.ref.host, hop)));
  }
  return { packet, sides, verdict: sides.every((side) => side.decision === 'allow') ? 'allow' : 'deny' };
}

/** One side's story from the walk: the profiles its endpoint chain tried and how it ended. */
function readSide(cluster: ClusterSnapshot, family: IpVersion, direction: Direction, party: TraceParty & { kind: 'endpoint' }, steps: WalkStep[]): SideTrace {
  const { input } = party;
  const endpointChain = endpointChainName(input.endpoint.name, direction);
  const dispatchRoot = direction === 'outbound' ? FROM_WORKLOAD_DISPATCH : TO_WORKLOAD_DISPATCH;
  const profileOfChain = new Map(input.endpoint.profile_ids.map((id) => [profileChainName(id, direction), id]));
  const base = { direction, endpointKey: party.key, endpoint: input, steps };

  const profiles: ProfileVisit[] = [];
  let current: { visit: ProfileVisit; origins: readonly (number | null)[] } | undefined;
  for (const step of steps) {
    const profile = profileOfChain.get(step.chain);
    if (step.chain === endpointChain && step.kind === 'jump' && profileOfChain.has(step.target)) {
      const id = profileOfChain.get(step.target)!;
      const rules = cluster.profiles.get(id)?.rules;
      const list = rules === undefined ? [] : direction === 'inbound' ? rules.inbound_rules : rules.outbound_rules;
      current = { visit: { profile: id, outcome: 'fall-through' }, origins: renderProfileChain(id, list, direction, family, cluster.config.acceptMarkBit).origins };
      profiles.push(current.visit);
    } else if (profile !== undefined && current !== undefined && (step.kind === 'return' || step.kind === 'drop')) {
      const origin = current.origins[step.index];
      current.visit.outcome = step.kind === 'return' ? 'allow' : 'deny';
      if (origin !== null && origin !== undefined) current.visit.rule = origin;
    }
    if (step.kind !== 'drop') continue;
    if (profile !== undefined) return { ...base, profiles, decision: 'deny', reason: 'rule' };
    if (step.chain === endpointChain) return { ...base, profiles, decision: 'deny', reason: endpointDropReason(step.comment ?? '') ?? 'default-deny' };
    if (step.chain.startsWith(dispatchRoot)) return { ...base, profiles, decision: 'deny', reason: 'unknown-interface' };
    if (step.chain === PREROUTING_CHAIN && direction === 'outbound') return { ...base, profiles, decision: 'deny', reason: 'anti-spoofing' };
  }
  const policed = steps.some((step) => step.chain === endpointChain);
  return { ...base, profiles, decision: 'allow', reason: policed ? 'rule' : 'unpoliced' };
}
