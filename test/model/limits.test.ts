/**
 * The documented bounds on one stored value (src/model/limits.ts): each list at its limit is
 * valid, one more is invalid with a one-line reason, and a value over the size limit is invalid
 * before it is parsed.
 */
import { describe, expect, it } from 'vitest';
import { decodeEntry, endpointKey, LIMITS, profileRulesKey, profileTagsKey } from '../../src/model/index.js';

const rulesKey = profileRulesKey('P');
const reason = (key: string, value: unknown): string | undefined => {
  const result = decodeEntry(key, typeof value === 'string' ? value : JSON.stringify(value));
  return result.ok === false ? result.reason : undefined;
};
const ports = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const epKey = endpointKey({ host: 'h', orchestrator: 'o', workload: 'w', endpointId: 'e' });
const endpoint = (extra: Record<string, unknown>) => ({ state: 'active', name: 'cali1', profile_ids: ['P'], ...extra });

describe('limits on stored values', () => {
  it('ports per list', () => {
    const rule = (n: number) => ({ inbound_rules: [{ protocol: 'tcp', dst_ports: ports(n) }], outbound_rules: [] });
    expect(reason(rulesKey, rule(LIMITS.portsPerList))).toBeUndefined();
    expect(reason(rulesKey, rule(LIMITS.portsPerList + 1))).toBe('inbound_rules[0].dst_ports: too many ports (101; at most 100)');
    // The hostile value of issue 10: 10,000 source × 10,000 destination ports.
    const hostile = { inbound_rules: [{ protocol: 'tcp', src_ports: ports(10_000), dst_ports: ports(10_000) }], outbound_rules: [] };
    expect(reason(rulesKey, hostile)).toMatch(/too many ports \(10000; at most 100\)/);
  });

  it('rules per direction', () => {
    const rules = (n: number) => ({ inbound_rules: [], outbound_rules: Array.from({ length: n }, () => ({ action: 'allow' })) });
    expect(reason(rulesKey, rules(LIMITS.rulesPerDirection))).toBeUndefined();
    expect(reason(rulesKey, rules(LIMITS.rulesPerDirection + 1))).toBe('outbound_rules: too many rules (1001; at most 1000)');
  });

  it('tags per profile, profile ids and nets per endpoint', () => {
    const tags = (n: number) => Array.from({ length: n }, (_, i) => `t${i}`);
    expect(reason(profileTagsKey('P'), tags(LIMITS.tagsPerProfile))).toBeUndefined();
    expect(reason(profileTagsKey('P'), tags(LIMITS.tagsPerProfile + 1))).toBe('too many tags (1001; at most 1000)');
    expect(reason(epKey, endpoint({ profile_ids: tags(LIMITS.profilesPerEndpoint) }))).toBeUndefined();
    expect(reason(epKey, endpoint({ profile_ids: tags(LIMITS.profilesPerEndpoint + 1) }))).toBe('profile_ids: too many profile ids (101; at most 100)');
    const nets = (n: number) => Array.from({ length: n }, (_, i) => `10.${Math.floor(i / 256)}.${i % 256}.1/32`);
    expect(reason(epKey, endpoint({ ipv4_nets: nets(LIMITS.netsPerFamily) }))).toBeUndefined();
    expect(reason(epKey, endpoint({ ipv4_nets: nets(LIMITS.netsPerFamily + 1) }))).toBe('ipv4_nets: too many IPv4 nets (1001; at most 1000)');
  });

  it('value size, checked before parsing', () => {
    const padded = (chars: number) => {
      const base = JSON.stringify({ inbound_rules: [], outbound_rules: [] });
      return base.slice(0, -1) + ' '.repeat(chars - base.length) + '}';
    };
    expect(reason(rulesKey, padded(LIMITS.valueChars))).toBeUndefined();
    expect(reason(rulesKey, padded(LIMITS.valueChars + 1))).toBe('value of 1048577 characters exceeds the limit of 1048576');
    // Deeply nested JSON within the size limit is an ordinary invalid value, not a crash.
    expect(reason(rulesKey, '['.repeat(500_000) + ']'.repeat(500_000))).toMatch(/expected a rules object|Invalid input/);
  });
});
