/**
 * Endpoint plumbing for the reconciler: routes, proxy ARP/NDP and sysctls of this host's
 * endpoints (dataplane/plumbing.ts does the work), and the endpoint statuses that follow from it.
 *
 * Invariants:
 * - When the local endpoints changed, `sync` waits for the plumbing (a change is applied when its
 *   endpoint works). Re-checks (read-back passes) and retries for interfaces still missing run
 *   in the background, at most one at a time, so they never hold up the next datastore change;
 *   the statuses they learn go to `onStatuses` when they end.
 * - Retries are due through the scheduler (`plumbing-retry`), the delay doubling up to
 *   `retryMaxMs` while interfaces stay missing; a change of the local endpoints resets it.
 * - Failures never fail a pass: they show as `error` statuses and are retried.
 * - Without a Plumbing (tests of the iptables side only) every active endpoint is `up`.
 */
import type { EndpointInput } from '../compiler/types.js';
import { endpointKey, type EndpointRef } from '../src/model/index.js';
import { desiredPlumbing, type Plumbing } from './dataplane/plumbing.js';
import type { Logger } from './logger.js';
import type { AgentMetrics } from './metrics.js';
import type { Clock, Scheduler } from './scheduler.js';

export type EndpointStatusValue = 'up' | 'down' | 'error';

export interface EndpointStatus {
  ref: EndpointRef;
  status: EndpointStatusValue;
}

export interface EndpointPlumberOptions {
  plumbing: Plumbing | undefined;
  scheduler: Scheduler;
  clock: Clock;
  log: Logger;
  metrics: AgentMetrics | undefined;
  retryMs: number;
  retryMaxMs: number;
  onStatuses: ((statuses: ReadonlyMap<string, EndpointStatus>) => void) | undefined;
}

export class EndpointPlumber {
  private dirty = true;
  private globalDone = false;
  /** The local endpoints plumbing last ran for (objects are replaced on change, so identity suffices). */
  private lastLocal: ReadonlyMap<string, EndpointInput> = new Map();
  private retryDelayMs: number;
  /** A background run (re-check or retry), at most one at a time. */
  private job: Promise<void> | undefined;
  private current: ReadonlyMap<string, EndpointStatus> = new Map();

  constructor(private readonly opts: EndpointPlumberOptions) {
    this.retryDelayMs = opts.retryMs;
  }

  /** Status of every local endpoint, by etcd key, as last known. */
  get statuses(): ReadonlyMap<string, EndpointStatus> {
    return this.current;
  }

  /**
   * After a pass's kernel writes: plumbs `local` (the graph's view, a new Map only when the local
   * endpoints changed) if it changed, or in the background when `recheck`; returns the statuses
   * known now.
   */
  async sync(local: ReadonlyMap<string, EndpointInput>, recheck: boolean): Promise<ReadonlyMap<string, EndpointStatus>> {
    const previous = this.lastLocal;
    if (local !== previous && (local.size !== previous.size || [...local].some(([name, input]) => previous.get(name)?.endpoint !== input.endpoint))) {
      this.dirty = true;
      this.retryDelayMs = this.opts.retryMs;
    }
    const { plumbing } = this.opts;
    if (plumbing && this.dirty) {
      await this.job;
      this.current = await this.run(plumbing, local);
      return this.current;
    }
    if (plumbing && recheck && this.job === undefined) {
      this.job = this.run(plumbing, local)
        .then((statuses) => {
          this.current = statusesFor(local, statuses, true);
          this.opts.onStatuses?.(this.current);
        })
        .finally(() => {
          this.job = undefined;
        });
    }
    this.current = statusesFor(local, this.current, plumbing !== undefined);
    return this.current;
  }

  /** Resolves when no background run is in flight. */
  async settled(): Promise<void> {
    while (this.job) await this.job;
  }

  /** One run for `local`; schedules the next retry while an interface is missing or it failed. */
  private async run(plumbing: Plumbing, local: ReadonlyMap<string, EndpointInput>): Promise<ReadonlyMap<string, EndpointStatus>> {
    const { log, metrics, scheduler, clock } = this.opts;
    const skipped = new Map<string, string>();
    let failure: string | null = null;
    try {
      if (!this.globalDone) {
        await plumbing.applyGlobal();
        this.globalDone = true;
      }
      const report = await plumbing.reconcile(desiredPlumbing(local));
      for (const { name, reason } of report.skipped) skipped.set(name, reason);
      if (report.ipChanges.length > 0 || report.sysctlWrites.length > 0) {
        log.info({ ipChanges: report.ipChanges.length, sysctls: report.sysctlWrites.length }, 'endpoint plumbing updated');
      }
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
      metrics?.applyFailures.inc({ stage: 'plumbing' });
      log.warn({ err: error }, 'endpoint plumbing failed; will retry');
    }
    this.lastLocal = local;
    this.dirty = failure !== null;
    const retry = failure !== null || skipped.size > 0;
    scheduler.passAt('plumbing-retry', retry ? clock.now() + this.retryDelayMs : null);
    this.retryDelayMs = retry ? Math.min(2 * this.retryDelayMs, this.opts.retryMaxMs) : this.opts.retryMs;

    const statuses = new Map<string, EndpointStatus>();
    for (const [name, { ref, endpoint }] of local) {
      let status: EndpointStatusValue = 'up';
      if (endpoint.state !== 'active' || skipped.has(name)) status = 'down';
      else if (failure !== null) status = 'error';
      statuses.set(endpointKey(ref), { ref, status });
    }
    return statuses;
  }
}

/**
 * Statuses of `local` from `known` (a run's results): known endpoints keep theirs, new active
 * ones are `up` until plumbing says otherwise (or always, without plumbing); inactive are `down`.
 */
function statusesFor(
  local: ReadonlyMap<string, EndpointInput>,
  known: ReadonlyMap<string, EndpointStatus>,
  plumbed: boolean,
): ReadonlyMap<string, EndpointStatus> {
  const statuses = new Map<string, EndpointStatus>();
  for (const { ref, endpoint } of local.values()) {
    const key = endpointKey(ref);
    const status: EndpointStatusValue = endpoint.state !== 'active' ? 'down' : plumbed ? known.get(key)?.status ?? 'up' : 'up';
    statuses.set(key, { ref, status });
  }
  return statuses;
}
