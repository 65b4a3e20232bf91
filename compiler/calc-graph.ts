/**
 * The calculation graph: per-key datastore deltas in, the desired dataplane and exactly what
 * changed in it out (after Felix's `calc` package). Pure: no I/O, clock or environment.
 *
 *   setProfileRules / setProfileTags / setEndpoint           (one key each, undefined = deleted)
 *        │
 *        ├─ local endpoints (this host, valid prefix) ─ interface claims ─ winner per interface
 *        │      └─ used profiles per active winner (its profile ids up to the first missing one),
 *        │         reference-counted: a profile's chains exist while its count is > 0
 *        ├─ active profiles ─ rendered chains per family ─ tag references, counted per family:
 *        │      a tag's ipset exists while its count is > 0
 *        └─ every endpoint (any host) ─ profile → members index, tag → carriers index ─
 *               ipset members counted per (family, tag, address): an address is in the set
 *               while at least one (endpoint, carrier profile) pair contributes it
 *
 * Inputs only record what they touch (dirty interfaces, dirty profiles, member counts of sets
 * that exist); `takeChanges()` then does the derived work once, so a burst of deltas costs each
 * chain one render. A change costs O(what it touches): one remote endpoint touches only the
 * sets of its profiles' tags; one rule change re-renders one profile's chains; only a change of
 * this host's interfaces re-renders the dispatch chains (O(local endpoints)).
 *
 * Invariants:
 * - `toSpec()` equals `compile(snapshot)` for the snapshot holding the same keys, whatever the
 *   order and history of the deltas (test/compiler/calc-graph.test.ts checks it as a property).
 * - Every chain, set or member whose desired state changed since the previous `takeChanges()`
 *   is named in its result; a consumer that applies them to a copy of the previous desired state
 *   gets the current one. Names may be reported that did not end up changing.
 * - Inputs are never mutated; endpoints are kept compactly (one array of interned profile ids and
 *   member-form addresses, EndpointRecord), and full objects only for this host's endpoints.
 */
import { detach, type Endpoint, type EndpointRef, type IpVersion, type Rules, type Tags } from '../src/model/index.js';
import { duplicateAddress, duplicateInterface, ipsetTooLarge, missingProfile, prefixlessEndpoint, sortDiagnostics } from './diagnostics.js';
import { refusedByAddress, type Refusal } from './local-claims.js';
import { renderDispatchChains } from './dispatch-chains.js';
import { renderEndpointChains, type EndpointChains } from './endpoint-chains.js';
import { renderGlobalChains, type GlobalChains } from './global-chains.js';
import { endpointChainName, tagIpsetName, type Direction } from './names.js';
import { sameHashes } from './plan.js';
import { renderProfileChain, type RenderedProfileChain } from './profile-chains.js';
import { ipsetMaxelem, memberForm } from './tag-ipsets.js';
import type {
  ChainSpec,
  CompilerConfig,
  DataplaneSpec,
  Diagnostic,
  EndpointInput,
  FamilySpec,
  HookSpec,
  IpsetSpec,
  TableName,
} from './types.js';

const FAMILIES: readonly IpVersion[] = [4, 6];
const NO_TAGS: readonly string[] = [];

/**
 * What the graph keeps of any endpoint, enough for tag membership, in one array (about 100 bytes
 * where objects of arrays took about 300): its unique profile ids (interned), '', its unique
 * IPv4 ipset members, '', its unique IPv6 members (no /0: hash:net cannot hold one). Neither a
 * profile id nor a member is ever '', so the two '' mark the parts.
 */
type EndpointRecord = readonly string[];

/** `concat` allocates the exact length; a spread literal grows by pushes and keeps ~17 slots (218 → 105 B per record). */
function packRecord(profiles: readonly string[], v4: readonly string[], v6: readonly string[]): EndpointRecord {
  return profiles.concat('', v4, '', v6);
}

function profilesOf(record: EndpointRecord): readonly string[] {
  return record.slice(0, record.indexOf(''));
}

/** Calls `visit` with each of the record's members of `family`. */
function forEachMember(record: EndpointRecord, family: IpVersion, visit: (member: string) => void): void {
  let i = record.indexOf('') + 1;
  if (family === 6) i = record.indexOf('', i) + 1;
  for (; i < record.length && record[i] !== ''; i++) visit(record[i]!);
}

/** This host's endpoint that won its interface. */
interface LocalWinner {
  key: string;
  input: EndpointInput;
  /** Profiles counted as used by this endpoint (active: its ids up to the first missing). */
  used: readonly string[];
  /** The first missing profile, counted in `missingCount` (active endpoints only). */
  missing: string | undefined;
}

interface TagSet {
  tag: string;
  name: string;
  /** Address → number of (endpoint, carrier profile) pairs contributing it. */
  members: Map<string, number>;
  maxelem: number;
}

/** Both chains of an active profile in one family. */
type ProfilePair = readonly [inbound: RenderedProfileChain, outbound: RenderedProfileChain];

/** The changes of one family since the previous `takeChanges()`. */
export interface FamilyChanges {
  /** Chains upserted or removed, per table. */
  chains: Readonly<Record<TableName, ReadonlySet<string>>>;
  /** Sets created, destroyed, or with new metadata: compare them whole. */
  ipsets: ReadonlySet<string>;
  /** Per set, the members whose presence may have changed. */
  members: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface GraphChanges {
  families: Readonly<Record<IpVersion, FamilyChanges>>;
  /** This host's endpoints (by interface) changed: plumbing and status have work. */
  localEndpointsChanged: boolean;
  /** Something to write or report; false for a batch that cancelled itself out. */
  any: boolean;
}

/** A set as the writers read it. */
/** What a counted kernel rule stands for (CalcGraph.forEachCountedRule). */
export type CountedRule =
  | { kind: 'profile-rule'; profile: string; direction: Direction; /** 1-based */ rule: number; action: 'allow' | 'deny' }
  | { kind: 'endpoint-drop'; endpoint: string; direction: Direction };

export interface DesiredIpset {
  readonly name: string;
  readonly family: 'inet' | 'inet6';
  readonly type: 'hash:net';
  readonly maxelem: number;
  readonly size: number;
  has(member: string): boolean;
  members(): Iterable<string>;
}

/** One family's desired dataplane, read by the writers (live: it follows the graph). */
export interface DesiredFamily {
  readonly family: IpVersion;
  chain(table: TableName, name: string): ChainSpec | undefined;
  chainNames(table: TableName): Iterable<string>;
  hooks(table: TableName): readonly HookSpec[];
  ipset(name: string): DesiredIpset | undefined;
  ipsetNames(): Iterable<string>;
  /** Rules in all chains of both tables. */
  readonly ruleCount: number;
}

class ChangeLog {
  chains: Record<TableName, Set<string>> = { filter: new Set(), raw: new Set() };
  ipsets = new Set<string>();
  members = new Map<string, Set<string>>();

  member(set: string, address: string): void {
    let changed = this.members.get(set);
    if (changed === undefined) this.members.set(set, (changed = new Set()));
    changed.add(address);
  }

  get empty(): boolean {
    return this.chains.filter.size === 0 && this.chains.raw.size === 0 && this.ipsets.size === 0 && this.members.size === 0;
  }
}

/** One family's desired state. */
class FamilyState implements DesiredFamily {
  readonly tables: Record<TableName, Map<string, ChainSpec>> = { filter: new Map(), raw: new Map() };
  /** Tag → number of active profile chains of this family referencing it. */
  readonly tagRefs = new Map<string, number>();
  readonly setsByTag = new Map<string, TagSet>();
  readonly setsByName = new Map<string, TagSet>();
  log = new ChangeLog();
  ruleCount = 0;

  constructor(
    readonly family: IpVersion,
    readonly globals: GlobalChains,
  ) {
    for (const table of ['filter', 'raw'] as const) for (const chain of globals.chains[table]) this.putChain(table, chain);
  }

  chain(table: TableName, name: string): ChainSpec | undefined {
    return this.tables[table].get(name);
  }
  chainNames(table: TableName): Iterable<string> {
    return this.tables[table].keys();
  }
  hooks(table: TableName): readonly HookSpec[] {
    return this.globals.hooks[table];
  }
  ipset(name: string): DesiredIpset | undefined {
    const set = this.setsByName.get(name);
    return set === undefined ? undefined : desiredIpset(set, this.family);
  }
  ipsetNames(): Iterable<string> {
    return this.setsByName.keys();
  }

  putChain(table: TableName, chain: ChainSpec): void {
    const before = this.tables[table].get(chain.name);
    if (before !== undefined && sameHashes(before.hashes, chain.hashes)) return;
    this.tables[table].set(chain.name, chain);
    this.ruleCount += chain.rules.length - (before?.rules.length ?? 0);
    this.log.chains[table].add(chain.name);
  }

  removeChain(table: TableName, name: string): void {
    const before = this.tables[table].get(name);
    if (before === undefined) return;
    this.tables[table].delete(name);
    this.ruleCount -= before.rules.length;
    this.log.chains[table].add(name);
  }
}

function desiredIpset(set: TagSet, family: IpVersion): DesiredIpset {
  return {
    name: set.name,
    family: family === 4 ? 'inet' : 'inet6',
    type: 'hash:net',
    maxelem: set.maxelem,
    size: set.members.size,
    has: (member) => set.members.has(member),
    members: () => set.members.keys(),
  };
}

function unique(values: readonly string[]): readonly string[] {
  return values.length < 2 ? values : [...new Set(values)];
}

function increment(counts: Map<string, number>, key: string, delta: number): number {
  const count = (counts.get(key) ?? 0) + delta;
  if (count === 0) counts.delete(key);
  else counts.set(key, count);
  return count;
}

/** The smallest key of a non-empty set (the interface claim's winner). */
function smallest(keys: ReadonlySet<string>): string {
  let key = '';
  for (const candidate of keys) if (key === '' || candidate < key) key = candidate;
  return key;
}

export class CalcGraph {
  private readonly config: CompilerConfig;
  private readonly families: Record<IpVersion, FamilyState>;
  /** Canonical copies of profile ids, so compact endpoint records share their strings. */
  private readonly interned = new Map<string, string>();

  // Profiles and their indexes.
  private readonly rules = new Map<string, Rules>();
  /** Ids present in `rules` or `tags`, counted. */
  private profilesPresent = 0;
  private readonly tags = new Map<string, readonly string[]>();
  /** Tag → profiles carrying it. */
  private readonly carriers = new Map<string, Set<string>>();
  /** Profile → endpoints (any host) listing it. */
  private readonly members = new Map<string, Set<EndpointRecord>>();

  // Endpoints.
  private readonly endpoints = new Map<string, EndpointRecord>();
  /** This host's endpoints whose interface has the workload prefix, by key. */
  private readonly local = new Map<string, EndpointInput>();
  /** This host's endpoints whose interface lacks the prefix, with their diagnostic. */
  private readonly prefixless = new Map<string, Diagnostic>();
  /** Interface → keys of this host's endpoints claiming it. */
  private readonly claims = new Map<string, Set<string>>();
  /** Profile → keys of this host's (prefixed) endpoints listing it. */
  private readonly localByProfile = new Map<string, Set<string>>();
  private readonly winners = new Map<string, LocalWinner>();
  /** Interface winners refused because an earlier endpoint holds one of their addresses. */
  private refused = new Map<string, Refusal>();
  /** A local endpoint changed since the refusals were decided (they depend on nothing else). */
  private addressClaimsChanged = false;

  // Derived, reference-counted.
  private readonly usedCount = new Map<string, number>();
  private readonly missingCount = new Map<string, number>();
  private readonly active = new Map<string, Record<IpVersion, ProfilePair>>();
  private dispatch: ChainSpec[] = [];

  // Work recorded by the inputs, done by takeChanges().
  private readonly dirtyInterfaces = new Set<string>();
  private readonly dirtyProfiles = new Set<string>();
  private localChanged = true;
  private localView: ReadonlyMap<string, EndpointInput> | undefined;

  constructor(
    readonly hostname: string,
    config: CompilerConfig,
  ) {
    this.config = config;
    this.families = {
      4: new FamilyState(4, renderGlobalChains(config, 4)),
      6: new FamilyState(6, renderGlobalChains(config, 6)),
    };
    this.renderDispatch();
  }

  // ------------------------------------------------------------------------------- inputs

  /** A profile's rules; undefined when missing or invalid (endpoints using it fail closed). */
  setProfileRules(id: string, rules: Rules | undefined): void {
    const before = this.rules.get(id);
    if (before === rules) return;
    const wasPresent = before !== undefined || this.tags.has(id);
    if (rules === undefined) this.rules.delete(id);
    else this.rules.set(this.intern(id), rules);
    this.profilesPresent += Number(rules !== undefined || this.tags.has(id)) - Number(wasPresent);
    this.dirtyProfiles.add(id);
    // Presence decides the endpoint chains and used prefixes of the endpoints listing it.
    if ((before === undefined) !== (rules === undefined)) {
      for (const key of this.localByProfile.get(id) ?? []) this.dirtyInterfaces.add(this.local.get(key)!.endpoint.name);
    }
  }

  /** A profile's tags; undefined when missing or invalid. */
  setProfileTags(id: string, tags: Tags | undefined): void {
    const before = this.tags.get(id) ?? NO_TAGS;
    const after = tags === undefined ? NO_TAGS : unique(tags);
    const wasPresent = this.tags.has(id) || this.rules.has(id);
    if (tags === undefined) this.tags.delete(id);
    else this.tags.set(id, after);
    this.profilesPresent += Number(tags !== undefined || this.rules.has(id)) - Number(wasPresent);
    const profile = this.intern(id);
    for (const tag of before) {
      if (after.includes(tag)) continue;
      const carriers = this.carriers.get(tag)!;
      carriers.delete(profile);
      if (carriers.size === 0) this.carriers.delete(tag);
      for (const record of this.members.get(profile) ?? []) this.contribute(record, tag, -1);
    }
    for (const tag of after) {
      if (before.includes(tag)) continue;
      let carriers = this.carriers.get(tag);
      if (carriers === undefined) this.carriers.set(tag, (carriers = new Set()));
      carriers.add(profile);
      for (const record of this.members.get(profile) ?? []) this.contribute(record, tag, 1);
    }
  }

  /** An endpoint of any host, by etcd key; undefined when deleted or invalid. */
  setEndpoint(key: string, input: EndpointInput | undefined): void {
    const before = this.endpoints.get(key);
    if (before !== undefined) {
      this.forEachTag(before, (tag) => this.contribute(before, tag, -1));
      for (const profile of profilesOf(before)) {
        const members = this.members.get(profile)!;
        members.delete(before);
        if (members.size === 0) this.members.delete(profile);
      }
      this.endpoints.delete(key);
    }
    this.setLocal(key, input !== undefined && input.ref.host === this.hostname ? input : undefined);
    if (input === undefined) return;
    const record = this.recordOf(input.endpoint);
    this.endpoints.set(key, record);
    for (let i = 0; record[i] !== ''; i++) {
      let members = this.members.get(record[i]!);
      if (members === undefined) this.members.set(record[i]!, (members = new Set()));
      members.add(record);
    }
    this.forEachTag(record, (tag) => this.contribute(record, tag, 1));
  }

  // ------------------------------------------------------------------------------ outputs

  /** Does the derived work the inputs recorded, and returns (then forgets) what changed. */
  takeChanges(): GraphChanges {
    const touched = new Set<string>(this.dirtyProfiles);
    const dispatchDirty = this.updateWinners(touched);
    this.updateProfiles(touched);
    if (dispatchDirty) this.renderDispatch();
    for (const family of FAMILIES) this.updateMaxelems(this.families[family]);

    const families = {} as Record<IpVersion, FamilyChanges>;
    let any = this.localChanged;
    for (const family of FAMILIES) {
      const state = this.families[family];
      families[family] = state.log;
      any ||= !state.log.empty;
      state.log = new ChangeLog();
    }
    const changes = { families, localEndpointsChanged: this.localChanged, any };
    this.localChanged = false;
    return changes;
  }

  /** One family's desired state, live. */
  desired(family: IpVersion): DesiredFamily {
    return this.families[family];
  }

  /** This host's endpoints by interface (the winners), sorted; a new Map only when they changed. */
  localEndpoints(): ReadonlyMap<string, EndpointInput> {
    this.localView ??= new Map([...this.winners.keys()].sort().map((iface) => [iface, this.winners.get(iface)!.input] as const));
    return this.localView;
  }

  /**
   * The rules whose kernel counters the agent exports, by rule hash (as applied; call after
   * takeChanges): each rule of an active profile's chains that renders a profile rule, and the
   * final DROP of each local endpoint chain (nothing allowed the packet: default deny, missing
   * profile, inactive endpoint). A profile rule split into several chain rules is visited once
   * per chain rule, with the same label.
   */
  forEachCountedRule(family: IpVersion, visit: (hash: string, rule: CountedRule) => void): void {
    for (const [id, pairs] of this.active) {
      const rules = this.rules.get(id);
      for (const [direction, { chain, origins }] of [['inbound', pairs[family][0]], ['outbound', pairs[family][1]]] as const) {
        const list = direction === 'inbound' ? rules?.inbound_rules : rules?.outbound_rules;
        chain.hashes.forEach((hash, index) => {
          const origin = origins[index];
          if (origin === null || origin === undefined) return;
          visit(hash, { kind: 'profile-rule', profile: id, direction, rule: origin + 1, action: list?.[origin]?.action ?? 'allow' });
        });
      }
    }
    const filter = this.families[family].tables.filter;
    for (const [iface, { input }] of this.winners) {
      for (const direction of ['inbound', 'outbound'] as const) {
        const hash = filter.get(endpointChainName(iface, direction))?.hashes.at(-1);
        if (hash !== undefined) visit(hash, { kind: 'endpoint-drop', endpoint: input.ref.endpointId, direction });
      }
    }
  }

  /** This host's endpoints refused because an earlier endpoint holds one of their addresses, by key. */
  refusedEndpoints(): ReadonlyMap<string, Refusal & { ref: EndpointRef }> {
    return new Map([...this.refused].map(([key, refusal]) => [key, { ...refusal, ref: this.local.get(key)!.ref }]));
  }

  /** Profiles with rules or tags (or both). */
  get profileCount(): number {
    return this.profilesPresent;
  }
  get endpointCount(): number {
    return this.endpoints.size;
  }

  /** What was ignored or fails closed, sorted. */
  diagnostics(): Diagnostic[] {
    const diagnostics: Diagnostic[] = [...this.prefixless.values()];
    for (const [iface, keys] of this.claims) {
      if (keys.size < 2) continue;
      const winner = smallest(keys);
      for (const key of keys) {
        if (key === winner) continue;
        diagnostics.push(duplicateInterface(key, iface, winner));
      }
    }
    for (const [key, { address, owner }] of this.refused) diagnostics.push(duplicateAddress(key, address, owner));
    for (const [id, count] of this.missingCount) diagnostics.push(missingProfile(id, count));
    for (const family of FAMILIES) {
      for (const set of this.families[family].setsByTag.values()) {
        const size = set.members.size;
        if (size <= this.config.maxIpsetSize) continue;
        diagnostics.push(ipsetTooLarge(set.name, set.tag, family, size, this.config.maxIpsetSize, set.maxelem));
      }
    }
    return sortDiagnostics(diagnostics);
  }

  /**
   * The whole desired dataplane in the compiler's canonical order (dry runs, tests): globals,
   * dispatch, profile chains by id, endpoint chains by interface; sets by tag, members sorted.
   * Pending work is done first (its changes stay pending for `takeChanges`).
   */
  toSpec(): DataplaneSpec {
    const pending = this.takeChanges();
    for (const family of FAMILIES) mergeInto(this.families[family].log, pending.families[family]);
    this.localChanged ||= pending.localEndpointsChanged;
    const familySpec = (family: IpVersion): FamilySpec => {
      const state = this.families[family];
      const filter: ChainSpec[] = [...state.globals.chains.filter, ...this.dispatch];
      for (const id of [...this.active.keys()].sort()) for (const { chain } of this.active.get(id)![family]) filter.push(chain);
      for (const iface of [...this.winners.keys()].sort()) {
        filter.push(state.tables.filter.get(endpointChainName(iface, 'inbound'))!, state.tables.filter.get(endpointChainName(iface, 'outbound'))!);
      }
      const ipsets = new Map<string, IpsetSpec>();
      for (const tag of [...state.setsByTag.keys()].sort()) {
        const set = state.setsByTag.get(tag)!;
        ipsets.set(set.name, {
          name: set.name,
          family: family === 4 ? 'inet' : 'inet6',
          type: 'hash:net',
          maxelem: set.maxelem,
          members: [...set.members.keys()].sort(),
        });
      }
      return {
        family,
        tables: {
          filter: { chains: new Map(filter.map((chain) => [chain.name, chain])), hooks: state.globals.hooks.filter },
          raw: { chains: new Map(state.globals.chains.raw.map((chain) => [chain.name, chain])), hooks: state.globals.hooks.raw },
        },
        ipsets,
      };
    };
    return { v4: familySpec(4), v6: familySpec(6), diagnostics: this.diagnostics(), localEndpoints: this.localEndpoints() };
  }

  // ---------------------------------------------------------------------------- internals

  private intern(id: string): string {
    const known = this.interned.get(id);
    if (known !== undefined) return known;
    const own = detach(id);
    this.interned.set(own, own);
    return own;
  }

  private recordOf(endpoint: Endpoint): EndpointRecord {
    const { profile_ids: ids, ipv4_nets: v4, ipv6_nets: v6 } = endpoint;
    // The usual endpoint (up to two distinct profiles, one net per family, none /0) is written
    // straight into an array of its exact length: a cold start builds 100k of these.
    if (ids.length <= 2 && ids[0] !== ids[1] && v4.length <= 1 && v6.length <= 1 && !v4[0]?.endsWith('/0') && !v6[0]?.endsWith('/0')) {
      const record = new Array<string>(ids.length + v4.length + v6.length + 2);
      let i = 0;
      for (const id of ids) record[i++] = this.intern(id);
      record[i++] = '';
      if (v4.length === 1) record[i++] = detach(memberForm(v4[0]!));
      record[i++] = '';
      if (v6.length === 1) record[i] = detach(memberForm(v6[0]!));
      return record;
    }
    const usable = (nets: readonly string[]) => unique(nets.filter((net) => !net.endsWith('/0')).map((net) => detach(memberForm(net))));
    return packRecord(unique(ids).map((id) => this.intern(id)), usable(v4), usable(v6));
  }

  /** Calls `visit` once per (profile of the record, tag of that profile): the record's contributions. */
  private forEachTag(record: EndpointRecord, visit: (tag: string) => void): void {
    for (let i = 0; record[i] !== ''; i++) for (const tag of this.tags.get(record[i]!) ?? NO_TAGS) visit(tag);
  }

  /** Adds or removes one (endpoint, carrier) pair's addresses to the tag's sets that exist. */
  private contribute(record: EndpointRecord, tag: string, delta: 1 | -1): void {
    for (const family of FAMILIES) {
      const state = this.families[family];
      const set = state.setsByTag.get(tag);
      if (set === undefined) continue;
      forEachMember(record, family, (address) => {
        const count = increment(set.members, address, delta);
        if (count === 0 || count === delta) state.log.member(set.name, address);
      });
    }
  }

  /** Updates the local indexes for one key (undefined: not a local endpoint any more). */
  private setLocal(key: string, input: EndpointInput | undefined): void {
    const before = this.local.get(key);
    this.addressClaimsChanged = true;
    if (before !== undefined) {
      this.local.delete(key);
      const claimants = this.claims.get(before.endpoint.name)!;
      claimants.delete(key);
      if (claimants.size === 0) this.claims.delete(before.endpoint.name);
      for (const profile of before.endpoint.profile_ids) {
        const keys = this.localByProfile.get(profile)!;
        keys.delete(key);
        if (keys.size === 0) this.localByProfile.delete(profile);
      }
      this.dirtyInterfaces.add(before.endpoint.name);
    }
    if (this.prefixless.delete(key)) this.localChanged = true;
    if (input === undefined) return;
    const iface = input.endpoint.name;
    if (!iface.startsWith(this.config.interfacePrefix)) {
      this.prefixless.set(key, prefixlessEndpoint(key, iface, this.config.interfacePrefix));
      return;
    }
    this.local.set(key, input);
    let claimants = this.claims.get(iface);
    if (claimants === undefined) this.claims.set(iface, (claimants = new Set()));
    claimants.add(key);
    for (const profile of input.endpoint.profile_ids) {
      let keys = this.localByProfile.get(profile);
      if (keys === undefined) this.localByProfile.set(profile, (keys = new Set()));
      keys.add(key);
    }
    this.dirtyInterfaces.add(iface);
  }

  /**
   * Re-decides each dirty interface: its winner (smallest key), the profiles it uses, its
   * endpoint chains. Adds profiles whose use count moved to `touched`; returns whether the
   * set of interfaces changed (dispatch must be re-rendered).
   */
  private updateWinners(touched: Set<string>): boolean {
    let dispatchDirty = false;
    if (this.addressClaimsChanged) {
      this.updateRefused();
      this.addressClaimsChanged = false;
    }
    for (const iface of this.dirtyInterfaces) {
      const before = this.winners.get(iface);
      if (before !== undefined) {
        for (const id of before.used) if (increment(this.usedCount, id, -1) === 0) touched.add(id);
        if (before.missing !== undefined) increment(this.missingCount, before.missing, -1);
      }
      const claimants = this.claims.get(iface);
      const key = claimants === undefined ? undefined : smallest(claimants);
      if (key === undefined || this.refused.has(key)) {
        if (before !== undefined) {
          this.winners.delete(iface);
          for (const family of FAMILIES) {
            this.families[family].removeChain('filter', endpointChainName(iface, 'inbound'));
            this.families[family].removeChain('filter', endpointChainName(iface, 'outbound'));
          }
          dispatchDirty = true;
          this.localChanged = true;
        }
        continue;
      }
      const input = this.local.get(key)!;
      const used: string[] = [];
      let missing: string | undefined;
      if (input.endpoint.state === 'active') {
        for (const id of input.endpoint.profile_ids) {
          if (!this.rules.has(id)) {
            missing = id;
            break;
          }
          used.push(id);
        }
      }
      for (const id of used) if (increment(this.usedCount, id, 1) === 1) touched.add(id);
      if (missing !== undefined) increment(this.missingCount, missing, 1);
      if (before === undefined) dispatchDirty = true;
      if (before?.input !== input) this.localChanged = true;
      this.winners.set(iface, { key, input, used, missing });
      const hasProfile = (id: string): boolean => this.rules.has(id);
      for (const family of FAMILIES) {
        const chains: EndpointChains = renderEndpointChains(input, family, this.config.acceptMarkBit, hasProfile);
        this.families[family].putChain('filter', chains.inbound);
        this.families[family].putChain('filter', chains.outbound);
      }
    }
    this.dirtyInterfaces.clear();
    if (this.localChanged) this.localView = undefined;
    return dispatchDirty;
  }

  /**
   * Re-decides which interface winners an earlier endpoint's address claim refuses
   * (local-claims.ts, over every interface: one endpoint's new address can refuse another's);
   * the interfaces whose refusal changed become dirty.
   */
  private updateRefused(): void {
    const candidates: [string, EndpointInput][] = [];
    for (const claimants of this.claims.values()) {
      const key = smallest(claimants);
      candidates.push([key, this.local.get(key)!]);
    }
    const refused = refusedByAddress(candidates);
    for (const key of new Set([...refused.keys(), ...this.refused.keys()])) {
      const now = refused.get(key);
      const before = this.refused.get(key);
      if (now?.address === before?.address && now?.owner === before?.owner) continue;
      const iface = this.local.get(key)?.endpoint.name;
      if (iface !== undefined) this.dirtyInterfaces.add(iface);
    }
    this.refused = refused;
  }

  /** Activates, re-renders or retires each touched profile's chains, and the sets their tags need. */
  private updateProfiles(touched: ReadonlySet<string>): void {
    const refChanges: Record<IpVersion, Set<string>> = { 4: new Set(), 6: new Set() };
    for (const id of touched) {
      const before = this.active.get(id);
      const wanted = (this.usedCount.get(id) ?? 0) > 0;
      if (before !== undefined && (!wanted || this.dirtyProfiles.has(id))) {
        for (const family of FAMILIES) {
          for (const { tags } of before[family]) for (const tag of tags) if (increment(this.families[family].tagRefs, tag, -1) === 0) refChanges[family].add(tag);
        }
        this.active.delete(id);
      }
      if (wanted && (before === undefined || this.dirtyProfiles.has(id))) {
        const rules = this.rules.get(id)!;
        const pairs = {} as Record<IpVersion, ProfilePair>;
        for (const family of FAMILIES) {
          const mark = this.config.acceptMarkBit;
          const pair: ProfilePair = [
            renderProfileChain(id, rules.inbound_rules, 'inbound', family, mark),
            renderProfileChain(id, rules.outbound_rules, 'outbound', family, mark),
          ];
          pairs[family] = pair;
          for (const { chain, tags } of pair) {
            this.families[family].putChain('filter', chain);
            for (const tag of tags) if (increment(this.families[family].tagRefs, tag, 1) === 1) refChanges[family].add(tag);
          }
        }
        this.active.set(id, pairs);
      } else if (!wanted && before !== undefined) {
        for (const family of FAMILIES) for (const { chain } of before[family]) this.families[family].removeChain('filter', chain.name);
      }
    }
    this.dirtyProfiles.clear();
    for (const family of FAMILIES) {
      const state = this.families[family];
      for (const tag of refChanges[family]) {
        const wanted = state.tagRefs.has(tag);
        const existing = state.setsByTag.get(tag);
        if (wanted && existing === undefined) this.createSet(state, tag);
        else if (!wanted && existing !== undefined) {
          state.setsByTag.delete(tag);
          state.setsByName.delete(existing.name);
          state.log.ipsets.add(existing.name);
        }
      }
    }
  }

  /** A new set for `tag`, filled from the endpoints of every profile carrying it. */
  private createSet(state: FamilyState, tag: string): void {
    const set: TagSet = { tag, name: tagIpsetName(tag, state.family), members: new Map(), maxelem: 0 };
    for (const profile of this.carriers.get(tag) ?? []) {
      for (const record of this.members.get(profile) ?? []) {
        forEachMember(record, state.family, (address) => increment(set.members, address, 1));
      }
    }
    set.maxelem = ipsetMaxelem(set.members.size, this.config.maxIpsetSize);
    state.setsByTag.set(tag, set);
    state.setsByName.set(set.name, set);
    state.log.ipsets.add(set.name);
  }

  /** A set whose member count crossed maxIpsetSize gets new metadata: it is then compared whole. */
  private updateMaxelems(state: FamilyState): void {
    for (const name of state.log.members.keys()) {
      const set = state.setsByName.get(name);
      if (set === undefined) continue;
      const maxelem = ipsetMaxelem(set.members.size, this.config.maxIpsetSize);
      if (maxelem === set.maxelem) continue;
      set.maxelem = maxelem;
      state.log.ipsets.add(name);
    }
  }

  private renderDispatch(): void {
    const before = this.dispatch;
    this.dispatch = renderDispatchChains([...this.winners.keys()].sort(), this.config.interfacePrefix);
    const names = new Set(this.dispatch.map((chain) => chain.name));
    for (const family of FAMILIES) {
      for (const chain of before) if (!names.has(chain.name)) this.families[family].removeChain('filter', chain.name);
      for (const chain of this.dispatch) this.families[family].putChain('filter', chain);
    }
  }
}

function mergeInto(into: ChangeLog, from: FamilyChanges): void {
  for (const table of ['filter', 'raw'] as const) for (const name of from.chains[table]) into.chains[table].add(name);
  for (const name of from.ipsets) into.ipsets.add(name);
  for (const [set, members] of from.members) for (const member of members) into.member(set, member);
}
