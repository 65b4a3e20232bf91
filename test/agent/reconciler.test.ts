/**
 * Reconciler unit tests against a RECORDING CommandRunner: a fake (the only one in these tests)
 * that records argv + stdin, answers `*-save` / `ipset save` with the output of an empty network
 * namespace, and can be told to fail restores on purpose. It stands in for the kernel because a
 * failure on demand, and exact byte accounting, cannot be had from a real one. Post-write
 * read-backs and periodic refresh are pushed out of the way so the cached kernel state is used;
 * reconciler-netns.test.ts covers the same paths against real iptables.
 */
import { describe, expect, test } from 'vitest';
import { CalcGraph, defaultCompilerConfig, profileChainName, tagIpsetName } from '../../compiler/index.js';
import type { IptablesBackend } from '../../agent/dataplane/iptables-backend.js';
import { createFamilyDataplane } from '../../agent/dataplane/family-dataplane.js';
import { HOOKED_BUILTINS } from '../../agent/dataplane/iptables.js';
import type { Plumbing } from '../../agent/dataplane/plumbing.js';
import { FakeClock } from '../helpers/fake-clock.js';
import type { CommandResult, CommandRunner, RunOptions } from '../../agent/dataplane/types.js';
import { silentLogger } from '../../agent/logger.js';
import { Reconciler, ReconcilerFatalError, type DatastoreState, type ReconcilerOptions } from '../../agent/reconciler.js';
import { decodeEndpoint, decodeRules, endpointKey, type EndpointRef } from '../../src/model/index.js';

const EMPTY_SAVE: Record<string, string> = {
  filter: '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n',
  raw: '*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n',
};

interface Call {
  argv: readonly string[];
  input: string | undefined;
}

class RecordingRunner implements CommandRunner {
  readonly calls: Call[] = [];
  /** Decides whether a write fails: return stderr to fail it. */
  failWrite: (call: Call) => string | undefined = () => undefined;
  /** Decides whether a write is held in flight: return a promise that lets it finish. */
  holdWrite: (call: Call) => Promise<void> | undefined = () => undefined;

  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const call = { argv, input: options.input };
    this.calls.push(call);
    if (isWrite(call)) await this.holdWrite(call);
    const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '', durationMs: 0 });
    const tool = argv[0] ?? '';
    if (tool.endsWith('-save')) return ok(EMPTY_SAVE[argv[argv.indexOf('-t') + 1] ?? ''] ?? '');
    if (tool === 'ipset' && argv[1] === 'save') return ok('');
    const failure = this.failWrite(call);
    if (failure !== undefined) return { code: 1, stdout: '', stderr: failure, durationMs: 0 };
    return ok();
  }

  writes(): Call[] {
    return this.calls.filter((c) => isWrite(c));
  }
  reads(): Call[] {
    return this.calls.filter((c) => !isWrite(c));
  }
  reset(): void {
    this.calls.length = 0;
  }
}

const isWrite = (call: Call): boolean => (call.argv[0] ?? '').endsWith('-restore') || (call.argv[0] === 'ipset' && call.argv[1] === 'restore');
const kindOf = (call: Call): string => {
  const input = call.input ?? '';
  if (call.argv[0] === 'ipset') return /^destroy /m.test(input) && !/^create /m.test(input) ? 'ipset-destroy' : 'ipset-update';
  return /^-X /m.test(input) ? 'chain-deletion' : 'iptables-update';
};
/** Chains declared (created or rewritten) in restore inputs. */
const declaredChains = (calls: Call[]): string[] =>
  calls.flatMap((c) => [...(c.input ?? '').matchAll(/^:(cali-\S+) /gm)].map((m) => m[1]!));

const BACKEND: IptablesBackend = {
  mode: 'nft',
  source: 'configured',
  binaries: {
    4: { save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
    6: { save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' },
  },
};

/** The datastore as the syncer would present it: its state, and the graph it feeds key by key. */
class FakeSource implements DatastoreState {
  inSync = true;
  datastoreReady = true;
  revision = 1;
  readonly graph = new CalcGraph(HOST, defaultCompilerConfig());

  setProfile(name: string, rules: unknown, tags: string[] = [name]): void {
    const decoded = decodeRules(JSON.stringify(rules));
    if (!decoded.ok) throw new Error(decoded.reason);
    this.graph.setProfileRules(name, decoded.value);
    this.graph.setProfileTags(name, tags);
    this.revision += 1;
  }
  setEndpoint(ref: EndpointRef, value: unknown): void {
    const decoded = decodeEndpoint(JSON.stringify(value));
    if (!decoded.ok) throw new Error(decoded.reason);
    this.graph.setEndpoint(endpointKey(ref), { ref, endpoint: decoded.value });
    this.revision += 1;
  }
  deleteEndpoint(ref: EndpointRef): void {
    this.graph.setEndpoint(endpointKey(ref), undefined);
    this.revision += 1;
  }
}

const HOST = 'host-a';
const ep1: EndpointRef = { host: HOST, orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };
const ep2: EndpointRef = { host: 'host-b', orchestrator: 'docker', workload: 'w2', endpointId: 'e2' };

function setup(options: Partial<ReconcilerOptions> = {}) {
  const runner = new RecordingRunner();
  const source = new FakeSource();
  source.setProfile('WEB', { inbound_rules: [{ action: 'allow', src_tag: 'WEB' }], outbound_rules: [{ action: 'allow' }] });
  source.setEndpoint(ep1, { state: 'active', name: 'cali1', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.1/32'] });
  source.setEndpoint(ep2, { state: 'active', name: 'cali2', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.2/32'] });
  const reconciler = new Reconciler({
    source,
    graph: source.graph,
    dataplanes: [4, 6].map((family) => createFamilyDataplane({ runner, family: family as 4 | 6, backend: BACKEND })),
    log: silentLogger(),
    refreshIntervalMs: 0,
    postWriteCheckMinMs: 3_600_000,
    retryInitialMs: 1,
    ...options,
  });
  return { runner, source, reconciler };
}

describe('reconciler against a recording runner', () => {
  test('nothing is written before in-sync or while Ready is false', async () => {
    const { runner, source, reconciler } = setup();
    source.inSync = false;
    expect(await reconciler.reconcileOnce()).toBeNull();
    source.inSync = true;
    source.datastoreReady = false;
    expect(await reconciler.reconcileOnce()).toBeNull();
    expect(runner.calls).toEqual([]);
  });

  test('reconciling twice: the second pass writes nothing', async () => {
    const { runner, reconciler } = setup();
    const first = await reconciler.reconcileOnce();
    expect(first?.bytesWritten).toBeGreaterThan(0);
    expect(runner.writes().length).toBe(first?.restoreCalls);
    expect(declaredChains(runner.writes())).toContain(profileChainName('WEB', 'inbound'));
    runner.reset();
    const second = await reconciler.reconcileOnce();
    expect(second).toMatchObject({ restoreCalls: 0, bytesWritten: 0 });
    expect(runner.calls).toEqual([]);
  });

  test('a one-rule change rewrites exactly that chain', async () => {
    const { runner, source, reconciler } = setup();
    await reconciler.reconcileOnce();
    runner.reset();
    source.setProfile('WEB', {
      inbound_rules: [{ action: 'allow', src_tag: 'WEB' }, { action: 'allow', protocol: 'tcp', dst_ports: [80] }],
      outbound_rules: [{ action: 'allow' }],
    });
    const report = await reconciler.reconcileOnce();
    const writes = runner.writes();
    // The rule has no IP version, so the chain changes in both families: one write each.
    expect(writes.map((c) => c.argv[0])).toEqual(['iptables-nft-restore', 'ip6tables-nft-restore']);
    for (const write of writes) {
      expect(declaredChains([write])).toEqual([profileChainName('WEB', 'inbound')]);
      expect(write.input).toMatch(/^\*filter\n/);
      expect(write.input).toContain('--destination-ports 80');
      expect(write.input).toMatch(/COMMIT\n$/);
    }
    expect(report?.bytesWritten).toBe(writes.reduce((sum, w) => sum + Buffer.byteLength(w.input!), 0));
    expect(report?.revision).toBe(source.revision);
  });

  test('ordering: ipset create → iptables → chain deletion → ipset destroy', async () => {
    const { runner, source, reconciler } = setup();
    await reconciler.reconcileOnce();
    const firstKinds = runner.writes().map(kindOf);
    const updates = firstKinds.lastIndexOf('ipset-update');
    expect(updates).toBeGreaterThanOrEqual(0);
    expect(firstKinds.slice(0, updates + 1).every((k) => k === 'ipset-update')).toBe(true);
    expect(firstKinds.slice(updates + 1).every((k) => k === 'iptables-update')).toBe(true);
    expect(runner.writes()[0]!.input).toContain(`create ${tagIpsetName('WEB', 4)} `);

    // Drop the tag reference and the local endpoint: its chains and the tag set must go.
    runner.reset();
    source.setProfile('WEB', { inbound_rules: [{ action: 'allow' }], outbound_rules: [{ action: 'allow' }] });
    source.deleteEndpoint(ep1);
    await reconciler.reconcileOnce();
    const kinds = runner.writes().map(kindOf);
    const last = (kind: string) => kinds.lastIndexOf(kind);
    const first = (kind: string) => kinds.indexOf(kind);
    expect(first('iptables-update')).toBeGreaterThanOrEqual(0);
    expect(first('chain-deletion')).toBeGreaterThan(last('iptables-update'));
    expect(first('ipset-destroy')).toBeGreaterThan(last('chain-deletion'));
    expect(runner.writes()[kinds.indexOf('ipset-destroy')]!.input).toContain(`destroy ${tagIpsetName('WEB', 4)}`);
    const deleted = runner.writes().filter((c) => kindOf(c) === 'chain-deletion').map((c) => c.input!).join('');
    expect(deleted).toMatch(/^-X cali-tw-cali1$/m);
  });

  test('a write failing twice is retried, re-reading the kernel before each retry', async () => {
    const { runner, reconciler } = setup();
    let failures = 0;
    runner.failWrite = (call) =>
      call.argv[0] === 'iptables-nft-restore' && failures < 2 ? (failures++, 'iptables-restore: line 2 failed\n') : undefined;
    const report = await reconciler.reconcileOnce();
    expect(failures).toBe(2);
    expect(report?.reason).toBe('once-retry');
    // Reads: one initial read of both families, then one per retry.
    const saves = runner.calls.filter((c) => c.argv[0] === 'iptables-nft-save' && c.argv.includes('filter'));
    expect(saves.length).toBe(3);
    const failedAt = runner.calls.findIndex((c) => c.argv[0] === 'iptables-nft-restore');
    expect(runner.calls.slice(failedAt + 1).some((c) => c.argv[0] === 'iptables-nft-save')).toBe(true);
  });

  test('persistent failure: retries, one whole rewrite of all our chains, then a fatal rejection', async () => {
    const { runner, reconciler, source } = setup({ maxAttempts: 3 });
    await reconciler.reconcileOnce();
    source.setProfile('WEB', { inbound_rules: [{ action: 'deny' }], outbound_rules: [{ action: 'allow' }] });
    const allChains = new Set(declaredChains(runner.writes().filter((c) => c.argv[0] === 'iptables-nft-restore')));
    runner.reset();
    runner.failWrite = (call) => (call.argv[0] === 'iptables-nft-restore' ? 'iptables-restore: line 3 failed\n' : undefined);
    await expect(reconciler.reconcileOnce('test')).rejects.toBeInstanceOf(ReconcilerFatalError);
    const restores = runner.calls.filter((c) => c.argv[0] === 'iptables-nft-restore');
    expect(restores.length).toBe(4); // 3 attempts + the full rewrite, each stopping at its first failure
    expect(reconciler.lastError).toMatch(/line 3 failed/);
    expect(allChains.size).toBeGreaterThan(3);
  });

  test('a terminal error (tool missing) is fatal at once', async () => {
    const { runner, reconciler } = setup();
    runner.failWrite = (call) => (call.argv[0] === 'ipset' ? 'ipset: command not found\n' : undefined);
    await expect(reconciler.reconcileOnce()).rejects.toThrow(/cannot succeed/);
    // Both families' first step (their ipset restore) ran side by side; nothing after it, no retry.
    expect(runner.writes().map((call) => call.argv[0])).toEqual(['ipset', 'ipset']);
  });

  test('a hook listing taken while our write to that table runs is not judged; one taken between writes is', async () => {
    const { runner, source, reconciler } = setup();
    await reconciler.reconcileOnce();
    const noHooks = new Map(HOOKED_BUILTINS.filter.map((chain) => [chain, []]));
    let inFlight!: () => void;
    const started = new Promise<void>((resolve) => (inFlight = resolve));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    runner.holdWrite = (call) => (call.argv[0] === 'iptables-nft-restore' && /^\*filter/m.test(call.input ?? '') ? (inFlight(), held) : undefined);
    source.setProfile('WEB', { inbound_rules: [{ action: 'deny' }], outbound_rules: [{ action: 'allow' }] });
    const pass = reconciler.reconcileOnce();
    await started;
    // Listed now, the chains may show our restore half-done: whatever they show, no repair.
    const during = reconciler.writeToken(4, 'filter');
    expect(reconciler.hooksObserved(4, 'filter', noHooks, during)).toBe(false);
    release();
    await pass;
    expect(reconciler.hooksObserved(4, 'filter', noHooks, during)).toBe(false);
    // Listed with no write of ours running, a missing hook is judged and repaired.
    const between = reconciler.writeToken(4, 'filter');
    expect(reconciler.hooksObserved(4, 'filter', noHooks, between)).toBe(true);
  });

  test('endpoint statuses: active up, inactive down; remote endpoints are not reported', async () => {
    const { source, reconciler } = setup();
    source.setEndpoint({ ...ep1, endpointId: 'e3' }, { state: 'inactive', name: 'cali3', profile_ids: ['WEB'] });
    const report = await reconciler.reconcileOnce();
    const statuses = Object.fromEntries([...(report?.endpointStatuses ?? [])].map(([, s]) => [s.ref.endpointId, s.status]));
    expect(statuses).toEqual({ e1: 'up', e3: 'down' });
  });
});

describe('whole rewrite after repeated failures', () => {
  test('the rewrite declares every chain we own, even those the kernel already had right', async () => {
    // A runner whose kernel matches after the first apply: only the full rewrite can explain
    // writing chains that did not change.
    const { runner, reconciler, source } = setup({ maxAttempts: 2 });
    await reconciler.reconcileOnce();
    const applied = runner.writes().filter((c) => c.argv[0] === 'iptables-nft-restore' && c.input?.startsWith('*filter'));
    const filterSave = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n${applied
      .flatMap((c) => c.input!.split('\n').filter((l) => l.startsWith(':cali-') || l.startsWith('-A ') || l.startsWith('-I ')))
      .map((l) => l.replace(/^:(\S+) - \[0:0\]$/, ':$1 - [0:0]').replace(/^-I (\S+) 1 /, '-A $1 '))
      .join('\n')}\nCOMMIT\n`;
    const original = runner.run.bind(runner);
    runner.run = async (argv, options) => {
      if (argv[0] === 'iptables-nft-save' && argv.includes('filter')) {
        runner.calls.push({ argv, input: options?.input });
        return { code: 0, stdout: filterSave, stderr: '', durationMs: 0 };
      }
      return original(argv, options);
    };
    runner.reset();
    let filterWrites = 0;
    // Fail the first two attempts' filter writes, let the full rewrite through.
    runner.failWrite = (call) =>
      call.argv[0] === 'iptables-nft-restore' && call.input?.startsWith('*filter') && filterWrites++ < 2 ? 'line 2 failed\n' : undefined;
    source.setProfile('WEB', { inbound_rules: [{ action: 'deny' }], outbound_rules: [{ action: 'allow' }] });
    const report = await reconciler.reconcileOnce('test');
    expect(report?.reason).toBe('test-full-rewrite');
    const lastFilter = runner.writes().filter((c) => c.input?.startsWith('*filter')).pop()!;
    const rewritten = new Set(declaredChains([lastFilter]));
    const owned = new Set(declaredChains(applied));
    expect(rewritten).toEqual(owned);
  });
});

describe('daemon loop', () => {
  test('a burst of events coalesces into a few passes; the last state wins', async () => {
    const passes: number[] = [];
    const { runner, source, reconciler: looped } = setup({ minApplyIntervalMs: 50, onApplied: (report) => passes.push(report.revision) });
    looped.start((error) => {
      throw error;
    });
    try {
      const started = Date.now();
      let port = 1000;
      while (Date.now() - started < 300) {
        port += 1;
        source.setProfile('WEB', { inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: [port] }], outbound_rules: [{ action: 'allow' }] });
        looped.markDirty({ receivedAt: performance.now() });
        await new Promise((r) => setTimeout(r, 1));
      }
      const deadline = Date.now() + 5_000;
      while (looped.appliedRevision !== source.revision && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(looped.appliedRevision).toBe(source.revision);
      expect(port - 1000).toBeGreaterThan(50);
      expect(passes.length).toBeLessThanOrEqual(300 / 50 + 3);
      const lastWrite = runner.writes().filter((c) => c.argv[0] === 'iptables-nft-restore').pop();
      expect(lastWrite?.input).toContain(`--destination-ports ${port}`);
    } finally {
      await looped.stop();
    }
  });

  test('plumbing retries for a missing interface run beside the loop: a datastore change is applied while one hangs', async () => {
    // FAKE plumbing (a test double): its interface is "missing" until told otherwise, and its
    // runs can be held open, which a real kernel cannot be made to do on demand.
    let release: (() => void) | undefined;
    let hold = false;
    let present = false;
    const runs: string[] = [];
    const plumbing: Plumbing = {
      applyGlobal: async () => [],
      reconcile: async (desired) => {
        runs.push([...desired.keys()].join(','));
        if (hold) await new Promise<void>((resolve) => (release = resolve));
        return { skipped: present ? [] : [...desired.keys()].map((name) => ({ name, reason: 'missing' as const })), sysctlWrites: [], ipChanges: [] };
      },
    };
    const statusEvents: string[] = [];
    const { source, reconciler: looped } = setup({
      plumbing,
      plumbingRetryMs: 20,
      minApplyIntervalMs: 1,
      onEndpointStatuses: (statuses) => statusEvents.push([...statuses.values()].map((s) => s.status).join(',')),
    });
    const until = async (what: string, predicate: () => boolean): Promise<void> => {
      const deadline = Date.now() + 5_000;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    looped.start((error) => {
      throw error;
    });
    try {
      // The first pass plumbs cali1 (in the pass): missing, so 'down', and a retry is scheduled.
      await until('first pass', () => looped.applied);
      expect(runs).toEqual(['cali1']);
      expect([...looped.endpointStatuses.values()].map((s) => s.status)).toEqual(['down']);
      // The retry runs and hangs.
      hold = true;
      await until('a retry in flight', () => runs.length === 2 && release !== undefined);
      // A datastore change meanwhile is applied without waiting for it.
      source.setProfile('WEB', { inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: [8080] }], outbound_rules: [{ action: 'allow' }] });
      looped.markDirty({ receivedAt: performance.now() });
      await until('the change applied', () => looped.appliedRevision === source.revision);
      expect(runs).toHaveLength(2);
      // The interface appears; the held retry ends; a later retry finds it: status 'up', reported.
      present = true;
      hold = false;
      release!();
      await until('status up reported', () => statusEvents.at(-1) === 'up');
      expect([...looped.endpointStatuses.values()].map((s) => s.status)).toEqual(['up']);
    } finally {
      hold = false;
      release?.();
      await looped.stop();
    }
  });

  test('on a fake clock: retries for a missing interface back off, doubling up to the cap; a local change resets them', async () => {
    // FAKE plumbing (a test double): the interface stays missing, which the test can then end.
    const runs: number[] = [];
    let present = false;
    const clock = new FakeClock();
    const plumbing: Plumbing = {
      applyGlobal: async () => [],
      reconcile: async (desired) => {
        runs.push(clock.now());
        return { skipped: present ? [] : [...desired.keys()].map((name) => ({ name, reason: 'missing' as const })), sysctlWrites: [], ipChanges: [] };
      },
    };
    const { source, reconciler: looped } = setup({ plumbing, clock, plumbingRetryMs: 100, plumbingRetryMaxMs: 400, minApplyIntervalMs: 10 });
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    looped.start((error) => {
      throw error;
    });
    try {
      await settle();
      const start = runs[0]!;
      expect(runs).toEqual([start]);
      for (let step = 0; step < 16; step++) {
        clock.advance(50);
        await settle();
      }
      // Retries at +100, +300 (100 + 200), +700 (then capped at 400: +1100 would be next).
      expect(runs.map((at) => at - start)).toEqual([0, 100, 300, 700]);
      // A change of the local endpoints plumbs at once and resets the delay to 100.
      source.setEndpoint(ep1, { state: 'active', name: 'cali1', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.9/32'] });
      looped.markDirty({ receivedAt: clock.now() });
      await settle();
      const changedAt = clock.now();
      expect(runs.at(-1)).toBe(changedAt);
      present = true;
      clock.advance(100);
      await settle();
      expect(runs.at(-1)).toBe(changedAt + 100);
      // Nothing missing any more: no further retries.
      const count = runs.length;
      clock.advance(5_000);
      await settle();
      expect(runs).toHaveLength(count);
    } finally {
      const stopping = looped.stop();
      clock.advance(100_000);
      await stopping;
    }
  });
});

