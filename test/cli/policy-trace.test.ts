/**
 * `calicoctl policy trace` against a real etcd holding the seeds' WEB/APP example on two hosts:
 * the text and JSON reports, and one line with exit 1 for each kind of bad input.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import type { EndpointRef } from '../../src/model/index.js';
import { useEtcdStore } from '../helpers/etcd-store.js';
import { calicoctl, words } from './run-calicoctl.js';

const fixture = useEtcdStore();
const run = (line: string) => calicoctl(fixture.etcd.env, words(line));
const ep = (host: string, endpointId: string): EndpointRef => ({ host, orchestrator: 'docker', workload: `wl-${endpointId}`, endpointId });

beforeAll(async () => {
  for (const line of [
    'profile add WEB',
    'profile WEB rule add inbound --at=1 allow tcp to ports 80,443',
    'profile WEB tag add APP_7890',
    'profile add APP',
    'profile APP rule add inbound --at=1 allow tcp from tag APP_7890 to ports 7890',
  ]) {
    const r = await run(line);
    expect({ line, code: r.code, stderr: r.stderr }).toEqual({ line, code: 0, stderr: '' });
  }
  await fixture.store.putEndpoint(ep('host1', 'web1'), { state: 'active', name: 'caliweb1', mac: 'ee:ee:ee:00:00:01', profile_ids: ['WEB'], ipv4_nets: ['192.0.2.10/32'], ipv6_nets: ['2001:db8::10/128'] });
  await fixture.store.putEndpoint(ep('host2', 'app1'), { state: 'active', name: 'caliapp1', profile_ids: ['APP'], ipv4_nets: ['192.0.2.20/32'], ipv6_nets: [] });
  await fixture.store.putEndpoint(ep('host2', 'db1'), { state: 'active', name: 'calidb1', profile_ids: ['GONE', 'APP'], ipv4_nets: ['192.0.2.30/32'], ipv6_nets: [] });
  // Two endpoints (on different hosts) claiming one address.
  await fixture.store.putEndpoint(ep('host1', 'twin1'), { state: 'active', name: 'calitwin1', profile_ids: ['APP'], ipv4_nets: ['192.0.2.99/32'], ipv6_nets: [] });
  await fixture.store.putEndpoint(ep('host2', 'twin2'), { state: 'active', name: 'calitwin2', profile_ids: ['APP'], ipv4_nets: ['192.0.2.99/32'], ipv6_nets: [] });
});

describe('policy trace', () => {
  test('prints each side, the profiles tried and the deciding rule, then the verdict', async () => {
    const r = await run('policy trace --from web1 --to 192.0.2.20 --protocol tcp --port 7890');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^packet: tcp 192\.0\.2\.10:32768 -> 192\.0\.2\.20:7890 \(IPv4, new connection, etcd revision \d+\)$/);
    expect(lines.slice(1)).toEqual([
      'outbound at source endpoint web1 (host host1, workload wl-web1, interface caliweb1):',
      '  profile WEB: rule 1 matched: allow -> allow',
      '  decision: allow (rule 1 of profile WEB)',
      'inbound at destination endpoint app1 (host host2, workload wl-app1, interface caliapp1):',
      '  profile APP: rule 1 matched: allow tcp from tag APP_7890 to ports 7890 -> allow',
      '  decision: allow (rule 1 of profile APP)',
      'verdict: allow (rule 1 of profile WEB, outbound at endpoint web1; rule 1 of profile APP, inbound at endpoint app1)',
    ]);
  });

  test('a denied packet: fall-through to default deny, and a missing profile failing closed', async () => {
    const fallThrough = await run('policy trace --from app1 --to web1 --protocol tcp --port 22');
    expect(fallThrough.code).toBe(0);
    expect(fallThrough.stdout).toContain('  profile WEB: no rule matched, falls through\n  decision: deny (no profile allowed it (default deny))\n');
    expect(fallThrough.stdout).toMatch(/\nverdict: deny \(no profile allowed it \(default deny\), inbound at endpoint web1\)\n$/);

    const missing = await run('policy trace --from 203.0.113.7 --to db1 --protocol tcp --port 7890');
    expect(missing.code).toBe(0);
    expect(missing.stdout).toContain('source 203.0.113.7 is outside the cluster: no outbound policy applies\n');
    expect(missing.stdout).toMatch(/verdict: deny \(profile GONE is missing or invalid \(fail closed\), inbound at endpoint db1\)\n$/);
  });

  test('-o json carries the same for scripts', async () => {
    const r = await run('policy trace --from=wl-app1 --to=web1 --protocol=tcp --port=443 --source-port=5000 -o json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      packet: { family: 4, protocol: 'tcp', source: '192.0.2.20', destination: '192.0.2.10', sourcePort: 5000, destinationPort: 443 },
      source: { address: '192.0.2.20', endpoint: 'app1' },
      destination: { address: '192.0.2.10', endpoint: 'web1' },
      sides: [
        { direction: 'outbound', host: 'host2', endpoint: 'app1', decision: 'allow', profiles: [{ profile: 'APP', outcome: 'allow', rule: 1, ruleText: 'allow' }] },
        { direction: 'inbound', host: 'host1', endpoint: 'web1', decision: 'allow', reason: 'rule', profiles: [{ profile: 'WEB', outcome: 'allow', rule: 1, ruleText: 'allow tcp to ports 80,443' }] },
      ],
      verdict: 'allow',
    });
  });

  test.each([
    ['policy trace --from nobody --to web1', 'source nobody is neither an IP address nor a known endpoint or workload id'],
    ['policy trace --from 192.0.2.10 --to 2001:db8::10', 'source and destination are of different IP versions'],
    ['policy trace --from web1 --to 192.0.2.99', 'destination 192.0.2.99 is ambiguous: it belongs to 2 endpoints (twin1, twin2)'],
    ['policy trace --from web1 --to app1 --port 80', '--port and --source-port need --protocol tcp or udp'],
    ['policy trace --from web1 --to app1 --protocol tcp', '--protocol tcp needs --port'],
    ['policy trace --from web1 --to app1 --protocol gre', '--protocol: expected one of tcp, udp, icmp, icmpv6, got "gre"'],
    ['policy trace --from web1 --to app1 --protocol icmpv6', 'destination endpoint app1 has no IPv6 address'],
    ['policy trace --from web1 --to app1 --protocol tcp --port 70000', '--port: expected an integer from 0 to 65535, got "70000"'],
  ])('%s → one line, exit 1', async (line, message) => {
    const r = await run(line);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `${message}\n` });
  });

  test('--interface-prefix: the agents\u2019 prefix decides which interfaces they police', async () => {
    const other = await run('policy trace --from 203.0.113.7 --to web1 --protocol tcp --port 22 --interface-prefix tap');
    expect(other.code).toBe(0);
    expect(other.stdout).toMatch(/interface caliweb1 does not carry the workload prefix: the agent does not police it/);
    expect(other.stdout).toMatch(/\nverdict: allow /);
  });

  test('usage errors print the usage', async () => {
    const r = await run('policy trace --from web1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Usage:\n {2}calicoctl policy trace --from=<SRC> --to=<DST>/);
  });
});
