/**
 * The rule grammar of `calicoctl profile <P> rule add|remove`: parsing the words after the
 * direction into a RuleSpec, calicoctl's argument checks (exact messages, reference §4.2), and
 * building the stored Rule.
 *
 *   (allow|deny) [ (tcp|udp) [from [ports P] [tag T] [cidr C]] [to [ports P] [tag T] [cidr C]]
 *                | (icmp|icmpv6) [type N [code N]] [from [tag T] [cidr C]] [to [tag T] [cidr C]]
 *                | [from [tag T] [cidr C]] [to [tag T] [cidr C]] ]
 *
 * Leniencies beyond docopt: the criteria inside `from`/`to` may come in any order, and a bare
 * CIDR after `from`/`to` means `cidr` (the seed's own example `allow from 192.168.0.0/16`).
 * Invariant: `buildRule` only returns rules that pass the model's `ruleSchema`.
 */
import {
  canonicalCidr,
  cidrVersion,
  formatIssues,
  ID_PATTERN,
  ruleSchema,
  type Port,
  type Rule,
} from '../model/index.js';
import { CliError, UsageError, wrapParagraph } from './cli-context.js';
import { calicoctlRuleOrder, RULE_ADD_LOCALS_ORDER, withMemberOrder } from './python-dict-order.js';

export interface Endpoints {
  ports?: string;
  tag?: string;
  cidr?: string;
}

export interface RuleSpec {
  action: 'allow' | 'deny';
  protocol?: 'tcp' | 'udp' | 'icmp' | 'icmpv6';
  icmpType?: string;
  icmpCode?: string;
  from: Endpoints;
  to: Endpoints;
}

export const PROFILE_NAME_MESSAGE =
  'Profile names must be < 40 character long and can only contain numbers, letters, dots, dashes and underscores.';
export const TAG_NAME_MESSAGE = 'Tags names can only contain numbers, letters, dots, dashes and underscores.';
export const CIDR_MESSAGE = 'Invalid CIDR specified.';
export const ICMP_MESSAGE = 'Invalid ICMP type or ICMP code specified.';
export const PORTS_MESSAGE = 'Invalid SRCPORTS or DSTPORTS specified.';
export const IP_VERSION_MESSAGE = 'Invalid or unmatching IP versions for SRCCIDR/DSTCIDR.';

const looksLikeCidr = (word: string): boolean => /[.:/]/.test(word);

/** Parses `(allow|deny) [MATCH]`; throws UsageError on anything the grammar does not allow. */
export function parseRuleSpec(words: readonly string[], usage: string): RuleSpec {
  const fail = (): never => {
    throw new UsageError(usage);
  };
  let i = 0;
  const next = (): string | undefined => words[i];
  const take = (): string => words[i++] ?? fail();

  const action = take();
  if (action !== 'allow' && action !== 'deny') fail();
  const spec: RuleSpec = { action: action as RuleSpec['action'], from: {}, to: {} };

  const word = next();
  if (word === 'tcp' || word === 'udp' || word === 'icmp' || word === 'icmpv6') {
    spec.protocol = word;
    i++;
  }
  const isIcmp = spec.protocol === 'icmp' || spec.protocol === 'icmpv6';
  if (isIcmp && next() === 'type') {
    i++;
    spec.icmpType = take();
    if (next() === 'code') {
      i++;
      spec.icmpCode = take();
    }
  }
  const seen = new Set<string>();
  while (i < words.length) {
    const direction = take();
    if ((direction !== 'from' && direction !== 'to') || seen.has(direction)) fail();
    seen.add(direction);
    const target = direction === 'from' ? spec.from : spec.to;
    while (i < words.length && next() !== 'from' && next() !== 'to') {
      const key = take();
      if (key === 'ports' || key === 'tag' || key === 'cidr') {
        if (target[key] !== undefined) fail();
        if (key === 'ports' && spec.protocol !== 'tcp' && spec.protocol !== 'udp') fail();
        target[key] = take();
      } else if (looksLikeCidr(key) && target.cidr === undefined) {
        target.cidr = key;
      } else {
        fail();
      }
    }
  }
  return spec;
}

/** calicoctl v0.20 `validate_port_str` + parse: ints and `"lo:hi"` (lo < hi), 0–65535. */
export function parsePorts(text: string): Port[] | undefined {
  const ports: Port[] = [];
  for (const item of text.split(',')) {
    const range = /^(\d+):(\d+)$/.exec(item);
    if (range) {
      const lo = Number(range[1]);
      const hi = Number(range[2]);
      if (!(lo < hi && hi <= 65535)) return undefined;
      ports.push(`${lo}:${hi}`);
    } else if (/^\d+$/.test(item) && Number(item) <= 65535) {
      ports.push(Number(item));
    } else {
      return undefined;
    }
  }
  return ports;
}

/** Python `int(x)` for the ICMP checks: optional sign, decimal digits. */
function parseIcmp(text: string): number | undefined {
  return /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : undefined;
}

export interface ArgumentsToCheck {
  profiles?: readonly string[];
  tags?: readonly string[];
  spec?: RuleSpec;
}

/**
 * calicoctl `validate_arguments`: every applicable message, in calicoctl's order (paragraph
 * messages wrapped at 80 columns and followed by a blank line). Empty string when all pass.
 */
export function checkArguments(input: ArgumentsToCheck): string {
  const out: string[] = [];
  const paragraph = (text: string): void => {
    out.push(`${wrapParagraph(text)}\n\n`);
  };
  if ((input.profiles ?? []).some((p) => !ID_PATTERN.test(p))) paragraph(PROFILE_NAME_MESSAGE);
  const spec = input.spec;
  const tags = [...(input.tags ?? []), ...[spec?.from.tag, spec?.to.tag].filter((t): t is string => t !== undefined)];
  if (tags.some((t) => !ID_PATTERN.test(t))) paragraph(TAG_NAME_MESSAGE);
  if (spec) {
    const cidrs = [spec.from.cidr, spec.to.cidr].filter((c): c is string => c !== undefined);
    const canonical = cidrs.map(canonicalCidr);
    const cidrsOk = canonical.every((c) => c !== undefined);
    if (!cidrsOk) out.push(`${CIDR_MESSAGE}\n`);
    const icmp = [spec.icmpType, spec.icmpCode].filter((c): c is string => c !== undefined).map(parseIcmp);
    if (icmp.some((n) => n === undefined || n < 0 || n >= 255)) out.push(`${ICMP_MESSAGE}\n`);
    const ports = [spec.from.ports, spec.to.ports].filter((p): p is string => p !== undefined);
    if (ports.some((p) => parsePorts(p) === undefined)) out.push(`${PORTS_MESSAGE}\n`);
    // As calicoctl's validate_cidr_versions: a CIDR that does not parse fails this check too.
    const versions = new Set(canonical.map((c) => (c === undefined ? 0 : cidrVersion(c))));
    if (spec.protocol === 'icmp') versions.add(4);
    if (spec.protocol === 'icmpv6') versions.add(6);
    if (!cidrsOk || versions.size > 1) out.push(`${IP_VERSION_MESSAGE}\n`);
  }
  return out.join('');
}

/** The stored Rule for a checked spec, members in calicoctl's order (Appendix A). */
export function buildRule(spec: RuleSpec): Rule {
  const draft: Record<string, unknown> = { action: spec.action };
  if (spec.protocol) draft.protocol = spec.protocol;
  if (spec.icmpType !== undefined) draft.icmp_type = parseIcmp(spec.icmpType);
  if (spec.icmpCode !== undefined) draft.icmp_code = parseIcmp(spec.icmpCode);
  for (const [side, ends] of [['src', spec.from], ['dst', spec.to]] as const) {
    if (ends.ports !== undefined) draft[`${side}_ports`] = parsePorts(ends.ports);
    if (ends.tag !== undefined) draft[`${side}_tag`] = ends.tag;
    if (ends.cidr !== undefined) draft[`${side}_net`] = canonicalCidr(ends.cidr);
  }
  const parsed = ruleSchema.safeParse(draft);
  if (!parsed.success) throw new CliError(`Invalid rule: ${formatIssues(parsed.error)}`);
  const present = RULE_ADD_LOCALS_ORDER.filter((key) => draft[key] !== undefined);
  return withMemberOrder(parsed.data, calicoctlRuleOrder(present));
}
