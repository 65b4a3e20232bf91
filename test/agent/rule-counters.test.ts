/**
 * Per-rule counters on /metrics (agent/rule-counters.ts): kernel counters by rule hash, labelled
 * through the calculation graph as profile rules (1-based, families added up, port chunks of one
 * rule added up) and endpoint default drops; rules that matched nothing are not exported.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RuleCounterMetrics } from '../../agent/rule-counters.js';
import type { CountedRule } from '../../compiler/index.js';
import { graphOf, profile, webAppSnapshot } from '../compiler/fixtures.js';

function setUp() {
  const base = webAppSnapshot();
  // WEB gains a rule with 20 ports: two multiport chunks, two chain rules, one profile rule.
  const many = Array.from({ length: 20 }, (_, i) => 1000 + i);
  const profiles = new Map(base.profiles);
  profiles.set('WEB', profile({
    inbound_rules: [{ action: 'allow', protocol: 'tcp', dst_ports: [80, 443] }, { action: 'deny', protocol: 'tcp', dst_ports: many }],
    outbound_rules: [{ action: 'allow' }],
  }, ['WEB']));
  const graph = graphOf({ ...base, profiles });
  graph.takeChanges();
  const registry = new Registry();
  const counters = new RuleCounterMetrics(graph, registry);
  const hashes = (family: 4 | 6) => {
    const found: [string, CountedRule][] = [];
    graph.forEachCountedRule(family, (hash, rule) => found.push([hash, rule]));
    return found;
  };
  return { graph, registry, counters, hashes };
}

describe('RuleCounterMetrics', () => {
  it('labels counted rules: each profile rule (chunks and families added up) and each endpoint chain drop', async () => {
    const { registry, counters, hashes } = setUp();
    const v4 = hashes(4);
    const v6 = hashes(6);
    const where = (list: [string, CountedRule][], match: (rule: CountedRule) => boolean) => list.filter(([, rule]) => match(rule)).map(([hash]) => hash);
    const webDeny4 = where(v4, (r) => r.kind === 'profile-rule' && r.profile === 'WEB' && r.rule === 2);
    expect(webDeny4).toHaveLength(2); // two multiport chunks
    const webAllow6 = where(v6, (r) => r.kind === 'profile-rule' && r.profile === 'WEB' && r.rule === 1 && r.direction === 'inbound');
    const web1Drop = where(v4, (r) => r.kind === 'endpoint-drop' && r.endpoint === 'web1' && r.direction === 'inbound');
    const untouched = where(v4, (r) => r.kind === 'profile-rule' && r.profile === 'APP');
    expect(untouched.length).toBeGreaterThan(0);

    counters.update(4, new Map([
      [webDeny4[0]!, { packets: 3, bytes: 180 }],
      [webDeny4[1]!, { packets: 2, bytes: 120 }],
      [web1Drop[0]!, { packets: 9, bytes: 540 }],
    ]));
    counters.update(6, new Map([[webAllow6[0]!, { packets: 4, bytes: 320 }]]));
    const text = await registry.metrics();
    expect(text).toContain('calico_agent_profile_rule_packets_total{profile="WEB",direction="inbound",rule="2",action="deny"} 5');
    expect(text).toContain('calico_agent_profile_rule_bytes_total{profile="WEB",direction="inbound",rule="2",action="deny"} 300');
    expect(text).toContain('calico_agent_profile_rule_packets_total{profile="WEB",direction="inbound",rule="1",action="allow"} 4');
    expect(text).toContain('calico_agent_endpoint_dropped_packets_total{endpoint="web1",direction="inbound"} 9');
    expect(text).toContain('calico_agent_endpoint_dropped_bytes_total{endpoint="web1",direction="inbound"} 540');
    expect(text).not.toContain('profile="APP"');
  });

  it('follows the kernel: a later read replaces the values (a rewritten rule restarts at zero), unknown hashes are ignored', async () => {
    const { registry, counters, hashes } = setUp();
    const [hash] = hashes(4).find(([, r]) => r.kind === 'profile-rule' && r.profile === 'APP' && r.direction === 'inbound')!;
    counters.update(4, new Map([[hash, { packets: 50, bytes: 5000 }], ['not-ours', { packets: 1, bytes: 1 }]]));
    expect(await registry.metrics()).toContain('calico_agent_profile_rule_packets_total{profile="APP",direction="inbound",rule="1",action="allow"} 50');
    counters.update(4, new Map([[hash, { packets: 2, bytes: 100 }]]));
    const text = await registry.metrics();
    expect(text).toContain('calico_agent_profile_rule_packets_total{profile="APP",direction="inbound",rule="1",action="allow"} 2');
    counters.update(4, new Map());
    expect(await registry.metrics()).not.toContain('profile="APP"');
  });
});
