/**
 * The `calicoctl profile <P> rule add|remove` grammar against the `rule show` pretty form, in
 * process (the same functions profile-command.ts calls: parseRuleSpec → checkArguments →
 * buildRule, and formatRulesListing/prettyRule). For random rules the grammar can express
 * (tcp/udp with from/to ports/tag/cidr; icmp/icmpv6 type/code; bare from/to tag/cidr;
 * allow/deny), including tags that are grammar keywords and non-canonical CIDRs:
 * - the pretty line printed by `rule show`, split into words, parses back to the same rule
 *   (deep-equal and calicoctl's rulesEqual, so `rule remove <shown words>` finds it);
 * - the words a user may type (criteria in any order inside from/to, a bare CIDR for `cidr`,
 *   ports in any spelling the grammar accepts) build the rule the model's schema gives for the
 *   same JSON, and that rule prints in the canonical pretty form;
 * - the shown form of ANY valid rule (negations, numeric protocols, ip_version, sctp…) is either
 *   refused by the grammar or parses to that same rule, so `rule remove <shown words>` never
 *   matches a different rule. Two documented normalisations: a rule without `action` is shown
 *   (and so re-parsed) as `allow`, and port strings are not canonicalised by the model
 *   (`"0007:0010"` is shown as such, the CLI builds `"7:10"`).
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ruleSchema, type Rule } from '../../src/model/index.js';
import { CliError, UsageError } from '../../src/cli/cli-context.js';
import { buildRule, checkArguments, parsePorts, parseRuleSpec } from '../../src/cli/rule-spec.js';
import { formatRulesListing, prettyRule, rulesEqual } from '../../src/cli/rule-text.js';
import { fuzzParams, grammarRuleArb, grammarRuleToRaw, validRawRuleArb, type GrammarRule } from './arbitraries.js';

const USAGE = 'usage';

/** What `calicoctl profile P rule add inbound <words>` stores, or the failure it reports. */
function ruleFromWords(words: readonly string[]): Rule {
  const spec = parseRuleSpec(words, USAGE);
  const messages = checkArguments({ profiles: ['P'], spec });
  if (messages !== '') throw new Error(`checkArguments refused ${JSON.stringify(words)}: ${messages}`);
  return buildRule(spec);
}

/** The words of rule `index` (1-based) of a `rule show` listing's inbound section. */
function shownWords(listing: string, index: number): string[] {
  const lines = listing.split('\n');
  const line = lines[lines.indexOf('Inbound rules:') + index]!;
  const match = /^ {1,3}(\d+) (.*)$/.exec(line);
  expect(match?.[1]).toBe(String(index));
  return match![2]!.split(' ');
}

/** Words a user could type for the rule: criteria shuffled inside each side, `cidr` optional. */
function typedWordsArb(rule: GrammarRule): fc.Arbitrary<string[]> {
  const sideArb = (word: 'from' | 'to', ends: GrammarRule['from']) => {
    const criteria: fc.Arbitrary<string[]>[] = [];
    if (ends.ports !== undefined) criteria.push(fc.constant(['ports', ends.ports.join(',')]));
    if (ends.tag !== undefined) criteria.push(fc.constant(['tag', ends.tag]));
    if (ends.cidr !== undefined) {
      const cidr = ends.cidr;
      // A bare CIDR after from/to means `cidr` (it always contains `.`, `:` or `/`).
      criteria.push(fc.constantFrom(['cidr', cidr], [cidr]));
    }
    if (criteria.length === 0) return fc.constant<string[]>([]);
    return fc.tuple(...criteria).chain((parts) => fc.shuffledSubarray(parts, { minLength: parts.length, maxLength: parts.length })).map((parts) => [word, ...parts.flat()]);
  };
  return fc.tuple(sideArb('from', rule.from), sideArb('to', rule.to), fc.boolean()).map(([from, to, toFirst]) => {
    const head: string[] = [rule.action];
    if (rule.protocol !== undefined) head.push(rule.protocol);
    if (rule.icmp !== undefined) {
      head.push('type', String(rule.icmp.type));
      if (rule.icmp.code !== undefined) head.push('code', String(rule.icmp.code));
    }
    return [...head, ...(toFirst ? [...to, ...from] : [...from, ...to])];
  });
}

describe('CLI rule grammar ↔ rule show', () => {
  test('the shown pretty form parses back to the same rule', () => {
    fc.assert(
      fc.property(fc.array(grammarRuleArb, { minLength: 1, maxLength: 3 }), fc.nat(), (grammarRules, pick) => {
        const rules = grammarRules.map((g) => ruleSchema.parse(grammarRuleToRaw(g)));
        const listing = formatRulesListing({ inbound_rules: rules, outbound_rules: [] });
        const index = pick % rules.length;
        const rule = rules[index]!;
        const words = shownWords(listing, index + 1);
        expect(words.join(' ')).toBe(prettyRule(rule));
        const reparsed = ruleFromWords(words);
        expect(reparsed).toEqual(rule);
        expect(rulesEqual(reparsed, rule)).toBe(true);
        expect(prettyRule(reparsed)).toBe(prettyRule(rule));
      }),
      fuzzParams(1500),
    );
  });

  test('typed words build the schema rule, which prints canonically', () => {
    fc.assert(
      fc.property(grammarRuleArb.chain((g) => fc.tuple(fc.constant(g), typedWordsArb(g))), ([grammarRule, words]) => {
        const expected = ruleSchema.parse(grammarRuleToRaw(grammarRule));
        const built = ruleFromWords(words);
        expect(built).toEqual(expected);
        // calicoctl's member order (Appendix A) is a permutation of the same members.
        expect(Object.keys(built).sort()).toEqual(Object.keys(expected).sort());
        expect(ruleFromWords(prettyRule(built).split(' '))).toEqual(built);
      }),
      fuzzParams(1500),
    );
  });

  test('the shown form of any valid rule is refused or parses to the same rule', () => {
    let reparsed = 0;
    fc.assert(
      fc.property(validRawRuleArb, (raw) => {
        const rule = ruleSchema.parse(raw);
        let built: Rule;
        try {
          built = ruleFromWords(prettyRule(rule).split(' '));
        } catch (e) {
          if (e instanceof UsageError || e instanceof CliError || /checkArguments refused/.test(String(e))) return;
          throw e;
        }
        reparsed++;
        const expected: Record<string, unknown> = { action: 'allow', ...rule };
        for (const key of ['src_ports', 'dst_ports'] as const) {
          const ports = rule[key];
          if (ports !== undefined) expected[key] = parsePorts(ports.join(','));
        }
        expect(built).toEqual(expected);
        expect(rulesEqual(built, expected as Rule)).toBe(true);
      }),
      fuzzParams(3000),
    );
    // The generator must reach the parseable subset often enough for this to mean something.
    expect(reparsed).toBeGreaterThan(20);
  });

  test('keyword-named tags and CIDR-looking tags survive the round trip', () => {
    for (const tag of ['from', 'to', 'tag', 'cidr', 'ports', 'type', 'code', 'allow', 'tcp', '1.2', '..']) {
      for (const raw of [
        { action: 'allow', src_tag: tag },
        { action: 'deny', protocol: 'tcp', src_ports: [1, '2:3'], dst_tag: tag, src_tag: tag },
        { action: 'allow', protocol: 'icmp', icmp_type: 0, icmp_code: 0, src_tag: tag, dst_net: '192.0.2.0/24' },
      ]) {
        const rule = ruleSchema.parse(raw);
        expect(ruleFromWords(prettyRule(rule).split(' ')), prettyRule(rule)).toEqual(rule);
      }
    }
  });
});
