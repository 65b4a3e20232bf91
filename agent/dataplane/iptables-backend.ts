/**
 * Chooses the iptables backend (legacy or nft) and the binaries for each IP family, as Felix does
 * (docker-deploy.md §4.5, after Kubernetes' iptables-wrapper).
 *
 * Invariants:
 * - A configured `legacy`/`nft` wins and detection is skipped.
 * - `auto`: count the rules (`-` lines) printed by the legacy save tools of both families; ≥ 10
 *   → legacy; otherwise nft only if the nft save tools print strictly more rules. Ties → legacy.
 * - Binaries are `ip[6]tables-<mode>-<save|restore>` when present on PATH, else the plain
 *   `ip[6]tables-<save|restore>` names; neither present → an Error (the agent cannot run).
 * - Detection only reads (save tools), through the runner, so it sees the dataplane namespace.
 */
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { IpFamily } from '../../compiler/types.js';
import type { CommandRunner } from './types.js';

export type IptablesMode = 'legacy' | 'nft';
export type IptablesBackendSetting = 'auto' | IptablesMode;

export interface IptablesBinaries {
  save: string;
  restore: string;
}

export interface IptablesBackend {
  mode: IptablesMode;
  /** How the mode was chosen; detection counts are set when it was detected. */
  source: 'configured' | 'detected';
  legacyRules?: number;
  nftRules?: number;
  binaries: Readonly<Record<IpFamily, IptablesBinaries>>;
}

/** Whether a program exists; the default looks it up on PATH. Tests may inject their own. */
export type BinaryExists = (name: string) => Promise<boolean>;

export const LEGACY_RULE_THRESHOLD = 10;

async function onPath(name: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (dir === '') continue;
    try {
      await access(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

function base(family: IpFamily): string {
  return family === 4 ? 'iptables' : 'ip6tables';
}

async function pickBinary(family: IpFamily, mode: IptablesMode, action: 'save' | 'restore', exists: BinaryExists): Promise<string> {
  const candidates = [`${base(family)}-${mode}-${action}`, `${base(family)}-${action}`];
  for (const candidate of candidates) {
    if (await exists(candidate)) return candidate;
  }
  throw new Error(`no iptables binary found: tried ${candidates.join(', ')}`);
}

/** Number of rules (lines starting with `-`) across all tables printed by a save tool; 0 if it fails. */
async function countRules(runner: CommandRunner, binary: string): Promise<number> {
  try {
    const result = await runner.run([binary]);
    if (result.code !== 0) return 0;
    let count = 0;
    for (const line of result.stdout.split('\n')) if (line.startsWith('-')) count++;
    return count;
  } catch {
    return 0;
  }
}

async function countModeRules(runner: CommandRunner, mode: IptablesMode, exists: BinaryExists): Promise<number> {
  let total = 0;
  for (const family of [6, 4] as const) {
    const binary = await pickBinary(family, mode, 'save', exists).catch(() => undefined);
    if (binary !== undefined) total += await countRules(runner, binary);
  }
  return total;
}

/** Pure decision rule, exported for tests. */
export function chooseMode(legacyRules: number, nftRules: number): IptablesMode {
  if (legacyRules >= LEGACY_RULE_THRESHOLD) return 'legacy';
  return nftRules > legacyRules ? 'nft' : 'legacy';
}

export async function selectIptablesBackend(
  runner: CommandRunner,
  setting: IptablesBackendSetting,
  exists: BinaryExists = onPath,
): Promise<IptablesBackend> {
  let mode: IptablesMode;
  let counts: { legacyRules?: number; nftRules?: number } = {};
  if (setting === 'auto') {
    const legacyRules = await countModeRules(runner, 'legacy', exists);
    const nftRules = legacyRules >= LEGACY_RULE_THRESHOLD ? undefined : await countModeRules(runner, 'nft', exists);
    mode = chooseMode(legacyRules, nftRules ?? 0);
    counts = nftRules === undefined ? { legacyRules } : { legacyRules, nftRules };
  } else {
    mode = setting;
  }
  const binariesFor = async (family: IpFamily): Promise<IptablesBinaries> => ({
    save: await pickBinary(family, mode, 'save', exists),
    restore: await pickBinary(family, mode, 'restore', exists),
  });
  return {
    mode,
    source: setting === 'auto' ? 'detected' : 'configured',
    ...counts,
    binaries: { 4: await binariesFor(4), 6: await binariesFor(6) },
  };
}
