/**
 * The command runner: runs programs without a shell inside the dataplane namespace (nsenter),
 * feeds stdin, times out, and classifies failures (transient / rejected / terminal).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandError, classifyFailure, createCommandRunner, runChecked } from '../../../agent/dataplane/command-runner.js';
import type { CommandRunner } from '../../../agent/dataplane/types.js';
import { createNetns, type Netns } from '../../helpers/netns.js';

let ns: Netns;
beforeAll(async () => {
  ns = await createNetns('runner');
  await ns.exec(['ip', 'link', 'add', 'cali-runner0', 'type', 'veth', 'peer', 'name', 'cali-runner1']);
});
afterAll(async () => {
  await ns?.destroy();
});

describe('createCommandRunner', () => {
  it('runs commands inside the given network namespace', async () => {
    const runner = createCommandRunner({ netns: ns.name });
    const result = await runner.run(['ip', '-o', 'link', 'show']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('cali-runner0');
    expect(result.durationMs).toBeGreaterThan(0);
  });

  it('passes arguments verbatim (no shell) and feeds stdin', async () => {
    const runner = createCommandRunner({ netns: ns.name });
    const echoed = await runner.run(['echo', '$HOME;', '`id`']);
    expect(echoed.stdout).toBe('$HOME; `id`\n');
    const cat = await runner.run(['cat'], { input: 'line one\nline two\n' });
    expect(cat.stdout).toBe('line one\nline two\n');
  });

  it('resolves non-zero exits with their code and stderr', async () => {
    const runner = createCommandRunner({ netns: ns.name });
    const result = await runner.run(['ip', 'link', 'show', 'no-such-if']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/does not exist/);
  });

  it('kills a command that outlives its timeout and reports it as transient', async () => {
    const runner = createCommandRunner({ netns: ns.name });
    const error = await runner.run(['sleep', '5'], { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).kind).toBe('transient');
    expect((error as CommandError).message).toMatch(/timed out/);
  });

  it('kills a command whose signal aborts, rejecting with an aborted CommandError', async () => {
    const runner = createCommandRunner({ netns: ns.name });
    const abort = new AbortController();
    const started = Date.now();
    const running = runner.run(['sleep', '30'], { signal: abort.signal }).catch((e: unknown) => e);
    setTimeout(() => abort.abort(), 50);
    const error = (await running) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect({ aborted: error.aborted, kind: error.kind, detail: error.detail }).toEqual({ aborted: true, kind: 'transient', detail: 'aborted' });
    expect(Date.now() - started).toBeLessThan(10_000); // killed, not waited for (the sleep lasts 30 s)
    const already = (await runner.run(['true'], { signal: abort.signal }).catch((e: unknown) => e)) as CommandError;
    expect(already.aborted).toBe(true);
  });

  it('reports a missing program as terminal, in and out of a namespace', async () => {
    const direct = await createCommandRunner().run(['calico-no-such-program']).catch((e: unknown) => e);
    expect(direct).toBeInstanceOf(CommandError);
    expect((direct as CommandError).terminal).toBe(true);
    const viaNsenter = await runChecked(createCommandRunner({ netns: ns.name }), ['calico-no-such-program']).catch((e: unknown) => e);
    expect(viaNsenter).toBeInstanceOf(CommandError);
    expect((viaNsenter as CommandError).code).toBe(127);
    expect((viaNsenter as CommandError).terminal).toBe(true);
  });

  it('rejects an invalid namespace name before running anything', () => {
    expect(() => createCommandRunner({ netns: '../etc' })).toThrow(/invalid network namespace/);
  });
});

describe('failure classification', () => {
  // A FAKE runner: real iptables-restore cannot be made to lose a COMMIT race or hit the xtables
  // lock on demand, so these outcomes are scripted.
  const failingWith = (code: number, stderr: string): CommandRunner => ({
    run: async () => ({ code, stderr, stdout: '', durationMs: 1 }),
  });
  const input = '*filter\n:cali-x - [0:0]\nCOMMIT\n';

  it('marks a failure at the COMMIT line and lock contention as transient', async () => {
    const atCommit = await runChecked(failingWith(1, 'iptables-restore: line 3 failed\n'), ['iptables-restore'], { input }).catch((e: unknown) => e);
    expect(atCommit).toBeInstanceOf(CommandError);
    expect((atCommit as CommandError).kind).toBe('transient');
    expect((atCommit as CommandError).input).toBe(input);
    const locked = await runChecked(
      failingWith(4, 'Another app is currently holding the xtables lock. Stopped waiting after 10s.\n'),
      ['iptables-restore'],
      { input },
    ).catch((e: unknown) => e);
    expect((locked as CommandError).transient).toBe(true);
  });

  it('marks a bad line as rejected and usage/permission problems as terminal', () => {
    expect(classifyFailure(1, 'iptables-restore: line 2 failed\n', input)).toBe('rejected');
    expect(classifyFailure(2, "iptables-nft-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nError occurred at line: 3\n", input)).toBe(
      'rejected',
    );
    expect(classifyFailure(1, 'ipset v7.17: Error in line 2: Syntax error\n')).toBe('rejected');
    expect(classifyFailure(2, 'iptables-restore: unrecognized option --bogus\n')).toBe('terminal');
    expect(classifyFailure(4, 'iptables-restore: Permission denied (you must be root)\n')).toBe('terminal');
    expect(classifyFailure(127, '')).toBe('terminal');
    expect(classifyFailure(137, '')).toBe('transient');
  });
});
