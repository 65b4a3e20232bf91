/**
 * Interfaces between the reconciler and the kernel writers. The CommandRunner is the single seam
 * that tests replace (a recording runner, or a runner that fails on purpose).
 */
import type { IpFamily, KernelFamilyState, TableName } from '../../compiler/types.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface RunOptions {
  /** Written to the command's stdin (then stdin is closed). */
  input?: string;
  timeoutMs?: number;
  /** Aborting kills the program; the run rejects with a CommandError whose `aborted` is true. */
  signal?: AbortSignal;
}

/** Runs one program (argv[0] looked up on PATH), in the dataplane's network namespace. */
export interface CommandRunner {
  run(argv: readonly string[], options?: RunOptions): Promise<CommandResult>;
}

/** Observes every kernel write/read, for metrics and logs. */
export interface ExecObserver {
  (event: { tool: 'iptables-restore' | 'iptables-save' | 'ipset'; family: IpFamily; table?: TableName;
    bytes: number; durationMs: number; ok: boolean }): void;
}

/** One IP family's kernel state: read it back, and apply restore input to it. */
export interface FamilyDataplane {
  readonly family: IpFamily;
  /** Reads our chains, our hooks and our ipsets (of this family) from the kernel; `signal` aborts it. */
  read(options?: { signal?: AbortSignal }): Promise<KernelFamilyState>;
  /** `ipset restore` with the given input; rejects with a CommandError carrying stderr and input. */
  applyIpsets(input: string): Promise<void>;
  /** `ip[6]tables-restore --noflush` for one table; rejects with a CommandError. */
  applyIptables(table: TableName, input: string): Promise<void>;
}
