/**
 * Encoding and decoding of the stored profile values (`…/rules`, `…/tags`).
 *
 * Invariants:
 * - Rules are stored in the calicoctl v0.21 layout: `{"inbound_rules": […], "outbound_rules": […]}`
 *   (no `"id"`), CPython `json.dumps` spacing, each rule's members in the order the caller's
 *   object holds them (calicoctl's emulated dict order, see src/cli/python-dict-order.ts).
 * - Decoding validates with the model's `rulesSchema` and keeps each rule's members in the order
 *   the stored text had them, so a read-modify-write cycle does not reshuffle untouched rules.
 * - Tags are a JSON list in insertion order.
 */
import { decodeTags, formatIssues, parseJson, rulesSchema, type Rule, type Rules, type Tags } from '../model/index.js';
import { pythonJsonDumps } from './python-json.js';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * Rebuilds each parsed rule with its members in the order of the raw input object (members
 * the schema dropped, such as nulls, are skipped; members the schema added come last).
 */
export function keepMemberOrder(raw: unknown, parsed: Rules): Rules {
  const rawRules = (direction: 'inbound_rules' | 'outbound_rules'): unknown[] => {
    const list = (raw as Record<string, unknown> | null)?.[direction];
    return Array.isArray(list) ? list : [];
  };
  const reorder = (rawRule: unknown, rule: Rule): Rule => {
    const order = rawRule !== null && typeof rawRule === 'object' ? Object.keys(rawRule) : [];
    const out: Record<string, unknown> = {};
    const values = rule as Record<string, unknown>;
    for (const key of order) if (values[key] !== undefined) out[key] = values[key];
    for (const [key, value] of Object.entries(values)) if (value !== undefined && !(key in out)) out[key] = value;
    return out as Rule;
  };
  const result: Rules = {
    inbound_rules: parsed.inbound_rules.map((r, i) => reorder(rawRules('inbound_rules')[i], r)),
    outbound_rules: parsed.outbound_rules.map((r, i) => reorder(rawRules('outbound_rules')[i], r)),
  };
  if (parsed.id !== undefined) result.id = parsed.id;
  return result;
}

/** Parses and validates a rules object, keeping member order. */
export function decodeOrderedRules(text: string): Decoded<Rules> {
  const json = parseJson(text);
  if (!json.ok) return json;
  const parsed = rulesSchema.safeParse(json.value);
  if (!parsed.success) return { ok: false, reason: formatIssues(parsed.error) };
  return { ok: true, value: keepMemberOrder(json.value, parsed.data) };
}

export function encodeRules(rules: Rules): string {
  return pythonJsonDumps({ inbound_rules: rules.inbound_rules, outbound_rules: rules.outbound_rules });
}

export function decodeStoredTags(text: string): Decoded<Tags> {
  return decodeTags(text);
}

export function encodeTags(tags: Tags): string {
  return pythonJsonDumps(tags);
}
