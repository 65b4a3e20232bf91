/**
 * calico-docker-plugin over its socket, with requests shaped exactly as dockerd 20.10 sends them
 * (docker-deploy.md §3: POST, no Content-Type, empty bodies where Docker sends none) and a real
 * etcd: activation, capabilities, error fields (`Err` vs `Error`), 404 for unknown methods, IPAM
 * pools and addresses, allocation uniqueness between two plugin processes under concurrency,
 * release, a plugin restart, and one-line configuration errors. No dockerd is needed here (the
 * Docker-driven flow is seed-003.test.ts). Build first (`npm run build`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';
import { runNode } from '../helpers/run-node.js';
import { pluginCall, startPlugin, type PluginProcess } from './plugin-harness.js';

const POOL_V4 = '198.51.100.0/25';
const POOL_V6 = '2001:db8:d::/64';
const GATEWAY_HINT = 'com.docker.network.gateway';

let etcd: EtcdInstance;
let client: Etcd3;
let dir: string;
let pluginA: PluginProcess;
let pluginB: PluginProcess;

const pluginArgs = (host: string): string[] => [
  `--hostname=${host}`,
  `--default-pool-v4=${POOL_V4}`,
  `--default-pool-v6=${POOL_V6}`,
  '--docker-host=unix:///nonexistent/docker.sock',
  '--log-level=warn',
];

async function assignedKeys(version: 4 | 6): Promise<string[]> {
  return client.getAll().prefix(`/calico/v1/ipam/v${version}/assignment/`).keys();
}

beforeAll(async () => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoint });
  dir = mkdtempSync(join(tmpdir(), 'cadp-'));
  [pluginA, pluginB] = await Promise.all([
    startPlugin({ socketPath: join(dir, 'calico-a.sock'), env: etcd.env, args: pluginArgs('hostA') }),
    startPlugin({ socketPath: join(dir, 'calico-b.sock'), env: etcd.env, args: pluginArgs('hostB') }),
  ]);
});

afterAll(async () => {
  await Promise.all([pluginA?.stop(), pluginB?.stop()]);
  client?.close();
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('handshake and capabilities', () => {
  test('Plugin.Activate with an empty body implements both drivers', async () => {
    const reply = await pluginCall(pluginA.socketPath, 'Plugin.Activate');
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
  });

  test('network scope is local, IPAM asks for request replay and no MAC', async () => {
    const net = await pluginCall(pluginA.socketPath, 'NetworkDriver.GetCapabilities');
    expect(net).toMatchObject({ status: 200, body: { Scope: 'local', ConnectivityScope: 'local' } });
    const ipam = await pluginCall(pluginA.socketPath, 'IpamDriver.GetCapabilities');
    expect(ipam).toMatchObject({ status: 200, body: { RequiresMACAddress: false, RequiresRequestReplay: true } });
    const spaces = await pluginCall(pluginA.socketPath, 'IpamDriver.GetDefaultAddressSpaces');
    expect(spaces.body).toEqual({ LocalDefaultAddressSpace: 'CalicoLocalAddressSpace', GlobalDefaultAddressSpace: 'CalicoGlobalAddressSpace' });
  });

  test('unknown methods are 404 (libnetwork: not implemented), with the interface’s error field', async () => {
    const net = await pluginCall(pluginA.socketPath, 'NetworkDriver.AllocateNetwork', { NetworkID: 'n1' });
    expect(net.status).toBe(404);
    expect(net.body.Err).toMatch(/not implemented/);
    const ipam = await pluginCall(pluginA.socketPath, 'IpamDriver.Nope', {});
    expect(ipam.status).toBe(404);
    expect(ipam.body.Error).toMatch(/not implemented/);
  });

  test('the no-op calls answer as Docker expects', async () => {
    const ids = { NetworkID: 'n1', EndpointID: 'e1' };
    expect((await pluginCall(pluginA.socketPath, 'NetworkDriver.EndpointOperInfo', ids)).body).toEqual({ Value: {} });
    for (const method of ['ProgramExternalConnectivity', 'RevokeExternalConnectivity', 'DeleteNetwork']) {
      expect(await pluginCall(pluginA.socketPath, `NetworkDriver.${method}`, { ...ids, Options: {} })).toMatchObject({ status: 200, body: {} });
    }
    const discover = await pluginCall(pluginA.socketPath, 'NetworkDriver.DiscoverNew', { DiscoveryType: 1, DiscoveryData: {} });
    expect(discover).toMatchObject({ status: 200, body: {} });
  });

  test('errors: NetworkDriver in Err, IpamDriver in Error; a body that is not JSON is a 400', async () => {
    const foreignIpam = await pluginCall(pluginA.socketPath, 'NetworkDriver.CreateNetwork', {
      NetworkID: 'n1',
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '172.18.0.1/16', Pool: '172.18.0.0/16' }],
      IPv6Data: [],
    });
    expect(foreignIpam.status).toBe(500);
    expect(foreignIpam.body.Err).toMatch(/--ipam-driver calico-a/);
    expect(foreignIpam.body.Error).toBeUndefined();

    const badPool = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: 'NoSuchPool', Address: '', Options: null });
    expect(badPool.status).toBe(500);
    expect(badPool.body.Error).toBe('unknown pool "NoSuchPool"');

    const notJson = await new Promise<number>((resolve, reject) => {
      // A raw request: the harness always sends JSON.
      import('node:http').then(({ request }) => {
        const req = request({ socketPath: pluginA.socketPath, path: '/IpamDriver.RequestPool', method: 'POST' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end('{not json');
      }, reject);
    });
    expect(notJson).toBe(400);
  });

  test('CreateNetwork accepts a Calico-IPAM network (gateway hint) and remembers nothing', async () => {
    const reply = await pluginCall(pluginA.socketPath, 'NetworkDriver.CreateNetwork', {
      NetworkID: 'n2',
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'CalicoLocalAddressSpace', Gateway: '0.0.0.0/0', Pool: '0.0.0.0/0' }],
      IPv6Data: [],
    });
    expect(reply).toMatchObject({ status: 200, body: {} });
  });
});

describe('IPAM', () => {
  test('RequestPool without a subnet: the self-describing Calico pool with the gateway hint, same reply twice', async () => {
    const request = { AddressSpace: 'CalicoLocalAddressSpace', Pool: '', SubPool: '', Options: {}, V6: false };
    const first = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestPool', request);
    expect(first.body).toEqual({ PoolID: 'CalicoPoolIPv4', Pool: '0.0.0.0/0', Data: { [GATEWAY_HINT]: '0.0.0.0/0' } });
    expect((await pluginCall(pluginB.socketPath, 'IpamDriver.RequestPool', request)).body).toEqual(first.body);
    const v6 = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestPool', { ...request, V6: true });
    expect(v6.body).toEqual({ PoolID: 'CalicoPoolIPv6', Pool: '::/0', Data: { [GATEWAY_HINT]: '::/0' } });
  });

  test('RequestPool with --subnet: accepted inside a Calico pool, refused outside; --ip-range refused', async () => {
    const base = { AddressSpace: 'CalicoLocalAddressSpace', SubPool: '', Options: {}, V6: false };
    const inside = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestPool', { ...base, Pool: '198.51.100.64/26' });
    expect(inside.body).toEqual({ PoolID: '198.51.100.64/26', Pool: '198.51.100.64/26', Data: { [GATEWAY_HINT]: '0.0.0.0/0' } });
    const outside = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestPool', { ...base, Pool: '203.0.113.0/24' });
    expect(outside.status).toBe(500);
    expect(outside.body.Error).toMatch(/not within a Calico pool/);
    const subPool = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestPool', { ...base, Pool: '198.51.100.64/26', SubPool: '198.51.100.64/28' });
    expect(subPool.body.Error).toMatch(/--ip-range/);
  });

  test('RequestAddress: lowest free /32, a requested address, refusals; ReleaseAddress frees it', async () => {
    const auto = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: '198.51.100.64/26', Address: '', Options: null });
    expect(auto.body).toEqual({ Address: '198.51.100.65/32', Data: {} });
    const chosen = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: '198.51.100.64/26', Address: '198.51.100.99', Options: null });
    expect(chosen.body).toEqual({ Address: '198.51.100.99/32', Data: {} });
    const again = await pluginCall(pluginB.socketPath, 'IpamDriver.RequestAddress', { PoolID: 'CalicoPoolIPv4', Address: '198.51.100.99', Options: null });
    expect(again.body.Error).toBe('address 198.51.100.99 is already assigned');
    const outside = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: '198.51.100.64/26', Address: '198.51.100.1', Options: null });
    expect(outside.body.Error).toMatch(/not in pool 198.51.100.64\/26/);
    const gateway = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', {
      PoolID: '198.51.100.64/26',
      Address: '198.51.100.65',
      Options: { RequestAddressType: 'com.docker.network.gateway' },
    });
    expect(gateway.body.Error).toMatch(/--gateway is not supported/);

    expect(await assignedKeys(4)).toEqual(expect.arrayContaining(['/calico/v1/ipam/v4/assignment/198.51.100.65', '/calico/v1/ipam/v4/assignment/198.51.100.99']));
    for (const ip of ['198.51.100.65', '198.51.100.99']) {
      expect(await pluginCall(pluginB.socketPath, 'IpamDriver.ReleaseAddress', { PoolID: '198.51.100.64/26', Address: ip })).toMatchObject({ status: 200, body: {} });
    }
    expect(await assignedKeys(4)).toEqual([]);
    // Docker releases the hinted gateway when a network is removed: a harmless no-op.
    for (const [poolId, address] of [['CalicoPoolIPv4', '0.0.0.0'], ['CalicoPoolIPv6', '::']]) {
      expect(await pluginCall(pluginA.socketPath, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: address })).toMatchObject({ status: 200, body: {} });
    }
    expect(await pluginCall(pluginA.socketPath, 'IpamDriver.ReleasePool', { PoolID: 'CalicoPoolIPv4' })).toMatchObject({ status: 200, body: {} });
  });

  test('IPv6 addresses are /128 from the IPv6 pool', async () => {
    const reply = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: 'CalicoPoolIPv6', Address: '', Options: null });
    expect(reply.body).toEqual({ Address: '2001:db8:d::1/128', Data: {} });
    await pluginCall(pluginA.socketPath, 'IpamDriver.ReleaseAddress', { PoolID: 'CalicoPoolIPv6', Address: '2001:db8:d::1' });
    expect(await assignedKeys(6)).toEqual([]);
  });

  test('Calico pools in etcd take precedence over the default pool; disabled pools are skipped', async () => {
    await client.put('/calico/v1/ipam/v4/pool/203.0.113.0-30').value(JSON.stringify({ cidr: '203.0.113.0/30', disabled: true }));
    await client.put('/calico/v1/ipam/v4/pool/203.0.113.16-29').value(JSON.stringify({ cidr: '203.0.113.16/29', masquerade: false }));
    try {
      const reply = await pluginCall(pluginB.socketPath, 'IpamDriver.RequestAddress', { PoolID: 'CalicoPoolIPv4', Address: '', Options: null });
      expect(reply.body).toEqual({ Address: '203.0.113.17/32', Data: {} });
      const defaultNow = await pluginCall(pluginB.socketPath, 'IpamDriver.RequestPool', { Pool: '198.51.100.64/26', V6: false });
      expect(defaultNow.body.Error).toMatch(/not within a Calico pool \(203\.0\.113\.16\/29\)/);
      await pluginCall(pluginB.socketPath, 'IpamDriver.ReleaseAddress', { PoolID: 'CalicoPoolIPv4', Address: '203.0.113.17' });
    } finally {
      await client.delete().prefix('/calico/v1/ipam/v4/pool/');
    }
  });

  test('two plugins allocating concurrently never hand out the same address', async () => {
    const perPlugin = 40;
    const calls = [pluginA, pluginB].flatMap((plugin) =>
      Array.from({ length: perPlugin }, () =>
        pluginCall(plugin.socketPath, 'IpamDriver.RequestAddress', { PoolID: 'CalicoPoolIPv4', Address: '', Options: null }),
      ),
    );
    const replies = await Promise.all(calls);
    const addresses = replies.map((r) => String(r.body.Address));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(addresses).size).toBe(2 * perPlugin);
    for (const address of addresses) expect(address).toMatch(/^198\.51\.100\.(\d+)\/32$/);
    expect(addresses.map((a) => Number(a.split('.')[3]!.split('/')[0])).every((n) => n >= 1 && n <= 126)).toBe(true);
    expect((await assignedKeys(4)).length).toBe(2 * perPlugin);

    await Promise.all(
      addresses.map((address, i) =>
        pluginCall((i % 2 ? pluginA : pluginB).socketPath, 'IpamDriver.ReleaseAddress', { PoolID: 'CalicoPoolIPv4', Address: address.split('/')[0] }),
      ),
    );
    expect(await assignedKeys(4)).toEqual([]);
  });

  test('a restarted plugin serves RequestAddress for the PoolIDs Docker still holds (no replay)', async () => {
    const before = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: 'CalicoPoolIPv4', Address: '', Options: null });
    expect(before.body.Address).toBe('198.51.100.1/32');
    await pluginA.stop();
    pluginA = await startPlugin({ socketPath: pluginA.socketPath, env: etcd.env, args: pluginArgs('hostA') });
    // What dockerd does after a plugin restart: straight to RequestAddress, no Activate, no RequestPool.
    const after = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: 'CalicoPoolIPv4', Address: '', Options: null });
    expect(after.body).toEqual({ Address: '198.51.100.2/32', Data: {} });
    const subnet = await pluginCall(pluginA.socketPath, 'IpamDriver.RequestAddress', { PoolID: '198.51.100.64/26', Address: '', Options: null });
    expect(subnet.body).toEqual({ Address: '198.51.100.65/32', Data: {} });
    for (const ip of ['198.51.100.1', '198.51.100.2', '198.51.100.65']) {
      await pluginCall(pluginA.socketPath, 'IpamDriver.ReleaseAddress', { PoolID: 'CalicoPoolIPv4', Address: ip });
    }
    expect(await assignedKeys(4)).toEqual([]);
  });
});

describe('process', () => {
  test('bad configuration: one line on stderr, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--default-pool-v4=198.51.100.7/24'], /^calico-docker-plugin: --default-pool-v4: "198\.51\.100\.7\/24" is not an IPv4 network CIDR/],
      [['--socket=relative.sock'], /^calico-docker-plugin: --socket: "relative\.sock" must be an absolute path ending in \.sock$/],
      [['--docker-host=http://x'], /^calico-docker-plugin: --docker-host: "http:\/\/x" is not unix:\/\/\/path or tcp:\/\/host:port$/],
      [['--dataplane-netns=ca-no-such-ns'], /^calico-docker-plugin: --dataplane-netns: network namespace "ca-no-such-ns" does not exist/],
      [['--bogus'], /^calico-docker-plugin: Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const result = await runNode('dist/agent/docker-plugin/main.js', [`--socket=${join(dir, 'bad.sock')}`, ...args], etcd.env);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr.trim()).toMatch(message);
    }
    const badEtcd = await runNode('dist/agent/docker-plugin/main.js', [`--socket=${join(dir, 'bad.sock')}`], { ...etcd.env, ETCD_ENDPOINTS: 'ftp://x' });
    expect(badEtcd.code).toBe(2);
    expect(badEtcd.stderr.trim()).toMatch(/^calico-docker-plugin: ETCD_ENDPOINTS: .*must use http/);
  });

  test('a stale socket file is replaced; a live one is refused with one line', async () => {
    const stale = join(dir, 'calico-stale.sock');
    writeFileSync(stale, '');
    const plugin = await startPlugin({ socketPath: stale, env: etcd.env, args: pluginArgs('hostC') });
    try {
      const second = await runNode('dist/agent/docker-plugin/main.js', [`--socket=${stale}`, ...pluginArgs('hostC')], etcd.env);
      expect(second.code).toBe(1);
      expect(second.stderr.trim()).toBe(`calico-docker-plugin: cannot serve on ${stale}: ${stale} is in use by another running plugin`);
      expect((await pluginCall(stale, 'Plugin.Activate')).status).toBe(200);
    } finally {
      await plugin.stop();
    }
  });
});
