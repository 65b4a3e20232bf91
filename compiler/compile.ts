/**
 * Snapshot → DataplaneSpec: the whole policy of one host, both IP families.
 *
 * What is produced (see the per-module headers for the chain semantics):
 * - global chains + hooks (global-chains.ts), dispatch chains (dispatch-chains.ts);
 * - per local endpoint (`ref.host === snapshot.hostname`, interface name starting with the
 *   workload prefix) its two endpoint chains (endpoint-chains.ts);
 * - per profile reachable from an active local endpoint its two profile chains
 *   (profile-chains.ts); profiles of other hosts produce nothing;
 * - per (family, tag referenced by a rendered rule) one ipset (tag-ipsets.ts).
 *
 * Invariants:
 * - The result depends only on the snapshot's contents: profiles and interfaces are sorted, ties
 *   are broken by etcd key, ipset members are sorted, so insertion order never matters.
 * - Memoisation is by object identity (rules arrays, endpoint objects) plus the inputs' values,
 *   so the objects in a Snapshot (ProfileInput, Rules, EndpointInput, Endpoint, config) must never
 *   be mutated after being handed in: replace them. The Snapshot's Maps themselves may be the
 *   same mutable Maps from one compile to the next; they are walked every time.
 *   With that, recompiling after a one-profile change re-renders only that profile's chains; the
 *   remaining cost is one allocation-free walk over the cluster's endpoints.
 * - Local endpoints whose names lack the prefix, and duplicate interface names, are reported
 *   as Diagnostics and ignored; a missing profile fails closed (see endpoint-chains.ts).
 */
import type { Endpoint, IpVersion, Rule } from '../src/model/index.js';
import { renderDispatchChains } from './dispatch-chains.js';
import { renderEndpointChains, type EndpointChains } from './endpoint-chains.js';
import { renderGlobalChains, type GlobalChains } from './global-chains.js';
import type { Direction } from './names.js';
import { renderProfileChain, type RenderedProfileChain } from './profile-chains.js';
import { buildTagIpset, memberForm, type BuiltIpset } from './tag-ipsets.js';
import type {
  ChainSpec,
  DataplaneSpec,
  Diagnostic,
  EndpointInput,
  FamilySpec,
  IpsetSpec,
  Snapshot,
} from './types.js';

const FAMILIES: readonly IpVersion[] = [4, 6];

const NO_ENDPOINTS: readonly Endpoint[] = [];

/** Walks a profile's endpoint list from the previous compile in step with the current snapshot. */
interface MemberCursor {
  previous: readonly Endpoint[];
  matched: number;
  /** Set once the current list diverges from the previous one. */
  fresh: Endpoint[] | undefined;
}

interface CachedIpset {
  maxIpsetSize: number;
  /** The per-profile endpoint lists the set was built from (compared by identity). */
  sources: readonly (readonly Endpoint[])[];
  built: BuiltIpset;
}

interface ProfileChainMemo {
  id: string;
  markBit: number;
  /** Index: (family === 6 ? 2 : 0) + (outbound ? 1 : 0). */
  chains: (RenderedProfileChain | undefined)[];
}

interface EndpointChainMemo {
  key: string;
  byFamily: Partial<Record<IpVersion, EndpointChains>>;
}

function byName<T>(entries: Iterable<[string, T]>): Map<string, T> {
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  for (const field of ['kind', 'subject', 'message'] as const) {
    if (a[field] !== b[field]) return a[field] < b[field] ? -1 : 1;
  }
  return 0;
}

/**
 * A compiler with its memo tables. Pure from the outside: `compile` returns the same spec for
 * equal snapshots whatever was compiled before; the memo tables only save work.
 */
export class Compiler {
  private readonly profileChains = new WeakMap<readonly Rule[], ProfileChainMemo>();
  private readonly endpointChains = new WeakMap<Endpoint, EndpointChainMemo>();
  private readonly endpointMembers = new WeakMap<Endpoint, Record<IpVersion, string[]>>();
  private readonly globalChains = new WeakMap<object, Map<string, GlobalChains>>();
  private dispatch: { key: string; chains: ChainSpec[] } | undefined;
  /** Previous compile: the endpoints (snapshot order) of every profile that carries tags. */
  private profileMembers = new Map<string, readonly Endpoint[]>();
  /** Previous compile: tag sets per family, by tag. */
  private ipsets: Record<IpVersion, Map<string, CachedIpset>> = { 4: new Map(), 6: new Map() };
  /** Previous compile: the profile chains per family and the sorted tags they reference. */
  private tagsInUse: Partial<Record<IpVersion, { chains: readonly RenderedProfileChain[]; tags: readonly string[] }>> = {};
  /** Previous compile: the filter chain list and its map per family, reused when unchanged. */
  private chainMaps: Partial<Record<IpVersion, { list: readonly ChainSpec[]; map: Map<string, ChainSpec> }>> = {};

  compile(snapshot: Snapshot): DataplaneSpec {
    const { config, profiles } = snapshot;
    const prefix = config.interfacePrefix;
    const diagnostics: Diagnostic[] = [];

    const { claims, profileMembers } = this.scanEndpoints(snapshot, diagnostics);

    // Local endpoints by interface; ties on the interface name go to the smallest etcd key.
    const local = new Map<string, EndpointInput>();
    for (const [iface, claimants] of claims) {
      claimants.sort(([a], [b]) => (a < b ? -1 : 1));
      const [winnerKey, winner] = claimants[0]!;
      local.set(iface, winner);
      for (const [loser] of claimants.slice(1)) {
        diagnostics.push({
          kind: 'invalid-endpoint',
          subject: loser,
          message: `interface ${iface} is already used by ${winnerKey}; endpoint ignored`,
        });
      }
    }
    const localEndpoints = byName(local);

    // Profiles reachable from active local endpoints (up to the first missing one of each).
    const hasProfile = (id: string): boolean => profiles.get(id)?.rules !== undefined;
    const usedProfiles = new Set<string>();
    const missing = new Map<string, number>();
    for (const input of localEndpoints.values()) {
      if (input.endpoint.state !== 'active') continue;
      for (const id of input.endpoint.profile_ids) {
        if (!hasProfile(id)) {
          missing.set(id, (missing.get(id) ?? 0) + 1);
          break;
        }
        usedProfiles.add(id);
      }
    }
    for (const [id, count] of missing) {
      diagnostics.push({
        kind: 'missing-profile',
        subject: id,
        message: `profile ${id} is missing or has invalid rules; ${count} local endpoint(s) drop traffic in that direction`,
      });
    }
    const sortedProfiles = [...usedProfiles].sort();
    const dispatchChains = this.dispatchChains([...localEndpoints.keys()], prefix);

    const profilesByTag = new Map<string, string[]>();
    profiles.forEach((profile, id) => {
      for (const tag of profile.tags ?? []) {
        const carriers = profilesByTag.get(tag);
        if (carriers) carriers.push(id);
        else profilesByTag.set(tag, [id]);
      }
    });

    const familySpecs = {} as Record<IpVersion, FamilySpec>;
    const nextIpsets: Record<IpVersion, Map<string, CachedIpset>> = { 4: new Map(), 6: new Map() };
    for (const family of FAMILIES) {
      // Chains in a fixed order: globals, dispatch, profiles by id, endpoints by interface.
      const globals = this.globals(config, family);
      const filter: ChainSpec[] = [...globals.chains.filter, ...dispatchChains];
      const rendered: RenderedProfileChain[] = [];
      for (const id of sortedProfiles) {
        const rules = profiles.get(id)!.rules!;
        rendered.push(
          this.profileChain(id, rules.inbound_rules, 'inbound', family, config.acceptMarkBit),
          this.profileChain(id, rules.outbound_rules, 'outbound', family, config.acceptMarkBit),
        );
      }
      for (const profileChain of rendered) filter.push(profileChain.chain);
      for (const input of localEndpoints.values()) {
        const chains = this.endpointChainsOf(input, family, config.acceptMarkBit, hasProfile);
        filter.push(chains.inbound, chains.outbound);
      }

      const ipsets = new Map<string, IpsetSpec>();
      for (const tag of this.referencedTags(family, rendered)) {
        const sources = (profilesByTag.get(tag) ?? []).map((id) => profileMembers.get(id) ?? NO_ENDPOINTS);
        const built = this.tagIpset(tag, family, config.maxIpsetSize, sources, nextIpsets[family]);
        if (built.diagnostic) diagnostics.push(built.diagnostic);
        ipsets.set(built.spec.name, built.spec);
      }

      familySpecs[family] = {
        family,
        tables: {
          filter: { chains: this.chainMap(family, filter), hooks: globals.hooks.filter },
          raw: { chains: new Map(globals.chains.raw.map((c) => [c.name, c])), hooks: globals.hooks.raw },
        },
        ipsets,
      };
    }
    this.ipsets = nextIpsets;
    this.profileMembers = profileMembers;

    diagnostics.sort(compareDiagnostics);
    return { v4: familySpecs[4], v6: familySpecs[6], diagnostics, localEndpoints };
  }

  /**
   * The one pass over the whole cluster: claims of local interfaces, and for every profile that
   * carries tags the endpoints using it, in snapshot order. It allocates nothing while the
   * cluster matches the previous compile: each profile's previous list is walked in step, and
   * only a list that diverges is copied. An unchanged profile keeps its previous array, which is
   * how tagIpset knows a set is unchanged (identity check).
   */
  private scanEndpoints(
    snapshot: Snapshot,
    diagnostics: Diagnostic[],
  ): { claims: Map<string, [string, EndpointInput][]>; profileMembers: Map<string, readonly Endpoint[]> } {
    const { hostname } = snapshot;
    const prefix = snapshot.config.interfacePrefix;
    const cursors = new Map<string, MemberCursor>();
    snapshot.profiles.forEach((profile, id) => {
      if (profile.tags !== undefined && profile.tags.length > 0) {
        cursors.set(id, { previous: this.profileMembers.get(id) ?? NO_ENDPOINTS, matched: 0, fresh: undefined });
      }
    });
    const claims = new Map<string, [string, EndpointInput][]>();
    snapshot.endpoints.forEach((input, key) => {
      const endpoint = input.endpoint;
      if (input.ref.host === hostname) {
        const iface = endpoint.name;
        if (!iface.startsWith(prefix)) {
          diagnostics.push({
            kind: 'invalid-endpoint',
            subject: key,
            message: `interface ${iface} does not start with the workload prefix ${prefix}; endpoint ignored`,
          });
        } else {
          const claimants = claims.get(iface);
          if (claimants) claimants.push([key, input]);
          else claims.set(iface, [[key, input]]);
        }
      }
      const ids = endpoint.profile_ids;
      for (let i = 0; i < ids.length; i++) {
        const cursor = cursors.get(ids[i]!);
        if (cursor === undefined) continue;
        if (cursor.fresh === undefined) {
          if (cursor.previous[cursor.matched] === endpoint) {
            cursor.matched++;
            continue;
          }
          cursor.fresh = cursor.previous.slice(0, cursor.matched);
        }
        cursor.fresh.push(endpoint);
      }
    });
    const profileMembers = new Map<string, readonly Endpoint[]>();
    for (const [id, cursor] of cursors) {
      if (cursor.fresh !== undefined) profileMembers.set(id, cursor.fresh);
      else if (cursor.matched === cursor.previous.length) profileMembers.set(id, cursor.previous);
      else profileMembers.set(id, cursor.previous.slice(0, cursor.matched));
    }
    return { claims, profileMembers };
  }

  /**
   * The tag's set from `sources`, the endpoint lists of the profiles carrying the tag; the
   * previous compile's set is reused when those lists are the same arrays.
   */
  private tagIpset(
    tag: string,
    family: IpVersion,
    maxIpsetSize: number,
    sources: readonly (readonly Endpoint[])[],
    nextIpsets: Map<string, CachedIpset>,
  ): BuiltIpset {
    let cached = this.ipsets[family].get(tag);
    if (cached === undefined || cached.maxIpsetSize !== maxIpsetSize || !sameItems(cached.sources, sources)) {
      const members: string[] = [];
      for (const list of sources) for (const endpoint of list) members.push(...this.membersOf(endpoint)[family]);
      cached = { maxIpsetSize, sources, built: buildTagIpset(tag, family, members, maxIpsetSize) };
    }
    nextIpsets.set(tag, cached);
    return cached.built;
  }

  /** Sorted tags referenced by the family's profile chains (reused while the chains are the same). */
  private referencedTags(family: IpVersion, chains: readonly RenderedProfileChain[]): readonly string[] {
    const previous = this.tagsInUse[family];
    if (previous !== undefined && sameItems(previous.chains, chains)) return previous.tags;
    const tags = new Set<string>();
    for (const chain of chains) for (const tag of chain.tags) tags.add(tag);
    const sorted = [...tags].sort();
    this.tagsInUse[family] = { chains, tags: sorted };
    return sorted;
  }

  /** The family's chain map, reusing (or copying and patching) the previous one when only chain contents changed. */
  private chainMap(family: IpVersion, list: readonly ChainSpec[]): Map<string, ChainSpec> {
    const previous = this.chainMaps[family];
    let map: Map<string, ChainSpec> | undefined;
    if (previous !== undefined && previous.list.length === list.length) {
      let changed: ChainSpec[] | undefined = [];
      for (let i = 0; i < list.length && changed !== undefined; i++) {
        const before = previous.list[i]!;
        const after = list[i]!;
        if (before === after) continue;
        if (before.name === after.name) changed.push(after);
        else changed = undefined;
      }
      if (changed !== undefined) {
        map = changed.length === 0 ? previous.map : new Map(previous.map);
        for (const chain of changed) map.set(chain.name, chain);
      }
    }
    if (map === undefined) {
      map = new Map();
      for (const chain of list) map.set(chain.name, chain);
    }
    this.chainMaps[family] = { list, map };
    return map;
  }

  private profileChain(
    id: string,
    rules: readonly Rule[],
    direction: Direction,
    family: IpVersion,
    markBit: number,
  ): RenderedProfileChain {
    let memo = this.profileChains.get(rules);
    if (memo === undefined || memo.id !== id || memo.markBit !== markBit) {
      memo = { id, markBit, chains: [] };
      this.profileChains.set(rules, memo);
    }
    const index = (family === 6 ? 2 : 0) + (direction === 'outbound' ? 1 : 0);
    return (memo.chains[index] ??= renderProfileChain(id, rules, direction, family, markBit));
  }

  private endpointChainsOf(
    input: EndpointInput,
    family: IpVersion,
    markBit: number,
    hasProfile: (id: string) => boolean,
  ): EndpointChains {
    let presence = '';
    for (const id of input.endpoint.profile_ids) presence += hasProfile(id) ? '1' : '0';
    const key = `${markBit}|${input.ref.endpointId}|${presence}`;
    let memo = this.endpointChains.get(input.endpoint);
    if (memo === undefined || memo.key !== key) {
      memo = { key, byFamily: {} };
      this.endpointChains.set(input.endpoint, memo);
    }
    return (memo.byFamily[family] ??= renderEndpointChains(input, family, markBit, hasProfile));
  }

  private dispatchChains(sortedIfaces: readonly string[], prefix: string): ChainSpec[] {
    const key = `${prefix}|${sortedIfaces.join(',')}`;
    if (this.dispatch?.key !== key) this.dispatch = { key, chains: renderDispatchChains(sortedIfaces, prefix) };
    return this.dispatch.chains;
  }

  private globals(config: Snapshot['config'], family: IpVersion): GlobalChains {
    let byFamily = this.globalChains.get(config);
    if (byFamily === undefined) this.globalChains.set(config, (byFamily = new Map()));
    const key = JSON.stringify([family, config]);
    let chains = byFamily.get(key);
    if (chains === undefined) byFamily.set(key, (chains = renderGlobalChains(config, family)));
    return chains;
  }

  private membersOf(endpoint: Endpoint): Record<IpVersion, string[]> {
    let members = this.endpointMembers.get(endpoint);
    if (members === undefined) {
      // hash:net cannot hold a /0; one would make the whole `ipset restore` fail, so it is left out.
      const usable = (nets: readonly string[]) => nets.filter((net) => !net.endsWith('/0')).map(memberForm);
      members = { 4: usable(endpoint.ipv4_nets), 6: usable(endpoint.ipv6_nets) };
      this.endpointMembers.set(endpoint, members);
    }
    return members;
  }
}

const shared = new Compiler();

/** Compiles a snapshot with the process-wide memo tables (see the header for the contract). */
export function compile(snapshot: Snapshot): DataplaneSpec {
  return shared.compile(snapshot);
}
