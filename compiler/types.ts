/**
 * The contract between the pure compiler and the agent's dataplane writers.
 *
 *   per-key deltas ──CalcGraph──▶ desired chains/sets + what changed ──▶ the agent's writers
 *   Snapshot ──compile()──▶ DataplaneSpec ──planFamily(spec, KernelFamilyState)──▶ FamilyPlan (restore text)
 *
 * Invariants:
 * - A Snapshot holds plain data only; `compile` depends on its contents, never on the order in
 *   which maps were filled.
 * - Every rule the compiler emits carries a hash comment (`HASH_COMMENT_PREFIX` + id) that
 *   fingerprints the chain name, its position and its text. The agent reads kernel state back as
 *   those hashes (`KernelFamilyState`), never by parsing rule text.
 * - Chains and ipsets are identified as ours by name prefix only (see names.ts).
 */
import type { Endpoint, EndpointRef, IpVersion, Rules, Tags } from '../src/model/index.js';

export type IpFamily = IpVersion;
export type TableName = 'filter' | 'raw';
export type EndpointToHostAction = 'DROP' | 'RETURN' | 'ACCEPT';

export interface PortSpec {
  protocol: 'tcp' | 'udp';
  port: number;
}

export interface CompilerConfig {
  /** Workload interface prefix, e.g. `cali`. */
  interfacePrefix: string;
  /** The single mark bit used to carry "profile accepted" (default 0x1000000). */
  acceptMarkBit: number;
  /** Ports on this host that workloads may always reach (workload → host). */
  failsafeInboundHostPorts: readonly PortSpec[];
  /** Ports of workloads that this host may always reach (host → workload). */
  failsafeOutboundHostPorts: readonly PortSpec[];
  /** What happens to workload → host traffic after DHCP/DNS/failsafe (default DROP). */
  endpointToHostAction: EndpointToHostAction;
  /** maxelem of tag ipsets. */
  maxIpsetSize: number;
}

/** A profile as the datastore holds it; `rules` undefined means missing or invalid (fail closed). */
export interface ProfileInput {
  rules?: Rules;
  tags?: Tags;
}

export interface EndpointInput {
  ref: EndpointRef;
  endpoint: Endpoint;
  /** etcd create revision of the endpoint's key, when known: who claimed an address first (local-claims.ts). */
  createRevision?: number;
}

export interface Snapshot {
  hostname: string;
  profiles: ReadonlyMap<string, ProfileInput>;
  /** Every valid endpoint of every host, keyed by its etcd key. */
  endpoints: ReadonlyMap<string, EndpointInput>;
  config: CompilerConfig;
}

/** A chain we own; `rules` are restore lines without the `-A <chain> ` prefix, hash comment included. */
export interface ChainSpec {
  name: string;
  rules: readonly string[];
  /** One hash per rule, as embedded in its comment. */
  hashes: readonly string[];
}

/** A rule we keep at position 1 of a kernel built-in chain, e.g. `INPUT -j cali-INPUT`. */
export interface HookSpec {
  builtin: 'INPUT' | 'FORWARD' | 'OUTPUT' | 'PREROUTING';
  /** Rule text without `-A <builtin> `, hash comment included. */
  rule: string;
  hash: string;
}

export interface TableSpec {
  chains: ReadonlyMap<string, ChainSpec>;
  hooks: readonly HookSpec[];
}

export interface IpsetSpec {
  name: string;
  family: 'inet' | 'inet6';
  type: 'hash:net';
  maxelem: number;
  /** Sorted, in the form `ipset save` prints them (host prefixes omitted). */
  members: readonly string[];
}

export interface FamilySpec {
  family: IpFamily;
  tables: Readonly<Record<TableName, TableSpec>>;
  ipsets: ReadonlyMap<string, IpsetSpec>;
}

/** Something in the snapshot that was ignored or failed closed, for logs and metrics. */
export interface Diagnostic {
  kind: 'missing-profile' | 'invalid-endpoint' | 'ipset-too-large' | 'rule-skipped';
  subject: string;
  message: string;
}

export interface DataplaneSpec {
  v4: FamilySpec;
  v6: FamilySpec;
  diagnostics: readonly Diagnostic[];
  /** Local endpoints by interface name, for per-interface plumbing (routes, sysctls). */
  localEndpoints: ReadonlyMap<string, EndpointInput>;
}

/** What the kernel holds in one table, as read back by the agent. */
export interface KernelTableState {
  /** Our chains (by name prefix): the hash of each rule in order, null for a rule without one. */
  chains: ReadonlyMap<string, readonly (string | null)[]>;
  /** Built-in chains we hook (INPUT, FORWARD, OUTPUT, PREROUTING): every rule in order. */
  builtins: ReadonlyMap<string, readonly BuiltinRule[]>;
  /** Kernel counters of our rules that matched at least one packet, by rule hash (when read). */
  counters?: ReadonlyMap<string, RuleCounter>;
}

export interface RuleCounter {
  packets: number;
  bytes: number;
}

/**
 * A rule of a built-in chain as read back: `hash` is set when the rule carries our hash comment
 * (it is one of our hooks); `rule` is its text as `iptables-save` prints it, without
 * `-A <chain> `, so a stale hook can be deleted by specification.
 */
export interface BuiltinRule {
  hash: string | null;
  rule: string;
}

export interface KernelIpsetState {
  name: string;
  family: 'inet' | 'inet6';
  type: string;
  maxelem: number;
  members: ReadonlySet<string>;
}

export interface KernelFamilyState {
  tables: Readonly<Record<TableName, KernelTableState>>;
  ipsets: ReadonlyMap<string, KernelIpsetState>;
}

/**
 * The writes that take the kernel from `actual` to `desired` for one family, in the order they
 * must run. Empty strings mean "nothing to do" for that step.
 */
export interface FamilyPlan {
  /** `ipset restore` input: set creations and member adds/dels (before any rule references them). */
  ipsetUpdates: string;
  /** `ip[6]tables-restore --noflush` input per table: changed chains and hook repairs. */
  iptablesUpdates: Readonly<Record<TableName, string>>;
  /** Second transaction per table: flush and delete chains we own that are no longer wanted. */
  iptablesDeletions: Readonly<Record<TableName, string>>;
  /** `ipset restore` input: destroy sets no longer referenced (after the rules are gone). */
  ipsetDeletions: string;
}
