/**
 * calicoctl against a real etcd: profile removal with and without endpoints, the `endpoint`
 * commands (raw JSON preserved), 20 concurrent rule adds from separate processes (no lost
 * update), and an unreachable etcd (one line, exit 1, fast).
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { endpointKey, type EndpointRef } from '../../src/model/index.js';
import { useEtcdStore } from '../helpers/etcd-store.js';
import { freePort } from '../helpers/etcd.js';
import { calicoctl, words } from './run-calicoctl.js';

const fixture = useEtcdStore();

const run = (line: string, stdin?: string) => calicoctl(fixture.etcd.env, words(line), stdin);

async function ok(line: string): Promise<string> {
  const r = await run(line);
  expect({ line, code: r.code, stderr: r.stderr }).toEqual({ line, code: 0, stderr: '' });
  return r.stdout;
}

async function rawValue(key: string): Promise<string | undefined> {
  const res = await fetch(`${fixture.etcd.endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: btoa(key) }) });
  const body = (await res.json()) as { kvs?: { value: string }[] };
  const value = body.kvs?.[0]?.value;
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString();
}

const ep = (host: string, workload: string, endpointId: string): EndpointRef => ({ host, orchestrator: 'docker', workload, endpointId });

describe('profile remove', () => {
  test('refuses while an endpoint on any host uses the profile; --no-check removes anyway', async () => {
    await ok('profile add USED');
    await ok('profile add SPARE');
    const ref = ep('host-b', 'wl1', 'ep1');
    await fixture.store.putEndpoint(ref, { state: 'active', name: 'caliep1', mac: 'ee:ee:ee:ee:ee:01', profile_ids: ['SPARE', 'USED'], ipv4_nets: ['192.0.2.1/32'], ipv6_nets: [] });

    const refused = await run('profile remove USED');
    // As calicoctl 0.x: on stdout, exit 0, nothing deleted.
    expect(refused).toEqual({
      code: 0,
      stdout: "Cannot remove profile - profile in use by endpoint(s).\nUse the '--no-check' flag to remove the profile anyway.\n",
      stderr: '',
    });
    expect(await rawValue('/calico/v1/policy/profile/USED/rules')).toBeDefined();

    expect(await ok('profile remove USED --no-check')).toBe('Deleted profile USED\n');
    expect(await rawValue('/calico/v1/policy/profile/USED/rules')).toBeUndefined();
    expect(await rawValue('/calico/v1/policy/profile/USED/tags')).toBeUndefined();
    // The endpoint keeps referencing the deleted profile (calicoctl never edits endpoints here).
    expect(JSON.parse((await rawValue(endpointKey(ref))) ?? '{}').profile_ids).toEqual(['SPARE', 'USED']);

    expect(await fixture.store.deleteEndpoint(ref)).toBe(true);
    expect(await ok('profile remove SPARE')).toBe('Deleted profile SPARE\n');
  });

  test('profile show --detailed lists a profile without endpoints as a row of None', async () => {
    await ok('profile add LONELY');
    const out = await ok('profile show --detailed');
    expect(out).toContain('| LONELY | None |       None      |     None    |     None    |  None |\n');
    await ok('profile remove LONELY');
  });
});

describe('endpoint commands', () => {
  const ref = ep('host-a', 'workload-1', 'e1');
  const other = ep('host-c', 'workload-2', 'e2');

  beforeAll(async () => {
    for (const p of ['EA', 'EB', 'EC']) await ok(`profile add ${p}`);
    await fixture.store.putEndpoint(ref, {
      state: 'active',
      name: 'calie1',
      mac: 'EE:EE:EE:EE:EE:01',
      profile_id: 'EA',
      ipv4_nets: ['192.0.2.5/32'],
      ipv6_nets: ['2001:db8::5/128'],
      ipv4_gateway: '192.0.2.1',
      ipv6_gateway: null,
      labels_from_the_future: { keep: 'me' },
    });
    await fixture.store.putEndpoint(other, { state: 'inactive', name: 'calie2', profile_ids: [], ipv4_nets: [], ipv6_nets: [] });
  });

  test('profile show / append / remove / set, preserving unknown members', async () => {
    expect(await ok('endpoint e1 profile show')).toBe('+------+\n| Name |\n+------+\n|  EA  |\n+------+\n\n');
    expect(await ok('endpoint e1 profile append EB EC')).toBe('Profile(s) EB, EC appended.\n');
    expect(await ok('endpoint e1 profile remove EA,EC'.replace(',', ' '))).toBe('Profile(s) EA,EC removed.\n');
    expect(await ok('endpoint e1 profile set EC EA')).toBe('Profile(s) set to EC, EA.\n');
    const stored = JSON.parse((await rawValue(endpointKey(ref))) ?? '{}') as Record<string, unknown>;
    expect(stored.profile_ids).toEqual(['EC', 'EA']);
    expect(stored.profile_id).toBeUndefined();
    expect(stored.labels_from_the_future).toEqual({ keep: 'me' });
    expect(stored.mac).toBe('EE:EE:EE:EE:EE:01');
    expect(await ok('endpoint e1 profile set')).toBe('Removed all profiles from endpoint.\n');
    expect(await ok('endpoint e1 profile show')).toBe('Endpoint has no profiles associated with it.\n');
  });

  test('errors', async () => {
    await ok('endpoint e1 profile set EA');
    const cases: [string, string][] = [
      ['endpoint e1 profile append EA', 'Profile EA is already in endpoint profile list\n'],
      ['endpoint e1 profile remove EB', 'Profile EB is not in endpoint profile list.\n'],
      ['endpoint e1 profile append NOPE', 'Profile with name NOPE was not found.\n'],
      ['endpoint e1 profile set EB EB', 'Profile with name EB was specified more than once.\n'],
      ['endpoint e1 profile append', 'No profile specified.\n'],
      ['endpoint e1 profile remove', 'No profile specified.\n'],
      ['endpoint e1 profile append bad~name', 'Profile names must be < 40 character long and can only contain numbers, letters,\ndots, dashes and underscores.\n\n'],
      ['endpoint nosuch profile show', 'Endpoint nosuch is unknown to Calico.\n'],
    ];
    const results = await Promise.all(cases.map(([line]) => run(line)));
    results.forEach((r, i) => expect({ line: cases[i]![0], ...r }).toEqual({ line: cases[i]![0], code: 1, stdout: '', stderr: cases[i]![1] }));
    expect(JSON.parse((await rawValue(endpointKey(ref))) ?? '{}').profile_ids).toEqual(['EA']);
  });

  test('endpoint show tables', async () => {
    await ok('endpoint e1 profile set EA EB');
    expect(await ok('endpoint show')).toBe(
      [
        '+----------+-----------------+---------------------+---------------------+',
        '| Hostname | Orchestrator ID | Number of Workloads | Number of Endpoints |',
        '+----------+-----------------+---------------------+---------------------+',
        '|  host-a  |      docker     |          1          |          1          |',
        '|  host-c  |      docker     |          1          |          1          |',
        '+----------+-----------------+---------------------+---------------------+',
        '',
        '',
      ].join('\n'),
    );
    expect(await ok('endpoint show --detailed --host=host-a')).toBe(
      [
        '+----------+-----------------+-------------+-------------+-----------------+-------------------+----------+--------+',
        '| Hostname | Orchestrator ID | Workload ID | Endpoint ID |    Addresses    |        MAC        | Profiles | State  |',
        '+----------+-----------------+-------------+-------------+-----------------+-------------------+----------+--------+',
        '|  host-a  |      docker     |  workload-1 |      e1     |   192.0.2.5/32  | ee:ee:ee:ee:ee:01 |  EA,EB   | active |',
        '|          |                 |             |             | 2001:db8::5/128 |                   |          |        |',
        '+----------+-----------------+-------------+-------------+-----------------+-------------------+----------+--------+',
        '',
        '',
      ].join('\n'),
    );
  });
});

describe('concurrency', () => {
  test('20 concurrent `rule add` processes leave exactly 20 new rules', async () => {
    await ok('profile add RACE');
    const ports = Array.from({ length: 20 }, (_, i) => 10000 + i);
    const results = await Promise.all(ports.map((port) => run(`profile RACE rule add inbound allow tcp to ports ${port}`)));
    for (const r of results) expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    const stored = JSON.parse((await rawValue('/calico/v1/policy/profile/RACE/rules')) ?? '{}') as {
      inbound_rules: { dst_ports?: number[] }[];
    };
    expect(stored.inbound_rules).toHaveLength(21);
    const added = stored.inbound_rules.flatMap((r) => r.dst_ports ?? []).sort((a, b) => a - b);
    expect(added).toEqual(ports);
  });

  test('concurrent tag adds and endpoint profile appends lose nothing', async () => {
    await ok('profile add TAGRACE');
    const tags = Array.from({ length: 8 }, (_, i) => `t${i}`);
    const profiles = Array.from({ length: 6 }, (_, i) => `R${i}`);
    await Promise.all(profiles.map((p) => ok(`profile add ${p}`)));
    const ref = ep('host-r', 'wl', 'race-ep');
    await fixture.store.putEndpoint(ref, { state: 'active', name: 'caliraceep', profile_ids: [], ipv4_nets: [], ipv6_nets: [] });
    const results = await Promise.all([
      ...tags.map((t) => run(`profile TAGRACE tag add ${t}`)),
      ...profiles.map((p) => run(`endpoint race-ep profile append ${p}`)),
    ]);
    for (const r of results) expect(r.code).toBe(0);
    expect(JSON.parse((await rawValue('/calico/v1/policy/profile/TAGRACE/tags')) ?? '[]').sort()).toEqual(['TAGRACE', ...tags].sort());
    expect(JSON.parse((await rawValue(endpointKey(ref))) ?? '{}').profile_ids.sort()).toEqual(profiles);
  });
});

describe('unreachable etcd', () => {
  test('one line naming the endpoint, exit 1, within a few seconds', async () => {
    const port = await freePort();
    const env = { ...fixture.etcd.env, ETCD_ENDPOINTS: `http://127.0.0.1:${port}` };
    const started = performance.now();
    const results = await Promise.all([
      calicoctl(env, words('profile show')),
      calicoctl(env, words('profile add X')),
      calicoctl(env, words('profile X rule add inbound allow')),
      calicoctl(env, words('endpoint show')),
    ]);
    const elapsedMs = performance.now() - started;
    for (const r of results) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^Cannot reach etcd at http://127\\.0\\.0\\.1:${port} \\(.+\\)\\. Is etcd running\\? .*\\n$`));
      expect(r.stderr.split('\n')).toHaveLength(2);
    }
    // Generous bound: the client gives up after its 3 s dial / 5 s call deadline at worst.
    expect(elapsedMs).toBeLessThan(15_000);
  });

  test('bad settings are reported in one line', async () => {
    const r = await calicoctl({ ...fixture.etcd.env, ETCD_ENDPOINTS: 'ftp://x' }, words('profile show'));
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'ETCD_ENDPOINTS: "ftp://x" must use http:// or https://\n' });
  });
});
