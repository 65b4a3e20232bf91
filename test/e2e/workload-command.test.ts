/**
 * `calicoctl workload add/remove` against real etcd and real network namespaces (no agent): what
 * it creates (veth pair, addresses, routes, endpoint key), what it removes, and that every error
 * leaves no veth and no key behind. Runs dist/calicoctl.cjs (build first).
 */
import { spawn } from 'node:child_process';
import type { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { workloadIdentity } from '../../src/cli/workload-command.js';
import { createEtcdClient } from '../../src/datastore/client.js';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';
import { createNetns, type ExecResult, type Netns } from '../helpers/netns.js';
import { CALICOCTL } from '../lab/lab.js';

const HOST = 'wl-test-host';
const ENDPOINTS_PREFIX = `/calico/v1/host/${HOST}/`;

let etcd: EtcdInstance;
let client: Etcd3;
let dataplane: Netns;
let workload: Netns;
const extra: Netns[] = [];

function calicoctl(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CALICOCTL, ...args], {
      env: { ...etcd.env, CALICO_HOSTNAME: HOST, CALICO_AGENT_DATAPLANE_NETNS: dataplane.name, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function links(ns: Netns): Promise<string[]> {
  const result = await ns.exec(['ip', '-j', 'link', 'show']);
  return (JSON.parse(result.stdout) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n !== 'lo');
}

async function endpointKeys(): Promise<Record<string, string>> {
  return client.getAll().prefix(ENDPOINTS_PREFIX).strings();
}

/** Asserts the failure mode every error case must have: exit 1, one message, nothing made. */
async function expectNothingMade(result: ExecResult, message: RegExp): Promise<void> {
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(message);
  expect(await links(dataplane)).toEqual([]);
  expect(await links(workload)).toEqual([]);
  expect(await endpointKeys()).toEqual({});
}

beforeAll(async () => {
  etcd = await startEtcd();
  // The datastore's client: no circuit breaker, so it works again as soon as etcd restarts.
  client = createEtcdClient({ endpoints: [etcd.endpoint], tls: {} });
  await client.put('/calico/v1/policy/profile/WEB/tags').value('["WEB"]');
  await client.put('/calico/v1/policy/profile/WEB/rules').value('{"inbound_rules": [], "outbound_rules": []}');
});

afterAll(async () => {
  client?.close();
  await etcd?.stop();
});

beforeEach(async () => {
  dataplane = await createNetns('wl-host');
  workload = await createNetns('wl-work');
});

afterEach(async () => {
  for (const ns of [workload, dataplane, ...extra.splice(0)]) await ns?.destroy();
  await client.delete().prefix(ENDPOINTS_PREFIX);
});

describe('workload add', () => {
  test('creates the veth pair, addresses, routes and the endpoint key; remove undoes both', async () => {
    const added = await calicoctl([
      'workload', 'add', 'web1', '--netns', workload.name,
      '--ip=198.51.100.7', '--ip', '2001:db8:a::7/128', '--profile=WEB',
    ]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    const { ref, hostInterface } = workloadIdentity(HOST, 'web1');
    expect(hostInterface).toMatch(/^cali[0-9a-f]{11}$/);
    expect(added.stdout).toContain(hostInterface);

    const [hostSide] = JSON.parse((await dataplane.exec(['ip', '-j', 'link', 'show', 'dev', hostInterface])).stdout) as {
      address: string;
      flags: string[];
    }[];
    expect(hostSide?.address).toBe('ee:ee:ee:ee:ee:ee');
    expect(hostSide?.flags).toContain('UP');
    const [eth0] = JSON.parse((await workload.exec(['ip', '-j', 'addr', 'show', 'dev', 'eth0'])).stdout) as {
      address: string;
      flags: string[];
      addr_info: { local: string; prefixlen: number; scope: string }[];
    }[];
    expect(eth0?.flags).toContain('UP');
    const globalAddrs = eth0!.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
    expect(globalAddrs.sort()).toEqual(['198.51.100.7/32', '2001:db8:a::7/128']);
    expect((await workload.exec(['ip', '-4', 'route', 'show', 'default'])).stdout).toMatch(/default via 169\.254\.1\.1 dev eth0/);
    expect((await workload.exec(['ip', '-6', 'route', 'show', 'default'])).stdout).toMatch(/default via fe80::ecee:eeff:feee:eeee dev eth0/);

    const keys = await endpointKeys();
    const key = `/calico/v1/host/${HOST}/workload/cli/web1/endpoint/${ref.endpointId}`;
    expect(Object.keys(keys)).toEqual([key]);
    expect(JSON.parse(keys[key]!)).toEqual({
      state: 'active',
      name: hostInterface,
      mac: eth0!.address,
      profile_ids: ['WEB'],
      ipv4_nets: ['198.51.100.7/32'],
      ipv6_nets: ['2001:db8:a::7/128'],
      ipv4_gateway: '169.254.1.1',
      ipv6_gateway: 'fe80::ecee:eeff:feee:eeee',
    });

    const removed = await calicoctl(['workload', 'remove', 'web1']);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toBe(`Workload web1 removed from host ${HOST}\n`);
    expect(await links(dataplane)).toEqual([]);
    expect(await links(workload)).toEqual([]);
    expect(await endpointKeys()).toEqual({});
  });

  test('--dataplane-netns flag wins over the environment; IPv4-only gets no IPv6 gateway', async () => {
    const added = await calicoctl(
      ['workload', 'add', 'app1', `--netns=${workload.name}`, '--ip=198.51.100.8', `--dataplane-netns=${dataplane.name}`],
      { CALICO_AGENT_DATAPLANE_NETNS: 'no-such-namespace' },
    );
    expect(added.stderr).toBe('');
    const { hostInterface } = workloadIdentity(HOST, 'app1');
    expect(await links(dataplane)).toEqual([hostInterface]);
    const stored = JSON.parse(Object.values(await endpointKeys())[0]!) as Record<string, unknown>;
    expect(stored).toMatchObject({ profile_ids: [], ipv6_nets: [], ipv4_gateway: '169.254.1.1', ipv6_gateway: null });
    expect((await workload.exec(['ip', '-6', 'route', 'show', 'default'])).stdout).toBe('');
  });

  test.each([
    [['--ip=198.51.100.9', '--profile=NOPE'], /^Profile with name NOPE was not found\.\n$/],
    [['--ip=198.51.100.9', '--profile=WEB', '--profile=WEB'], /specified more than once/],
    [[], /^At least one --ip is required\.\n$/],
    [['--ip=198.51.100.0/24'], /Invalid --ip "198\.51\.100\.0\/24"/],
    [['--ip=not-an-ip'], /Invalid --ip "not-an-ip"/],
    [['--ip=169.254.1.1'], /not a unicast address/],
    [['--ip=fe80::1'], /not a unicast address/],
    [['--ip=198.51.100.9', '--ip=198.51.100.9'], /IP 198\.51\.100\.9 was specified more than once/],
  ])('bad arguments %j: exit 1, nothing made', async (args, message) => {
    await expectNothingMade(await calicoctl(['workload', 'add', 'bad1', `--netns=${workload.name}`, ...args]), message);
  });

  test('an invalid workload name, a missing --netns, unknown namespaces', async () => {
    await expectNothingMade(
      await calicoctl(['workload', 'add', 'bad/name', `--netns=${workload.name}`, '--ip=198.51.100.9']),
      /Invalid workload name/,
    );
    await expectNothingMade(await calicoctl(['workload', 'add', 'w', '--ip=198.51.100.9']), /^Usage:/);
    await expectNothingMade(
      await calicoctl(['workload', 'add', 'w', '--netns=ca-missing-ns', '--ip=198.51.100.9']),
      /^Network namespace ca-missing-ns \(workload namespace\) does not exist/,
    );
    await expectNothingMade(
      await calicoctl(['workload', 'add', 'w', `--netns=${workload.name}`, '--ip=198.51.100.9'], {
        CALICO_AGENT_DATAPLANE_NETNS: 'ca-missing-dp',
      }),
      /^Network namespace ca-missing-dp \(dataplane namespace\) does not exist/,
    );
  });

  test('an existing workload name or an address in use: the first workload stays intact', async () => {
    expect((await calicoctl(['workload', 'add', 'web1', `--netns=${workload.name}`, '--ip=198.51.100.10'])).code).toBe(0);
    const before = { dp: await links(dataplane), keys: await endpointKeys() };
    const second = await createNetns('wl-second');
    extra.push(second);

    const again = await calicoctl(['workload', 'add', 'web1', `--netns=${second.name}`, '--ip=198.51.100.11']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`Workload web1 already exists on host ${HOST}.\n`);
    const clash = await calicoctl(['workload', 'add', 'web2', `--netns=${second.name}`, '--ip=198.51.100.10']);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toBe(`IP 198.51.100.10 is already used by workload web1 on host ${HOST}.\n`);

    expect(await links(dataplane)).toEqual(before.dp);
    expect(await links(second)).toEqual([]);
    expect(await endpointKeys()).toEqual(before.keys);
  });

  test('a namespace that already has eth0 or a default route is refused untouched', async () => {
    await workload.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const taken = await calicoctl(['workload', 'add', 'w', `--netns=${workload.name}`, '--ip=198.51.100.12']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toBe(`Interface eth0 already exists in namespace ${workload.name}.\n`);
    expect(await links(dataplane)).toEqual([]);
    expect(await endpointKeys()).toEqual({});

    await workload.exec(['ip', 'link', 'del', 'eth0']);
    await workload.exec(['ip', 'route', 'add', 'default', 'dev', 'lo']);
    await expectNothingMade(
      await calicoctl(['workload', 'add', 'w', `--netns=${workload.name}`, '--ip=198.51.100.12']),
      /already has an IPv4 default route/,
    );
  });

  test('a failure while configuring the pair deletes it (workload with IPv6 disabled)', async () => {
    await workload.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    const result = await calicoctl(['workload', 'add', 'w', `--netns=${workload.name}`, '--ip=198.51.100.13', '--ip=2001:db8:a::13']);
    await expectNothingMade(result, /failed: /);
  });

  test('etcd down before the add: nothing made', async () => {
    await etcd.kill(true);
    let result: ExecResult;
    try {
      result = await calicoctl(['workload', 'add', 'w', `--netns=${workload.name}`, '--ip=198.51.100.14']);
    } finally {
      await etcd.restart();
    }
    await expectNothingMade(result, /etcd|unavailable|connect/i);
  });

  test('etcd lost after the veth exists: the write fails and the veth is deleted', async () => {
    // Watch link creation in the dataplane namespace and kill etcd the moment the pair appears;
    // many addresses widen the window between the veth and the etcd write.
    const monitor = spawn('ip', ['-n', dataplane.name, 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const { hostInterface } = workloadIdentity(HOST, 'late');
    let killed: Promise<void> | undefined;
    monitor.stdout.on('data', (chunk: Buffer) => {
      if (!killed && chunk.toString().includes(hostInterface)) killed = etcd.kill(true);
    });
    try {
      const ips = Array.from({ length: 40 }, (_, i) => `--ip=198.51.100.${20 + i}`);
      const result = await calicoctl(['workload', 'add', 'late', `--netns=${workload.name}`, ...ips]);
      expect(killed, 'etcd was not killed while the veth existed (monitor missed the link)').toBeDefined();
      await killed;
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/etcd|unavailable|connect/i);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(await links(dataplane)).toEqual([]);
      expect(await links(workload)).toEqual([]);
    } finally {
      monitor.kill();
      await etcd.restart();
    }
    expect(await endpointKeys()).toEqual({});
  });
});

describe('workload remove', () => {
  test('unknown workload: exit 1 with a clear message', async () => {
    const result = await calicoctl(['workload', 'remove', 'ghost']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`Workload ghost not found on host ${HOST}.\n`);
  });

  test('a workload whose namespace is already gone: the key is still removed', async () => {
    const gone = await createNetns('wl-gone');
    extra.push(gone);
    expect((await calicoctl(['workload', 'add', 'gone1', `--netns=${gone.name}`, '--ip=198.51.100.15'])).code).toBe(0);
    await gone.destroy(); // the kernel deletes the pair with the namespace, asynchronously
    const result = await calicoctl(['workload', 'remove', 'gone1']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await endpointKeys()).toEqual({});
    expect(await links(dataplane)).toEqual([]);
  });

  test('usage errors and --help', async () => {
    const usage = await calicoctl(['workload', 'remove']);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toMatch(/^Usage:\n {2}calicoctl workload add/);
    const help = await calicoctl(['workload', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--dataplane-netns=<NETNS>');
  });
});
