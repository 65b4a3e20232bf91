/**
 * Dataplane and process faults under running agents, with real iptables/ipsets in host
 * namespaces and real packets: someone else flushes one of our chains or deletes our FORWARD
 * hook, iptables-restore fails (a FAKE wrapper, see fault-lab.ts), and the agents are SIGKILLed
 * and restarted while a TCP connection is open. Agents run with `--refresh-interval=1s` so
 * read-back repairs come quickly. Build first (`npm run build`).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createLab, type HostId, type Lab, type LabHost, type LabWorkload } from '../lab/lab.js';
import {
  BASELINE,
  chainRules,
  cleanUp,
  createRestoreWrapper,
  eventuallyRight,
  iptablesCommand,
  iptablesSave,
  killAgent,
  logLines,
  metrics,
  metricSum,
  restoreBaseline,
  openConnection,
  sampleDenied,
  setUpPolicy,
  sleep,
  startAgent,
  WEB_RULES,
  workload,
  wrongChecks,
  type Check,
  type ProfileRules,
} from './fault-lab.js';

const AGENT_ARGS = ['--refresh-interval=1s'];
const HOSTS: HostId[] = ['A', 'B'];

let lab: Lab;
let workloads: Map<string, LabWorkload>;

async function updateRules(rules: ProfileRules): Promise<number> {
  const result = await lab.calicoctl(['profile', rules.id, 'rule', 'update'], { input: JSON.stringify(rules) });
  await lab.waitApplied(result.revision);
  return result.revision;
}

/** Polls `read` until it returns `expected` (deep-equal as JSON) or the time is up; returns the last value. */
async function eventually<T>(read: () => Promise<T>, expected: T, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (JSON.stringify(value) === JSON.stringify(expected) || Date.now() > deadline) return value;
    await sleep(50);
  }
}

/** Replaces a host's agent with a fresh one (as a supervisor would), same flags as the lab's. */
async function restartAgent(host: LabHost, options: { env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  await killAgent(host);
  await startAgent(lab, host, { args: AGENT_ARGS, ...options });
}

beforeAll(async () => {
  lab = await createLab({ agentArgs: AGENT_ARGS });
  workloads = await setUpPolicy(lab);
}, 120_000);

afterAll(async () => {
  await cleanUp();
  await lab?.teardown();
});

beforeEach(async () => {
  // Each test starts from the baseline policy, enforced …
  expect(await wrongChecks(lab, workloads, BASELINE)).toEqual([]);
});

afterEach(async () => {
  // … and puts it back (agents running, rules rewritten) however it ended.
  await restoreBaseline(lab, AGENT_ARGS);
});

describe('dataplane faults under running agents', () => {
  test('a flushed profile chain is rewritten by the next read-back; traffic is right again', async () => {
    const hostB = lab.hosts.B;
    const iptables = await iptablesCommand(hostB.netns);
    const intact = chainRules(await iptablesSave(hostB.netns), 'cali-pri-WEB');
    expect(intact.length).toBeGreaterThan(0);
    const driftBefore = metricSum(await metrics(hostB.agent), 'calico_agent_drift_repairs_total');

    // Freeze the agent so the damage is observable, then let it find and repair it.
    hostB.agent.process.kill('SIGSTOP');
    try {
      await hostB.netns.exec([iptables, '-F', 'cali-pri-WEB']);
      expect(chainRules(await iptablesSave(hostB.netns), 'cali-pri-WEB')).toEqual([]);
      // An empty profile chain fails closed: WEB's own allow rule is gone too.
      // (Not traced: trace tells the policy in etcd, and this is the kernel broken under it.)
      expect(await wrongChecks(lab, workloads, [{ from: 'app1', to: 'web2', port: 80, allowed: false }], { trace: false })).toEqual([]);
    } finally {
      hostB.agent.process.kill('SIGCONT');
    }
    expect(await eventually(async () => chainRules(await iptablesSave(hostB.netns), 'cali-pri-WEB'), intact)).toEqual(intact);
    expect(metricSum(await metrics(hostB.agent), 'calico_agent_drift_repairs_total')).toBeGreaterThan(driftBefore);
    expect(await eventuallyRight(lab, workloads, BASELINE)).toEqual([]);
  });

  test('a flushed tag ipset is refilled by the next read-back', async () => {
    const hostB = lab.hosts.B;
    const members = async (): Promise<string[]> =>
      (await hostB.netns.exec(['ipset', 'list', 'cali4-tag-APP'])).stdout
        .split('Members:\n')[1]!
        .split('\n')
        .filter((line) => line !== '')
        .sort();
    const intact = await members();
    expect(intact).toEqual([workload(workloads, 'app1').ipv4, workload(workloads, 'app2').ipv4].sort());

    hostB.agent.process.kill('SIGSTOP');
    try {
      await hostB.netns.exec(['ipset', 'flush', 'cali4-tag-APP']);
      // app2 (hostB) admits APP members only: app1 is no longer one.
      expect(await wrongChecks(lab, workloads, [{ from: 'app1', to: 'app2', port: 22, allowed: false }], { trace: false })).toEqual([]);
    } finally {
      hostB.agent.process.kill('SIGCONT');
    }
    expect(await eventually(members, intact)).toEqual(intact);
    expect(await eventuallyRight(lab, workloads, BASELINE)).toEqual([]);
  });

  test('a deleted FORWARD hook (IPv4 on hostB, IPv6 on hostA) is put back; the hole it opened closes', async () => {
    const { A: hostA, B: hostB } = lab.hosts;
    const forwardV4 = chainRules(await iptablesSave(hostB.netns, 4), 'FORWARD');
    const forwardV6 = chainRules(await iptablesSave(hostA.netns, 6), 'FORWARD');
    expect(forwardV4[0]).toMatch(/-j cali-FORWARD/);
    expect(forwardV6[0]).toMatch(/-j cali-FORWARD/);

    for (const host of [hostA, hostB]) host.agent.process.kill('SIGSTOP');
    try {
      await hostB.netns.exec([await iptablesCommand(hostB.netns, 4), '-D', 'FORWARD', '1']);
      await hostA.netns.exec([await iptablesCommand(hostA.netns, 6), '-D', 'FORWARD', '1']);
      // Without the hook nothing of ours sees forwarded packets: denied ports are open.
      const holes: Check[] = [
        { from: 'app1', to: 'web2', port: 22, allowed: true },
        { from: 'web2', to: 'web1', port: 22, family: 6, allowed: true },
      ];
      expect(await wrongChecks(lab, workloads, holes, { trace: false })).toEqual([]); // the kernel's holes, not the policy
    } finally {
      for (const host of [hostA, hostB]) host.agent.process.kill('SIGCONT');
    }
    expect(await eventually(async () => chainRules(await iptablesSave(hostB.netns, 4), 'FORWARD'), forwardV4)).toEqual(forwardV4);
    expect(await eventually(async () => chainRules(await iptablesSave(hostA.netns, 6), 'FORWARD'), forwardV6)).toEqual(forwardV6);
    expect(await eventuallyRight(lab, workloads, BASELINE)).toEqual([]);
  });

  test('iptables-restore failing (FAKE wrapper): retried until it converges; failing always: exit 1, rules stay', async () => {
    const hostA = lab.hosts.A;
    const wrapper = await createRestoreWrapper();
    await restartAgent(hostA, { env: { PATH: `${wrapper.dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` } });

    // 1. The next three restores fail; the reconciler re-reads, retries and converges.
    await wrapper.setMode({ failNext: 3 });
    const sshFromApp = { action: 'allow', protocol: 'tcp', dst_ports: [22], src_tag: 'APP' };
    await updateRules({ ...WEB_RULES, inbound_rules: [...WEB_RULES.inbound_rules, sshFromApp] });
    expect(await wrapper.failures()).toBe(3);
    const text = await metrics(hostA.agent);
    expect(metricSum(text, 'calico_agent_restore_calls_total', { tool: 'iptables-restore', family: 'v4', result: 'error' })).toBe(3);
    expect(metricSum(text, 'calico_agent_apply_failures_total')).toBe(3);
    expect(await wrongChecks(lab, workloads, [
      { from: 'app1', to: 'web1', port: 22, allowed: true },
      { from: 'web2', to: 'web1', port: 22, family: 6, allowed: false },
      { from: 'web2', to: 'web1', port: 80, family: 6, allowed: true },
    ])).toEqual([]);

    // 2. Every restore fails: after its retries and a whole rewrite the agent exits 1.
    await wrapper.setMode('always');
    const sshFromAnywhere = { action: 'allow', protocol: 'tcp', dst_ports: [22] };
    const result = await lab.calicoctl(['profile', 'WEB', 'rule', 'update'], {
      input: JSON.stringify({ ...WEB_RULES, inbound_rules: [...WEB_RULES.inbound_rules, sshFromApp, sshFromAnywhere] }),
    });
    await lab.waitApplied(result.revision, { hosts: ['B'] });
    expect(await hostA.agent.exited).toBe(1);
    expect(hostA.agent.log().trimEnd().split('\n').pop()).toMatch(/^calico-agent: dataplane still failing after \d+ attempts and a full rewrite/);
    expect(await wrapper.failures()).toBeGreaterThan(3);
    // hostA's IPv4 kernel keeps the rules of the last good pass: nothing flushed, denied stays
    // denied. IPv6 (its restore is not wrapped) is written beside IPv4 and got the new rule.
    expect(await wrongChecks(lab, workloads, [
      { from: 'web2', to: 'web1', port: 22, allowed: false },
      { from: 'web2', to: 'app1', port: 22, allowed: false },
      { from: 'app1', to: 'web1', port: 22, allowed: true },
      { from: 'web2', to: 'web1', port: 22, family: 6, allowed: true },
      { from: 'web2', to: 'web1', port: 80, family: 6, allowed: true },
    ], { trace: false })).toEqual([]); // the kernel's last good pass, behind the policy in etcd

    // 3. The supervisor restarts it with a working iptables-restore: the pending change lands.
    await startAgent(lab, hostA, { args: AGENT_ARGS });
    await lab.waitApplied(result.revision, { hosts: ['A'] });
    expect(await wrongChecks(lab, workloads, [
      { from: 'web2', to: 'web1', port: 22, allowed: true },
      { from: 'web2', to: 'web1', port: 22, family: 6, allowed: true },
      { from: 'web2', to: 'app1', port: 22, allowed: false },
    ])).toEqual([]);
  });

  test('agents SIGKILLed and restarted while a TCP connection is open: it carries on, denied stays denied, 0 bytes rewritten', async () => {
    // app1 (hostA) → app2 (hostB): allowed by APP (from tag APP), so both agents are on its path.
    const connection = await openConnection(workload(workloads, 'app1'), workload(workloads, 'app2'), 5000);
    const denied: Check[] = [
      { from: 'app1', to: 'web2', port: 22, allowed: false }, // hostB's inbound policy
      { from: 'web2', to: 'app1', port: 22, allowed: false }, // hostA's inbound policy
      { from: 'web1', to: 'app2', port: 22, allowed: false },
    ];
    const sampler = sampleDenied(workloads, denied, 200);
    try {
      for (const id of HOSTS) expect(await killAgent(lab.hosts[id])).toBe(null); // killed by the signal
      await connection.roundTrip();
      expect(await wrongChecks(lab, workloads, BASELINE)).toEqual([]);

      await Promise.all(HOSTS.map((id) => startAgent(lab, lab.hosts[id], { args: AGENT_ARGS })));
      await connection.roundTrip();
      await sleep(1500); // past the restarted agents' first periodic read-back
      await connection.roundTrip();
      expect(connection.open()).toBe(true);

      for (const id of HOSTS) {
        const agent = lab.hosts[id].agent;
        const text = await metrics(agent);
        expect(metricSum(text, 'calico_agent_restore_calls_total')).toBe(0);
        expect(metricSum(text, 'calico_agent_restore_bytes_sum')).toBe(0);
        expect(logLines(agent, 'initial dataplane sync complete').map((line) => line.bytes)).toEqual([0]);
      }
    } finally {
      const { probes, leaks } = await sampler.stop();
      await connection.close();
      expect(leaks).toEqual([]);
      expect(probes).toBeGreaterThan(10);
    }
    expect(connection.received().length).toBeGreaterThan(10);
    expect(await wrongChecks(lab, workloads, BASELINE)).toEqual([]);
  });
});
