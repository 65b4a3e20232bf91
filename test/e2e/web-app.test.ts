/**
 * The seed's WEB/APP walkthrough end to end, with real packets: two host namespaces, a real
 * calico-agent each (dist/), workloads attached with `calicoctl workload add`, and after every
 * step the connections that must pass AND the ones that must be dropped (test/lab/scenario.ts).
 * IPv4 and IPv6 (ip6tables, inet6 tag ipsets). Enforcement latency per command is printed, never
 * asserted. Build first (`npm run build`).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { workloadIdentity } from '../../src/cli/workload-command.js';
import { createLab, type Lab, type LabWorkload } from '../lab/lab.js';
import { describeCheck, probe, runStep, setUpScenario, STEPS, type CheckResult, type CommandResult } from '../lab/scenario.js';

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
  lab = await createLab();
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
      // Every step checks both outcomes, so a dataplane that allows or drops everything fails.
      expect(result.checks.some((c) => c.allowed)).toBe(true);
      expect(result.checks.some((c) => !c.allowed)).toBe(true);
    });
  }

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
