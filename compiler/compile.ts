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
 *   are broken by etcd key, ipset members are sorted, so insertion order never matters, and a
 *   warm Compiler returns exactly what a fresh one would.
 * - Memoisation is by object identity (rules arrays, endpoint objects, profile objects) plus the
 *   inputs' values, so the objects in a Snapshot (ProfileInput, Rules, EndpointInput, Endpoint,
 *   config) must never be mutated after being handed in: replace them. The Snapshot's Maps may
 *   be the same mutable Maps from one compile to the next; they are walked every time unless the
 *   Snapshot carries `generations` (types.ts has that contract).
 * - Local endpoints whose names lack the prefix, and duplicate interface names, are reported
 *   as Diagnostics and ignored; a missing profile fails closed (see endpoint-chains.ts).
 *
 * How a change costs work in proportion to its size (figures: test/bench/compile-bench.ts):
 * - EndpointIndex and ProfileIndex hold what is derived from each Map; an unchanged Map (same
 *   object, same generation) is not walked, a changed one is walked and compared by identity.
 * - `patch`: when the config, the local endpoints and the presence of every profile a local
 *   endpoint lists are unchanged, the set of chains is unchanged. Then only changed profiles'
 *   chains and the sets of the tags they (or endpoints whose membership changed) touch are
 *   recomputed, and the previous spec maps are copied with those entries replaced; map-lineage.ts
 *   records each copy so planFamily compares only those entries. Nothing changed: the previous
 *   spec itself is returned.
 * - `build`: anything else assembles every chain and set, still from the memo tables.
 * - A compile that throws leaves no half-updated state: the next one starts from scratch.
 */
import type { Endpoint, IpVersion, Rule } from '../src/model/index.js';
import { renderDispatchChains } from './dispatch-chains.js';
import { renderEndpointChains, type EndpointChains } from './endpoint-chains.js';
import { EndpointIndex } from './endpoint-index.js';
import { renderGlobalChains, type GlobalChains } from './global-chains.js';
import { orderedMap, patchMap } from './map-lineage.js';
import type { Direction } from './names.js';
import { renderProfileChain, type RenderedProfileChain } from './profile-chains.js';
import { ProfileIndex } from './profile-index.js';
import { buildTagIpset, memberForm, type BuiltIpset } from './tag-ipsets.js';
import type {
  ChainSpec,
  CompilerConfig,
  DataplaneSpec,
  Diagnostic,
  EndpointInput,
  FamilySpec,
  Snapshot,
} from './types.js';

const FAMILIES: readonly IpVersion[] = [4, 6];

const NO_ENDPOINTS: readonly Endpoint[] = [];
const NO_IDS: readonly string[] = [];

type ProfileChainPair = readonly [inbound: RenderedProfileChain, outbound: RenderedProfileChain];

interface CachedIpset {
  maxIpsetSize: number;
  /** The member lists of the profiles carrying the tag, in carrier order (compared by identity). */
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

/** One family's part of a compile, and what it was made of. */
interface FamilyResult {
  spec: FamilySpec;
  /** Chains of the profiles in use, by profile id. */
  profileChains: Map<string, ProfileChainPair>;
  /** Tag → how many of those chains reference it; exactly the tags that get a set. */
  tagRefs: Map<string, number>;
  /** The sets by tag, with what they were built from. */
  ipsets: Map<string, CachedIpset>;
}

/** A compile's spec and what `patch` needs to derive the next one from it. */
interface CompileResult {
  spec: DataplaneSpec;
  configKey: string;
  localEndpoints: ReadonlyMap<string, EndpointInput>;
  endpointDiagnostics: readonly Diagnostic[];
  /** Profiles reachable from active local endpoints. */
  usedProfiles: ReadonlySet<string>;
  missingDiagnostics: readonly Diagnostic[];
  families: Record<IpVersion, FamilyResult>;
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

/** Adds `delta` to each tag's count; returns the tags whose count left or reached zero. */
function countTags(counts: Map<string, number>, tags: readonly string[], delta: 1 | -1, crossed?: Set<string>): void {
  for (const tag of tags) {
    const count = (counts.get(tag) ?? 0) + delta;
    if (count === 0) counts.delete(tag);
    else counts.set(tag, count);
    if (count === 0 || count === delta) crossed?.add(tag);
  }
}

function sortedDiagnostics(result: Omit<CompileResult, 'spec'>): Diagnostic[] {
  const diagnostics = [...result.endpointDiagnostics, ...result.missingDiagnostics];
  for (const family of FAMILIES) {
    for (const cached of result.families[family].ipsets.values()) {
      if (cached.built.diagnostic) diagnostics.push(cached.built.diagnostic);
    }
  }
  return diagnostics.sort(compareDiagnostics);
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
  private endpoints = new EndpointIndex();
  private profiles = new ProfileIndex();
  private previous: CompileResult | undefined;

  compile(snapshot: Snapshot): DataplaneSpec {
    const previous = this.previous;
    this.previous = undefined;
    try {
      this.endpoints.update(snapshot);
      this.profiles.update(snapshot);
      const configKey = JSON.stringify(snapshot.config);
      let result: CompileResult | undefined;
      if (
        previous !== undefined &&
        previous.configKey === configKey &&
        previous.localEndpoints === this.endpoints.localEndpoints &&
        previous.endpointDiagnostics === this.endpoints.diagnostics
      ) {
        result = this.patch(previous, snapshot.config);
      }
      result ??= this.build(snapshot.config, configKey, previous);
      this.previous = result;
      return result.spec;
    } catch (error) {
      this.endpoints = new EndpointIndex();
      this.profiles = new ProfileIndex();
      throw error;
    }
  }

  /** Everything assembled from the indexes and memo tables; unchanged maps are kept by identity. */
  private build(config: CompilerConfig, configKey: string, previous: CompileResult | undefined): CompileResult {
    const localEndpoints = this.endpoints.localEndpoints;
    const hasProfile = (id: string): boolean => this.profiles.get(id)?.rules !== undefined;

    // Profiles reachable from active local endpoints (up to the first missing one of each).
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
    const missingDiagnostics: Diagnostic[] = [];
    for (const [id, count] of missing) {
      missingDiagnostics.push({
        kind: 'missing-profile',
        subject: id,
        message: `profile ${id} is missing or has invalid rules; ${count} local endpoint(s) drop traffic in that direction`,
      });
    }
    const sortedProfiles = [...usedProfiles].sort();
    const dispatchChains = this.dispatchChains([...localEndpoints.keys()], config.interfacePrefix);

    const families = {} as Record<IpVersion, FamilyResult>;
    for (const family of FAMILIES) {
      const before = previous?.families[family];
      // Chains in a fixed order: globals, dispatch, profiles by id, endpoints by interface.
      const globals = this.globals(config, family);
      const filter: ChainSpec[] = [...globals.chains.filter, ...dispatchChains];
      const profileChains = new Map<string, ProfileChainPair>();
      const tagRefs = new Map<string, number>();
      for (const id of sortedProfiles) {
        const pair = this.profileChainPair(id, family, config.acceptMarkBit);
        profileChains.set(id, pair);
        for (const rendered of pair) {
          filter.push(rendered.chain);
          countTags(tagRefs, rendered.tags, 1);
        }
      }
      for (const input of localEndpoints.values()) {
        const chains = this.endpointChainsOf(input, family, config.acceptMarkBit, hasProfile);
        filter.push(chains.inbound, chains.outbound);
      }

      const ipsets = new Map<string, CachedIpset>();
      for (const tag of [...tagRefs.keys()].sort()) {
        ipsets.set(tag, this.tagIpset(tag, family, config.maxIpsetSize, before?.ipsets.get(tag)));
      }

      const filterChains = orderedMap(before?.spec.tables.filter.chains, filter.map((c) => [c.name, c] as const));
      const rawChains = orderedMap(before?.spec.tables.raw.chains, globals.chains.raw.map((c) => [c.name, c] as const));
      const ipsetSpecs = orderedMap(before?.spec.ipsets, [...ipsets.values()].map(({ built }) => [built.spec.name, built.spec] as const));
      const unchanged =
        before !== undefined &&
        filterChains === before.spec.tables.filter.chains &&
        rawChains === before.spec.tables.raw.chains &&
        ipsetSpecs === before.spec.ipsets &&
        globals.hooks.filter === before.spec.tables.filter.hooks &&
        globals.hooks.raw === before.spec.tables.raw.hooks;
      const spec: FamilySpec = unchanged
        ? before.spec
        : {
            family,
            tables: {
              filter: { chains: filterChains, hooks: globals.hooks.filter },
              raw: { chains: rawChains, hooks: globals.hooks.raw },
            },
            ipsets: ipsetSpecs,
          };
      families[family] = { spec, profileChains, tagRefs, ipsets };
    }

    const result = {
      configKey,
      localEndpoints,
      endpointDiagnostics: this.endpoints.diagnostics,
      usedProfiles,
      missingDiagnostics,
      families,
    };
    const spec: DataplaneSpec = { v4: families[4].spec, v6: families[6].spec, diagnostics: sortedDiagnostics(result), localEndpoints };
    return { ...result, spec };
  }

  /**
   * The previous result updated for changed profiles and member lists, or undefined when the set
   * of chains may change (a profile listed by a local endpoint gained or lost valid rules). The
   * caller guarantees the config and the local endpoints are those of `previous`, which is
   * consumed: its per-family tables are updated in place.
   */
  private patch(previous: CompileResult, config: CompilerConfig): CompileResult | undefined {
    const changes = this.profiles.changes;
    const changedMembers = this.endpoints.changedMembers;
    if (changes.size === 0 && changedMembers.size === 0) return previous;

    const localProfileIds = this.endpoints.localProfileIds;
    const changedUsed: string[] = [];
    const dirtyTags = new Set<string>();
    for (const [id, { before, after }] of changes) {
      if ((before?.rules === undefined) !== (after?.rules === undefined) && localProfileIds.has(id)) return undefined;
      if (previous.usedProfiles.has(id)) changedUsed.push(id);
      for (const tag of before?.tags ?? NO_IDS) dirtyTags.add(tag);
      for (const tag of after?.tags ?? NO_IDS) dirtyTags.add(tag);
    }
    for (const id of changedMembers) for (const tag of this.profiles.get(id)?.tags ?? NO_IDS) dirtyTags.add(tag);
    // Sorted, inbound before outbound: the order of the profile chains in the filter map.
    changedUsed.sort();

    let ipsetsChanged = false;
    const families = {} as Record<IpVersion, FamilyResult>;
    for (const family of FAMILIES) {
      const before = previous.families[family];
      const { profileChains, tagRefs, ipsets } = before;
      const chainUpdates: (readonly [string, ChainSpec])[] = [];
      const candidates = new Set(dirtyTags);
      for (const id of changedUsed) {
        const pair = this.profileChainPair(id, family, config.acceptMarkBit);
        const old = profileChains.get(id)!;
        profileChains.set(id, pair);
        for (const k of [0, 1] as const) {
          if (pair[k] === old[k]) continue;
          chainUpdates.push([pair[k].chain.name, pair[k].chain]);
          countTags(tagRefs, old[k].tags, -1, candidates);
          countTags(tagRefs, pair[k].tags, 1, candidates);
        }
      }

      let tagsChanged = false;
      const updatedTags: string[] = [];
      for (const tag of candidates) {
        const cached = ipsets.get(tag);
        if (!tagRefs.has(tag)) {
          if (cached !== undefined) ipsets.delete(tag);
          tagsChanged ||= cached !== undefined;
          continue;
        }
        const next = this.tagIpset(tag, family, config.maxIpsetSize, cached);
        if (next === cached) continue;
        ipsets.set(tag, next);
        if (cached === undefined) tagsChanged = true;
        else if (next.built.spec !== cached.built.spec) updatedTags.push(tag);
      }
      let ipsetSpecs = before.spec.ipsets;
      if (tagsChanged) {
        ipsetSpecs = new Map([...ipsets.keys()].sort().map((tag) => {
          const { spec } = ipsets.get(tag)!.built;
          return [spec.name, spec] as const;
        }));
      } else {
        // The set map is in tag order.
        updatedTags.sort();
        ipsetSpecs = patchMap(ipsetSpecs, updatedTags.map((tag) => {
          const { spec } = ipsets.get(tag)!.built;
          return [spec.name, spec] as const;
        }));
      }
      ipsetsChanged ||= ipsetSpecs !== before.spec.ipsets;

      const filterChains = patchMap(before.spec.tables.filter.chains, chainUpdates);
      const spec: FamilySpec =
        filterChains === before.spec.tables.filter.chains && ipsetSpecs === before.spec.ipsets
          ? before.spec
          : {
              family,
              tables: { filter: { chains: filterChains, hooks: before.spec.tables.filter.hooks }, raw: before.spec.tables.raw },
              ipsets: ipsetSpecs,
            };
      families[family] = { spec, profileChains, tagRefs, ipsets };
    }

    const result = { ...previous, families };
    const diagnostics = ipsetsChanged ? sortedDiagnostics(result) : previous.spec.diagnostics;
    const spec: DataplaneSpec = { v4: families[4].spec, v6: families[6].spec, diagnostics, localEndpoints: previous.spec.localEndpoints };
    return { ...result, spec };
  }

  /**
   * The tag's set, from the member lists of the profiles carrying it; `cached` (the previous
   * compile's) is returned when built from the same lists.
   */
  private tagIpset(tag: string, family: IpVersion, maxIpsetSize: number, cached: CachedIpset | undefined): CachedIpset {
    const members = this.endpoints.members;
    const sources = (this.profiles.carriers.get(tag) ?? NO_IDS).map((id) => members.get(id) ?? NO_ENDPOINTS);
    if (cached !== undefined && cached.maxIpsetSize === maxIpsetSize && sameItems(cached.sources, sources)) return cached;
    const addresses: string[] = [];
    for (const list of sources) for (const endpoint of list) addresses.push(...this.membersOf(endpoint)[family]);
    return { maxIpsetSize, sources, built: buildTagIpset(tag, family, addresses, maxIpsetSize) };
  }

  /** Both chains of a profile in use (it has rules). */
  private profileChainPair(id: string, family: IpVersion, markBit: number): ProfileChainPair {
    const rules = this.profiles.get(id)!.rules!;
    return [
      this.profileChain(id, rules.inbound_rules, 'inbound', family, markBit),
      this.profileChain(id, rules.outbound_rules, 'outbound', family, markBit),
    ];
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
