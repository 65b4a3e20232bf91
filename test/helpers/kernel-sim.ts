/**
 * A small pure simulator of the kernel for ONE IP family, speaking exactly the restore dialect
 * the compiler's plans use:
 *   ipset restore:        create [-exist] | add | del | flush | swap | destroy   (applied line
 *                         by line, like the real tool: no rollback; `create … -exist` of a set
 *                         with the same metadata is a no-op, other metadata fail)
 *   ip[6]tables-restore:  *table, `:chain - [0:0]` (create or flush), -A, -I <chain> 1, -D, -F,
 *                         -X, COMMIT   (atomic: a failing transaction changes nothing)
 * and enforcing the kernel rules that make ordering matter: a rule may only jump/goto an existing
 * chain and reference an existing ipset; a chain can only be deleted when empty and
 * unreferenced; an ipset cannot be destroyed while a rule references it; `swap` needs both sets
 * and the same type and family; adds beyond maxelem fail.
 *
 * Used by property tests (plan(b, state(a)) applied to a gives b). It is a test double for the
 * kernel, not a second implementation of the compiler: it never computes hashes, it reads them
 * back from the `cali:` comment as the agent does.
 */
import type { BuiltinRule, FamilyPlan, KernelFamilyState, KernelIpsetState, TableName } from '../../compiler/types.js';
import { HASH_COMMENT_PREFIX, isOwnedChain } from '../../compiler/names.js';

const BUILTINS: Record<TableName, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  raw: ['PREROUTING', 'OUTPUT'],
};
const STANDARD_TARGETS = new Set(['ACCEPT', 'DROP', 'RETURN', 'MARK', 'LOG', 'REJECT', 'QUEUE']);
const HASH_RE = new RegExp(`--comment "${HASH_COMMENT_PREFIX}([^"]+)"`);

interface SimIpset {
  family: 'inet' | 'inet6';
  type: string;
  maxelem: number;
  members: Set<string>;
}

type Tables = Record<TableName, Map<string, string[]>>;

export class KernelSimError extends Error {}

function cloneTables(tables: Tables): Tables {
  const copy = (t: Map<string, string[]>) => new Map([...t].map(([k, v]) => [k, [...v]] as [string, string[]]));
  return { filter: copy(tables.filter), raw: copy(tables.raw) };
}

function targetOf(rule: string): string | undefined {
  return /(?:^| )(?:--jump|--goto|-j|-g) (\S+)/.exec(rule)?.[1];
}

function setsOf(rule: string): string[] {
  return [...rule.matchAll(/--match-set (\S+)/g)].map((m) => m[1]!);
}

export class KernelSim {
  /** Runs a plan's steps in the order the reconciler does. */
  applyPlan(plan: FamilyPlan): void {
    this.applyIpset(plan.ipsetUpdates);
    this.applyIptables('filter', plan.iptablesUpdates.filter);
    this.applyIptables('raw', plan.iptablesUpdates.raw);
    this.applyIptables('filter', plan.iptablesDeletions.filter);
    this.applyIptables('raw', plan.iptablesDeletions.raw);
    this.applyIpset(plan.ipsetDeletions);
  }

  private tables: Tables = {
    filter: new Map(BUILTINS.filter.map((c) => [c, []])),
    raw: new Map(BUILTINS.raw.map((c) => [c, []])),
  };
  private readonly ipsets = new Map<string, SimIpset>();
  /** Every restore input applied, for debugging failed properties. */
  readonly log: string[] = [];

  applyIpset(input: string): void {
    this.log.push(input);
    for (const line of input.split('\n')) {
      if (line.trim() === '') continue;
      const [command, name, ...args] = line.trim().split(/\s+/);
      const fail = (why: string): never => {
        throw new KernelSimError(`ipset: ${line}: ${why}`);
      };
      if (name === undefined) fail('missing set name');
      const set = this.ipsets.get(name!);
      switch (command) {
        case 'create': {
          const [type, familyWord, family, maxelemWord, maxelem, exist] = args;
          if (familyWord !== 'family' || maxelemWord !== 'maxelem' || type === undefined || (exist !== undefined && exist !== '-exist')) fail('bad create');
          if (set && exist !== undefined && set.type === type && set.family === family && set.maxelem === Number(maxelem)) break;
          if (set) fail('set already exists');
          this.ipsets.set(name!, {
            type: type!,
            family: family as 'inet' | 'inet6',
            maxelem: Number(maxelem),
            members: new Set(),
          });
          break;
        }
        case 'add':
          if (!set) fail('no such set');
          if (set!.members.has(args[0]!)) fail('already added');
          if (set!.members.size >= set!.maxelem) fail('set is full');
          set!.members.add(args[0]!);
          break;
        case 'del':
          if (!set) fail('no such set');
          if (!set!.members.delete(args[0]!)) fail('not in set');
          break;
        case 'flush':
          if (!set) fail('no such set');
          set!.members.clear();
          break;
        case 'swap': {
          const other = this.ipsets.get(args[0]!);
          if (!set || !other) fail('no such set');
          if (set!.type !== other!.type || set!.family !== other!.family) fail('incompatible sets');
          this.ipsets.set(name!, other!);
          this.ipsets.set(args[0]!, set!);
          break;
        }
        case 'destroy':
          if (!set) fail('no such set');
          if (this.setInUse(name!)) fail('set in use by a rule');
          this.ipsets.delete(name!);
          break;
        default:
          fail('unknown command');
      }
    }
  }

  private setInUse(name: string): boolean {
    for (const table of Object.values(this.tables)) {
      for (const rules of table.values()) if (rules.some((rule) => setsOf(rule).includes(name))) return true;
    }
    return false;
  }

  applyIptables(table: TableName, input: string): void {
    this.log.push(input);
    const work = cloneTables(this.tables);
    const chains = work[table];
    let inTable = false;
    for (const line of input.split('\n')) {
      if (line === '') continue;
      const fail = (why: string): never => {
        throw new KernelSimError(`${table}: ${line}: ${why}`);
      };
      if (line.startsWith('*')) {
        if (line !== `*${table}`) fail('wrong table');
        inTable = true;
        continue;
      }
      if (!inTable) fail('outside a table');
      if (line === 'COMMIT') {
        this.tables = work;
        inTable = false;
        continue;
      }
      if (line.startsWith(':')) {
        const name = line.slice(1).split(' ')[0]!;
        if (BUILTINS[table].includes(name)) fail('cannot redeclare a built-in chain');
        chains.set(name, []);
        continue;
      }
      const m = /^(-A|-I|-D|-F|-X) (\S+)(?: (.*))?$/.exec(line);
      if (!m) fail('unparsed line');
      const [, op, chain, rest = ''] = m!;
      const rules = chains.get(chain!);
      if (!rules) fail('no such chain');
      const checkRule = (rule: string): void => {
        const target = targetOf(rule);
        if (target === undefined) fail('rule without target');
        if (!STANDARD_TARGETS.has(target!) && !chains.has(target!)) fail(`unknown chain ${target}`);
        for (const set of setsOf(rule)) if (!this.ipsets.has(set)) fail(`unknown ipset ${set}`);
      };
      switch (op) {
        case '-A':
          checkRule(rest);
          rules!.push(rest);
          break;
        case '-I': {
          const [position, ...ruleParts] = rest.split(' ');
          if (position !== '1') fail('only -I <chain> 1 is used');
          checkRule(ruleParts.join(' '));
          rules!.unshift(ruleParts.join(' '));
          break;
        }
        case '-D': {
          const index = rules!.indexOf(rest);
          if (index < 0) fail('no such rule');
          rules!.splice(index, 1);
          break;
        }
        case '-F':
          rules!.length = 0;
          break;
        case '-X':
          if (BUILTINS[table].includes(chain!)) fail('cannot delete a built-in chain');
          if (rules!.length > 0) fail('chain not empty');
          for (const other of chains.values()) if (other.some((rule) => targetOf(rule) === chain)) fail('chain in use');
          chains.delete(chain!);
          break;
      }
    }
    if (inTable) throw new KernelSimError(`${table}: input ended without COMMIT`);
  }

  /** Adds a rule we do not own (e.g. another tool's) to a chain, bypassing restore. */
  appendForeign(table: TableName, chain: string, rule: string): void {
    const rules = this.tables[table].get(chain);
    if (!rules) throw new KernelSimError(`no chain ${chain}`);
    rules.push(rule);
  }

  /** Kernel state as the agent reads it back: our chains' hashes, built-in chains, our ipsets. */
  state(): KernelFamilyState {
    const table = (t: TableName) => {
      const chains = new Map<string, (string | null)[]>();
      const builtins = new Map<string, BuiltinRule[]>();
      for (const [name, rules] of this.tables[t]) {
        if (BUILTINS[t].includes(name)) {
          builtins.set(name, rules.map((rule) => ({ hash: HASH_RE.exec(rule)?.[1] ?? null, rule })));
        } else if (isOwnedChain(name)) {
          chains.set(name, rules.map((rule) => HASH_RE.exec(rule)?.[1] ?? null));
        }
      }
      return { chains, builtins };
    };
    const ipsets = new Map<string, KernelIpsetState>();
    for (const [name, set] of this.ipsets) ipsets.set(name, { name, ...set, members: new Set(set.members) });
    return { tables: { filter: table('filter'), raw: table('raw') }, ipsets };
  }
}

/**
 * A KernelFamilyState as plain sorted JSON-able data, for equality checks. Built-in chains with
 * no rules are dropped (an empty chain and an absent entry mean the same).
 */
export function normaliseState(state: KernelFamilyState): unknown {
  const table = (t: KernelFamilyState['tables'][TableName]) => ({
    chains: [...t.chains].sort(([a], [b]) => (a < b ? -1 : 1)),
    builtins: [...t.builtins].filter(([, rules]) => rules.length > 0).sort(([a], [b]) => (a < b ? -1 : 1)),
  });
  return {
    filter: table(state.tables.filter),
    raw: table(state.tables.raw),
    ipsets: [...state.ipsets.values()]
      .map((s) => ({ ...s, members: [...s.members].sort() }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}
