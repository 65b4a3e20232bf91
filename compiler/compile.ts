/**
 * Snapshot → DataplaneSpec: the whole policy of one host, both IP families, from scratch. The
 * agent keeps its dataplane current with the calculation graph (calc-graph.ts); this is the
 * plain statement of the same result, which the graph is tested against, and what dry runs of
 * a snapshot and golden files use.
 *
 * What is produced (see the per-module headers for the chain semantics):
 * - global chains + hooks (global-chains.ts), dispatch chains (dispatch-chains.ts);
 * - per local endpoint (`ref.host === snapshot.hostname`, interface name starting with the
 *   workload prefix; on a shared interface name the smallest etcd key wins; an active one whose
 *   address an earlier endpoint holds is refused, local-claims.ts) its two endpoint chains
 *   (endpoint-chains.ts);
 * - per profile used by an active local endpoint (its profile ids up to the first missing one)
 *   its two profile chains (profile-chains.ts); profiles of other hosts produce nothing;
 * - per (family, tag referenced by a rendered rule) one ipset of the addresses of every endpoint,
 *   on any host and in any state, with a profile carrying the tag (tag-ipsets.ts).
 *
 * Invariants: the result depends only on the snapshot's contents (profiles and interfaces are
 * sorted, ties broken by etcd key, members sorted), never on the order the Maps were filled in.
 * Ignored local endpoints, missing profiles and oversized sets are reported as Diagnostics.
 */
import type { IpVersion } from '../src/model/index.js';
import { duplicateAddress, duplicateInterface, missingProfile, prefixlessEndpoint, sortDiagnostics } from './diagnostics.js';
import { refusedByAddress } from './local-claims.js';
import { renderDispatchChains } from './dispatch-chains.js';
import { renderEndpointChains } from './endpoint-chains.js';
import { renderGlobalChains } from './global-chains.js';
import { renderProfileChain } from './profile-chains.js';
import { buildTagIpset, memberForm } from './tag-ipsets.js';
import type { ChainSpec, DataplaneSpec, Diagnostic, EndpointInput, FamilySpec, IpsetSpec, Snapshot } from './types.js';

/** This host's endpoints by interface (sorted), and the diagnostics of those ignored. */
function localEndpointsOf(snapshot: Snapshot): { local: Map<string, EndpointInput>; diagnostics: Diagnostic[] } {
  const prefix = snapshot.config.interfacePrefix;
  const claims = new Map<string, [string, EndpointInput][]>();
  const diagnostics: Diagnostic[] = [];
  for (const [key, input] of snapshot.endpoints) {
    if (input.ref.host !== snapshot.hostname) continue;
    const iface = input.endpoint.name;
    if (!iface.startsWith(prefix)) {
      diagnostics.push(prefixlessEndpoint(key, iface, prefix));
      continue;
    }
    claims.set(iface, [...(claims.get(iface) ?? []), [key, input]]);
  }
  const winners: [string, string, EndpointInput][] = [];
  for (const iface of [...claims.keys()].sort()) {
    const [[winnerKey, winner], ...losers] = claims.get(iface)!.sort(([a], [b]) => (a < b ? -1 : 1)) as [[string, EndpointInput], ...[string, EndpointInput][]];
    winners.push([iface, winnerKey, winner]);
    for (const [loser] of losers) {
      diagnostics.push(duplicateInterface(loser, iface, winnerKey));
    }
  }
  const refused = refusedByAddress(winners.map(([, key, input]) => [key, input] as const));
  const local = new Map<string, EndpointInput>();
  for (const [iface, key, input] of winners) {
    const refusal = refused.get(key);
    if (refusal === undefined) local.set(iface, input);
    else diagnostics.push(duplicateAddress(key, refusal.address, refusal.owner));
  }
  return { local, diagnostics };
}

export function compile(snapshot: Snapshot): DataplaneSpec {
  const { config, profiles } = snapshot;
  const hasProfile = (id: string): boolean => profiles.get(id)?.rules !== undefined;
  const { local, diagnostics } = localEndpointsOf(snapshot);

  // Profiles used by active local endpoints, up to the first missing one of each.
  const used = new Set<string>();
  const missing = new Map<string, number>();
  for (const { endpoint } of local.values()) {
    if (endpoint.state !== 'active') continue;
    for (const id of endpoint.profile_ids) {
      if (!hasProfile(id)) {
        missing.set(id, (missing.get(id) ?? 0) + 1);
        break;
      }
      used.add(id);
    }
  }
  for (const [id, count] of missing) {
    diagnostics.push(missingProfile(id, count));
  }
  const dispatch = renderDispatchChains([...local.keys()], config.interfacePrefix);

  const familySpec = (family: IpVersion): FamilySpec => {
    const globals = renderGlobalChains(config, family);
    const filter: ChainSpec[] = [...globals.chains.filter, ...dispatch];
    const tags = new Set<string>();
    for (const id of [...used].sort()) {
      const rules = profiles.get(id)!.rules!;
      for (const [list, direction] of [[rules.inbound_rules, 'inbound'], [rules.outbound_rules, 'outbound']] as const) {
        const rendered = renderProfileChain(id, list, direction, family, config.acceptMarkBit);
        filter.push(rendered.chain);
        for (const tag of rendered.tags) tags.add(tag);
      }
    }
    for (const input of local.values()) {
      const chains = renderEndpointChains(input, family, config.acceptMarkBit, hasProfile);
      filter.push(chains.inbound, chains.outbound);
    }
    const addresses = new Map<string, string[]>([...tags].map((tag) => [tag, []]));
    for (const { endpoint } of snapshot.endpoints.values()) {
      const carried = new Set(endpoint.profile_ids.flatMap((id) => profiles.get(id)?.tags ?? []));
      const nets = family === 4 ? endpoint.ipv4_nets : endpoint.ipv6_nets;
      for (const tag of carried) {
        // hash:net cannot hold a /0; one would make the whole `ipset restore` fail, so it is left out.
        for (const net of nets) if (!net.endsWith('/0')) addresses.get(tag)?.push(memberForm(net));
      }
    }
    const ipsets = new Map<string, IpsetSpec>();
    for (const tag of [...tags].sort()) {
      const built = buildTagIpset(tag, family, addresses.get(tag)!, config.maxIpsetSize);
      ipsets.set(built.spec.name, built.spec);
      if (built.diagnostic) diagnostics.push(built.diagnostic);
    }
    return {
      family,
      tables: {
        filter: { chains: new Map(filter.map((chain) => [chain.name, chain])), hooks: globals.hooks.filter },
        raw: { chains: new Map(globals.chains.raw.map((chain) => [chain.name, chain])), hooks: globals.hooks.raw },
      },
      ipsets,
    };
  };
  const v4 = familySpec(4);
  const v6 = familySpec(6);
  return { v4, v6, diagnostics: sortDiagnostics(diagnostics), localEndpoints: local };
}
