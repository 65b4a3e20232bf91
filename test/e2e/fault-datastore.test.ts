/**
 * Datastore faults under running agents, with real etcd and real packets (two host namespaces,
 * one calico-agent each, dist/): etcd killed and restarted, etcd compacted past the agents'
 * watch, an agent restarted while etcd is down, an identical value rewritten, invalid JSON
 * written straight to etcd, and a profile deleted while workloads use it.
 * Every test checks that denied traffic is denied (not only that allowed traffic passes) and
 * ends with the baseline policy back in force. Build first (`npm run build`).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createLab, type HostId, type Lab, type LabWorkload } from '../lab/lab.js';
import {
  APP_RULES,
  BASELINE,
  cleanUp,
  etcdctl,
  eventuallyRight,
  httpGet,
  killAgent,
  metrics,
  logLines,
  metricSum,
  restoreBaseline,
  setUpPolicy,
  sleep,
  startAgent,
  storeRevision,
  WEB_RULES,
  until,
  wrongChecks,
  type Check,
  type ProfileRules,
} from './fault-lab.js';

const HOSTS: HostId[] = ['A', 'B'];
const WEB_RULES_KEY = '/calico/v1/policy/profile/WEB/rules';
const APP_RULES_KEY = '/calico/v1/policy/profile/APP/rules';

/** A rules value as calicoctl stores it (the JSON document's `id` names the key, not the value). */
function stored({ id: _id, ...rules }: ProfileRules): string {
  return JSON.stringify(rules);
}

let lab: Lab;
let workloads: Map<string, LabWorkload>;

/** `calicoctl profile <id> rule update` with `rules`; waits until both agents applied it. */
async function updateRules(rules: ProfileRules): Promise<number> {
  const result = await lab.calicoctl(['profile', rules.id, 'rule', 'update'], { input: JSON.stringify(rules) });
  await lab.waitApplied(result.revision);
  return result.revision;
}

/** With APP missing (invalid or deleted): what APP's rules allowed is denied, to and from APP
 * workloads, while WEB's policy holds both ways. */
const APP_FAILED_CLOSED: readonly Check[] = [
  { from: 'web1', to: 'app2', port: 7890, allowed: false },
  { from: 'app1', to: 'app2', port: 22, allowed: false },
  { from: 'app1', to: 'web2', port: 80, allowed: false },
  { from: 'web2', to: 'web1', port: 80, family: 6, allowed: true },
  { from: 'web1', to: 'web2', port: 80, allowed: true },
  { from: 'web2', to: 'web1', port: 22, family: 6, allowed: false },
];

beforeAll(async () => {
  lab = await createLab();
  workloads = await setUpPolicy(lab);
}, 120_000);

afterAll(async () => {
  await cleanUp();
  await lab?.teardown();
});

beforeEach(async () => {
  // Each test starts from the baseline policy, enforced …
  expect(await wrongChecks(lab, workloads, BASELINE)).toEqual([]);
});

afterEach(async () => {
  // … and puts it back however it ended.
  await restoreBaseline(lab);
});

describe('datastore faults under running agents', () => {
  test('etcd killed: enforcement unchanged and agents live while it is down; after restart a change is enforced', async () => {
    await lab.etcd.kill(true);
    try {
      for (const id of HOSTS) {
        await until(`${id} to notice etcd is gone`, async () => (await lab.status(id)).datastoreConnected === false);
      }
      expect(await wrongChecks(lab, workloads, BASELINE, { trace: false })).toEqual([]); // trace reads etcd
      for (const id of HOSTS) {
        expect((await httpGet(lab.hosts[id].agent, '/liveness')).code).toBe(200);
        // Within the etcd grace period (30 s) the agent stays ready: the kernel is still right.
        expect((await httpGet(lab.hosts[id].agent, '/readiness')).code).toBe(200);
      }
    } finally {
      await lab.etcd.restart();
    }
    // A change made after the restart reaches both kernels: app1 may now reach web2 on 22.
    const withSsh = { ...WEB_RULES, inbound_rules: [...WEB_RULES.inbound_rules, { action: 'allow', protocol: 'tcp', dst_ports: [22], src_tag: 'APP' }] };
    await updateRules(withSsh);
    const expected: Check[] = [
      { from: 'app1', to: 'web2', port: 22, allowed: true },
      { from: 'app1', to: 'web2', port: 80, allowed: true },
      { from: 'web2', to: 'web1', port: 22, family: 6, allowed: false },
      { from: 'web1', to: 'app2', port: 22, allowed: false },
    ];
    expect(await wrongChecks(lab, workloads, expected)).toEqual([]);
    for (const id of HOSTS) expect((await lab.status(id)).datastoreConnected).toBe(true);
  });

  test('etcd restarted and compacted past the agents\u2019 watch: watch canceled, re-list, no update lost', async () => {
    const resyncsBefore = await Promise.all(
      HOSTS.map(async (id) => metricSum(await metrics(lab.hosts[id].agent), 'calico_agent_resyncs_total', { reason: 'watch-canceled' })),
    );
    // Freeze both agents so that, when they resume, their watch must restart from a revision
    // etcd has compacted (a live, caught-up watch is never canceled by a compaction).
    for (const id of HOSTS) lab.hosts[id].agent.process.kill('SIGSTOP');
    let compactedAt: number;
    try {
      await lab.etcd.kill(true);
      await lab.etcd.restart();
      // Several revisions the agents' watch will never deliver: the re-list must carry them.
      const withSsh = { ...WEB_RULES, inbound_rules: [...WEB_RULES.inbound_rules, { action: 'allow', protocol: 'tcp', dst_ports: [22], src_tag: 'APP' }] };
      const withTemporary = { ...withSsh, inbound_rules: [...withSsh.inbound_rules, { action: 'allow', protocol: 'tcp', dst_ports: [8080] }] };
      const appWithoutWeb = { ...APP_RULES, inbound_rules: [APP_RULES.inbound_rules[0]!] };
      await etcdctl(lab, ['put', WEB_RULES_KEY, stored(withTemporary)]);
      await etcdctl(lab, ['put', WEB_RULES_KEY, stored(withSsh)]);
      await etcdctl(lab, ['put', APP_RULES_KEY, stored(appWithoutWeb)]);
      compactedAt = await storeRevision(lab);
      await etcdctl(lab, ['compact', String(compactedAt), '--physical']);
    } finally {
      for (const id of HOSTS) lab.hosts[id].agent.process.kill('SIGCONT');
    }
    await lab.waitApplied(compactedAt);
    for (const id of HOSTS) {
      const text = await metrics(lab.hosts[id].agent);
      expect(metricSum(text, 'calico_agent_resyncs_total', { reason: 'watch-canceled' })).toBeGreaterThan(resyncsBefore[HOSTS.indexOf(id)]!);
      // The resumed watch started below the compacted revision (the view was older than it).
      const canceled = logLines(lab.hosts[id].agent, 'etcd watch canceled; re-listing');
      expect(canceled.length).toBeGreaterThan(0);
      expect(Number(canceled.at(-1)!.revision)).toBeLessThan(compactedAt);
    }
    // One more change after the re-list, through the resumed watch: APP lets WEB in on 22.
    await etcdctl(lab, [
      'put',
      APP_RULES_KEY,
      stored({ ...APP_RULES, inbound_rules: [APP_RULES.inbound_rules[0]!, { action: 'allow', protocol: 'tcp', dst_ports: [22], src_tag: 'WEB' }] }),
    ]);
    await lab.waitApplied(await storeRevision(lab));
    const expected: Check[] = [
      { from: 'app1', to: 'web2', port: 22, allowed: true }, // WEB's compacted change
      { from: 'web1', to: 'app2', port: 7890, allowed: false }, // APP's compacted change
      { from: 'web1', to: 'app2', port: 22, allowed: true }, // the change after the re-list
      { from: 'app1', to: 'web2', port: 80, allowed: true },
      { from: 'web2', to: 'web1', port: 22, family: 6, allowed: false },
    ];
    expect(await wrongChecks(lab, workloads, expected)).toEqual([]);
  });

  test('agent restarted while etcd is down: writes nothing, keeps the kernel enforcing, adopts it when etcd returns', async () => {
    const hostA = lab.hosts.A;
    await lab.etcd.kill(true);
    try {
      await killAgent(hostA);
      await startAgent(lab, hostA, { noWait: true });
      await until('the new agent to serve /status', async () => (await lab.status('A')).hostname === 'hostA');
      await sleep(1000); // it keeps trying to list etcd meanwhile
      const status = await lab.status('A');
      expect(status).toMatchObject({ inSync: false, ready: false, appliedRevision: 0 });
      expect((await httpGet(hostA.agent, '/readiness')).code).toBe(503);
      expect((await httpGet(hostA.agent, '/liveness')).code).toBe(200);
      expect(await wrongChecks(lab, workloads, BASELINE, { trace: false })).toEqual([]); // trace reads etcd
    } finally {
      await lab.etcd.restart();
    }
    await until('the new agent to be ready', async () => (await httpGet(hostA.agent, '/readiness')).code === 200, 15_000);
    const text = await metrics(hostA.agent);
    expect(metricSum(text, 'calico_agent_restore_calls_total')).toBe(0);
    expect(logLines(hostA.agent, 'etcd list complete').map((line) => line.reason)).toEqual(['start']);
    expect(await wrongChecks(lab, workloads, BASELINE)).toEqual([]);
  });

  test('an identical value rewritten moves the applied revision without a kernel write', async () => {
    // Regression: the agent used to ignore such a revision, so /status lagged until the next
    // real change and waiting for "applied >= this write" never ended.
    const restoresBefore = await Promise.all(
      HOSTS.map(async (id) => metricSum(await metrics(lab.hosts[id].agent), 'calico_agent_restore_calls_total')),
    );
    const before = await lab.etcdRevision();
    const rewrite = await lab.calicoctl(['profile', 'WEB', 'rule', 'update'], { input: JSON.stringify(WEB_RULES) });
    expect(rewrite.revision).toBeGreaterThan(before);
    await lab.waitApplied(rewrite.revision, { timeoutMs: 3000 });
    for (const id of HOSTS) {
      expect(metricSum(await metrics(lab.hosts[id].agent), 'calico_agent_restore_calls_total')).toBe(restoresBefore[HOSTS.indexOf(id)]);
    }
  });

  test('invalid JSON written straight to etcd: APP fails closed, WEB is unaffected, valid JSON restores APP', async () => {
    const valid = (await etcdctl(lab, ['get', APP_RULES_KEY, '--print-value-only'])).trim();
    expect(JSON.parse(valid)).toMatchObject({ inbound_rules: expect.any(Array), outbound_rules: expect.any(Array) });
    const invalidBefore = await Promise.all(
      HOSTS.map(async (id) => metricSum(await metrics(lab.hosts[id].agent), 'calico_agent_invalid_keys_total', { kind: 'profile-rules' })),
    );
    await etcdctl(lab, ['put', APP_RULES_KEY, '{bad']);
    await lab.waitApplied(await storeRevision(lab));
    for (const id of HOSTS) {
      expect((await lab.status(id)).invalidKeys).toBe(1);
      const text = await metrics(lab.hosts[id].agent);
      expect(metricSum(text, 'calico_agent_invalid_keys_total', { kind: 'profile-rules' })).toBe(invalidBefore[HOSTS.indexOf(id)]! + 1);
    }
    expect(await wrongChecks(lab, workloads, APP_FAILED_CLOSED)).toEqual([]);

    await etcdctl(lab, ['put', APP_RULES_KEY, valid]);
    await lab.waitApplied(await storeRevision(lab));
    for (const id of HOSTS) expect((await lab.status(id)).invalidKeys).toBe(0);
    expect(await wrongChecks(lab, workloads, BASELINE)).toEqual([]);
  });

  test('a profile deleted while in use fails closed; re-adding it restores the policy', async () => {
    const removed = await lab.calicoctl(['profile', 'remove', 'APP', '--no-check']);
    await lab.waitApplied(removed.revision);
    expect(await etcdctl(lab, ['get', '--prefix', '/calico/v1/policy/profile/APP/', '--keys-only'])).toBe('');
    expect(await wrongChecks(lab, workloads, APP_FAILED_CLOSED)).toEqual([]);

    await lab.calicoctl(['profile', 'add', 'APP']);
    await updateRules(APP_RULES);
    expect(await eventuallyRight(lab, workloads, BASELINE, 2000)).toEqual([]);
  });
});
