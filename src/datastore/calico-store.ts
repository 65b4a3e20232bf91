/**
 * CalicoStore: the v1 data model in etcd as used by calicoctl (and the Docker plugin):
 * profiles (rules + tags) and workload endpoints.
 *
 * Invariants:
 * - Every read-modify-write is ONE etcd transaction whose compares pin what was read: each key
 *   read must still have the mod_revision seen (a deleted key has mod_revision 0, so deletion is
 *   caught too) and each key about to be created must still be absent. On a lost race the whole
 *   read-modify-write is re-run (the caller's update function must be a pure function of its
 *   input); after `maxAttempts` a DatastoreConflictError is thrown.
 * - Nothing invalid is written: rules and endpoints are validated with the model schemas before
 *   every write; names are checked against the id patterns before they become key segments.
 * - `removeProfile` with the endpoint check is race-safe: the delete is conditioned on no key
 *   under `/calico/v1/host/` having changed since the endpoints were scanned, so an endpoint that
 *   starts referencing the profile meanwhile makes the delete retry (and then refuse).
 * - All etcd failures surface as typed DatastoreErrors (errors.ts).
 */
import {
  defaultRules,
  endpointKey,
  endpointSchema,
  formatIssues,
  hostPrefix,
  HOST_PATTERN,
  HOSTS_PREFIX,
  ID_PATTERN,
  isValidEndpointRef,
  parseJson,
  parseKey,
  profilePrefix,
  profileRulesKey,
  profileTagsKey,
  PROFILES_PREFIX,
  rulesSchema,
  decodeEndpoint,
  decodeEntry,
  type Endpoint,
  type EndpointRef,
  type Rules,
  type Tags,
  tagsSchema,
} from '../model/index.js';
import {
  DatastoreConflictError,
  DatastoreDataError,
  EndpointNotFoundError,
  InvalidNameError,
  ProfileExistsError,
  ProfileInUseError,
  ProfileNotFoundError,
} from './errors.js';
import { prefixEnd, type Compare, type EtcdKv, type KeyValue, type RequestOp, type TxnResponse } from './kv.js';
import { pythonJsonDumps } from './python-json.js';
import { decodeOrderedRules, decodeStoredTags, encodeRules, encodeTags } from './stored-values.js';

export interface Profile {
  name: string;
  rules: Rules;
  tags: Tags;
}

export interface StoredEndpoint {
  key: string;
  ref: EndpointRef;
  /** The stored JSON as parsed (undefined when it is not JSON). */
  raw: unknown;
  /** The decoded endpoint, or undefined when the stored value is invalid (see `invalidReason`). */
  endpoint?: Endpoint;
  invalidReason?: string;
  modRevision: string;
}

export interface PolicyContents {
  revision: number;
  profiles: Map<string, { rules?: Rules; tags?: Tags }>;
  /** By etcd key. */
  endpoints: Map<string, { ref: EndpointRef; endpoint: Endpoint }>;
  invalidKeys: number;
}

export interface UpdateResult {
  /** False when the update function asked for no change. */
  written: boolean;
}

export interface StoreOptions {
  /** Attempts of a read-modify-write before giving up on contention. Default 100. */
  maxAttempts?: number;
}

interface Kv {
  key: string;
  value: string;
  modRevision: string;
}

const CONFLICT = Symbol('conflict');
type Attempt<T> = T | typeof CONFLICT;

const toKv = (kv: KeyValue): Kv => ({
  key: kv.key.toString(),
  value: kv.value.toString(),
  modRevision: String(kv.mod_revision),
});

/** Compare: `key` still has the mod_revision we read (0 = still absent). */
const unchanged = (key: string, modRevision: string | number): Compare => ({
  key: Buffer.from(key),
  target: 'Mod',
  result: 'Equal',
  mod_revision: String(modRevision),
});

const putOp = (key: string, value: string): RequestOp => ({
  request_put: { key: Buffer.from(key), value: Buffer.from(value) },
});

const rangeOp = (prefix: string): RequestOp => ({
  request_range: { key: Buffer.from(prefix), range_end: prefixEnd(prefix) },
});

export function assertProfileName(name: string): void {
  if (!ID_PATTERN.test(name)) throw new InvalidNameError(`invalid profile name ${JSON.stringify(name)}`);
}

export function assertEndpointRef(ref: EndpointRef): void {
  if (!HOST_PATTERN.test(ref.host) || !isValidEndpointRef(ref)) {
    throw new InvalidNameError(`invalid endpoint reference ${JSON.stringify(ref)}`);
  }
}

/** Profile ids an endpoint references, read from the decoded value or, failing that, the raw JSON. */
export function endpointProfileIds(stored: StoredEndpoint): string[] {
  if (stored.endpoint) return stored.endpoint.profile_ids;
  const raw = stored.raw as Record<string, unknown> | null;
  if (raw === null || typeof raw !== 'object') return [];
  if (Array.isArray(raw.profile_ids)) return raw.profile_ids.filter((p): p is string => typeof p === 'string');
  return typeof raw.profile_id === 'string' ? [raw.profile_id] : [];
}

function validateEndpointJson(key: string, raw: unknown): void {
  const parsed = endpointSchema.safeParse(raw);
  if (!parsed.success) {
    throw new DatastoreDataError(`refusing to write invalid endpoint ${key}: ${formatIssues(parsed.error)}`);
  }
}

export class CalicoStore {
  private readonly maxAttempts: number;
  private writeRevision: number | undefined;

  constructor(
    private readonly kv: EtcdKv,
    options: StoreOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 100;
  }

  close(): void {
    this.kv.close();
  }

  /** The etcd revision of the last write this store made (undefined: it wrote nothing). */
  get lastWriteRevision(): number | undefined {
    return this.writeRevision;
  }

  // ---- profiles ------------------------------------------------------------------------------

  /** Profile names (children of the profile directory), sorted by code point. */
  async listProfiles(): Promise<string[]> {
    const kvs = await this.range(PROFILES_PREFIX, true);
    const names = new Set<string>();
    for (const kv of kvs) {
      const name = kv.key.slice(PROFILES_PREFIX.length).split('/')[0];
      if (name) names.add(name);
    }
    return [...names].sort(compareCodePoints);
  }

  async profileExists(name: string): Promise<boolean> {
    assertProfileName(name);
    return (await this.range(profilePrefix(name), true)).length > 0;
  }

  async getProfile(name: string): Promise<Profile> {
    assertProfileName(name);
    const kvs = await this.range(profilePrefix(name));
    if (kvs.length === 0) throw new ProfileNotFoundError(name);
    return {
      name,
      rules: this.rulesFrom(name, kvs.find((kv) => kv.key === profileRulesKey(name))),
      tags: this.tagsFrom(name, kvs.find((kv) => kv.key === profileTagsKey(name))),
    };
  }

  /**
   * Creates a profile (tags and rules in one transaction, only if nothing exists under its
   * directory). Defaults: tags `[name]`, default rules.
   */
  async createProfile(name: string, init: { rules?: Rules; tags?: Tags } = {}): Promise<void> {
    assertProfileName(name);
    const rules = init.rules ?? defaultRules(name);
    const tags = init.tags ?? [name];
    this.checkRules(name, rules);
    this.checkTags(name, tags);
    const prefix = profilePrefix(name);
    const response = await this.txn(
      [{ key: Buffer.from(prefix), range_end: prefixEnd(prefix), target: 'Version', result: 'Equal', version: '0' }],
      [putOp(profileTagsKey(name), encodeTags(tags)), putOp(profileRulesKey(name), encodeRules(rules))],
    );
    if (!response.succeeded) throw new ProfileExistsError(name);
  }

  /**
   * Deletes everything under the profile's directory. Unless `checkEndpoints` is false, refuses
   * (ProfileInUseError) while any endpoint on any host lists the profile.
   */
  async removeProfile(name: string, options: { checkEndpoints: boolean }): Promise<void> {
    assertProfileName(name);
    const prefix = profilePrefix(name);
    await this.withRetries(`remove profile ${name}`, async (): Promise<Attempt<void>> => {
      const ranges = [rangeOp(prefix)];
      if (options.checkEndpoints) ranges.push(rangeOp(HOSTS_PREFIX));
      const read = await this.txn([], ranges);
      const profileKvs = read.responses[0]?.response_range?.kvs ?? [];
      if (profileKvs.length === 0) throw new ProfileNotFoundError(name);
      const compares = profileKvs.map((kv) => unchanged(kv.key.toString(), kv.mod_revision));
      if (options.checkEndpoints) {
        const hostKvs = (read.responses[1]?.response_range?.kvs ?? []).map(toKv);
        const users = this.endpointsFrom(hostKvs)
          .filter((e) => endpointProfileIds(e).includes(name))
          .map((e) => e.key);
        if (users.length > 0) throw new ProfileInUseError(name, users);
        const nextRevision = (BigInt(read.header.revision) + 1n).toString();
        compares.push({
          key: Buffer.from(HOSTS_PREFIX),
          range_end: prefixEnd(HOSTS_PREFIX),
          target: 'Mod',
          result: 'Less',
          mod_revision: nextRevision,
        });
      }
      const write = await this.txn(compares, [
        { request_delete_range: { key: Buffer.from(prefix), range_end: prefixEnd(prefix) } },
      ]);
      return write.succeeded ? undefined : CONFLICT;
    });
  }

  /**
   * Read-modify-write of a profile's rules. `update` gets the current rules (members in stored
   * order) and returns the new rules, or undefined for no change. With `replaceInvalid`, stored
   * rules that fail validation are presented as empty lists instead of raising.
   */
  async updateRules(
    name: string,
    update: (current: Rules) => Rules | undefined,
    options: { replaceInvalid?: boolean } = {},
  ): Promise<UpdateResult> {
    assertProfileName(name);
    const rulesKey = profileRulesKey(name);
    return this.updateProfileValue(name, rulesKey, (kv) => {
      const current =
        options.replaceInvalid && kv && !decodeOrderedRules(kv.value).ok
          ? { inbound_rules: [], outbound_rules: [] }
          : this.rulesFrom(name, kv);
      const next = update(current);
      if (next === undefined) return undefined;
      this.checkRules(name, next);
      return encodeRules(next);
    });
  }

  /** Read-modify-write of a profile's tags (same contract as updateRules). */
  async updateTags(name: string, update: (current: Tags) => Tags | undefined): Promise<UpdateResult> {
    assertProfileName(name);
    return this.updateProfileValue(name, profileTagsKey(name), (kv) => {
      const next = update(this.tagsFrom(name, kv));
      if (next === undefined) return undefined;
      this.checkTags(name, next);
      return encodeTags(next);
    });
  }

  /**
   * Every profile and endpoint at one etcd revision (one transaction), decoded exactly as the
   * agent decodes them: an invalid value is absent (a profile without valid rules has none), as
   * the agent's fail-closed view has it; `invalidKeys` counts them.
   */
  async readPolicy(): Promise<PolicyContents> {
    const response = await this.txn([], [rangeOp(PROFILES_PREFIX), rangeOp(HOSTS_PREFIX)]);
    const contents: PolicyContents = { revision: Number(response.header.revision), profiles: new Map(), endpoints: new Map(), invalidKeys: 0 };
    for (const result of response.responses) {
      for (const { key, value } of (result.response_range?.kvs ?? []).map(toKv)) {
        const decoded = decodeEntry(key, value);
        if (decoded.ok === 'ignored') continue;
        if (decoded.ok === false) {
          contents.invalidKeys++;
          continue;
        }
        const { entry } = decoded;
        if (entry.kind === 'endpoint') contents.endpoints.set(key, { ref: entry.ref, endpoint: entry.endpoint });
        else if (entry.kind === 'profileRules') contents.profiles.set(entry.profile, { ...contents.profiles.get(entry.profile), rules: entry.rules });
        else if (entry.kind === 'profileTags') contents.profiles.set(entry.profile, { ...contents.profiles.get(entry.profile), tags: entry.tags });
      }
    }
    return contents;
  }

  // ---- endpoints -----------------------------------------------------------------------------

  /** Workload endpoints of every host, or of one host. */
  async listEndpoints(filter: { host?: string } = {}): Promise<StoredEndpoint[]> {
    if (filter.host !== undefined && !HOST_PATTERN.test(filter.host)) {
      throw new InvalidNameError(`invalid host name ${JSON.stringify(filter.host)}`);
    }
    const prefix = filter.host === undefined ? HOSTS_PREFIX : hostPrefix(filter.host);
    return this.endpointsFrom(await this.range(prefix));
  }

  /**
   * Read-modify-write of one endpoint on its RAW JSON object, so members this code does not
   * model survive. `update` returns the new object or undefined for no change; the result must
   * pass the endpoint schema.
   */
  async updateEndpoint(
    ref: EndpointRef,
    update: (raw: Record<string, unknown>) => Record<string, unknown> | undefined,
  ): Promise<UpdateResult> {
    assertEndpointRef(ref);
    const key = endpointKey(ref);
    return this.withRetries(`update endpoint ${key}`, async (): Promise<Attempt<UpdateResult>> => {
      const [kv] = await this.range(key, false, true);
      if (!kv) throw new EndpointNotFoundError(key);
      const json = parseJson(kv.value);
      if (!json.ok || json.value === null || typeof json.value !== 'object' || Array.isArray(json.value)) {
        throw new DatastoreDataError(`endpoint ${key} is not a JSON object`);
      }
      const next = update(structuredClone(json.value as Record<string, unknown>));
      if (next === undefined) return { written: false };
      validateEndpointJson(key, next);
      const write = await this.txn([unchanged(key, kv.modRevision)], [putOp(key, pythonJsonDumps(next))]);
      return write.succeeded ? { written: true } : CONFLICT;
    });
  }

  /** Writes an endpoint (validated first). With `mustNotExist`, fails if the key exists. */
  async putEndpoint(ref: EndpointRef, endpoint: Record<string, unknown>, options: { mustNotExist?: boolean } = {}): Promise<void> {
    assertEndpointRef(ref);
    const key = endpointKey(ref);
    validateEndpointJson(key, endpoint);
    const compares = options.mustNotExist ? [unchanged(key, 0)] : [];
    const write = await this.txn(compares, [putOp(key, pythonJsonDumps(endpoint))]);
    if (!write.succeeded) throw new DatastoreConflictError(`endpoint ${key} already exists`);
  }

  /** Deletes an endpoint; false when it did not exist. */
  async deleteEndpoint(ref: EndpointRef): Promise<boolean> {
    assertEndpointRef(ref);
    const key = endpointKey(ref);
    const response = await this.txn([], [{ request_delete_range: { key: Buffer.from(key) } }]);
    return Number(response.responses[0]?.response_delete_range?.deleted ?? 0) > 0;
  }

  // ---- internals -----------------------------------------------------------------------------

  private async updateProfileValue(
    name: string,
    key: string,
    compute: (current: Kv | undefined) => string | undefined,
  ): Promise<UpdateResult> {
    return this.withRetries(`update ${key}`, async (): Promise<Attempt<UpdateResult>> => {
      const kvs = await this.range(profilePrefix(name));
      if (kvs.length === 0) throw new ProfileNotFoundError(name);
      const current = kvs.find((kv) => kv.key === key);
      const value = compute(current);
      if (value === undefined) return { written: false };
      // Pin every key of the profile (a concurrent remove deletes them) and the target key.
      const compares = kvs.map((kv) => unchanged(kv.key, kv.modRevision));
      if (!current) compares.push(unchanged(key, 0));
      const write = await this.txn(compares, [putOp(key, value)]);
      return write.succeeded ? { written: true } : CONFLICT;
    });
  }

  private rulesFrom(name: string, kv: Kv | undefined): Rules {
    if (!kv) return { inbound_rules: [], outbound_rules: [] };
    const decoded = decodeOrderedRules(kv.value);
    if (!decoded.ok) throw new DatastoreDataError(`Stored rules of profile ${name} are invalid: ${decoded.reason}`);
    return decoded.value;
  }

  private tagsFrom(name: string, kv: Kv | undefined): Tags {
    if (!kv) return [];
    const decoded = decodeStoredTags(kv.value);
    if (!decoded.ok) throw new DatastoreDataError(`Stored tags of profile ${name} are invalid: ${decoded.reason}`);
    return decoded.value;
  }

  private checkRules(name: string, rules: Rules): void {
    const parsed = rulesSchema.safeParse(rules);
    if (!parsed.success) {
      throw new DatastoreDataError(`refusing to write invalid rules for profile ${name}: ${formatIssues(parsed.error)}`);
    }
  }

  private checkTags(name: string, tags: Tags): void {
    const parsed = tagsSchema.safeParse(tags);
    if (!parsed.success) {
      throw new DatastoreDataError(`refusing to write invalid tags for profile ${name}: ${formatIssues(parsed.error)}`);
    }
  }

  private endpointsFrom(kvs: Kv[]): StoredEndpoint[] {
    const out: StoredEndpoint[] = [];
    for (const kv of kvs) {
      const parsedKey = parseKey(kv.key);
      if (parsedKey.kind !== 'endpoint') continue;
      const json = parseJson(kv.value);
      const decoded = decodeEndpoint(kv.value);
      const stored: StoredEndpoint = {
        key: kv.key,
        ref: parsedKey.ref,
        raw: json.ok ? json.value : undefined,
        modRevision: kv.modRevision,
      };
      if (decoded.ok) stored.endpoint = decoded.value;
      else stored.invalidReason = decoded.reason;
      out.push(stored);
    }
    return out;
  }

  private async withRetries<T>(what: string, attempt: () => Promise<Attempt<T>>): Promise<T> {
    for (let i = 0; i < this.maxAttempts; i++) {
      const result = await attempt();
      if (result !== CONFLICT) return result;
      // Jittered exponential backoff, capped low: contention here is between a few CLI calls.
      const cap = Math.min(200, 2 ** i);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
    }
    throw new DatastoreConflictError(
      `${what}: gave up after ${this.maxAttempts} attempts, concurrent writers kept changing it; try again`,
    );
  }

  /** Keys (and values) under a prefix, or the single `key` when `exact`. */
  private async range(prefixOrKey: string, keysOnly = false, exact = false): Promise<Kv[]> {
    const response = await this.kv.range({
      key: Buffer.from(prefixOrKey),
      ...(exact ? {} : { range_end: prefixEnd(prefixOrKey) }),
      keys_only: keysOnly,
    });
    return response.kvs.map(toKv);
  }

  private async txn(compare: Compare[], success: RequestOp[]): Promise<TxnResponse> {
    const response = await this.kv.txn({ compare, success });
    // A put always makes a revision; a delete only when it deleted something.
    const wrote = success.some((op, i) => 'request_put' in op || Number(response.responses[i]?.response_delete_range?.deleted ?? 0) > 0);
    if (response.succeeded && wrote) this.writeRevision = Math.max(this.writeRevision ?? 0, Number(response.header.revision));
    return response;
  }
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
