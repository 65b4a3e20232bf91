/**
 * Compiler robustness on arbitrary valid snapshots: random profile ids (long ones included),
 * random valid rules (fuzz validRawRuleArb, tags drawn from a shared pool so sets get members),
 * up to 40 endpoints (many local, names sharing prefixes so dispatch chains split), random
 * config. For every snapshot:
 * - compile never throws, and a calculation graph fed the same keys agrees with it;
 * - every chain name ≤ 28 characters and owned (`cali-`), every ipset name ≤ 31 and owned by
 *   its family (`cali4-` / `cali6-`);
 * - renderFamily's restore text is well formed: only `*table`, `:chain - [0:0]`, `-A <owned
 *   declared chain> …`, `-I <builtin> 1 …` and `COMMIT` lines; every rule line carries its hash
 *   comment; no double or trailing spaces; every comment is one double-quoted word group
 *   (≤ 255 characters, no inner quote); jump/goto targets and match-sets exist; addresses are of
 *   the family; ipset lines are `create`/`add` of declared sets with canonical members.
 */
import { graphOf } from '../compiler/fixtures.js';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  canonicalCidr,
  canonicalIp,
  cidrVersion,
  endpointKey,
  endpointSchema,
  rulesSchema,
  type EndpointRef,
  type IpVersion,
} from '../../src/model/index.js';
import {
  compile,
  defaultCompilerConfig,
  HASH_COMMENT_PREFIX,
  MAX_CHAIN_NAME_LENGTH,
  MAX_IPSET_NAME_LENGTH,
  renderFamily,
} from '../../compiler/index.js';
import type { EndpointInput, FamilySpec, ProfileInput, Snapshot } from '../../compiler/index.js';
import { cidrTextArb, fuzzParams, idArb, validRawRuleArb } from './arbitraries.js';

const TAG_KEYS = ['src_tag', 'dst_tag', '!src_tag', '!dst_tag'];
const HOOK_BUILTINS = ['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING'];

/** A raw rule whose tags are taken from `pool` (deterministically from the generated tag). */
function withPoolTags(raw: Record<string, unknown>, pool: readonly string[]): Record<string, unknown> {
  const out = { ...raw };
  for (const key of TAG_KEYS) {
    const tag = out[key];
    if (typeof tag === 'string') out[key] = pool[tag.length % pool.length];
  }
  return out;
}

const ifaceSuffixArb = fc.string({ unit: fc.constantFrom('a', 'b', '0', '1', '-', '_'), minLength: 0, maxLength: 11 });

const snapshotArb: fc.Arbitrary<Snapshot> = fc
  .record({
    profileIds: fc.uniqueArray(idArb, { minLength: 1, maxLength: 5 }),
    tagPool: fc.uniqueArray(idArb, { minLength: 1, maxLength: 6 }),
    prefix: fc.constantFrom('cali', 'cali', 'tap', 'veth'),
    action: fc.constantFrom('DROP' as const, 'RETURN' as const, 'ACCEPT' as const),
    maxIpsetSize: fc.constantFrom(1, 3, 1048576),
    markBit: fc.constantFrom(0x1000000, 0x1, 0x80000000),
  })
  .chain(({ profileIds, tagPool, prefix, action, maxIpsetSize, markBit }) => {
    const profileArb: fc.Arbitrary<ProfileInput> = fc
      .record({
        rules: fc.option(
          fc.record({
            inbound_rules: fc.array(validRawRuleArb, { maxLength: 4 }),
            outbound_rules: fc.array(validRawRuleArb, { maxLength: 3 }),
          }),
          { nil: undefined, freq: 6 },
        ),
        tags: fc.option(fc.subarray(tagPool), { nil: undefined, freq: 6 }),
      })
      .map(({ rules, tags }) => {
        const input: ProfileInput = {};
        if (rules !== undefined) {
          input.rules = rulesSchema.parse({
            inbound_rules: rules.inbound_rules.map((r) => withPoolTags(r, tagPool)),
            outbound_rules: rules.outbound_rules.map((r) => withPoolTags(r, tagPool)),
          });
        }
        if (tags !== undefined) input.tags = tags;
        return input;
      });
    const endpointArb = fc.record({
      host: fc.constantFrom('host1', 'host1', 'host1', 'host2'),
      orchestrator: fc.constantFrom('docker', 'k8s'),
      workload: idArb,
      endpointId: idArb,
      name: fc.oneof({ weight: 5, arbitrary: ifaceSuffixArb.map((s) => `${prefix}${s}`.slice(0, 15)) }, { weight: 1, arbitrary: fc.constantFrom('eth0', 'x', 'cali') }),
      state: fc.constantFrom('active', 'active', 'active', 'inactive'),
      mac: fc.option(fc.constantFrom('02:00:00:00:00:01', 'EE-EE-EE-00-00-02'), { nil: undefined }),
      profile_ids: fc.subarray([...profileIds, 'missing-profile']),
      ipv4_nets: fc.array(cidrTextArb(4), { maxLength: 3 }),
      ipv6_nets: fc.array(cidrTextArb(6), { maxLength: 2 }),
    });
    return fc.record({
      profiles: fc.tuple(...profileIds.map((id) => fc.option(profileArb.map((p) => [id, p] as const), { nil: undefined, freq: 8 }))),
      endpoints: fc.array(endpointArb, { maxLength: 40, size: '+1' }),
    }).map(({ profiles, endpoints }): Snapshot => ({
      hostname: 'host1',
      config: { ...defaultCompilerConfig(), interfacePrefix: prefix, endpointToHostAction: action, maxIpsetSize, acceptMarkBit: markBit },
      profiles: new Map(profiles.filter((p) => p !== undefined).map(([id, p]) => [id, p])),
      endpoints: new Map(
        endpoints.map(({ host, orchestrator, workload, endpointId, ...raw }): [string, EndpointInput] => {
          const ref: EndpointRef = { host, orchestrator, workload, endpointId };
          return [endpointKey(ref), { ref, endpoint: endpointSchema.parse(raw) }];
        }),
      ),
    }));
  });

const HASH_COMMENT = new RegExp(`^-m comment --comment "${HASH_COMMENT_PREFIX}[0-9a-f]{16}" `);
/** A well-formed comment: double-quoted, no inner quote or line break, at most 255 characters. */
const QUOTED_COMMENT = /--comment "([^"\n]{0,255})"(?= |$)/g;

function checkRestoreText(table: string, text: string, spec: FamilySpec): void {
  if (text === '') return;
  const family: IpVersion = spec.family;
  const declared = new Set<string>();
  const lines = text.split('\n');
  expect(lines.at(-1)).toBe('');
  expect(lines[0]).toBe(`*${table}`);
  expect(lines.at(-2)).toBe('COMMIT');
  for (const line of lines.slice(1, -2)) {
    expect(line, 'double or edge spaces').not.toMatch(/ {2}|^ | $|\t/);
    const declaration = /^:(\S+) - \[0:0\]$/.exec(line);
    if (declaration) {
      declared.add(declaration[1]!);
      continue;
    }
    const append = /^-A (\S+) (.*)$/.exec(line);
    const insert = /^-I (\S+) 1 (.*)$/.exec(line);
    const rule = append ?? insert;
    expect(rule, `unexpected line ${JSON.stringify(line)}`).not.toBeNull();
    const [, chain, body] = rule!;
    if (append) expect(declared.has(chain!), `-A to undeclared chain ${chain}`).toBe(true);
    if (insert) expect(HOOK_BUILTINS).toContain(chain);
    expect(body).toMatch(HASH_COMMENT);
    // Every comment is quoted as a whole; nothing that looks like a comment is left over.
    expect(body!.replace(QUOTED_COMMENT, '--comment Q'), line).not.toMatch(/--comment (?!Q( |$))|"/);
    for (const [, target] of body!.matchAll(/--(?:jump|goto) (\S+)/g)) {
      if (target!.startsWith('cali-')) expect(spec.tables[table as 'filter' | 'raw'].chains.has(target!), `target ${target}`).toBe(true);
    }
    for (const [, set] of body!.matchAll(/--match-set (\S+) (?:src|dst)/g)) expect(spec.ipsets.has(set!), `set ${set}`).toBe(true);
    for (const [, address] of body!.matchAll(/--(?:source|destination) (\S+)/g)) {
      // Canonical CIDR, or a canonical bare address for host prefixes (as iptables-save prints).
      expect([canonicalCidr(address!), canonicalIp(address!)], address).toContain(address);
      expect(cidrVersion(address!)).toBe(family);
    }
  }
}

function checkIpsetText(text: string, spec: FamilySpec): void {
  const created = new Set<string>();
  for (const line of text.split('\n').slice(0, -1)) {
    const create = /^create (\S+) hash:net family (inet6?) maxelem (\d+)$/.exec(line);
    if (create) {
      expect(create[2]).toBe(spec.family === 4 ? 'inet' : 'inet6');
      created.add(create[1]!);
      continue;
    }
    const add = /^add (\S+) (\S+)$/.exec(line);
    expect(add, `unexpected ipset line ${JSON.stringify(line)}`).not.toBeNull();
    expect(created.has(add![1]!)).toBe(true);
    expect(canonicalCidr(add![2]!), add![2]).toBeDefined();
    expect(cidrVersion(add![2]!)).toBe(spec.family);
  }
  expect([...created].sort()).toEqual([...spec.ipsets.keys()].sort());
}

function checkFamily(spec: FamilySpec): void {
  const setPrefix = spec.family === 4 ? 'cali4-' : 'cali6-';
  for (const table of ['filter', 'raw'] as const) {
    for (const [name, chain] of spec.tables[table].chains) {
      expect(chain.name).toBe(name);
      expect(name.startsWith('cali-'), name).toBe(true);
      expect(name.length, name).toBeLessThanOrEqual(MAX_CHAIN_NAME_LENGTH);
      expect(chain.hashes).toHaveLength(chain.rules.length);
    }
  }
  for (const [name, set] of spec.ipsets) {
    expect(set.name).toBe(name);
    expect(name.startsWith(setPrefix), name).toBe(true);
    expect(name.length, name).toBeLessThanOrEqual(MAX_IPSET_NAME_LENGTH);
  }
  const plan = renderFamily(spec);
  checkRestoreText('filter', plan.iptablesUpdates.filter, spec);
  checkRestoreText('raw', plan.iptablesUpdates.raw, spec);
  checkIpsetText(plan.ipsetUpdates, spec);
  expect(plan.iptablesDeletions).toEqual({ filter: '', raw: '' });
  expect(plan.ipsetDeletions).toBe('');
}

describe('compiler robustness', () => {
  test('compile never throws and renders well-formed restore text', () => {
    fc.assert(
      fc.property(snapshotArb, (snapshot) => {
        const spec = compile(snapshot);
        checkFamily(spec.v4);
        checkFamily(spec.v6);
        const again = graphOf(snapshot).toSpec();
        expect(renderFamily(again.v4)).toEqual(renderFamily(spec.v4));
        expect(renderFamily(again.v6)).toEqual(renderFamily(spec.v6));
      }),
      fuzzParams(120),
    );
  });
});
