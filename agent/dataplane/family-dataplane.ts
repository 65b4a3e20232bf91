/**
 * One IP family's kernel dataplane (FamilyDataplane): reads our chains, hooks and ipsets back, and
 * applies restore text, reporting every exec to an observer (for metrics and logs).
 *
 * Invariants:
 * - Single attempt per call: retry, backoff and re-read policy belong to the reconciler.
 * - Blank input is "nothing to do": no process is started and nothing is observed.
 * - Every exec started is observed exactly once, success or failure; `bytes` is the size of the
 *   input written (restores) or of the output read (saves).
 */
import type { IpFamily, KernelFamilyState, TableName } from '../../compiler/types.js';
import type { IptablesBackend } from './iptables-backend.js';
import { createTableIo } from './iptables.js';
import { createIpsetIo, type IpsetIo } from './ipsets.js';
import type { CommandRunner, ExecObserver, FamilyDataplane } from './types.js';

export interface FamilyDataplaneOptions {
  runner: CommandRunner;
  family: IpFamily;
  backend: IptablesBackend;
  observer?: ExecObserver;
  /**
   * The ipset tools, shared by the families (one `ipset save` then serves the reads of both, and
   * one interactive session their small updates); default: `ipset` through `runner` alone.
   */
  ipsets?: IpsetIo;
}

type ObservedTool = Parameters<ExecObserver>[0]['tool'];

export function createFamilyDataplane(options: FamilyDataplaneOptions): FamilyDataplane {
  const { runner, family, backend } = options;
  const observer: ExecObserver = options.observer ?? (() => undefined);
  const tables = createTableIo(runner, backend);
  const ipsets = options.ipsets ?? createIpsetIo(runner);
  const ipsetFamily = family === 4 ? 'inet' : 'inet6';

  /** Runs `action`, observing it; `bytesOf` measures the result, `inputBytes` a write's size. */
  async function observed<T>(
    tool: ObservedTool,
    table: TableName | undefined,
    action: () => Promise<T>,
    bytesOf: (value: T) => number,
    inputBytes = 0,
  ): Promise<T> {
    const started = performance.now();
    const event = (ok: boolean, bytes: number) =>
      observer({ tool, family, ...(table ? { table } : {}), bytes, durationMs: performance.now() - started, ok });
    try {
      const value = await action();
      event(true, bytesOf(value));
      return value;
    } catch (error) {
      event(false, inputBytes);
      throw error;
    }
  }

  const readTable = (table: TableName, signal: AbortSignal | undefined) =>
    observed('iptables-save', table, () => tables.readTable(family, table, signal), (read) => Buffer.byteLength(read.result.stdout));

  return {
    family,
    async read(options = {}): Promise<KernelFamilyState> {
      const { signal } = options;
      const [filter, raw, sets] = await Promise.all([
        readTable('filter', signal),
        readTable('raw', signal),
        observed('ipset', undefined, () => ipsets.read(ipsetFamily, signal), (read) => Buffer.byteLength(read.result.stdout)),
      ]);
      return { tables: { filter: filter.state, raw: raw.state }, ipsets: sets.sets };
    },
    async applyIpsets(input) {
      if (input.trim() === '') return;
      const bytes = Buffer.byteLength(input);
      await observed('ipset', undefined, () => ipsets.apply(input), () => bytes, bytes);
    },
    async applyIptables(table, input) {
      if (input.trim() === '') return;
      const bytes = Buffer.byteLength(input);
      await observed('iptables-restore', table, () => tables.restore(family, table, input), () => bytes, bytes);
    },
  };
}
