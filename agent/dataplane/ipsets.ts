/**
 * Reads and writes ipsets: `ipset save` parsed into KernelIpsetState (only sets we own, of one
 * family), and `ipset restore` fed restore text.
 *
 * Invariants:
 * - Only sets named by `isOwnedIpset` are reported; other sets are never parsed further or touched.
 * - Members are in the form `ipset save` prints for hash:net: host prefixes (/32, /128) bare,
 *   lower-case IPv6, so they compare equal to IpsetSpec members.
 * - `ipset restore` is NOT atomic: lines apply one at a time, so after a failure part of the input
 *   may have been applied. The caller must re-read before planning again. The same holds for
 *   small updates sent through an interactive session (ipset-session.ts).
 * - A restore naming many sets is fed to several `ipset restore` calls, one after another, each
 *   starting at a `create` line (`splitRestoreInput`): the lines run in the same order, only in
 *   more processes. Why: one call costs ipset O(lines × sets) of its own CPU (the cost grows
 *   with the sets its process has seen). Measured at the bench's scale S: the agent's IPv4 cold
 *   start (1,947 sets, 196k members) 1.67–1.92 s in one call, 1.16 s in 5; both families'
 *   3,894 sets 2.75 s in one call, 1.48 s in 8, 1.50 s in 16.
 */
import type { KernelIpsetState } from '../../compiler/types.js';
import { isOwnedIpset } from '../../compiler/names.js';
import { runChecked } from './command-runner.js';
import { detach } from '../../src/model/index.js';
import { forEachLine } from './parse-slices.js';
import type { IpsetSession } from './ipset-session.js';
import type { CommandResult, CommandRunner } from './types.js';

export type IpsetFamily = 'inet' | 'inet6';

const DEFAULT_MAXELEM = 65536;

/** `192.0.2.1/32` → `192.0.2.1`, `2001:DB8::/64` → `2001:db8::/64`. */
export function normaliseMember(member: string, family: IpsetFamily): string {
  const lower = member.toLowerCase();
  const hostSuffix = family === 'inet' ? '/32' : '/128';
  return lower.endsWith(hostSuffix) ? lower.slice(0, -hostSuffix.length) : lower;
}

interface MutableSet {
  name: string;
  family: IpsetFamily;
  type: string;
  maxelem: number;
  members: Set<string>;
}

/** Our sets in `ipset save` output, per family. */
export type SavedIpsets = Record<IpsetFamily, Map<string, KernelIpsetState>>;

/**
 * Parses `ipset save` output once for both families, keeping only our sets. At 300k members the
 * output is ~10 MB and parsing it takes a few hundred ms of the agent's event loop, so it yields
 * between slices of lines (parse-slices.ts).
 */
export async function parseIpsetSaveFamilies(text: string): Promise<SavedIpsets> {
  const all = new Map<string, MutableSet>();
  await forEachLine(text, (at, end) => {
    if (text.startsWith('add ', at)) {
      const nameEnd = text.indexOf(' ', at + 4);
      const set = nameEnd < 0 || nameEnd > end ? undefined : all.get(text.slice(at + 4, nameEnd));
      if (set) {
        let memberEnd = text.indexOf(' ', nameEnd + 1);
        if (memberEnd < 0 || memberEnd > end) memberEnd = end;
        set.members.add(detach(normaliseMember(text.slice(nameEnd + 1, memberEnd).trim(), set.family)));
      }
    } else if (text.startsWith('create ', at)) {
      const words = text.slice(at, end).trim().split(/\s+/);
      const name = words[1] ?? '';
      if (isOwnedIpset(name)) {
        const option = (key: string): string | undefined => {
          const index = words.indexOf(key, 3);
          return index < 0 ? undefined : words[index + 1];
        };
        const kept = detach(name);
        const setFamily = option('family') === 'inet6' ? 'inet6' : 'inet';
        all.set(kept, { name: kept, family: setFamily, type: detach(words[2] ?? ''), maxelem: Number(option('maxelem') ?? DEFAULT_MAXELEM), members: new Set() });
      }
    }
  });
  const families: SavedIpsets = { inet: new Map(), inet6: new Map() };
  for (const [name, set] of all) families[set.family].set(name, set);
  return families;
}

/** Parses `ipset save` output, keeping the owned sets of `family`. */
export async function parseIpsetSave(text: string, family: IpsetFamily): Promise<Map<string, KernelIpsetState>> {
  return (await parseIpsetSaveFamilies(text))[family];
}

export interface IpsetIo {
  /**
   * Reads our sets of one family; resolves with the parsed state and the raw result (for logs).
   * Reads that overlap share one `ipset save` (it prints every family's sets), if they share
   * their abort signal too.
   */
  read(family: IpsetFamily, signal?: AbortSignal): Promise<{ sets: Map<string, KernelIpsetState>; result: CommandResult }>;
  /**
   * `ipset restore`, in several calls for many sets (`splitRestoreInput`); rejects with the
   * CommandError of the first call that fails (the later ones are not made). Not atomic: re-read
   * after a failure.
   */
  apply(input: string): Promise<CommandResult>;
}

/** Updates of at most this many lines go through the interactive session (when there is one). */
export const SESSION_MAX_LINES = 100;

/** The most sets one `ipset restore` call creates (see the header). */
export const MAX_SETS_PER_RESTORE = 400;

/**
 * Restore text cut into consecutive parts, each starting at a `create` line and holding at most
 * `maxSets` of them (the first part also holds what precedes the first `create`); joined, the
 * parts are the input.
 */
export function splitRestoreInput(input: string, maxSets = MAX_SETS_PER_RESTORE): string[] {
  const parts: string[] = [];
  let partStart = 0;
  let creates = 0;
  for (let at = 0; at < input.length; ) {
    if (input.startsWith('create ', at)) {
      if (creates === maxSets) {
        parts.push(input.slice(partStart, at));
        partStart = at;
        creates = 0;
      }
      creates++;
    }
    const newline = input.indexOf('\n', at);
    at = newline < 0 ? input.length : newline + 1;
  }
  if (partStart < input.length || parts.length === 0) parts.push(input.slice(partStart));
  return parts;
}

/**
 * `session`: small updates (member deltas) go through it, each line a fraction of a millisecond;
 * larger ones, and every update when it cannot start, through `ipset restore`.
 */
export function createIpsetIo(runner: CommandRunner, session?: IpsetSession): IpsetIo {
  const saving = new Map<AbortSignal | undefined, Promise<{ result: CommandResult; families: SavedIpsets }>>();
  return {
    async read(family, signal) {
      let save = saving.get(signal);
      if (save === undefined) {
        save = runChecked(runner, ['ipset', 'save'], signal ? { signal } : {})
          .then(async (result) => ({ result, families: await parseIpsetSaveFamilies(result.stdout) }))
          .finally(() => saving.delete(signal));
        saving.set(signal, save);
      }
      const { result, families } = await save;
      return { sets: families[family], result };
    },
    async apply(input) {
      let lines = 0;
      for (let at = input.indexOf('\n'); at >= 0 && lines <= SESSION_MAX_LINES; at = input.indexOf('\n', at + 1)) lines++;
      if (session?.usable && lines <= SESSION_MAX_LINES) {
        const started = performance.now();
        await session.apply(input);
        return { code: 0, stdout: '', stderr: '', durationMs: performance.now() - started };
      }
      const started = performance.now();
      const results: CommandResult[] = [];
      for (const part of splitRestoreInput(input)) results.push(await runChecked(runner, ['ipset', 'restore'], { input: part }));
      if (results.length === 1) return results[0]!;
      const joined = (field: 'stdout' | 'stderr'): string => results.map((result) => result[field]).join('');
      return { code: 0, stdout: joined('stdout'), stderr: joined('stderr'), durationMs: performance.now() - started };
    },
  };
}
