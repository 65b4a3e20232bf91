/**
 * etcd with authentication on, set up by `deploy/scripts/etcd-roles.sh --enable-auth` on a real
 * private etcd: calicoctl as calico-policy-writer writes policy; as calico-agent it cannot (one
 * line, exit 1), nor with a wrong password or none; `calico-agent --once` as calico-agent reads
 * the policy, programs a namespace and writes its endpoint status, while its credentials cannot
 * write policy; a token etcd invalidated is replaced by a new one. Build first (`npm run build`).
 */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readHostStatuses } from '../../src/datastore/agent-status.js';
import { CalicoStore } from '../../src/datastore/calico-store.js';
import { createEtcdClient } from '../../src/datastore/client.js';
import { gatewayKv } from '../../src/datastore/gateway-kv.js';
import { endpointStatusKey, profileRulesKey, type EndpointRef } from '../../src/model/index.js';
import { calicoctl } from '../cli/run-calicoctl.js';
import { freePort, startEtcd, type EtcdInstance } from '../helpers/etcd.js';
import { createNetns, type Netns } from '../helpers/netns.js';
import { runNode } from '../helpers/run-node.js';
import { until } from '../helpers/until.js';
import { REPO_ROOT } from '../lab/lab.js';

const run = promisify(execFile);
const PASSWORDS = { agent: 'agent-secret', writer: 'writer-secret', root: 'root-secret' };
const HOST = 'auth-host';
const ref: EndpointRef = { host: HOST, orchestrator: 'docker', workload: 'w1', endpointId: 'e1' };

let etcd: EtcdInstance;
let netns: Netns;
const as = (username: string | undefined, password?: string): NodeJS.ProcessEnv => ({
  ...etcd.env,
  ETCD_USERNAME: username,
  ETCD_PASSWORD: username === undefined ? undefined : password,
});
const writer = () => as('calico-policy-writer', PASSWORDS.writer);
const agent = () => as('calico-agent', PASSWORDS.agent);

beforeAll(async () => {
  etcd = await startEtcd();
  netns = await createNetns('etcd-auth');
  const { stdout } = await run(join(REPO_ROOT, 'deploy/scripts/etcd-roles.sh'), ['--enable-auth'], {
    env: {
      ...process.env,
      ETCDCTL_ENDPOINTS: etcd.endpoint,
      CALICO_AGENT_PASSWORD: PASSWORDS.agent,
      CALICO_WRITER_PASSWORD: PASSWORDS.writer,
      ETCD_ROOT_PASSWORD: PASSWORDS.root,
    },
  });
  expect(stdout).toBe('etcd users calico-agent and calico-policy-writer are ready; auth is enabled\n');
}, 60_000);

afterAll(async () => {
  await netns?.destroy();
  await etcd?.stop();
});

describe('etcd authentication and least-privilege roles', () => {
  test('calicoctl as calico-policy-writer writes and reads policy', async () => {
    for (const line of ['profile add WEB', 'profile WEB rule add inbound allow tcp to ports 80', 'status']) {
      const r = await calicoctl(writer(), line.split(' '));
      expect({ line, code: r.code, stderr: r.stderr }).toEqual({ line, code: 0, stderr: '' });
    }
    const store = new CalicoStore(gatewayKv({ endpoints: [etcd.endpoint], tls: {}, auth: { username: 'calico-policy-writer', password: PASSWORDS.writer } }));
    try {
      await store.putEndpoint(ref, { state: 'active', name: 'cali1', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.1/32'], ipv6_nets: [] });
    } finally {
      store.close();
    }
  });

  test.each([
    ['as calico-agent', () => agent(), /^etcd at .* rejected the request: etcdserver: permission denied\n$/],
    ['with a wrong password', () => as('calico-policy-writer', 'nope'), /^etcd at .* refused user "calico-policy-writer" \(ETCD_USERNAME\/ETCD_PASSWORD\): etcdserver: authentication failed, invalid user ID or password\n$/],
    ['without credentials', () => as(undefined), /^etcd at .* rejected the request: etcdserver: user name is empty\n$/],
  ])('calicoctl %s cannot write policy: one line, exit 1', async (_what, env, message) => {
    const r = await calicoctl(env(), ['profile', 'add', 'EVIL']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  test('calico-agent --once as calico-agent programs the namespace and writes its status; its credentials cannot write policy', async () => {
    const result = await runNode(
      'dist/agent/main.js',
      ['--once', '--dataplane-netns', netns.name, '--hostname', HOST, '--iptables-backend', 'nft', '--health-listen', 'none'],
      agent(),
    );
    expect({ code: result.code, stderr: result.stderr.split('\n').filter((l) => l.includes('"level":50')) }).toEqual({ code: 0, stderr: [] });
    expect((await netns.exec(['iptables-nft-save', '-t', 'filter'])).stdout).toMatch(/^:cali-pri-WEB /m);
    const client = createEtcdClient({ endpoints: [etcd.endpoint], tls: {}, auth: { username: 'calico-agent', password: PASSWORDS.agent } });
    try {
      expect(await client.get(endpointStatusKey(ref)).string()).toBe('{"status":"down"}');
      await expect(client.put(profileRulesKey('WEB')).value('{"inbound_rules":[],"outbound_rules":[]}')).rejects.toThrow(/permission denied/);
    } finally {
      client.close();
    }
  });

  test('calicoctl authenticates again when etcd invalidates its token', async () => {
    const kv = gatewayKv({ endpoints: [etcd.endpoint], tls: {}, auth: { username: 'calico-policy-writer', password: PASSWORDS.writer } });
    try {
      const key = Buffer.from('/calico/v1/policy/profile/TOKEN/tags');
      await kv.txn({ compare: [], success: [{ request_put: { key, value: Buffer.from('["TOKEN"]') } }] });
      const range = () => kv.range({ key });
      expect((await range()).kvs).toHaveLength(1);
      // Setting the same password again makes etcd drop the user's tokens.
      await run('sh', ['-c', `printf '%s\\n' "$P" | etcdctl user passwd calico-policy-writer --interactive=false`], {
        env: { ...process.env, P: PASSWORDS.writer, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: etcd.endpoint, ETCDCTL_USER: `root:${PASSWORDS.root}` },
      });
      expect((await range()).kvs).toHaveLength(1);
    } finally {
      kv.close();
    }
  });
  test('the agent daemon as calico-agent keeps enforcing and reporting after etcd invalidates its token', async () => {
    const port = await freePort();
    const daemon = spawn(
      process.execPath,
      [join(REPO_ROOT, 'dist/agent/main.js'), '--dataplane-netns', netns.name, '--hostname', HOST, '--iptables-backend', 'nft', '--health-listen', `127.0.0.1:${port}`],
      { env: { ...agent(), CALICO_AGENT_REPORTING_INTERVAL: '1s', CALICO_AGENT_REPORTING_TTL: '5s' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    daemon.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const status = async () => (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { appliedRevision: number };
    const waitFor = (what: string, check: () => Promise<boolean>) => until(() => `${what}; agent log:\n${log.slice(-3000)}`, check, 15_000);
    const writerKv = gatewayKv({ endpoints: [etcd.endpoint], tls: {}, auth: { username: 'calico-policy-writer', password: PASSWORDS.writer } });
    const writerStore = new CalicoStore(writerKv);
    try {
      await waitFor('the agent ready', async () => (await fetch(`http://127.0.0.1:${port}/readiness`)).status === 200);
      const reports = async () => (await readHostStatuses(writerKv)).find((h) => h.host === HOST);
      await waitFor('its status published', async () => (await reports())?.alive === true);
      // etcd drops every token of calico-agent (its password set again).
      await run('sh', ['-c', `printf '%s\\n' "$P" | etcdctl user passwd calico-agent --interactive=false`], {
        env: { ...process.env, P: PASSWORDS.agent, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: etcd.endpoint, ETCDCTL_USER: `root:${PASSWORDS.root}` },
      });
      await writerStore.updateRules('WEB', (rules) => ({ ...rules, inbound_rules: [...rules.inbound_rules, { action: 'allow', protocol: 'tcp', dst_ports: [8080] }] }));
      const revision = writerStore.lastWriteRevision!;
      await waitFor('the change enforced', async () => (await status()).appliedRevision >= revision);
      expect((await netns.exec(['iptables-nft-save', '-t', 'filter'])).stdout).toMatch(/^-A cali-pri-WEB .*8080/m);
      const published = await (async () => {
        let seen = 0;
        await waitFor('its dataplane status at the new revision', async () => {
          seen = (await reports())?.dataplane?.revision ?? 0;
          return seen >= revision;
        });
        return seen;
      })();
      expect(published).toBeGreaterThanOrEqual(revision);
      expect(daemon.exitCode).toBeNull();
    } finally {
      writerStore.close();
      daemon.kill('SIGTERM');
      await new Promise((r) => (daemon.exitCode !== null ? r(undefined) : daemon.once('exit', r)));
    }
  }, 40_000);
});
