/**
 * The etcd syncer: lists then watches `/calico/v1/` and hands every change on as per-key
 * updates (a profile's rules, a profile's tags, an endpoint: set, or deleted), in etcd order,
 * to its consumer (the calculation graph); it also tracks Ready and tells the reconciler when
 * the etcd revision moved.
 *
 *   list /calico/v1/ (paged, one revision R) ──▶ watch from R+1 ──▶ events → updates
 *        ▲                                            │
 *        └──── watch canceled by etcd (compaction) ───┘  re-list at once: updates for keys whose
 *                                                     │  mod revision changed, deletes synthesised
 *                                                     │  for keys that vanished (watchercache)
 *              connection lost ──▶ keep the view, resume the watch from the last revision+1
 *                                  with jittered backoff 100 ms → 5 s; unhealthy after a grace
 *
 * Invariants:
 * - Per key it keeps only the mod revision last seen (never the raw value): a re-list decodes
 *   only keys whose revision changed, and emits nothing for the others.
 * - `inSync` becomes true only after the first complete list; until then the reconciler writes
 *   nothing (graceful restart). The first list hands its updates on as they are decoded, in
 *   small batches (the next page is fetched meanwhile); a re-list hands them on in one batch at its
 *   end, so a consumer never sees a mix of two revisions between batches.
 * - An invalid value is handed on as a delete (fail closed for what references it), logged once
 *   per key and reason, and counted in `calico_agent_invalid_keys_total{kind}`; it never stops
 *   the syncer.
 * - `/calico/v1/Ready` present with any value but `true` sets `datastoreReady` false (the
 *   reconciler pauses programming); absent means ready.
 * - Keys outside the model (config, pools, other hosts' junk) are ignored.
 */
import { performance } from 'node:perf_hooks';
import { GRPCResourceExhastedError, Range, type Etcd3, type IWatchResponse } from 'etcd3';
import { rangeDecoded } from '../src/datastore/client.js';
import type { DecodedRange } from '../src/datastore/range-response.js';
import type { EndpointInput } from '../compiler/types.js';
import { READY_KEY, V1_PREFIX, decodeEntry, parseKey, type KeyRef, type Rules, type Tags } from '../src/model/index.js';
import type { Logger } from './logger.js';
import type { AgentMetrics } from './metrics.js';

/** A list page carries about this many bytes of keys and values (the count adapts to it). */
const PAGE_BYTES = 8 * 1024 * 1024;

/** Updates per hand-over during the first list. */
const FIRST_LIST_BATCH = 256;

/** What changed, for latency accounting: the etcd revision and when we received it. */
export interface SyncerChange {
  revision: number;
  /** `performance.now()` at receipt of the etcd response that carried the change. */
  receivedAt: number;
}

/** One key's change; `undefined` means deleted, or present but invalid. */
export type DatastoreUpdate =
  | { kind: 'profileRules'; profile: string; rules: Rules | undefined }
  | { kind: 'profileTags'; profile: string; tags: Tags | undefined }
  | { kind: 'endpoint'; key: string; input: EndpointInput | undefined };

export interface SyncerOptions {
  client: Etcd3;
  /** Receives the updates, synchronously, before the `onChange` that follows them. */
  onUpdates?: (updates: readonly DatastoreUpdate[]) => void;
  log: Logger;
  metrics?: AgentMetrics;
  /**
   * Called after every change of the view (including Ready), on the first in-sync, and when only
   * the revision moved (an identical value rewritten, a key we ignore): the reconciler's pass then
   * writes nothing but reports the kernel current at that revision.
   */
  onChange?: (change: SyncerChange) => void;
  /** Unhealthy after etcd has been unreachable this long (default 30 s). */
  gracePeriodMs?: number;
  /** Reconnect backoff, full jitter between initial and max (defaults 100 ms, 5 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Timeout of one list page request (default 10 s). */
  requestTimeoutMs?: number;
  /** Keys per list page (default 5000). */
  pageSize?: number;
}

/** Minimum spacing of re-lists caused by canceled watches (Felix's MinResyncInterval). */
const MIN_RELIST_MS = 500;

type ResyncReason = 'start' | 'watch-canceled' | 'reconnect';

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function invalidKind(ref: KeyRef): string {
  switch (ref.kind) {
    case 'profileRules':
      return 'profile-rules';
    case 'profileTags':
      return 'profile-tags';
    default:
      return ref.kind;
  }
}

export class Syncer {
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly metrics: AgentMetrics | undefined;
  private readonly onChange: (change: SyncerChange) => void;
  private readonly gracePeriodMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly requestTimeoutMs: number;
  private readonly pageSize: number;

  private readonly onUpdates: (updates: readonly DatastoreUpdate[]) => void;
  /** Mod revision of every key we model (valid or not), to tell a re-list what changed. */
  private readonly revisions = new Map<string, number>();
  /** Keys currently invalid → reason (each key+reason is logged and counted once). */
  private readonly invalid = new Map<string, string>();
  private readyValue = true;
  private currentRevision = 0;
  private lastListAt = -Infinity;
  private synced = false;
  private isConnected = false;
  /** `performance.now()` when etcd became unreachable, or null while connected. */
  private disconnectedSince: number | null = null;
  /** Why etcd is unreachable (the last failure), or null while connected. */
  private unreachable: string | null = null;
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Ends the current watch or backoff sleep early (set while one is in progress). */
  private wakeWatch: (() => void) | undefined;
  private readonly syncWaiters: (() => void)[] = [];

  constructor(options: SyncerOptions) {
    this.client = options.client;
    this.log = options.log;
    this.metrics = options.metrics;
    this.onChange = options.onChange ?? (() => {});
    this.onUpdates = options.onUpdates ?? (() => {});
    this.gracePeriodMs = options.gracePeriodMs ?? 30_000;
    this.backoffInitialMs = options.backoffInitialMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 5_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.pageSize = options.pageSize ?? 5_000;
  }

  /** Keys of the model currently held (valid or invalid). */
  get keyCount(): number {
    return this.revisions.size;
  }
  /** The etcd revision the view reflects (0 before the first list). */
  get revision(): number {
    return this.currentRevision;
  }
  /** True once the first full list has been applied. */
  get inSync(): boolean {
    return this.synced;
  }
  /** `/calico/v1/Ready` is absent or `true`. */
  get datastoreReady(): boolean {
    return this.readyValue;
  }
  get connected(): boolean {
    return this.isConnected;
  }
  /** Why etcd is unreachable (the last failure's reason), or null while connected. */
  get unreachableReason(): string | null {
    return this.unreachable;
  }
  /** Keys whose values are invalid, with the reason. */
  get invalidKeys(): ReadonlyMap<string, string> {
    return this.invalid;
  }

  /** Connected, or disconnected for less than the grace period. */
  healthy(now = performance.now()): boolean {
    if (this.isConnected) return true;
    if (this.disconnectedSince === null) return false;
    return now - this.disconnectedSince < this.gracePeriodMs;
  }

  /** Starts list-then-watch in the background (watch only, after `listOnce`); returns at once. */
  start(): void {
    if (this.loop) return;
    this.loop = this.run().catch((err: unknown) => {
      this.log.fatal({ err }, 'syncer loop crashed');
      throw err;
    });
  }

  /** One full list and no watch (`--once`). Rejects when etcd cannot be listed. */
  async listOnce(): Promise<void> {
    await this.list('start');
  }

  /** Resolves once the first full list is applied. */
  waitForInSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeWatch?.();
    await this.loop?.catch(() => {});
  }

  // -------------------------------------------------------------------------------------------

  private async run(): Promise<void> {
    let needList = !this.synced;
    let reason: ResyncReason = 'start';
    let failures = 0;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list(reason);
          needList = false;
          this.markConnected();
        }
        const outcome = await this.watchFrom(this.currentRevision + 1, () => (failures = 0));
        if (this.stopped) return;
        if (outcome.kind === 'canceled') {
          // etcd canceled our watch, typically because the revision was compacted: an event
          // stream cannot be resumed, so re-list now and diff (no retry ladder).
          this.log.warn({ revision: this.currentRevision, reason: outcome.reason }, 'etcd watch canceled; re-listing');
          needList = true;
          reason = 'watch-canceled';
          // Guard against a watch etcd cancels every time: re-list at most every MIN_RELIST_MS.
          if (performance.now() - this.lastListAt >= MIN_RELIST_MS) continue;
        } else {
          this.markDisconnected(outcome.reason);
        }
      } catch (err) {
        this.markDisconnected(err instanceof Error ? err.message : String(err));
        // A list that failed part-way left the view untouched; try again.
        if (!this.synced) needList = true;
      }
      failures += 1;
      const cap = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(failures - 1, 16));
      await this.backoff(this.backoffInitialMs / 2 + Math.random() * (cap - this.backoffInitialMs / 2));
    }
  }

  /** Sleeps before reconnecting; `stop()` cuts it short. */
  private backoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const wake = (): void => done();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeWatch = wake;
    }).then(() => {
      this.wakeWatch = undefined;
    });
  }

  private markConnected(): void {
    if (this.isConnected) return;
    const wasDown = this.disconnectedSince !== null;
    this.isConnected = true;
    this.disconnectedSince = null;
    this.unreachable = null;
    this.metrics?.datastoreConnected.set(1);
    if (wasDown) this.log.info({ revision: this.currentRevision }, 'etcd connection restored');
  }

  private markDisconnected(reason: string): void {
    if (this.stopped) return;
    if (this.isConnected || this.disconnectedSince === null) {
      this.disconnectedSince = performance.now();
      this.log.warn({ reason, revision: this.currentRevision }, 'etcd unreachable; keeping the current dataplane');
    }
    this.isConnected = false;
    this.unreachable = reason;
    this.metrics?.datastoreConnected.set(0);
  }

  /**
   * Lists the whole prefix at one revision, page after page (the next page is requested before
   * the current one is decoded), and hands on what changed since the view we hold.
   */
  private async list(reason: ResyncReason): Promise<void> {
    const started = performance.now();
    this.metrics?.resyncs.inc({ reason });
    const firstSync = !this.synced;
    const prefixRange = Range.prefix(V1_PREFIX);
    const fetchPage = (start: Buffer, revision: number | undefined, count: number, keysOnly: boolean) =>
      withTimeout(
        rangeDecoded(this.client, {
          key: start,
          range_end: prefixRange.end,
          limit: count,
          ...(keysOnly ? { keys_only: true } : {}),
          ...(revision !== undefined ? { revision: String(revision) } : {}),
        }),
        this.requestTimeoutMs,
        'etcd list',
      );
    // Pages are bounded by count and, adaptively, by bytes: the next page's count is scaled so
    // that it carries about PAGE_BYTES. A page etcd cannot send (larger than the client's receive
    // limit) is asked for again at half the count, down to one key; a single value that still
    // does not fit is listed by its key alone and treated as invalid.
    let count = this.pageSize;
    const fetchBounded = async (start: Buffer, revision: number | undefined): Promise<{ page: DecodedRange; oversized: boolean }> => {
      for (;;) {
        try {
          return { page: await fetchPage(start, revision, count, false), oversized: false };
        } catch (error) {
          if (!(error instanceof GRPCResourceExhastedError)) throw error;
          if (count === 1) return { page: await fetchPage(start, revision, 1, true), oversized: true };
          count = Math.max(1, Math.floor(count / 2));
        }
      }
    };
    // A failed list must leave the view untouched: a re-list's updates are held until it is whole.
    const held: DatastoreUpdate[] = [];
    /** Keys this list saw; not needed when we hold none that could have vanished (a first list, not a retried one). */
    const listed = this.revisions.size === 0 ? undefined : new Set<string>();
    let readyListed = false;
    let keys = 0;
    let revision: number | undefined;
    let fetched = await fetchBounded(prefixRange.start, undefined);
    for (;;) {
      const { page, oversized } = fetched;
      revision ??= page.revision;
      const pageKeys = page.keys.length;
      const bytes = page.payloadBytes;
      count = bytes > PAGE_BYTES ? Math.max(1, Math.floor((pageKeys * PAGE_BYTES) / bytes)) : Math.min(this.pageSize, Math.max(count, pageKeys) * 2);
      const next = page.more && page.lastKey ? fetchBounded(Buffer.concat([page.lastKey, Buffer.from([0])]), revision) : undefined;
      next?.catch(() => {}); // awaited below; a failure there must not be unhandled meanwhile
      // gRPC writes the request only when the event loop turns; without this the decoding below
      // would hold it back and the page would not be fetched meanwhile (measured: 100k keys with
      // 100 ms of work per page, 3.4–4.6 s → 2.4–2.8 s).
      if (next !== undefined) await new Promise<void>((resolve) => setImmediate(resolve));
      let updates: DatastoreUpdate[] = firstSync ? [] : held;
      for (let i = 0; i < pageKeys; i++) {
        const key = page.keys[i]!;
        keys += 1;
        if (key === READY_KEY) readyListed = true;
        listed?.add(key);
        if (oversized) this.putInvalid(key, page.modRevisions[i]!, parseKey(key), 'value larger than the etcd client accepts in one message', updates);
        else this.putKey(key, page.modRevisions[i]!, page.createRevisions[i]!, page.values[i]!, updates, firstSync);
        // The first list hands its updates on in small batches: decoded values then die young,
        // before a scavenge would copy a whole page of them (GC was a quarter of the list).
        if (firstSync && updates.length >= FIRST_LIST_BATCH) {
          this.onUpdates(updates);
          updates = [];
        }
      }
      if (firstSync && updates.length > 0) this.onUpdates(updates);
      if (next === undefined) break;
      fetched = await next;
    }
    if (this.stopped) return;
    // Keys we hold that the list no longer has were deleted while we were not watching.
    if (listed !== undefined) for (const key of [...this.revisions.keys()]) if (!listed.has(key)) this.deleteKey(key, held);
    if (!readyListed) this.setReady(true);
    if (held.length > 0) this.onUpdates(held);
    const receivedAt = performance.now();
    const advanced = revision! > this.currentRevision;
    this.currentRevision = revision!;
    this.lastListAt = receivedAt;
    this.synced = true;
    this.metrics?.datastoreInSync.set(1);
    this.log.info(
      { reason, revision: this.currentRevision, keys, updates: firstSync ? this.revisions.size : held.length, ms: Math.round(receivedAt - started) },
      'etcd list complete',
    );
    if (firstSync) for (const resolve of this.syncWaiters.splice(0)) resolve();
    this.notify(receivedAt, firstSync || advanced || held.length > 0);
  }

  /**
   * Watches the prefix from `fromRevision` until etcd cancels the watch or the connection drops.
   * Does not use the client's own reconnect (it resumes from the header revision of the create
   * response, which can skip events): we cancel on disconnect and resume ourselves.
   */
  private watchFrom(
    fromRevision: number,
    onConnected: () => void,
  ): Promise<{ kind: 'canceled' | 'disconnected'; reason: string }> {
    return new Promise((resolve) => {
      const watcher = this.client.watch().prefix(V1_PREFIX).startRevision(String(fromRevision)).watcher();
      let settled = false;
      const finish = (kind: 'canceled' | 'disconnected', reason: string): void => {
        if (settled) return;
        settled = true;
        this.wakeWatch = undefined;
        watcher.removeAllListeners();
        watcher.on('error', () => {});
        watcher.on('disconnected', () => {});
        watcher.cancel().catch(() => {});
        resolve({ kind, reason });
      };
      this.wakeWatch = () => finish('disconnected', 'stopping');
      watcher.on('connected', () => {
        onConnected();
        this.markConnected();
      });
      watcher.on('data', (response: IWatchResponse) => this.applyWatchResponse(response));
      watcher.on('error', (err: Error) => finish('canceled', err.message));
      watcher.on('disconnected', (err: Error) => finish('disconnected', err?.message ?? 'disconnected'));
      watcher.on('end', () => finish('disconnected', 'watch ended'));
    });
  }

  private applyWatchResponse(response: IWatchResponse): void {
    const receivedAt = performance.now();
    const updates: DatastoreUpdate[] = [];
    const readyBefore = this.readyValue;
    for (const event of response.events) {
      const key = event.kv.key.toString();
      if (event.type === 'Delete') this.deleteKey(key, updates);
      else this.putKey(key, Number(event.kv.mod_revision), Number(event.kv.create_revision), event.kv.value.toString(), updates, false);
    }
    if (updates.length > 0) this.onUpdates(updates);
    const revision = Number(response.header.revision);
    const advanced = revision > this.currentRevision;
    if (advanced) this.currentRevision = revision;
    this.notify(receivedAt, advanced || updates.length > 0 || readyBefore !== this.readyValue);
  }

  /** Tells the reconciler, when there is anything to tell (a change, or the revision moved). */
  private notify(receivedAt: number, anything: boolean): void {
    if (anything) this.onChange({ revision: this.currentRevision, receivedAt });
  }

  // ------------------------------------------------------------------ per-key bookkeeping

  /**
   * One key's value at `modRevision`: decoded and handed on unless this revision was already
   * seen. `fresh` (the first list): nothing is held yet, so nothing can be unchanged.
   */
  private putKey(key: string, modRevision: number, createRevision: number, value: string, updates: DatastoreUpdate[], fresh: boolean): void {
    if (!fresh && this.revisions.get(key) === modRevision) return;
    const decoded = decodeEntry(key, value);
    if (decoded.ok === 'ignored') return;
    if (decoded.ok === false) {
      this.putInvalid(key, modRevision, decoded.ref, decoded.reason, updates);
      return;
    }
    this.invalid.delete(key);
    const entry = decoded.entry;
    switch (entry.kind) {
      case 'ready':
        this.revisions.set(key, modRevision);
        this.setReady(entry.ready);
        return;
      case 'profileRules':
        this.revisions.set(key, modRevision);
        updates.push({ kind: 'profileRules', profile: entry.profile, rules: entry.rules });
        return;
      case 'profileTags':
        this.revisions.set(key, modRevision);
        updates.push({ kind: 'profileTags', profile: entry.profile, tags: entry.tags });
        return;
      case 'endpoint':
        this.revisions.set(key, modRevision);
        // The create revision says which of two endpoints claiming one address came first.
        updates.push({ kind: 'endpoint', key, input: { ref: entry.ref, endpoint: entry.endpoint, createRevision } });
        return;
      default:
        // Config and pools are not consumed by the agent (configuration comes from flags/env/file).
        return;
    }
  }

  /** A key whose value is unusable: handed on as absent (fail closed), logged and counted once per reason. */
  private putInvalid(key: string, modRevision: number, ref: KeyRef, reason: string, updates: DatastoreUpdate[]): void {
    this.revisions.set(key, modRevision);
    if (this.invalid.get(key) !== reason) {
      this.invalid.set(key, reason);
      this.metrics?.invalidKeys.inc({ kind: invalidKind(ref) });
      this.log.warn({ key, reason }, 'invalid value in etcd; treating as absent');
    }
    const update = absent(key, ref);
    if (update !== undefined) updates.push(update);
  }

  private deleteKey(key: string, updates: DatastoreUpdate[]): void {
    if (!this.revisions.delete(key)) return;
    this.invalid.delete(key);
    const ref = parseKey(key);
    if (ref.kind === 'ready') this.setReady(true);
    const update = absent(key, ref);
    if (update !== undefined) updates.push(update);
  }

  private setReady(ready: boolean): void {
    if (this.readyValue === ready) return;
    this.readyValue = ready;
    this.log.warn({ ready }, ready ? 'datastore Ready; programming resumes' : 'datastore not Ready; programming paused');
  }
}

/** The update saying a key holds nothing usable (deleted or invalid); undefined for keys that are not handed on. */
function absent(key: string, ref: KeyRef): DatastoreUpdate | undefined {
  switch (ref.kind) {
    case 'profileRules':
      return { kind: 'profileRules', profile: ref.profile, rules: undefined };
    case 'profileTags':
      return { kind: 'profileTags', profile: ref.profile, tags: undefined };
    case 'endpoint':
      return { kind: 'endpoint', key, input: undefined };
    default:
      return undefined;
  }
}
