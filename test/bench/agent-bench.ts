/**
 * End-to-end scale benchmark of the real calico-agent against the kernel floor measured in the
 * same run (prints figures, asserts nothing). Run: `npm run bench:agent` (builds first).
 *
 * One private etcd, one throwaway host namespace per backend, the built agent started as the
 * `calico-agent` command runs it (agent/launcher.sh: jemalloc when installed), programming that
 * namespace through `--dataplane-netns`, started with its
 * default options (backend `auto`) unless BACKENDS names one. No packets are sent: this measures
 * programming, not forwarding. Phases, per backend:
 *   1. cold start on an empty kernel → ready; restore calls/bytes; rules, chains, set members;
 *      the CPU it took (agent, its helper and tools, etcd; /proc) and what that CPU spread over
 *      the machine's cores would take at best, against the floor;
 *   2. the agent stopped (SIGTERM), floors, in a fresh namespace holding a copy of what the agent
 *      programmed (same tools, forked from a small helper process): full restore (ipsets, then
 *      both families side by side) and the tools' CPU for it, one 10-rule chain replaced, one set
 *      member added. The floor takes the tools as the agent must and may: the sets in calls of at
 *      most MAX_SETS_PER_RESTORE sets each (agent/dataplane/ipsets.ts: one call for thousands of
 *      sets costs ipset O(lines × sets) in its own process, 2.75 s against 1.48 s for the bench's
 *      3,894 sets), the tables with `--noflush` (the agent never flushes a table: on an empty
 *      table it costs iptables-nft-restore ~0.35 s more per family here);
 *   3. warm restart (start again) → ready; restore bytes written (target 0);
 *   4. single-profile rule change (one IPv4 rule's src_net edited, so one chain rewritten):
 *      etcd put → `/status` appliedRevision ≥ put revision, the same seen as the agent's
 *      `dataplane applied` log line arriving, and the agent's own `etcdToKernelMs`;
 *   5. remote endpoint added/removed (its address joins/leaves a referenced tag's set), same way;
 *   6. tag change: a profile used by one remote endpoint gains/loses a referenced tag;
 *   7. burst of endpoint updates spread over ~1 s: time from the last put to applied, restore
 *      calls and passes it took;
 *   8. agent RSS (`/proc/<pid>/status`) and V8 heap right after all that, and settled: once the
 *      agent's two quiet collections (agent/heap.ts; counted in its metrics) have run after the load
 *      (the 200 MB target applies to the settled figure; both are printed).
 * Then a summary table: measurement | figure | floor (same run) | ratio | target | within target?
 *
 * Scale S by default (issue: 1,000 local endpoints, 100,000 cluster-wide, 2,000 profiles × 10
 * rules, each endpoint in 2 profiles, every profile tagged and every tag referenced). Smaller runs
 * by flags `--local=…` or env `LOCAL=…` (same for each): LOCAL endpoints on the measured host
 * `bench-host`, REMOTE endpoints on 100 other hosts, PROFILES profiles of RULES rules (60 %
 * inbound), TAGS tags (profile i carries tag-(i mod TAGS)), ITERATIONS per latency phase, BURST
 * updates, BACKENDS (`auto`, `nft`, `legacy`, comma-separated), POLL_MS between /status polls
 * (0, the default: /status is asked once the agent's "dataplane applied" line has arrived),
 * AGENT_ARGS and AGENT_NODE_ARGS (extra agent and Node.js flags), AGENT_LOG (a file for its log),
 * IFACES=1 to create the local endpoints' interfaces (dummy links) so the agent's per-interface
 * plumbing runs instead of skipping missing interfaces.
 *
 * Addresses: IPv4 from 198.18.0.0/15 (RFC 2544 benchmarking range: the documentation ranges hold
 * only 768 addresses), IPv6 from 2001:db8::/32, rule nets from 203.0.113.0/24 and 2001:db8::/32.
 * The agent runs with host/endpoint status reporting off (as in test/lab), so every etcd revision
 * comes from this benchmark's writes.
 *
 * Invariant: everything created (namespaces, etcd and its data dir, agent and helper processes) is
 * removed on success, on error and on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { Agent as HttpAgent, get as httpGet } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Etcd3, type IRequestOp } from 'etcd3';
import {
  READY_KEY,
  decodeEntry,
  endpointKey,
  profileRulesKey,
  profileTagsKey,
  type EndpointRef,
} from '../../src/model/index.js';
import { freePort, startEtcd, type EtcdInstance } from '../helpers/etcd.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { createHelperRunner, type HelperRunner } from '../../agent/dataplane/exec-helper.js';
import { MAX_SETS_PER_RESTORE, splitRestoreInput } from '../../agent/dataplane/ipsets.js';
import { REPO_ROOT } from '../lab/lab.js';
import { prng } from './prng.js';
import { childNamed, processCpuSeconds, treeCpuSeconds } from './proc-cpu.js';

// ---------------------------------------------------------------------------------------------
// Settings

function setting(name: string, fallback: string): string {
  const flag = process.argv.find((arg) => arg.startsWith(`--${name.toLowerCase().replace(/_/g, '-')}=`));
  return flag ? flag.slice(flag.indexOf('=') + 1) : process.env[name] ?? fallback;
}
function intSetting(name: string, fallback: number): number {
  const text = setting(name, String(fallback));
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name}: expected a non-negative integer, got ${JSON.stringify(text)}`);
  return value;
}

const HOST = 'bench-host';
const REMOTE_HOSTS = 100;
const LOCAL = intSetting('LOCAL', 1_000);
const REMOTE = intSetting('REMOTE', 99_000);
const PROFILES = Math.max(1, intSetting('PROFILES', 2_000));
const RULES = Math.max(5, intSetting('RULES', 10));
const TAGS = Math.max(1, intSetting('TAGS', 2_000));
const ITERATIONS = Math.max(1, intSetting('ITERATIONS', 30));
const BURST = intSetting('BURST', 1_000);
const POLL_MS = intSetting('POLL_MS', 0);
const IFACES = setting('IFACES', '0') === '1';
/** Pause before each measured change, `min-max` ms (jittered), so passes do not coalesce. */
const GAP_MS = (() => {
  const text = setting('GAP_MS', '100-300');
  const match = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!match) throw new Error(`GAP_MS: expected MIN-MAX in ms, got ${JSON.stringify(text)}`);
  const min = Number(match[1]);
  return { min, max: Math.max(min, Number(match[2] ?? min)) };
})();
/** Extra agent flags, space-separated (e.g. `--min-apply-interval=10ms --log-level=debug`). */
const AGENT_ARGS = setting('AGENT_ARGS', '').split(/\s+/).filter((a) => a !== '');
/** The agent as its package installs it: the launcher behind the `calico-agent` command. */
const AGENT_COMMAND = join(REPO_ROOT, 'agent/launcher.sh');
/** Extra Node.js flags for the agent process, space-separated (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
const AGENT_NODE_ARGS = setting('AGENT_NODE_ARGS', '').split(/\s+/).filter((a) => a !== '');
/** When set, every agent's stderr (pino JSON lines) is appended to this file, for diagnosis. */
const AGENT_LOG = setting('AGENT_LOG', '');
const BACKENDS = setting('BACKENDS', 'auto')
  .split(',')
  .map((b) => b.trim())
  .filter((b) => b !== '');
for (const backend of BACKENDS) if (!['auto', 'nft', 'legacy'].includes(backend)) throw new Error(`BACKENDS: unknown backend ${backend}`);
/** Repetitions of each floor measurement (median reported). */
const FLOOR_REPS = Math.max(1, intSetting('FLOOR_REPS', 15));
/** 198.18.0.0/15 holds 131,072 addresses; two are reserved for the join/leave endpoint. */
if (LOCAL + REMOTE + BURST > 131_000) throw new Error('LOCAL + REMOTE + BURST must stay below 131,000 (one 198.18.0.0/15 address each)');

const READY_TIMEOUT_MS = 20 * 60_000;
/** Longest wait for the agent's quiet collections (agent/heap.ts) before the settled memory is read. */
const SETTLE_TIMEOUT_MS = 120_000;
const APPLY_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// The synthetic cluster (deterministic)

const random = prng(7);
const pick = (n: number): number => Math.floor(random() * n);

const INBOUND_RULES = Math.ceil(RULES * 0.6);
/** The inbound rule the single-profile change edits: an IPv4-only deny, so one chain changes. */
const EDITED_RULE = 2;

/** Rule j of profile `profile`: a pure function of its arguments, so an edit changes only the edited rule. */
function ruleFor(profile: number, j: number, edit?: number): Record<string, unknown> {
  switch (j % 5) {
    case 0: // every tag is referenced: profile i's first rule allows its own tag
      return { action: 'allow', protocol: 'tcp', src_tag: `tag-${(profile + j) % TAGS}`, dst_ports: [80 + (profile % 100), 443] };
    case 1:
      return { action: 'allow', protocol: 'udp', src_tag: `tag-${(profile * 7 + j * 13) % TAGS}`, dst_ports: [53, '5000:5100'] };
    case 2: {
      const last = edit === undefined ? (profile * 16 + j) % 256 : edit % 256;
      return { action: 'deny', src_net: `203.0.113.${last}/32` };
    }
    case 3:
      return { action: 'allow', protocol: 'icmp', icmp_type: 8 };
    default:
      return { action: 'allow', protocol: 'tcp', src_net: `2001:db8:${profile.toString(16)}::/48`, dst_ports: [22] };
  }
}

/** The rules object of profile `i`; `edit` changes the edited rule's src_net only. */
function profileRules(i: number, edit?: number): string {
  const rules = Array.from({ length: RULES }, (_, j) => ruleFor(i, j, j === EDITED_RULE ? edit : undefined));
  return JSON.stringify({ inbound_rules: rules.slice(0, INBOUND_RULES), outbound_rules: rules.slice(INBOUND_RULES) });
}

/** 198.18.0.0 + n + 1. */
function ipv4Of(n: number): string {
  const v = 0xc6120000 + n + 1;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}
const ipv6Of = (n: number): string => `2001:db8:1:${(n >>> 16).toString(16)}::${(n & 0xffff).toString(16)}`;
const ifaceOf = (n: number): string => `cali${n.toString(16).padStart(11, '0')}`;

interface EndpointSpec {
  key: string;
  ref: EndpointRef;
  profiles: string[];
}

function endpointRef(n: number): EndpointRef {
  return { host: n < LOCAL ? HOST : `host-${n % REMOTE_HOSTS}`, orchestrator: 'k8s', workload: `wl${n}`, endpointId: 'eth0' };
}

function endpointValue(n: number, profiles: readonly string[], addressIndex = n, ipv6 = n % 2 === 0): string {
  return JSON.stringify({
    state: 'active',
    name: ifaceOf(n),
    mac: `02:00:${[24, 16, 8, 0].map((s) => ((n >>> s) & 255).toString(16).padStart(2, '0')).join(':')}`,
    profile_ids: profiles,
    ipv4_nets: [`${ipv4Of(addressIndex)}/32`],
    ipv6_nets: ipv6 ? [`${ipv6Of(addressIndex)}/128`] : [],
  });
}

function buildCluster(): { puts: [string, string][]; endpoints: EndpointSpec[] } {
  const puts: [string, string][] = [[READY_KEY, 'true']];
  for (let i = 0; i < PROFILES; i++) {
    puts.push([profileRulesKey(`prof-${i}`), profileRules(i)]);
    puts.push([profileTagsKey(`prof-${i}`), JSON.stringify([`tag-${i % TAGS}`])]);
  }
  const endpoints: EndpointSpec[] = [];
  for (let n = 0; n < LOCAL + REMOTE; n++) {
    const profiles = [n < LOCAL ? `prof-${n % PROFILES}` : `prof-${pick(PROFILES)}`];
    if (PROFILES > 1) {
      let second = pick(PROFILES);
      while (`prof-${second}` === profiles[0]) second = pick(PROFILES);
      profiles.push(`prof-${second}`);
    }
    const ref = endpointRef(n);
    const key = endpointKey(ref);
    endpoints.push({ key, ref, profiles: [...new Set(profiles)] });
    puts.push([key, endpointValue(n, [...new Set(profiles)])]);
  }
  // Every generated value must pass the agent's own validation, or the figures would be wrong.
  for (const [key, value] of puts) {
    const decoded = decodeEntry(key, value);
    if (decoded.ok !== true) throw new Error(`generated an invalid value for ${key}: ${decoded.ok === false ? decoded.reason : 'ignored'}`);
  }
  return { puts, endpoints };
}

/** Writes in transactions of 128 puts (etcd's default max-txn-ops), 8 in flight; returns the last revision. */
async function bulkPut(client: Etcd3, puts: readonly [string, string][]): Promise<number> {
  let next = 0;
  let revision = 0;
  const worker = async (): Promise<void> => {
    while (next < puts.length) {
      const batch = puts.slice(next, next + 128);
      next += 128;
      const success: IRequestOp[] = batch.map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }));
      const response = await client.kv.txn({ success });
      revision = Math.max(revision, Number(response.header.revision));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return revision;
}

async function put(client: Etcd3, key: string, value: string): Promise<number> {
  const response = await client.kv.put({ key: Buffer.from(key), value: Buffer.from(value) });
  return Number(response.header.revision);
}

async function del(client: Etcd3, key: string): Promise<number> {
  const response = await client.kv.deleteRange({ key: Buffer.from(key) });
  return Number(response.header.revision);
}

// ---------------------------------------------------------------------------------------------
// The agent process

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 });

function httpText(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: httpAgent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

interface AppliedLine {
  /** performance.now() when the line reached this process. */
  at: number;
  revision: number;
  etcdToKernelMs: number | undefined;
  restoreCalls: number;
  bytes: number;
  ms: number;
  reason: string;
}

interface RunningAgent {
  child: ChildProcess;
  pid: number;
  url: string;
  startedAt: number;
  applied: AppliedLine[];
  /** Wakes waiters when an `applied` line arrives. */
  onApplied: Set<() => void>;
  tail(): string;
  exited: Promise<number | null>;
  /** The iptables variant the agent programs, from its `iptables backend …` log line. */
  mode: Promise<Mode>;
}

const liveAgents = new Set<ChildProcess>();

async function startAgentProcess(etcd: EtcdInstance, ns: Netns, backend: string): Promise<RunningAgent> {
  const port = await freePort();
  const args = [
    `--hostname=${HOST}`,
    `--dataplane-netns=${ns.name}`,
    `--health-listen=127.0.0.1:${port}`,
    // `auto` is the default: the agent then runs with its default options.
    ...(backend === 'auto' ? [] : [`--iptables-backend=${backend}`]),
    '--log-level=info',
    '--reporting-interval=0',
    '--endpoint-status=false',
    ...AGENT_ARGS,
  ];
  const startedAt = performance.now();
  // The `calico-agent` command as installed (its launcher sets the malloc tuning and passes Node
  // flags on).
  const env = AGENT_NODE_ARGS.length > 0 ? { ...etcd.env, CALICO_AGENT_NODE_FLAGS: AGENT_NODE_ARGS.join(' ') } : etcd.env;
  const child = spawn(AGENT_COMMAND, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  liveAgents.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      liveAgents.delete(child);
      resolve(code);
    }),
  );
  let resolveMode: (mode: Mode) => void = () => {};
  const agent: RunningAgent = {
    mode: new Promise<Mode>((resolve) => (resolveMode = resolve)),
    child,
    pid: child.pid ?? 0,
    url: `http://127.0.0.1:${port}`,
    startedAt,
    applied: [],
    onApplied: new Set(),
    tail: () => tail,
    exited,
  };
  let tail = '';
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const at = performance.now();
    tail = (tail + chunk).slice(-20_000);
    if (AGENT_LOG) appendFileSync(AGENT_LOG, chunk);
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const chosen = line.includes('"msg":"iptables backend') ? /"backend":"(nft|legacy)"/.exec(line) : null;
      if (chosen) resolveMode(chosen[1] as Mode);
      if (!line.includes('"dataplane applied"')) continue;
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        agent.applied.push({
          at,
          revision: Number(record.revision),
          etcdToKernelMs: typeof record.etcdToKernelMs === 'number' ? record.etcdToKernelMs : undefined,
          restoreCalls: Number(record.restoreCalls),
          bytes: Number(record.bytes),
          ms: Number(record.ms),
          reason: String(record.reason),
        });
        for (const wake of agent.onApplied) wake();
      } catch {
        // not JSON: the agent's one-line failure; kept in the tail
      }
    }
  });
  return agent;
}

async function stopAgentProcess(agent: RunningAgent): Promise<number> {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null) return 0;
  const started = performance.now();
  agent.child.kill('SIGTERM');
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), 10_000);
  await agent.exited;
  clearTimeout(timer);
  return performance.now() - started;
}

interface AgentStatus {
  ready: boolean;
  appliedRevision: number;
  datastoreRevision: number;
  localEndpoints: number;
  endpoints: number;
  lastError: string | null;
}

async function status(agent: RunningAgent): Promise<AgentStatus> {
  return JSON.parse((await httpText(`${agent.url}/status`)).body) as AgentStatus;
}

function assertAlive(agent: RunningAgent, phase: string): void {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null) {
    throw new Error(`agent exited (${agent.child.exitCode ?? agent.child.signalCode}) during ${phase}:\n${agent.tail()}`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Spawn → `/readiness` 200 and appliedRevision ≥ `revision`; ms since spawn. */
async function waitReady(agent: RunningAgent, revision: number, phase: string): Promise<number> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  let last: AgentStatus | undefined;
  for (;;) {
    assertAlive(agent, phase);
    const ready = await httpText(`${agent.url}/readiness`, 2000).catch(() => undefined);
    if (ready?.status === 200) {
      last = await status(agent).catch(() => last);
      if (last && last.appliedRevision >= revision) return performance.now() - agent.startedAt;
    }
    if (performance.now() > deadline) throw new Error(`${phase}: agent not ready: ${JSON.stringify(last)}\n${agent.tail()}`);
    await sleep(5);
  }
}

/**
 * performance.now() of the first /status answer with appliedRevision ≥ revision. With POLL_MS=0
 * (the default) it asks only once the agent's "dataplane applied" line for that revision has
 * arrived: polling every millisecond would take CPU from the agent and its restores on a small
 * machine (and so slow what it measures); POLL_MS > 0 polls at that period from the start.
 */
async function pollApplied(agent: RunningAgent, revision: number, phase: string): Promise<number> {
  const deadline = performance.now() + APPLY_TIMEOUT_MS;
  if (POLL_MS === 0) await appliedLine(agent, revision, phase);
  for (;;) {
    const current = await status(agent).catch(() => undefined);
    const at = performance.now();
    if (current && current.appliedRevision >= revision) return at;
    assertAlive(agent, phase);
    if (at > deadline) throw new Error(`${phase}: revision ${revision} not applied: ${JSON.stringify(current)}\n${agent.tail()}`);
    if (POLL_MS > 0) await sleep(POLL_MS);
  }
}

/** Resolves with the first `dataplane applied` line covering `revision`. */
function appliedLine(agent: RunningAgent, revision: number, phase: string): Promise<AppliedLine> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const line = agent.applied.find((l) => l.revision >= revision);
      if (!line) return false;
      cleanup();
      resolve(line);
      return true;
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${phase}: no "dataplane applied" line for revision ${revision}\n${agent.tail()}`));
    }, APPLY_TIMEOUT_MS);
    const cleanup = (): void => {
      clearTimeout(timer);
      agent.onApplied.delete(wake);
    };
    const wake = (): void => void check();
    agent.onApplied.add(wake);
    check();
  });
}

// ---------------------------------------------------------------------------------------------
// Metrics and kernel census

/** Sum of the samples of `name` (all label sets, or those containing `label`) in a Prometheus text exposition. */
function metricSum(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue;
    if (label !== undefined && !rest.includes(label)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

interface Counters {
  restoreCalls: number;
  restoreBytes: number;
  readbacks: number;
  passes: number;
  /** Passes run only to re-read the kernel (post-write checks, periodic refresh) and their total seconds. */
  readbackPasses: number;
  readbackPassSeconds: number;
  heapUsed: number;
  /** V8 heap committed (all spaces), and of it the young generation. */
  heapTotal: number;
  newSpaceTotal: number;
  external: number;
  rss: number;
  initialResyncSeconds: number;
  quietCollections: number;
}

async function counters(agent: RunningAgent): Promise<Counters> {
  const text = (await httpText(`${agent.url}/metrics`)).body;
  return {
    restoreCalls: metricSum(text, 'calico_agent_restore_calls_total'),
    restoreBytes: metricSum(text, 'calico_agent_restore_bytes_sum'),
    readbacks: metricSum(text, 'calico_agent_readback_calls_total'),
    passes: metricSum(text, 'calico_agent_apply_seconds_count'),
    readbackPasses: metricSum(text, 'calico_agent_apply_seconds_count', 'reason="read-back"'),
    readbackPassSeconds: metricSum(text, 'calico_agent_apply_seconds_sum', 'reason="read-back"'),
    heapUsed: metricSum(text, 'nodejs_heap_size_used_bytes'),
    heapTotal: metricSum(text, 'nodejs_heap_size_total_bytes'),
    newSpaceTotal: metricSum(text, 'nodejs_heap_space_size_total_bytes', 'space="new"'),
    external: metricSum(text, 'nodejs_external_memory_bytes'),
    rss: metricSum(text, 'process_resident_memory_bytes'),
    initialResyncSeconds: metricSum(text, 'calico_agent_initial_resync_seconds'),
    quietCollections: metricSum(text, 'calico_agent_quiet_collections_total'),
  };
}

interface Census {
  chains: number;
  rules: number;
  saveBytes: number;
  sets: number;
  members: number;
  /** Wall time of the iptables-save runs (both families, both tables), ms. */
  saveMs: number;
}

async function census(ns: Netns, backend: Mode): Promise<Census> {
  const result: Census = { chains: 0, rules: 0, saveBytes: 0, sets: 0, members: 0, saveMs: 0 };
  for (const tool of [`iptables-${backend}-save`, `ip6tables-${backend}-save`]) {
    const started = performance.now();
    const saved = await ns.exec([tool]);
    result.saveMs += performance.now() - started;
    result.saveBytes += Buffer.byteLength(saved.stdout);
    for (const line of saved.stdout.split('\n')) {
      if (line.startsWith(':cali')) result.chains++;
      else if (line.startsWith('-A ')) result.rules++;
    }
  }
  const sets = await ns.exec(['ipset', 'save']);
  for (const line of sets.stdout.split('\n')) {
    if (line.startsWith('create ')) result.sets++;
    else if (line.startsWith('add ')) result.members++;
  }
  return result;
}

function procMemory(pid: number): { rssKb: number; hwmKb: number; anonKb: number; fileKb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM'), anonKb: field('RssAnon'), fileKb: field('RssFile') };
}

/** Creates the local endpoints' interfaces (dummy links, up) inside the host namespace. */
async function createInterfaces(ns: Netns): Promise<void> {
  const lines: string[] = [];
  for (let n = 0; n < LOCAL; n++) lines.push(`link add ${ifaceOf(n)} type dummy`, `link set ${ifaceOf(n)} up`);
  await ns.exec(['ip', '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

// ---------------------------------------------------------------------------------------------
// Floors, measured in this run on a copy of what the agent programmed

type Mode = 'nft' | 'legacy';

interface Floors {
  /** ipset restore of every set, then both families' full iptables-restore side by side (ms, median). */
  fullRestoreMs: number;
  /** CPU seconds the tools (and the kernel on their behalf) spent on that full restore (median). */
  fullRestoreCpuSeconds: number;
  /** Its two parts: the ipset restore, and the two families' iptables restores (ms, medians). */
  fullSetsMs: number;
  /** `ipset restore` calls the full restore took. */
  fullSetsCalls: number;
  fullTablesMs: number;
  /** One profile chain (≈ RULES rules) replaced with iptables-restore --noflush (ms, median). */
  chainMs: number;
  /** The slowest of those replacements (ms): the tool's own tail, beside the p99 target. */
  chainMaxMs: number;
  /** One member added to (or removed from) a tag set with ipset restore (ms, median). */
  memberMs: number;
  chainName: string;
  chainBytes: number;
}

/** Save output without its comments, restorable into an empty namespace. */
const restorable = (text: string): string => text.replace(/^#.*\n/gm, '');

/**
 * The kernel floor for this ruleset: the same tools, run by a small helper process (as the agent
 * runs them), in fresh namespaces loaded with a copy of the agent's chains and sets.
 */
async function measureFloors(source: Netns, mode: Mode, registerNs: (ns: Netns) => void): Promise<Floors> {
  const v4 = restorable((await source.exec([`iptables-${mode}-save`])).stdout);
  const v6 = restorable((await source.exec([`ip6tables-${mode}-save`])).stdout);
  const sets = (await source.exec(['ipset', 'save'])).stdout;
  const setParts = splitRestoreInput(sets);
  const fullSets: number[] = [];
  const fullTables: number[] = [];
  /** CPU seconds of the tools (and their kernel work) per full restore. */
  const fullCpu: number[] = [];
  let loaded: { ns: Netns; helper: HelperRunner } | undefined;
  const time = async (work: () => Promise<unknown>): Promise<number> => {
    const started = performance.now();
    await work();
    return performance.now() - started;
  };
  const checked = async (helper: HelperRunner, argv: string[], input: string): Promise<void> => {
    const result = await helper.run(argv, { input });
    if (result.code !== 0) throw new Error(`floor: ${argv.join(' ')} failed: ${result.stderr}`);
  };
  try {
    for (let rep = 0; rep < 3; rep++) {
      if (loaded) {
        await loaded.helper.close();
        await loaded.ns.destroy();
      }
      const ns = await createNetns('floor');
      registerNs(ns);
      const helper = createHelperRunner({ netns: ns.name });
      loaded = { ns, helper };
      await helper.run(['true']);
      const cpuBefore = treeCpuSeconds(helper.pid!);
      const setsMs = await time(async () => {
        for (const part of setParts) await checked(helper, ['ipset', 'restore'], part);
      });
      const tablesMs = await time(() =>
        Promise.all([checked(helper, [`iptables-${mode}-restore`, '--noflush'], v4), checked(helper, [`ip6tables-${mode}-restore`, '--noflush'], v6)]),
      );
      const cpuAfter = treeCpuSeconds(helper.pid!);
      fullSets.push(setsMs);
      fullTables.push(tablesMs);
      fullCpu.push(cpuAfter.process + cpuAfter.descendants - cpuBefore.process - cpuBefore.descendants);
    }
    const { helper } = loaded!;
    // The first inbound profile chain with at least 5 rules: rewritten with one rule's address changed.
    const chainName = /^:(cali-pri-\S+) /m.exec(v4)?.[1];
    if (chainName === undefined) throw new Error('floor: no profile chain in the agent\'s ruleset');
    const body = v4.split('\n').filter((line) => line.startsWith(`-A ${chainName} `));
    const chain: number[] = [];
    let chainBytes = 0;
    for (let rep = 0; rep < FLOOR_REPS; rep++) {
      let edited = false;
      const lines = body.map((line) => {
        if (edited || !/--source 203\.0\.113\.\d+/.test(line)) return line;
        edited = true;
        return line.replace(/--source 203\.0\.113\.\d+/, `--source 203.0.113.${(rep * 37) % 256}`);
      });
      const input = `*filter\n:${chainName} - [0:0]\n${lines.join('\n')}\nCOMMIT\n`;
      chainBytes = input.length;
      chain.push(await time(() => checked(helper, [`iptables-${mode}-restore`, '--noflush'], input)));
    }
    const tagSet = /^create (cali4-\S+) /m.exec(sets)?.[1];
    if (tagSet === undefined) throw new Error('floor: no IPv4 tag set in the agent\'s ruleset');
    const member: number[] = [];
    for (let rep = 0; rep < FLOOR_REPS; rep++) {
      const line = `${rep % 2 === 0 ? 'add' : 'del'} ${tagSet} 198.19.255.250\n`;
      member.push(await time(() => checked(helper, ['ipset', 'restore'], line)));
    }
    return { fullRestoreMs: median(fullSets.map((setsMs, rep) => setsMs + fullTables[rep]!)), fullRestoreCpuSeconds: median(fullCpu), fullSetsMs: median(fullSets), fullSetsCalls: setParts.length, fullTablesMs: median(fullTables), chainMs: median(chain), chainMaxMs: Math.max(...chain), memberMs: median(member), chainName, chainBytes };
  } finally {
    if (loaded) {
      await loaded.helper.close();
      await loaded.ns.destroy();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and printing

function quantile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
const median = (samples: readonly number[]): number => quantile(samples, 0.5);
const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const f0 = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const dist = (samples: readonly number[]): string =>
  `p50 ${f1(median(samples))} / p99 ${f1(quantile(samples, 0.99))} / max ${f1(Math.max(...samples))} ms`;

interface Row {
  measurement: string;
  figure: string;
  floor: string;
  ratio: string;
  target: string;
  verdict: 'yes' | 'NO' | 'n/a';
}

const rows: Row[] = [];
/** One summary row; `ratio` is figure ÷ floor where both are times. */
function row(measurement: string, figure: string, floor: string, ratio: number | undefined, target: string, within: boolean | undefined): void {
  rows.push({
    measurement,
    figure,
    floor,
    ratio: ratio === undefined ? '—' : `${ratio.toFixed(2)}×`,
    target,
    verdict: within === undefined ? 'n/a' : within ? 'yes' : 'NO',
  });
}

function printTable(): void {
  const headers = ['measurement', 'figure', 'floor (same run)', 'ratio', 'target', 'met?'];
  const cells = rows.map((r) => [r.measurement, r.figure, r.floor, r.ratio, r.target, r.verdict]);
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (values: readonly string[]): string => `| ${values.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(headers));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}

const log = (text: string): void => console.log(text);

// ---------------------------------------------------------------------------------------------
// Phases

interface ChangeSample {
  statusMs: number;
  logMs: number;
  agentMs: number | undefined;
  bytes: number;
  restoreCalls: number;
  passMs: number;
}

/** One etcd write, measured three ways; `write` returns the write's revision. */
async function measureChange(agent: RunningAgent, write: () => Promise<number>, phase: string): Promise<ChangeSample> {
  const started = performance.now();
  const revision = await write();
  const [statusAt, line] = await Promise.all([pollApplied(agent, revision, phase), appliedLine(agent, revision, phase)]);
  return {
    statusMs: statusAt - started,
    logMs: line.at - started,
    agentMs: line.etcdToKernelMs,
    bytes: line.bytes,
    restoreCalls: line.restoreCalls,
    passMs: line.ms,
  };
}

/** Burst rounds run so far (one per backend): alternates the direction of the burst's changes. */
let burstRound = 0;

/** Time an event waited before the pass that applied it began (etcdToKernelMs − pass duration). */
const waited = (samples: readonly ChangeSample[]): number[] =>
  samples.flatMap((s) => (s.agentMs === undefined ? [] : [Math.max(0, s.agentMs - s.passMs)]));

const gap = (): Promise<void> => sleep(GAP_MS.min + random() * (GAP_MS.max - GAP_MS.min));

/** Prints one latency phase and adds its rows; returns the put → /status samples. */
function reportLatency(title: string, label: string, samples: readonly ChangeSample[], floorMs: number, floorText: string, target: { p50: number; p99: number; text: string }): number[] {
  const statusMs = samples.map((s) => s.statusMs);
  const agentMs = samples.flatMap((s) => (s.agentMs === undefined ? [] : [s.agentMs]));
  log(`${title}:`);
  log(`  etcd put → /status applied:     ${dist(statusMs)}`);
  log(`  etcd put → "applied" log line:  ${dist(samples.map((s) => s.logMs))}`);
  log(`  agent etcdToKernelMs:           ${dist(agentMs)}`);
  log(`  agent pass duration:            ${dist(samples.map((s) => s.passMs))}`);
  log(`  event waited before its pass:   ${dist(waited(samples))}`);
  log(
    `  bytes per change: median ${f0(median(samples.map((s) => s.bytes)))}, max ${f0(Math.max(...samples.map((s) => s.bytes)))}; ` +
      `restore calls per change: median ${median(samples.map((s) => s.restoreCalls))}`,
  );
  row(label, dist(statusMs), `${f1(floorMs)} ms (${floorText})`, median(statusMs) / floorMs, target.text,
    median(statusMs) <= target.p50 && quantile(statusMs, 0.99) <= target.p99);
  return statusMs;
}

async function benchBackend(setting: string, etcd: EtcdInstance, client: Etcd3, cluster: ReturnType<typeof buildCluster>, registerNs: (ns: Netns) => void): Promise<void> {
  log(`\n=== backend ${setting} ===`);
  const ns = await createNetns(`bench-${setting}`);
  registerNs(ns);
  let agent: RunningAgent | undefined;
  try {
    if (IFACES) {
      const started = performance.now();
      await createInterfaces(ns);
      log(`created ${LOCAL} dummy cali… interfaces in ${ns.name} in ${f0(performance.now() - started)} ms`);
    }
    const populatedRevision = Number((await client.kv.range({ key: Buffer.from(READY_KEY), count_only: true })).header.revision);

    // 1. Cold start, with the CPU it took: the agent's own threads, its helper and the tools
    // (live or reaped), and etcd serving the list.
    const etcdPid = childNamed('etcd');
    const etcdCpuBefore = etcdPid === undefined ? 0 : processCpuSeconds(etcdPid);
    agent = await startAgentProcess(etcd, ns, setting);
    const coldMs = await waitReady(agent, populatedRevision, 'cold start');
    const coldCpu = treeCpuSeconds(agent.pid);
    const coldEtcdCpu = etcdPid === undefined ? Number.NaN : processCpuSeconds(etcdPid) - etcdCpuBefore;
    const mode = await agent.mode;
    const cold = await counters(agent);
    const kernel = await census(ns, mode);
    log(
      `cold start (${setting} → ${mode}): ready in ${f0(coldMs)} ms (agent initial resync ${f1(cold.initialResyncSeconds * 1000)} ms); ` +
        `${cold.restoreCalls} restore calls, ${f0(cold.restoreBytes)} bytes`,
    );
    log(
      `kernel: ${kernel.chains} cali chains, ${kernel.rules} rules (v4+v6, ${f0(kernel.saveBytes)} bytes of *-save), ` +
        `${kernel.sets} ipsets, ${kernel.members} members; iptables-save x2 took ${f0(kernel.saveMs)} ms`,
    );
    const label = (what: string): string => `${what} (${setting === mode ? mode : `${setting} → ${mode}`})`;

    // 2. Floors on a copy of that ruleset, with the agent stopped (nothing else competes for the CPU).
    const stopMs = await stopAgentProcess(agent);
    const floors = await measureFloors(ns, mode, registerNs);
    log(
      `floors (${mode}, same ruleset, fresh namespace): full restore ${f0(floors.fullRestoreMs)} ms ` +
        `(ipset restore ${f0(floors.fullSetsMs)} ms in ${floors.fullSetsCalls} calls of ≤ ${MAX_SETS_PER_RESTORE} sets, then both families' iptables restores with --noflush ${f0(floors.fullTablesMs)} ms); ` +
        `replace ${floors.chainName} (${floors.chainBytes} B) ${f1(floors.chainMs)} ms (slowest of ${FLOOR_REPS}: ${f1(floors.chainMaxMs)} ms); ` +
        `one ipset member ${f1(floors.memberMs)} ms`,
    );
    // What the cold start asked of the machine's cores, beside what the floor's tools alone ask:
    // the wall time no schedule can beat is the total CPU over the cores.
    const coldCpuTotal = coldCpu.process + coldCpu.descendants + coldEtcdCpu;
    const cores = availableParallelism();
    log(
      `cold start CPU: agent ${f2(coldCpu.process)} s, its helper and tools ${f2(coldCpu.descendants)} s, etcd ${f2(coldEtcdCpu)} s; ` +
        `${f2(coldCpuTotal)} s in all over ${f2(coldMs / 1000)} s (${f2(coldCpuTotal / (coldMs / 1000))} of ${cores} cores); ` +
        `floor's tools ${f2(floors.fullRestoreCpuSeconds)} s over ${f2(floors.fullRestoreMs / 1000)} s; ` +
        `the cold start's CPU spread over ${cores} cores takes ${f0((coldCpuTotal / cores) * 1000)} ms = ${f2((coldCpuTotal / cores) * 1000 / floors.fullRestoreMs)}× the floor`,
    );
    row(label('cold start → ready'), `${f0(coldMs)} ms`, `${f0(floors.fullRestoreMs)} ms (full restore)`, coldMs / floors.fullRestoreMs,
      '≤ 1.3 × floor', coldMs <= 1.3 * floors.fullRestoreMs);
    row(label('cold start CPU (agent + helper/tools + etcd)'), `${f2(coldCpu.process)} + ${f2(coldCpu.descendants)} + ${f2(coldEtcdCpu)} s`,
      `${f2(floors.fullRestoreCpuSeconds)} s (tools)`, undefined, '(reported)', undefined);
    row(label('cold start restore calls / bytes'), `${cold.restoreCalls} / ${f0(cold.restoreBytes)} B`, '—', undefined, '—', undefined);

    // 3. Warm restart.
    agent = await startAgentProcess(etcd, ns, setting);
    const warmMs = await waitReady(agent, populatedRevision, 'warm restart');
    const warm = await counters(agent);
    log(
      `warm restart: stop took ${f0(stopMs)} ms; ready in ${f0(warmMs)} ms (agent initial resync ${f1(warm.initialResyncSeconds * 1000)} ms); ` +
        `${warm.restoreCalls} restore calls, ${f0(warm.restoreBytes)} bytes, ${warm.readbacks} read-backs`,
    );
    row(label('warm restart → ready'), `${f0(warmMs)} ms`, '—', undefined, '—', undefined);
    row(label('warm restart bytes written'), `${f0(warm.restoreBytes)} B in ${warm.restoreCalls} calls`, '0', undefined, '0 B', warm.restoreBytes === 0);

    // 4. Single-profile rule change.
    const profile = 0;
    const profileSamples: ChangeSample[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      await gap();
      profileSamples.push(
        await measureChange(agent, () => put(client, profileRulesKey(`prof-${profile}`), profileRules(profile, 1000 + i)), 'profile change'),
      );
    }
    reportLatency(
      `single-profile rule change x${ITERATIONS} (prof-${profile}, one IPv4 rule's src_net)`,
      label('rule change, put → /status'),
      profileSamples,
      floors.chainMs,
      `one chain replaced; slowest of ${FLOOR_REPS}: ${f1(floors.chainMaxMs)} ms`,
      { p50: 1.5 * floors.chainMs, p99: 100, text: 'p50 ≤ 1.5 × floor, p99 ≤ 100 ms' },
    );
    const profileBytes = median(profileSamples.map((s) => s.bytes));
    row(label('rule change bytes written'), `${f0(profileBytes)} B median`, `${floors.chainBytes} B (the chain)`, undefined, '≤ 2 KiB', profileBytes <= 2048);

    // 5. Remote endpoint added/removed: an IPv4-only remote endpoint of prof-0 joins and leaves its tags' sets.
    const joinN = LOCAL + REMOTE;
    const joinRef: EndpointRef = { host: 'host-join', orchestrator: 'k8s', workload: 'joiner', endpointId: 'eth0' };
    const joinKey = endpointKey(joinRef);
    const joinValue = endpointValue(joinN, [`prof-${profile}`], joinN, false);
    const memberSamples: ChangeSample[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      await gap();
      const joining = i % 2 === 0;
      memberSamples.push(await measureChange(agent, () => (joining ? put(client, joinKey, joinValue) : del(client, joinKey)), 'endpoint change'));
    }
    const tenMs = { p50: 10, p99: 50, text: 'p50 ≤ 10 / p99 ≤ 50 ms' };
    reportLatency(`remote endpoint added/removed x${ITERATIONS} (joins/leaves tag-${profile % TAGS}, IPv4)`, label('remote endpoint add/remove, put → /status'),
      memberSamples, floors.memberMs, 'one member', tenMs);

    // 6. Tag change: a profile only the solo endpoint uses gains/loses tag-0 (one member in, one out).
    const soloRef: EndpointRef = { host: 'host-solo', orchestrator: 'k8s', workload: 'solo', endpointId: 'eth0' };
    await put(client, profileRulesKey('bench-solo'), JSON.stringify({ inbound_rules: [], outbound_rules: [] }));
    await put(client, endpointKey(soloRef), endpointValue(joinN + 1, ['bench-solo'], joinN + 1, false));
    const tagSamples: ChangeSample[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      await gap();
      const tags = i % 2 === 0 ? ['tag-0'] : [];
      tagSamples.push(await measureChange(agent, () => put(client, profileTagsKey('bench-solo'), JSON.stringify(tags)), 'tag change'));
    }
    reportLatency(`tag change x${ITERATIONS} (profile bench-solo gains/loses tag-0; its one endpoint joins/leaves the set)`, label('tag change, put → /status'),
      tagSamples, floors.memberMs, 'one member', tenMs);
    const tagBytes = median(memberSamples.map((s) => s.bytes));
    row(label('bytes per member change'), `${f0(tagBytes)} B median`, '≈40 B (1 ipset line)', undefined, '≤ 64 B', tagBytes <= 64);

    // 7. Burst: BURST endpoint updates over ~1 s (90 % remote address moves, 10 % local profile changes).
    if (BURST > 0) {
      await sleep(500);
      const beforeBurst = await counters(agent);
      const linesBefore = agent.applied.length;
      const perTick = Math.max(1, Math.ceil(BURST / 100));
      let lastRevision = 0;
      let lastPutAt = 0;
      const burstStarted = performance.now();
      const inFlight: Promise<void>[] = [];
      for (let u = 0; u < BURST; u++) {
        const n = u % 10 === 0 ? u % Math.max(1, LOCAL) : LOCAL + (u % Math.max(1, REMOTE));
        const spec = cluster.endpoints[n];
        if (!spec) continue;
        // Even rounds move endpoints away from their original state, odd rounds (the next backend) back.
        const away = burstRound % 2 === 0;
        const localProfiles = [...spec.profiles].reverse().concat(spec.profiles.length === 1 ? [`prof-${(n + 1) % PROFILES}`] : []);
        const value =
          n < LOCAL
            ? endpointValue(n, away ? localProfiles : spec.profiles)
            : endpointValue(n, spec.profiles, away ? LOCAL + REMOTE + 2 + u : n); // new address: one member leaves, one joins
        inFlight.push(
          put(client, spec.key, value).then((revision) => {
            lastRevision = Math.max(lastRevision, revision);
            lastPutAt = Math.max(lastPutAt, performance.now());
          }),
        );
        if ((u + 1) % perTick === 0) await sleep(10);
      }
      await Promise.all(inFlight);
      burstRound++;
      const sentMs = performance.now() - burstStarted;
      const appliedAt = await pollApplied(agent, lastRevision, 'burst');
      const afterBurst = await counters(agent);
      const burstLines = agent.applied.slice(linesBefore);
      const burstMs = appliedAt - lastPutAt;
      const burstCalls = afterBurst.restoreCalls - beforeBurst.restoreCalls;
      log(
        `burst: ${BURST} endpoint updates sent in ${f0(sentMs)} ms; all applied ${f0(burstMs)} ms after the last put; ` +
          `${burstCalls} restore calls, ${f0(afterBurst.restoreBytes - beforeBurst.restoreBytes)} bytes, ` +
          `${afterBurst.passes - beforeBurst.passes} passes (${burstLines.length} logged "applied"), ` +
          `${afterBurst.readbacks - beforeBurst.readbacks} read-backs`,
      );
      row(label(`burst of ${BURST}: last put → all applied`), `${f0(burstMs)} ms`, '—', undefined, '≤ 1 s', burstMs <= 1000);
      row(label('burst: restore calls'), `${burstCalls} in ${afterBurst.passes - beforeBurst.passes} passes`, '—', undefined, '≤ 30', burstCalls <= 30);
    }

    // 8. Memory: right after the load, and settled (once the agent's quiet collections have run).
    const clusterEndpoints = LOCAL + REMOTE;
    const mib = (bytes: number): string => f1(bytes / 1048576);
    const memoryLine = (memory: ReturnType<typeof procMemory>, final: Counters): string =>
      `VmRSS ${f1(memory.rssKb / 1024)} MiB (peak ${f1(memory.hwmKb / 1024)} MiB; anonymous ${f1(memory.anonKb / 1024)}, ` +
      `file-backed ${f1(memory.fileKb / 1024)}), V8 heap used ${mib(final.heapUsed)} of ${mib(final.heapTotal)} MiB committed ` +
      `(young generation ${mib(final.newSpaceTotal)}), external ${mib(final.external)} MiB; heap ` +
      `= ${f0(final.heapUsed / clusterEndpoints)} B per cluster endpoint (${clusterEndpoints} endpoints, ${kernel.members} set members)`;
    const loaded = procMemory(agent.pid);
    const afterLoad = await counters(agent);
    log(`memory right after the load: ${memoryLine(loaded, afterLoad)}`);
    const settleStarted = performance.now();
    let settled = afterLoad;
    while (settled.quietCollections < afterLoad.quietCollections + 2 && performance.now() - settleStarted < SETTLE_TIMEOUT_MS) {
      await sleep(1_000);
      settled = await counters(agent);
    }
    const memory = procMemory(agent.pid);
    const final = await counters(agent);
    const quietNote = settled.quietCollections >= afterLoad.quietCollections + 2 ? 'after its two quiet collections' : 'its quiet collections did NOT come';
    log(`memory settled (${f0((performance.now() - settleStarted) / 1000)} s after the load, ${quietNote}): ${memoryLine(memory, final)}`);
    row(label('agent RSS right after the load'), `${f1(loaded.rssKb / 1024)} MiB`, '—', undefined, '—', undefined);
    row(label('agent RSS settled'), `${f1(memory.rssKb / 1024)} MiB = ${f1((memory.rssKb * 1024) / 1e6)} MB (peak ${f1(memory.hwmKb / 1024)} MiB)`, '—', undefined,
      '≤ 200 MB', memory.rssKb * 1024 <= 200e6);
    row(label('V8 heap per cluster endpoint'), `${f0(final.heapUsed / clusterEndpoints)} B (all-in, Node baseline included)`, '—', undefined, '—', undefined);
  } finally {
    if (agent) await stopAgentProcess(agent).catch(() => undefined);
    await ns.destroy().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const namespaces: Netns[] = [];
  let etcd: EtcdInstance | undefined;
  let client: Etcd3 | undefined;
  let cleaning: Promise<void> | undefined;
  // Each step is bounded: after a terminal Ctrl-C etcd has already died of the SIGINT, and
  // EtcdInstance.stop() would wait for an exit event that has been and gone.
  const bounded = (work: Promise<unknown>): Promise<unknown> => Promise.race([work.catch(() => undefined), sleep(5000)]);
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      for (const child of liveAgents) child.kill('SIGKILL');
      for (const ns of namespaces) await bounded(ns.destroy());
      client?.close();
      if (etcd) {
        await bounded(etcd.stop());
        rmSync(etcd.dataDir, { recursive: true, force: true });
      }
      httpAgent.destroy();
    })());
  // Ctrl-C / kill: clean up, then exit (a second signal exits at once). The helpers' own exit
  // hooks also kill etcd and delete namespaces.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (cleaning) process.exit(130);
      console.error(`\n${signal}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  process.on('exit', () => {
    for (const child of liveAgents) child.kill('SIGKILL');
    if (etcd) rmSync(etcd.dataDir, { recursive: true, force: true });
  });

  try {
    log(
      `agent bench: LOCAL=${LOCAL} REMOTE=${REMOTE} PROFILES=${PROFILES} RULES=${RULES} TAGS=${TAGS} ITERATIONS=${ITERATIONS} ` +
        `BURST=${BURST} BACKENDS=${BACKENDS.join(',')} IFACES=${IFACES ? 1 : 0} POLL_MS=${POLL_MS}`,
    );
    let started = performance.now();
    const cluster = buildCluster();
    log(`generated and validated ${cluster.puts.length} keys in ${f0(performance.now() - started)} ms`);
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoint });
    started = performance.now();
    const revision = await bulkPut(client, cluster.puts);
    const bytes = cluster.puts.reduce((n, [k, v]) => n + k.length + v.length, 0);
    log(`populated etcd (${f0(bytes / 1024)} KiB) in ${f0(performance.now() - started)} ms, revision ${revision}`);
    for (const backend of BACKENDS) await benchBackend(backend, etcd, client, cluster, (ns) => namespaces.push(ns));
    log('\nSummary (floors measured in this run on the same ruleset; targets: issue 7 at scale S):');
    printTable();
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(`agent bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  process.exitCode = 1;
});
