/**
 * Endpoint interface plumbing in a "host" namespace joined to a "workload" namespace by a veth
 * whose host end is `cali…`: routes, proxy NDP and sysctls are applied, a re-apply changes
 * nothing, deactivation removes routes (not the interface), and real packets flow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCommandRunner } from '../../../agent/dataplane/command-runner.js';
import { createPlumbing, desiredPlumbing } from '../../../agent/dataplane/plumbing.js';
import type { EndpointInput } from '../../../compiler/types.js';
import { endpointSchema } from '../../../src/model/index.js';
import { createNetns, linkNetns, type Netns } from '../../helpers/netns.js';
import { recording } from './recording-runner.js';

let host: Netns;
let workload: Netns;
beforeAll(async () => {
  host = await createNetns('plumb-host');
  workload = await createNetns('plumb-wl');
  await linkNetns(host, workload, { ifA: 'cali0a1b2c3d', ifB: 'eth0' });
  await workload.exec(['ip', 'addr', 'add', '192.0.2.10/32', 'dev', 'eth0']);
  await workload.exec(['ip', 'route', 'add', 'default', 'dev', 'eth0']);
  // The host's own address (on lo), which the workload reaches through proxy ARP on the veth.
  await host.exec(['ip', 'addr', 'add', '198.51.100.1/32', 'dev', 'lo']);
  // A workload interface that exists but is down, and a foreign route that is never ours.
  await host.exec(['ip', 'link', 'add', 'calidown0', 'type', 'veth', 'peer', 'name', 'peerdown0']);
  await host.exec(['ip', 'route', 'add', '203.0.113.7/32', 'dev', 'lo']);
});
afterAll(async () => {
  await host?.destroy();
  await workload?.destroy();
});

function endpoint(name: string, fields: Record<string, unknown>): [string, EndpointInput] {
  const parsed = endpointSchema.parse({ state: 'active', name, profile_ids: ['web'], ...fields });
  return [name, { ref: { host: 'h1', orchestrator: 'docker', workload: name, endpointId: name }, endpoint: parsed }];
}

const active = new Map([
  endpoint('cali0a1b2c3d', {
    ipv4_nets: ['192.0.2.10/32', '192.0.2.11/32'],
    ipv6_nets: ['2001:db8::10/128'],
    ipv6_gateway: '2001:db8::1',
    mac: '02:00:00:00:00:10',
  }),
  endpoint('calimissing1', { ipv4_nets: ['192.0.2.20/32'] }),
  endpoint('calidown0', { ipv4_nets: ['192.0.2.30/32'] }),
  endpoint('eth9', { ipv4_nets: ['192.0.2.40/32'] }),
]);

async function routes(): Promise<string[]> {
  const v4 = JSON.parse((await host.exec(['ip', '-j', '-4', 'route', 'show'])).stdout) as { dst: string; dev: string }[];
  const v6 = JSON.parse((await host.exec(['ip', '-j', '-6', 'route', 'show'])).stdout) as { dst: string; dev: string; protocol?: string }[];
  return [...v4, ...v6.filter((r) => r.protocol !== 'kernel')].map((r) => `${r.dst} ${r.dev}`).sort();
}

async function sysctl(key: string): Promise<string> {
  return (await host.exec(['sysctl', '-n', key])).stdout.trim();
}

describe('plumbing', () => {
  it('turns on forwarding globally, once', async () => {
    const plumbing = createPlumbing({ runner: createCommandRunner({ netns: host.name }), interfacePrefix: 'cali' });
    expect(await plumbing.applyGlobal()).toEqual(['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.default.rp_filter=1']);
    expect(await sysctl('net.ipv4.ip_forward')).toBe('1');
    expect(await plumbing.applyGlobal()).toEqual([]);
  });

  it('refuses to run with loose reverse-path filtering', async () => {
    const ns = await createNetns('plumb-rpf');
    try {
      await ns.exec(['sysctl', '-w', 'net.ipv4.conf.all.rp_filter=2']);
      const plumbing = createPlumbing({ runner: createCommandRunner({ netns: ns.name }), interfacePrefix: 'cali' });
      await expect(plumbing.applyGlobal()).rejects.toThrow(/rp_filter is 2 \(loose\)/);
    } finally {
      await ns.destroy();
    }
  });

  it('applies routes, proxy NDP and sysctls to active endpoints, skipping what it cannot do yet', async () => {
    const plumbing = createPlumbing({ runner: createCommandRunner({ netns: host.name }), interfacePrefix: 'cali' });
    const report = await plumbing.reconcile(desiredPlumbing(active));
    expect([...report.skipped].sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'calidown0', reason: 'down' },
      { name: 'calimissing1', reason: 'missing' },
      { name: 'eth9', reason: 'not-workload-interface' },
    ]);
    expect(await routes()).toEqual(['192.0.2.10 cali0a1b2c3d', '192.0.2.11 cali0a1b2c3d', '2001:db8::10 cali0a1b2c3d', '203.0.113.7 lo']);
    const proxies = JSON.parse((await host.exec(['ip', '-j', '-6', 'neigh', 'show', 'proxy'])).stdout) as { dst: string; dev: string }[];
    expect(proxies.map((p) => `${p.dst} ${p.dev}`)).toEqual(['2001:db8::1 cali0a1b2c3d']);
    for (const [key, value] of [
      ['net.ipv4.conf.cali0a1b2c3d.rp_filter', '1'],
      ['net.ipv4.conf.cali0a1b2c3d.route_localnet', '1'],
      ['net.ipv4.conf.cali0a1b2c3d.proxy_arp', '1'],
      ['net.ipv4.neigh.cali0a1b2c3d.proxy_delay', '0'],
      ['net.ipv6.conf.cali0a1b2c3d.proxy_ndp', '1'],
      ['net.ipv6.conf.cali0a1b2c3d.forwarding', '1'],
    ] as const) {
      expect(await sysctl(key), key).toBe(value);
    }
    expect(await sysctl('net.ipv4.conf.calidown0.proxy_arp')).toBe('0');
  });

  it('carries packets between host and workload once plumbed', async () => {
    const ping = await host.exec(['ping', '-c', '1', '-W', '2', '-I', '198.51.100.1', '192.0.2.10']);
    expect(ping.stdout).toMatch(/1 received/);
  });

  it('re-applying an unchanged spec runs read commands only', async () => {
    const runner = recording(createCommandRunner({ netns: host.name }));
    const plumbing = createPlumbing({ runner, interfacePrefix: 'cali' });
    const report = await plumbing.reconcile(desiredPlumbing(active));
    expect(report.sysctlWrites).toEqual([]);
    expect(report.ipChanges).toEqual([]);
    const writes = runner.commands.filter((c) => c.argv.includes('-w') || c.argv.includes('-batch'));
    expect(writes).toEqual([]);
    expect(runner.commands.length).toBeGreaterThan(0);
  });

  it('repairs a route someone deleted, and removes one someone added', async () => {
    await host.exec(['ip', 'route', 'del', '192.0.2.11/32', 'dev', 'cali0a1b2c3d']);
    await host.exec(['ip', 'route', 'add', '192.0.2.99/32', 'dev', 'cali0a1b2c3d']);
    const plumbing = createPlumbing({ runner: createCommandRunner({ netns: host.name }), interfacePrefix: 'cali' });
    const report = await plumbing.reconcile(desiredPlumbing(active));
    expect(report.ipChanges).toEqual(['route del 192.0.2.99 dev cali0a1b2c3d', 'route replace 192.0.2.11/32 dev cali0a1b2c3d']);
    expect(await routes()).toEqual(['192.0.2.10 cali0a1b2c3d', '192.0.2.11 cali0a1b2c3d', '2001:db8::10 cali0a1b2c3d', '203.0.113.7 lo']);
  });

  it('removes routes and proxy entries of an inactive endpoint, keeping the interface', async () => {
    const inactive = new Map(active);
    const [name, input] = endpoint('cali0a1b2c3d', { state: 'inactive', ipv4_nets: ['192.0.2.10/32'] });
    inactive.set(name, input);
    const plumbing = createPlumbing({ runner: createCommandRunner({ netns: host.name }), interfacePrefix: 'cali' });
    const report = await plumbing.reconcile(desiredPlumbing(inactive));
    expect(report.ipChanges).toHaveLength(4);
    expect(await routes()).toEqual(['203.0.113.7 lo']);
    expect((await host.exec(['ip', '-j', '-6', 'neigh', 'show', 'proxy'])).stdout.trim()).toMatch(/^\[\]$|^$/);
    expect((await host.exec(['ip', 'link', 'show', 'cali0a1b2c3d'])).code).toBe(0);
    const ping = await host.exec(['ping', '-c', '1', '-W', '1', '192.0.2.10'], { allowFail: true });
    expect(ping.code).not.toBe(0);
  });
});
