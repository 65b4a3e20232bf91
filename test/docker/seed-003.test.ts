/**
 * Seed 003 ("Security using Calico Profiles", the Docker worked example) with real parts: the
 * two-host lab (etcd, host namespaces, one calico-agent per host), a private dockerd per host
 * with calico-docker-plugin as network and IPAM driver, busybox containers, real pings.
 *
 * Deviations from the seed, forced by Docker 20.10 without swarm (docker-deploy.md §0.2):
 * - Networks are local-scope, so net1/net2/net3 are created on BOTH hosts with the same name
 *   (same name = same profile, so policy spans the hosts exactly as in the seed).
 * - Cross-host name resolution does not exist for local networks: pings use the addresses from
 *   `docker inspect` (the seed's own method for B and D). Same-host resolution of
 *   `workload-C.net1` by Docker's embedded DNS is checked separately.
 * - Each host's plugin has its own name (see docker-lab.ts) instead of `calico`/`calico-ipam`.
 * Build first (`npm run build`).
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLab, type Lab } from '../lab/lab.js';
import { IMAGE, startDockerLab, type DockerHost, type DockerLab } from '../lab/docker-lab.js';

let lab: Lab;
let dockerLab: DockerLab;
let etcd: Etcd3;

interface Container {
  name: string;
  host: DockerHost;
  network: string;
  ip: string;
  endpointId: string;
}
const containers = new Map<string, Container>();

/** The seed's workloads: name → [host, network]. */
const PLACEMENT: [string, 'A' | 'B', string][] = [
  ['workload-A', 'A', 'net1'],
  ['workload-B', 'A', 'net2'],
  ['workload-C', 'A', 'net1'],
  ['workload-D', 'B', 'net3'],
  ['workload-E', 'B', 'net1'],
];

const container = (name: string): Container => {
  const found = containers.get(name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
};

async function createNetwork(host: DockerHost, name: string): Promise<void> {
  await host.docker(['network', 'create', '--driver', host.pluginName, '--ipam-driver', host.pluginName, name]);
}

async function runContainer(name: string, host: DockerHost, network: string): Promise<Container> {
  await host.docker(['run', '-d', '--net', network, '--name', name, IMAGE, 'sleep', '3600']);
  const format = `{{ (index .NetworkSettings.Networks "${network}").IPAddress }} {{ (index .NetworkSettings.Networks "${network}").EndpointID }}`;
  const [ip, endpointId] = (await host.docker(['inspect', '--format', format, name])).stdout.trim().split(' ');
  const made: Container = { name, host, network, ip: ip!, endpointId: endpointId! };
  containers.set(name, made);
  return made;
}

/** Waits until both agents have applied everything in etcd so far. */
async function settle(): Promise<void> {
  await lab.waitApplied(await lab.etcdRevision());
}

/** `docker exec <from> ping -c 1 -W 1 <target>`: did a reply come back? */
async function ping(from: string, target: string): Promise<boolean> {
  const source = container(from);
  return (await source.host.docker(['exec', from, 'ping', '-c', '1', '-W', '1', target], { allowFail: true })).code === 0;
}

/** Pings every [from, to] pair (in parallel) and returns the pairs that got a reply. */
async function reachable(pairs: [string, string][]): Promise<string[]> {
  const results = await Promise.all(pairs.map(async ([from, to]) => ((await ping(from, container(to).ip)) ? `${from}->${to}` : '')));
  return results.filter((pair) => pair !== '');
}

async function endpointsInEtcd(hostname: string): Promise<Record<string, Record<string, unknown>>> {
  const values = await etcd.getAll().prefix(`/calico/v1/host/${hostname}/workload/`).strings();
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, JSON.parse(value) as Record<string, unknown>]));
}

beforeAll(async () => {
  lab = await createLab();
  etcd = new Etcd3({ hosts: lab.etcd.endpoint });
  try {
    dockerLab = await startDockerLab(lab);
    // Step 1 (on both hosts: networks are local-scope).
    for (const host of Object.values(dockerLab.hosts)) {
      for (const network of ['net1', 'net2', 'net3']) await createNetwork(host, network);
    }
    // Step 2.
    for (const [name, hostId, network] of PLACEMENT) await runContainer(name, dockerLab.hosts[hostId], network);
    await settle();
  } catch (error) {
    await dockerLab?.teardown();
    etcd.close();
    await lab.teardown();
    throw error;
  }
}, 180_000);

afterAll(async () => {
  await dockerLab?.teardown();
  etcd?.close();
  await lab?.teardown();
}, 120_000);

describe('seed 003: each Docker network is a profile, each container an endpoint', () => {
  test('the profiles net1, net2, net3 exist with the default rules and tags', async () => {
    const shown = await lab.calicoctl(['profile', 'show']);
    for (const network of ['net1', 'net2', 'net3']) expect(shown.stdout).toContain(network);
    for (const network of ['net1', 'net2', 'net3']) {
      const rules = JSON.parse((await lab.calicoctl(['profile', network, 'rule', 'json'])).stdout) as unknown;
      expect(rules).toEqual({ inbound_rules: [{ action: 'allow', src_tag: network }], outbound_rules: [{ action: 'allow' }] });
      expect((await lab.calicoctl(['profile', network, 'tag', 'show'])).stdout.trim()).toBe(network);
    }
  });

  test('every container is an active endpoint of its host, with its address, MAC and network profile', async () => {
    for (const [hostname, names] of [
      ['hostA', ['workload-A', 'workload-B', 'workload-C']],
      ['hostB', ['workload-D', 'workload-E']],
    ] as const) {
      const endpoints = await endpointsInEtcd(hostname);
      expect(Object.keys(endpoints)).toHaveLength(names.length);
      for (const name of names) {
        const c = container(name);
        const key = `/calico/v1/host/${hostname}/workload/docker/${c.endpointId}/endpoint/${c.endpointId}`;
        const mac = (await c.host.docker(['inspect', '--format', `{{ (index .NetworkSettings.Networks "${c.network}").MacAddress }}`, name])).stdout.trim();
        expect(endpoints[key]).toMatchObject({
          state: 'active',
          name: `cali${c.endpointId.slice(0, 11)}`,
          mac,
          profile_ids: [c.network],
          ipv4_nets: [`${c.ip}/32`],
        });
        // The host side of the veth is in the host namespace; the container has cali0 with its /32.
        expect((await c.host.lab.netns.exec(['ip', 'link', 'show', `cali${c.endpointId.slice(0, 11)}`], { allowFail: true })).code).toBe(0);
        const inside = (await c.host.docker(['exec', name, 'ip', 'addr', 'show', 'cali0'])).stdout;
        expect(inside).toContain(`inet ${c.ip}/32`);
      }
    }
    // Each host's plugin allocated from its own block (routed between the lab hosts).
    expect(container('workload-A').ip).toMatch(/^198\.51\.100\.([1-9]|[1-9]\d|1[01]\d|12[0-6])$/);
    expect(Number(container('workload-D').ip.split('.')[3])).toBeGreaterThan(128);
  });

  test('A can ping C and E; A cannot ping B or D (and B and D reach no one)', async () => {
    const allowed: [string, string][] = [
      ['workload-A', 'workload-C'],
      ['workload-A', 'workload-E'],
      ['workload-C', 'workload-A'],
      ['workload-E', 'workload-A'],
      ['workload-E', 'workload-C'],
    ];
    const denied: [string, string][] = [
      ['workload-A', 'workload-B'],
      ['workload-A', 'workload-D'],
      ['workload-B', 'workload-A'],
      ['workload-B', 'workload-C'],
      ['workload-D', 'workload-A'],
      ['workload-D', 'workload-E'],
      ['workload-E', 'workload-D'],
    ];
    expect(await reachable(allowed)).toEqual(allowed.map(([from, to]) => `${from}->${to}`));
    expect(await reachable(denied)).toEqual([]);
  });

  test('same-host names resolve through Docker: A pings workload-C.net1 by name', async () => {
    expect(await ping('workload-A', 'workload-C.net1')).toBe(true);
    expect(await ping('workload-A', 'workload-C')).toBe(true);
  });

  test('editing the net2 profile with calicoctl changes what A may reach', async () => {
    await lab.calicoctl(['profile', 'net2', 'rule', 'add', 'inbound', 'allow', 'icmp', 'from', 'tag', 'net1']);
    await settle();
    // A (net1) now reaches B (net2); B still cannot reach A (net1 admits only net1), D still nothing.
    expect(await reachable([['workload-A', 'workload-B']])).toEqual(['workload-A->workload-B']);
    expect(await reachable([['workload-B', 'workload-A'], ['workload-D', 'workload-B']])).toEqual([]);
    await lab.calicoctl(['profile', 'net2', 'rule', 'remove', 'inbound', 'allow', 'icmp', 'from', 'tag', 'net1']);
    await settle();
    expect(await reachable([['workload-A', 'workload-B']])).toEqual([]);
  });

  test('endpoints are per container start, and survive a plugin restart: C restarts with a new endpoint', async () => {
    const before = container('workload-C');
    await before.host.restartPlugin();
    // Docker talks to the new plugin process without replaying anything (docker-deploy.md §0.3).
    await before.host.docker(['restart', '-t', '0', 'workload-C']);
    const format = `{{ (index .NetworkSettings.Networks "net1").IPAddress }} {{ (index .NetworkSettings.Networks "net1").EndpointID }}`;
    const [ip, endpointId] = (await before.host.docker(['inspect', '--format', format, 'workload-C'])).stdout.trim().split(' ');
    containers.set('workload-C', { ...before, ip: ip!, endpointId: endpointId! });
    expect(endpointId).not.toBe(before.endpointId);
    const keys = Object.keys(await endpointsInEtcd('hostA'));
    expect(keys).toHaveLength(3);
    expect(keys.some((key) => key.includes(before.endpointId))).toBe(false);
    expect(keys.some((key) => key.includes(endpointId!))).toBe(true);
    await settle();
    expect(await reachable([['workload-A', 'workload-C'], ['workload-E', 'workload-C']])).toEqual(['workload-A->workload-C', 'workload-E->workload-C']);
    expect(await reachable([['workload-B', 'workload-C']])).toEqual([]);
  });

  test('a profile created in advance is used as it is, never overwritten', async () => {
    const hostB = dockerLab.hosts.B;
    await lab.calicoctl(['profile', 'add', 'net4']);
    await lab.calicoctl(['profile', 'net4', 'rule', 'add', 'inbound', 'allow', 'icmp']);
    const before = (await lab.calicoctl(['profile', 'net4', 'rule', 'json'])).stdout;
    await createNetwork(hostB, 'net4');
    await runContainer('workload-F', hostB, 'net4');
    await settle();
    expect((await lab.calicoctl(['profile', 'net4', 'rule', 'json'])).stdout).toBe(before);
    // net4 admits ICMP from anyone: D (net3, on the same host) and A (net1, across the fabric) get in.
    expect(await reachable([['workload-D', 'workload-F'], ['workload-A', 'workload-F']])).toEqual([
      'workload-D->workload-F',
      'workload-A->workload-F',
    ]);
  });

  test('dual-stack networks: /128 addresses from each host’s IPv6 block, and policy holds for IPv6 too', async () => {
    for (const host of Object.values(dockerLab.hosts)) {
      for (const network of ['net6', 'net7']) {
        await host.docker(['network', 'create', '--ipv6', '--driver', host.pluginName, '--ipam-driver', host.pluginName, network]);
      }
    }
    const v6 = async (host: DockerHost, name: string, network: string): Promise<string> => {
      await host.docker(['run', '-d', '--net', network, '--name', name, IMAGE, 'sleep', '3600']);
      const format = `{{ (index .NetworkSettings.Networks "${network}").GlobalIPv6Address }}`;
      return (await host.docker(['inspect', '--format', format, name])).stdout.trim();
    };
    const { A: hostA, B: hostB } = dockerLab.hosts;
    const g6 = await v6(hostA, 'workload-G', 'net6');
    const h6 = await v6(hostB, 'workload-H', 'net6');
    const i6 = await v6(hostB, 'workload-I', 'net7');
    expect(g6).toMatch(/^2001:db8:a::/);
    expect(h6).toMatch(/^2001:db8:b::/);
    expect(i6).toMatch(/^2001:db8:b::/);
    await settle();
    const ping6 = async (host: DockerHost, from: string, to: string): Promise<boolean> =>
      (await host.docker(['exec', from, 'ping', '-6', '-c', '1', '-W', '2', to], { allowFail: true })).code === 0;
    // Across hosts within net6: allowed both ways. From net7 (same host or across): denied.
    expect(await ping6(hostB, 'workload-H', g6)).toBe(true);
    expect(await ping6(hostA, 'workload-G', h6)).toBe(true);
    expect(await ping6(hostB, 'workload-I', g6)).toBe(false);
    expect(await ping6(hostB, 'workload-I', h6)).toBe(false);
  });

  test('removing a container removes its endpoint, veth and address; removing the network keeps the profile', async () => {
    const f = container('workload-F');
    const hostB = f.host;
    await hostB.docker(['rm', '-f', 'workload-F']);
    containers.delete('workload-F');
    const endpoints = await endpointsInEtcd('hostB');
    expect(Object.keys(endpoints).some((key) => key.includes(f.endpointId))).toBe(false);
    expect((await hostB.lab.netns.exec(['ip', 'link', 'show', `cali${f.endpointId.slice(0, 11)}`], { allowFail: true })).code).not.toBe(0);
    expect(await etcd.get(`/calico/v1/ipam/v4/assignment/${f.ip}`).string()).toBeNull();
    await hostB.docker(['network', 'rm', 'net4']);
    expect((await lab.calicoctl(['profile', 'show'])).stdout).toContain('net4');
  });
});
