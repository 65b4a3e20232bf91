/**
 * Snapshots shared by the compiler tests: the seeds' WEB/APP example (seed 001/004) on host
 * `host1`, plus builders for endpoints and profiles (validated through the model's schemas).
 * Addresses are documentation ranges.
 */
import { endpointKey, endpointSchema, rulesSchema, type EndpointRef } from '../../src/model/index.js';
import { CalcGraph, defaultCompilerConfig } from '../../compiler/index.js';
import type { CompilerConfig, EndpointInput, ProfileInput, Snapshot } from '../../compiler/index.js';

export function endpointInput(host: string, endpointId: string, raw: Record<string, unknown>): [string, EndpointInput] {
  const ref: EndpointRef = { host, orchestrator: 'docker', workload: `wl-${endpointId}`, endpointId };
  return [endpointKey(ref), { ref, endpoint: endpointSchema.parse(raw) }];
}

export function profile(rules: unknown, tags?: string[]): ProfileInput {
  return tags === undefined ? { rules: rulesSchema.parse(rules) } : { rules: rulesSchema.parse(rules), tags };
}

/** WEB: `allow tcp to ports 80,443`, `allow icmp type 8`, tags WEB + APP_7890; APP: the seed JSON. */
export function webAppSnapshot(config: CompilerConfig = defaultCompilerConfig()): Snapshot {
  return {
    hostname: 'host1',
    config,
    profiles: new Map([
      [
        'WEB',
        profile(
          {
            inbound_rules: [
              { action: 'allow', protocol: 'tcp', dst_ports: [80, 443] },
              { action: 'allow', protocol: 'icmp', icmp_type: 8 },
            ],
            outbound_rules: [{ action: 'allow' }],
          },
          ['WEB', 'APP_7890'],
        ),
      ],
      [
        'APP',
        profile(
          {
            id: 'APP',
            inbound_rules: [
              { action: 'allow', protocol: 'tcp', dst_ports: [7890], src_tag: 'APP_7890' },
              { action: 'allow', protocol: 'icmp', icmp_type: 8 },
            ],
            outbound_rules: [{ action: 'allow' }],
          },
          ['APP'],
        ),
      ],
    ]),
    endpoints: new Map([
      endpointInput('host1', 'web1', {
        state: 'active',
        name: 'caliweb1',
        mac: 'EE:EE:EE:00:00:01',
        profile_ids: ['WEB'],
        ipv4_nets: ['192.0.2.10/32'],
        ipv6_nets: ['2001:db8::10/128'],
      }),
      endpointInput('host1', 'app1', {
        state: 'active',
        name: 'caliapp1',
        mac: 'ee:ee:ee:00:00:02',
        profile_ids: ['APP'],
        ipv4_nets: ['192.0.2.20/32'],
      }),
      endpointInput('host2', 'web2', {
        state: 'active',
        name: 'caliweb2',
        profile_ids: ['WEB'],
        ipv4_nets: ['198.51.100.10/32'],
        ipv6_nets: ['2001:db8:1::10/128'],
      }),
    ]),
  };
}

/**
 * Feeds a snapshot into a calculation graph key by key, in the Maps' order, as the syncer would
 * after a re-list from `previous`: keys of `previous` missing from `snapshot` are deleted first.
 */
export function feedGraph(graph: CalcGraph, snapshot: Snapshot, previous?: Snapshot): CalcGraph {
  if (previous !== undefined) {
    for (const [id, p] of previous.profiles) {
      const now = snapshot.profiles.get(id);
      if (p.rules !== undefined && now?.rules === undefined) graph.setProfileRules(id, undefined);
      if (p.tags !== undefined && now?.tags === undefined) graph.setProfileTags(id, undefined);
    }
    for (const key of previous.endpoints.keys()) if (!snapshot.endpoints.has(key)) graph.setEndpoint(key, undefined);
  }
  for (const [id, p] of snapshot.profiles) {
    if (p.rules !== undefined) graph.setProfileRules(id, p.rules);
    if (p.tags !== undefined) graph.setProfileTags(id, p.tags);
  }
  for (const [key, input] of snapshot.endpoints) graph.setEndpoint(key, input);
  return graph;
}

/** A fresh graph holding `snapshot`. */
export function graphOf(snapshot: Snapshot): CalcGraph {
  return feedGraph(new CalcGraph(snapshot.hostname, snapshot.config), snapshot);
}
