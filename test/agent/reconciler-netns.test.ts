/**
 * The reconciler against real iptables-nft and ipset inside a throwaway network namespace:
 * adoption on start (stale owned objects removed, foreign ones untouched), warm restart writing
 * 0 bytes, the daemon loop repairing a chain someone flushed, and a chain and a set that a
 * foreign rule references left in place until the reference goes, and the fast hook check
 * putting our hook back in front of a foreign rule, and an ACCEPT slipped into our chain removed at
 * the refresh floor.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CalcGraph, defaultCompilerConfig } from '../../compiler/index.js';
import { createCommandRunner } from '../../agent/dataplane/command-runner.js';
import { createFamilyDataplane } from '../../agent/dataplane/family-dataplane.js';
import { selectIptablesBackend } from '../../agent/dataplane/iptables-backend.js';
import type { CommandRunner } from '../../agent/dataplane/types.js';
import { silentLogger } from '../../agent/logger.js';
import { createAgentMetrics } from '../../agent/metrics.js';
import { HookWatch } from '../../agent/hook-watch.js';
import { Reconciler, type ReconcilerOptions } from '../../agent/reconciler.js';
import { decodeEndpoint, decodeRules, endpointKey, type EndpointRef } from '../../src/model/index.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { until } from '../helpers/until.js';

let netns: Netns;
let runner: CommandRunner;
const HOST = 'host-a';
const ref: EndpointRef = { host: HOST, orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };

/** WEB (allow from tag WEB) and one local endpoint in it, fed to a graph as the syncer would. */
function graph(): CalcGraph {
  const rules = decodeRules(JSON.stringify({ inbound_rules: [{ action: 'allow', src_tag: 'WEB' }], outbound_rules: [{ action: 'allow' }] }));
  const endpoint = decodeEndpoint(JSON.stringify({ state: 'active', name: 'cali1', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.1/32'] }));
  if (!rules.ok || !endpoint.ok) throw new Error('bad fixture');
  const built = new CalcGraph(HOST, defaultCompilerConfig());
  built.setProfileRules('WEB', rules.value);
  built.setProfileTags('WEB', ['WEB']);
  built.setEndpoint(endpointKey(ref), { ref, endpoint: endpoint.value });
  return built;
}

async function makeReconciler(extra: Partial<ReconcilerOptions> = {}): Promise<Reconciler> {
  const backend = await selectIptablesBackend(runner, 'nft');
  return new Reconciler({
    source: { inSync: true, datastoreReady: true, revision: 7 },
    graph: graph(),
    dataplanes: ([4, 6] as const).map((family) => createFamilyDataplane({ runner, family, backend })),
    log: silentLogger(),
    ...extra,
  });
}

const save = async (): Promise<string> => (await netns.exec(['iptables-nft-save', '-t', 'filter'])).stdout.replace(/^#.*\n/gm, '');

/** Starts the daemon loop and waits for its first pass; `fatal()` is the error it gave up with, if any. */
async function startLoop(extra: Partial<ReconcilerOptions>): Promise<{ reconciler: Reconciler; fatal: () => Error | undefined }> {
  const reconciler = await makeReconciler(extra);
  let fatal: Error | undefined;
  reconciler.start((error) => (fatal = error));
  try {
    await until('the first pass', () => reconciler.applied);
  } catch (error) {
    await reconciler.stop();
    throw error;
  }
  return { reconciler, fatal: () => fatal };
}

beforeAll(async () => {
  netns = await createNetns('reconciler');
  runner = createCommandRunner({ netns: netns.name });
});
afterAll(async () => {
  await netns?.destroy();
});

describe('reconciler in a real namespace', () => {
  test('adopts the kernel: stale owned chains and sets go, foreign ones stay', async () => {
    await netns.exec(['iptables-nft-restore', '--noflush'], {
      input: [
        '*filter',
        ':FOREIGN - [0:0]',
        ':cali-stale - [0:0]',
        '-A FOREIGN -j ACCEPT',
        '-A cali-stale -j DROP',
        '-A INPUT -s 198.51.100.7/32 -j FOREIGN',
        'COMMIT',
        '',
      ].join('\n'),
    });
    await netns.exec(['ipset', 'create', 'cali4-stale', 'hash:net']);
    await netns.exec(['ipset', 'create', 'foreign-set', 'hash:net']);

    const reconciler = await makeReconciler();
    const report = await reconciler.reconcileOnce();
    expect(report?.bytesWritten).toBeGreaterThan(0);
    const filter = await save();
    expect(filter).not.toContain('cali-stale');
    expect(filter).toMatch(/^:FOREIGN /m);
    expect(filter).toMatch(/^-A INPUT -s 198\.51\.100\.7\/32 -j FOREIGN$/m);
    // Our hook is the first INPUT rule, ahead of the foreign one.
    expect(filter.split('\n').find((line) => line.startsWith('-A INPUT '))).toMatch(/-j cali-INPUT$/);
    expect(filter).toMatch(/^:cali-pri-WEB /m);
    const sets = (await netns.exec(['ipset', 'list', '-n'])).stdout.split('\n');
    expect(sets).toContain('foreign-set');
    expect(sets).toContain('cali4-tag-WEB');
    expect(sets).not.toContain('cali4-stale');
  });

  test('a warm restart (new reconciler, same inputs) writes 0 bytes', async () => {
    const before = await save();
    const reconciler = await makeReconciler();
    const report = await reconciler.reconcileOnce();
    expect(report).toMatchObject({ bytesWritten: 0, restoreCalls: 0 });
    expect(await save()).toBe(before);
  });

  test('the daemon loop repairs a chain someone flushed, rewriting only that chain', async () => {
    const metrics = createAgentMetrics();
    const { reconciler, fatal } = await startLoop({ refreshIntervalMs: 200, metrics });
    try {
      const good = await save();
      expect(good).toMatch(/^-A cali-pri-WEB /m);

      await netns.exec(['iptables-nft', '-F', 'cali-pri-WEB']);
      expect(await save()).not.toMatch(/^-A cali-pri-WEB /m);
      await until('the flushed chain repaired', async () => /^-A cali-pri-WEB /m.test(await save()));
      expect(await save()).toBe(good);
      const drift = (await metrics.registry.getSingleMetric('calico_agent_drift_repairs_total')?.get())?.values ?? [];
      expect(drift.find((v) => v.labels.family === 'v4')?.value).toBeGreaterThanOrEqual(1);
      const bytes = (await metrics.registry.getSingleMetric('calico_agent_restore_bytes')?.get())?.values ?? [];
      const v4FilterWrites = bytes.find((v) => v.labels.family === 'v4' && v.labels.table === 'filter' && (v as { metricName?: string }).metricName === 'calico_agent_restore_bytes_sum');
      // Only the flushed chain was rewritten: far less than the whole table.
      expect(Number(v4FilterWrites?.value)).toBeLessThan(good.length);
      expect(fatal()).toBeUndefined();
      expect(reconciler.isLive()).toBe(true);
    } finally {
      await reconciler.stop();
    }
  });
  test('a chain and a set someone else references are left in place (never fatal), and deleted once the reference goes', async () => {
    const g = graph();
    let failures = 0;
    let passes = 0;
    const { reconciler, fatal } = await startLoop({ graph: g, refreshIntervalMs: 200, onApplied: () => passes++, onFailed: () => failures++ });
    const sets = async () => (await netns.exec(['ipset', 'list', '-n'])).stdout.split('\n');
    try {
      // Another program jumps to our profile chain and matches on our tag set.
      await netns.exec(['iptables-nft-restore', '--noflush'], {
        input: ['*filter', ':FOREIGN2 - [0:0]', '-A FOREIGN2 -j cali-pri-WEB', '-A FOREIGN2 -m set --match-set cali4-tag-WEB src -j ACCEPT', 'COMMIT', ''].join('\n'),
      });
      // The endpoint goes: WEB's chains and sets are no longer wanted.
      const passesBefore = passes;
      g.setEndpoint(endpointKey(ref), undefined);
      reconciler.markDirty();
      await until('a pass without the endpoint', async () => passes > passesBefore && !/^:cali-tw-cali1 /m.test(await save()));
      const kept = await save();
      expect(kept).toMatch(/^:cali-pri-WEB /m); // referenced: left in place, its rules intact
      expect(kept).toMatch(/^-A cali-pri-WEB /m);
      expect(kept).not.toMatch(/^:cali-pro-WEB /m); // not referenced: deleted
      expect(await sets()).toContain('cali4-tag-WEB');
      expect(fatal()).toBeUndefined();
      expect(failures).toBe(0);

      // The reference goes: after the next read-back our leftovers are deleted too.
      await netns.exec(['iptables-nft', '-F', 'FOREIGN2']);
      await netns.exec(['iptables-nft', '-X', 'FOREIGN2']);
      await until('the leftovers deleted', async () => !/^:cali-pri-WEB /m.test(await save()) && !(await sets()).includes('cali4-tag-WEB'));
      expect(fatal()).toBeUndefined();
      expect(reconciler.isLive()).toBe(true);
    } finally {
      await reconciler.stop();
    }
  });
  test('the fast hook check puts our hook back in front of a foreign rule inserted ahead of it, long before the full read-back', async () => {
    // No read-back of any kind during the test (periodic or after our writes): only the hook check can see the foreign rule.
    const { reconciler, fatal } = await startLoop({ refreshIntervalMs: 600_000, postWriteCheckMinMs: 600_000, postWriteCheckMaxMs: 600_000 });
    const backend = await selectIptablesBackend(runner, 'nft');
    const watch = new HookWatch({ runner, backend, families: [4, 6], observer: reconciler, log: silentLogger(), intervalMs: 0 });
    const firstForwardRule = async () => (await save()).split('\n').find((line) => line.startsWith('-A FORWARD '));
    try {
      expect(await firstForwardRule()).toMatch(/-j cali-FORWARD$/);
      expect(await watch.checkOnce()).toEqual([]);

      await netns.exec(['iptables-nft', '-I', 'FORWARD', '1', '-j', 'ACCEPT']);
      expect(await firstForwardRule()).toBe('-A FORWARD -j ACCEPT');
      expect(await watch.checkOnce()).toEqual(['v4:filter']);
      await until('our hook back in front', async () => /-j cali-FORWARD$/.test((await firstForwardRule()) ?? ''));
      expect(await firstForwardRule()).toMatch(/-j cali-FORWARD$/);
      // The foreign rule is left where its owner can find it, behind ours; our hook is not duplicated.
      const forward = (await save()).split('\n').filter((line) => line.startsWith('-A FORWARD '));
      expect(forward).toContain('-A FORWARD -j ACCEPT');
      expect(forward.filter((line) => line.endsWith('-j cali-FORWARD'))).toHaveLength(1);
      expect(await watch.checkOnce()).toEqual([]);
      expect(fatal()).toBeUndefined();
    } finally {
      await watch.stop();
      await reconciler.stop();
    }
  });

  test('an ACCEPT slipped into one of our chains is removed at the refresh floor (a small dataplane reads cheaply), not at the 60 s interval', async () => {
    // Post-write checks off: only the periodic read-back, at its floor, can see the tampering.
    const { reconciler, fatal } = await startLoop({ refreshIntervalMs: 60_000, refreshFloorMs: 300, postWriteCheckMinMs: 600_000, postWriteCheckMaxMs: 600_000 });
    try {
      const good = await save();
      await netns.exec(['iptables-nft', '-I', 'cali-pri-WEB', '1', '-j', 'ACCEPT']);
      expect(await save()).toMatch(/^-A cali-pri-WEB -j ACCEPT$/m);
      // Well before the 60 s interval; the floor is max(300 ms, 40 × the read's duration), and a
      // read slows several-fold when the whole test suite runs beside it (it took > 5 s once).
      await until('the ACCEPT removed', async () => !/^-A cali-pri-WEB -j ACCEPT$/m.test(await save()), 20_000);
      expect(await save()).toBe(good);
      expect(fatal()).toBeUndefined();
    } finally {
      await reconciler.stop();
    }
  });
});
