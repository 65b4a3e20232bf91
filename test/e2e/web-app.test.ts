/**
 * The seed's WEB/APP walkthrough end to end, with real packets: two host namespaces, a real
 * calico-agent each (dist/), workloads attached with `calicoctl workload add`, and after every
 * step the connections that must pass AND the ones that must be dropped (test/lab/scenario.ts).
 * IPv4 and IPv6 (ip6tables, inet6 tag ipsets). Each probe is also traced with `calicoctl policy
 * trace`, whose verdict must be the one the packet got. Enforcement latency per command is printed, never
 * asserted. Build first (`npm run build`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { workloadIdentity } from '../../src/cli/workload-command.js';
import { createLab, type Lab, type LabWorkload } from '../lab/lab.js';
import { describeCheck, probe, runStep, setUpScenario, STEPS, type CheckResult, type CommandResult } from '../lab/scenario.js';
import { traceDisagreements } from '../lab/trace-checks.js';
import { dashboardExpressions, exposedMetrics, queriedMetrics } from '../deploy/dashboard-metrics.js';
import { metrics, metricSum, until } from './fault-lab.js';

let lab: Lab;
let workloads: Map<string, LabWorkload>;
const latencies: CommandResult[] = [];

/** Lists the checks whose observed outcome differs from the expected one (empty = all good). */
function mismatches(results: readonly CheckResult[]): string[] {
  return results
    .filter((r) => r.observed !== r.allowed)
    .map((r) => `${describeCheck(r)}: expected ${r.allowed ? 'allowed' : 'denied'}, was ${r.observed ? 'allowed' : 'denied'}`);
}

beforeAll(async () => {
  // A read-back every second, so the per-rule counters on /metrics follow the traffic quickly.
  lab = await createLab({ agentArgs: ['--refresh-interval=1s'] });
  workloads = await setUpScenario(lab);
}, 120_000);

afterAll(async () => {
  await lab?.teardown();
  if (latencies.length > 0) {
    const lines = latencies.map((c) => {
      const hosts = Object.entries(c.enforcedMs)
        .map(([host, ms]) => `${host} ${ms.toFixed(0)} ms`)
        .join(', ');
      return `  ${c.display.padEnd(72)} calicoctl ${c.calicoctlMs.toFixed(0)} ms; enforced after: ${hosts}`;
    });
    console.log(`Enforcement latency (etcd commit → agent /status shows the revision applied):\n${lines.join('\n')}`);
  }
});

describe('WEB/APP walkthrough (seed 002/004) with real packets', () => {
  for (const step of STEPS) {
    test(step.title, async () => {
      const result = await runStep(lab, workloads, step);
      latencies.push(...result.commands);
      expect(mismatches(result.checks)).toEqual([]);
      // `calicoctl policy trace` gives every probe the verdict its packet got.
      const traced = result.checks.map((c) => ({ ...c, from: workloads.get(c.from)!, to: workloads.get(c.to)!, allowed: c.observed, label: describeCheck(c) }));
      expect(await traceDisagreements(lab, traced)).toEqual([]);
      // Every step checks both outcomes, so a dataplane that allows or drops everything fails.
      expect(result.checks.some((c) => c.allowed)).toBe(true);
      expect(result.checks.some((c) => !c.allowed)).toBe(true);
    });
  }

  test('per-rule counters: the rules that allowed or dropped traffic grew, untouched rules did not', async () => {
    const hostB = lab.hosts.B;
    const web2 = workloadIdentity('hostB', 'web2').ref.endpointId;
    const app2 = workloadIdentity('hostB', 'app2').ref.endpointId;
    // After the walkthrough WEB's inbound rules are: 1 allow tcp 80,443; 2 allow icmp type 8; 3 allow icmpv6 type 128.
    const rule = (n: number) => ({ profile: 'WEB', direction: 'inbound', rule: String(n) });
    const readBackAfter = async (): Promise<string> => {
      // Two full read-backs (both families) later, the counters are the kernel's as of now.
      const before = metricSum(await metrics(hostB.agent), 'calico_agent_readback_calls_total', { result: 'ok' });
      let text = '';
      await until('two read-backs on hostB', async () => {
        text = await metrics(hostB.agent);
        return metricSum(text, 'calico_agent_readback_calls_total', { result: 'ok' }) >= before + 4;
      });
      return text;
    };
    const baseline = await readBackAfter();
    const value = (text: string, name: string, labels: Record<string, string>) => metricSum(text, name, labels);

    expect(mismatches(await probe(lab, workloads, [
      { from: 'app1', to: 'web2', probe: 80, family: 4, allowed: true },
      { from: 'app1', to: 'web2', probe: 22, family: 4, allowed: false },
    ]))).toEqual([]);
    const after = await readBackAfter();

    const packets = 'calico_agent_profile_rule_packets_total';
    expect(value(after, packets, { ...rule(1), action: 'allow' })).toBeGreaterThan(value(baseline, packets, { ...rule(1), action: 'allow' }));
    expect(value(after, 'calico_agent_profile_rule_bytes_total', rule(1))).toBeGreaterThan(value(baseline, 'calico_agent_profile_rule_bytes_total', rule(1)));
    const dropped = { endpoint: web2, direction: 'inbound' };
    expect(value(after, 'calico_agent_endpoint_dropped_packets_total', dropped)).toBeGreaterThan(value(baseline, 'calico_agent_endpoint_dropped_packets_total', dropped));
    // Untouched: WEB's ping rules on hostB, and everything of app2 (no traffic went there).
    expect(value(after, packets, rule(2))).toBe(value(baseline, packets, rule(2)));
    expect(value(after, packets, rule(3))).toBe(value(baseline, packets, rule(3)));
    expect(value(after, packets, { profile: 'APP', direction: 'inbound' })).toBe(value(baseline, packets, { profile: 'APP', direction: 'inbound' }));
    expect(value(after, 'calico_agent_endpoint_dropped_packets_total', { endpoint: app2 })).toBe(value(baseline, 'calico_agent_endpoint_dropped_packets_total', { endpoint: app2 }));
  });

  test('the Grafana dashboard queries only metrics a running agent serves', async () => {
    const exposed = exposedMetrics(await metrics(lab.hosts.B.agent));
    const queried = new Set(dashboardExpressions().flatMap(queriedMetrics));
    expect(queried.size).toBeGreaterThan(15);
    expect([...queried].filter((name) => !exposed.has(name))).toEqual([]);
  });

  test('workload remove: the interface and its rules go, other workloads keep working', async () => {
    const before = await lab.status('A');
    await lab.removeWorkload('web1');
    workloads.delete('web1');
    const after = await lab.status('A');
    expect(after.localEndpoints).toBe(before.localEndpoints - 1);
    const { hostInterface } = workloadIdentity('hostA', 'web1');
    const hostLinks = await lab.hosts.A.netns.exec(['ip', '-o', 'link', 'show']);
    expect(hostLinks.stdout).not.toContain(hostInterface);
    expect(mismatches(await probe(lab, workloads, [{ from: 'app1', to: 'web2', probe: 80, family: 4, allowed: true }]))).toEqual([]);
    const calicoctl = await lab.calicoctl(['workload', 'remove', 'web1'], { host: lab.hosts.A, allowFail: true });
    expect(calicoctl.code).toBe(1);
    expect(calicoctl.stderr).toBe('Workload web1 not found on host hostA.\n');
  });
});
