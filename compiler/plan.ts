/**
 * Restore text, in the dialects of `ipset restore` and `ip[6]tables-restore --noflush`: the
 * building blocks the agent's writers use for the chains and sets they know to be dirty, and
 * `planFamily`, the whole-family comparison of a spec against a kernel state (dry runs, golden
 * files, tests).
 *
 * Steps, in the order the agent runs them (FamilyPlan):
 * 1. ipsetUpdates: `create` new sets then `add` their members; member deltas (`del` then
 *    `add`) for existing sets; a set whose type/family/maxelem differ is rebuilt in a scratch
 *    set and swapped in (`create` tmp, `add`…, `swap` tmp set, `destroy` tmp), so rules that
 *    reference it never see it missing or half-filled.
 * 2. iptablesUpdates per table, one transaction: `:<chain> - [0:0]` (create or flush) for every
 *    chain whose hash list differs from the kernel's, all declared before any `-A` so forward
 *    references resolve; then the chains' `-A` lines; then hook repair: when a built-in chain's
 *    first rule is not our hook, or it holds other rules with our hash comment, those rules are
 *    deleted by specification (`-D <builtin> <text as read back>`) and the hook is inserted at 1.
 * 3. iptablesDeletions per table, a second transaction (iptables-nft does not recount
 *    references inside one): `-F` every owned chain no longer wanted, then `-X` each.
 * 4. ipsetDeletions: `destroy` owned sets of this family no longer wanted (after the rules using
 *    them are gone).
 *
 * Invariants: a step with nothing to do is ''; planning a spec against its own kernelStateOf is
 * all empty (0 bytes); a change confined to one chain writes only that chain.
 */
import { ipsetPrefix, isOwnedChain, tempIpsetName } from './names.js';
import type {
  BuiltinRule,
  ChainSpec,
  FamilyPlan,
  FamilySpec,
  HookSpec,
  IpsetSpec,
  KernelFamilyState,
  KernelIpsetState,
  KernelTableState,
  TableName,
} from './types.js';

const TABLES: readonly TableName[] = ['filter', 'raw'];

/** A desired set as the planners read it (an IpsetSpec, or a writer's live view). */
export interface IpsetContent {
  readonly name: string;
  readonly family: 'inet' | 'inet6';
  readonly type: string;
  readonly maxelem: number;
  has(member: string): boolean;
  members(): Iterable<string>;
}

/** Same rule hashes in the same order (`actual` undefined: no such chain). */
export function sameHashes(desired: readonly (string | null)[], actual: readonly (string | null)[] | undefined): boolean {
  if (actual === desired) return true;
  if (actual === undefined || actual.length !== desired.length) return false;
  for (let i = 0; i < desired.length; i++) if (desired[i] !== actual[i]) return false;
  return true;
}

export function sameIpsetMetadata(desired: Pick<IpsetContent, 'type' | 'family' | 'maxelem'>, actual: KernelIpsetState): boolean {
  return desired.type === actual.type && desired.family === actual.family && desired.maxelem === actual.maxelem;
}

function createLine(name: string, set: Pick<IpsetContent, 'type' | 'family' | 'maxelem'>): string {
  return `create ${name} ${set.type} family ${set.family} maxelem ${set.maxelem}\n`;
}

/** From this many member lines for one set on, they are headed by its declaration (below). */
const DECLARE_FROM_LINES = 3;

/**
 * Member lines (`del`/`add`, each ending in a newline) for one existing set, headed by
 * `create … -exist` when there are at least DECLARE_FROM_LINES of them. The declaration is a no-op for the kernel, but `ipset
 * restore` then batches the lines that follow: member lines for a set not created in the same
 * input cost ~2.5× as much, mostly in the kernel (measured: 16 adds per set, 0.63 s → 0.28 s for
 * 2,000 sets), while for one or two lines the extra command costs more than it saves. Other
 * metadata in the kernel make the declaration fail, as drift should; only it ignores "exists".
 */
export function memberDeltaText(name: string, set: Pick<IpsetContent, 'type' | 'family' | 'maxelem'>, lines: string): string {
  let at = -1;
  for (let seen = 0; seen < DECLARE_FROM_LINES; seen++) {
    at = lines.indexOf('\n', at + 1);
    if (at < 0) return lines;
  }
  return `${createLine(name, set).slice(0, -1)} -exist\n${lines}`;
}

/**
 * One set brought from `current` to `desired` whole: created and filled, rebuilt by swap when
 * its metadata differ (`tempExists`: a scratch set left over must go first), or member deltas.
 */
export function planIpsetUpdate(desired: IpsetContent, current: KernelIpsetState | undefined, tempExists: boolean): string {
  let out = '';
  if (current === undefined) {
    out += createLine(desired.name, desired);
    for (const member of desired.members()) out += `add ${desired.name} ${member}\n`;
    return out;
  }
  if (!sameIpsetMetadata(desired, current)) {
    const temp = tempIpsetName(desired.name);
    if (tempExists) out += `destroy ${temp}\n`;
    out += createLine(temp, desired);
    for (const member of desired.members()) out += `add ${temp} ${member}\n`;
    return `${out}swap ${temp} ${desired.name}\ndestroy ${temp}\n`;
  }
  for (const member of current.members) if (!desired.has(member)) out += `del ${desired.name} ${member}\n`;
  for (const member of desired.members()) if (!current.members.has(member)) out += `add ${desired.name} ${member}\n`;
  return memberDeltaText(desired.name, desired, out);
}

/** The `-D`/`-I` lines that leave each hooked built-in with exactly our hook, first; and no stale hooks elsewhere. */
export function planHookRepair(hooks: readonly HookSpec[], builtins: ReadonlyMap<string, readonly BuiltinRule[]>): string {
  let lines = '';
  const hooked = new Set<string>();
  for (const hook of hooks) {
    hooked.add(hook.builtin);
    const rules = builtins.get(hook.builtin) ?? [];
    const ours = rules.filter((rule) => rule.hash !== null);
    if (rules[0]?.hash === hook.hash && ours.length === 1) continue;
    for (const rule of ours) lines += `-D ${hook.builtin} ${rule.rule}\n`;
    lines += `-I ${hook.builtin} 1 ${hook.rule}\n`;
  }
  for (const [builtin, rules] of [...builtins].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (hooked.has(builtin)) continue;
    for (const rule of rules) if (rule.hash !== null) lines += `-D ${builtin} ${rule.rule}\n`;
  }
  return lines;
}

/** One transaction writing `changed` chains whole, then the hook lines; '' when there is nothing. */
export function planChainUpdates(table: TableName, changed: readonly ChainSpec[], hookLines: string): string {
  if (changed.length === 0 && hookLines === '') return '';
  const parts: string[] = [`*${table}\n`];
  for (const chain of changed) parts.push(`:${chain.name} - [0:0]\n`);
  for (const chain of changed) {
    const head = `-A ${chain.name} `;
    for (const rule of chain.rules) parts.push(head, rule, '\n');
  }
  parts.push(hookLines, 'COMMIT\n');
  return parts.join('');
}

/** One transaction flushing then deleting `stale` chains; '' when there are none. */
export function planChainDeletions(table: TableName, stale: readonly string[]): string {
  if (stale.length === 0) return '';
  return `*${table}\n${stale.map((name) => `-F ${name}\n`).join('')}${stale.map((name) => `-X ${name}\n`).join('')}COMMIT\n`;
}

function contentOf(spec: IpsetSpec): IpsetContent {
  let members: Set<string> | undefined;
  return {
    name: spec.name,
    family: spec.family,
    type: spec.type,
    maxelem: spec.maxelem,
    has: (member) => (members ??= new Set(spec.members)).has(member),
    members: () => spec.members,
  };
}

function planIpsets(desired: FamilySpec, actual: KernelFamilyState): string {
  let out = '';
  for (const spec of desired.ipsets.values()) {
    out += planIpsetUpdate(contentOf(spec), actual.ipsets.get(spec.name), actual.ipsets.has(tempIpsetName(spec.name)));
  }
  return out;
}

function planIpsetDeletions(desired: FamilySpec, actual: KernelFamilyState): string {
  let out = '';
  const rebuilt = new Set<string>();
  for (const spec of desired.ipsets.values()) {
    const current = actual.ipsets.get(spec.name);
    if (current !== undefined && !sameIpsetMetadata(spec, current)) rebuilt.add(tempIpsetName(spec.name));
  }
  // Only this family's sets: a state that also lists the other family's sets never destroys them.
  const owned = ipsetPrefix(desired.family);
  for (const name of [...actual.ipsets.keys()].sort()) {
    if (name.startsWith(owned) && !desired.ipsets.has(name) && !rebuilt.has(name)) out += `destroy ${name}\n`;
  }
  return out;
}

export function planFamily(desired: FamilySpec, actual: KernelFamilyState): FamilyPlan {
  const updates = (table: TableName): string => {
    const want = desired.tables[table];
    const have = actual.tables[table];
    const changed = [...want.chains.values()].filter((chain) => !sameHashes(chain.hashes, have.chains.get(chain.name)));
    return planChainUpdates(table, changed, planHookRepair(want.hooks, have.builtins));
  };
  const deletions = (table: TableName): string =>
    planChainDeletions(table, [...actual.tables[table].chains.keys()].filter((name) => isOwnedChain(name) && !desired.tables[table].chains.has(name)).sort());
  return {
    ipsetUpdates: planIpsets(desired, actual),
    iptablesUpdates: { filter: updates('filter'), raw: updates('raw') },
    iptablesDeletions: { filter: deletions('filter'), raw: deletions('raw') },
    ipsetDeletions: planIpsetDeletions(desired, actual),
  };
}

export function emptyKernelState(): KernelFamilyState {
  const table = (): KernelTableState => ({ chains: new Map(), builtins: new Map() });
  return { tables: { filter: table(), raw: table() }, ipsets: new Map() };
}

/** What the kernel holds after the spec has been fully applied to an otherwise empty kernel. */
export function kernelStateOf(spec: FamilySpec): KernelFamilyState {
  const table = (t: FamilySpec['tables'][TableName]): KernelTableState => ({
    chains: new Map([...t.chains].map(([name, chain]) => [name, chain.hashes] as const)),
    builtins: new Map(t.hooks.map((hook) => [hook.builtin, [{ hash: hook.hash, rule: hook.rule } satisfies BuiltinRule]])),
  });
  const ipsets = new Map<string, KernelIpsetState>();
  for (const set of spec.ipsets.values()) {
    ipsets.set(set.name, { name: set.name, family: set.family, type: set.type, maxelem: set.maxelem, members: new Set(set.members) });
  }
  return { tables: { filter: table(spec.tables.filter), raw: table(spec.tables.raw) }, ipsets };
}

export function isEmptyPlan(plan: FamilyPlan): boolean {
  return (
    plan.ipsetUpdates === '' &&
    plan.ipsetDeletions === '' &&
    TABLES.every((t) => plan.iptablesUpdates[t] === '' && plan.iptablesDeletions[t] === '')
  );
}

/** The full restore text of a spec: its plan against an empty kernel (dry runs, golden files). */
export function renderFamily(spec: FamilySpec): FamilyPlan {
  return planFamily(spec, emptyKernelState());
}
