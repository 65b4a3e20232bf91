/**
 * Human and JSON renderings of rules for `rule show` / `rule json`, plus rule equality as
 * calicoctl defined it (used by `rule add` duplicates and `rule remove` by spec).
 *
 * Pretty form (reference §4.5): `<action> <protocol> type N code N from ports … tag … cidr …
 * to ports … tag … cidr …`, each token only when present. Members calicoctl v0.16 never had are
 * rendered in the same style: `ipv4`/`ipv6` after the protocol for `ip_version`, and a negated
 * criterion as `!`-prefixed (`!tcp`, `!type 8`, `!ports 22`, `!tag X`, `!cidr …`).
 */
import { maskedCidr, type Rule, type Rules } from '../model/index.js';
import { calicoctlRuleOrder, withMemberOrder } from './python-dict-order.js';

type RuleRecord = Record<string, unknown>;

const joinPorts = (ports: unknown): string => (Array.isArray(ports) ? ports.map(String).join(',') : String(ports));

export function prettyRule(rule: Rule): string {
  const r = rule as RuleRecord;
  const tokens: string[] = [String(r.action ?? 'allow')];
  if (r.protocol !== undefined) tokens.push(String(r.protocol));
  if (r['!protocol'] !== undefined) tokens.push(`!${String(r['!protocol'])}`);
  if (r.ip_version !== undefined) tokens.push(`ipv${String(r.ip_version)}`);
  if (r.icmp_type !== undefined) tokens.push('type', String(r.icmp_type));
  if (r.icmp_code !== undefined) tokens.push('code', String(r.icmp_code));
  if (r['!icmp_type'] !== undefined) tokens.push('!type', String(r['!icmp_type']));
  if (r['!icmp_code'] !== undefined) tokens.push('!code', String(r['!icmp_code']));
  for (const [side, word] of [['src', 'from'], ['dst', 'to']] as const) {
    const parts: string[] = [];
    if (r[`${side}_ports`] !== undefined) parts.push('ports', joinPorts(r[`${side}_ports`]));
    if (r[`!${side}_ports`] !== undefined) parts.push('!ports', joinPorts(r[`!${side}_ports`]));
    if (r[`${side}_tag`] !== undefined) parts.push('tag', String(r[`${side}_tag`]));
    if (r[`!${side}_tag`] !== undefined) parts.push('!tag', String(r[`!${side}_tag`]));
    if (r[`${side}_net`] !== undefined) parts.push('cidr', String(r[`${side}_net`]));
    if (r[`!${side}_net`] !== undefined) parts.push('!cidr', String(r[`!${side}_net`]));
    if (parts.length > 0) tokens.push(word, ...parts);
  }
  return tokens.join(' ');
}

/** `rule show` output. */
export function formatRulesListing(rules: Rules): string {
  const section = (title: string, list: Rule[]): string =>
    `${title}\n${list.map((rule, i) => ` ${String(i + 1).padStart(3)} ${prettyRule(rule)}\n`).join('')}`;
  return section('Inbound rules:', rules.inbound_rules) + section('Outbound rules:', rules.outbound_rules);
}

/**
 * Rules as calicoctl loaded them: each rule's members pass through CPython's dict pipeline
 * starting from the order they had (in the stored text or in `rule update` input).
 */
export function asCalicoctlLoaded(rules: Rules): Rules {
  const reorder = (rule: Rule): Rule => withMemberOrder(rule, calicoctlRuleOrder(Object.keys(rule)));
  return { inbound_rules: rules.inbound_rules.map(reorder), outbound_rules: rules.outbound_rules.map(reorder) };
}

/** `rule json` output: 2-space indented JSON (no `id`), then an empty line. */
export function formatRulesJson(rules: Rules): string {
  const loaded = asCalicoctlLoaded(rules);
  return `${JSON.stringify({ inbound_rules: loaded.inbound_rules, outbound_rules: loaded.outbound_rules }, null, 2)}\n\n`;
}

function valuesEqual(key: string, a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (key.endsWith('_net') && typeof a === 'string' && typeof b === 'string') {
    // netaddr equality: same network, host bits ignored.
    return maskedCidr(a) === maskedCidr(b);
  }
  return a === b;
}

/** calicoctl's rule equality: same members, equal values (nets compared as networks). */
export function rulesEqual(a: Rule, b: Rule): boolean {
  const x = a as RuleRecord;
  const y = b as RuleRecord;
  const keysA = Object.keys(x).filter((k) => x[k] !== undefined);
  const keysB = Object.keys(y).filter((k) => y[k] !== undefined);
  return keysA.length === keysB.length && keysA.every((k) => k in y && valuesEqual(k, x[k], y[k]));
}
