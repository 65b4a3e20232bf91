/**
 * Minimal writes from the kernel's state to the desired spec, for one IP family, in the restore
 * dialects of `ipset restore` and `ip[6]tables-restore --noflush`.
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
 * all empty (0 bytes); a change confined to one chain writes only that chain. Unchanged chains
 * are detected by hash lists (identity first, so a no-op plan costs no string comparisons).
 *
 * Cost: when `actual` came from `kernelStateOf(earlier)` (the agent caches that after a write)
 * and the desired map is that earlier spec's map, or a copy of it with some entries replaced
 * (map-lineage.ts), only those entries are compared: every other entry of the state holds
 * exactly what the desired map holds. Any other state (read back from the kernel, edited) is
 * compared entry by entry. Either way the plan text is the same.
 */
import { lineageOf, originOf, recordOrigin } from './map-lineage.js';
import { ipsetPrefix, isOwnedChain, tempIpsetName } from './names.js';
import type {
  BuiltinRule,
  ChainSpec,
  FamilyPlan,
  FamilySpec,
  IpsetSpec,
  KernelFamilyState,
  KernelIpsetState,
  KernelTableState,
  TableName,
  TableSpec,
} from './types.js';

const TABLES: readonly TableName[] = ['filter', 'raw'];

/**
 * The keys of `desired` that may differ from `actual`, in `desired`'s order: all of them unless
 * `actual` was produced from `desired` (none) or from the map `desired` was patched from (the
 * patched keys). Never a key of `actual` missing from `desired` in the latter two cases.
 */
function keysToCompare<T>(desired: ReadonlyMap<string, T>, actual: ReadonlyMap<string, unknown>): Iterable<string> {
  const origin = originOf(actual);
  if (origin !== undefined) {
    if (origin === desired) return [];
    const lineage = lineageOf(desired);
    if (lineage !== undefined && lineage.base === origin) return lineage.changed;
  }
  return desired.keys();
}

/** True when `actual` holds no key that `desired` lacks, known without looking at the keys. */
function knownSameKeys(desired: ReadonlyMap<string, unknown>, actual: ReadonlyMap<string, unknown>): boolean {
  const origin = originOf(actual);
  return origin !== undefined && (origin === desired || lineageOf(desired)?.base === origin);
}

function sameHashes(desired: readonly string[], actual: readonly (string | null)[] | undefined): boolean {
  if (actual === desired) return true;
  if (actual === undefined || actual.length !== desired.length) return false;
  for (let i = 0; i < desired.length; i++) if (desired[i] !== actual[i]) return false;
  return true;
}

function sameMetadata(desired: IpsetSpec, actual: KernelIpsetState): boolean {
  return desired.type === actual.type && desired.family === actual.family && desired.maxelem === actual.maxelem;
}

function createLine(name: string, spec: IpsetSpec): string {
  return `create ${name} ${spec.type} family ${spec.family} maxelem ${spec.maxelem}\n`;
}

/** The kernel states this module produced, so a plan against them can skip member comparison. */
const producedIpsetStates = new WeakMap<IpsetSpec, KernelIpsetState>();

function planIpsets(desired: FamilySpec, actual: KernelFamilyState): string {
  let out = '';
  for (const name of keysToCompare(desired.ipsets, actual.ipsets)) {
    const spec = desired.ipsets.get(name)!;
    const current = actual.ipsets.get(spec.name);
    if (current === undefined) {
      out += createLine(spec.name, spec);
      for (const member of spec.members) out += `add ${spec.name} ${member}\n`;
      continue;
    }
    if (producedIpsetStates.get(spec) === current) continue;
    if (!sameMetadata(spec, current)) {
      const temp = tempIpsetName(spec.name);
      if (actual.ipsets.has(temp)) out += `destroy ${temp}\n`;
      out += createLine(temp, spec);
      for (const member of spec.members) out += `add ${temp} ${member}\n`;
      out += `swap ${temp} ${spec.name}\ndestroy ${temp}\n`;
      continue;
    }
    const wanted = new Set(spec.members);
    for (const member of current.members) if (!wanted.has(member)) out += `del ${spec.name} ${member}\n`;
    for (const member of spec.members) if (!current.members.has(member)) out += `add ${spec.name} ${member}\n`;
  }
  return out;
}

function planIpsetDeletions(desired: FamilySpec, actual: KernelFamilyState): string {
  if (knownSameKeys(desired.ipsets, actual.ipsets)) return '';
  let out = '';
  const rebuilt = new Set<string>();
  for (const spec of desired.ipsets.values()) {
    const current = actual.ipsets.get(spec.name);
    if (current !== undefined && producedIpsetStates.get(spec) !== current && !sameMetadata(spec, current)) {
      rebuilt.add(tempIpsetName(spec.name));
    }
  }
  // Only this family's sets: a state that also lists the other family's sets never destroys them.
  const owned = ipsetPrefix(desired.family);
  for (const name of [...actual.ipsets.keys()].sort()) {
    if (name.startsWith(owned) && !desired.ipsets.has(name) && !rebuilt.has(name)) out += `destroy ${name}\n`;
  }
  return out;
}

function planTableUpdates(table: TableName, desired: TableSpec, actual: KernelTableState): string {
  const changed: ChainSpec[] = [];
  for (const name of keysToCompare(desired.chains, actual.chains)) {
    const chain = desired.chains.get(name)!;
    if (!sameHashes(chain.hashes, actual.chains.get(name))) changed.push(chain);
  }
  let hookLines = '';
  const hooked = new Set<string>();
  for (const hook of desired.hooks) {
    hooked.add(hook.builtin);
    const rules = actual.builtins.get(hook.builtin) ?? [];
    const ours = rules.filter((rule) => rule.hash !== null);
    if (rules[0]?.hash === hook.hash && ours.length === 1) continue;
    for (const rule of ours) hookLines += `-D ${hook.builtin} ${rule.rule}\n`;
    hookLines += `-I ${hook.builtin} 1 ${hook.rule}\n`;
  }
  for (const [builtin, rules] of [...actual.builtins].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (hooked.has(builtin)) continue;
    for (const rule of rules) if (rule.hash !== null) hookLines += `-D ${builtin} ${rule.rule}\n`;
  }
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

function planTableDeletions(table: TableName, desired: TableSpec, actual: KernelTableState): string {
  if (knownSameKeys(desired.chains, actual.chains)) return '';
  const stale = [...actual.chains.keys()].filter((name) => isOwnedChain(name) && !desired.chains.has(name)).sort();
  if (stale.length === 0) return '';
  return `*${table}\n${stale.map((name) => `-F ${name}\n`).join('')}${stale.map((name) => `-X ${name}\n`).join('')}COMMIT\n`;
}

export function planFamily(desired: FamilySpec, actual: KernelFamilyState): FamilyPlan {
  return {
    ipsetUpdates: planIpsets(desired, actual),
    iptablesUpdates: {
      filter: planTableUpdates('filter', desired.tables.filter, actual.tables.filter),
      raw: planTableUpdates('raw', desired.tables.raw, actual.tables.raw),
    },
    iptablesDeletions: {
      filter: planTableDeletions('filter', desired.tables.filter, actual.tables.filter),
      raw: planTableDeletions('raw', desired.tables.raw, actual.tables.raw),
    },
    ipsetDeletions: planIpsetDeletions(desired, actual),
  };
}

export function emptyKernelState(): KernelFamilyState {
  const table = (): KernelTableState => ({ chains: new Map(), builtins: new Map() });
  return { tables: { filter: table(), raw: table() }, ipsets: new Map() };
}

/**
 * What the kernel holds after the spec has been fully applied to an otherwise empty kernel. The
 * result's maps must not be mutated (planFamily relies on their recorded origin).
 */
export function kernelStateOf(spec: FamilySpec): KernelFamilyState {
  const table = (t: TableSpec): KernelTableState => {
    const chains = new Map<string, readonly string[]>();
    for (const [name, chain] of t.chains) chains.set(name, chain.hashes);
    recordOrigin(chains, t.chains);
    return {
      chains,
      builtins: new Map(
        t.hooks.map((hook) => [hook.builtin, [{ hash: hook.hash, rule: hook.rule } satisfies BuiltinRule]]),
      ),
    };
  };
  const ipsets = new Map<string, KernelIpsetState>();
  for (const set of spec.ipsets.values()) {
    let state = producedIpsetStates.get(set);
    if (state === undefined) {
      state = { name: set.name, family: set.family, type: set.type, maxelem: set.maxelem, members: new Set(set.members) };
      producedIpsetStates.set(set, state);
    }
    ipsets.set(set.name, state);
  }
  recordOrigin(ipsets, spec.ipsets);
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
