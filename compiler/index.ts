/**
 * The pure policy compiler for one host: per-key deltas → desired chains and sets and what
 * changed (CalcGraph); Snapshot → DataplaneSpec (compile, the graph's oracle); restore text
 * (plan.ts). Imports only the data model; no I/O, clocks or environment.
 */
export { CalcGraph, type DesiredFamily, type DesiredIpset, type FamilyChanges, type GraphChanges } from './calc-graph.js';
export { compile } from './compile.js';
export { defaultCompilerConfig } from './config.js';
export {
  emptyKernelState,
  isEmptyPlan,
  kernelStateOf,
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
export type * from './types.js';
