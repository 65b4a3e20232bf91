/**
 * The pure policy compiler for one host: per-key deltas → desired chains and sets and what
 * changed (CalcGraph); Snapshot → DataplaneSpec (compile, the graph's oracle); restore text
 * (plan.ts); a packet walked through a compiled dataplane (packet-eval.ts, trace.ts). Imports only the data model; no I/O, clocks or environment.
 */
export { CalcGraph, type CountedRule, type DesiredFamily, type DesiredIpset, type FamilyChanges, type GraphChanges } from './calc-graph.js';
export { compile } from './compile.js';
export { defaultCompilerConfig } from './config.js';
export {
  emptyKernelState,
  isEmptyPlan,
  kernelStateOf,
  memberDeltaText,
  planChainDeletions,
  planChainUpdates,
  planFamily,
  planHookRepair,
  planIpsetUpdate,
  renderFamily,
  sameHashes,
  sameIpsetMetadata,
  type IpsetContent,
} from './plan.js';
export * from './names.js';
export { PacketWalker, protocolNumber, UnsupportedRuleError, type Hop, type TracedPacket, type WalkResult, type WalkStep } from './packet-eval.js';
export {
  partyOf,
  resolveParty,
  traceFamily,
  TraceInputError,
  tracePacket,
  type ClusterSnapshot,
  type ProfileVisit,
  type SideTrace,
  type TraceParty,
  type TraceResult,
} from './trace.js';
export type * from './types.js';
