/** Syncer against a real private etcd: list-then-watch, invalid values, compaction, etcd restarts, Ready. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { createAgentMetrics, type AgentMetrics } from '../../agent/metrics.js';
import { Syncer, type SyncerChange } from '../../agent/syncer.js';
import { READY_KEY, endpointKey, profileRulesKey, profileTagsKey, type EndpointRef } from '../../src/model/index.js';
import { useSyncerEtcd } from '../helpers/syncer-fixture.js';
import { UpdateView } from '../helpers/update-view.js';

const fixture = useSyncerEtcd();

const RULES = JSON.stringify({ inbound_rules: [{ action: 'allow' }], outbound_rules: [{ action: 'allow' }] });
const ref: EndpointRef = { host: 'h1', orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };
const ENDPOINT = JSON.stringify({ state: 'active', name: 'cali1', profile_ids: ['A'], ipv4_nets: ['192.0.2.1/32'] });

function makeSyncer(options: { gracePeriodMs?: number } = {}) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const metrics: AgentMetrics = createAgentMetrics();
  const changes: SyncerChange[] = [];
  const view = new UpdateView();
  const syncer = new Syncer({
    client: fixture.client,
    onUpdates: view.apply,
    log: pino({ level: 'debug' }, sink),
    metrics,
    onChange: (change) => changes.push(change),
    backoffInitialMs: 50,
    backoffMaxMs: 300,
    ...options,
  });
  fixture.track(syncer);
  return { syncer, view, lines, metrics, changes };
}

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function metricValue(metrics: AgentMetrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return Number(value?.value ?? 0);
}

test('list then watch delivers puts and deletes, tracking the revision', async () => {
  await fixture.client.put(profileRulesKey('A')).value(RULES);
  await fixture.client.put(profileTagsKey('A')).value('["A"]');
  const { syncer, view, changes } = makeSyncer();
  syncer.start();
  await syncer.waitForInSync();
  expect(view.profiles.get('A')?.tags).toEqual(['A']);
  expect(view.profiles.get('A')?.rules?.inbound_rules).toHaveLength(1);
  expect(changes.length).toBeGreaterThanOrEqual(1);

  const put = await fixture.client.put(endpointKey(ref)).value(ENDPOINT);
  await until('endpoint', () => view.endpoints.has(endpointKey(ref)));
  expect(view.endpoints.get(endpointKey(ref))?.endpoint.ipv4_nets).toEqual(['192.0.2.1/32']);
  expect(syncer.revision).toBeGreaterThanOrEqual(Number(put.header.revision));
  expect(changes.at(-1)?.revision).toBe(Number(put.header.revision));

  await fixture.client.delete().key(profileRulesKey('A'));
  await until('rules deleted', () => view.profiles.get('A')?.rules === undefined);
  expect(view.profiles.get('A')?.tags).toEqual(['A']);
  await fixture.client.delete().key(profileTagsKey('A'));
  await until('profile gone', () => !view.profiles.has('A'));
});

test('an invalid value is treated as absent, logged once and counted; other profiles are unaffected', async () => {
  await fixture.client.put(profileRulesKey('GOOD')).value(RULES);
  await fixture.client.put(profileRulesKey('BAD')).value(RULES);
  const { syncer, view, lines, metrics } = makeSyncer();
  syncer.start();
  await syncer.waitForInSync();
  expect(view.profiles.get('BAD')?.rules).toBeDefined();

  await fixture.client.put(profileRulesKey('BAD')).value('{"inbound_rules": [');
  await until('BAD invalid', () => view.profiles.get('BAD') === undefined);
  expect(view.profiles.get('GOOD')?.rules).toBeDefined();
  // The same bad value again (a new revision) is not logged or counted twice.
  await fixture.client.put(profileRulesKey('BAD')).value('{"inbound_rules": [');
  await fixture.client.put(profileTagsKey('GOOD')).value('["GOOD"]');
  await until('GOOD tags', () => view.profiles.get('GOOD')?.tags !== undefined);

  const warnings = lines.filter((l) => l.msg === 'invalid value in etcd; treating as absent');
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatchObject({ key: profileRulesKey('BAD') });
  expect(String(warnings[0]!.reason)).toMatch(/invalid JSON/);
  expect(await metricValue(metrics, 'calico_agent_invalid_keys_total', { kind: 'profile-rules' })).toBe(1);
  expect(syncer.invalidKeys.get(profileRulesKey('BAD'))).toMatch(/invalid JSON/);

  // An invalid endpoint (bad CIDR) is absent too; fixing it brings it back.
  await fixture.client.put(endpointKey(ref)).value(ENDPOINT.replace('192.0.2.1/32', '192.0.2.300/32'));
  await fixture.client.put(profileTagsKey('X')).value('["X"]');
  await until('X', () => view.profiles.has('X'));
  expect(view.endpoints.has(endpointKey(ref))).toBe(false);
  expect(await metricValue(metrics, 'calico_agent_invalid_keys_total', { kind: 'endpoint' })).toBe(1);
  await fixture.client.put(endpointKey(ref)).value(ENDPOINT);
  await until('endpoint valid', () => view.endpoints.has(endpointKey(ref)));
  expect(syncer.invalidKeys.has(endpointKey(ref))).toBe(false);
});

test('compaction: the canceled watch re-lists at once, synthesising deletions, losing no update', async () => {
  await fixture.client.put(profileRulesKey('OLD')).value(RULES);
  await fixture.client.put(profileRulesKey('KEEP')).value(RULES);
  const { syncer, view, metrics, lines } = makeSyncer();
  await syncer.listOnce();
  const listedAt = syncer.revision;
  expect(view.profiles.has('OLD')).toBe(true);

  // Changes the syncer has not seen, then compact past them: a watch from listedAt+1 is impossible.
  await fixture.client.delete().key(profileRulesKey('OLD'));
  await fixture.client.put(profileRulesKey('NEW')).value(RULES);
  const last = await fixture.client.put(profileTagsKey('KEEP')).value('["KEEP"]');
  await fixture.client.kv.compact({ revision: last.header.revision, physical: true });

  const started = Date.now();
  syncer.start();
  await until('re-listed', () => syncer.revision >= Number(last.header.revision));
  expect(Date.now() - started).toBeLessThan(1_500);
  expect(view.profiles.has('OLD')).toBe(false);
  expect(view.profiles.has('NEW')).toBe(true);
  expect(view.profiles.get('KEEP')?.tags).toEqual(['KEEP']);
  expect(syncer.revision).toBeGreaterThan(listedAt);
  expect(await metricValue(metrics, 'calico_agent_resyncs_total', { reason: 'watch-canceled' })).toBe(1);
  expect(lines.some((l) => l.msg === 'etcd watch canceled; re-listing')).toBe(true);

  // And the watch continues after the re-list.
  await fixture.client.put(profileRulesKey('LATER')).value(RULES);
  await until('LATER', () => view.profiles.has('LATER'));
});

test('etcd killed and restarted: the view is kept, not healthy after the grace period, then resumes', async () => {
  await fixture.client.put(profileRulesKey('A')).value(RULES);
  const { syncer, view } = makeSyncer({ gracePeriodMs: 300 });
  syncer.start();
  await syncer.waitForInSync();
  await until('connected', () => syncer.connected);

  await fixture.etcd.kill(true);
  await until('disconnected', () => !syncer.connected);
  expect(syncer.healthy()).toBe(true); // within the grace period
  await until('unhealthy', () => !syncer.healthy(), 3_000);
  expect(view.profiles.has('A')).toBe(true);

  await fixture.etcd.restart();
  await until('reconnected', () => syncer.connected, 15_000);
  expect(syncer.healthy()).toBe(true);
  await fixture.client.put(profileRulesKey('B')).value(RULES);
  await until('B after restart', () => view.profiles.has('B'), 15_000);
  expect(view.profiles.has('A')).toBe(true);
});

test('/calico/v1/Ready: absent is ready, "false" pauses, "true" resumes', async () => {
  const { syncer, changes } = makeSyncer();
  syncer.start();
  await syncer.waitForInSync();
  expect(syncer.datastoreReady).toBe(true);
  await fixture.client.put(READY_KEY).value('false');
  await until('not ready', () => !syncer.datastoreReady);
  const count = changes.length;
  await fixture.client.put(READY_KEY).value('true');
  await until('ready', () => syncer.datastoreReady);
  expect(changes.length).toBeGreaterThan(count);
  await fixture.client.put(READY_KEY).value('nope');
  await until('not ready again', () => !syncer.datastoreReady);
  await fixture.client.delete().key(READY_KEY);
  await until('absent = ready', () => syncer.datastoreReady);
});
