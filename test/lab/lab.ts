/**
 * The two-host lab, shared by the end-to-end tests, the fault tests and the demo: a private etcd
 * in the root namespace, two "host" network namespaces joined by a veth fabric, one real
 * calico-agent per host (run from dist/, in the root namespace, programming its host namespace
 * via --dataplane-netns), and workloads = namespaces attached with `calicoctl workload add`.
 *
 *   workloads (A)  198.51.100.0/25    2001:db8:a::/64        workloads (B)  198.51.100.128/25  2001:db8:b::/64
 *        │ cali…                                                   │ cali…
 *   [hostA netns] fab0 192.0.2.1/24 2001:db8:f::1/64 ══ fab0 192.0.2.2/24 2001:db8:f::2/64 [hostB netns]
 *
 * Each host namespace routes the other host's workload blocks over the fabric and has a default
 * route (needed for proxy ARP of 169.254.1.1, netns-lab-notes item 3). Forwarding is on.
 *
 * Invariants:
 * - Namespace names are unique per run (test/helpers/netns.ts: `ca-<purpose>-<random>`).
 * - `teardown()` kills every process the lab started (agents, listeners) and deletes every
 *   namespace and etcd, even when called after a failed set-up, and is idempotent; `createLab`
 *   itself tears down what it built when it fails half-way.
 * - Agents run with host and endpoint status reporting OFF by default, so every etcd revision
 *   comes from a calicoctl write: `waitApplied(revision)` then means "this host's kernel
 *   reflects that write". Reporting can be enabled with `agentArgs`, but then status writes
 *   bump the store revision too and a target taken from `etcdRevision()` may never be reached
 *   by an agent that only watches /calico/v1.
 * - Traffic probes wait at most ~1 s for a denied (dropped) packet; probes to the same listener
 *   are serialised (nc's accept backlog is 1), everything else may run in parallel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Etcd3, type Watcher } from 'etcd3';
import { freePort, startEtcd, type EtcdInstance } from '../helpers/etcd.js';
import { createNetns, type ExecResult, type Netns } from '../helpers/netns.js';

export type HostId = 'A' | 'B';
export type Family = 4 | 6;

/** Every process any lab started and that is still running: killed if this process exits. */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Where the built binaries are: the directory holding package.json above this module. */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lab: cannot find the repository root (package.json)');
    dir = parent;
  }
  return dir;
}

export const REPO_ROOT = findRepoRoot();
export const CALICOCTL = join(REPO_ROOT, 'dist/calicoctl.cjs');
export const AGENT = join(REPO_ROOT, 'dist/agent/main.js');

/** Addressing of one lab host. */
interface HostPlan {
  id: HostId;
  hostname: string;
  fabric4: string;
  fabric6: string;
  workloadBlock4: string;
  workloadBlock6: string;
  /** First workload address; the lab hands out the next ones in order. */
  firstWorkload4: [number, number, number, number];
  workloadPrefix6: string;
}

const PLANS: Record<HostId, HostPlan> = {
  A: {
    id: 'A',
    hostname: 'hostA',
    fabric4: '192.0.2.1',
    fabric6: '2001:db8:f::1',
    workloadBlock4: '198.51.100.0/25',
    workloadBlock6: '2001:db8:a::/64',
    firstWorkload4: [198, 51, 100, 1],
    workloadPrefix6: '2001:db8:a::',
  },
  B: {
    id: 'B',
    hostname: 'hostB',
    fabric4: '192.0.2.2',
    fabric6: '2001:db8:f::2',
    workloadBlock4: '198.51.100.128/25',
    workloadBlock6: '2001:db8:b::/64',
    firstWorkload4: [198, 51, 100, 129],
    workloadPrefix6: '2001:db8:b::',
  },
};

export interface AgentStatus {
  hostname: string;
  inSync: boolean;
  ready: boolean;
  live: boolean;
  datastoreRevision: number;
  appliedRevision: number;
  localEndpoints: number;
  lastError: string | null;
  [key: string]: unknown;
}

export interface LabAgent {
  process: ChildProcess;
  /** `http://127.0.0.1:<port>` of /status, /readiness, /metrics. */
  healthUrl: string;
  /** stderr (pino JSON lines and the one-line failure), for diagnostics. */
  log(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
}

export interface LabHost {
  id: HostId;
  /** The host name in etcd (`hostA`/`hostB`). */
  hostname: string;
  netns: Netns;
  fabric4: string;
  fabric6: string;
  agent: LabAgent;
  /** Environment for calicoctl/agent acting as this host (etcd + CALICO_HOSTNAME + dataplane netns). */
  env: NodeJS.ProcessEnv;
}

export interface LabWorkload {
  name: string;
  host: LabHost;
  netns: Netns;
  ipv4: string;
  /** Set for dual-stack workloads. */
  ipv6?: string;
  profiles: string[];
  /** The `workload add` command's result, when it waited itself (`calicoctlWait`). */
  added?: CalicoctlResult;
}

export interface CalicoctlOptions {
  /** Act as this host (CALICO_HOSTNAME, CALICO_AGENT_DATAPLANE_NETNS). */
  host?: LabHost;
  /** stdin text. */
  input?: string;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
}

export interface CalicoctlResult extends ExecResult {
  /** The etcd revision after the command (status reporting off: the command's last write). */
  revision: number;
  /** Wall time of the command, ms. */
  ms: number;
}

export interface EnforceResult {
  result: CalicoctlResult;
  enforcedMs: Record<string, number>;
}

export interface AddWorkloadOptions {
  name: string;
  host: HostId;
  profiles?: string[];
  /** Also give it an IPv6 address. */
  dualStack?: boolean;
  /**
   * Wait with `calicoctl workload add --wait=<this>` instead of the lab's /status polling (which
   * needs status reporting off); the command's output is then in `LabWorkload.added`.
   */
  calicoctlWait?: string;
}

export interface Lab {
  etcd: EtcdInstance;
  hosts: Record<HostId, LabHost>;
  workloads: Map<string, LabWorkload>;
  /** Runs calicoctl from dist/; throws with stderr on failure unless allowFail. */
  calicoctl(args: readonly string[], options?: CalicoctlOptions): Promise<CalicoctlResult>;
  /** The current etcd store revision. */
  etcdRevision(): Promise<number>;
  /** An agent's /status JSON. */
  status(host: HostId): Promise<AgentStatus>;
  /**
   * Waits until each agent (default both) reports `appliedRevision >= revision` in /status;
   * resolves to ms waited per host. Throws with the last status after `timeoutMs`.
   */
  waitApplied(revision: number, options?: { hosts?: HostId[]; timeoutMs?: number }): Promise<Record<string, number>>;
  /**
   * Runs calicoctl (as `options.host` if given) and waits until both agents applied its write;
   * `enforcedMs` per host name is the time from the write's commit (its event reaching the lab's
   * own etcd watch) to the agent's /status first showing that revision applied (polled every
   * ~2 ms while the command runs). Empty when the command changed nothing in /calico/v1.
   */
  enforce(args: readonly string[], options?: CalicoctlOptions): Promise<EnforceResult>;
  /** Creates a namespace and attaches it with `calicoctl workload add`; waits for both agents. */
  addWorkload(options: AddWorkloadOptions): Promise<LabWorkload>;
  /** `calicoctl workload remove`, then deletes its namespace; waits for both agents. */
  removeWorkload(name: string): Promise<void>;
  /** Starts `nc -lk <port>` (IPv4 and, if dual-stack, IPv6) inside the workload. Idempotent. */
  listen(workload: LabWorkload, port: number): Promise<void>;
  /** One ICMP echo, 1 s timeout: did a reply come back? */
  ping(from: LabWorkload, to: LabWorkload, family?: Family): Promise<boolean>;
  /** TCP connect (nc -z -w1) to a listener started with `listen`: did it connect? */
  tcp(from: LabWorkload, to: LabWorkload, port: number, family?: Family): Promise<boolean>;
  /** Deletes everything. Idempotent; never throws. */
  teardown(): Promise<void>;
}

export interface LabOptions {
  /** Extra agent flags, e.g. ['--reporting-interval=5s']. */
  agentArgs?: readonly string[];
  /** Agent log level (default warn). */
  agentLogLevel?: string;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

function runProcess(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = argv;
    const child = spawn(command!, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function fetchStatus(agent: LabAgent): Promise<AgentStatus> {
  const response = await fetch(`${agent.healthUrl}/status`, { signal: AbortSignal.timeout(2000) });
  return (await response.json()) as AgentStatus;
}

/** Serialises async work per key. */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.tails.set(key, next.catch(() => undefined));
    return next;
  }
}

export async function createLab(options: LabOptions = {}): Promise<Lab> {
  const log = options.log ?? (() => undefined);
  const namespaces: Netns[] = [];
  const children = new Set<ChildProcess>();
  /** workload name → port → its nc processes (IPv4, IPv6). */
  const listeners = new Map<string, Map<number, ChildProcess[]>>();
  const probeQueue = new KeyedQueue();
  const nextAddress: Record<HostId, number> = { A: 0, B: 0 };
  let etcd: EtcdInstance | undefined;
  let client: Etcd3 | undefined;
  let watcher: Watcher | undefined;
  let tornDown = false;
  const hosts: Partial<Record<HostId, LabHost>> = {};
  const workloads = new Map<string, LabWorkload>();

  const track = (child: ChildProcess): void => {
    children.add(child);
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
  };

  const stopChild = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };

  const teardown = async (): Promise<void> => {
    if (tornDown) return;
    tornDown = true;
    await Promise.all([...children].map((child) => stopChild(child).catch(() => undefined)));
    for (const ns of namespaces.reverse()) await ns.destroy().catch(() => undefined);
    // Cancel the watch before etcd goes, or its reconnect timer keeps this process alive.
    await watcher?.cancel().catch(() => undefined);
    client?.close();
    await etcd?.stop().catch(() => undefined);
  };

  const startAgent = async (plan: HostPlan, netns: Netns): Promise<LabAgent> => {
    const port = await freePort();
    const args = [
      AGENT,
      `--hostname=${plan.hostname}`,
      `--dataplane-netns=${netns.name}`,
      `--health-listen=127.0.0.1:${port}`,
      `--log-level=${options.agentLogLevel ?? 'warn'}`,
      '--reporting-interval=0',
      '--endpoint-status=false',
      ...(options.agentArgs ?? []),
    ];
    const child = spawn(process.execPath, args, { env: etcd!.env, stdio: ['ignore', 'ignore', 'pipe'] });
    track(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-200_000);
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const agent: LabAgent = { process: child, healthUrl: `http://127.0.0.1:${port}`, log: () => stderr, exited };
    const deadline = performance.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`agent for ${plan.hostname} exited with ${child.exitCode}:\n${stderr}`);
      const status = await fetchStatus(agent).catch(() => undefined);
      if (status?.ready) return agent;
      if (performance.now() > deadline) {
        throw new Error(`agent for ${plan.hostname} not ready after 20 s: ${JSON.stringify(status)}\n${stderr}`);
      }
      await sleep(50);
    }
  };

  const buildHosts = async (): Promise<void> => {
    const nsA = await createNetns('hosta');
    namespaces.push(nsA);
    const nsB = await createNetns('hostb');
    namespaces.push(nsB);
    const pairs: [HostPlan, Netns, HostPlan][] = [
      [PLANS.A, nsA, PLANS.B],
      [PLANS.B, nsB, PLANS.A],
    ];
    await nsA.exec(['ip', 'link', 'add', 'fab0', 'type', 'veth', 'peer', 'name', 'fab0', 'netns', nsB.name]);
    for (const [plan, ns, other] of pairs) {
      await ns.exec([
        'sysctl', '-q', '-w',
        'net.ipv6.conf.fab0.accept_dad=0',
        'net.ipv4.ip_forward=1',
        'net.ipv6.conf.all.forwarding=1',
      ]);
      await ns.exec(['ip', 'addr', 'add', `${plan.fabric4}/24`, 'dev', 'fab0']);
      await ns.exec(['ip', 'addr', 'add', `${plan.fabric6}/64`, 'dev', 'fab0', 'nodad']);
      await ns.exec(['ip', 'link', 'set', 'fab0', 'up']);
      await ns.exec(['ip', 'route', 'add', other.workloadBlock4, 'via', other.fabric4]);
      await ns.exec(['ip', '-6', 'route', 'add', other.workloadBlock6, 'via', other.fabric6]);
      // Proxy ARP answers for 169.254.1.1 only if the host has a route to it elsewhere (lab notes 3).
      await ns.exec(['ip', 'route', 'add', 'default', 'via', other.fabric4]);
    }
    const agents = await Promise.all(pairs.map(([plan, ns]) => startAgent(plan, ns)));
    pairs.forEach(([plan, ns], i) => {
      hosts[plan.id] = {
        id: plan.id,
        hostname: plan.hostname,
        netns: ns,
        fabric4: plan.fabric4,
        fabric6: plan.fabric6,
        agent: agents[i]!,
        env: { ...etcd!.env, CALICO_HOSTNAME: plan.hostname, CALICO_AGENT_DATAPLANE_NETNS: ns.name },
      };
    });
  };

  /** When the lab's watch saw each /calico/v1 revision (performance.now()). */
  const commitSeenAt = new Map<number, number>();
  const commitWaiters = new Set<() => void>();

  try {
    log('starting etcd');
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoint });
    watcher = await client.watch().prefix('/calico/v1/').create();
    watcher.on('data', (response) => {
      const at = performance.now();
      for (const event of response.events) commitSeenAt.set(Number(event.kv.mod_revision), at);
      for (const wake of commitWaiters) wake();
    });
    watcher.on('error', () => undefined);
    log('creating hostA and hostB namespaces, the fabric, and one calico-agent per host');
    await buildHosts();
  } catch (error) {
    await teardown();
    throw error;
  }

  const etcdRevision = async (): Promise<number> => {
    const response = await client!.kv.range({ key: Buffer.from('/calico/v1/Ready'), count_only: true });
    return Number(response.header.revision);
  };

  const calicoctl = async (args: readonly string[], opts: CalicoctlOptions = {}): Promise<CalicoctlResult> => {
    const started = performance.now();
    const env = opts.host ? opts.host.env : etcd!.env;
    const result = await runProcess([process.execPath, CALICOCTL, ...args], { env, ...(opts.input !== undefined ? { input: opts.input } : {}) });
    const ms = performance.now() - started;
    if (result.code !== 0 && !opts.allowFail) {
      throw new Error(`calicoctl ${args.join(' ')} exited with ${result.code}: ${result.stderr.trim()}`);
    }
    return { ...result, ms, revision: await etcdRevision() };
  };

  const labHosts = hosts as Record<HostId, LabHost>;

  const status = (host: HostId): Promise<AgentStatus> => fetchStatus(labHosts[host].agent);

  const waitApplied = async (
    revision: number,
    opts: { hosts?: HostId[]; timeoutMs?: number } = {},
  ): Promise<Record<string, number>> => {
    const started = performance.now();
    const deadline = started + (opts.timeoutMs ?? 15_000);
    const waited: Record<string, number> = {};
    await Promise.all(
      (opts.hosts ?? (['A', 'B'] as HostId[])).map(async (id) => {
        let last: AgentStatus | undefined;
        for (;;) {
          last = await status(id).catch(() => last);
          if (last && last.appliedRevision >= revision) {
            waited[labHosts[id].hostname] = performance.now() - started;
            return;
          }
          if (performance.now() > deadline) {
            throw new Error(`agent ${labHosts[id].hostname} did not apply revision ${revision}: ${JSON.stringify(last)}`);
          }
          await sleep(5);
        }
      }),
    );
    return waited;
  };

  const enforce = async (args: readonly string[], opts: CalicoctlOptions = {}): Promise<EnforceResult> => {
    const before = await etcdRevision();
    const timelines: Record<HostId, { at: number; revision: number }[]> = { A: [], B: [] };
    let polling = true;
    const poll = async (id: HostId): Promise<void> => {
      while (polling) {
        const current = await status(id).catch(() => undefined);
        const line = timelines[id];
        if (current && current.appliedRevision !== line[line.length - 1]?.revision) {
          line.push({ at: performance.now(), revision: current.appliedRevision });
        }
        await sleep(2);
      }
    };
    const pollers = [poll('A'), poll('B')];
    try {
      const result = await calicoctl(args, opts);
      if (result.revision === before) return { result, enforcedMs: {} };
      await waitApplied(result.revision);
      // The commit of the command's last write, as the lab's watch saw it.
      const deadline = performance.now() + 5000;
      const committed = (): number | undefined => {
        const revisions = [...commitSeenAt.keys()].filter((r) => r > before && r <= result.revision);
        return revisions.length === 0 ? undefined : commitSeenAt.get(Math.max(...revisions));
      };
      while (committed() === undefined && performance.now() < deadline) {
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            commitWaiters.delete(wake);
            resolve();
          };
          commitWaiters.add(wake);
          setTimeout(wake, 50);
        });
      }
      const commitAt = committed();
      // waitApplied polls on its own; keep the timeline pollers going until each has seen it too.
      const seen = (id: HostId): boolean => timelines[id].some((entry) => entry.revision >= result.revision);
      while (!(seen('A') && seen('B')) && performance.now() < deadline) await sleep(2);
      polling = false;
      await Promise.all(pollers);
      const enforcedMs: Record<string, number> = {};
      for (const id of ['A', 'B'] as HostId[]) {
        const applied = timelines[id].find((entry) => entry.revision >= result.revision);
        if (commitAt !== undefined && applied) enforcedMs[labHosts[id].hostname] = Math.max(0, applied.at - commitAt);
      }
      return { result, enforcedMs };
    } finally {
      polling = false;
      await Promise.all(pollers);
    }
  };

  const addWorkload = async (spec: AddWorkloadOptions): Promise<LabWorkload> => {
    if (workloads.has(spec.name)) throw new Error(`lab: workload ${spec.name} exists`);
    const host = labHosts[spec.host];
    const plan = PLANS[spec.host];
    const index = nextAddress[spec.host]++;
    const [a, b, c, d] = plan.firstWorkload4;
    const ipv4 = `${a}.${b}.${c}.${d + index}`;
    const ipv6 = spec.dualStack ? `${plan.workloadPrefix6}${index + 1}` : undefined;
    const netns = await createNetns(spec.name.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 20));
    namespaces.push(netns);
    const profiles = spec.profiles ?? [];
    const args = ['workload', 'add', spec.name, `--netns=${netns.name}`, `--ip=${ipv4}`];
    if (ipv6) args.push(`--ip=${ipv6}`);
    for (const p of profiles) args.push(`--profile=${p}`);
    if (spec.calicoctlWait !== undefined) args.push(`--wait=${spec.calicoctlWait}`);
    const result = await calicoctl(args, { host });
    if (spec.calicoctlWait === undefined) await waitApplied(result.revision);
    const workload: LabWorkload = {
      name: spec.name,
      host,
      netns,
      ipv4,
      ...(ipv6 ? { ipv6 } : {}),
      profiles,
      ...(spec.calicoctlWait !== undefined ? { added: result } : {}),
    };
    workloads.set(spec.name, workload);
    return workload;
  };

  const removeWorkload = async (name: string): Promise<void> => {
    const workload = workloads.get(name);
    if (!workload) throw new Error(`lab: no workload ${name}`);
    const result = await calicoctl(['workload', 'remove', name], { host: workload.host });
    for (const started of listeners.get(name)?.values() ?? []) for (const child of started) await stopChild(child);
    listeners.delete(name);
    await workload.netns.destroy();
    workloads.delete(name);
    await waitApplied(result.revision);
  };

  const spawnListener = async (workload: LabWorkload, port: number, family: Family): Promise<ChildProcess> => {
    const argv = ['ip', 'netns', 'exec', workload.netns.name, 'nc', ...(family === 6 ? ['-6'] : []), '-lk', String(port)];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'ignore'] });
    track(child);
    // Ready when the socket is listening (ss inside the workload namespace).
    const deadline = performance.now() + 5000;
    for (;;) {
      const ss = await workload.netns.exec(['ss', '-Hltn', `sport = :${port}`], { allowFail: true });
      const wanted = family === 6 ? /\[?::\]?:|\*:/ : /0\.0\.0\.0:/;
      if (wanted.test(ss.stdout)) return child;
      if (child.exitCode !== null || performance.now() > deadline) throw new Error(`nc -l ${port} did not start in ${workload.name}`);
      await sleep(10);
    }
  };

  const listen = async (workload: LabWorkload, port: number): Promise<void> => {
    const ports = listeners.get(workload.name) ?? new Map<number, ChildProcess[]>();
    listeners.set(workload.name, ports);
    if (ports.has(port)) return;
    const started = [await spawnListener(workload, port, 4)];
    if (workload.ipv6) started.push(await spawnListener(workload, port, 6));
    ports.set(port, started);
  };

  const target = (to: LabWorkload, family: Family): string => {
    if (family === 4) return to.ipv4;
    if (!to.ipv6) throw new Error(`lab: ${to.name} has no IPv6 address`);
    return to.ipv6;
  };

  const ping = async (from: LabWorkload, to: LabWorkload, family: Family = 4): Promise<boolean> => {
    const argv = ['ping', ...(family === 6 ? ['-6'] : []), '-c1', '-W1', '-n', target(to, family)];
    return (await from.netns.exec(argv, { allowFail: true })).code === 0;
  };

  const tcp = (from: LabWorkload, to: LabWorkload, port: number, family: Family = 4): Promise<boolean> =>
    probeQueue.run(`${to.name}:${port}:${family}`, async () => {
      const argv = ['nc', ...(family === 6 ? ['-6'] : []), '-z', '-w1', target(to, family), String(port)];
      return (await from.netns.exec(argv, { allowFail: true })).code === 0;
    });

  return {
    etcd: etcd!,
    hosts: labHosts,
    workloads,
    calicoctl,
    etcdRevision,
    status,
    waitApplied,
    enforce,
    addWorkload,
    removeWorkload,
    listen,
    ping,
    tcp,
    teardown,
  };
}
