/**
 * The syncer's change counters against a real private etcd: every mutation of the profiles or
 * endpoints Map (watch put/delete, an invalid value, a re-list after compaction) bumps that Map's
 * counter and only that one; a revision-only advance bumps neither. At every step a Compiler fed
 * the syncer's Maps with the counters produces what a fresh Compiler produces.
 */
import { Writable } from 'node:stream';
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { Syncer } from '../../agent/syncer.js';
import { Compiler, defaultCompilerConfig, renderFamily } from '../../compiler/index.js';
import type { DataplaneSpec, Snapshot, SnapshotGenerations } from '../../compiler/index.js';
import { createEtcdClient } from '../../src/datastore/client.js';
import { endpointKey, profileRulesKey, profileTagsKey, type EndpointRef } from '../../src/model/index.js';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';

let etcd: EtcdInstance;
let client: Etcd3;
const syncers: Syncer[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  client = createEtcdClient({ endpoints: [etcd.endpoint], tls: {} });
});
afterEach(async () => {
  for (const syncer of syncers.splice(0)) await syncer.stop();
  await client.delete().prefix('/calico/');
});
afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

const RULES = JSON.stringify({ inbound_rules: [{ action: 'allow', src_tag: 'A' }], outbound_rules: [{ action: 'allow' }] });
const local: EndpointRef = { host: 'h1', orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };
const remote: EndpointRef = { host: 'h2', orchestrator: 'docker', workload: 'w2', endpointId: 'e2' };
const endpoint = (name: string, address: string) =>
  JSON.stringify({ state: 'active', name, profile_ids: ['A'], ipv4_nets: [`${address}/32`] });

function makeSyncer(): Syncer {
  const quiet = new Writable({ write: (_chunk, _enc, done) => done() });
  const syncer = new Syncer({ client, log: pino({ level: 'silent' }, quiet), backoffInitialMs: 50, backoffMaxMs: 300 });
  syncers.push(syncer);
  return syncer;
}

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function rendered(spec: DataplaneSpec): unknown {
  return { v4: renderFamily(spec.v4), v6: renderFamily(spec.v6), diagnostics: spec.diagnostics };
}

/** Compiles the syncer's view with its counters and checks it against a fresh Compiler. */
function expectFreshCompile(compiler: Compiler, syncer: Syncer): DataplaneSpec {
  const snapshot: Snapshot = {
    hostname: 'h1',
    config: defaultCompilerConfig(),
    profiles: syncer.profiles,
    endpoints: syncer.endpoints,
    generations: syncer.generations,
  };
  const spec = compiler.compile(snapshot);
  expect(rendered(spec)).toEqual(rendered(new Compiler().compile({ ...snapshot, generations: undefined })));
  return spec;
}

test('watch puts and deletes bump the counter of the Map they change, and only that one', async () => {
  await client.put(profileRulesKey('A')).value(RULES);
  await client.put(endpointKey(local)).value(endpoint('cali1', '192.0.2.1'));
  const syncer = makeSyncer();
  const compiler = new Compiler();
  syncer.start();
  await syncer.waitForInSync();
  let last: SnapshotGenerations = syncer.generations;
  expect(last.profiles).toBeGreaterThan(0);
  expect(last.endpoints).toBeGreaterThan(0);
  expectFreshCompile(compiler, syncer);

  /** Runs `change`, waits for the syncer to reach its revision, returns which counters moved. */
  const moved = async (change: () => { exec(): Promise<{ header: { revision: string } }> }) => {
    const { header } = await change().exec();
    await until('revision', () => syncer.revision >= Number(header.revision));
    const now = syncer.generations;
    const result = { profiles: now.profiles > last.profiles, endpoints: now.endpoints > last.endpoints };
    last = now;
    return result;
  };

  expect(await moved(() => client.put(profileTagsKey('A')).value('["A"]'))).toEqual({ profiles: true, endpoints: false });
  let spec = expectFreshCompile(compiler, syncer);
  expect(spec.v4.ipsets.get('cali4-tag-A')?.members).toEqual(['192.0.2.1']);

  expect(await moved(() => client.put(endpointKey(remote)).value(endpoint('cali2', '192.0.2.2')))).toEqual({ profiles: false, endpoints: true });
  spec = expectFreshCompile(compiler, syncer);
  expect(spec.v4.ipsets.get('cali4-tag-A')?.members).toEqual(['192.0.2.1', '192.0.2.2']);

  // The same value rewritten, and a key outside the model: the revision moves, no Map changes.
  expect(await moved(() => client.put(endpointKey(remote)).value(endpoint('cali2', '192.0.2.2')))).toEqual({ profiles: false, endpoints: false });
  expect(await moved(() => client.put('/calico/v1/config/LogSeverityFile').value('info'))).toEqual({ profiles: false, endpoints: false });

  // An invalid value removes the entry: that is a change too.
  expect(await moved(() => client.put(endpointKey(remote)).value('{"state": '))).toEqual({ profiles: false, endpoints: true });
  spec = expectFreshCompile(compiler, syncer);
  expect(spec.v4.ipsets.get('cali4-tag-A')?.members).toEqual(['192.0.2.1']);

  expect(await moved(() => client.delete().key(endpointKey(local)))).toEqual({ profiles: false, endpoints: true });
  spec = expectFreshCompile(compiler, syncer);
  expect(spec.localEndpoints.size).toBe(0);

  expect(await moved(() => client.delete().key(profileTagsKey('A')))).toEqual({ profiles: true, endpoints: false });
  expect(await moved(() => client.delete().key(profileRulesKey('A')))).toEqual({ profiles: true, endpoints: false });
  expect(syncer.profiles.size).toBe(0);
  expectFreshCompile(compiler, syncer);
});

test('a re-list after compaction bumps the counters of the Maps it changed', async () => {
  await client.put(profileRulesKey('A')).value(RULES);
  await client.put(profileTagsKey('A')).value('["A"]');
  await client.put(endpointKey(remote)).value(endpoint('cali2', '192.0.2.2'));
  const syncer = makeSyncer();
  const compiler = new Compiler();
  await syncer.listOnce();
  const listed = syncer.generations;
  expectFreshCompile(compiler, syncer);

  // Unseen changes to profiles only, compacted away: the watch is canceled and the view re-listed.
  await client.delete().key(profileTagsKey('A'));
  const last = await client.put(profileRulesKey('B')).value(RULES);
  await client.kv.compact({ revision: last.header.revision, physical: true });
  syncer.start();
  await until('re-listed', () => syncer.revision >= Number(last.header.revision));
  expect(syncer.profiles.has('B')).toBe(true);
  expect(syncer.generations.profiles).toBeGreaterThan(listed.profiles);
  expect(syncer.generations.endpoints).toBe(listed.endpoints);
  const spec = expectFreshCompile(compiler, syncer);
  expect(spec.v4.ipsets.size).toBe(0);
});
