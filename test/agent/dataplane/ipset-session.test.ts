/**
 * The interactive ipset session against real ipset in a network namespace: batches apply in
 * order and resolve when done, an error line fails its own batch only (with the input and the
 * error), a killed session fails what is in flight and the next batch starts a new one, and the
 * ipset IO routes small updates through the session and large ones through `ipset restore`, in
 * several calls when they create many sets (the first failing call ends the restore).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandError, createCommandRunner } from '../../../agent/dataplane/command-runner.js';
import { IpsetSession } from '../../../agent/dataplane/ipset-session.js';
import { MAX_SETS_PER_RESTORE, SESSION_MAX_LINES, createIpsetIo, splitRestoreInput } from '../../../agent/dataplane/ipsets.js';
import { memberDeltaText } from '../../../compiler/index.js';
import { createNetns, type Netns } from '../../helpers/netns.js';
import { recording } from './recording-runner.js';

let ns: Netns;
let session: IpsetSession;
beforeAll(async () => {
  ns = await createNetns('ipset-session');
  await ns.exec(['ipset', 'create', 'cali4-tag-S', 'hash:net', 'family', 'inet']);
  session = new IpsetSession(ns.name);
});
afterAll(async () => {
  await session?.close();
  await ns?.destroy();
});

const members = async (): Promise<string[]> =>
  (await ns.exec(['ipset', 'list', 'cali4-tag-S'])).stdout.split('Members:\n')[1]!.split('\n').filter(Boolean).sort();

describe('IpsetSession', () => {
  it('applies batches in order, concurrently submitted, each resolving when its lines have run', async () => {
    await Promise.all([
      session.apply('add cali4-tag-S 192.0.2.1\nadd cali4-tag-S 192.0.2.2\n'),
      session.apply('del cali4-tag-S 192.0.2.1\n'),
      session.apply('add cali4-tag-S 192.0.2.3\n\n'),
    ]);
    expect(await members()).toEqual(['192.0.2.2', '192.0.2.3']);
    await session.apply('');
  });

  it('open() starts the process before any batch, and the first batch runs in that process', async () => {
    const early = new IpsetSession(ns.name);
    try {
      expect(early.pid).toBeUndefined();
      early.open();
      const pid = early.pid;
      expect(pid).toBeGreaterThan(0);
      early.open(); // idempotent
      expect(early.pid).toBe(pid);
      await early.apply('add cali4-tag-S 192.0.2.9\ndel cali4-tag-S 192.0.2.9\n');
      expect(early.pid).toBe(pid);
    } finally {
      await early.close();
    }
  });

  it('an error fails only its own batch, with the input and the error; warnings do not', async () => {
    const bad = 'add cali4-tag-S 192.0.2.4\ndel cali4-tag-S 198.51.100.99\n';
    const [first, second, third] = await Promise.allSettled([
      session.apply('add cali4-tag-S 192.0.2.5\n'),
      session.apply(bad),
      session.apply('test cali4-tag-S 192.0.2.5\n'),
    ]);
    expect(first.status).toBe('fulfilled');
    expect(third.status).toBe('fulfilled'); // `test` answers with a Warning: line
    expect(second.status).toBe('rejected');
    const error = (second as PromiseRejectedResult).reason as CommandError;
    expect(error).toBeInstanceOf(CommandError);
    expect(error.kind).toBe('rejected');
    expect(error.input).toBe(bad);
    expect(error.stderr).toMatch(/it's not added/);
    // Not atomic, like ipset restore: the line before the error was applied.
    expect(await members()).toContain('192.0.2.4');
  });

  it('a killed session fails the batch in flight; the next one starts a new process', async () => {
    await session.apply('add cali4-tag-S 192.0.2.6\n');
    const pid = session.pid!;
    process.kill(pid, 'SIGKILL');
    const lost = await session.apply('add cali4-tag-S 192.0.2.7\n').catch((error: unknown) => error);
    // Either the batch was written before the kill was noticed (transient failure) or after (a new process ran it).
    if (lost instanceof CommandError) expect(lost.kind).toBe('transient');
    await session.apply('add cali4-tag-S 192.0.2.8\n');
    expect(session.pid).not.toBe(pid);
    expect(await members()).toContain('192.0.2.8');
  });

  it('the ipset IO sends small updates through the session and large ones through ipset restore', async () => {
    const runner = recording(createCommandRunner({ netns: ns.name }));
    const io = createIpsetIo(runner, session);
    await io.apply('del cali4-tag-S 192.0.2.8\n');
    expect(runner.commands).toEqual([]);
    const large = Array.from({ length: SESSION_MAX_LINES + 1 }, (_, i) => `add cali4-tag-S 10.9.${i >> 8}.${i & 255}\n`).join('');
    await io.apply(large);
    expect(runner.commands.map((c) => c.argv)).toEqual([['ipset', 'restore']]);
    expect((await members()).filter((m) => m.startsWith('10.9.'))).toHaveLength(SESSION_MAX_LINES + 1);
    expect(await members()).not.toContain('192.0.2.8');
  });

  it('member deltas headed by a declaration (memberDeltaText) apply on both paths; other metadata are refused', async () => {
    const runner = recording(createCommandRunner({ netns: ns.name }));
    const io = createIpsetIo(runner, session);
    const meta = { type: 'hash:net', family: 'inet' as const, maxelem: 65536 };
    const delta = (prefix: string, count: number): string =>
      memberDeltaText('cali4-tag-S', meta, Array.from({ length: count }, (_, i) => `add cali4-tag-S ${prefix}.${i >> 8}.${i & 255}\n`).join(''));
    const small = delta('10.7', 3);
    expect(small.split('\n')[0]).toBe('create cali4-tag-S hash:net family inet maxelem 65536 -exist');
    expect(delta('10.5', 2)).not.toContain('create'); // too few lines to gain from it
    await io.apply(small); // through the session
    await io.apply(delta('10.6', SESSION_MAX_LINES + 1)); // through ipset restore
    expect(runner.commands.map((c) => c.argv)).toEqual([['ipset', 'restore']]);
    expect((await members()).filter((m) => m.startsWith('10.7.'))).toHaveLength(3);
    expect((await members()).filter((m) => m.startsWith('10.6.'))).toHaveLength(SESSION_MAX_LINES + 1);
    // The set in the kernel has other metadata than we believe: the declaration fails the batch
    // on either path (ipset restore stops there: none of its members went in).
    const drifted = (count: number): string =>
      memberDeltaText('cali4-tag-S', { ...meta, type: 'hash:ip' }, Array.from({ length: count }, (_, i) => `add cali4-tag-S 10.8.${i >> 8}.${i & 255}\n`).join(''));
    for (const count of [3, SESSION_MAX_LINES + 1]) {
      const error = await io.apply(drifted(count)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CommandError);
      expect((error as CommandError).stderr).toMatch(/already exists/);
    }
    await session.apply('flush cali4-tag-S\n');
    await expect(io.apply(drifted(SESSION_MAX_LINES + 1))).rejects.toBeInstanceOf(CommandError);
    expect(await members()).toEqual([]);
  });

  it('a session whose program exits at once fails transiently; one that cannot start is marked unusable', async () => {
    const exits = new IpsetSession('no-such-namespace-xyz');
    const failed = await exits.apply('add x 192.0.2.1\n').catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(CommandError);
    expect((failed as CommandError).kind).toBe('transient');
    expect(exits.usable).toBe(true);
    await exits.close();

    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const missing = new IpsetSession();
      const error = await missing.apply('add x 192.0.2.1\n').catch((e: unknown) => e);
      expect((error as CommandError).message).toMatch(/ipset session could not start/);
      expect(missing.usable).toBe(false);
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('ipset restore in parts', () => {
  const line = fc.oneof(
    fc.nat(9).map((n) => `create cali4-tag-${n} hash:net family inet\n`),
    fc.nat(9).map((n) => `add cali4-tag-${n} 192.0.2.${n}\n`),
    fc.constantFrom('destroy cali4-tag-1\n', 'swap cali4-tmp-1 cali4-tag-1\n', '\n', 'create-not-a-create x\n'),
  );

  it('cuts restore text at create lines into parts of at most maxSets creates that join back to it', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 60 }), fc.boolean(), fc.integer({ min: 1, max: 5 }), (lines, unterminated, maxSets) => {
        const input = lines.join('').slice(0, unterminated ? -1 : undefined);
        const parts = splitRestoreInput(input, maxSets);
        expect(parts.join('')).toBe(input);
        const creates = (text: string): number => text.split('\n').filter((l) => l.startsWith('create ')).length;
        for (const [index, part] of parts.entries()) {
          expect(creates(part)).toBeLessThanOrEqual(maxSets);
          if (index > 0) expect(part.startsWith('create ')).toBe(true);
          if (index < parts.length - 1) expect(creates(part)).toBe(maxSets);
        }
        expect(parts.length).toBe(Math.max(1, Math.ceil(creates(input) / maxSets)));
      }),
      { numRuns: 500 },
    );
  });

  it('a restore creating many sets runs in several ipset restore calls, in order; a failing call ends it', async () => {
    const runner = recording(createCommandRunner({ netns: ns.name }));
    const io = createIpsetIo(runner, session);
    const count = 2 * MAX_SETS_PER_RESTORE + 1;
    const name = (i: number): string => `cali4-tag-P${i}`;
    const setNames = async (): Promise<string[]> => (await ns.exec(['ipset', 'list', '-n'])).stdout.split('\n');
    try {
      const input = Array.from({ length: count }, (_, i) => `create ${name(i)} hash:net family inet\nadd ${name(i)} 10.4.${i >> 8}.${i & 255}\n`).join('');
      await io.apply(input);
      expect(runner.commands.map((c) => c.argv)).toEqual([['ipset', 'restore'], ['ipset', 'restore'], ['ipset', 'restore']]);
      expect(runner.commands.map((c) => c.input).join('')).toBe(input);
      const saved = (await ns.exec(['ipset', 'save'])).stdout;
      for (let i = 0; i < count; i++) expect(saved).toContain(`add ${name(i)} 10.4.${i >> 8}.${i & 255}\n`);

      // The second part fails at its first line: the third is not run.
      runner.commands.length = 0;
      const again = Array.from({ length: count }, (_, i) => `create ${name(i)}-b hash:net family inet\n`);
      again[MAX_SETS_PER_RESTORE] = `create ${name(0)} hash:ip family inet\n`; // exists with another type
      const error = await io.apply(again.join('')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CommandError);
      expect((error as CommandError).stderr).toMatch(/already exists/);
      expect(runner.commands).toHaveLength(2);
      const after = await setNames();
      expect(after).toContain(`${name(MAX_SETS_PER_RESTORE - 1)}-b`);
      expect(after).not.toContain(`${name(MAX_SETS_PER_RESTORE + 1)}-b`);
    } finally {
      const made = (await setNames()).filter((set) => set.startsWith('cali4-tag-P'));
      await ns.exec(['ipset', 'restore'], { input: made.map((set) => `destroy ${set}\n`).join('') });
    }
  });
});
