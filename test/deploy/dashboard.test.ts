/**
 * The Grafana dashboard as shipped: valid JSON whose every query selects a metric the agent
 * registers (its own metrics, the per-rule counters and the process metrics), and that covers
 * every calico_agent_* metric. The walkthrough (test/e2e/web-app.test.ts) checks the same
 * against a running agent's /metrics.
 */
import { expect, test } from 'vitest';
import { createAgentMetrics } from '../../agent/metrics.js';
import { RuleCounterMetrics } from '../../agent/rule-counters.js';
import { CalcGraph, defaultCompilerConfig } from '../../compiler/index.js';
import { dashboardExpressions, exposedMetrics, queriedMetrics } from './dashboard-metrics.js';

test('every metric the dashboard queries is one the agent exposes, and every agent metric is on it', async () => {
  const metrics = createAgentMetrics({ processMetrics: true });
  new RuleCounterMetrics(new CalcGraph('h', defaultCompilerConfig()), metrics.registry);
  const exposed = exposedMetrics(await metrics.registry.metrics());
  const exprs = dashboardExpressions();
  expect(exprs.length).toBeGreaterThan(20);
  const queried = new Set(exprs.flatMap(queriedMetrics));
  expect([...queried].filter((name) => !exposed.has(name))).toEqual([]);
  const ours = [...exposed].filter((name) => name.startsWith('calico_agent_'));
  const covered = (name: string): boolean => [...queried].some((q) => q === name || q.startsWith(`${name}_`));
  expect(ours.filter((name) => !/_(bucket|sum|count)$/.test(name) && !covered(name))).toEqual([]);
});

test('the helper finds names in the forms the dashboard writes them', () => {
  expect(queriedMetrics('histogram_quantile(0.5, sum by (le) (rate(a_seconds_bucket{instance=~"$i"}[5m])))')).toEqual(['a_seconds_bucket']);
  expect(queriedMetrics('label_values(calico_agent_applied_revision, instance)')).toEqual(['calico_agent_applied_revision']);
  expect(exposedMetrics('# TYPE x histogram\n# TYPE y_total counter\n')).toEqual(new Set(['x', 'x_bucket', 'x_sum', 'x_count', 'y_total']));
});
