/**
 * The syncer's per-key updates against a real private etcd: one update per changed key, in etcd
 * order, an invalid value as a delete; a re-list after compaction hands on only the keys whose
 * mod revision changed, plus deletes synthesised for keys that vanished, in one batch; a re-list
 * with nothing changed hands on nothing. A calculation graph fed the updates matches compile().
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { Syncer, type DatastoreUpdate } from '../../agent/syncer.js';
import { applyUpdates } from '../../agent/updates.js';
import { CalcGraph, compile, defaultCompilerConfig, renderFamily } from '../../compiler/index.js';
import type { DataplaneSpec } from '../../compiler/index.js';
import { endpointKey, profileRulesKey, profileTagsKey, type EndpointRef } from '../../src/model/index.js';
import { createEtcdClient } from '../../src/datastore/client.js';
import { startEtcd } from '../helpers/etcd.js';
import { useSyncerEtcd } from '../helpers/syncer-fixture.js';
import { UpdateView } from '../helpers/update-view.js';

const fixture = useSyncerEtcd();

const RULES = JSON.stringify({ inbound_rules: [{ action: 'allow', src_tag: 'A' }], outbound_rules: [{ action: 'allow' }] });
const local: EndpointRef = { host: 'h1', orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };
const remote: EndpointRef = { host: 'h2', orchestrator: 'docker', workload: 'w2', endpointId: 'e2' };
const endpoint = (name: string, address: string) => JSON.stringify({ state: 'active', name, profile_ids: ['A'], ipv4_nets: [`${address}/32`] });

/** A syncer feeding both a view and a calculation graph; `batches` records each onUpdates call. */
function makeSyncer() {
  const quiet = new Writable({ write: (_chunk, _enc, done) => done() });
  const view = new UpdateView();
  const graph = new CalcGraph('h1', defaultCompilerConfig());
  const batches: (readonly DatastoreUpdate[])[] = [];
  const syncer = new Syncer({
    client: fixture.client,
    log: pino({ level: 'silent' }, quiet),
    backoffInitialMs: 50,
    backoffMaxMs: 300,
    onUpdates: (updates) => {
      batches.push(updates);
      view.apply(updates);
      applyUpdates(graph, updates);
    },
  });
  fixture.track(syncer);
  return { syncer, view, graph, batches };
}

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const rendered = (spec: DataplaneSpec) => ({ v4: renderFamily(spec.v4), v6: renderFamily(spec.v6), diagnostics: spec.diagnostics });

/** The graph fed by the updates equals compile() of the view they built. */
function expectGraphMatchesView(graph: CalcGraph, view: UpdateView): void {
  const oracle = compile({ hostname: 'h1', config: defaultCompilerConfig(), profiles: view.profiles, endpoints: view.endpoints });
  expect(rendered(graph.toSpec())).toEqual(rendered(oracle));
}

test('watch events become one update per key, in order; an invalid value is a delete', async () => {
  const { syncer, view, graph, batches } = makeSyncer();
  syncer.start();
  await syncer.waitForInSync();
  const seen = () => batches.flat();

  await fixture.client.put(profileRulesKey('A')).value(RULES);
  await fixture.client.put(profileTagsKey('A')).value('["A"]');
  await fixture.client.put(endpointKey(local)).value(endpoint('cali1', '192.0.2.1'));
  await fixture.client.put(endpointKey(remote)).value(endpoint('cali2', '192.0.2.2'));
  await until('four updates', () => seen().length === 4);
  expect(seen().map((u) => u.kind)).toEqual(['profileRules', 'profileTags', 'endpoint', 'endpoint']);
  expect(seen()[2]).toMatchObject({ kind: 'endpoint', key: endpointKey(local), input: { ref: local, endpoint: { name: 'cali1' } } });
  expectGraphMatchesView(graph, view);
  expect(graph.toSpec().v4.ipsets.get('cali4-tag-A')?.members).toEqual(['192.0.2.1', '192.0.2.2']);

  await fixture.client.put(endpointKey(remote)).value('{"state": "active", "name": ');
  await until('invalid endpoint as a delete', () => seen().length === 5);
  expect(seen()[4]).toEqual({ kind: 'endpoint', key: endpointKey(remote), input: undefined });
  await fixture.client.delete().key(profileTagsKey('A'));
  await until('tags deleted', () => seen().length === 6);
  expect(seen()[5]).toEqual({ kind: 'profileTags', profile: 'A', tags: undefined });
  // Deleting a key the syncer never held (ignored, or already deleted) hands on nothing.
  await fixture.client.delete().key(endpointKey(remote));
  const after = await fixture.client.put(profileTagsKey('A')).value('["A"]');
  await until('revision', () => syncer.revision >= Number(after.header.revision));
  expect(seen().slice(6)).toEqual([{ kind: 'endpoint', key: endpointKey(remote), input: undefined }, { kind: 'profileTags', profile: 'A', tags: ['A'] }]);
  expectGraphMatchesView(graph, view);
});

test('a re-list after compaction hands on changed keys and synthesised deletes in one batch, nothing else', async () => {
  await fixture.client.put(profileRulesKey('A')).value(RULES);
  await fixture.client.put(profileTagsKey('A')).value('["A"]');
  await fixture.client.put(endpointKey(local)).value(endpoint('cali1', '192.0.2.100'));
  for (let i = 1; i <= 20; i++) {
    await fixture.client.put(endpointKey({ ...remote, endpointId: `e${i}` })).value(endpoint(`cali${i}`, `192.0.2.${i}`));
  }
  const { syncer, view, graph, batches } = makeSyncer();
  await syncer.listOnce();
  expect(view.endpoints.size).toBe(21);
  expectGraphMatchesView(graph, view);
  const listed = batches.length;

  // Unseen changes, compacted away: one endpoint deleted, one changed, one profile added.
  await fixture.client.delete().key(endpointKey({ ...remote, endpointId: 'e3' }));
  await fixture.client.put(endpointKey({ ...remote, endpointId: 'e4' })).value(endpoint('cali4', '192.0.2.44'));
  const last = await fixture.client.put(profileRulesKey('B')).value(RULES);
  await fixture.client.kv.compact({ revision: last.header.revision, physical: true });
  syncer.start();
  await until('re-listed', () => syncer.revision >= Number(last.header.revision));
  const relist = batches.slice(listed);
  expect(relist).toHaveLength(1);
  expect(new Set(relist[0]!.map((u) => JSON.stringify([u.kind, 'key' in u ? u.key : u.profile, 'input' in u ? u.input === undefined : false])))).toEqual(
    new Set([
      JSON.stringify(['endpoint', endpointKey({ ...remote, endpointId: 'e4' }), false]),
      JSON.stringify(['profileRules', 'B', false]),
      JSON.stringify(['endpoint', endpointKey({ ...remote, endpointId: 'e3' }), true]),
    ]),
  );
  expectGraphMatchesView(graph, view);
  expect(graph.toSpec().v4.ipsets.get('cali4-tag-A')?.members).toContain('192.0.2.44');
});

test('a re-list with nothing changed hands on no update', async () => {
  await fixture.client.put(profileRulesKey('A')).value(RULES);
  await fixture.client.put(endpointKey(remote)).value(endpoint('cali2', '192.0.2.2'));
  const { syncer, batches } = makeSyncer();
  await syncer.listOnce();
  const listed = batches.length;
  await syncer.listOnce();
  expect(batches.length).toBe(listed);
});

test('list pages adapt to what the client accepts: pages too large are split, a value too large for one message is invalid', async () => {
  // A client that accepts at most 64 KiB per message, over the same etcd: a default page (up to
  // 5,000 keys) of the ~600-byte values below is ~3 MiB; one value is 100 KiB.
  const small = createEtcdClient({ endpoints: [fixture.etcd.endpoint], tls: {} }, { maxReceiveBytes: 64 * 1024 });
  try {
    const rules = (i: number) => JSON.stringify({ inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: Array.from({ length: 90 }, (_, p) => 1000 + p), src_tag: `T${i}` }], outbound_rules: [] });
    for (let start = 0; start < 5000; start += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => fixture.client.put(profileRulesKey(`P${String(start + j).padStart(4, '0')}`)).value(rules(start + j))));
    }
    const huge = JSON.stringify({ inbound_rules: [], outbound_rules: [], padding: 'x'.repeat(100 * 1024) });
    await fixture.client.put(profileRulesKey('P2500x')).value(huge);
    const quiet = new Writable({ write: (_chunk, _enc, done) => done() });
    const view = new UpdateView();
    const syncer = fixture.track(new Syncer({ client: small, log: pino({ level: 'silent' }, quiet), onUpdates: (updates) => view.apply(updates) }));
    syncer.start();
    await syncer.waitForInSync();
    expect([...view.profiles.keys()].filter((id) => view.profiles.get(id)?.rules !== undefined)).toHaveLength(5000);
    expect(view.profiles.get('P2500x')?.rules).toBeUndefined();
    expect([...syncer.invalidKeys.keys()]).toEqual([profileRulesKey('P2500x')]);
  } finally {
    small.close();
  }
}, 60_000);

test('a list page may end on a key that is not UTF-8: the next page starts right after its bytes', async () => {
  // Junk keys of raw bytes between profiles, one key per page: a next page started from the
  // key's decoded text (U+FFFD for the bad bytes) would list the same key again, for ever.
  for (const id of ['A', 'B', 'C']) await fixture.client.put(profileTagsKey(id)).value(`["${id}"]`);
  const junk = (after: string) => Buffer.concat([Buffer.from(profileTagsKey(after)), Buffer.from([0xff, 0xc3])]);
  for (const id of ['A', 'B']) await fixture.client.put(junk(id)).value('[]');
  const quiet = new Writable({ write: (_chunk, _enc, done) => done() });
  const view = new UpdateView();
  let listed = 0;
  const syncer = fixture.track(
    new Syncer({
      client: fixture.client,
      log: pino({ level: 'silent' }, quiet),
      pageSize: 1,
      onUpdates: (updates) => {
        listed += updates.length;
        view.apply(updates);
      },
    }),
  );
  await syncer.listOnce();
  expect([...view.profiles.keys()].sort()).toEqual(['A', 'B', 'C']);
  expect(syncer.keyCount).toBe(3);
  expect(listed).toBe(3);
});

test('a first list that failed part-way is retried whole: a key it handed on and that vanished meanwhile is deleted', async () => {
  for (const id of ['A', 'B', 'C']) await fixture.client.put(profileTagsKey(id)).value(`["${id}"]`);
  // Fault injected into a real client (etcd cannot be made to fail one request on cue): its
  // second list request deletes A in etcd, then fails as if etcd had gone away.
  const client = createEtcdClient({ endpoints: [fixture.etcd.endpoint], tls: {} });
  const pool = (client.kv as unknown as { client: { exec: (...args: unknown[]) => Promise<unknown> } }).client;
  const exec = pool.exec.bind(pool);
  let calls = 0;
  pool.exec = async (...args: unknown[]) => {
    calls += 1;
    if (calls === 2) {
      await fixture.client.delete().key(profileTagsKey('A'));
      throw new Error('injected: etcd went away mid-list');
    }
    return exec(...args);
  };
  try {
    const quiet = new Writable({ write: (_chunk, _enc, done) => done() });
    const view = new UpdateView();
    const syncer = fixture.track(
      new Syncer({ client, log: pino({ level: 'silent' }, quiet), pageSize: 1, backoffInitialMs: 10, backoffMaxMs: 20, onUpdates: (updates) => view.apply(updates) }),
    );
    syncer.start();
    await syncer.waitForInSync();
    expect(calls).toBeGreaterThan(2);
    expect([...view.profiles.keys()].sort()).toEqual(['B', 'C']);
    expect(syncer.keyCount).toBe(2);
  } finally {
    client.close();
  }
});

test('a 5 MB value arriving on the watch (etcd limit raised) is invalid and skipped; the watch goes on', async () => {
  const big = await startEtcd({ extraArgs: ['--max-request-bytes=10485760'] });
  const client = createEtcdClient({ endpoints: [big.endpoint], tls: {} });
  try {
    const quiet = new Writable({ write: (_chunk, _enc, done) => done() });
    const view = new UpdateView();
    const syncer = fixture.track(new Syncer({ client, log: pino({ level: 'silent' }, quiet), onUpdates: (updates) => view.apply(updates) }));
    syncer.start();
    await syncer.waitForInSync();
    const huge = JSON.stringify({ inbound_rules: [], outbound_rules: [], pad: 'x'.repeat(5 * 1024 * 1024) });
    await client.put(profileRulesKey('HUGE')).value(huge);
    await client.put(profileRulesKey('AFTER')).value(RULES);
    await until('the value after it', () => view.profiles.get('AFTER')?.rules !== undefined);
    expect(view.profiles.get('HUGE')?.rules).toBeUndefined();
    expect(syncer.invalidKeys.get(profileRulesKey('HUGE'))).toMatch(/exceeds the limit of 1048576/);
    expect(syncer.connected).toBe(true);
  } finally {
    client.close();
    await big.stop();
  }
}, 60_000);
