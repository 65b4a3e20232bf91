/**
 * Prometheus metrics of the agent, on a private registry (so tests can run several agents in
 * one process). Names follow Felix's where one exists (perf-reliability.md C3, C5.11).
 *
 * Invariant: metrics only observe; nothing reads them back to make decisions.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface AgentMetrics {
  registry: Registry;
  /** etcd event receipt → kernel holds the change (one observation per apply carrying events). */
  datastoreToDataplaneSeconds: Histogram<never>;
  /** Wall time of each apply (read-back, plan, writes). */
  applySeconds: Histogram<'reason'>;
  restoreCalls: Counter<'tool' | 'family' | 'table' | 'result'>;
  restoreBytes: Histogram<'tool' | 'family' | 'table' | 'result'>;
  readbackCalls: Counter<'tool' | 'family' | 'result'>;
  applyFailures: Counter<'stage'>;
  resyncs: Counter<'reason'>;
  invalidKeys: Counter<'kind'>;
  driftRepairs: Counter<'family'>;
  /** QuietCollector steps run once the agent fell quiet after work (agent/heap.ts). */
  quietCollections: Counter<'step'>;
  endpointsProgrammed: Gauge<never>;
  rulesProgrammed: Gauge<'family'>;
  initialResyncSeconds: Gauge<never>;
  appliedRevision: Gauge<never>;
  datastoreInSync: Gauge<never>;
  datastoreConnected: Gauge<never>;
}

export function createAgentMetrics(options: { processMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const restoreCalls = new Counter({
    name: 'calico_agent_restore_calls_total',
    help: 'iptables-restore / ipset restore invocations',
    labelNames: ['tool', 'family', 'table', 'result'] as const,
    registers,
  });
  const restoreBytes = new Histogram({
    name: 'calico_agent_restore_bytes',
    help: 'Bytes of restore input per invocation',
    labelNames: ['tool', 'family', 'table', 'result'] as const,
    buckets: [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304],
    registers,
  });
  const readbackCalls = new Counter({
    name: 'calico_agent_readback_calls_total',
    help: 'iptables-save / ipset save read-backs of our kernel state',
    labelNames: ['tool', 'family', 'result'] as const,
    registers,
  });
  return {
    registry,
    datastoreToDataplaneSeconds: new Histogram({
      name: 'calico_agent_datastore_to_dataplane_seconds',
      help: 'Time from receiving an etcd event to the kernel holding the change',
      buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    applySeconds: new Histogram({
      name: 'calico_agent_apply_seconds',
      help: 'Duration of each dataplane apply (read-back, plan and writes)',
      labelNames: ['reason'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    restoreCalls,
    restoreBytes,
    readbackCalls,
    applyFailures: new Counter({
      name: 'calico_agent_apply_failures_total',
      help: 'Failed dataplane applies (each is retried)',
      labelNames: ['stage'] as const,
      registers,
    }),
    resyncs: new Counter({
      name: 'calico_agent_resyncs_total',
      help: 'Full etcd lists (start, compaction, watch cancel)',
      labelNames: ['reason'] as const,
      registers,
    }),
    invalidKeys: new Counter({
      name: 'calico_agent_invalid_keys_total',
      help: 'etcd values that failed validation and were treated as absent',
      labelNames: ['kind'] as const,
      registers,
    }),
    driftRepairs: new Counter({
      name: 'calico_agent_drift_repairs_total',
      help: 'Read-backs that found our kernel state changed by someone else and rewrote it',
      labelNames: ['family'] as const,
      registers,
    }),
    quietCollections: new Counter({
      name: 'calico_agent_quiet_collections_total',
      help: 'Heap collection steps (release: free and compact; shrink: young generation) run once the agent had been quiet for a while after work',
      labelNames: ['step'] as const,
      registers,
    }),
    endpointsProgrammed: new Gauge({
      name: 'calico_agent_endpoints_programmed',
      help: 'Local endpoints in the last applied dataplane',
      registers,
    }),
    rulesProgrammed: new Gauge({
      name: 'calico_agent_rules_programmed',
      help: 'Rules in our chains in the last applied dataplane',
      labelNames: ['family'] as const,
      registers,
    }),
    initialResyncSeconds: new Gauge({
      name: 'calico_agent_initial_resync_seconds',
      help: 'Time from start to the first complete apply after in-sync',
      registers,
    }),
    appliedRevision: new Gauge({
      name: 'calico_agent_applied_revision',
      help: 'The etcd revision the kernel state reflects',
      registers,
    }),
    datastoreInSync: new Gauge({ name: 'calico_agent_datastore_in_sync', help: '1 once the first etcd list is complete', registers }),
    datastoreConnected: new Gauge({ name: 'calico_agent_datastore_connected', help: '1 while the etcd watch is connected', registers }),
  };
}
