/**
 * Chooses the iptables backend (legacy or nft) and the binaries for each IP family.
 *
 * `auto` (after Felix and Kubernetes' iptables-wrapper, docker-deploy.md §4.5), first rule that
 * decides wins:
 *   1. kube-proxy/kubelet canary chains (`KUBE-IPTABLES-HINT`, `KUBE-KUBELET-CANARY`) in one
 *      variant's tables: that variant (nft checked first, as the wrapper does);
 *   2. the variant whose save tools print more rules (`-` lines, both families);
 *   3. a tie (an empty host): the variant the host's own `iptables` command is (its `--version`
 *      says `nf_tables` or `legacy`; Debian 12's is nft); legacy if that cannot be told.
 * The legacy tables are read first. When they hold neither rules nor a canary and the host's
 * `iptables` is nft, every rule above gives nft, so the nft tables are not read at all
 * (`legacy-empty`): a full nft save is the costly read (a warm restart at the bench's scale S read
 * 33k rules per family for 1.3–2.7 s per family, beside the agent's list).
 * The result says which rule decided (`reason`), and the agent logs it.
 *
 * A configured `legacy`/`nft` is strict: it needs `ip[6]tables-<mode>-<save|restore>`, or plain
 * `ip[6]tables-<save|restore>` whose `--version` names that variant. Anything else rejects with
 * an IptablesBackendError (a configuration error: the agent exits 2), never silently programming
 * the other variant.
 *
 * Detection only reads (save tools, `--version`), through the runner, so it sees the dataplane
 * namespace.
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

/** Which rule of the header decided an `auto` choice (`legacy-empty`: nft by every rule, the nft tables unread). */
export type DetectionReason = 'kube-canary' | 'more-rules' | 'host-default' | 'legacy-empty';

export interface IptablesBackend {
  mode: IptablesMode;
  source: 'configured' | 'detected';
  /** Set when detected. */
  reason?: DetectionReason;
  legacyRules?: number;
  /** Unset when the nft tables were not read (`legacy-empty`). */
  nftRules?: number;
  binaries: Readonly<Record<IpFamily, IptablesBinaries>>;
}

/** The backend cannot be used as configured (or no iptables at all): a configuration error. */
export class IptablesBackendError extends Error {
  override readonly name = 'IptablesBackendError';
  readonly exitCode = 2;
}

/** Whether a program exists; the default looks it up on PATH. Tests may inject their own. */
export type BinaryExists = (name: string) => Promise<boolean>;

const CANARY_CHAINS = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;

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

/** The variant a binary reports in `--version` (`… (nf_tables)` or `… (legacy)`), if any. */
async function variantOf(runner: CommandRunner, binary: string): Promise<IptablesMode | undefined> {
  try {
    const result = await runner.run([binary, '--version']);
    const text = result.stdout + result.stderr;
    if (result.code !== 0) return undefined;
    if (text.includes('(nf_tables)')) return 'nft';
    if (text.includes('(legacy)')) return 'legacy';
  } catch {
    // not runnable: unknown variant
  }
  return undefined;
}

async function pickBinary(
  runner: CommandRunner,
  family: IpFamily,
  mode: IptablesMode,
  action: 'save' | 'restore',
  exists: BinaryExists,
): Promise<string> {
  const variant = `${base(family)}-${mode}-${action}`;
  if (await exists(variant)) return variant;
  const plain = `${base(family)}-${action}`;
  if ((await exists(plain)) && (await variantOf(runner, plain)) === mode) return plain;
  throw new IptablesBackendError(
    `iptables backend ${mode} is not installed: no ${variant}, and ${plain} is ${(await exists(plain)) ? 'another variant' : 'missing too'}`,
  );
}

interface VariantScan {
  rules: number;
  canary: boolean;
}

/** Rules (lines starting with `-`) of every table, and whether a kube canary chain exists, in one variant. */
async function scanVariant(runner: CommandRunner, mode: IptablesMode, exists: BinaryExists): Promise<VariantScan> {
  const scan: VariantScan = { rules: 0, canary: false };
  for (const family of [6, 4] as const) {
    const binary = `${base(family)}-${mode}-save`;
    if (!(await exists(binary))) continue;
    try {
      const result = await runner.run([binary]);
      if (result.code !== 0) continue;
      for (const line of result.stdout.split('\n')) if (line.startsWith('-')) scan.rules++;
      scan.canary ||= CANARY_CHAINS.test(result.stdout);
    } catch {
      // unreadable: counts as empty
    }
  }
  return scan;
}

/** The variant the host's own `iptables` command is, if it has one that says. */
async function hostVariant(runner: CommandRunner, exists: BinaryExists): Promise<IptablesMode | undefined> {
  return (await exists('iptables')) ? variantOf(runner, 'iptables') : undefined;
}

/** Pure decision rule of `auto` (see the header), exported for tests. */
export function chooseMode(
  legacy: VariantScan,
  nft: VariantScan,
  hostDefault: IptablesMode | undefined,
): { mode: IptablesMode; reason: DetectionReason } {
  if (nft.canary) return { mode: 'nft', reason: 'kube-canary' };
  if (legacy.canary) return { mode: 'legacy', reason: 'kube-canary' };
  if (nft.rules !== legacy.rules) return { mode: nft.rules > legacy.rules ? 'nft' : 'legacy', reason: 'more-rules' };
  return { mode: hostDefault ?? 'legacy', reason: 'host-default' };
}

export async function selectIptablesBackend(
  runner: CommandRunner,
  setting: IptablesBackendSetting,
  exists: BinaryExists = onPath,
): Promise<IptablesBackend> {
  let mode: IptablesMode;
  let detection: Pick<IptablesBackend, 'reason' | 'legacyRules' | 'nftRules'> = {};
  if (setting === 'auto') {
    const [legacy, hostDefault] = await Promise.all([scanVariant(runner, 'legacy', exists), hostVariant(runner, exists)]);
    if (!legacy.canary && legacy.rules === 0 && hostDefault === 'nft') {
      mode = 'nft';
      detection = { reason: 'legacy-empty', legacyRules: 0 };
    } else {
      const nft = await scanVariant(runner, 'nft', exists);
      const choice = chooseMode(legacy, nft, hostDefault);
      mode = choice.mode;
      detection = { reason: choice.reason, legacyRules: legacy.rules, nftRules: nft.rules };
    }
  } else {
    mode = setting;
  }
  const binariesFor = async (family: IpFamily): Promise<IptablesBinaries> => ({
    save: await pickBinary(runner, family, mode, 'save', exists),
    restore: await pickBinary(runner, family, mode, 'restore', exists),
  });
  return {
    mode,
    source: setting === 'auto' ? 'detected' : 'configured',
    ...detection,
    binaries: { 4: await binariesFor(4), 6: await binariesFor(6) },
  };
}
