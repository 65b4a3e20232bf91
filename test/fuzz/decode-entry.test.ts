/**
 * Fuzzing the validation boundary: `decodeEntry(key, value)` must never throw, whatever etcd
 * holds. Keys are random paths under `/calico/v1/` (structural words, ids, unicode, empty and
 * `..` segments, shapes of every modelled key with random segments); values are random JSON,
 * random text, truncated valid documents, huge numbers, deep nesting and valid documents with
 * one member replaced by random JSON. Every result is ok:true with an entry of the key's kind,
 * ok:false with a ONE-line non-empty reason and the key's ref, or ignored.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  decodeEntry,
  endpointKey,
  parseKey,
  profileRulesKey,
  profileTagsKey,
  type DecodeResult,
} from '../../src/model/index.js';
import { fuzzParams, idArb, validRawRuleArb } from './arbitraries.js';

const STRUCTURAL = ['policy', 'profile', 'rules', 'tags', 'host', 'workload', 'endpoint', 'config', 'ipam', 'v4', 'v6', 'pool', 'Ready'];

const segmentArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...STRUCTURAL) },
  { weight: 3, arbitrary: idArb },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom('', '..', '.', ' ', 'a b', 'x\ny', 'é', '\u2028', '日本', '\u0000', '%2F') },
);

/** Keys shaped like each modelled key, with random segments where the names go. */
const shapedKeyArb: fc.Arbitrary<string> = fc
  .tuple(segmentArb, segmentArb, segmentArb, segmentArb, fc.constantFrom('v4', 'v6', 'v5'))
  .chain(([a, b, c, d, v]) =>
    fc.constantFrom(
      '/calico/v1/Ready',
      `/calico/v1/policy/profile/${a}/rules`,
      `/calico/v1/policy/profile/${a}/tags`,
      `/calico/v1/host/${a}/workload/${b}/${c}/endpoint/${d}`,
      `/calico/v1/host/${a}/config/${b}`,
      `/calico/v1/config/${a}`,
      `/calico/v1/ipam/${v}/pool/${a}`,
      `/calico/felix/v1/host/${a}/workload/${b}/${c}/endpoint/${d}`,
    ),
  );

const randomPathArb = fc.array(segmentArb, { minLength: 0, maxLength: 8 }).map((segments) => `/calico/v1/${segments.join('/')}`);

const keyArb = fc.oneof({ weight: 3, arbitrary: shapedKeyArb }, { weight: 2, arbitrary: randomPathArb }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) });

const validEndpoint = {
  state: 'active',
  name: 'cali1',
  mac: '02:00:00:00:00:01',
  profile_ids: ['p'],
  ipv4_nets: ['192.0.2.1/32'],
  ipv6_nets: ['2001:db8::1/128'],
  ipv4_gateway: '192.0.2.254',
  ipv6_gateway: '2001:db8::fffe',
};

/** Valid documents of every stored kind (to truncate and to mutate). */
const validDocumentArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ inbound_rules: fc.array(validRawRuleArb, { maxLength: 3 }), outbound_rules: fc.array(validRawRuleArb, { maxLength: 3 }) }),
  fc.array(idArb, { maxLength: 4 }),
  fc.constant(validEndpoint),
  fc.constant({ cidr: '192.0.2.0/24', masquerade: true, ipip: 'tunl0', disabled: false }),
);

/** A valid document with one member (at any depth) replaced by arbitrary JSON. */
const mutatedDocumentArb: fc.Arbitrary<unknown> = fc
  .tuple(validDocumentArb, fc.nat(), fc.jsonValue({ maxDepth: 3 }))
  .map(([doc, pick, replacement]) => {
    const paths: (string | number)[][] = [];
    const walk = (node: unknown, path: (string | number)[]): void => {
      if (path.length > 0) paths.push(path);
      if (Array.isArray(node)) node.forEach((child, i) => walk(child, [...path, i]));
      else if (node !== null && typeof node === 'object') for (const [k, child] of Object.entries(node)) walk(child, [...path, k]);
    };
    walk(doc, []);
    if (paths.length === 0) return replacement;
    const copy = structuredClone(doc) as Record<string | number, unknown>;
    const path = paths[pick % paths.length]!;
    let parent = copy;
    for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
    parent[path.at(-1)!] = replacement;
    return copy;
  });

const valueArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 3, arbitrary: mutatedDocumentArb.map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(validDocumentArb.map((v) => JSON.stringify(v, null, 1)), fc.nat())
      .map(([text, cut]) => text.slice(0, cut % Math.max(1, text.length))),
  },
  { weight: 1, arbitrary: fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '[1e400]', '{"cidr": 1e400}', 'true', 'null', '', ' ', '\n') },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom('[', '{"a":')).map(([depth, open]) =>
      open.repeat(depth) + (open === '[' ? ']' : '1}').repeat(depth),
    ),
  },
);

function checkResult(key: string, value: string, result: DecodeResult): void {
  const ref = parseKey(key);
  if (result.ok === 'ignored') return;
  if (result.ok === true) {
    // The entry is of the key's kind (a kind the key layout models).
    expect(result.entry.kind).toBe(ref.kind);
    return;
  }
  expect(result.ok).toBe(false);
  expect(result.ref).toEqual(ref);
  expect(typeof result.reason).toBe('string');
  expect(result.reason.trim()).not.toBe('');
  // One line, and no raw control characters (a reason goes to logs and terminals as is).
  expect(result.reason, `reason for ${JSON.stringify(value)}`).not.toMatch(/[\u0000-\u001f\u007f]/);
}

describe('decodeEntry fuzz', () => {
  test('never throws; ok:false always carries a one-line reason', () => {
    fc.assert(
      fc.property(keyArb, valueArb, (key, value) => {
        checkResult(key, value, decodeEntry(key, value));
      }),
      fuzzParams(3000),
    );
  });

  test('every modelled key kind with every kind of value', () => {
    const ref = { host: 'h', orchestrator: 'docker', workload: 'w', endpointId: 'e' };
    const keys = [
      profileRulesKey('p'),
      profileTagsKey('p'),
      endpointKey(ref),
      '/calico/v1/ipam/v4/pool/192.0.2.0-24',
      '/calico/v1/ipam/v6/pool/2001:db8::-32',
    ];
    fc.assert(
      fc.property(fc.constantFrom(...keys), valueArb, (key, value) => {
        checkResult(key, value, decodeEntry(key, value));
      }),
      fuzzParams(2000),
    );
  });

  test('very deep nesting is refused, not a stack overflow', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    for (const key of [profileRulesKey('p'), profileTagsKey('p'), '/calico/v1/ipam/v4/pool/x']) {
      const result = decodeEntry(key, deep);
      expect(result.ok).toBe(false);
    }
  });

  test('a "__proto__" member neither smuggles values in nor changes prototypes', () => {
    const ek = endpointKey({ host: 'h', orchestrator: 'o', workload: 'w', endpointId: 'e' });
    const smuggled = '{"ipv4_gateway": "not-an-ip", "mac": "zz", "profile_ids": ["bad id!"], "masquerade": "yes"}';
    for (const [key, value] of [
      [ek, `{"state": "active", "name": "cali1", "profile_ids": ["p"], "__proto__": ${smuggled}}`],
      [ek, `{"state": "active", "name": "cali1", "profile_id": "p", "__proto__": ${smuggled}}`],
      ['/calico/v1/ipam/v4/pool/x', `{"cidr": "10/8", "__proto__": ${smuggled}}`],
    ] as const) {
      const result = decodeEntry(key, value);
      expect(result.ok).toBe(true);
      if (result.ok !== true) continue;
      const decoded = result.entry.kind === 'endpoint' ? result.entry.endpoint : result.entry.kind === 'pool' ? result.entry.pool : undefined;
      expect(decoded).toBeDefined();
      expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
      const record = decoded as Record<string, unknown>;
      for (const member of ['ipv4_gateway', 'mac', 'masquerade']) expect(record[member]).toBeUndefined();
      if (result.entry.kind === 'endpoint') expect(result.entry.endpoint.profile_ids).toEqual(['p']);
    }
    // Inside a rule it is an unknown member; at the top of a rules object, a member we drop.
    const inRule = decodeEntry(profileRulesKey('p'), '{"inbound_rules": [{"__proto__": {"protocol": "x"}}], "outbound_rules": []}');
    expect(inRule).toMatchObject({ ok: false, reason: expect.stringContaining('unknown member(s) "__proto__"') });
    const topLevel = decodeEntry(profileRulesKey('p'), `{"inbound_rules": [], "outbound_rules": [], "__proto__": ${smuggled}}`);
    expect(topLevel).toEqual({ ok: true, entry: { kind: 'profileRules', profile: 'p', rules: { inbound_rules: [], outbound_rules: [] } } });
    if (topLevel.ok === true && topLevel.entry.kind === 'profileRules') expect(Object.getPrototypeOf(topLevel.entry.rules)).toBe(Object.prototype);
  });

  // Regression: V8's JSON.parse messages quote the offending source text, newlines included,
  // so a stored value with a line break used to yield a multi-line reason.
  test.each([
    ['{"inbound_rules":\n x}'],
    ['[\n"a",\r\n b]'],
    ['{\n  "state": "active",\n  "name": cali1\n}'],
  ])('a JSON syntax error in %j gives a one-line reason', (value) => {
    for (const key of [profileRulesKey('p'), profileTagsKey('p'), endpointKey({ host: 'h', orchestrator: 'o', workload: 'w', endpointId: 'e' })]) {
      const result = decodeEntry(key, value);
      expect(result.ok).toBe(false);
      if (result.ok === false) {
        expect(result.reason).toMatch(/^invalid JSON \(/);
        expect(result.reason).not.toMatch(/[\r\n]/);
      }
    }
  });
});
