/**
 * `calicoctl workload add|remove`: attach an existing network namespace to this host's dataplane
 * as a Calico workload (veth pair + addresses + routes, see workload-veth.ts) and register its
 * endpoint in etcd, or undo both.
 *
 * Endpoint identity: `/calico/v1/host/<host>/workload/cli/<NAME>/endpoint/<id>`, where `<id>` is
 * the first 32 hex digits of sha256("<host>/cli/<NAME>") and the host-side interface is the
 * interface prefix (`cali`, or CALICO_AGENT_INTERFACE_PREFIX, the agent's own setting) followed
 * by the first hex digits of that id up to 15 characters, as libcalico named them.
 *
 * Invariants:
 * - Everything is checked before anything changes: names, addresses (unicast, not in use by
 *   another endpoint), profiles (must exist), namespaces (must exist), the interfaces (must not
 *   exist), the workload's default routes (must not exist) and the workload itself (must not be
 *   registered on this host).
 * - Nothing is left half-made: a failed veth set-up deletes the pair; a failed etcd write
 *   deletes the pair; the etcd write happens last and only creates (never overwrites).
 * - `remove` deletes the pair first and the keys after, so a failure leaves the workload
 *   registered and `remove` can simply be re-run.
 */
import {
  canonicalIp,
  ID_PATTERN,
  parseCidr,
  sha256Hex,
  type EndpointRef,
  type IpVersion,
} from '../model/index.js';
import { CliError, resolveHostname, UsageError, type CliContext } from './cli-context.js';
import {
  assertNamespace,
  createWorkloadVeth,
  defaultRouteFamilies,
  deleteHostInterface,
  IPV4_GATEWAY,
  IPV6_GATEWAY,
  linkExists,
  WORKLOAD_INTERFACE,
  type NamespaceRef,
} from './workload-veth.js';

/** The orchestrator id of workloads made by calicoctl. */
export const CLI_ORCHESTRATOR = 'cli';
const DEFAULT_INTERFACE_PREFIX = 'cali';
const INTERFACE_PREFIX_PATTERN = /^[a-zA-Z0-9_-]{1,10}$/;
const MAX_INTERFACE_NAME = 15;

export const WORKLOAD_USAGE = [
  'Usage:',
  '  calicoctl workload add <NAME> --netns=<NETNS> --ip=<IP>... [--profile=<PROFILE>...]',
  '    [--hostname=<HOSTNAME>] [--dataplane-netns=<NETNS>]',
  '  calicoctl workload remove <NAME> [--hostname=<HOSTNAME>] [--dataplane-netns=<NETNS>]',
].join('\n');

const WORKLOAD_HELP = [
  WORKLOAD_USAGE,
  '',
  'Description:',
  '  Attach an existing network namespace (ip netns) to this host as a Calico workload: a veth',
  '  pair (host side cali<hash>, workload side eth0 with the given addresses and a default route',
  '  via 169.254.1.1 / fe80::ecee:eeff:feee:eeee) and an endpoint in etcd. The calico-agent on',
  '  this host then plumbs the host side and enforces the endpoint\'s profiles.',
  '',
  'Options:',
  '  --netns=<NETNS>            The workload\'s network namespace (must exist).',
  '  --ip=<IP>                  An IPv4 or IPv6 address of the workload (repeatable).',
  '  --profile=<PROFILE>        A profile for the endpoint (repeatable; must exist).',
  '  --hostname=<HOSTNAME>      This host\'s name in etcd [CALICO_HOSTNAME, else the system name].',
  '  --dataplane-netns=<NETNS>  The network namespace acting as this host\'s dataplane',
  '                             [CALICO_AGENT_DATAPLANE_NETNS, else the current namespace].',
].join('\n');

interface WorkloadOptions {
  positionals: string[];
  single: Map<string, string>;
  ips: string[];
  profiles: string[];
  help: boolean;
}

const SINGLE_OPTIONS = new Set(['--netns', '--hostname', '--dataplane-netns']);

/** Options may repeat only where a list is expected (`--ip`, `--profile`). */
function parseOptions(args: readonly string[]): WorkloadOptions {
  const parsed: WorkloadOptions = { positionals: [], single: new Map(), ips: [], profiles: [], help: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') {
      parsed.help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      parsed.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const value = eq < 0 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new UsageError(WORKLOAD_USAGE);
    if (name === '--ip') parsed.ips.push(value);
    else if (name === '--profile') parsed.profiles.push(value);
    else if (SINGLE_OPTIONS.has(name) && !parsed.single.has(name)) parsed.single.set(name, value);
    else throw new UsageError(WORKLOAD_USAGE);
  }
  return parsed;
}

function assertWorkloadName(name: string): void {
  if (!ID_PATTERN.test(name)) {
    throw new CliError(`Invalid workload name ${JSON.stringify(name)}: use letters, digits, '_', '.' and '-'.`);
  }
}

/** The host dataplane namespace: the flag, else the agent's environment variable, else none. */
function dataplaneNamespace(options: WorkloadOptions, env: NodeJS.ProcessEnv): NamespaceRef {
  const name = options.single.get('--dataplane-netns') ?? (env.CALICO_AGENT_DATAPLANE_NETNS?.trim() || undefined);
  if (name !== undefined) assertNamespace(name, 'dataplane namespace');
  return { name };
}

function interfacePrefix(env: NodeJS.ProcessEnv): string {
  const prefix = env.CALICO_AGENT_INTERFACE_PREFIX?.trim() || DEFAULT_INTERFACE_PREFIX;
  if (!INTERFACE_PREFIX_PATTERN.test(prefix)) {
    throw new CliError(`Invalid CALICO_AGENT_INTERFACE_PREFIX ${JSON.stringify(prefix)}: expected 1-10 of [a-zA-Z0-9_-].`);
  }
  return prefix;
}

/** The endpoint reference and host-side interface name of workload `name` on `host`. */
export function workloadIdentity(host: string, name: string, prefix = DEFAULT_INTERFACE_PREFIX): { ref: EndpointRef; hostInterface: string } {
  const endpointId = sha256Hex(`${host}/${CLI_ORCHESTRATOR}/${name}`, 32);
  return {
    ref: { host, orchestrator: CLI_ORCHESTRATOR, workload: name, endpointId },
    hostInterface: `${prefix}${endpointId.slice(0, MAX_INTERFACE_NAME - prefix.length)}`,
  };
}

/** False for unspecified, loopback, link-local, multicast and (IPv4) reserved addresses. */
function isWorkloadUnicast(version: IpVersion, bytes: readonly number[]): boolean {
  const [first = 0, second = 0] = bytes;
  if (version === 4) return first !== 0 && first !== 127 && !(first === 169 && second === 254) && first < 224;
  const unspecifiedOrLoopback = bytes.slice(0, 15).every((b) => b === 0) && (bytes[15] ?? 0) <= 1;
  const linkLocal = first === 0xfe && (second & 0xc0) === 0x80;
  return !unspecifiedOrLoopback && !linkLocal && first !== 0xff;
}

/** Parses `--ip` values: a bare unicast address, or one with its host prefix (/32, /128). */
function parseWorkloadIps(texts: readonly string[]): Record<IpVersion, string[]> {
  if (texts.length === 0) throw new CliError('At least one --ip is required.');
  const byVersion: Record<IpVersion, string[]> = { 4: [], 6: [] };
  const seen = new Set<string>();
  for (const text of texts) {
    const cidr = parseCidr(text.trim());
    if (!cidr || cidr.prefix !== (cidr.version === 4 ? 32 : 128)) {
      throw new CliError(`Invalid --ip ${JSON.stringify(text)}: expected an IPv4 or IPv6 address (optionally /32 or /128).`);
    }
    const ip = canonicalIp(text.trim().split('/')[0]!)!;
    if (!isWorkloadUnicast(cidr.version, cidr.bytes)) throw new CliError(`Invalid --ip ${ip}: not a unicast address a workload can use.`);
    if (seen.has(ip)) throw new CliError(`IP ${ip} was specified more than once.`);
    seen.add(ip);
    byVersion[cidr.version].push(ip);
  }
  return byVersion;
}

function checkProfileNames(profiles: readonly string[]): void {
  const seen = new Set<string>();
  for (const p of profiles) {
    if (!ID_PATTERN.test(p)) throw new CliError(`Invalid profile name ${JSON.stringify(p)}.`);
    if (seen.has(p)) throw new CliError(`Profile with name ${p} was specified more than once.`);
    seen.add(p);
  }
}

async function addWorkload(options: WorkloadOptions, ctx: CliContext): Promise<void> {
  const [name, ...extra] = options.positionals;
  const workloadNetns = options.single.get('--netns');
  if (name === undefined || extra.length > 0 || workloadNetns === undefined) throw new UsageError(WORKLOAD_USAGE);
  assertWorkloadName(name);
  const host = resolveHostname(options.single.get('--hostname'), ctx.env);
  const dataplane = dataplaneNamespace(options, ctx.env);
  assertNamespace(workloadNetns, 'workload namespace');
  if (workloadNetns === dataplane.name) throw new CliError('The workload namespace cannot be the dataplane namespace.');
  const ips = parseWorkloadIps(options.ips);
  checkProfileNames(options.profiles);
  const { ref, hostInterface } = workloadIdentity(host, name, interfacePrefix(ctx.env));

  const store = ctx.store();
  const endpoints = await store.listEndpoints();
  if (endpoints.some((e) => e.ref.host === host && e.ref.orchestrator === CLI_ORCHESTRATOR && e.ref.workload === name)) {
    throw new CliError(`Workload ${name} already exists on host ${host}.`);
  }
  const wanted = new Set([...ips[4], ...ips[6]]);
  for (const e of endpoints) {
    const used = [...(e.endpoint?.ipv4_nets ?? []), ...(e.endpoint?.ipv6_nets ?? [])].map((net) => net.split('/')[0]!);
    const clash = used.find((ip) => wanted.has(ip));
    if (clash !== undefined) {
      throw new CliError(`IP ${clash} is already used by workload ${e.ref.workload} on host ${e.ref.host}.`);
    }
  }
  for (const p of options.profiles) {
    if (!(await store.profileExists(p))) throw new CliError(`Profile with name ${p} was not found.`);
  }
  if (await linkExists(dataplane, hostInterface)) {
    throw new CliError(`Interface ${hostInterface} already exists in ${dataplane.name ?? 'the host namespace'}.`);
  }
  if (await linkExists({ name: workloadNetns }, WORKLOAD_INTERFACE)) {
    throw new CliError(`Interface ${WORKLOAD_INTERFACE} already exists in namespace ${workloadNetns}.`);
  }
  const routed = (await defaultRouteFamilies({ name: workloadNetns })).filter((family) => ips[family].length > 0);
  if (routed.length > 0) {
    throw new CliError(`Namespace ${workloadNetns} already has an IPv${routed[0]} default route.`);
  }

  const mac = await createWorkloadVeth({ host: dataplane, hostInterface, workloadNetns, ipv4: ips[4], ipv6: ips[6] });
  try {
    await store.putEndpoint(
      ref,
      {
        state: 'active',
        name: hostInterface,
        mac,
        profile_ids: [...options.profiles],
        ipv4_nets: ips[4].map((ip) => `${ip}/32`),
        ipv6_nets: ips[6].map((ip) => `${ip}/128`),
        ipv4_gateway: ips[4].length > 0 ? IPV4_GATEWAY : null,
        ipv6_gateway: ips[6].length > 0 ? IPV6_GATEWAY : null,
      },
      { mustNotExist: true },
    );
  } catch (error) {
    await deleteHostInterface(dataplane, hostInterface).catch(() => undefined);
    throw error;
  }
  const profiles = options.profiles.length > 0 ? options.profiles.join(', ') : 'none';
  ctx.out(
    `Workload ${name} added on host ${host}: ${hostInterface} <-> ${workloadNetns}:${WORKLOAD_INTERFACE} ` +
      `(${[...ips[4], ...ips[6]].join(', ')}), profiles ${profiles}\n`,
  );
}

async function removeWorkload(options: WorkloadOptions, ctx: CliContext): Promise<void> {
  const [name, ...extra] = options.positionals;
  if (name === undefined || extra.length > 0 || options.single.has('--netns') || options.ips.length > 0 || options.profiles.length > 0) {
    throw new UsageError(WORKLOAD_USAGE);
  }
  assertWorkloadName(name);
  const host = resolveHostname(options.single.get('--hostname'), ctx.env);
  const dataplane = dataplaneNamespace(options, ctx.env);
  const store = ctx.store();
  const endpoints = (await store.listEndpoints({ host })).filter(
    (e) => e.ref.orchestrator === CLI_ORCHESTRATOR && e.ref.workload === name,
  );
  if (endpoints.length === 0) throw new CliError(`Workload ${name} not found on host ${host}.`);
  for (const e of endpoints) {
    const ifname = e.endpoint?.name ?? (e.raw as { name?: unknown } | undefined)?.name;
    if (typeof ifname === 'string' && ifname.startsWith(interfacePrefix(ctx.env))) await deleteHostInterface(dataplane, ifname);
  }
  for (const e of endpoints) await store.deleteEndpoint(e.ref);
  ctx.out(`Workload ${name} removed from host ${host}\n`);
}

export async function runWorkload(args: string[], ctx: CliContext): Promise<void> {
  const [verb, ...rest] = args;
  const options = parseOptions(rest);
  if (verb === '--help' || verb === '-h' || options.help) {
    ctx.out(`${WORKLOAD_HELP}\n`);
    return;
  }
  if (verb === 'add') return addWorkload(options, ctx);
  if (verb === 'remove') return removeWorkload(options, ctx);
  throw new UsageError(WORKLOAD_USAGE);
}
