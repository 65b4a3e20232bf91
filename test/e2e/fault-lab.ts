/**
 * What the fault tests need on top of the two-host lab (test/lab/lab.ts): a small WEB/APP policy
 * with workloads and listeners, agents this module starts itself (so a test can SIGKILL,
 * SIGSTOP or restart one, or give it a different PATH), reads of the agent's /metrics and of the
 * host namespace's iptables, raw TCP probes that may run concurrently, a long-lived TCP
 * connection, a restore wrapper that fails on purpose, and etcdctl.
 *
 * Invariants:
 * - An agent started here replaces `lab.hosts[id].agent`, so `lab.status`/`lab.waitApplied` talk
 *   to it; the lab's original agent for that host is stopped first (never two agents per host).
 * - Everything started here (agents, connection endpoints, temp dirs) is registered and removed
 *   by `cleanUp()`, which is idempotent and never throws; call it before `lab.teardown()`.
 * - Probes never go through a shell; only the restore wrapper is a shell script.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort } from '../helpers/etcd.js';
import type { Netns } from '../helpers/netns.js';
import { AGENT, type Family, type Lab, type LabAgent, type LabHost, type LabWorkload } from '../lab/lab.js';
import { traceDisagreements } from '../lab/trace-checks.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------------------------ policy

/** A `calicoctl profile <id> rule update` document. */
export interface ProfileRules {
  id: string;
  inbound_rules: Record<string, unknown>[];
  outbound_rules: Record<string, unknown>[];
}

/** WEB: a public web server (TCP 80 from anywhere, nothing else in); talks to anyone. */
export const WEB_RULES: ProfileRules = {
  id: 'WEB',
  inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: [80] }],
  outbound_rules: [{ action: 'allow' }],
};

/** APP: anything from APP, TCP 7890 from WEB, nothing else in; talks to anyone. */
export const APP_RULES: ProfileRules = {
  id: 'APP',
  inbound_rules: [
    { action: 'allow', src_tag: 'APP' },
    { action: 'allow', protocol: 'tcp', dst_ports: [7890], src_tag: 'WEB' },
  ],
  outbound_rules: [{ action: 'allow' }],
};

export interface Check {
  from: string;
  to: string;
  port: number;
  family?: Family;
  allowed: boolean;
}

/** The fault lab's workloads: web1/app1 on hostA, web2/app2 on hostB; WEB ones are dual-stack. */
const WORKLOADS = [
  { name: 'web1', host: 'A', profile: 'WEB', dualStack: true, ports: [80, 22] },
  { name: 'web2', host: 'B', profile: 'WEB', dualStack: true, ports: [80, 22] },
  { name: 'app1', host: 'A', profile: 'APP', dualStack: false, ports: [22, 7890] },
  { name: 'app2', host: 'B', profile: 'APP', dualStack: false, ports: [22, 7890] },
] as const;

/** What the policy allows and denies; every fault test starts and ends here. */
export const BASELINE: readonly Check[] = [
  { from: 'app1', to: 'web2', port: 80, allowed: true },
  { from: 'app1', to: 'web2', port: 22, allowed: false },
  { from: 'web2', to: 'web1', port: 80, family: 6, allowed: true },
  { from: 'web2', to: 'web1', port: 22, family: 6, allowed: false },
  { from: 'web1', to: 'app2', port: 7890, allowed: true },
  { from: 'web1', to: 'app2', port: 22, allowed: false },
  { from: 'app1', to: 'app2', port: 22, allowed: true },
  { from: 'web2', to: 'app1', port: 22, allowed: false },
];

/** Creates WEB and APP with their rules, attaches the workloads and starts their listeners. */
export async function setUpPolicy(lab: Lab): Promise<Map<string, LabWorkload>> {
  await lab.calicoctl(['profile', 'add', 'WEB']);
  await lab.calicoctl(['profile', 'add', 'APP']);
  await lab.calicoctl(['profile', 'WEB', 'rule', 'update'], { input: JSON.stringify(WEB_RULES) });
  await lab.calicoctl(['profile', 'APP', 'rule', 'update'], { input: JSON.stringify(APP_RULES) });
  const workloads = new Map<string, LabWorkload>();
  for (const spec of WORKLOADS) {
    const workload = await lab.addWorkload({ name: spec.name, host: spec.host, profiles: [spec.profile], dualStack: spec.dualStack });
    for (const port of spec.ports) await lab.listen(workload, port);
    workloads.set(spec.name, workload);
  }
  return workloads;
}

/**
 * Puts the lab back to the baseline after a test, whatever state it left: a dead agent is
 * restarted (with `agentArgs`), missing profiles are re-created, both rule sets rewritten, and
 * both agents have applied the result.
 */
export async function restoreBaseline(lab: Lab, agentArgs: readonly string[] = []): Promise<void> {
  for (const host of Object.values(lab.hosts)) {
    const agent = host.agent.process;
    if (agent.exitCode !== null || agent.signalCode !== null) await startAgent(lab, host, { args: agentArgs });
  }
  for (const rules of [WEB_RULES, APP_RULES]) {
    await lab.calicoctl(['profile', 'add', rules.id], { allowFail: true }); // fails harmlessly when it exists
    await lab.calicoctl(['profile', rules.id, 'rule', 'update'], { input: JSON.stringify(rules) });
  }
  await lab.waitApplied(await lab.etcdRevision());
}

function describeCheck(check: Check): string {
  return `${check.from} → ${check.to} tcp${check.family === 6 ? '6' : ''}/${check.port}`;
}

/**
 * Probes every check (in parallel; the lab serialises per listener) and lists the wrong ones.
 * When all are right and etcd is up (`trace`, default true), each is also traced with
 * `calicoctl policy trace`, and a trace verdict other than the packet's is listed too.
 */
export async function wrongChecks(
  lab: Lab,
  workloads: ReadonlyMap<string, LabWorkload>,
  checks: readonly Check[],
  options: { trace?: boolean } = {},
): Promise<string[]> {
  const results = await Promise.all(
    checks.map(async (check) => {
      const observed = await lab.tcp(workload(workloads, check.from), workload(workloads, check.to), check.port, check.family ?? 4);
      return observed === check.allowed ? undefined : `${describeCheck(check)}: expected ${check.allowed ? 'allowed' : 'denied'}, was ${observed ? 'allowed' : 'denied'}`;
    }),
  );
  const wrong = results.filter((line): line is string => line !== undefined);
  if (wrong.length > 0 || options.trace === false) return wrong;
  const probes = checks.map((check) => ({
    from: workload(workloads, check.from),
    to: workload(workloads, check.to),
    probe: check.port,
    family: check.family ?? 4,
    allowed: check.allowed,
    label: describeCheck(check),
  }));
  return traceDisagreements(lab, probes);
}

export function workload(workloads: ReadonlyMap<string, LabWorkload>, name: string): LabWorkload {
  const found = workloads.get(name);
  if (!found) throw new Error(`fault lab: no workload ${name}`);
  return found;
}

/** Retries `checks` until all are right (the agent repairs asynchronously) or `timeoutMs` passes. */
export async function eventuallyRight(
  lab: Lab,
  workloads: ReadonlyMap<string, LabWorkload>,
  checks: readonly Check[],
  timeoutMs = 8000,
): Promise<string[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const wrong = await wrongChecks(lab, workloads, checks);
    if (wrong.length === 0 || performance.now() > deadline) return wrong;
    await sleep(200);
  }
}

/**
 * One raw TCP connect attempt (`nc -z -w1`), not serialised with other probes: for sampling a
 * denied port many times a second. The SYN is judged by the rules in force when it is sent.
 */
async function connects(from: LabWorkload, to: LabWorkload, port: number): Promise<boolean> {
  return (await from.netns.exec(['nc', '-z', '-w1', to.ipv4, String(port)], { allowFail: true })).code === 0;
}

/**
 * Probes `checks` (all expected denied) every `everyMs` until `stop()` is called; resolves with
 * the number of probes and every probe that got through.
 */
export function sampleDenied(
  workloads: ReadonlyMap<string, LabWorkload>,
  checks: readonly Check[],
  everyMs = 100,
): { stop(): Promise<{ probes: number; leaks: string[] }> } {
  let running = true;
  let probes = 0;
  const leaks: string[] = [];
  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    while (running) {
      for (const check of checks) {
        const probe = connects(workload(workloads, check.from), workload(workloads, check.to), check.port).then((ok) => {
          probes++;
          if (ok) leaks.push(`${describeCheck(check)} connected at ${new Date().toISOString()}`);
        });
        inFlight.add(probe);
        void probe.finally(() => inFlight.delete(probe));
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await Promise.all([...inFlight]);
      return { probes, leaks };
    },
  };
}

// ------------------------------------------------------------------------------- processes

const started = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function track(child: ChildProcess): void {
  started.add(child);
  child.once('exit', () => started.delete(child));
}

process.on('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});

/** Kills everything this module started and removes its temp dirs. Idempotent; never throws. */
export async function cleanUp(): Promise<void> {
  await Promise.all([...started].map((child) => stopProcess(child, 'SIGKILL').catch(() => undefined)));
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  tempDirs.clear();
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (signal !== 'SIGKILL') child.kill('SIGCONT'); // a stopped process must run to act on the signal
  child.kill(signal);
  await exited;
}

async function makeTempDir(purpose: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `calico-fault-${purpose}-`));
  tempDirs.add(dir);
  return dir;
}

// ---------------------------------------------------------------------------------- agents

export interface AgentOptions {
  /** Extra flags after the lab's defaults. */
  args?: readonly string[];
  /** Extra environment (e.g. PATH with a wrapper directory first). */
  env?: NodeJS.ProcessEnv;
  /** Resolve as soon as the process runs, not when /status says ready. */
  noWait?: boolean;
}

/**
 * Stops the host's current agent (SIGKILL: as a crash would) and waits until it has exited.
 * The kernel keeps whatever rules it had.
 */
export async function killAgent(host: LabHost, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
  const child = host.agent.process;
  if (child.exitCode === null && child.signalCode === null) {
    if (signal !== 'SIGKILL') child.kill('SIGCONT'); // a stopped agent must run to act on the signal
    child.kill(signal);
  }
  return host.agent.exited;
}

/**
 * Starts a calico-agent for `host` the way the lab does (same flags), replacing `host.agent`.
 * The previous agent must have exited (see `killAgent`).
 */
export async function startAgent(lab: Lab, host: LabHost, options: AgentOptions = {}): Promise<LabAgent> {
  const previous = host.agent.process;
  if (previous.exitCode === null && previous.signalCode === null) throw new Error(`fault lab: ${host.hostname} still has a running agent`);
  const port = await freePort();
  const args = [
    AGENT,
    `--hostname=${host.hostname}`,
    `--dataplane-netns=${host.netns.name}`,
    `--health-listen=127.0.0.1:${port}`,
    '--log-level=info',
    '--reporting-interval=0',
    '--endpoint-status=false',
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { env: { ...lab.etcd.env, ...options.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  track(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-400_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const agent: LabAgent = { process: child, healthUrl: `http://127.0.0.1:${port}`, log: () => stderr, exited };
  host.agent = agent;
  if (options.noWait) return agent;
  const deadline = performance.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`agent for ${host.hostname} exited with ${child.exitCode}:\n${stderr}`);
    const ready = await httpGet(agent, '/readiness').catch(() => undefined);
    if (ready?.code === 200) return agent;
    if (performance.now() > deadline) throw new Error(`agent for ${host.hostname} not ready after 20 s:\n${stderr}`);
    await sleep(20);
  }
}

export async function httpGet(agent: LabAgent, path: string): Promise<{ code: number; body: string }> {
  const response = await fetch(`${agent.healthUrl}${path}`, { signal: AbortSignal.timeout(2000) });
  return { code: response.status, body: await response.text() };
}

/**
 * Sum of a Prometheus metric's samples whose labels include every `labels` pair (0 when absent).
 * `name` is the full sample name (e.g. `calico_agent_restore_bytes_sum`).
 */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const sampleLabels = match[2] ?? '';
    if (Object.entries(labels).every(([key, value]) => sampleLabels.includes(`${key}="${value}"`))) sum += Number(match[3]);
  }
  return sum;
}

export { until } from '../helpers/until.js';

export async function metrics(agent: LabAgent): Promise<string> {
  const response = await httpGet(agent, '/metrics');
  if (response.code !== 200) throw new Error(`/metrics answered ${response.code}`);
  return response.body;
}

/** The JSON log lines of an agent's stderr with the given `msg`. */
export function logLines(agent: LabAgent, msg: string): Record<string, unknown>[] {
  return agent
    .log()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === msg);
}

// ---------------------------------------------------------------------------------- kernel

/**
 * The backend's plain command (`iptables-legacy` / `iptables-nft`, `ip6tables-…`) holding our
 * chains in the namespace: the agent auto-detects legacy or nft, and we do not guess which.
 */
export async function iptablesCommand(ns: Netns, family: Family = 4): Promise<string> {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  const errors: string[] = [];
  for (const mode of ['legacy', 'nft']) {
    const result = await ns.exec([`${base}-${mode}-save`, '-t', 'filter'], { allowFail: true });
    if (result.stdout.includes(':cali-FORWARD')) return `${base}-${mode}`;
    errors.push(result.stderr.trim());
  }
  throw new Error(`no ${base} backend holds cali-FORWARD in ${ns.name}: ${errors.join('; ')}`);
}

/** `ip[6]tables-save -t filter` of the backend holding our chains. */
export async function iptablesSave(ns: Netns, family: Family = 4): Promise<string> {
  return (await ns.exec([`${await iptablesCommand(ns, family)}-save`, '-t', 'filter'])).stdout;
}

export { chainRules } from '../helpers/iptables-save.js';

// ---------------------------------------------------------------- a long-lived connection

export interface Connection {
  /** Sends one line from the client and resolves once the server has received it. */
  roundTrip(timeoutMs?: number): Promise<void>;
  /** Lines the server received so far. */
  received(): string[];
  /** True while both ends run. */
  open(): boolean;
  close(): Promise<void>;
}

/**
 * One TCP connection from `from` to `to:port` that stays open: `nc -l` (no -k: one connection)
 * in `to`, `nc` in `from` fed through its stdin. A heartbeat line is sent every `heartbeatMs`.
 */
export async function openConnection(from: LabWorkload, to: LabWorkload, port: number, heartbeatMs = 100): Promise<Connection> {
  const server = spawn('ip', ['netns', 'exec', to.netns.name, 'nc', '-l', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(server);
  let serverOut = '';
  const arrivals: (() => void)[] = [];
  server.stdout!.on('data', (chunk: Buffer) => {
    serverOut += chunk.toString();
    for (const wake of arrivals.splice(0)) wake();
  });
  const deadline = performance.now() + 5000;
  while (!/:\d+/.test((await to.netns.exec(['ss', '-Hltn', `sport = :${port}`], { allowFail: true })).stdout)) {
    if (server.exitCode !== null || performance.now() > deadline) throw new Error(`nc -l ${port} did not start in ${to.name}`);
    await sleep(10);
  }
  const client = spawn('ip', ['netns', 'exec', from.netns.name, 'nc', '-N', to.ipv4, String(port)], { stdio: ['pipe', 'ignore', 'pipe'] });
  track(client);
  client.stdin!.on('error', () => undefined);
  let sequence = 0;
  const send = (line: string): void => {
    client.stdin!.write(`${line}\n`);
  };
  const heartbeat = setInterval(() => send(`beat ${sequence++}`), heartbeatMs);
  const isOpen = (): boolean => server.exitCode === null && server.signalCode === null && client.exitCode === null && client.signalCode === null;
  const connection: Connection = {
    async roundTrip(timeoutMs = 3000) {
      const marker = `marker ${sequence++} ${performance.now().toFixed(0)}`;
      send(marker);
      const until = performance.now() + timeoutMs;
      while (!serverOut.includes(`${marker}\n`)) {
        if (!isOpen()) throw new Error(`connection ${from.name} → ${to.name}:${port} closed before "${marker}" arrived`);
        if (performance.now() > until) throw new Error(`"${marker}" did not reach ${to.name}:${port} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          arrivals.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    received: () => serverOut.split('\n').filter((line) => line !== ''),
    open: isOpen,
    async close() {
      clearInterval(heartbeat);
      await Promise.all([stopProcess(client, 'SIGKILL'), stopProcess(server, 'SIGKILL')]);
    },
  };
  try {
    await connection.roundTrip();
  } catch (error) {
    await connection.close();
    throw error;
  }
  return connection;
}

// ------------------------------------------------------------ an iptables-restore that fails

export interface RestoreWrapper {
  /** Directory to put first on the agent's PATH. */
  dir: string;
  /** `pass`: exec the real binary; `fail N`: fail the next N calls, then pass; `always`: fail every call. */
  setMode(mode: 'pass' | 'always' | { failNext: number }): Promise<void>;
  /** Calls the wrapper failed on purpose so far. */
  failures(): Promise<number>;
}

/**
 * FAKE (the one thing a test cannot make a real iptables-restore do on demand): a directory of
 * shell wrappers named like the IPv4 restore binaries the agent may pick
 * (agent/dataplane/iptables-backend.ts: `iptables-<legacy|nft>-restore`, `iptables-restore`).
 * Each wrapper reads its mode file and either fails (consuming its input, exit 1 with an
 * iptables-style message) or execs the real binary of the same name. The IPv6 tools are not
 * wrapped.
 */
export async function createRestoreWrapper(): Promise<RestoreWrapper> {
  const dir = await makeTempDir('restore');
  const script = (real: string): string => `#!/bin/sh
# FAKE iptables restore for the fault tests: fails on purpose while ${dir}/mode says so.
dir='${dir}'
mode=$(cat "$dir/mode")
fail() {
  cat >/dev/null
  echo "iptables-restore: line 1 failed (fault test: failing on purpose)" >&2
  echo x >>"$dir/failures"
  exit 1
}
case "$mode" in
  always) fail ;;
  fail\\ *)
    left=\${mode#fail }
    if [ "$left" -gt 0 ]; then
      echo "fail $((left - 1))" >"$dir/mode"
      fail
    fi ;;
esac
exec ${real} "$@"
`;
  for (const name of ['iptables-legacy-restore', 'iptables-nft-restore', 'iptables-restore']) {
    const path = join(dir, name);
    await writeFile(path, script(`/usr/sbin/${name}`));
    await chmod(path, 0o755);
  }
  await writeFile(join(dir, 'mode'), 'pass\n');
  await writeFile(join(dir, 'failures'), '');
  return {
    dir,
    async setMode(mode) {
      await writeFile(join(dir, 'mode'), `${typeof mode === 'string' ? mode : `fail ${mode.failNext}`}\n`);
    },
    async failures() {
      return (await readFile(join(dir, 'failures'), 'utf8')).split('\n').filter((line) => line !== '').length;
    },
  };
}

// ----------------------------------------------------------------------------------- etcd

/** Runs etcdctl (API v3) against the lab's etcd; throws with stderr on failure. */
export async function etcdctl(lab: Lab, args: readonly string[]): Promise<string> {
  const child = spawn('etcdctl', [`--endpoints=${lab.etcd.endpoint}`, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited with ${code}: ${stderr.trim()}`);
  return stdout;
}

/** The store revision, via etcdctl (works as soon as etcd answers, whatever the lab client's state). */
export async function storeRevision(lab: Lab): Promise<number> {
  const out = await etcdctl(lab, ['get', '/calico/v1/Ready', '-w', 'json']);
  return Number((JSON.parse(out) as { header: { revision: string | number } }).header.revision);
}
