/**
 * The kernel half of `calicoctl workload add/remove`: the veth pair that joins a workload's
 * network namespace to the host dataplane (the host's own namespace, or the one named by
 * `--dataplane-netns`), and the workload-side addressing and routes.
 *
 * Wiring (what Calico's orchestrator plugins did, verified with packets in the lab):
 * - host side `<prefix><hash>` with the fixed MAC ee:ee:ee:ee:ee:ee and no IPv6 DAD, so its
 *   link-local address fe80::ecee:eeff:feee:eeee is usable at once;
 * - workload side `eth0` with `/32` and `/128` addresses, `lo` up, IPv4 default route via
 *   169.254.1.1 (on-link; answered by proxy ARP on the host side) and IPv6 default route via
 *   the host side's link-local address.
 * Per-interface sysctls, host routes and proxy ARP/NDP on the host side are the agent's job.
 *
 * Invariants: no shell (argv to spawn as is); every command runs in a named namespace through
 * `ip -n` or `nsenter --net=/run/netns/<ns>`, never guessed; a failure after the pair exists
 * deletes it again before the error is reported (deleting one end removes both, and with them
 * every address and route made inside the workload).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CliError } from './cli-context.js';

/** MAC of every host-side workload interface (as later Calico releases do). */
export const HOST_SIDE_MAC = 'ee:ee:ee:ee:ee:ee';
/** The IPv4 gateway a workload routes through: link-local, answered by proxy ARP. */
export const IPV4_GATEWAY = '169.254.1.1';
/** The IPv6 gateway: the host side's EUI-64 link-local address derived from HOST_SIDE_MAC. */
export const IPV6_GATEWAY = 'fe80::ecee:eeff:feee:eeee';
/** The workload-side interface name. */
export const WORKLOAD_INTERFACE = 'eth0';

const NETNS_NAME = /^[a-zA-Z0-9_.-]{1,64}$/;
const COMMAND_TIMEOUT_MS = 30_000;

/** A network namespace by name (`ip netns`), or the current one when `name` is undefined. */
export interface NamespaceRef {
  name: string | undefined;
}

interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runCommand(argv: readonly string[]): Promise<CommandResult> {
  return new Promise((resolve) => {
    const [command, ...args] = argv;
    const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: COMMAND_TIMEOUT_MS });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error) => resolve({ code: 127, stdout: '', stderr: error.message }));
    child.on('close', (code) =>
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}

function firstLine(text: string): string {
  return text.split('\n').map((line) => line.trim()).find((line) => line !== '') ?? 'no error output';
}

/** `ip [-n ns] args…` */
function ipArgv(ns: NamespaceRef, args: readonly string[]): string[] {
  return ns.name === undefined ? ['ip', ...args] : ['ip', '-n', ns.name, ...args];
}

/** `[nsenter --net=/run/netns/ns --] argv…` for tools without a namespace option (sysctl). */
function inNamespace(ns: NamespaceRef, argv: readonly string[]): string[] {
  return ns.name === undefined ? [...argv] : ['nsenter', `--net=/run/netns/${ns.name}`, '--', ...argv];
}

async function checked(argv: readonly string[]): Promise<string> {
  const result = await runCommand(argv);
  if (result.code !== 0) throw new CliError(`${argv.join(' ')} failed: ${firstLine(result.stderr)}`);
  return result.stdout;
}

/** Throws unless `name` is an existing `ip netns` namespace. `what` names it in the message. */
export function assertNamespace(name: string, what: string): void {
  if (!NETNS_NAME.test(name)) throw new CliError(`Invalid ${what} ${JSON.stringify(name)}: expected a network namespace name.`);
  if (!existsSync(`/run/netns/${name}`)) {
    throw new CliError(`Network namespace ${name} (${what}) does not exist (see 'ip netns list').`);
  }
}

/** True when interface `ifname` exists in `ns`. */
export async function linkExists(ns: NamespaceRef, ifname: string): Promise<boolean> {
  return (await runCommand(ipArgv(ns, ['link', 'show', 'dev', ifname]))).code === 0;
}

/** Address families in which `ns` already has a default route. */
export async function defaultRouteFamilies(ns: NamespaceRef): Promise<(4 | 6)[]> {
  const families: (4 | 6)[] = [];
  for (const family of [4, 6] as const) {
    const result = await runCommand(ipArgv(ns, [`-${family}`, 'route', 'show', 'default']));
    if (result.code === 0 && result.stdout.trim() !== '') families.push(family);
  }
  return families;
}

export interface VethSpec {
  host: NamespaceRef;
  hostInterface: string;
  /** The workload's network namespace (`ip netns` name). */
  workloadNetns: string;
  /** Bare addresses. */
  ipv4: readonly string[];
  ipv6: readonly string[];
}

/**
 * Creates and configures the pair; resolves to the workload interface's MAC. On any failure
 * after creation the pair is deleted again and the original error is thrown.
 */
export async function createWorkloadVeth(spec: VethSpec): Promise<string> {
  const { host, hostInterface } = spec;
  const workload: NamespaceRef = { name: spec.workloadNetns };
  await checked(
    ipArgv(host, ['link', 'add', hostInterface, 'address', HOST_SIDE_MAC, 'type', 'veth', 'peer', 'name', WORKLOAD_INTERFACE, 'netns', spec.workloadNetns]),
  );
  try {
    const dual = spec.ipv6.length > 0;
    if (dual) {
      // Without DAD the link-local gateway and the workload's addresses work the moment the links are up.
      await checked(inNamespace(host, ['sysctl', '-q', '-w', `net.ipv6.conf.${hostInterface}.accept_dad=0`]));
      await checked(inNamespace(workload, ['sysctl', '-q', '-w', `net.ipv6.conf.${WORKLOAD_INTERFACE}.accept_dad=0`]));
    }
    await checked(ipArgv(host, ['link', 'set', hostInterface, 'up']));
    await checked(ipArgv(workload, ['link', 'set', 'lo', 'up']));
    for (const ip of spec.ipv4) await checked(ipArgv(workload, ['addr', 'add', `${ip}/32`, 'dev', WORKLOAD_INTERFACE]));
    for (const ip of spec.ipv6) await checked(ipArgv(workload, ['addr', 'add', `${ip}/128`, 'dev', WORKLOAD_INTERFACE, 'nodad']));
    await checked(ipArgv(workload, ['link', 'set', WORKLOAD_INTERFACE, 'up']));
    if (spec.ipv4.length > 0) {
      await checked(ipArgv(workload, ['-4', 'route', 'add', IPV4_GATEWAY, 'dev', WORKLOAD_INTERFACE, 'scope', 'link']));
      await checked(ipArgv(workload, ['-4', 'route', 'add', 'default', 'via', IPV4_GATEWAY, 'dev', WORKLOAD_INTERFACE]));
    }
    if (dual) await checked(ipArgv(workload, ['-6', 'route', 'add', 'default', 'via', IPV6_GATEWAY, 'dev', WORKLOAD_INTERFACE]));
    const links = JSON.parse(await checked(ipArgv(workload, ['-j', 'link', 'show', 'dev', WORKLOAD_INTERFACE]))) as { address?: string }[];
    const mac = links[0]?.address;
    if (!mac) throw new CliError(`Could not read the MAC address of ${WORKLOAD_INTERFACE} in ${spec.workloadNetns}.`);
    return mac;
  } catch (error) {
    await deleteHostInterface(host, hostInterface).catch(() => undefined);
    throw error;
  }
}

/**
 * Creates a pair whose both ends stay in `host`: `hostInterface` (HOST_SIDE_MAC, up; without
 * IPv6 DAD when `ipv6`) and `peerInterface`, left down for an orchestrator to move into the
 * workload itself (Docker's libnetwork does, on the plugin's Join). A failure after creation
 * deletes the pair again.
 */
export async function createHostVethPair(host: NamespaceRef, hostInterface: string, peerInterface: string, ipv6: boolean): Promise<void> {
  await checked(ipArgv(host, ['link', 'add', hostInterface, 'address', HOST_SIDE_MAC, 'type', 'veth', 'peer', 'name', peerInterface]));
  try {
    if (ipv6) await checked(inNamespace(host, ['sysctl', '-q', '-w', `net.ipv6.conf.${hostInterface}.accept_dad=0`]));
    await checked(ipArgv(host, ['link', 'set', hostInterface, 'up']));
  } catch (error) {
    await deleteHostInterface(host, hostInterface).catch(() => undefined);
    throw error;
  }
}

/** Deletes the pair by its host side; false when it did not exist. */
export async function deleteHostInterface(host: NamespaceRef, hostInterface: string): Promise<boolean> {
  const argv = ipArgv(host, ['link', 'del', 'dev', hostInterface]);
  const result = await runCommand(argv);
  if (result.code === 0) return true;
  // Gone already (or going: the kernel deletes a pair whose workload namespace was deleted).
  if (!(await linkExists(host, hostInterface))) return false;
  throw new CliError(`${argv.join(' ')} failed: ${firstLine(result.stderr)}`);
}
