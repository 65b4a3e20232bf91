/**
 * Datastore faults under running agents, with real etcd and real packets (two host namespaces,
 * one calico-agent each, dist/): etcd killed and restarted, etcd compacted past the agents'
 * watch, an agent restarted while etcd is down, an identical value rewritten, invalid JSON
 * written straight to etcd, and a profile deleted while workloads use it.
 * Every test checks that denied traffic is denied (not only that allowed traffic passes) and
 * ends with the baseline policy back in force. Build first (`npm run build`).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { createEtcdClient } from '../../src/datastore/client.js';
import { endpointKey, profileRulesKey, profileTagsKey } from '../../src/model/index.js';
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
  test('hostile values written straight to etcd: each is invalid or harmless, agents never exit, denied stays denied, other changes apply', async () => {
    const client = createEtcdClient({ endpoints: [lab.etcd.endpoint], tls: {} });
    const invalidBefore = await Promise.all(HOSTS.map(async (id) => metricSum(await metrics(lab.hosts[id].agent), 'calico_agent_invalid_keys_total')));
    const written: string[] = [];
    try {
      const many = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
      const fuzzEndpoint = (id: string) => endpointKey({ host: 'hostA', orchestrator: 'fuzz', workload: 'w', endpointId: id });
      const endpointValue = (extra: Record<string, unknown>) => JSON.stringify({ state: 'active', name: 'califuzz0', profile_ids: ['WEB'], ipv4_nets: ['203.0.113.9/32'], ...extra });
      // Each of these is invalid: counted, treated as absent.
      const invalid: [string, string][] = [
        // APP's own rules: 10,000 source × 10,000 destination ports (APP fails closed).
        [APP_RULES_KEY, JSON.stringify({ inbound_rules: [{ protocol: 'tcp', src_ports: many(10_000), dst_ports: many(10_000) }], outbound_rules: [] })],
        [profileRulesKey('H1'), JSON.stringify({ inbound_rules: Array.from({ length: 1001 }, () => ({ action: 'allow' })), outbound_rules: [] })],
        [profileRulesKey('H2'), `${'['.repeat(200_000)}${']'.repeat(200_000)}`],
        [profileRulesKey('H3'), JSON.stringify({ inbound_rules: [], outbound_rules: [], pad: 'x'.repeat(1_200_000) })],
        [profileTagsKey('H4'), JSON.stringify(Array.from({ length: 5000 }, (_, i) => `t${i}`))],
        [fuzzEndpoint('ips'), endpointValue({ ipv4_nets: Array.from({ length: 5000 }, (_, i) => `10.${i >> 8}.${i & 255}.1/32`) })],
        [fuzzEndpoint('profiles'), endpointValue({ profile_ids: Array.from({ length: 500 }, (_, i) => `p${i}`) })],
        [fuzzEndpoint('iface'), endpointValue({ name: '../../etc/x' })],
        [fuzzEndpoint('iface2'), endpointValue({ name: 'cali+' })],
      ];
      // Keys of odd shapes, and random ones with random JSON: ignored or invalid, never fatal.
      const odd: [string, string][] = [
        ['/calico/v1/policy/profile//rules', '{"inbound_rules":[],"outbound_rules":[]}'],
        ['/calico/v1/policy/profile/H5/rules/extra', '{"inbound_rules":[],"outbound_rules":[]}'],
        ['/calico/v1/host/hostA/workload//w/endpoint/e', endpointValue({})],
        [`/calico/v1/host/hostA/workload/o/w/endpoint/${'e'.repeat(3000)}`, endpointValue({ name: 'califuzz1' })],
        ['/calico/v1/\u0000\uffff', 'x'],
      ];
      const segment = fc.oneof(fc.constantFrom('host', 'hostA', 'hostB', 'workload', 'endpoint', 'policy', 'profile', 'rules', 'tags', '', '..'), fc.string({ maxLength: 6 }));
      const keyArb = fc.array(segment, { minLength: 1, maxLength: 8 }).map((parts) => `/calico/v1/${parts.join('/')}`);
      const valueArb = fc.oneof(fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 40 }));
      const random = fc.sample(fc.tuple(keyArb, valueArb), { seed: 10, numRuns: 80 }).filter(([key]) => !key.startsWith('/calico/v1/host/hostA/workload/docker') && !key.startsWith('/calico/v1/host/hostB/workload/docker') && key !== '/calico/v1/Ready' && !key.startsWith('/calico/v1/policy/profile/WEB') && !key.startsWith('/calico/v1/policy/profile/APP'));
      for (const [key, value] of [...invalid, ...odd, ...random]) {
        written.push(key);
        await client.put(key).value(value);
      }
      await lab.waitApplied(await storeRevision(lab));

      for (const id of HOSTS) {
        const agent = lab.hosts[id].agent.process;
        expect({ id, exitCode: agent.exitCode, signal: agent.signalCode }).toEqual({ id, exitCode: null, signal: null });
        const invalidNow = metricSum(await metrics(lab.hosts[id].agent), 'calico_agent_invalid_keys_total');
        expect(invalidNow - invalidBefore[HOSTS.indexOf(id)]!).toBeGreaterThanOrEqual(invalid.length);
      }
      // APP failed closed (what its rules allowed is denied), WEB's policy holds; trace agrees.
      expect(await wrongChecks(lab, workloads, APP_FAILED_CLOSED)).toEqual([]);
      // An unrelated change still applies: WEB admits ssh from WEB.
      await updateRules({ ...WEB_RULES, inbound_rules: [...WEB_RULES.inbound_rules, { action: 'allow', protocol: 'tcp', dst_ports: [22], src_tag: 'WEB' }] });
      expect(await wrongChecks(lab, workloads, [
        { from: 'web2', to: 'web1', port: 22, family: 6, allowed: true },
        { from: 'app1', to: 'web2', port: 22, allowed: false },
      ])).toEqual([]);
    } finally {
      // Everything but APP's rules (restoreBaseline rewrites those) goes, so later tests start clean.
      for (const key of written) if (key !== APP_RULES_KEY) await client.delete().key(key);
      client.close();
    }
  });
});
