/**
 * The etcd syncer: keeps an in-memory view of `/calico/v1/` (profiles, endpoints, Ready) by
 * list-then-watch, and tells the reconciler when the view changed.
 *
 *   list /calico/v1/ (paged, one revision R) ──▶ watch from R+1 ──▶ events update the view
 *        ▲                                            │
 *        └──── watch canceled by etcd (compaction) ───┘  re-list at once, diff old vs new view
 *                                                     │
 *              connection lost ──▶ keep the view, resume the watch from the last revision+1
 *                                  with jittered backoff 100 ms → 5 s; unhealthy after a grace
 *
 * Invariants:
 * - `inSync` becomes true only after the first complete list; until then the reconciler writes
 *   nothing (graceful restart).
 * - The view always reflects exactly one etcd revision (`revision`): a whole list, or a whole
 *   watch response applied at once.
 * - An invalid value is treated as absent (fail closed for what references it), logged once per
 *   key and reason, and counted in `calico_agent_invalid_keys_total{kind}`; it never stops the
 *   syncer.
 * - `/calico/v1/Ready` present with any value but `true` sets `datastoreReady` false (the
 *   reconciler pauses programming); absent means ready.
 * - Keys outside the model (config, pools, other hosts' junk) are ignored.
 * - `generations` counts mutations of the profiles and endpoints Maps (bumped in setEntry /
 *   removeEntry, the only places that mutate them), so the compiler can skip an unchanged Map
 *   (Snapshot.generations in compiler/types.ts).
 */
import { performance } from 'node:perf_hooks';
import { Range, type Etcd3, type IWatchResponse } from 'etcd3';
import type { EndpointInput, ProfileInput, SnapshotGenerations } from '../compiler/types.js';
import { V1_PREFIX, decodeEntry, parseKey, type Entry, type KeyRef } from '../src/model/index.js';
import type { Logger } from './logger.js';
import type { AgentMetrics } from './metrics.js';

/** What changed, for latency accounting: the etcd revision and when we received it. */
export interface SyncerChange {
  revision: number;
  /** `performance.now()` at receipt of the etcd response that carried the change. */
  receivedAt: number;
}

export interface SyncerOptions {
  client: Etcd3;
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

  /** Raw values of every key we model, to diff a re-list against the current view. */
  private readonly raw = new Map<string, string>();
  private readonly profileMap = new Map<string, ProfileInput>();
  private readonly endpointMap = new Map<string, EndpointInput>();
  /** Bumped on every mutation of the Map of the same name. */
  private profileGeneration = 0;
  private endpointGeneration = 0;
  /** Keys currently invalid → reason (each key+reason is logged and counted once). */
  private readonly invalid = new Map<string, string>();
  private readyValue = true;
  private currentRevision = 0;
  private lastListAt = -Infinity;
  private synced = false;
  private isConnected = false;
  /** `performance.now()` when etcd became unreachable, or null while connected. */
  private disconnectedSince: number | null = null;
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
    this.gracePeriodMs = options.gracePeriodMs ?? 30_000;
    this.backoffInitialMs = options.backoffInitialMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 5_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.pageSize = options.pageSize ?? 5_000;
  }

  /** Every profile with valid rules and/or tags; `rules` absent when missing or invalid. */
  get profiles(): ReadonlyMap<string, ProfileInput> {
    return this.profileMap;
  }
  /** Every valid endpoint of every host, by etcd key. */
  get endpoints(): ReadonlyMap<string, EndpointInput> {
    return this.endpointMap;
  }
  /** Change counters of `profiles` and `endpoints` (see the header). */
  get generations(): SnapshotGenerations {
    return { profiles: this.profileGeneration, endpoints: this.endpointGeneration };
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
    this.metrics?.datastoreConnected.set(0);
  }

  /** Lists the whole prefix at one revision (paged) and replaces the view by diffing against it. */
  private async list(reason: ResyncReason): Promise<void> {
    const started = performance.now();
    this.metrics?.resyncs.inc({ reason });
    const listed = new Map<string, string>();
    const prefixRange = Range.prefix(V1_PREFIX);
    let revision: string | undefined;
    let start: Buffer = prefixRange.start;
    for (;;) {
      let builder = this.client.getAll().inRange({ start, end: prefixRange.end }).limit(this.pageSize);
      if (revision !== undefined) builder = builder.revision(revision);
      const page = await withTimeout(builder.exec(), this.requestTimeoutMs, 'etcd list');
      revision ??= page.header.revision;
      for (const kv of page.kvs) listed.set(kv.key.toString(), kv.value.toString());
      const last = page.kvs[page.kvs.length - 1];
      if (!page.more || !last) break;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
    if (this.stopped) return;
    const receivedAt = performance.now();
    let changed = false;
    for (const key of [...this.raw.keys()]) {
      if (!listed.has(key)) changed = this.applyDelete(key) || changed;
    }
    for (const [key, value] of listed) changed = this.applyPut(key, value) || changed;
    const advanced = Number(revision) > this.currentRevision;
    this.currentRevision = Number(revision);
    this.lastListAt = receivedAt;
    const firstSync = !this.synced;
    this.synced = true;
    this.metrics?.datastoreInSync.set(1);
    this.log.info(
      { reason, revision: this.currentRevision, keys: listed.size, changed, ms: Math.round(receivedAt - started) },
      'etcd list complete',
    );
    if (firstSync) for (const resolve of this.syncWaiters.splice(0)) resolve();
    if (changed || firstSync || advanced) this.notify(receivedAt);
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
    let changed = false;
    for (const event of response.events) {
      const key = event.kv.key.toString();
      changed = (event.type === 'Delete' ? this.applyDelete(key) : this.applyPut(key, event.kv.value.toString())) || changed;
    }
    const revision = Number(response.header.revision);
    const advanced = revision > this.currentRevision;
    if (advanced) this.currentRevision = revision;
    if (changed || advanced) this.notify(receivedAt);
  }

  private notify(receivedAt: number): void {
    this.onChange({ revision: this.currentRevision, receivedAt });
  }

  // ------------------------------------------------------------------ view maintenance

  /** Applies one key's new value; returns whether the view changed. */
  private applyPut(key: string, value: string): boolean {
    if (this.raw.get(key) === value) return false;
    const decoded = decodeEntry(key, value);
    if (decoded.ok === 'ignored') return false;
    this.raw.set(key, value);
    if (decoded.ok === false) {
      if (this.invalid.get(key) !== decoded.reason) {
        this.invalid.set(key, decoded.reason);
        this.metrics?.invalidKeys.inc({ kind: invalidKind(decoded.ref) });
        this.log.warn({ key, reason: decoded.reason }, 'invalid value in etcd; treating as absent');
      }
      return this.removeEntry(key, decoded.ref);
    }
    this.invalid.delete(key);
    return this.setEntry(key, decoded.entry);
  }

  private applyDelete(key: string): boolean {
    if (!this.raw.delete(key)) return false;
    this.invalid.delete(key);
    return this.removeEntry(key, parseKey(key));
  }

  private setEntry(key: string, entry: Entry): boolean {
    switch (entry.kind) {
      case 'ready': {
        const changed = this.readyValue !== entry.ready;
        this.readyValue = entry.ready;
        if (changed) this.log.warn({ ready: entry.ready }, entry.ready ? 'datastore Ready; programming resumes' : 'datastore not Ready; programming paused');
        return changed;
      }
      case 'profileRules':
        this.profileMap.set(entry.profile, { ...this.profileMap.get(entry.profile), rules: entry.rules });
        this.profileGeneration++;
        return true;
      case 'profileTags':
        this.profileMap.set(entry.profile, { ...this.profileMap.get(entry.profile), tags: entry.tags });
        this.profileGeneration++;
        return true;
      case 'endpoint':
        this.endpointMap.set(key, { ref: entry.ref, endpoint: entry.endpoint });
        this.endpointGeneration++;
        return true;
      default:
        // Config and pools are not consumed by the agent (configuration comes from flags/env/file).
        return false;
    }
  }

  private removeEntry(key: string, ref: KeyRef): boolean {
    switch (ref.kind) {
      case 'ready': {
        const changed = !this.readyValue;
        this.readyValue = true;
        return changed;
      }
      case 'profileRules':
      case 'profileTags': {
        const existing = this.profileMap.get(ref.profile);
        if (!existing) return false;
        const rest: ProfileInput =
          ref.kind === 'profileRules' ? { tags: existing.tags } : { rules: existing.rules };
        if (ref.kind === 'profileRules' ? existing.rules === undefined : existing.tags === undefined) return false;
        if (rest.rules === undefined && rest.tags === undefined) this.profileMap.delete(ref.profile);
        else this.profileMap.set(ref.profile, rest);
        this.profileGeneration++;
        return true;
      }
      case 'endpoint': {
        const removed = this.endpointMap.delete(key);
        if (removed) this.endpointGeneration++;
        return removed;
      }
      default:
        return false;
    }
  }
}
