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
 */
import type { KernelIpsetState } from '../../compiler/types.js';
import { isOwnedIpset } from '../../compiler/names.js';
import { runChecked } from './command-runner.js';
import { detach } from '../../src/model/index.js';
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

/** Parses `ipset save` output, keeping the owned sets of `family`. */
export function parseIpsetSave(text: string, family: IpsetFamily): Map<string, KernelIpsetState> {
  const sets = new Map<string, MutableSet>();
  for (const line of text.split('\n')) {
    if (line.startsWith('add ')) {
      const end = line.indexOf(' ', 4);
      if (end < 0) continue;
      const set = sets.get(line.slice(4, end));
      if (!set) continue; // not ours, or not this family
      const memberEnd = line.indexOf(' ', end + 1);
      const member = memberEnd < 0 ? line.slice(end + 1) : line.slice(end + 1, memberEnd);
      set.members.add(detach(normaliseMember(member.trim(), set.family)));
    } else if (line.startsWith('create ')) {
      const words = line.trim().split(/\s+/);
      const name = words[1] ?? '';
      if (!isOwnedIpset(name)) continue;
      const option = (key: string): string | undefined => {
        const at = words.indexOf(key, 3);
        return at < 0 ? undefined : words[at + 1];
      };
      const setFamily = option('family') === 'inet6' ? 'inet6' : 'inet';
      if (setFamily !== family) continue;
      const maxelem = Number(option('maxelem') ?? DEFAULT_MAXELEM);
      const kept = detach(name);
      sets.set(kept, { name: kept, family: setFamily, type: detach(words[2] ?? ''), maxelem, members: new Set() });
    }
  }
  return sets;
}

export interface IpsetIo {
  /**
   * Reads our sets of one family; resolves with the parsed state and the raw result (for logs).
   * Reads that overlap share one `ipset save` (it prints every family's sets).
   */
  read(family: IpsetFamily): Promise<{ sets: Map<string, KernelIpsetState>; result: CommandResult }>;
  /** `ipset restore`; rejects with a CommandError. Not atomic: re-read after a failure. */
  apply(input: string): Promise<CommandResult>;
}

/** Updates of at most this many lines go through the interactive session (when there is one). */
export const SESSION_MAX_LINES = 100;

/**
 * `session`: small updates (member deltas) go through it, each line a fraction of a millisecond;
 * larger ones, and every update when it cannot start, through `ipset restore`.
 */
export function createIpsetIo(runner: CommandRunner, session?: IpsetSession): IpsetIo {
  let saving: Promise<CommandResult> | undefined;
  return {
    async read(family) {
      saving ??= runChecked(runner, ['ipset', 'save']).finally(() => (saving = undefined));
      const result = await saving;
      return { sets: parseIpsetSave(result.stdout, family), result };
    },
    async apply(input) {
      let lines = 0;
      for (let at = input.indexOf('\n'); at >= 0 && lines <= SESSION_MAX_LINES; at = input.indexOf('\n', at + 1)) lines++;
      if (session?.usable && lines <= SESSION_MAX_LINES) {
        const started = performance.now();
        await session.apply(input);
        return { code: 0, stdout: '', stderr: '', durationMs: performance.now() - started };
      }
      return runChecked(runner, ['ipset', 'restore'], { input });
    },
  };
}
