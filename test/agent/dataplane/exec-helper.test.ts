/**
 * The exec-helper runner: same contract as the direct runner (namespace, verbatim argv, stdin,
 * exit codes, classified CommandErrors carrying the caller's argv and input), programs forked
 * by the helper process rather than by us, concurrency, and recovery when the helper dies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandError } from '../../../agent/dataplane/command-runner.js';
import { createHelperRunner, type HelperRunner } from '../../../agent/dataplane/exec-helper.js';
import { createNetns, type Netns } from '../../helpers/netns.js';

let ns: Netns;
let runner: HelperRunner;
beforeAll(async () => {
  ns = await createNetns('helper');
  await ns.exec(['ip', 'link', 'add', 'cali-helper0', 'type', 'veth', 'peer', 'name', 'cali-helper1']);
  runner = createHelperRunner({ netns: ns.name });
});
afterAll(async () => {
  await runner?.close();
  await ns?.destroy();
});

describe('createHelperRunner', () => {
  it('runs programs in the namespace, forked by the helper process, not by us', async () => {
    const links = await runner.run(['ip', '-o', 'link', 'show']);
    expect(links.code).toBe(0);
    expect(links.stdout).toContain('cali-helper0');
    // The program's parent (through nsenter, which execs it) is the helper, whose pid is not ours.
    const parent = await runner.run(['sh', '-c', 'cat /proc/$PPID/cmdline | tr "\\0" " "']);
    expect(runner.pid).toBeDefined();
    expect(runner.pid).not.toBe(process.pid);
    expect(parent.stdout).toContain('exec-helper-main.js');
  });

  it('passes argv verbatim, feeds stdin, and resolves non-zero exits with their code', async () => {
    expect((await runner.run(['echo', '$HOME;', '`id`'])).stdout).toBe('$HOME; `id`\n');
    expect((await runner.run(['cat'], { input: 'one\ntwo\n' })).stdout).toBe('one\ntwo\n');
    const failed = await runner.run(['ip', 'link', 'show', 'no-such-if']);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/does not exist/);
  });

  it('rejects a program that cannot run or times out with a CommandError naming our argv and input', async () => {
    // Through nsenter a missing program is nsenter's exit 127; without a namespace, a spawn error.
    expect((await runner.run(['no-such-program-xyz'])).code).toBe(127);
    const direct = createHelperRunner();
    const missing = await direct.run(['no-such-program-xyz'], { input: 'x' }).catch((error: unknown) => error);
    await direct.close();
    expect(missing).toBeInstanceOf(CommandError);
    expect((missing as CommandError).argv).toEqual(['no-such-program-xyz']);
    expect((missing as CommandError).input).toBe('x');
    expect((missing as CommandError).kind).toBe('terminal');
    expect((missing as CommandError).message).toBe('no-such-program-xyz failed (did not complete): command not found: no-such-program-xyz');
    const slow = await runner.run(['sleep', '5'], { timeoutMs: 100 }).catch((error: unknown) => error);
    expect(slow).toBeInstanceOf(CommandError);
    expect((slow as CommandError).kind).toBe('transient');
    expect((slow as CommandError).message).toBe('sleep 5 failed (did not complete): timed out after 100 ms');
  });

  it('an aborted request kills its program in the helper and rejects as aborted; others carry on', async () => {
    const abort = new AbortController();
    const started = Date.now();
    const aborted = runner.run(['sleep', '30'], { signal: abort.signal }).catch((error: unknown) => error);
    const other = runner.run(['sh', '-c', 'sleep 0.3; echo fine']);
    setTimeout(() => abort.abort(), 50);
    const error = (await aborted) as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect({ aborted: error.aborted, argv: error.argv }).toEqual({ aborted: true, argv: ['sleep', '30'] });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await other).stdout).toBe('fine\n');
  });

  it('runs requests concurrently and answers each with its own result', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => runner.run(['echo', String(i)])));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
  });

  it('fails requests in flight when the helper dies, and the next request starts a new helper', async () => {
    const first = runner.pid!;
    const inFlight = runner.run(['sleep', '5']).catch((error: unknown) => error);
    await runner.run(['true']);
    process.kill(first, 'SIGKILL');
    const error = await inFlight;
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).kind).toBe('transient');
    expect((error as CommandError).message).toMatch(/exec helper exited \(SIGKILL\)/);
    expect((await runner.run(['echo', 'again'])).stdout).toBe('again\n');
    expect(runner.pid).not.toBe(first);
  });

  it('close() ends the helper; an invalid namespace name is refused up front', async () => {
    const own = createHelperRunner();
    await own.run(['true']);
    const pid = own.pid!;
    await own.close();
    expect(own.pid).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow();
    expect(() => createHelperRunner({ netns: '../x' })).toThrow('invalid network namespace name "../x"');
  });
});
