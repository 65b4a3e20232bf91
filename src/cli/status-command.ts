/**
 * `calicoctl status [-o table|json]`: one row per host whose agent publishes its dataplane
 * status (src/datastore/agent-status.ts): alive or stale, the etcd revision its kernel reflects,
 * how far that lags behind the newest policy write, when it last applied, its last error, and
 * its local endpoints per state.
 *
 * Lag is counted in etcd revisions against the newest key under `/calico/v1/` (status writes and
 * other keys move etcd's revision too, but are nothing an agent must enforce); 0 means current.
 */
import { readAgentStatuses, type AgentStatusSnapshot } from '../datastore/index.js';
import { splitOptions, UsageError, type CliContext } from './cli-context.js';
import { renderTable } from './pretty-table.js';

export const STATUS_USAGE = [
  'Usage:',
  '  calicoctl status [-o <FORMAT> | --output=<FORMAT>]',
  '',
  'Description:',
  '  Show each host running calico-agent: alive or stale, the etcd revision its dataplane',
  '  enforces, its lag behind the newest policy write, last apply, last error, and its',
  '  endpoints per state (up/down/error).',
  '',
  'Options:',
  '  -o, --output=<FORMAT>  table (default) or json.',
].join('\n');

export interface HostStatusRow {
  host: string;
  agent: 'alive' | 'stale';
  /** Null when the host's published value is unreadable. */
  revision: number | null;
  lag: number | null;
  appliedAt: string | null;
  lastError: string | null;
  endpoints: { up: number; down: number; error: number } | null;
}

export function statusRows(snapshot: AgentStatusSnapshot): HostStatusRow[] {
  return snapshot.hosts.map(({ host, alive, dataplane }) => ({
    host,
    agent: alive ? 'alive' : 'stale',
    revision: dataplane?.revision ?? null,
    lag: dataplane ? Math.max(0, snapshot.policyRevision - dataplane.revision) : null,
    appliedAt: dataplane?.applied_at ?? null,
    lastError: dataplane?.last_error ?? null,
    endpoints: dataplane?.endpoints ?? null,
  }));
}

export async function runStatus(args: string[], ctx: CliContext): Promise<void> {
  const options = splitOptions(args, { flags: ['--help', '-h'], valued: ['-o', '--output'] }, STATUS_USAGE);
  if (options.flags.has('--help') || options.flags.has('-h')) {
    ctx.out(`${STATUS_USAGE}\n`);
    return;
  }
  const format = options.values.get('-o') ?? options.values.get('--output') ?? 'table';
  if (options.positionals.length > 0 || (format !== 'table' && format !== 'json') || (options.values.has('-o') && options.values.has('--output'))) {
    throw new UsageError(STATUS_USAGE);
  }
  const snapshot = await readAgentStatuses(ctx.kv());
  const rows = statusRows(snapshot);
  if (format === 'json') {
    ctx.out(`${JSON.stringify({ revision: snapshot.revision, policyRevision: snapshot.policyRevision, hosts: rows }, null, 2)}\n`);
    return;
  }
  const cell = (value: number | string | null): string => (value === null ? '-' : String(value));
  const table = renderTable(
    ['Host', 'Agent', 'Revision', 'Lag', 'Last apply', 'Endpoints up/down/error', 'Last error'],
    rows.map((row) => [
      row.host,
      row.agent,
      cell(row.revision),
      cell(row.lag),
      cell(row.appliedAt),
      row.endpoints ? `${row.endpoints.up}/${row.endpoints.down}/${row.endpoints.error}` : '-',
      cell(row.lastError),
    ]),
  );
  ctx.out(`${table}\nNewest policy write: etcd revision ${snapshot.policyRevision}.\n`);
}
