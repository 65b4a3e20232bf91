/**
 * Wiring of one calico-agent: etcd client → Syncer → per-key updates → CalcGraph; Syncer →
 * Reconciler (the graph's changes → kernel via the dataplane writers) → StatusReporter, plus the
 * health/metrics listener. `startAgent` runs the daemon,
 * `runOnce` the `--once` and `--once --dry-run` modes. main.ts only parses config, calls these
 * and maps outcomes to exit codes; tests and the e2e harness may call them directly.
 *
 * Invariant: stopping an agent never touches the kernel (no flush): rules stay in place and
 * keep failing closed until the next agent adopts them.
 */
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { Etcd3 } from 'etcd3';
import { CalcGraph, defaultCompilerConfig, type CompilerConfig, type FamilyPlan, type IpFamily } from '../compiler/index.js';
import { createEtcdClient } from '../src/datastore/client.js';
import { createHelperRunner } from './dataplane/exec-helper.js';
import { IpsetSession } from './dataplane/ipset-session.js';
import { createFamilyDataplane } from './dataplane/family-dataplane.js';
import { createIpsetIo } from './dataplane/ipsets.js';
import { selectIptablesBackend } from './dataplane/iptables-backend.js';
import { createPlumbing } from './dataplane/plumbing.js';
import type { CommandRunner } from './dataplane/types.js';
import type { AgentConfig } from './config.js';
import { startHttpServer, type HttpServerHandle } from './http-server.js';
import type { Logger } from './logger.js';
import { createAgentMetrics, type AgentMetrics } from './metrics.js';
import { RuleCounterMetrics } from './rule-counters.js';
import { HookWatch } from './hook-watch.js';
import type { EndpointStatus } from './endpoint-plumber.js';
import { Reconciler, type ApplyReport } from './reconciler.js';
import { StatusReporter } from './status.js';
import { DataplaneStatusPublisher } from './dataplane-status.js';
import { collectGarbage, compactHeap, QuietCollector } from './heap.js';
import type { DataplaneStatus } from '../src/model/index.js';
import { systemClock } from './scheduler.js';
import { Syncer } from './syncer.js';
import { applyUpdates } from './updates.js';

export interface AgentDeps {
  log: Logger;
  /** Defaults to `createEtcdClient(config.etcd)`; closed by the agent only when it created it. */
  client?: Etcd3;
  /**
   * Defaults to a helper-process runner (exec-helper.ts) for `config.dataplaneNetns`, started
   * here, before the heap grows, and closed when the agent stops; with it, an interactive ipset
   * session (ipset-session.ts) for small ipset updates.
   */
  runner?: CommandRunner;
  metrics?: AgentMetrics;
}

export interface Agent {
  config: AgentConfig;
  syncer: Syncer;
  graph: CalcGraph;
  reconciler: Reconciler;
  status: StatusReporter;
  metrics: AgentMetrics;
  /** The health listener, when enabled. */
  http: HttpServerHandle | undefined;
  live(): boolean;
  ready(): boolean;
  /** JSON served at /status. */
  statusReport(): AgentStatusReport;
  /** Rejects with the fatal error if the reconciler gives up; never resolves otherwise. */
  fatal: Promise<never>;
  /** Stops everything, leaving the dataplane as it is. */
  stop(): Promise<void>;
}

export interface AgentStatusReport {
  hostname: string;
  inSync: boolean;
  ready: boolean;
  live: boolean;
  datastoreConnected: boolean;
  datastoreReady: boolean;
  /** The etcd revision the syncer's view reflects. */
  datastoreRevision: number;
  /** The etcd revision the kernel reflects. */
  appliedRevision: number;
  profiles: number;
  endpoints: number;
  localEndpoints: number;
  invalidKeys: number;
  lastError: string | null;
}

export function compilerConfigOf(config: AgentConfig): CompilerConfig {
  const defaults = defaultCompilerConfig();
  return {
    ...defaults,
    interfacePrefix: config.interfacePrefix,
    endpointToHostAction: config.endpointToHostAction ?? defaults.endpointToHostAction,
    failsafeInboundHostPorts: config.failsafeInboundHostPorts ?? defaults.failsafeInboundHostPorts,
    failsafeOutboundHostPorts: config.failsafeOutboundHostPorts ?? defaults.failsafeOutboundHostPorts,
  };
}

interface Parts {
  client: Etcd3;
  graph: CalcGraph;
  /** Ends the runner the agent started (nothing for an injected one). */
  closeRunner: () => Promise<void>;
  ownsClient: boolean;
  metrics: AgentMetrics;
  syncer: Syncer;
  reconciler: Reconciler;
  status: StatusReporter;
  /** The fast hook check (the daemon starts it; --once does not). */
  hookWatch: HookWatch;
}

/** Where the reconciler's endpoint statuses go (the daemon: the status reporter). */
type StatusSink = (statuses: ReadonlyMap<string, EndpointStatus>) => void;

/** What the reconciler reports to: endpoint statuses, and every pass's outcome. */
interface PassHooks {
  onStatuses: StatusSink;
  onApplied?: (report: ApplyReport) => void;
  onFailed?: (reason: string) => void;
  /** A family's kernel state was read (a verification read or a pass's own read). */
  onKernelRead?: () => void;
}

/**
 * Builds the agent's parts. `listEarly` (the daemon) starts the syncer's list before the iptables
 * backend is detected, so the two overlap (the list needs no dataplane; nothing is programmed
 * before the reconciler exists and the list is complete).
 */
async function buildParts(config: AgentConfig, deps: AgentDeps, hooks: PassHooks, listEarly: boolean): Promise<Parts> {
  const { onStatuses } = hooks;
  const { log } = deps;
  const client = deps.client ?? createEtcdClient(config.etcd);
  const helper = deps.runner === undefined ? createHelperRunner(config.dataplaneNetns ? { netns: config.dataplaneNetns } : {}) : undefined;
  const runner = deps.runner ?? helper!;
  // Small ipset updates go through one interactive `ipset -` (only with the real runner).
  const ipsetSession = helper === undefined ? undefined : new IpsetSession(config.dataplaneNetns);
  ipsetSession?.open();
  const closeRunner = async (): Promise<void> => {
    await ipsetSession?.close();
    await helper?.close();
  };
  const metrics = deps.metrics ?? createAgentMetrics();

  const graph = new CalcGraph(config.hostname, compilerConfigOf(config));
  let reconciler: Reconciler | undefined;
  const syncer = new Syncer({
    client,
    log: log.child({ component: 'syncer' }),
    metrics,
    gracePeriodMs: config.etcdGracePeriodMs,
    onUpdates: (updates) => applyUpdates(graph, updates),
    onChange: (change) => reconciler?.markDirty(change),
  });
  if (listEarly) syncer.start();

  const backend = await selectIptablesBackend(runner, config.iptablesBackend).catch(async (error: unknown) => {
    await syncer.stop();
    await closeRunner();
    if (deps.client === undefined) client.close();
    throw error;
  });
  log.info(
    { backend: backend.mode, source: backend.source, reason: backend.reason, legacyRules: backend.legacyRules, nftRules: backend.nftRules, netns: config.dataplaneNetns },
    backend.source === 'configured' ? 'iptables backend configured' : `iptables backend detected (${backend.reason})`,
  );
  const families: IpFamily[] = config.ipv6 ? [4, 6] : [4];
  const ruleCounters = new RuleCounterMetrics(graph, metrics.registry);
  const ipsets = createIpsetIo(runner, ipsetSession);
  const dataplanes = families.map((family) => createFamilyDataplane({ runner, family, backend, ipsets }));
  reconciler = new Reconciler({
    source: syncer,
    graph,
    dataplanes,
    plumbing: createPlumbing({ runner, interfacePrefix: config.interfacePrefix }),
    log,
    metrics,
    minApplyIntervalMs: config.minApplyIntervalMs,
    refreshIntervalMs: config.refreshIntervalMs,
    refreshFloorMs: config.refreshMinIntervalMs,
    onApplied: (report: ApplyReport) => {
      onStatuses(report.endpointStatuses);
      hooks.onApplied?.(report);
    },
    onFailed: hooks.onFailed,
    onEndpointStatuses: onStatuses,
    onKernelRead: (family, state) => {
      ruleCounters.update(family, state.tables.filter.counters ?? new Map());
      hooks.onKernelRead?.();
    },
  });
  const status = new StatusReporter({
    client,
    hostname: config.hostname,
    log,
    intervalMs: config.reportingIntervalMs,
    ttlMs: config.reportingTtlMs,
    endpointStatus: config.endpointStatusReporting,
  });
  const hookWatch = new HookWatch({
    runner,
    backend,
    families,
    observer: reconciler,
    log: log.child({ component: 'hook-watch' }),
    intervalMs: config.hookCheckIntervalMs,
  });
  return { client, graph, closeRunner, ownsClient: deps.client === undefined, metrics, syncer, reconciler, status, hookWatch };
}

/** Starts the daemon: list-then-watch, reconcile loop, status reports, health listener. */
export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<Agent> {
  const { log } = deps;
  let status: StatusReporter | undefined;
  let publisher: DataplaneStatusPublisher | undefined;
  let lastApplied: { revision: number; at: string; endpoints: DataplaneStatus['endpoints'] } | undefined;
  const metrics = deps.metrics ?? createAgentMetrics({ processMetrics: true });
  // Passes and kernel reads leave garbage and a grown young generation behind; give it back
  // once the agent is quiet.
  const quiet = new QuietCollector({
    clock: systemClock,
    collect: async (step) => {
      const before = getHeapStatistics().total_heap_size;
      const collected = step === 'release' ? (await compactHeap()).rounds > 0 : collectGarbage();
      if (!collected) return;
      metrics.quietCollections.inc({ step });
      log.debug({ step, committedMiB: [before, getHeapStatistics().total_heap_size].map((b) => Math.round(b / 1048576)) }, 'heap collected after a quiet spell');
    },
  });
  /** Starts the fast hook check; called on the first applied pass (before it there are no hooks of ours to check). */
  let startHookWatch: (() => void) | undefined;
  const hooks: PassHooks = {
    onStatuses: (statuses) => void status?.update(statuses),
    onKernelRead: () => quiet.worked(),
    onApplied: (report) => {
      quiet.worked();
      if (lastApplied === undefined) {
        // Listings beside the initial sync's restores only slowed them (measured at scale S: eight
        // listings during the ipset restores), and judged nothing: they overlapped our writes.
        startHookWatch?.();
        // The initial sync is in the kernel: what it decoded and rendered is garbage now.
        void compactHeap().then(({ rounds, committedBefore, committedAfter }) =>
          log.info({ rounds, committedMiB: [committedBefore, committedAfter].map((b) => Math.round(b / 1048576)) }, 'heap compacted after the initial sync'),
        );
      }
      const endpoints = { up: 0, down: 0, error: 0 };
      for (const { status: state } of report.endpointStatuses.values()) endpoints[state]++;
      lastApplied = { revision: report.revision, at: new Date().toISOString(), endpoints };
      publisher?.publish({ revision: report.revision, applied_at: lastApplied.at, last_error: null, endpoints });
    },
    onFailed: (reason) => {
      if (lastApplied) publisher?.publish({ revision: lastApplied.revision, applied_at: lastApplied.at, last_error: reason, endpoints: lastApplied.endpoints });
    },
  };
  const parts = await buildParts(config, { ...deps, metrics }, hooks, true);
  startHookWatch = () => parts.hookWatch.start();
  status = parts.status;
  const { syncer, reconciler, graph, client } = parts;
  // Part of status reporting: off with it (--reporting-interval=0), like the host status whose
  // lease tells `calicoctl status` and `--wait` that this agent is alive.
  if (config.reportingIntervalMs > 0) {
    publisher = new DataplaneStatusPublisher({
      hostname: config.hostname,
      log,
      write: async (key, value) => void (await client.put(key).value(value)),
    });
  }

  const live = (): boolean => reconciler.isLive();
  const ready = (): boolean => reconciler.applied && syncer.healthy() && reconciler.fatal === null;
  const statusReport = (): AgentStatusReport => ({
    hostname: config.hostname,
    inSync: syncer.inSync,
    ready: ready(),
    live: live(),
    datastoreConnected: syncer.connected,
    datastoreReady: syncer.datastoreReady,
    datastoreRevision: syncer.revision,
    appliedRevision: reconciler.appliedRevision,
    profiles: graph.profileCount,
    endpoints: graph.endpointCount,
    localEndpoints: reconciler.endpointStatuses.size,
    invalidKeys: syncer.invalidKeys.size,
    lastError: reconciler.fatal?.message ?? reconciler.lastError ?? (syncer.unreachableReason === null ? null : `etcd unreachable: ${syncer.unreachableReason}`),
  });

  const http = config.healthListen
    ? await startHttpServer({ listen: config.healthListen, registry: metrics.registry, health: { live, ready, status: statusReport }, log })
    : undefined;

  let rejectFatal: (error: Error) => void = () => {};
  const fatal = new Promise<never>((_, reject) => (rejectFatal = reject));
  fatal.catch(() => {}); // observed by whoever awaits it; never an unhandled rejection

  reconciler.start((error) => {
    log.fatal({ err: error }, 'giving up on the dataplane; exiting so the supervisor restarts the agent');
    rejectFatal(error);
  });
  status.start();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      log.info('stopping; the dataplane is left as it is');
      quiet.stop();
      await syncer.stop();
      await parts.hookWatch.stop();
      await reconciler.stop().catch(() => {});
      await status?.stop();
      await publisher?.stop();
      await parts.closeRunner();
      await http?.close();
      if (parts.ownsClient) parts.client.close();
    })());

  return { config, syncer, graph, reconciler, status, metrics, http, live, ready, statusReport, fatal, stop };
}

export interface OnceResult {
  /** `--dry-run`: the restore input that would be applied, per family. */
  plans?: { family: IpFamily; plan: FamilyPlan }[];
  report?: ApplyReport;
  revision: number;
  ms: number;
}

/** `--once`: one list, one reconcile pass (or plan only with `dryRun`), then stop. Rejects with a one-line reason. */
export async function runOnce(config: AgentConfig, deps: AgentDeps): Promise<OnceResult> {
  const started = performance.now();
  const parts = await buildParts(config, deps, { onStatuses: () => {} }, false);
  const { syncer, reconciler, status } = parts;
  try {
    try {
      await syncer.listOnce();
    } catch (error) {
      throw new Error(`cannot list etcd at ${config.etcd.endpoints.join(',')}: ${(error as Error).message.split('\n')[0]}`);
    }
    if (!syncer.datastoreReady) throw new Error('datastore is not Ready (/calico/v1/Ready is not "true"); nothing programmed');
    if (config.dryRun) {
      const plans = await reconciler.plan();
      return { plans, revision: syncer.revision, ms: performance.now() - started };
    }
    const report = await reconciler.reconcileOnce('once');
    if (!report) throw new Error('not in sync with etcd; nothing programmed');
    await status.update(report.endpointStatuses);
    return { report, revision: report.revision, ms: performance.now() - started };
  } finally {
    await status.stop();
    await parts.closeRunner();
    if (parts.ownsClient) parts.client.close();
  }
}

/** Renders dry-run plans as restore input with a comment header per step. */
export function formatPlans(plans: readonly { family: IpFamily; plan: FamilyPlan }[]): string {
  let out = '';
  for (const { family, plan } of plans) {
    const iptables = family === 4 ? 'iptables-restore' : 'ip6tables-restore';
    const steps: [string, string][] = [
      ['ipset restore (creates and member updates)', plan.ipsetUpdates],
      [`${iptables} --noflush (raw: changed chains and hooks)`, plan.iptablesUpdates.raw],
      [`${iptables} --noflush (filter: changed chains and hooks)`, plan.iptablesUpdates.filter],
      [`${iptables} --noflush (raw: chain deletions)`, plan.iptablesDeletions.raw],
      [`${iptables} --noflush (filter: chain deletions)`, plan.iptablesDeletions.filter],
      ['ipset restore (set deletions)', plan.ipsetDeletions],
    ];
    const nonEmpty = steps.filter(([, text]) => text !== '');
    if (nonEmpty.length === 0) out += `# IPv${family}: no changes\n`;
    for (const [title, text] of nonEmpty) out += `# IPv${family} ${title}\n${text}`;
  }
  return out;
}
