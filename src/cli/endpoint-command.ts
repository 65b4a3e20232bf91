/**
 * `calicoctl endpoint …`: list workload endpoints and edit the profiles assigned to one
 * (reference §4.12; table layouts as calicoctl's endpoint.py).
 *
 * Profile edits are read-modify-write transactions on the endpoint's RAW JSON, so members this
 * code does not model are preserved; a legacy `profile_id` is rewritten as `profile_ids`.
 */
import { endpointProfileIds, type StoredEndpoint } from '../datastore/index.js';
import { CliError, splitOptions, UsageError, type CliContext } from './cli-context.js';
import { renderTable, sortRows } from './pretty-table.js';
import { checkArguments } from './rule-spec.js';

export const ENDPOINT_USAGE = [
  'Usage:',
  '  calicoctl endpoint show [--host=<HOSTNAME>] [--orchestrator=<ORCHESTRATOR_ID>]',
  '    [--workload=<WORKLOAD_ID>] [--endpoint=<ENDPOINT_ID>] [--detailed]',
  '  calicoctl endpoint <ENDPOINT_ID> profile (append|remove|set) [--host=<HOSTNAME>]',
  '    [--orchestrator=<ORCHESTRATOR_ID>] [--workload=<WORKLOAD_ID>] [<PROFILES>...]',
  '  calicoctl endpoint <ENDPOINT_ID> profile show [--host=<HOSTNAME>]',
  '    [--orchestrator=<ORCHESTRATOR_ID>] [--workload=<WORKLOAD_ID>]',
].join('\n');

const ENDPOINT_HELP = [
  ENDPOINT_USAGE,
  '',
  'Description:',
  '  Show workload endpoints, and show or change the profiles assigned to an endpoint.',
  '',
  'Options:',
  '  --detailed                        Show one row per endpoint with its addresses, MAC,',
  '                                    profiles and state.',
  '  --host=<HOSTNAME>                 Only endpoints on this host.',
  '  --orchestrator=<ORCHESTRATOR_ID>  Only endpoints created by this orchestrator.',
  '  --workload=<WORKLOAD_ID>          Only endpoints of this workload.',
  '  --endpoint=<ENDPOINT_ID>          Only the endpoint with this ID.',
].join('\n');

function usage(): never {
  throw new UsageError(ENDPOINT_USAGE);
}

interface Filter {
  host?: string;
  orchestrator?: string;
  workload?: string;
  endpointId?: string;
}

async function findEndpoints(ctx: CliContext, filter: Filter): Promise<StoredEndpoint[]> {
  const all = await ctx.store().listEndpoints(filter.host === undefined ? {} : { host: filter.host });
  return all.filter(
    (e) =>
      (filter.orchestrator === undefined || e.ref.orchestrator === filter.orchestrator) &&
      (filter.workload === undefined || e.ref.workload === filter.workload) &&
      (filter.endpointId === undefined || e.ref.endpointId === filter.endpointId),
  );
}

async function showEndpoints(ctx: CliContext, filter: Filter, detailed: boolean): Promise<void> {
  const endpoints = await findEndpoints(ctx, filter);
  if (detailed) {
    const rows = endpoints.map((e) => {
      const raw = (e.raw ?? {}) as Record<string, unknown>;
      const nets = e.endpoint ? [...e.endpoint.ipv4_nets, ...e.endpoint.ipv6_nets] : [];
      return [
        e.ref.host,
        e.ref.orchestrator,
        e.ref.workload,
        e.ref.endpointId,
        nets.join('\n'),
        String(e.endpoint?.mac ?? raw.mac ?? 'None'),
        endpointProfileIds(e).join(','),
        String(e.endpoint?.state ?? raw.state ?? 'None'),
      ];
    });
    const headers = ['Hostname', 'Orchestrator ID', 'Workload ID', 'Endpoint ID', 'Addresses', 'MAC', 'Profiles', 'State'];
    ctx.out(`${renderTable(headers, sortRows(rows))}\n\n`);
    return;
  }
  const summary = new Map<string, { host: string; orchestrator: string; workloads: Set<string>; endpoints: number }>();
  for (const e of endpoints) {
    const id = `${e.ref.host}/${e.ref.orchestrator}`;
    const entry = summary.get(id) ?? { host: e.ref.host, orchestrator: e.ref.orchestrator, workloads: new Set(), endpoints: 0 };
    entry.workloads.add(e.ref.workload);
    entry.endpoints++;
    summary.set(id, entry);
  }
  const rows = [...summary.values()].map((s) => [s.host, s.orchestrator, String(s.workloads.size), String(s.endpoints)]);
  const headers = ['Hostname', 'Orchestrator ID', 'Number of Workloads', 'Number of Endpoints'];
  ctx.out(`${renderTable(headers, sortRows(rows))}\n\n`);
}

async function theEndpoint(ctx: CliContext, filter: Filter): Promise<StoredEndpoint> {
  const matches = await findEndpoints(ctx, filter);
  if (matches.length === 0) throw new CliError(`Endpoint ${filter.endpointId ?? ''} is unknown to Calico.`);
  if (matches.length > 1) {
    throw new CliError('More than 1 endpoint matches the provided criteria.  Please provide additional parameters to refine the search.');
  }
  return matches[0]!;
}

/** The endpoint's profile list from raw JSON, migrating a legacy `profile_id`. */
function rawProfileIds(raw: Record<string, unknown>): string[] {
  if (Array.isArray(raw.profile_ids)) return raw.profile_ids.filter((p): p is string => typeof p === 'string');
  return typeof raw.profile_id === 'string' ? [raw.profile_id] : [];
}

function withProfileIds(raw: Record<string, unknown>, ids: string[]): Record<string, unknown> {
  const { profile_id: _legacy, ...rest } = raw;
  return { ...rest, profile_ids: ids };
}

async function editProfiles(
  ctx: CliContext,
  filter: Filter,
  verb: 'append' | 'remove' | 'set',
  profiles: string[],
): Promise<void> {
  const problems = checkArguments({ profiles });
  if (problems) throw new CliError(problems.replace(/\n$/, ''));
  if (profiles.length === 0 && verb !== 'set') throw new CliError('No profile specified.');
  const seen = new Set<string>();
  for (const p of profiles) {
    if (seen.has(p)) throw new CliError(`Profile with name ${p} was specified more than once.`);
    seen.add(p);
  }
  const store = ctx.store();
  for (const p of profiles) {
    if (!(await store.profileExists(p))) throw new CliError(`Profile with name ${p} was not found.`);
  }
  const target = await theEndpoint(ctx, filter);
  await store.updateEndpoint(target.ref, (raw) => {
    const current = rawProfileIds(raw);
    if (verb === 'append') {
      const present = profiles.find((p) => current.includes(p));
      if (present !== undefined) throw new CliError(`Profile ${present} is already in endpoint profile list`);
      return withProfileIds(raw, [...current, ...profiles]);
    }
    if (verb === 'remove') {
      const absent = profiles.find((p) => !current.includes(p));
      if (absent !== undefined) throw new CliError(`Profile ${absent} is not in endpoint profile list.`);
      return withProfileIds(raw, current.filter((p) => !profiles.includes(p)));
    }
    return withProfileIds(raw, [...profiles]);
  });
  if (verb === 'append') ctx.out(`Profile(s) ${profiles.join(', ')} appended.\n`);
  else if (verb === 'remove') ctx.out(`Profile(s) ${profiles.join(',')} removed.\n`);
  else if (profiles.length === 0) ctx.out('Removed all profiles from endpoint.\n');
  else ctx.out(`Profile(s) set to ${profiles.join(', ')}.\n`);
}

export async function runEndpoint(args: string[], ctx: CliContext): Promise<void> {
  const options = splitOptions(
    args,
    { flags: ['--detailed', '--help', '-h'], valued: ['--host', '--orchestrator', '--workload', '--endpoint'] },
    ENDPOINT_USAGE,
  );
  if (options.flags.has('--help') || options.flags.has('-h')) {
    ctx.out(`${ENDPOINT_HELP}\n`);
    return;
  }
  const filter: Filter = {};
  const host = options.values.get('--host');
  const orchestrator = options.values.get('--orchestrator');
  const workload = options.values.get('--workload');
  if (host !== undefined) filter.host = host;
  if (orchestrator !== undefined) filter.orchestrator = orchestrator;
  if (workload !== undefined) filter.workload = workload;
  const p = options.positionals;
  if (p[0] === 'show' && p.length === 1) {
    const endpointId = options.values.get('--endpoint');
    if (endpointId !== undefined) filter.endpointId = endpointId;
    await showEndpoints(ctx, filter, options.flags.has('--detailed'));
    return;
  }
  const [endpointId, group, verb, ...profiles] = p;
  if (endpointId === undefined || group !== 'profile' || options.flags.has('--detailed') || options.values.has('--endpoint')) {
    usage();
  }
  filter.endpointId = endpointId;
  if (verb === 'show' && profiles.length === 0) {
    const { endpoint, raw } = await theEndpoint(ctx, filter);
    const ids = endpoint?.profile_ids ?? rawProfileIds((raw ?? {}) as Record<string, unknown>);
    if (ids.length === 0) ctx.out('Endpoint has no profiles associated with it.\n');
    else ctx.out(`${renderTable(['Name'], sortRows(ids.map((id) => [id])))}\n\n`);
    return;
  }
  if (verb !== 'append' && verb !== 'remove' && verb !== 'set') usage();
  await editProfiles(ctx, filter, verb, profiles);
}
