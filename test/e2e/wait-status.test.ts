/**
 * Read-your-writes for policy, with real etcd, two host namespaces with an agent each (dist/),
 * and real packets: `calicoctl … --wait` returns only once both agents enforce the write, so the
 * probe made right after it already sees the new policy (a rule change, a tag change, a new
 * endpoint, and their revocations); a stopped agent makes `--wait` time out naming its host; and
 * `calicoctl status` shows each agent's enforced revision, and a killed agent as stale.
 *
 * The policy and workloads are set up with status reporting off (the lab's own waiting needs
 * that); then both agents are restarted with reporting on (1 s, TTL 5 s), which `--wait` and
 * `status` rely on. From then on only `--wait` tells when policy is enforced.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLab, type Lab, type LabWorkload } from '../lab/lab.js';
import { cleanUp, killAgent, setUpPolicy, sleep, startAgent, workload } from './fault-lab.js';

const REPORTING = ['--reporting-interval=1s', '--reporting-ttl=5s'];

let lab: Lab;
let workloads: Map<string, LabWorkload>;

interface HostRow {
  host: string;
  agent: 'alive' | 'stale';
  revision: number | null;
  lag: number | null;
  lastError: string | null;
  endpoints: { up: number; down: number; error: number } | null;
}

async function status(): Promise<{ policyRevision: number; hosts: HostRow[] }> {
  const result = await lab.calicoctl(['status', '-o', 'json']);
  return JSON.parse(result.stdout) as { policyRevision: number; hosts: HostRow[] };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(async () => {
  lab = await createLab();
  workloads = await setUpPolicy(lab);
  for (const host of Object.values(lab.hosts)) {
    await killAgent(host);
    await startAgent(lab, host, { args: REPORTING });
  }
  // Both agents have published once and are alive.
  await until('both agents alive in calicoctl status', async () => (await status()).hosts.filter((h) => h.agent === 'alive').length === 2);
}, 120_000);

afterAll(async () => {
  await cleanUp();
  await lab?.teardown();
});

describe('--wait', () => {
  test('a rule change and its revocation are enforced when --wait returns', async () => {
    const web1 = workload(workloads, 'web1');
    const app2 = workload(workloads, 'app2');
    expect(await lab.tcp(web1, app2, 22)).toBe(false);

    const added = await lab.calicoctl(['profile', 'APP', 'rule', 'add', 'inbound', 'allow', 'tcp', 'to', 'ports', '22', '--wait=15s']);
    expect(added.stdout).toMatch(/^Enforced by 2 live agents after \d+\.\d{3} s \(etcd revision \d+\)\.\n$/);
    expect(await lab.tcp(web1, app2, 22)).toBe(true);

    const removed = await lab.calicoctl(['profile', 'APP', 'rule', 'remove', 'inbound', 'allow', 'tcp', 'to', 'ports', '22', '--wait=15s']);
    expect(removed.stdout).toMatch(/^Enforced by 2 live agents/);
    expect(await lab.tcp(web1, app2, 22)).toBe(false);
  });

  test('a tag change and its revocation are enforced when --wait returns', async () => {
    const web2 = workload(workloads, 'web2');
    const app1 = workload(workloads, 'app1');
    // APP allows everything from members of tag APP: web2 (on the other host) joins that set.
    expect(await lab.tcp(web2, app1, 22)).toBe(false);
    const tagged = await lab.calicoctl(['profile', 'WEB', 'tag', 'add', 'APP', '--wait=15s']);
    expect(tagged.stdout).toMatch(/^Tag APP added to profile WEB\nEnforced by 2 live agents/);
    expect(await lab.tcp(web2, app1, 22)).toBe(true);
    await lab.calicoctl(['profile', 'WEB', 'tag', 'remove', 'APP', '--wait=15s']);
    expect(await lab.tcp(web2, app1, 22)).toBe(false);
  });

  test('a new endpoint answers as soon as `workload add --wait` returns', async () => {
    const app1 = workload(workloads, 'app1');
    const app3 = await lab.addWorkload({ name: 'app3', host: 'B', profiles: ['APP'], calicoctlWait: '15s' });
    expect(app3.added?.stdout).toMatch(/Enforced by 2 live agents/);
    expect(await lab.ping(app1, app3)).toBe(true);
  });

  test('a stopped agent makes --wait time out naming its host; it catches up when resumed', async () => {
    // Stopped, it keeps counting as alive until its status lease (TTL 5 s, renewed every 1 s)
    // lapses, at least 3.9 s later: a 1 s --wait ends well before that.
    const hostB = lab.hosts.B;
    hostB.agent.process.kill('SIGSTOP');
    try {
      const result = await lab.calicoctl(['profile', 'APP', 'rule', 'add', 'inbound', 'allow', 'tcp', 'to', 'ports', '2222', '--wait=1s'], { allowFail: true });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^Timed out after 1\.\d{3} s waiting for etcd revision (\d+) to be enforced: hostB \(at revision \d+\)\.\n$/);
      expect(result.stderr).not.toContain('hostA');
    } finally {
      hostB.agent.process.kill('SIGCONT');
    }
    const caughtUp = await lab.calicoctl(['profile', 'APP', 'rule', 'remove', 'inbound', 'allow', 'tcp', 'to', 'ports', '2222', '--wait=15s']);
    expect(caughtUp.stdout).toMatch(/^Enforced by 2 live agents/);
  });
});

describe('calicoctl status', () => {
  test('shows each agent current, then a killed agent as stale (and --wait no longer waits for it)', async () => {
    const current = await status();
    expect(current.hosts.map((h) => [h.host, h.agent, h.lag, h.lastError])).toEqual([
      ['hostA', 'alive', 0, null],
      ['hostB', 'alive', 0, null],
    ]);
    for (const host of current.hosts) expect(host.revision).toBeGreaterThanOrEqual(current.policyRevision);
    expect(current.hosts.find((h) => h.host === 'hostB')?.endpoints).toEqual({ up: 3, down: 0, error: 0 });

    const table = await lab.calicoctl(['status']);
    expect(table.stdout).toMatch(/\| hostA \| alive \|/);

    await killAgent(lab.hosts.B);
    await until('hostB stale in calicoctl status', async () => (await status()).hosts.find((h) => h.host === 'hostB')?.agent === 'stale');
    const after = await lab.calicoctl(['profile', 'APP', 'rule', 'add', 'inbound', 'allow', 'tcp', 'to', 'ports', '3333', '--wait=15s']);
    expect(after.stdout).toMatch(/Enforced by 1 live agent after/);
    const stale = (await status()).hosts.find((h) => h.host === 'hostB');
    expect(stale?.lag).toBeGreaterThan(0);
  });
});
