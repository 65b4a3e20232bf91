/**
 * The reconciler: the only part of the agent that decides what to write to the kernel.
 *
 * Goals (after Felix's iptables `Table` essay):
 * 1. Per-key, not per-snapshot. The syncer feeds etcd's per-key updates into the calculation
 *    graph (compiler/calc-graph.ts) as they arrive and marks the reconciler dirty; a pass takes
 *    the graph's changes (dirty chains, sets, members) and hands them to the writers of each
 *    family (dataplane/table-writer.ts, dataplane/ipset-writer.ts), which compare only those
 *    against their cached view of the kernel. A pass costs what changed, not the cluster.
 * 2. Write only what changed. Writers emit only chains whose hashes differ, hook repairs and
 *    ipset member deltas, so a pass over unchanged inputs writes nothing and counters survive.
 * 3. Graceful restart. Nothing is written before the syncer's first full list (`inSync`) and
 *    while `/calico/v1/Ready` is not `true`. The first pass reads the kernel and adopts it: an
 *    unchanged datastore means 0 bytes written; stale chains and sets we own are removed. We
 *    never flush a table and never touch a chain or set we do not own (names.ts prefixes).
 * 4. Repair clobbering without delaying datastore changes. Writers plan against their cached
 *    kernel state (what our last successful pass left); a pass reads the kernel itself only when a
 *    cache is missing (first pass, after a failure) or a retry/whole rewrite forces it, and the
 *    writers then compare everything (`adopt`). Checking the kernel is the job of VERIFICATION
 *    READS that run in the background while the loop keeps serving passes, when
 *    verification-schedule.ts says (periodic, and after writes on Felix's adaptive schedule).
 * 5. Coalesce bursts. Passes start at least `minApplyIntervalMs` apart (start to start, so a change
 *    arriving after a long pass is not held back further; scheduler.ts); events arriving
 *    meanwhile are folded into the next pass.
 *
 * Verification reads (invariants):
 * - At most one is in flight; it is started only by the loop between passes, and its result is
 *   judged only by the loop between passes, so the cache is only ever changed between passes.
 * - A read is judged per family and component (filter, raw, ipsets). A component is trusted only
 *   when none of our writes to it started between the read's start and its judgement (write
 *   counters per component); for an untrusted component the cache stands in. A read with any
 *   untrusted component is rechecked later, and eventually inside a pass (reason `read-back`,
 *   the kernel read first, under the failure policy below; verification-schedule.ts).
 * - Our first write while a read is in flight aborts it (its `*-save` processes are killed): it
 *   would be untrusted anyway, and a whole-ruleset save slows a concurrent restore several-fold.
 *   The check is redone later; a read started when the kernel has gone unverified for a whole
 *   refresh interval is not aborted (it is judged as any overlapped read).
 * - Drift: when the trusted view differs from a writer's cache (`verify`), the view replaces that
 *   part of the cache, its differences are marked dirty, and one `read-back` pass writes them,
 *   counted in drift_repairs_total. A read showing no drift writes nothing; with endpoint
 *   plumbing configured it triggers a `read-back` pass that re-checks routes and sysctls only.
 * - `stop()` lets an in-flight read finish (its result is ignored), so no process outlives us.
 *
 * Ordering within a pass, per family (the two families are written side by side), so no rule
 * ever references a missing set and no set is destroyed while referenced:
 *   ipset creates/updates → ip[6]tables-restore --noflush per table (changed chains + hook
 *   repairs) → chain-deletion transaction per table → ipset destroys; then per-endpoint plumbing.
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
import { planFamily, type BuiltinRule, type CalcGraph, type FamilyPlan, type IpFamily, type KernelFamilyState, type TableName } from '../compiler/index.js';
import { CommandError } from './dataplane/command-runner.js';
import { oneLine } from './status.js';
import { IpsetWriter } from './dataplane/ipset-writer.js';
import type { Plumbing } from './dataplane/plumbing.js';
import { TableWriter } from './dataplane/table-writer.js';
import type { FamilyDataplane } from './dataplane/types.js';
import type { Logger } from './logger.js';
import { EndpointPlumber, type EndpointStatus } from './endpoint-plumber.js';
import type { AgentMetrics } from './metrics.js';
import { Scheduler, clockSleep, systemClock, type Clock } from './scheduler.js';
import { VerificationSchedule } from './verification-schedule.js';

/** The datastore's state the reconciler reads at the start of each pass (the Syncer implements it). */
export interface DatastoreState {
  readonly inSync: boolean;
  readonly datastoreReady: boolean;
  /** The etcd revision the graph's inputs reflect. */
  readonly revision: number;
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
  source: DatastoreState;
  /** Fed by the syncer; the reconciler takes its changes at the start of each pass. */
  graph: CalcGraph;
  /** One per programmed IP family. */
  dataplanes: readonly FamilyDataplane[];
  /** Per-endpoint routes and sysctls; omitted in tests that cover only iptables/ipsets. */
  plumbing?: Plumbing;
  log: Logger;
  metrics?: AgentMetrics;
  minApplyIntervalMs?: number;
  /** Periodic background verification read, at the latest after this; 0 disables. Default 60 s. */
  refreshIntervalMs?: number;
  /** When set, periodic reads come as often as this while they stay cheap (verification-schedule.ts). */
  refreshFloorMs?: number;
  /** Lower bound of the first post-write check's delay (the floor also follows read/write durations). */
  postWriteCheckMinMs?: number;
  /** Post-write checks double their delay up to this, then stop until the next write. */
  postWriteCheckMaxMs?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Failed attempts before the whole-rewrite pass (default 5). */
  maxAttempts?: number;
  /** First retry delay for endpoints whose interface is missing or down (default 1 s); it doubles per retry. */
  plumbingRetryMs?: number;
  /** Cap of the doubling plumbing retry delay (default 30 s); a change of the local endpoints resets it. */
  plumbingRetryMaxMs?: number;
  /** Liveness: the loop must tick at least this often (default 90 s). */
  watchdogTimeoutMs?: number;
  /** Called after every successful pass (status reporting). */
  onApplied?: (report: ApplyReport) => void;
  /** Called after every failed attempt, with its reason (status reporting). */
  onFailed?: (reason: string) => void;
  /** Called when a background plumbing run changed what is known of the endpoints' statuses. */
  onEndpointStatuses?: (statuses: ReadonlyMap<string, EndpointStatus>) => void;
  /** Called with every kernel read-back of a family (per-rule counters). */
  onKernelRead?: (family: IpFamily, state: KernelFamilyState) => void;
  /** Time source for scheduling, backoff and latency (default: the system's monotonic clock). */
  clock?: Clock;
}

const TABLES: readonly TableName[] = ['raw', 'filter'];

/** The parts of a family's kernel state that are read and written separately. */
type Component = TableName | 'ipsets';
const componentKey = (family: IpFamily, component: Component): string => `v${family}:${component}`;

/** A verification read running in the background (see the header). */
interface BackgroundRead {
  startedAt: number;
  /** Aborted when one of our writes starts meanwhile (the read would be untrusted anyway). */
  abort: AbortController;
  /** When it was aborted: the read had run that long at least. */
  abortedAt?: number;
  /** Writes may abort it (the kernel was verified recently enough; verification-schedule.ts). */
  preemptible: boolean;
  /** Our write counters (per componentKey) when it started. */
  writesAtStart: ReadonlyMap<string, number>;
  /** Settles when the read is over (never rejects). */
  done: Promise<void>;
  outcome: { states: ReadonlyMap<IpFamily, KernelFamilyState>; endedAt: number } | { error: unknown } | undefined;
}

/** One family's kernel state and how long reading it took. */
interface TimedRead {
  state: KernelFamilyState;
  ms: number;
}

/** What deleteEach needs of a writer (TableWriter, IpsetWriter). */
interface Deleter {
  planDeletions(): string;
  readonly plannedDeletions: readonly string[];
  planDeletionOf(name: string): string;
}

/** One family's writers. */
interface FamilyWriters {
  dataplane: FamilyDataplane;
  tables: Record<TableName, TableWriter>;
  ipsets: IpsetWriter;
}

export class Reconciler {
  private readonly opts: Required<
    Omit<ReconcilerOptions, 'plumbing' | 'metrics' | 'onApplied' | 'onFailed' | 'onEndpointStatuses' | 'onKernelRead' | 'clock' | 'refreshFloorMs'>
  > & Pick<ReconcilerOptions, 'plumbing' | 'metrics' | 'onApplied' | 'onFailed' | 'onEndpointStatuses' | 'onKernelRead' | 'refreshFloorMs'>;
  private readonly clock: Clock;
  /** When passes and verification reads run (min interval, coalescing, timed retries). */
  private readonly scheduler: Scheduler;
  private readonly log: Logger;
  private readonly graph: CalcGraph;
  /** Per family: its kernel IO and the writers holding its cached kernel state. */
  private readonly writers: readonly FamilyWriters[];
  /**
   * Per componentKey, a sequence bumped when one of our writes starts and again when it ends (odd
   * while one is in flight), so a verification read or a hook check can tell which parts it
   * overlapped: a part is trusted only if its sequence was even when the reading began and the
   * same when it ended.
   */
  private readonly writeSeq = new Map<string, number>();
  private background: BackgroundRead | undefined;
  /** Families whose drift a verification read found; the next successful pass repairs it. */
  private readonly drifted = new Set<IpFamily>();
  /** A verification read asked for a pass: drift to repair, or plumbing to re-check. */
  private readBackPassDue = false;
  /** Refused local endpoints already logged, with the address and owner they were logged for. */
  private readonly refusedEndpointsReported = new Map<string, string>();
  /** Chains and sets whose refused deletion was already logged as a warning. */
  private readonly refusedReported = new Set<string>();
  /** When the kernel is checked next (periodic, post-write, retries; verification-schedule.ts). */
  private readonly verification: VerificationSchedule;
  /** Receipt time (`this.clock.now()`) of the oldest etcd event not yet in the kernel. */
  private pendingSince: number | null = null;
  private dirty = true;

  /** Kernel reads started before the first pass (while the syncer lists), per family; used once. */
  private readonly prefetched = new Map<IpFamily, Promise<TimedRead>>();
  /** Routes, sysctls and the endpoint statuses that follow (endpoint-plumber.ts). */
  private readonly plumber: EndpointPlumber;
  private appliedRevisionValue = 0;
  private firstApplyAt: number | null = null;
  private readonly startedAt: number;
  private lastTick: number;
  private fatalError: Error | null = null;
  private lastErrorText: string | null = null;
  private pausedLogged = false;
  private stopped = false;
  private loop: Promise<void> | undefined;

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
      plumbingRetryMaxMs: 30_000,
      watchdogTimeoutMs: 90_000,
      ...options,
    };
    this.log = options.log.child({ component: 'reconciler' });
    this.clock = options.clock ?? systemClock;
    this.scheduler = new Scheduler(this.clock, this.opts.minApplyIntervalMs);
    this.scheduler.request(); // the first pass (it reads the kernel and adopts it)
    this.startedAt = this.clock.now();
    this.lastTick = this.startedAt;
    this.verification = new VerificationSchedule(this.clock, this.opts);
    this.plumber = new EndpointPlumber({
      plumbing: options.plumbing,
      scheduler: this.scheduler,
      clock: this.clock,
      log: this.log,
      metrics: options.metrics,
      retryMs: this.opts.plumbingRetryMs,
      retryMaxMs: this.opts.plumbingRetryMaxMs,
      onStatuses: options.onEndpointStatuses && ((statuses) => options.onEndpointStatuses!(this.withRefused(statuses))),
    });
    this.graph = options.graph;
    this.writers = options.dataplanes.map((dataplane) => {
      const desired = this.graph.desired(dataplane.family);
      return {
        dataplane,
        tables: { filter: new TableWriter(dataplane.family, 'filter', desired), raw: new TableWriter(dataplane.family, 'raw', desired) },
        ipsets: new IpsetWriter(dataplane.family, desired),
      };
    });
  }

  /** Delay of the first check after a write: max(postWriteCheckMinMs, 2 × (peak read + peak write)). */
  get postWriteCheckFloorMs(): number {
    return this.verification.floorMs;
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
    return this.withRefused(this.plumber.statuses);
  }

  /** The plumber's statuses plus `error` for each endpoint refused for an address another holds. */
  private withRefused(statuses: ReadonlyMap<string, EndpointStatus>): ReadonlyMap<string, EndpointStatus> {
    const refused = this.graph.refusedEndpoints();
    if (refused.size === 0) return statuses;
    const merged = new Map(statuses);
    for (const [key, { ref }] of refused) merged.set(key, { ref, status: 'error' });
    return merged;
  }

  /** Liveness: the loop ticked recently and has not given up. */
  isLive(now = this.clock.now()): boolean {
    return this.fatalError === null && now - this.lastTick < this.opts.watchdogTimeoutMs;
  }

  /**
   * The datastore changed: a pass is wanted. `change.receivedAt` (on the reconciler's clock) is
   * the etcd receipt time, for latency accounting.
   */
  markDirty(change?: { receivedAt: number }): void {
    this.dirty = true;
    if (change && this.pendingSince === null) this.pendingSince = change.receivedAt;
    this.scheduler.request();
  }

  /** Runs the daemon loop in the background. `onFatal` is called once if the loop gives up. */
  start(onFatal: (error: Error) => void): void {
    if (this.loop) return;
    this.prefetchKernel();
    this.loop = this.run().catch((error: unknown) => {
      const err = error instanceof Error ? error : new Error(String(error));
      this.fatalError = err;
      onFatal(err);
    });
  }

  /** Stops the loop; an in-flight verification read is waited for and its result ignored. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.scheduler.wake();
    await this.loop;
    await this.background?.done;
    await this.plumber.settled();
  }

  /**
   * One pass with retries: compile, plan against the kernel, write the differences. Resolves
   * with the report, or null when not yet allowed to program (not in sync, Ready false).
   * Rejects with ReconcilerFatalError when even the whole rewrite fails.
   */
  async reconcileOnce(reason = 'once'): Promise<ApplyReport | null> {
    const report = await this.reconcile(reason, false);
    if (report === null) return report;
    await this.plumber.settled();
    return { ...report, endpointStatuses: this.withRefused(this.plumber.statuses) };
  }

  /** `reconcileOnce`; `forceRead` reads the kernel even on the first attempt (in-pass verification). */
  private async reconcile(reason: string, forceRead: boolean): Promise<ApplyReport | null> {
    if (!this.mayProgram()) return null;
    let delay = this.opts.retryInitialMs;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.opts.maxAttempts; attempt++) {
      try {
        return await this.applyPass(attempt === 1 ? reason : `${reason}-retry`, { forceRead: forceRead || attempt > 1, rewriteAll: false });
      } catch (error) {
        lastError = error;
        this.forgetKernel();
        this.recordFailure(error, attempt);
        if (error instanceof CommandError && error.terminal) {
          throw new ReconcilerFatalError(`dataplane write cannot succeed: ${error.message}`, error);
        }
        if (attempt < this.opts.maxAttempts) {
          await clockSleep(this.clock, delay);
          delay = Math.min(delay * 2, this.opts.retryMaxMs);
        }
      }
    }
    this.log.error({ attempts: this.opts.maxAttempts }, 'repeated dataplane failures; rewriting all our chains whole');
    try {
      return await this.applyPass(`${reason}-full-rewrite`, { forceRead: true, rewriteAll: true });
    } catch (error) {
      this.forgetKernel();
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
    const spec = this.graph.toSpec();
    const plans: { family: IpFamily; plan: FamilyPlan }[] = [];
    for (const { dataplane } of this.writers) {
      const actual = await dataplane.read();
      plans.push({ family: dataplane.family, plan: planFamily(dataplane.family === 4 ? spec.v4 : spec.v6, actual) });
    }
    return plans;
  }

  /**
   * Starts reading the kernel of every family whose state is unknown, so the first pass (which
   * waits for the datastore list) finds the read done. Nothing is written before that pass, so
   * the read is still current when it is adopted.
   */
  private prefetchKernel(): void {
    for (const writers of this.writers) {
      const family = writers.dataplane.family;
      if (this.known(writers) || this.prefetched.has(family)) continue;
      const read = this.timedRead(writers.dataplane);
      read.catch(() => {}); // a failed prefetch is read again by the pass
      this.prefetched.set(family, read);
    }
  }

  /** Every writer's cached kernel state becomes unknown: the next pass reads the kernel first. */
  private forgetKernel(): void {
    this.prefetched.clear();
    for (const writers of this.writers) {
      for (const table of TABLES) writers.tables[table].forget();
      writers.ipsets.forget();
    }
  }

  private known(writers: FamilyWriters): boolean {
    return writers.ipsets.known && TABLES.every((table) => writers.tables[table].known);
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

  private recordFailure(error: unknown, attempt: number): void {
    const stage = error instanceof CommandError ? error.argv[0] ?? 'command' : 'other';
    this.opts.metrics?.applyFailures.inc({ stage });
    this.lastErrorText = error instanceof Error ? error.message : String(error);
    this.opts.onFailed?.(this.lastErrorText);
    // One line with the cause (and, as Felix does, the input fed); the stack only at debug level.
    const details = error instanceof CommandError ? { stderr: error.stderr, input: error.input } : {};
    this.log.warn({ reason: this.lastErrorText, attempt, ...details }, 'dataplane write failed; will re-read the kernel and retry');
    this.log.debug({ err: error }, 'dataplane write failure');
  }

  /** One attempt: read (when the cache is missing or `forceRead`), plan, write in order. Throws on the first failed write. */
  private async applyPass(reason: string, mode: { forceRead: boolean; rewriteAll: boolean }): Promise<ApplyReport> {
    const started = this.clock.now();
    const covering = this.pendingSince;
    const wasDirty = this.dirty;
    const recheckPlumbing = this.readBackPassDue;
    this.pendingSince = null;
    this.dirty = false;
    this.readBackPassDue = false;
    const revision = this.opts.source.revision;
    try {
      const changes = this.graph.takeChanges();
      for (const writers of this.writers) {
        const family = changes.families[writers.dataplane.family];
        for (const table of TABLES) writers.tables[table].markDirty(family.chains[table]);
        writers.ipsets.markDirty(family);
      }
      if (changes.localEndpointsChanged) {
        for (const [key, { address, owner }] of this.graph.refusedEndpoints()) {
          const reason = `${address} ${owner}`;
          if (this.refusedEndpointsReported.get(key) === reason) continue;
          this.refusedEndpointsReported.set(key, reason);
          this.log.warn({ endpoint: key, address, heldBy: owner }, 'local endpoint refused: another endpoint of this host claimed its address first; its traffic is dropped until that changes');
        }
      }
      if (changes.localEndpointsChanged && this.log.isLevelEnabled('debug')) {
        for (const diagnostic of this.graph.diagnostics()) this.log.debug({ diagnostic }, 'compiler diagnostic');
      }

      // Families whose writers do not know the kernel (or must check it) read it first, side by side.
      const toRead = this.writers.filter((writers) => mode.forceRead || !this.known(writers));
      // The longest family read is what a verification costs (a prefetched read counts for its
      // own duration, not for the part of it the pass waited for).
      let readMs = 0;
      await Promise.all(
        toRead.map(async (writers) => {
          const family = writers.dataplane.family;
          const prefetched = mode.forceRead ? undefined : this.prefetched.get(family);
          this.prefetched.delete(family);
          const { state, ms } = (await prefetched?.catch(() => undefined)) ?? (await this.timedRead(writers.dataplane));
          readMs = Math.max(readMs, ms);
          for (const table of TABLES) writers.tables[table].adopt(state.tables[table]);
          writers.ipsets.adopt(state.ipsets);
        }),
      );
      const readBack = toRead.length > 0;
      // A read of every family is a verification (the first pass, retries, in-pass checks).
      if (toRead.length === this.writers.length) {
        this.verification.readTook(readMs);
        this.verification.verified(started);
      }
      if (mode.rewriteAll) for (const writers of this.writers) for (const table of TABLES) writers.tables[table].forgetHashes();

      const writes = { calls: 0, bytes: 0 };
      const wroteFamilies = new Set<IpFamily>();
      const write = async (dataplane: FamilyDataplane, tool: 'ipset' | 'iptables-restore', table: TableName | undefined, input: string) => {
        if (input.trim() === '') return;
        wroteFamilies.add(dataplane.family);
        const bytes = Buffer.byteLength(input);
        const labels = { tool, family: `v${dataplane.family}`, table: table ?? '' };
        this.log.debug({ ...labels, input }, 'writing restore input');
        const written = componentKey(dataplane.family, table ?? 'ipsets');
        const bump = (): void => void this.writeSeq.set(written, (this.writeSeq.get(written) ?? 0) + 1);
        bump();
        // A verification read in flight would be untrusted now; stopping it frees the kernel and
        // the CPU for this write (a large save slows a concurrent restore several-fold).
        const reading = this.background;
        if (reading !== undefined && reading.outcome === undefined && reading.preemptible && reading.abortedAt === undefined) {
          reading.abortedAt = this.clock.now();
          reading.abort.abort();
        }
        try {
          if (tool === 'ipset') await dataplane.applyIpsets(input);
          else await dataplane.applyIptables(table!, input);
        } catch (error) {
          this.opts.metrics?.restoreCalls.inc({ ...labels, result: 'error' });
          this.opts.metrics?.restoreBytes.observe({ ...labels, result: 'error' }, bytes);
          throw error;
        } finally {
          bump();
        }
        this.opts.metrics?.restoreCalls.inc({ ...labels, result: 'ok' });
        this.opts.metrics?.restoreBytes.observe({ ...labels, result: 'ok' }, bytes);
        writes.calls += 1;
        writes.bytes += bytes;
      };

      const writesStarted = this.clock.now();
      // The families are independent (each one's rules reference only its own sets), so they are
      // written side by side; within a family the steps keep their order. Every write of a step
      // has ended before a failure is thrown, so a retry never races a write still running.
      const eachFamily = async (step: (writers: FamilyWriters) => Promise<void>): Promise<void> => {
        const outcomes = await Promise.allSettled(this.writers.map(step));
        const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
        if (failed) throw failed.reason;
      };
      await eachFamily(async ({ dataplane, tables, ipsets }) => {
        // The tables' text is rendered while the ipset restore runs (in its own process).
        const ipsetWrite = write(dataplane, 'ipset', undefined, ipsets.planUpdates());
        const tableTexts = TABLES.map((table) => tables[table].planUpdates());
        await ipsetWrite;
        ipsets.commitUpdates();
        for (const [i, table] of TABLES.entries()) {
          await write(dataplane, 'iptables-restore', table, tableTexts[i]!);
          tables[table].commitUpdates();
        }
      });
      // Deletions: one batch; if the kernel refuses it, one by one, and what is still refused
      // (referenced by a rule we do not own) is left in place and retried after a read-back.
      const deleteEach = async (dataplane: FamilyDataplane, tool: 'ipset' | 'iptables-restore', table: TableName | undefined, writer: Deleter): Promise<Set<string>> => {
        const refused = new Set<string>();
        try {
          await write(dataplane, tool, table, writer.planDeletions());
          return refused;
        } catch (error) {
          if (writer.plannedDeletions.length === 0) throw error;
        }
        for (const name of writer.plannedDeletions) {
          try {
            await write(dataplane, tool, table, writer.planDeletionOf(name));
          } catch (error) {
            // A set the failed batch had already destroyed is gone, as wanted.
            if (tool === 'ipset' && error instanceof CommandError && /does not exist/.test(error.stderr)) continue;
            refused.add(name);
            const first = !this.refusedReported.has(name);
            this.refusedReported.add(name);
            this.log[first ? 'warn' : 'debug'](
              { family: `v${dataplane.family}`, name, cause: oneLine(error) },
              `cannot delete ${tool === 'ipset' ? 'ipset' : 'chain'} ${name} (in use by a rule we do not own?); left in place, retried after the next read-back`,
            );
          }
        }
        return refused;
      };
      await eachFamily(async ({ dataplane, tables, ipsets }) => {
        for (const table of TABLES) tables[table].commitDeletions(await deleteEach(dataplane, 'iptables-restore', table, tables[table]));
        ipsets.commitDeletions(await deleteEach(dataplane, 'ipset', undefined, ipsets));
      });

      const wrote = wroteFamilies.size > 0;
      if (wrote) {
        this.verification.wrote(this.clock.now() - writesStarted);
      }
      // Drift: found by a verification read (background: `drifted`; in this pass: a read-back
      // pass, not the first one, that had to write although no datastore change came in).
      const verifiedHere = readBack && !wasDirty && this.firstApplyAt !== null;
      const repairedFamilies = [...wroteFamilies].filter((family) => verifiedHere || this.drifted.has(family));
      const driftRepaired = repairedFamilies.length > 0;
      this.drifted.clear();
      if (driftRepaired) {
        for (const family of repairedFamilies) this.opts.metrics?.driftRepairs.inc({ family: `v${family}` });
        this.log.warn({ bytes: writes.bytes }, 'kernel state had drifted from ours (changed by another process); repaired');
      }
      const kernelDoneAt = this.clock.now();

      const statuses = await this.plumber.sync(this.graph.localEndpoints(), readBack || recheckPlumbing || reason === 'plumbing-retry');
      this.appliedRevisionValue = revision;

      const durationMs = this.clock.now() - started;
      const etcdToKernelMs = covering === null ? undefined : kernelDoneAt - covering;
      const report: ApplyReport = {
        reason,
        revision,
        restoreCalls: writes.calls,
        bytesWritten: writes.bytes,
        durationMs,
        etcdToKernelMs,
        driftRepaired,
        endpointStatuses: this.withRefused(statuses),
      };
      this.recordSuccess(report, changes.any || readBack);
      return report;
    } catch (error) {
      // Keep the oldest unapplied event for latency accounting, and stay dirty.
      if (covering !== null) this.pendingSince = covering;
      this.dirty = true;
      this.scheduler.request();
      throw error;
    }
  }

  /**
   * Whether one of our writes to `key` ran while something read it, given the write sequence
   * when the reading began: one was in flight then (odd), or one started since (changed).
   */
  private wroteDuring(key: string, seqAtStart: number): boolean {
    return seqAtStart % 2 === 1 || (this.writeSeq.get(key) ?? 0) !== seqAtStart;
  }

  /** A token for `hooksObserved`: the table's write sequence (odd while one of our writes to it runs). */
  writeToken(family: IpFamily, table: TableName): number {
    return this.writeSeq.get(componentKey(family, table)) ?? 0;
  }

  /**
   * The built-in chains we hook in one table, as a fast check read them (hook-watch.ts). Judged
   * only if none of our writes to that table ran while they were read (`token`, taken before the
   * listing, was even and is unchanged); a hook that is gone, not first, or duplicated asks for
   * a repair pass at once. Returns whether it did.
   */
  hooksObserved(family: IpFamily, table: TableName, builtins: ReadonlyMap<string, readonly BuiltinRule[]>, token: number): boolean {
    if (this.stopped || this.wroteDuring(componentKey(family, table), token)) return false;
    const writers = this.writers.find(({ dataplane }) => dataplane.family === family);
    if (writers === undefined || !writers.tables[table].verifyHooks(builtins)) return false;
    this.drifted.add(family);
    this.readBackPassDue = true;
    this.log.warn({ family: `v${family}`, table }, 'our hook in a built-in chain was removed or displaced by another program; repairing');
    this.scheduler.request();
    return true;
  }

  /** Starts a verification read of every family in the background; the loop judges it when it is over. */
  private startBackgroundRead(): void {
    const read: BackgroundRead = {
      startedAt: this.clock.now(),
      abort: new AbortController(),
      preemptible: this.verification.mayPreempt,
      writesAtStart: new Map(this.writeSeq),
      done: Promise.resolve(),
      outcome: undefined,
    };
    read.done = (async () => {
      try {
        // Side by side: the families' reads then share one `ipset save`.
        const readFamily = async (dataplane: FamilyDataplane) => [dataplane.family, await this.read(dataplane, read.abort.signal)] as const;
        const states = new Map<IpFamily, KernelFamilyState>(await Promise.all(this.opts.dataplanes.map(readFamily)));
        read.outcome = { states, endedAt: this.clock.now() };
      } catch (error) {
        read.outcome = { error };
      }
      this.scheduler.wake();
    })();
    this.background = read;
  }

  /**
   * Judges a finished verification read, between passes: per family and component, trusted only
   * if none of our writes to it started since the read began (else the cache stands in). Drift
   * in the trusted view replaces the cache and asks for a repair pass.
   */
  private judgeBackgroundRead(read: BackgroundRead): void {
    const outcome = read.outcome;
    if (outcome === undefined) return;
    if ('error' in outcome && outcome.error instanceof CommandError && outcome.error.aborted) {
      // Our write preempted it: retried later; once the kernel has gone unverified for a whole
      // interval, the next read is not preemptible (verification-schedule.ts).
      this.verification.preempted(read.abortedAt! - read.startedAt);
      this.log.debug('kernel read-back aborted by our write; rechecking later');
      return;
    }
    if ('error' in outcome) {
      this.verification.failed();
      this.log.warn({ err: outcome.error }, 'background kernel read-back failed; the next check reads inside a pass');
      return;
    }
    this.verification.readTook(outcome.endedAt - read.startedAt);
    const untrusted: string[] = [];
    const drifted: string[] = [];
    for (const [family, observed] of outcome.states) {
      const writers = this.writers.find(({ dataplane }) => dataplane.family === family)!;
      if (!this.known(writers)) {
        // A pass failed meanwhile: the next one reads the kernel itself.
        untrusted.push(`v${family}`);
        continue;
      }
      const trusted = (component: Component): boolean => {
        const key = componentKey(family, component);
        const written = this.wroteDuring(key, read.writesAtStart.get(key) ?? 0);
        if (written) untrusted.push(key);
        return !written;
      };
      const found: string[] = [];
      for (const table of TABLES) if (trusted(table)) found.push(...writers.tables[table].verify(observed.tables[table]));
      if (trusted('ipsets')) found.push(...writers.ipsets.verify(observed.ipsets));
      if (found.length > 0) {
        this.drifted.add(family);
        drifted.push(`v${family}`);
        this.log.debug({ family: `v${family}`, names: found.slice(0, 20) }, 'drift found');
      }
    }
    let retrying = false;
    for (const writers of this.writers) {
      for (const table of TABLES) retrying = writers.tables[table].retryRefused() || retrying;
      retrying = writers.ipsets.retryRefused() || retrying;
    }
    if (drifted.length > 0 || retrying || (untrusted.length === 0 && this.opts.plumbing)) {
      this.readBackPassDue = true;
      this.scheduler.request();
    }
    const ms = Number((outcome.endedAt - read.startedAt).toFixed(2));
    if (untrusted.length === 0) {
      this.verification.verified(read.startedAt);
      this.log.debug({ ms, drifted }, 'kernel read back');
      return;
    }
    this.verification.untrusted();
    this.log.debug({ ms, drifted, untrusted }, 'kernel read back while we wrote; rechecking the parts we wrote later');
  }

  private async timedRead(dataplane: FamilyDataplane): Promise<TimedRead> {
    const started = this.clock.now();
    const state = await this.read(dataplane);
    return { state, ms: this.clock.now() - started };
  }

  private async read(dataplane: FamilyDataplane, signal?: AbortSignal): Promise<KernelFamilyState> {
    const family = `v${dataplane.family}`;
    try {
      const state = await dataplane.read(signal ? { signal } : {});
      this.opts.metrics?.readbackCalls.inc({ tool: 'save', family, result: 'ok' });
      this.opts.onKernelRead?.(dataplane.family, state);
      return state;
    } catch (error) {
      const aborted = error instanceof CommandError && error.aborted;
      this.opts.metrics?.readbackCalls.inc({ tool: 'save', family, result: aborted ? 'aborted' : 'error' });
      throw error;
    }
  }

  /** Records a successful pass; `changed`: the desired state may have changed (rule counts are recounted). */
  private recordSuccess(report: ApplyReport, changed: boolean): void {
    const { metrics } = this.opts;
    this.lastErrorText = null;
    if (this.firstApplyAt === null) {
      this.firstApplyAt = this.clock.now();
      const seconds = (this.firstApplyAt - this.startedAt) / 1000;
      metrics?.initialResyncSeconds.set(seconds);
      this.log.info({ revision: report.revision, seconds: Number(seconds.toFixed(3)), bytes: report.bytesWritten }, 'initial dataplane sync complete');
    }
    metrics?.appliedRevision.set(report.revision);
    metrics?.applySeconds.observe({ reason: report.reason }, report.durationMs / 1000);
    if (report.etcdToKernelMs !== undefined) metrics?.datastoreToDataplaneSeconds.observe(report.etcdToKernelMs / 1000);
    metrics?.endpointsProgrammed.set(this.graph.localEndpoints().size);
    if (changed && metrics) {
      for (const { dataplane } of this.writers) metrics.rulesProgrammed.set({ family: `v${dataplane.family}` }, this.graph.desired(dataplane.family).ruleCount);
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

  /**
   * The daemon loop: wait until something is due; judge a finished verification read, run a pass
   * (datastore change, repair, plumbing retry, in-pass verification) or start a background
   * verification read; repeat.
   */
  private async run(): Promise<void> {
    // Waits are cut into ticks so the watchdog sees the loop alive while idle.
    const tickMs = Math.min(10_000, this.opts.watchdogTimeoutMs / 3);
    while (!this.stopped) {
      this.lastTick = this.clock.now();
      if (!this.mayProgram()) {
        // Not allowed to write (not in sync, or Ready false): the syncer marks us dirty on change.
        this.dirty = false;
        await this.scheduler.sleep(tickMs);
        continue;
      }
      const finished = this.background;
      if (finished?.outcome !== undefined) {
        this.background = undefined;
        this.judgeBackgroundRead(finished);
        continue;
      }
      const fullyCached = this.writers.every((writers) => this.known(writers));
      const verifyDueAt = fullyCached && this.background === undefined ? this.verification.dueAt() : Infinity;
      const decision = this.scheduler.next(verifyDueAt);
      if (decision.action === 'wait') {
        await this.scheduler.sleep(Math.min(decision.ms, tickMs));
        continue;
      }
      const verifyInPass = decision.action === 'verify' && this.verification.inPass;
      if (decision.action === 'verify' && !verifyInPass) {
        // Only a verification is due: read in the background, keep serving passes meanwhile.
        this.startBackgroundRead();
        continue;
      }
      const retryOnly = decision.action === 'pass' && !this.dirty && !this.readBackPassDue && decision.reasons.includes('plumbing-retry');
      const reason = this.dirty ? 'datastore' : retryOnly ? 'plumbing-retry' : 'read-back';
      this.scheduler.passStarted(retryOnly ? ['plumbing-retry'] : []);
      await this.reconcile(reason, verifyInPass);
    }
  }
}
