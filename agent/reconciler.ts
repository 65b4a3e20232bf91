/**
 * The reconciler: the only part of the agent that decides what to write to the kernel.
 *
 * Goals (after Felix's iptables `Table` essay):
 * 1. Level-triggered. etcd events only mark the reconciler dirty; each pass compiles the whole
 *    Snapshot (`compile`) and plans each IP family against what the kernel holds
 *    (`planFamily`). Nothing is patched from events, so the same inputs give the same kernel.
 * 2. Write only what changed. Plans carry only changed chains, hook repairs and ipset deltas, so a
 *    second pass over unchanged inputs writes nothing and packet counters survive.
 * 3. Graceful restart. Nothing is written before the syncer's first full list (`inSync`) and
 *    while `/calico/v1/Ready` is not `true`. The first pass reads the kernel and adopts it: an
 *    unchanged datastore means 0 bytes written; stale chains and sets we own are removed. We
 *    never flush a table and never touch a chain or set we do not own (names.ts prefixes).
 * 4. Repair clobbering. The kernel is re-read periodically (`refreshIntervalMs`) and after every
 *    write on a doubling schedule (50 ms, 100 ms, … up to `postWriteCheckMaxMs`); any drift is
 *    planned and rewritten like any other difference.
 * 5. Coalesce bursts. Passes are at least `minApplyIntervalMs` apart; events arriving meanwhile
 *    are folded into the next pass.
 *
 * Ordering within a pass (both families), so no rule ever references a missing set and no set
 * is destroyed while referenced:
 *   ipset creates/updates → ip[6]tables-restore --noflush per table (changed chains + hook
 *   repairs) → chain-deletion transaction per table → ipset destroys → per-endpoint plumbing.
 *
 * Failure policy: a failed write invalidates the cached kernel state and is retried with
 * backoff (10 ms, doubling, capped), re-reading the kernel first. After `maxAttempts` failures
 * one last pass re-reads and rewrites every chain we own whole (never flushing built-ins). If
 * that fails too, the pass rejects with `ReconcilerFatalError`: the daemon exits non-zero and
 * its supervisor restarts it; the rules already in the kernel stay (fail closed). A `terminal`
 * CommandError (tool missing, not permitted) skips straight to fatal.
 *
 * Latency: each pass records the etcd revision it reflects and, for passes carrying events,
 * logs `etcdToKernelMs` measured from the receipt of the oldest event it covers.
 */
import { performance } from 'node:perf_hooks';
import { Compiler, isEmptyPlan, kernelStateOf, planFamily } from '../compiler/index.js';
import type {
  CompilerConfig,
  DataplaneSpec,
  EndpointInput,
  FamilyPlan,
  FamilySpec,
  IpFamily,
  KernelFamilyState,
  ProfileInput,
  Snapshot,
  SnapshotGenerations,
  TableName,
} from '../compiler/types.js';
import { endpointKey, type EndpointRef } from '../src/model/index.js';
import { CommandError } from './dataplane/command-runner.js';
import { desiredPlumbing, type Plumbing } from './dataplane/plumbing.js';
import type { FamilyDataplane } from './dataplane/types.js';
import type { Logger } from './logger.js';
import type { AgentMetrics } from './metrics.js';

/** The inputs the reconciler reads at the start of each pass (the Syncer implements it). */
export interface SnapshotSource {
  readonly inSync: boolean;
  readonly datastoreReady: boolean;
  readonly revision: number;
  readonly profiles: ReadonlyMap<string, ProfileInput>;
  readonly endpoints: ReadonlyMap<string, EndpointInput>;
  /** Change counters of the two Maps, when the source keeps that contract (Snapshot.generations). */
  readonly generations?: SnapshotGenerations;
}

export type EndpointStatusValue = 'up' | 'down' | 'error';

export interface EndpointStatus {
  ref: EndpointRef;
  status: EndpointStatusValue;
}

/** The outcome of one successful pass. */
export interface ApplyReport {
  reason: string;
  /** The etcd revision the kernel now reflects. */
  revision: number;
  restoreCalls: number;
  bytesWritten: number;
  durationMs: number;
  /** From receipt of the oldest etcd event this pass covers; undefined for passes without events. */
  etcdToKernelMs: number | undefined;
  /** True when a read-back found our kernel state changed by someone else. */
  driftRepaired: boolean;
  /** Status of every local endpoint, by etcd key. */
  endpointStatuses: ReadonlyMap<string, EndpointStatus>;
}

export class ReconcilerFatalError extends Error {
  override readonly name = 'ReconcilerFatalError';
  constructor(message: string, override readonly cause: unknown) {
    super(message);
  }
}

export interface ReconcilerOptions {
  hostname: string;
  compilerConfig: CompilerConfig;
  source: SnapshotSource;
  /** One per programmed IP family. */
  dataplanes: readonly FamilyDataplane[];
  /** Per-endpoint routes and sysctls; omitted in tests that cover only iptables/ipsets. */
  plumbing?: Plumbing;
  log: Logger;
  metrics?: AgentMetrics;
  minApplyIntervalMs?: number;
  /** Periodic full read-back; 0 disables. Default 60 s. */
  refreshIntervalMs?: number;
  postWriteCheckMinMs?: number;
  postWriteCheckMaxMs?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Failed attempts before the whole-rewrite pass (default 5). */
  maxAttempts?: number;
  /** Retry interval for endpoints whose interface is missing or down (default 1 s). */
  plumbingRetryMs?: number;
  /** Liveness: the loop must tick at least this often (default 90 s). */
  watchdogTimeoutMs?: number;
  /** Called after every successful pass (status reporting). */
  onApplied?: (report: ApplyReport) => void;
}

const TABLES: readonly TableName[] = ['raw', 'filter'];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function specOf(spec: DataplaneSpec, family: IpFamily): FamilySpec {
  return family === 4 ? spec.v4 : spec.v6;
}

/** The kernel state with every one of our chains' hashes forgotten: planning against it rewrites them all. */
function forgetChainHashes(state: KernelFamilyState): KernelFamilyState {
  const forget = (table: TableName) => ({
    chains: new Map([...state.tables[table].chains.keys()].map((name) => [name, [null]] as const)),
    builtins: state.tables[table].builtins,
  });
  return { tables: { filter: forget('filter'), raw: forget('raw') }, ipsets: state.ipsets };
}

function countRules(spec: FamilySpec): number {
  let rules = 0;
  for (const table of TABLES) for (const chain of spec.tables[table].chains.values()) rules += chain.rules.length;
  return rules;
}

export class Reconciler {
  private readonly opts: Required<
    Omit<ReconcilerOptions, 'plumbing' | 'metrics' | 'onApplied'>
  > & Pick<ReconcilerOptions, 'plumbing' | 'metrics' | 'onApplied'>;
  private readonly log: Logger;
  /** Our own memo tables: a snapshot's objects are replaced, never mutated, so they stay valid. */
  private readonly compiler = new Compiler();

  /** What we believe each family's kernel holds; absent = must read before planning. */
  private readonly cache = new Map<IpFamily, KernelFamilyState>();
  /** Receipt time (`performance.now()`) of the oldest etcd event not yet in the kernel. */
  private pendingSince: number | null = null;
  private dirty = true;
  private lastApplyEndedAt = -Infinity;
  private lastReadAt = -Infinity;
  private postWriteCheckAt: number | null = null;
  private postWriteInterval: number;
  private plumbingDirty = true;
  private plumbingRetryAt: number | null = null;
  private globalPlumbingDone = false;
  /** The local endpoints plumbing last ran for (objects are replaced on change, so identity suffices). */
  private lastLocalEndpoints: ReadonlyMap<string, EndpointInput> = new Map();
  private appliedRevisionValue = 0;
  private firstApplyAt: number | null = null;
  private readonly startedAt = performance.now();
  private lastTick = performance.now();
  private fatalError: Error | null = null;
  private lastErrorText: string | null = null;
  private pausedLogged = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private lastStatuses: ReadonlyMap<string, EndpointStatus> = new Map();

  constructor(options: ReconcilerOptions) {
    this.opts = {
      minApplyIntervalMs: 30,
      refreshIntervalMs: 60_000,
      postWriteCheckMinMs: 50,
      postWriteCheckMaxMs: 10_000,
      retryInitialMs: 10,
      retryMaxMs: 1_000,
      maxAttempts: 5,
      plumbingRetryMs: 1_000,
      watchdogTimeoutMs: 90_000,
      ...options,
    };
    this.log = options.log.child({ component: 'reconciler' });
    this.postWriteInterval = this.opts.postWriteCheckMinMs;
  }

  /** The etcd revision the kernel reflects (0 before the first pass). */
  get appliedRevision(): number {
    return this.appliedRevisionValue;
  }
  /** True after the first complete pass following in-sync. */
  get applied(): boolean {
    return this.firstApplyAt !== null;
  }
  get lastError(): string | null {
    return this.lastErrorText;
  }
  get fatal(): Error | null {
    return this.fatalError;
  }
  get endpointStatuses(): ReadonlyMap<string, EndpointStatus> {
    return this.lastStatuses;
  }

  /** Liveness: the loop ticked recently and has not given up. */
  isLive(now = performance.now()): boolean {
    return this.fatalError === null && now - this.lastTick < this.opts.watchdogTimeoutMs;
  }

  /** Marks the snapshot dirty; `change` carries the etcd receipt time for latency accounting. */
  markDirty(change?: { receivedAt: number }): void {
    this.dirty = true;
    if (change && this.pendingSince === null) this.pendingSince = change.receivedAt;
    this.wake?.();
  }

  /** Runs the daemon loop in the background. `onFatal` is called once if the loop gives up. */
  start(onFatal: (error: Error) => void): void {
    if (this.loop) return;
    this.loop = this.run().catch((error: unknown) => {
      const err = error instanceof Error ? error : new Error(String(error));
      this.fatalError = err;
      onFatal(err);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  /**
   * One pass with retries: compile, plan against the kernel, write the differences. Resolves
   * with the report, or null when not yet allowed to program (not in sync, Ready false).
   * Rejects with ReconcilerFatalError when even the whole rewrite fails.
   */
  async reconcileOnce(reason = 'once'): Promise<ApplyReport | null> {
    if (!this.mayProgram()) return null;
    let delay = this.opts.retryInitialMs;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.opts.maxAttempts; attempt++) {
      try {
        return await this.applyPass(attempt === 1 ? reason : `${reason}-retry`, { forceRead: attempt > 1, rewriteAll: false });
      } catch (error) {
        lastError = error;
        this.cache.clear();
        this.recordFailure(error, attempt);
        if (error instanceof CommandError && error.terminal) {
          throw new ReconcilerFatalError(`dataplane write cannot succeed: ${error.message}`, error);
        }
        if (attempt < this.opts.maxAttempts) {
          await sleep(delay);
          delay = Math.min(delay * 2, this.opts.retryMaxMs);
        }
      }
    }
    this.log.error({ attempts: this.opts.maxAttempts }, 'repeated dataplane failures; rewriting all our chains whole');
    try {
      return await this.applyPass(`${reason}-full-rewrite`, { forceRead: true, rewriteAll: true });
    } catch (error) {
      this.cache.clear();
      this.recordFailure(error, this.opts.maxAttempts + 1);
      const message = error instanceof Error ? error.message : String(error);
      throw new ReconcilerFatalError(
        `dataplane still failing after ${this.opts.maxAttempts} attempts and a full rewrite (first failure: ${
          lastError instanceof Error ? lastError.message : String(lastError)
        }; last: ${message})`,
        error,
      );
    }
  }

  /** The plan against the current kernel, per family, without writing anything (`--dry-run`). */
  async plan(): Promise<{ family: IpFamily; plan: FamilyPlan }[]> {
    const spec = this.compiler.compile(this.snapshot());
    const plans: { family: IpFamily; plan: FamilyPlan }[] = [];
    for (const dataplane of this.opts.dataplanes) {
      const actual = await dataplane.read();
      plans.push({ family: dataplane.family, plan: planFamily(specOf(spec, dataplane.family), actual) });
    }
    return plans;
  }

  // -------------------------------------------------------------------------------------------

  private mayProgram(): boolean {
    const { source } = this.opts;
    if (!source.inSync) return false;
    if (!source.datastoreReady) {
      if (!this.pausedLogged) this.log.warn('datastore Ready is not true; not programming the dataplane');
      this.pausedLogged = true;
      return false;
    }
    this.pausedLogged = false;
    return true;
  }

  private snapshot(): Snapshot {
    const { source } = this.opts;
    return {
      hostname: this.opts.hostname,
      profiles: source.profiles,
      endpoints: source.endpoints,
      config: this.opts.compilerConfig,
      generations: source.generations,
    };
  }

  private recordFailure(error: unknown, attempt: number): void {
    const stage = error instanceof CommandError ? error.argv[0] ?? 'command' : 'other';
    this.opts.metrics?.applyFailures.inc({ stage });
    this.lastErrorText = error instanceof Error ? error.message : String(error);
    const input = error instanceof CommandError ? error.input : undefined;
    this.log.warn({ err: error, attempt, input }, 'dataplane write failed; will re-read the kernel and retry');
  }

  private nextReadDueAt(): number {
    const periodic = this.opts.refreshIntervalMs > 0 ? this.lastReadAt + this.opts.refreshIntervalMs : Infinity;
    return Math.min(periodic, this.postWriteCheckAt ?? Infinity);
  }

  /** One attempt: read (when due), plan, write in order. Throws on the first failed write. */
  private async applyPass(reason: string, mode: { forceRead: boolean; rewriteAll: boolean }): Promise<ApplyReport> {
    const started = performance.now();
    const covering = this.pendingSince;
    const wasDirty = this.dirty;
    this.pendingSince = null;
    this.dirty = false;
    const revision = this.opts.source.revision;
    try {
      const spec = this.compiler.compile(this.snapshot());
      for (const diagnostic of spec.diagnostics) this.log.debug({ diagnostic }, 'compiler diagnostic');

      const readDue = mode.forceRead || started >= this.nextReadDueAt();
      let readBack = false;
      const planned: { dataplane: FamilyDataplane; desired: FamilySpec; plan: FamilyPlan }[] = [];
      for (const dataplane of this.opts.dataplanes) {
        let actual = this.cache.get(dataplane.family);
        if (!actual || readDue) {
          actual = await this.read(dataplane);
          readBack = true;
        }
        if (mode.rewriteAll) actual = forgetChainHashes(actual);
        const desired = specOf(spec, dataplane.family);
        planned.push({ dataplane, desired, plan: planFamily(desired, actual) });
      }
      if (readBack) {
        this.lastReadAt = performance.now();
        if (this.postWriteCheckAt !== null && started >= this.postWriteCheckAt) {
          this.postWriteInterval *= 2;
          this.postWriteCheckAt =
            this.postWriteInterval <= this.opts.postWriteCheckMaxMs ? this.lastReadAt + this.postWriteInterval : null;
        }
      }

      const writes = { calls: 0, bytes: 0 };
      const write = async (dataplane: FamilyDataplane, tool: 'ipset' | 'iptables-restore', table: TableName | undefined, input: string) => {
        if (input.trim() === '') return;
        const bytes = Buffer.byteLength(input);
        const labels = { tool, family: `v${dataplane.family}`, table: table ?? '' };
        this.log.debug({ ...labels, input }, 'writing restore input');
        try {
          if (tool === 'ipset') await dataplane.applyIpsets(input);
          else await dataplane.applyIptables(table!, input);
        } catch (error) {
          this.opts.metrics?.restoreCalls.inc({ ...labels, result: 'error' });
          this.opts.metrics?.restoreBytes.observe({ ...labels, result: 'error' }, bytes);
          throw error;
        }
        this.opts.metrics?.restoreCalls.inc({ ...labels, result: 'ok' });
        this.opts.metrics?.restoreBytes.observe({ ...labels, result: 'ok' }, bytes);
        writes.calls += 1;
        writes.bytes += bytes;
      };

      for (const { dataplane, plan } of planned) await write(dataplane, 'ipset', undefined, plan.ipsetUpdates);
      for (const { dataplane, plan } of planned) {
        for (const table of TABLES) await write(dataplane, 'iptables-restore', table, plan.iptablesUpdates[table]);
      }
      for (const { dataplane, plan } of planned) {
        for (const table of TABLES) await write(dataplane, 'iptables-restore', table, plan.iptablesDeletions[table]);
      }
      for (const { dataplane, plan } of planned) await write(dataplane, 'ipset', undefined, plan.ipsetDeletions);

      for (const { dataplane, desired } of planned) this.cache.set(dataplane.family, kernelStateOf(desired));
      const wrote = planned.some(({ plan }) => !isEmptyPlan(plan));
      const driftRepaired = readBack && !wasDirty && this.firstApplyAt !== null && wrote;
      if (wrote) {
        this.postWriteInterval = this.opts.postWriteCheckMinMs;
        this.postWriteCheckAt = performance.now() + this.postWriteInterval;
      }
      if (driftRepaired) {
        for (const { dataplane, plan } of planned) {
          if (!isEmptyPlan(plan)) this.opts.metrics?.driftRepairs.inc({ family: `v${dataplane.family}` });
        }
        this.log.warn({ bytes: writes.bytes }, 'kernel state had drifted from ours (changed by another process); repaired');
      }
      const kernelDoneAt = performance.now();

      const statuses = await this.syncPlumbing(spec, readBack);

      this.appliedRevisionValue = revision;
      const durationMs = performance.now() - started;
      const etcdToKernelMs = covering === null ? undefined : kernelDoneAt - covering;
      const report: ApplyReport = {
        reason,
        revision,
        restoreCalls: writes.calls,
        bytesWritten: writes.bytes,
        durationMs,
        etcdToKernelMs,
        driftRepaired,
        endpointStatuses: statuses,
      };
      this.recordSuccess(report, spec);
      return report;
    } catch (error) {
      // Keep the oldest unapplied event for latency accounting, and stay dirty.
      if (covering !== null) this.pendingSince = covering;
      this.dirty = true;
      throw error;
    }
  }

  private async read(dataplane: FamilyDataplane): Promise<KernelFamilyState> {
    const family = `v${dataplane.family}`;
    try {
      const state = await dataplane.read();
      this.opts.metrics?.readbackCalls.inc({ tool: 'save', family, result: 'ok' });
      return state;
    } catch (error) {
      this.opts.metrics?.readbackCalls.inc({ tool: 'save', family, result: 'error' });
      throw error;
    }
  }

  /**
   * Routes, proxy ARP/NDP and sysctls of local endpoints, when they changed, on read-back passes
   * and while some interface is still missing. Failures here do not fail the pass: they show as
   * `error` statuses and are retried.
   */
  private async syncPlumbing(spec: DataplaneSpec, readBack: boolean): Promise<ReadonlyMap<string, EndpointStatus>> {
    const local = spec.localEndpoints;
    const previous = this.lastLocalEndpoints;
    if (local.size !== previous.size || [...local].some(([name, input]) => previous.get(name)?.endpoint !== input.endpoint)) {
      this.plumbingDirty = true;
    }
    const retryDue = this.plumbingRetryAt !== null && performance.now() >= this.plumbingRetryAt;
    const plumbing = this.opts.plumbing;
    if (!plumbing || !(this.plumbingDirty || readBack || retryDue)) return this.statusesFor(local, this.lastStatuses);

    const skipped = new Map<string, string>();
    let failure: string | null = null;
    try {
      if (!this.globalPlumbingDone) {
        await plumbing.applyGlobal();
        this.globalPlumbingDone = true;
      }
      const report = await plumbing.reconcile(desiredPlumbing(local));
      for (const { name, reason } of report.skipped) skipped.set(name, reason);
      if (report.ipChanges.length > 0 || report.sysctlWrites.length > 0) {
        this.log.info({ ipChanges: report.ipChanges.length, sysctls: report.sysctlWrites.length }, 'endpoint plumbing updated');
      }
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
      this.opts.metrics?.applyFailures.inc({ stage: 'plumbing' });
      this.log.warn({ err: error }, 'endpoint plumbing failed; will retry');
    }
    this.lastLocalEndpoints = local;
    this.plumbingDirty = failure !== null;
    this.plumbingRetryAt = failure !== null || skipped.size > 0 ? performance.now() + this.opts.plumbingRetryMs : null;

    const statuses = new Map<string, EndpointStatus>();
    for (const [name, { ref, endpoint }] of local) {
      let status: EndpointStatusValue = 'up';
      if (endpoint.state !== 'active' || skipped.has(name)) status = 'down';
      else if (failure !== null) status = 'error';
      statuses.set(endpointKey(ref), { ref, status });
    }
    return statuses;
  }

  /** Statuses when plumbing did not run: previous results for known endpoints, state for new ones. */
  private statusesFor(
    local: ReadonlyMap<string, EndpointInput>,
    previous: ReadonlyMap<string, EndpointStatus>,
  ): ReadonlyMap<string, EndpointStatus> {
    const statuses = new Map<string, EndpointStatus>();
    for (const { ref, endpoint } of local.values()) {
      const key = endpointKey(ref);
      const status: EndpointStatusValue =
        endpoint.state !== 'active' ? 'down' : this.opts.plumbing ? previous.get(key)?.status ?? 'up' : 'up';
      statuses.set(key, { ref, status });
    }
    return statuses;
  }

  private recordSuccess(report: ApplyReport, spec: DataplaneSpec): void {
    const { metrics } = this.opts;
    this.lastStatuses = report.endpointStatuses;
    this.lastErrorText = null;
    if (this.firstApplyAt === null) {
      this.firstApplyAt = performance.now();
      const seconds = (this.firstApplyAt - this.startedAt) / 1000;
      metrics?.initialResyncSeconds.set(seconds);
      this.log.info({ revision: report.revision, seconds: Number(seconds.toFixed(3)), bytes: report.bytesWritten }, 'initial dataplane sync complete');
    }
    metrics?.appliedRevision.set(report.revision);
    metrics?.applySeconds.observe({ reason: report.reason }, report.durationMs / 1000);
    if (report.etcdToKernelMs !== undefined) metrics?.datastoreToDataplaneSeconds.observe(report.etcdToKernelMs / 1000);
    metrics?.endpointsProgrammed.set(spec.localEndpoints.size);
    for (const dataplane of this.opts.dataplanes) {
      metrics?.rulesProgrammed.set({ family: `v${dataplane.family}` }, countRules(specOf(spec, dataplane.family)));
    }
    const fields = {
      reason: report.reason,
      revision: report.revision,
      etcdToKernelMs: report.etcdToKernelMs === undefined ? undefined : Number(report.etcdToKernelMs.toFixed(2)),
      restoreCalls: report.restoreCalls,
      bytes: report.bytesWritten,
      ms: Number(report.durationMs.toFixed(2)),
    };
    if (report.restoreCalls > 0 || report.etcdToKernelMs !== undefined) this.log.info(fields, 'dataplane applied');
    else this.log.debug(fields, 'dataplane checked');
    this.opts.onApplied?.(report);
  }

  /** The daemon loop: wait until something is due, run a pass, repeat. */
  private async run(): Promise<void> {
    const tickMs = Math.min(10_000, this.opts.watchdogTimeoutMs / 3);
    const waitFor = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(ms, tickMs));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      }).then(() => {
        this.wake = undefined;
      });
    while (!this.stopped) {
      this.lastTick = performance.now();
      if (!this.mayProgram()) {
        // Not allowed to write (not in sync, or Ready false): the syncer marks us dirty on change.
        this.dirty = false;
        await waitFor(Infinity);
        continue;
      }
      const now = performance.now();
      const dirtyDueAt = this.dirty ? this.lastApplyEndedAt + this.opts.minApplyIntervalMs : Infinity;
      const dueAt = Math.min(
        dirtyDueAt,
        this.cache.size > 0 ? this.nextReadDueAt() : Infinity,
        this.plumbingRetryAt ?? Infinity,
      );
      if (dueAt > now) {
        await waitFor(dueAt - now);
        continue;
      }
      const reason = this.dirty ? 'datastore' : this.plumbingRetryAt !== null && this.plumbingRetryAt <= now ? 'plumbing-retry' : 'read-back';
      await this.reconcileOnce(reason);
      this.lastApplyEndedAt = performance.now();
    }
  }
}
