/**
 * Per-rule packet counters on /metrics, from the kernel's own rule counters: every read-back of
 * our tables (`iptables-save -c`, the periodic verification read; never an extra call on the
 * change path) hands its counters here, and a scrape labels them through the calculation graph.
 *
 *   calico_agent_profile_rule_{packets,bytes}_total{profile,direction,rule,action}
 *       what each rule of a profile used on this host matched (rule: 1-based, as `rule show`);
 *   calico_agent_endpoint_dropped_{packets,bytes}_total{endpoint,direction}
 *       what each local endpoint dropped because nothing allowed it (the final DROP of its chain:
 *       default deny, a missing profile, or an inactive endpoint).
 *
 * Invariants and limits:
 * - Cardinality: only rules that have matched at least one packet are exported, so series are
 *   bounded by the rules of the profiles this host's endpoints use (plus 2 per local endpoint),
 *   and in practice by the rules traffic actually hits. Both IP families add into one series.
 * - Freshness: values are as of the last read-back (the refresh interval, 60 s by default).
 * - Resets: the kernel starts a rewritten rule at zero; Prometheus reads the drop as a counter
 *   reset, so rate() and increase() stay right.
 */
import { Counter, type Registry } from 'prom-client';
import type { CalcGraph } from '../compiler/index.js';
import type { IpFamily, RuleCounter } from '../compiler/types.js';

type RuleLabels = 'profile' | 'direction' | 'rule' | 'action';
type EndpointLabels = 'endpoint' | 'direction';

export class RuleCounterMetrics {
  private readonly latest = new Map<IpFamily, ReadonlyMap<string, RuleCounter>>();

  constructor(graph: CalcGraph, registry: Registry) {
    const totals = (): { rules: Map<string, [Record<RuleLabels, string>, RuleCounter]>; endpoints: Map<string, [Record<EndpointLabels, string>, RuleCounter]> } => {
      const rules = new Map<string, [Record<RuleLabels, string>, RuleCounter]>();
      const endpoints = new Map<string, [Record<EndpointLabels, string>, RuleCounter]>();
      const add = <L extends string>(into: Map<string, [Record<L, string>, RuleCounter]>, labels: Record<L, string>, counter: RuleCounter): void => {
        const key = JSON.stringify(labels);
        const total = into.get(key);
        if (total === undefined) into.set(key, [labels, { ...counter }]);
        else {
          total[1].packets += counter.packets;
          total[1].bytes += counter.bytes;
        }
      };
      for (const [family, counters] of this.latest) {
        if (counters.size === 0) continue;
        graph.forEachCountedRule(family, (hash, rule) => {
          const counter = counters.get(hash);
          if (counter === undefined) return;
          if (rule.kind === 'profile-rule') add(rules, { profile: rule.profile, direction: rule.direction, rule: String(rule.rule), action: rule.action }, counter);
          else add(endpoints, { endpoint: rule.endpoint, direction: rule.direction }, counter);
        });
      }
      return { rules, endpoints };
    };
    // One scrape computes the totals once for its four metrics (collected one after another).
    let scrape: ReturnType<typeof totals> | undefined;
    const current = (): ReturnType<typeof totals> => {
      if (scrape === undefined) {
        scrape = totals();
        queueMicrotask(() => (scrape = undefined));
      }
      return scrape;
    };
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[], pick: () => Map<string, [Record<L, string>, RuleCounter]>, field: keyof RuleCounter): void => {
      new Counter<L>({
        name,
        help,
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          for (const [labels, value] of pick().values()) this.inc(labels as Partial<Record<L, string>>, value[field]);
        },
      });
    };
    const ruleLabels = ['profile', 'direction', 'rule', 'action'] as const;
    const endpointLabels = ['endpoint', 'direction'] as const;
    counter('calico_agent_profile_rule_packets_total', 'Packets each profile rule matched (kernel rule counters, as of the last read-back)', ruleLabels, () => current().rules, 'packets');
    counter('calico_agent_profile_rule_bytes_total', 'Bytes each profile rule matched (kernel rule counters, as of the last read-back)', ruleLabels, () => current().rules, 'bytes');
    counter('calico_agent_endpoint_dropped_packets_total', 'Packets a local endpoint dropped because no profile allowed them', endpointLabels, () => current().endpoints, 'packets');
    counter('calico_agent_endpoint_dropped_bytes_total', 'Bytes a local endpoint dropped because no profile allowed them', endpointLabels, () => current().endpoints, 'bytes');
  }

  /** The counters of one family's filter table, from a read-back. */
  update(family: IpFamily, counters: ReadonlyMap<string, RuleCounter>): void {
    this.latest.set(family, counters);
  }
}
