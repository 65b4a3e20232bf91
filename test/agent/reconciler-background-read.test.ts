/**
 * Background verification reads of the reconciler, against real iptables-nft and ipset inside a
 * throwaway network namespace. The one FAKE part is the timing of reads: `SlowSaveRunner` runs
 * every `*-save` / `ipset save` for real at once, but can hold its result back (or delay or fail
 * it), because a read that takes half a second, as on a 36k-rule kernel, cannot be had from a
 * small namespace on demand. Everything is asserted through the order of recorded commands and
 * the kernel's contents, never through elapsed-time thresholds (except the floor test, which
 * checks a lower bound that follows from the injected delay).
 */
import { chainRules } from '../helpers/iptables-save.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CalcGraph, defaultCompilerConfig, profileChainName } from '../../compiler/index.js';
import { CommandError, createCommandRunner } from '../../agent/dataplane/command-runner.js';
import { createFamilyDataplane } from '../../agent/dataplane/family-dataplane.js';
import { selectIptablesBackend } from '../../agent/dataplane/iptables-backend.js';
import type { CommandResult, CommandRunner, RunOptions } from '../../agent/dataplane/types.js';
import { silentLogger } from '../../agent/logger.js';
import { createAgentMetrics, type AgentMetrics } from '../../agent/metrics.js';
import { Reconciler, type ApplyReport, type ReconcilerOptions, type DatastoreState } from '../../agent/reconciler.js';
import { decodeEndpoint, decodeRules, endpointKey, type EndpointRef } from '../../src/model/index.js';
import { createNetns, type Netns } from '../helpers/netns.js';

const HOST = 'host-a';
const ref: EndpointRef = { host: HOST, orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };
const WEB_INBOUND = profileChainName('WEB', 'inbound');

let netns: Netns;
let real: CommandRunner;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

const isSave = (argv: readonly string[]): boolean => (argv[0] ?? '').endsWith('-save') || (argv[0] === 'ipset' && argv[1] === 'save');
const isFilterSave = (e: RunnerEvent): boolean => (e.argv[0] ?? '').endsWith('-save') && e.argv.includes('filter');

interface RunnerEvent {
  /** save-fetched: the real read is done (its result may still be held back); save-end: returned. */
  kind: 'save-start' | 'save-fetched' | 'save-end' | 'save-aborted' | 'write';
  argv: readonly string[];
  stdout?: string;
}

/** The real runner, with reads that can be held back, delayed or failed (see the header). */
class SlowSaveRunner implements CommandRunner {
  readonly events: RunnerEvent[] = [];
  /** Extra time every read takes after the real one returned. */
  delayMs = 0;
  /** Reads failing before they run (FAKE failure). */
  failSaves = 0;
  /** Reads started and not yet returned. */
  inFlight = 0;
  /** Held or delayed reads give up when their abort signal fires, as the real runners do. */
  abortable = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  /** Reads starting from now on return only after `release()`. */
  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }
  /** Holds reads from the next moment none is in flight, so a whole verification read is held. */
  holdWhenIdle(): boolean {
    if (this.inFlight > 0) return false;
    this.hold();
    return true;
  }
  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }
  saveStarts(): number {
    return this.events.filter((e) => e.kind === 'save-start').length;
  }
  writes(): RunnerEvent[] {
    return this.events.filter((e) => e.kind === 'write');
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    if (!isSave(argv)) {
      this.events.push({ kind: 'write', argv });
      return real.run(argv, options);
    }
    const gate = this.gate;
    this.events.push({ kind: 'save-start', argv });
    this.inFlight += 1;
    try {
      if (this.failSaves > 0) {
        this.failSaves -= 1;
        return { code: 1, stdout: '', stderr: `${argv[0]}: injected read failure\n`, durationMs: 0 };
      }
      const { signal, ...rest } = options;
      const result = await real.run(argv, this.abortable && signal ? options : rest);
      this.events.push({ kind: 'save-fetched', argv });
      if (this.delayMs > 0) await sleep(this.delayMs);
      if (this.abortable && signal) {
        const aborted = new Promise<never>((_, reject) => {
          const fail = () => reject(CommandError.aborted(argv, undefined));
          if (signal.aborted) fail();
          else signal.addEventListener('abort', fail, { once: true });
        });
        await Promise.race([gate, aborted]).catch((error: unknown) => {
          this.events.push({ kind: 'save-aborted', argv });
          throw error;
        });
      } else {
        await gate;
      }
      this.events.push({ kind: 'save-end', argv, stdout: result.stdout });
      return result;
    } finally {
      this.inFlight -= 1;
    }
  }
}

/** The datastore as the syncer would present it: its state, and the graph it feeds key by key. */
class MutableSource implements DatastoreState {
  inSync = true;
  datastoreReady = true;
  revision = 10;
  readonly graph = new CalcGraph(HOST, defaultCompilerConfig());

  constructor() {
    this.setWebRules([{ action: 'allow', src_tag: 'WEB' }]);
    this.graph.setProfileTags('WEB', ['WEB']);
    const endpoint = decodeEndpoint(JSON.stringify({ state: 'active', name: 'cali1', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.1/32'] }));
    if (!endpoint.ok) throw new Error(endpoint.reason);
    this.graph.setEndpoint(endpointKey(ref), { ref, endpoint: endpoint.value });
  }

  setWebRules(inbound: unknown[]): void {
    const rules = decodeRules(JSON.stringify({ inbound_rules: inbound, outbound_rules: [{ action: 'allow' }] }));
    if (!rules.ok) throw new Error(rules.reason);
    this.graph.setProfileRules('WEB', rules.value);
    this.revision += 1;
  }
}

interface Harness {
  runner: SlowSaveRunner;
  source: MutableSource;
  reconciler: Reconciler;
  metrics: AgentMetrics;
  reports: ApplyReport[];
  fatal: () => Error | undefined;
}

/** A reconciler on a SlowSaveRunner, not started. */
async function build(extra: Partial<ReconcilerOptions> = {}): Promise<Omit<Harness, 'fatal'>> {
  const runner = new SlowSaveRunner();
  const backend = await selectIptablesBackend(real, 'nft');
  const source = new MutableSource();
  const metrics = createAgentMetrics();
  const reports: ApplyReport[] = [];
  const reconciler = new Reconciler({
    source,
    graph: source.graph,
    dataplanes: ([4, 6] as const).map((family) => createFamilyDataplane({ runner, family, backend })),
    log: silentLogger(),
    metrics,
    onApplied: (report) => reports.push(report),
    ...extra,
  });
  return { runner, source, reconciler, metrics, reports };
}

/** A reconciler running its daemon loop. */
async function harness(extra: Partial<ReconcilerOptions> = {}): Promise<Harness> {
  const built = await build(extra);
  let fatal: Error | undefined;
  built.reconciler.start((error) => (fatal = error));
  return { ...built, fatal: () => fatal };
}

const kernelFilter = async (): Promise<string> => (await netns.exec(['iptables-nft-save', '-t', 'filter'])).stdout;

async function driftRepairs(metrics: AgentMetrics): Promise<Record<string, number>> {
  const values = (await metrics.registry.getSingleMetric('calico_agent_drift_repairs_total')?.get())?.values ?? [];
  return Object.fromEntries(values.map((v) => [String(v.labels.family), v.value]));
}

/**
 * Runs the loop to its first pass, then holds the next verification read in flight and makes a
 * datastore change (a new inbound rule for port 8080) while it is held.
 */
async function changeWhileReadHeld(h: Harness): Promise<{ heldFrom: number; changed: number }> {
  await until('the first pass is applied', () => h.reconciler.applied);
  await until('no read is in flight', () => h.runner.holdWhenIdle());
  const heldFrom = h.runner.events.length;
  // The held read has really read the filter table: what it returns predates the change below.
  await until('a held read has read a filter table', () => h.runner.events.slice(heldFrom).some((e) => e.kind === 'save-fetched' && isFilterSave(e)));
  h.source.setWebRules([{ action: 'allow', src_tag: 'WEB' }, { action: 'allow', protocol: 'tcp', dst_ports: [8080] }]);
  h.reconciler.markDirty({ receivedAt: performance.now() });
  const changed = h.source.revision;
  await until('the change is applied', () => h.reconciler.appliedRevision === changed);
  return { heldFrom, changed };
}

beforeAll(async () => {
  netns = await createNetns('bgread');
  real = createCommandRunner({ netns: netns.name });
});
afterAll(async () => {
  await netns?.destroy();
});

describe('background verification reads', () => {
  test('a datastore change is written while a verification read is still in flight', async () => {
    const h = await harness({ refreshIntervalMs: 100 });
    try {
      const { heldFrom } = await changeWhileReadHeld(h);
      // The read has not returned, yet the change is in the kernel.
      expect(h.runner.inFlight).toBeGreaterThan(0);
      expect(chainRules(await kernelFilter(), WEB_INBOUND).join('\n')).toContain('8080');
      const after = h.runner.events.slice(heldFrom);
      const firstSave = after.findIndex((e) => e.kind === 'save-start');
      const write = after.findIndex((e) => e.kind === 'write' && e.argv[0] === 'iptables-nft-restore');
      expect(firstSave).toBeGreaterThanOrEqual(0);
      expect(write).toBeGreaterThan(firstSave);
      expect(after.slice(0, write).some((e) => e.kind === 'save-end')).toBe(false);
      expect(h.reports.at(-1)).toMatchObject({ reason: 'datastore', driftRepaired: false });
    } finally {
      h.runner.release();
      await h.reconciler.stop();
    }
    expect(h.fatal()).toBeUndefined();
  });

  test('a read that overlapped our write is not trusted: no drift repair, nothing rewritten', async () => {
    const h = await harness({ refreshIntervalMs: 100 });
    try {
      const { heldFrom } = await changeWhileReadHeld(h);
      const writesAfterChange = h.runner.writes().length;
      const reportsAfterChange = h.reports.length;
      const savesAtRelease = h.runner.saveStarts();
      h.runner.release();
      // The held read saw the kernel from before the change: trusted, it would look like drift.
      await until('the held read has returned', () => h.runner.events.slice(heldFrom).some((e) => e.kind === 'save-end' && isFilterSave(e)));
      const stale = h.runner.events.slice(heldFrom).find((e) => e.kind === 'save-end' && isFilterSave(e));
      expect(chainRules(stale?.stdout ?? '', WEB_INBOUND).length).toBeGreaterThan(0);
      expect(chainRules(stale?.stdout ?? '', WEB_INBOUND).join('\n')).not.toContain('8080');
      // The rest of the held read, a whole recheck (6 reads) and the start of the next: both judged.
      await until('the held read and a recheck have been judged', () => h.runner.saveStarts() >= savesAtRelease + 10);
      expect(h.runner.writes().length).toBe(writesAfterChange);
      expect(h.reports.length).toBe(reportsAfterChange);
      expect(await driftRepairs(h.metrics)).toEqual({});
      expect(chainRules(await kernelFilter(), WEB_INBOUND).join('\n')).toContain('8080');
    } finally {
      h.runner.release();
      await h.reconciler.stop();
    }
    expect(h.fatal()).toBeUndefined();
  });

  test('our write aborts a verification read in flight; a later read checks the kernel again', async () => {
    // Reads are preemptible while the kernel was verified within the refresh interval: the
    // post-write checks after the first pass are; a 100 ms interval would make none of them so.
    const h = await harness({ refreshIntervalMs: 60_000 });
    h.runner.abortable = true;
    try {
      const { heldFrom } = await changeWhileReadHeld(h);
      const held = h.runner.events.slice(heldFrom);
      expect(held.some((e) => e.kind === 'save-aborted')).toBe(true);
      expect(held.some((e) => e.kind === 'save-end')).toBe(false);
      const writes = h.runner.writes().length;
      h.runner.release();
      const from = h.runner.events.length;
      await until('a later verification read has returned', () => h.runner.events.slice(from).some((e) => e.kind === 'save-end' && isFilterSave(e)));
      const saves = h.runner.saveStarts();
      await until('it has been judged (the next read started)', () => h.runner.saveStarts() > saves);
      expect(h.runner.writes().length).toBe(writes);
      expect(await driftRepairs(h.metrics)).toEqual({});
      const aborted = (await h.metrics.registry.getSingleMetric('calico_agent_readback_calls_total')?.get())?.values.filter((v) => v.labels.result === 'aborted') ?? [];
      expect(aborted.reduce((sum, v) => sum + v.value, 0)).toBeGreaterThan(0);
      expect(chainRules(await kernelFilter(), WEB_INBOUND).join('\n')).toContain('8080');
    } finally {
      h.runner.release();
      await h.reconciler.stop();
    }
    expect(h.fatal()).toBeUndefined();
  });

  test('a trusted read that shows drift triggers exactly one repair pass', async () => {
    const h = await harness({ refreshIntervalMs: 100 });
    try {
      await until('the first pass is applied', () => h.reconciler.applied);
      const intact = chainRules(await kernelFilter(), WEB_INBOUND);
      expect(intact.length).toBeGreaterThan(0);
      const reportsBefore = h.reports.length;
      const writesBefore = h.runner.writes().length;

      await netns.exec(['iptables-nft', '-F', WEB_INBOUND]);
      await until('the flushed chain is repaired', async () => chainRules(await kernelFilter(), WEB_INBOUND).length > 0);
      const saves = h.runner.saveStarts();
      await until('two more verification reads have been judged', () => h.runner.saveStarts() >= saves + 13);

      expect(chainRules(await kernelFilter(), WEB_INBOUND)).toEqual(intact);
      const passes = h.reports.slice(reportsBefore);
      const writing = passes.filter((report) => report.restoreCalls > 0);
      expect(writing).toHaveLength(1);
      expect(writing[0]).toMatchObject({ reason: 'read-back', driftRepaired: true, restoreCalls: 1 });
      // The repair rewrote the one flushed chain (IPv4 filter), nothing else.
      const repairWrites = h.runner.writes().slice(writesBefore);
      expect(repairWrites.map((w) => w.argv[0])).toEqual(['iptables-nft-restore']);
      expect(await driftRepairs(h.metrics)).toEqual({ v4: 1 });
    } finally {
      await h.reconciler.stop();
    }
    expect(h.fatal()).toBeUndefined();
  });

  test('the post-write floor follows the measured read duration', async () => {
    const DELAY_MS = 150;
    const fast = await build({ postWriteCheckMinMs: 1 });
    await fast.reconciler.reconcileOnce();
    const slow = await build({ postWriteCheckMinMs: 1 });
    slow.runner.delayMs = DELAY_MS;
    await slow.reconciler.reconcileOnce();
    // Every read of both families runs side by side: the read takes ≥ 1 delay.
    const slowRead = DELAY_MS - 2;
    expect(slow.reconciler.postWriteCheckFloorMs).toBeGreaterThanOrEqual(2 * slowRead);
    expect(fast.reconciler.postWriteCheckFloorMs).toBeLessThan(slow.reconciler.postWriteCheckFloorMs);
    expect(fast.reconciler.postWriteCheckFloorMs).toBeGreaterThanOrEqual(1);
  });

  test('a kernel read prefetched while the datastore listed counts for its own duration, not for the wait', async () => {
    const DELAY_MS = 150;
    const h = await build({ postWriteCheckMinMs: 1 });
    h.runner.delayMs = DELAY_MS;
    h.source.inSync = false;
    h.reconciler.start(() => {});
    try {
      // The prefetch of both families is over before the datastore is in sync: the first pass
      // waits for nothing, yet the reads it adopts took a delay each.
      await until('the prefetched reads have returned', () => h.runner.saveStarts() > 0 && h.runner.inFlight === 0);
      const saves = h.runner.saveStarts();
      h.source.inSync = true;
      h.reconciler.markDirty({ receivedAt: performance.now() });
      await until('the first pass is applied', () => h.reconciler.applied);
      expect(h.runner.saveStarts()).toBe(saves); // it adopted the prefetch, read nothing more
      expect(h.reconciler.postWriteCheckFloorMs).toBeGreaterThanOrEqual(2 * (DELAY_MS - 2));
    } finally {
      await h.reconciler.stop();
    }
  });

  test('stop() waits for an in-flight read; nothing runs after it resolves', async () => {
    const h = await harness({ refreshIntervalMs: 100 });
    await until('the first pass is applied', () => h.reconciler.applied);
    await until('no read is in flight', () => h.runner.holdWhenIdle());
    const saves = h.runner.saveStarts();
    await until('a verification read is in flight', () => h.runner.saveStarts() > saves);
    let stopped = false;
    const stopping = h.reconciler.stop().then(() => (stopped = true));
    await sleep(20);
    expect(stopped).toBe(false);
    h.runner.release();
    await stopping;
    expect(h.runner.inFlight).toBe(0);
    const events = h.runner.events.length;
    await sleep(300);
    expect(h.runner.events.length).toBe(events);
    expect(h.fatal()).toBeUndefined();
  });

  test('a failed background read is not fatal: the next check reads inside a pass', async () => {
    const h = await harness({ refreshIntervalMs: 100 });
    try {
      await until('the first pass is applied', () => h.reconciler.applied);
      const reportsBefore = h.reports.length;
      h.runner.failSaves = 1;
      await until('a read-back pass ran', () => h.reports.slice(reportsBefore).some((r) => r.reason === 'read-back'));
      expect(h.runner.failSaves).toBe(0);
      expect(h.reconciler.isLive()).toBe(true);
      expect(h.reconciler.lastError).toBeNull();
      const readbacks = (await h.metrics.registry.getSingleMetric('calico_agent_readback_calls_total')?.get())?.values ?? [];
      expect(readbacks.find((v) => v.labels.result === 'error')?.value).toBe(1);
    } finally {
      await h.reconciler.stop();
    }
    expect(h.fatal()).toBeUndefined();
  });
});
