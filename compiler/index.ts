/**
 * The pure policy compiler: Snapshot → DataplaneSpec (compile) → restore text (planFamily /
 * renderFamily) for one host. Imports only the data model; no I/O, clocks or environment.
 */
export { CalcGraph, type DesiredFamily, type DesiredIpset, type FamilyChanges, type GraphChanges } from './calc-graph.js';
export { compile, Compiler } from './compile.js';
export { defaultCompilerConfig } from './config.js';
export { emptyKernelState, isEmptyPlan, kernelStateOf, planFamily, renderFamily } from './plan.js';
export * from './names.js';
export type * from './types.js';
