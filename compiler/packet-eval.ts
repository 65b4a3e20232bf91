/**
 * Walks one packet through the chains and sets of a compiled FamilySpec, as the kernel would:
 * the raw table's PREROUTING hooks, then the filter table's FORWARD hooks (the path of traffic
 * that a host forwards to or from its workloads). Pure; used by `calicoctl policy trace`.
 *
 * Semantics modelled (iptables): rules in order, every match of a rule must hold; `--jump` to a
 * chain returns to the next rule, `--goto` returns to the caller's caller; RETURN or the end of a
 * chain returns; ACCEPT and DROP end the table; MARK sets bits of the packet mark and continues.
 * Our hooks sit at position 1 of their built-in chains, so a packet our chains return from meets
 * whatever else the host has there: the walk reports that as `returned`, not as a verdict.
 *
 * Invariant: the evaluator understands exactly the options the compiler emits. Any other option
 * throws UnsupportedRuleError naming it and the rule, so a compiler change that the evaluator
 * does not follow fails loudly (tests compile random policies and walk every rule) instead of
 * tracing a packet through a rule it misreads.
 */
import { cidrContains, PROTOCOL_NUMBERS, type IpVersion } from '../src/model/index.js';
import { HASH_COMMENT_PREFIX } from './names.js';
import type { ChainSpec, FamilySpec, HookSpec, TableName } from './types.js';

/** A packet of a new connection (conntrack state NEW) entering a host. */
export interface TracedPacket {
  family: IpVersion;
  source: string;
  destination: string;
  /** IP protocol number; undefined for a protocol that no rule names. */
  protocol: number | undefined;
  sourcePort?: number;
  destinationPort?: number;
  icmpType?: number;
  icmpCode?: number;
}

/** Where the packet is on the host: its interfaces and what the kernel knows about its source. */
export interface Hop {
  inInterface: string;
  outInterface: string;
  /** Source MAC on the incoming interface (lower-case colon form), when known. */
  sourceMac?: string;
  /** Whether the kernel's reverse-path check passes (a route back to the source via inInterface). */
  reversePathOk: boolean;
}

/** One rule that matched during the walk. */
export interface WalkStep {
  table: TableName;
  chain: string;
  /** 0-based position in the chain. */
  index: number;
  rule: string;
  /** The target as written: `ACCEPT`, `DROP`, `RETURN`, `MARK`, or a chain name. */
  target: string;
  /** The rule's own comment (not the hash comment), if any. */
  comment?: string;
  /** `end` marks a chain left because no rule ended it (recorded with index = chain length). */
  kind: 'jump' | 'goto' | 'accept' | 'drop' | 'return' | 'mark' | 'end';
}

export interface WalkResult {
  /** accept/drop: a rule of ours decided; returned: our chains let it through to the host's own rules. */
  outcome: 'accept' | 'drop' | 'returned';
  steps: WalkStep[];
}

export class UnsupportedRuleError extends Error {
  constructor(
    readonly chain: string,
    readonly rule: string,
    detail: string,
  ) {
    super(`policy trace cannot evaluate rule of ${chain} (${detail}): ${rule}`);
    this.name = 'UnsupportedRuleError';
  }
}

type Predicate = (packet: TracedPacket, hop: Hop, mark: number) => boolean;
type Target =
  | { kind: 'accept' | 'drop' | 'return'; name: string }
  | { kind: 'mark'; name: 'MARK'; value: number; mask: number }
  | { kind: 'jump' | 'goto'; name: string };

interface ParsedRule {
  text: string;
  predicates: Predicate[];
  target: Target;
  comment?: string;
}

const HASH_COMMENT = new RegExp(`^${HASH_COMMENT_PREFIX}[0-9a-f]+$`);

/** An iptables protocol argument (name or number) as a number; undefined if unknown. */
export function protocolNumber(text: string): number | undefined {
  if (/^\d{1,3}$/.test(text) && Number(text) <= 255) return Number(text);
  const number = Object.keys(PROTOCOL_NUMBERS).find((key) => PROTOCOL_NUMBERS[key] === text);
  return number === undefined ? undefined : Number(number);
}

/** The module options the compiler emits (`module:option`); anything else is a global option. */
const MODULE_OPTIONS = new Set([
  'comment:--comment',
  'conntrack:--ctstate',
  'tcp:--source-port',
  'tcp:--destination-port',
  'udp:--source-port',
  'udp:--destination-port',
  'multiport:--source-ports',
  'multiport:--destination-ports',
  'set:--match-set',
  'icmp:--icmp-type',
  'icmp6:--icmpv6-type',
  'mark:--mark',
  'mac:--mac-source',
  'rpfilter:--invert',
  'MARK:--set-mark',
]);

function tokenize(rule: string): string[] {
  const tokens: string[] = [];
  for (const match of rule.matchAll(/"([^"]*)"|(\S+)/g)) tokens.push(match[1] ?? match[2]!);
  return tokens;
}

function interfaceMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

function portInList(list: string, port: number | undefined): boolean {
  if (port === undefined) return false;
  return list.split(',').some((item) => {
    const [low, high] = item.split(':');
    return high === undefined ? Number(low) === port : port >= Number(low) && port <= Number(high);
  });
}

function icmpMatches(spec: string, packet: TracedPacket): boolean {
  const [type, code] = spec.split('/');
  if (packet.icmpType !== Number(type)) return false;
  return code === undefined || packet.icmpCode === Number(code);
}

function parseMark(text: string): { value: number; mask: number } {
  const [value, mask] = text.split('/');
  return { value: Number(value), mask: mask === undefined ? 0xffffffff : Number(mask) };
}

/**
 * Parses one rule body (as in a ChainSpec: hash comment included, no `-A <chain>`) into
 * predicates and a target. `setHas(name, address)` answers set membership.
 */
export function parseRule(chain: string, text: string, setHas: (set: string, address: string) => boolean): ParsedRule {
  const tokens = tokenize(text);
  const predicates: Predicate[] = [];
  let target: Target | undefined;
  let module = '';
  let comment: string | undefined;
  let negate = false;
  let i = 0;
  const unsupported = (detail: string): never => {
    throw new UnsupportedRuleError(chain, text, detail);
  };
  const next = (): string => tokens[i++] ?? unsupported('an option without its value');
  const add = (predicate: Predicate): void => {
    const negated = negate;
    predicates.push(negated ? (p, h, m) => !predicate(p, h, m) : predicate);
  };
  while (i < tokens.length) {
    const token = next();
    if (token === '!') {
      negate = true;
      continue;
    }
    // An option the current module does not have is a global one, as iptables reads it.
    const option = token === '-m' ? '--match' : MODULE_OPTIONS.has(`${module}${token}`) ? `${module}${token}` : token;
    switch (option) {
      case '--match':
        module = `${next()}:`;
        break;
      case 'comment:--comment': {
        const value = next();
        if (!HASH_COMMENT.test(value)) comment = value;
        break;
      }
      case '--in-interface': {
        const pattern = next();
        add((_p, hop) => interfaceMatches(pattern, hop.inInterface));
        break;
      }
      case '--out-interface': {
        const pattern = next();
        add((_p, hop) => interfaceMatches(pattern, hop.outInterface));
        break;
      }
      case '--protocol': {
        const name = next();
        const number = protocolNumber(name) ?? unsupported(`protocol ${name}`);
        add((p) => p.protocol === number);
        break;
      }
      case '--source': {
        const net = next();
        add((p) => cidrContains(net, p.source));
        break;
      }
      case '--destination': {
        const net = next();
        add((p) => cidrContains(net, p.destination));
        break;
      }
      case 'conntrack:--ctstate': {
        const states = next().split(',');
        add(() => states.includes('NEW'));
        break;
      }
      case 'tcp:--source-port':
      case 'udp:--source-port':
      case 'multiport:--source-ports': {
        const list = next();
        add((p) => portInList(list, p.sourcePort));
        break;
      }
      case 'tcp:--destination-port':
      case 'udp:--destination-port':
      case 'multiport:--destination-ports': {
        const list = next();
        add((p) => portInList(list, p.destinationPort));
        break;
      }
      case 'set:--match-set': {
        const set = next();
        const direction = next();
        if (direction !== 'src' && direction !== 'dst') unsupported(`set direction ${direction}`);
        add((p) => setHas(set, direction === 'src' ? p.source : p.destination));
        break;
      }
      case 'icmp:--icmp-type':
      case 'icmp6:--icmpv6-type': {
        const spec = next();
        add((p) => icmpMatches(spec, p));
        break;
      }
      case 'mark:--mark': {
        const { value, mask } = parseMark(next());
        add((_p, _h, mark) => (mark & mask) >>> 0 === value);
        break;
      }
      case 'mac:--mac-source': {
        const mac = next().toLowerCase();
        add((_p, hop) => hop.sourceMac === mac);
        break;
      }
      case 'rpfilter:--invert':
        add((_p, hop) => !hop.reversePathOk);
        break;
      case '--jump':
      case '--goto': {
        const name = next();
        module = name === 'MARK' ? 'MARK:' : '';
        if (name === 'ACCEPT' || name === 'DROP' || name === 'RETURN') target = { kind: name === 'ACCEPT' ? 'accept' : name === 'DROP' ? 'drop' : 'return', name };
        else if (name === 'MARK') target = { kind: 'mark', name, value: 0, mask: 0 };
        else target = { kind: token === '--goto' ? 'goto' : 'jump', name };
        if (token === '--goto' && target.kind !== 'goto') unsupported(`--goto ${name}`);
        break;
      }
      case 'MARK:--set-mark': {
        if (target?.kind !== 'mark') return unsupported('--set-mark without MARK');
        Object.assign(target, parseMark(next()));
        break;
      }
      default:
        unsupported(`option ${negate ? '! ' : ''}${token}${module ? ` of module ${module.slice(0, -1)}` : ''}`);
    }
    if (option !== '--match') negate = false;
  }
  if (negate) unsupported('a trailing !');
  if (target === undefined) unsupported('no target');
  return { text, predicates, target: target!, ...(comment !== undefined ? { comment } : {}) };
}

/** Parses every rule of a family once and walks packets through them. */
export class PacketWalker {
  private readonly parsed = new Map<string, ParsedRule[]>();
  private readonly sets = new Map<string, readonly string[]>();

  constructor(private readonly spec: FamilySpec) {
    for (const [name, set] of spec.ipsets) this.sets.set(name, set.members);
  }

  /** The raw PREROUTING hooks, then (if not dropped) the filter FORWARD hooks. */
  walkForward(packet: TracedPacket, hop: Hop): WalkResult {
    const steps: WalkStep[] = [];
    const raw = this.walkHooks('raw', 'PREROUTING', packet, hop, steps);
    if (raw === 'drop') return { outcome: 'drop', steps };
    return { outcome: this.walkHooks('filter', 'FORWARD', packet, hop, steps), steps };
  }

  /** Parses every rule of every chain (throws UnsupportedRuleError on the first it cannot read). */
  checkAll(): void {
    for (const table of ['filter', 'raw'] as const) {
      for (const name of this.spec.tables[table].chains.keys()) this.rules(table, name);
      for (const hook of this.spec.tables[table].hooks) this.hookRule(hook);
    }
  }

  private walkHooks(table: TableName, builtin: HookSpec['builtin'], packet: TracedPacket, hop: Hop, steps: WalkStep[]): WalkResult['outcome'] {
    const hooks = this.spec.tables[table].hooks.filter((hook) => hook.builtin === builtin);
    const state = { mark: 0 };
    for (const [index, hook] of hooks.entries()) {
      const result = this.applyRule(table, builtin, index, this.hookRule(hook), packet, hop, state, steps, 0);
      if (result === 'accept' || result === 'drop') return result;
    }
    return 'returned';
  }

  private hookRule(hook: HookSpec): ParsedRule {
    return parseRule(hook.builtin, hook.rule, this.setHas);
  }

  private rules(table: TableName, chain: string): ParsedRule[] {
    const key = `${table}\u0000${chain}`;
    let parsed = this.parsed.get(key);
    if (parsed === undefined) {
      const spec: ChainSpec | undefined = this.spec.tables[table].chains.get(chain);
      if (spec === undefined) throw new UnsupportedRuleError(chain, '', 'a jump to a chain that is not compiled');
      parsed = spec.rules.map((rule) => parseRule(chain, rule, this.setHas));
      this.parsed.set(key, parsed);
    }
    return parsed;
  }

  private readonly setHas = (set: string, address: string): boolean =>
    (this.sets.get(set) ?? []).some((member) => cidrContains(member, address));

  /** Runs `chain`; 'return' when the packet leaves it without a verdict. */
  private walkChain(table: TableName, chain: string, packet: TracedPacket, hop: Hop, state: { mark: number }, steps: WalkStep[], depth: number): 'accept' | 'drop' | 'return' {
    if (depth > 64) throw new UnsupportedRuleError(chain, '', 'chains nested deeper than 64 (a loop?)');
    const rules = this.rules(table, chain);
    for (const [index, rule] of rules.entries()) {
      const result = this.applyRule(table, chain, index, rule, packet, hop, state, steps, depth);
      if (result !== 'continue') return result;
    }
    steps.push({ table, chain, index: rules.length, rule: '', target: 'RETURN', kind: 'end' });
    return 'return';
  }

  private applyRule(
    table: TableName,
    chain: string,
    index: number,
    rule: ParsedRule,
    packet: TracedPacket,
    hop: Hop,
    state: { mark: number },
    steps: WalkStep[],
    depth: number,
  ): 'accept' | 'drop' | 'return' | 'continue' {
    if (!rule.predicates.every((predicate) => predicate(packet, hop, state.mark))) return 'continue';
    const { target } = rule;
    steps.push({ table, chain, index, rule: rule.text, target: target.name, kind: target.kind, ...(rule.comment !== undefined ? { comment: rule.comment } : {}) });
    switch (target.kind) {
      case 'accept':
      case 'drop':
      case 'return':
        return target.kind;
      case 'mark':
        state.mark = ((state.mark & ~target.mask) ^ target.value) >>> 0;
        return 'continue';
      case 'jump': {
        const result = this.walkChain(table, target.name, packet, hop, state, steps, depth + 1);
        return result === 'return' ? 'continue' : result;
      }
      case 'goto':
        return this.walkChain(table, target.name, packet, hop, state, steps, depth + 1);
    }
  }
}
