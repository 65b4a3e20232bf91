/**
 * The built daemon (`npm run build` first) against a real etcd and a throwaway namespace:
 * readiness after the first apply, etcd changes reaching the kernel (with the apply log line a
 * benchmark reads), /metrics and /status, host and endpoint status keys, and SIGTERM leaving the
 * rules in place.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createEtcdClient } from '../../src/datastore/client.js';
import {
  endpointKey,
  endpointStatusKey,
  hostLastReportedKey,
  hostStatusKey,
  profileRulesKey,
  profileTagsKey,
  type EndpointRef,
} from '../../src/model/index.js';
import { freePort, startEtcd, type EtcdInstance } from '../helpers/etcd.js';
import { createNetns, type Netns } from '../helpers/netns.js';

const AGENT = join(process.cwd(), 'dist/agent/main.js');
const HOST = 'daemon-host';
const ref: EndpointRef = { host: HOST, orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };

let etcd: EtcdInstance;
let client: Etcd3;
let netns: Netns;
let agent: ChildProcess | undefined;
let port: number;
const logs: Record<string, unknown>[] = [];

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const get = async (path: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
};
const filterTable = async (): Promise<string> => (await netns.exec(['iptables-nft-save', '-t', 'filter'])).stdout;

beforeAll(async () => {
  etcd = await startEtcd();
  client = createEtcdClient({ endpoints: [etcd.endpoint], tls: {} });
  netns = await createNetns('agent-daemon');
  port = await freePort();
  await client.put(profileTagsKey('WEB')).value('["WEB"]');
  await client.put(profileRulesKey('WEB')).value(JSON.stringify({ inbound_rules: [{ action: 'allow' }], outbound_rules: [{ action: 'allow' }] }));
  await client.put(endpointKey(ref)).value(JSON.stringify({ state: 'active', name: 'cali1', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.1/32'] }));
  await client.put(`${endpointStatusKey({ ...ref, endpointId: 'gone' })}`).value('{"status":"up"}');
  agent = spawn(
    process.execPath,
    [AGENT, '--dataplane-netns', netns.name, '--hostname', HOST, '--iptables-backend', 'nft', '--health-listen', `127.0.0.1:${port}`],
    { env: { ...etcd.env, CALICO_AGENT_REPORTING_INTERVAL: '1s', CALICO_AGENT_REPORTING_TTL: '5s', CALICO_AGENT_ETCD_GRACE_PERIOD: '500ms' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let partial = '';
  agent.stderr?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
});

afterAll(async () => {
  if (agent && agent.exitCode === null) {
    agent.kill('SIGKILL');
    await new Promise((r) => agent?.once('exit', r));
  }
  client?.close();
  await netns?.destroy();
  await etcd?.stop();
});

test('ready after the first apply; liveness, metrics and status are served', async () => {
  await until('ready', async () => (await get('/readiness')).status === 200);
  expect((await get('/liveness')).status).toBe(200);
  expect(await filterTable()).toMatch(/^:cali-pri-WEB /m);
  const status = JSON.parse((await get('/status')).body) as Record<string, unknown>;
  expect(status).toMatchObject({ hostname: HOST, inSync: true, ready: true, live: true, profiles: 1, endpoints: 1, localEndpoints: 1 });
  expect(status.appliedRevision).toBe(status.datastoreRevision);
  const metrics = (await get('/metrics')).body;
  expect(metrics).toMatch(/^calico_agent_initial_resync_seconds \d/m);
  expect(metrics).toMatch(/^calico_agent_restore_calls_total\{tool="iptables-restore",family="v4",table="filter",result="ok"\} [1-9]/m);
  expect(metrics).toMatch(/^process_resident_memory_bytes /m);
  expect((await get('/nope')).status).toBe(404);
});

test('host status (with lease) and endpoint status are reported; unknown statuses removed', async () => {
  const value = await until('host status', async () => (await client.get(hostStatusKey(HOST)).string()) ?? undefined);
  const parsed = JSON.parse(value) as { time: string; uptime: number; first_update: boolean };
  expect(parsed.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  expect(typeof parsed.uptime).toBe('number');
  expect(await client.get(hostLastReportedKey(HOST)).string()).not.toBeNull();
  const leased = await client.getAll().prefix(hostStatusKey(HOST)).exec();
  expect(leased.kvs[0]?.lease).not.toBe('0');
  expect(await until('endpoint status', async () => (await client.get(endpointStatusKey(ref)).string()) ?? undefined)).toBe('{"status":"down"}');
  await until('stale status removed', async () => (await client.get(endpointStatusKey({ ...ref, endpointId: 'gone' })).string()) === null);
});

test('an etcd change reaches the kernel and the apply is logged with its revision and latency', async () => {
  const put = await client.put(profileRulesKey('WEB')).value(
    JSON.stringify({ inbound_rules: [{ action: 'deny', protocol: 'tcp', dst_ports: [8080] }], outbound_rules: [{ action: 'allow' }] }),
  );
  const revision = Number(put.header.revision);
  await until('rule in kernel', async () => /--dports 8080 .*DROP/.test(await filterTable()));
  const applied = await until('apply log', async () =>
    logs.find((l) => l.msg === 'dataplane applied' && Number(l.revision) >= revision && l.etcdToKernelMs !== undefined),
  );
  expect(Number(applied.etcdToKernelMs)).toBeGreaterThan(0);
  expect(Number(applied.bytes)).toBeGreaterThan(0);
  const status = JSON.parse((await get('/status')).body) as { appliedRevision: number };
  expect(status.appliedRevision).toBeGreaterThanOrEqual(revision);
});

test('etcd down: not ready after the grace period, still live, rules kept; ready again after restart', async () => {
  const before = (await filterTable()).replace(/^#.*\n/gm, '');
  await etcd.kill(true);
  try {
    await until('not ready', async () => (await get('/readiness')).status === 503, 15_000);
    expect((await get('/liveness')).status).toBe(200);
    expect((await filterTable()).replace(/^#.*\n/gm, '')).toBe(before);
    // /status says why, and warnings are one line each (no stack traces at info level).
    const down = JSON.parse((await get('/status')).body) as { datastoreConnected: boolean; lastError: string | null };
    expect(down.datastoreConnected).toBe(false);
    expect(down.lastError).toMatch(/^etcd unreachable: /);
    await until('a failed status report logged', async () => logs.some((l) => l.msg === 'could not report host status to etcd'));
    for (const line of logs.filter((l) => l.level === 40)) expect(JSON.stringify(line)).not.toMatch(/\\n\s+at /);
  } finally {
    await etcd.restart();
  }
  await until('ready again', async () => (await get('/readiness')).status === 200, 20_000);
  expect((JSON.parse((await get('/status')).body) as { lastError: string | null }).lastError).toBeNull();
});

test('SIGTERM while the first etcd list hangs (etcd frozen): a clean exit within the stop deadline', async () => {
  const other = await createNetns('daemon-stop');
  etcd.freeze();
  try {
    const child = spawn(process.execPath, [AGENT, '--dataplane-netns', other.name, '--hostname', 'stop-host', '--iptables-backend', 'nft', '--health-listen', 'none'], {
      env: etcd.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Logged once the agent handles signals and its first list is under way.
    await until('the agent has started', async () => stderr.includes('iptables backend configured'));
    const signalledAt = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(8_000);
  } finally {
    etcd.thaw();
    await other.destroy();
  }
});

test('SIGTERM stops cleanly and leaves the rules in place', async () => {
  const before = await filterTable();
  agent!.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => agent!.once('exit', (c) => resolve(c)));
  expect(code).toBe(0);
  expect((await filterTable()).replace(/^#.*\n/gm, '')).toBe(before.replace(/^#.*\n/gm, ''));
  expect(logs.some((l) => l.msg === 'stopping; the dataplane is left as it is')).toBe(true);
});
