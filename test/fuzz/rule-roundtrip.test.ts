/**
 * Valid rules round trip. For arbitrary VALID raw rules (see validRawRuleArb: protocol ↔ ports
 * ↔ ICMP, one IP family, id-pattern tags, canonical and non-canonical CIDRs, negated members,
 * JSON nulls, numeric protocols):
 * - ruleSchema accepts them and parsing is idempotent: parse(parse(x)) deep-equals parse(x);
 * - the stored form (stored-values.ts encodeRules) re-decodes, through decodeOrderedRules and
 *   through decodeEntry, to the same rules with the same member order;
 * - ruleIpVersion agrees with every CIDR of the rule and with icmp/icmpv6/ip_version.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  canonicalCidr,
  cidrVersion,
  decodeEntry,
  profileRulesKey,
  protocolName,
  ruleIpVersion,
  ruleSchema,
  rulesSchema,
  type Rule,
} from '../../src/model/index.js';
import { decodeOrderedRules, encodeRules } from '../../src/datastore/stored-values.js';
import { fuzzParams, validRawRuleArb } from './arbitraries.js';

const NET_KEYS = ['src_net', 'dst_net', '!src_net', '!dst_net'] as const;

describe('valid rules round trip', () => {
  test('ruleSchema accepts every generated rule and is idempotent', () => {
    fc.assert(
      fc.property(validRawRuleArb, (raw) => {
        const first = ruleSchema.safeParse(raw);
        expect(first.error?.issues ?? [], JSON.stringify(raw)).toEqual([]);
        const once = first.data!;
        const twice = ruleSchema.parse(once);
        expect(twice).toStrictEqual(once);
        expect(Object.keys(twice)).toEqual(Object.keys(once));
        // Nulls are dropped, nets canonical, protocols strings.
        expect(Object.values(once)).not.toContain(null);
        for (const key of NET_KEYS) if (once[key] !== undefined) expect(canonicalCidr(once[key])).toBe(once[key]);
        for (const key of ['protocol', '!protocol'] as const) if (once[key] !== undefined) expect(typeof once[key]).toBe('string');
      }),
      fuzzParams(1500),
    );
  });

  test('ruleIpVersion agrees with every CIDR, with icmp/icmpv6 and with ip_version', () => {
    fc.assert(
      fc.property(validRawRuleArb, (raw) => {
        const rule: Rule = ruleSchema.parse(raw);
        const version = ruleIpVersion(rule);
        const implied = new Set<number>();
        for (const key of NET_KEYS) if (rule[key] !== undefined) implied.add(cidrVersion(rule[key]));
        const protocol = rule.protocol === undefined ? undefined : protocolName(rule.protocol);
        if (protocol === 'icmp') implied.add(4);
        if (protocol === 'icmpv6') implied.add(6);
        if (rule.ip_version !== undefined) implied.add(rule.ip_version);
        expect(implied.size).toBeLessThanOrEqual(1);
        expect(version).toBe(implied.size === 0 ? undefined : [...implied][0]);
      }),
      fuzzParams(1500),
    );
  });

  test('the stored JSON form re-decodes to the same rules, member order kept', () => {
    const rulesArb = fc.record({
      inbound_rules: fc.array(validRawRuleArb, { maxLength: 4 }),
      outbound_rules: fc.array(validRawRuleArb, { maxLength: 4 }),
    });
    fc.assert(
      fc.property(rulesArb, (raw) => {
        const rules = rulesSchema.parse(raw);
        const stored = encodeRules(rules);
        expect(stored).not.toMatch(/[\n\r]/);

        const ordered = decodeOrderedRules(stored);
        expect(ordered.ok ? [] : ordered.reason).toEqual([]);
        if (!ordered.ok) return;
        expect(ordered.value).toStrictEqual(rules);
        const keyOrder = (list: readonly Rule[]) => list.map((r) => Object.keys(r));
        expect(keyOrder(ordered.value.inbound_rules)).toEqual(keyOrder(rules.inbound_rules));
        expect(keyOrder(ordered.value.outbound_rules)).toEqual(keyOrder(rules.outbound_rules));
        // Encoding is a fixed point after one trip.
        expect(encodeRules(ordered.value)).toBe(stored);

        const entry = decodeEntry(profileRulesKey('p'), stored);
        expect(entry.ok).toBe(true);
        if (entry.ok === true && entry.entry.kind === 'profileRules') expect(entry.entry.rules).toEqual(rules);
      }),
      fuzzParams(800),
    );
  });
});
