/**
 * Test helper: the metric names the Grafana dashboard (deploy/grafana/calico-agent-dashboard.json)
 * queries, and the names a `/metrics` text exposes (histograms as their _bucket/_sum/_count).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../lab/lab.js';

export const DASHBOARD_PATH = join(REPO_ROOT, 'deploy/grafana/calico-agent-dashboard.json');

interface Panel {
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Every PromQL expression of the dashboard, panel by panel (nested rows included), and the variables'. */
export function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as { panels: Panel[]; templating: { list: { query?: unknown }[] } };
  const exprs: string[] = [];
  const visit = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) if (target.expr) exprs.push(target.expr);
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating.list) {
    const query = variable.query as { query?: string } | string | undefined;
    const text = typeof query === 'string' ? query : query?.query;
    if (text?.startsWith('label_values(')) exprs.push(text);
  }
  return exprs;
}

/** Metric names an expression selects: a name directly followed by `{` or by `,` inside label_values( ). */
export function queriedMetrics(expr: string): string[] {
  const names = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1]!);
  const labelValues = /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),/.exec(expr);
  if (labelValues) names.push(labelValues[1]!);
  return names;
}

/** The sample names a Prometheus text exposition can serve, from its `# TYPE` lines. */
export function exposedMetrics(text: string): Set<string> {
  const names = new Set<string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, kind] = match as unknown as [string, string, string];
    names.add(name);
    if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    if (kind === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}
