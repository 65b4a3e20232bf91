/**
 * Model vectors: reference §5.8 validation vectors adapted to our stricter schemas, CIDR/IP/MAC
 * canonicalisation, the key layout round trip, and `uniquelyShorten` (§5.1).
 */
import { describe, expect, test } from 'vitest';
import {
  canonicalCidr,
  canonicalIp,
  canonicalMac,
  endpointKey,
  endpointSchema,
  hostConfigKey,
  globalConfigKey,
  parseKey,
  poolKey,
  poolSchema,
  portError,
  profileRulesKey,
  profileTagsKey,
  READY_KEY,
  ruleSchema,
  rulesSchema,
  tagsSchema,
  uniquelyShorten,
} from '../../src/model/index.js';

describe('rules (§5.8)', () => {
  test('canonicalisation', () => {
    const rules = rulesSchema.parse({
      inbound_rules: [
        { protocol: 'tcp', ip_version: 4, src_net: '10/8', dst_net: '11.0/16', src_ports: [10, '11:12'], action: 'allow' },
        { protocol: 'tcp', src_net: null },
      ],
      outbound_rules: [{ protocol: 'icmpv6', src_net: '2001:0::1/128', dst_net: '2001:0::/64', icmp_type: 7, icmp_code: 10 }],
    });
    expect(rules.inbound_rules[0]).toMatchObject({ src_net: '10.0.0.0/8', dst_net: '11.0.0.0/16' });
    expect(rules.inbound_rules[1]).toEqual({ protocol: 'tcp' });
    expect(rules.outbound_rules[0]).toMatchObject({ src_net: '2001::1/128', dst_net: '2001::/64' });
  });

  test.each([
    [[], 'expected a rules object'],
    [{ inbound_rules: [] }, 'outbound_rules'],
    [{ inbound_rules: 3, outbound_rules: [] }, 'expected inbound_rules to be a list'],
  ])('rejects rules object %j', (value, message) => {
    const r = rulesSchema.safeParse(value);
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain(message);
  });

  test.each([
    'not a dict',
    { bad_key: '' },
    { protocol: 'bloop' },
    { ip_version: 5 },
    { ip_version: 4, protocol: 'icmpv6' },
    { ip_version: 6, protocol: 'icmp' },
    { protocol: '256' },
    { protocol: '0' },
    { src_tag: 'a!b' },
    { dst_tag: 'x,y' },
    { src_net: 'nonsense' },
    { dst_net: '1.2.3.4/16', ip_version: 6 },
    { protocol: 'tcp', src_ports: 'nonsense' },
    { protocol: 'tcp', dst_ports: [32, 'nonsense'] },
    { action: 'nonsense' },
    { protocol: 'icmp', icmp_type: 'nonsense' },
    { protocol: 'icmp', icmp_type: -1 },
    { protocol: 'icmp', icmp_type: 256 },
    { protocol: 'icmp', icmp_type: 255 },
    { protocol: 'icmp', icmp_type: 22, icmp_code: '2' },
    { protocol: 'icmp', icmp_type: 0, icmp_code: -1 },
    { protocol: 'icmp', icmp_type: 0, icmp_code: 256 },
    { protocol: 'icmp', icmp_code: 2 },
    { protocol: 'icmp', src_ports: [1] },
    // Stricter than Felix 1.3: criteria that Felix would silently drop or widen.
    { protocol: 'tcp', icmp_type: 7 },
    { src_net: '10.0.0.0/8', dst_net: '2001:db8::/32' },
    { protocol: 'icmp', src_net: '2001:db8::/32' },
  ])('rejects rule %j', (rule) => {
    expect(ruleSchema.safeParse(rule).success).toBe(false);
  });

  test.each([
    { src_tag: 'abc', protocol: 'icmp' },
    { src_tag: 'abc', protocol: '123' },
    { protocol: 6, dst_ports: [80] },
    { protocol: 'udplite', '!dst_ports': ['1:2'] },
    { '!src_net': '192.0.2.0/24', ip_version: 4 },
  ])('accepts rule %j', (rule) => {
    expect(ruleSchema.safeParse(rule).success).toBe(true);
  });

  test('numeric protocols become strings', () => {
    expect(ruleSchema.parse({ protocol: 6 })).toEqual({ protocol: '6' });
  });

  test.each([
    [73, undefined],
    ['57:123', undefined],
    ['0:1024', undefined],
    [0, undefined],
    [65536, 'integer out of range'],
    [[], 'neither integer nor string'],
    ['1:2:3', 'range unparseable'],
    ['1', 'range unparseable'],
    ['', 'range unparseable'],
    ['a:b', 'range invalid'],
    ['3:1', 'range invalid'],
    ['-1:3', 'range invalid'],
    ['5:65536', 'range invalid'],
    ['80:80', 'range invalid'],
  ])('portError(%j)', (port, reason) => expect(portError(port)).toBe(reason));
});

describe('tags, endpoints, pools (§5.8)', () => {
  test('tags', () => {
    expect(tagsSchema.safeParse(['name', '_name-with.chars.-_']).success).toBe(true);
    for (const bad of ['not a list', ['value', 3], ['value', 'bad value']]) expect(tagsSchema.safeParse(bad).success).toBe(false);
  });

  test('endpoint canonicalisation', () => {
    const endpoint = endpointSchema.parse({
      state: 'active',
      name: 'tap1234',
      mac: 'AA:bb:cc:dd:ee:ff',
      ipv4_nets: ['10.0.1/32'],
      ipv4_gateway: '11.0.0.1',
      ipv6_nets: ['2001:0::1/64'],
      ipv6_gateway: 'fe80:0::1',
      profile_id: 'prof1',
    });
    expect(endpoint).toMatchObject({
      mac: 'aa:bb:cc:dd:ee:ff',
      ipv4_nets: ['10.0.1.0/32'],
      ipv6_nets: ['2001::1/64'],
      ipv6_gateway: 'fe80::1',
      profile_ids: ['prof1'],
    });
    expect('profile_id' in endpoint).toBe(false);
  });

  const valid = { state: 'active', name: 'cali1', profile_ids: ['p'] };
  test.each([
    { ...valid, state: undefined },
    { ...valid, state: null },
    { ...valid, state: 'foo' },
    { ...valid, name: undefined },
    { ...valid, name: 3 },
    { ...valid, name: 'this-name-is-too-long' },
    { ...valid, mac: 'bad MAC' },
    { ...valid, mac: 3 },
    { ...valid, profile_ids: undefined },
    { ...valid, profile_ids: [3] },
    { ...valid, ipv4_gateway: 'not an IP' },
    { ...valid, ipv6_gateway: '10.0.0.1' },
    { ...valid, ipv4_nets: 'not a list' },
    { ...valid, ipv4_nets: {} },
    { ...valid, ipv4_nets: ['not an IP'] },
    { ...valid, ipv4_nets: ['12345'] },
    { ...valid, ipv4_nets: ['1234::1/64'] },
    { ...valid, ipv6_nets: ['10.0.0.0/8'] },
  ])('rejects endpoint %j', (endpoint) => expect(endpointSchema.safeParse(endpoint).success).toBe(false));

  test('pools', () => {
    expect(poolSchema.parse({ cidr: '10/16', foo: 'bar' }).cidr).toBe('10.0.0.0/16');
    expect(poolSchema.parse({ cidr: '1234:0::/64' }).cidr).toBe('1234::/64');
    for (const bad of [{ cidr: null }, {}, { cidr: '10/16', masquerade: 'foo' }, null, []]) {
      expect(poolSchema.safeParse(bad).success).toBe(false);
    }
  });
});

describe('canonical text forms', () => {
  test.each([
    ['10/8', '10.0.0.0/8'],
    ['11.0/16', '11.0.0.0/16'],
    ['10.0.1/32', '10.0.1.0/32'],
    ['1.2.3.4', '1.2.3.4/32'],
    ['10.0.0.1/24', '10.0.0.1/24'],
    ['2001:0::1/128', '2001::1/128'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1/128'],
    ['::', '::/128'],
    ['1:0:0:1:0:0:0:1/64', '1:0:0:1::1/64'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1/128'],
    ['::FFFF:c000:201/120', '::ffff:192.0.2.1/120'],
    ['::192.0.2.1', '::c000:201/128'],
    ['10.0.0.0/33', undefined],
    ['256.0.0.1', undefined],
    ['10', undefined],
    ['1::2::3', undefined],
    ['2001:db8::/129', undefined],
  ])('canonicalCidr(%j)', (text, expected) => expect(canonicalCidr(text)).toBe(expected));

  test('IPs and MACs', () => {
    expect(canonicalIp('fe80:0::1')).toBe('fe80::1');
    expect(canonicalIp('10.0.0.1/32')).toBeUndefined();
    expect(canonicalMac('AA-bb-cc-dd-ee-ff')).toBe('aa:bb:cc:dd:ee:ff');
    expect(canonicalMac('aa:bb:cc:dd:ee')).toBeUndefined();
  });
});

describe('key layout', () => {
  const ref = { host: 'host-1', orchestrator: 'docker', workload: 'w.1', endpointId: 'e_1' };
  test.each([
    [READY_KEY, { kind: 'ready' }],
    [profileRulesKey('WEB'), { kind: 'profileRules', profile: 'WEB' }],
    [profileTagsKey('WEB'), { kind: 'profileTags', profile: 'WEB' }],
    [endpointKey(ref), { kind: 'endpoint', ref }],
    [globalConfigKey('InterfacePrefix'), { kind: 'globalConfig', name: 'InterfacePrefix' }],
    [hostConfigKey('host-1', 'LogSeverityScreen'), { kind: 'hostConfig', host: 'host-1', name: 'LogSeverityScreen' }],
    [poolKey(4, '192.168.0.0/16'), { kind: 'pool', version: 4, id: '192.168.0.0-16' }],
    ['/calico/v1/host/host-1/bird_ip', { kind: 'other' }],
    ['/calico/v1/policy/profile/WEB/labels', { kind: 'other' }],
    ['/somewhere/else', { kind: 'other' }],
  ])('parseKey(%j)', (key, expected) => expect(parseKey(key)).toEqual(expected));

  test('profile and endpoint keys', () => {
    expect(profileRulesKey('WEB')).toBe('/calico/v1/policy/profile/WEB/rules');
    expect(endpointKey(ref)).toBe('/calico/v1/host/host-1/workload/docker/w.1/endpoint/e_1');
  });
});

describe('uniquelyShorten (§5.1)', () => {
  test.each([
    ['foo', 10, 'foo'],
    ['foobarbaz1', 10, 'foobarbaz1'],
    ['foobarbaz12', 10, '_d71c1ff3e'],
    ['foobarbaz12', 9, '_94df2800'],
    ['foobarbaz123', 10, '_438f419f9'],
    ['_foobar', 10, '_foobar'],
    ['_foobar', 7, '_9f4764'],
    ['_78c38617f', 10, '_f13be85cf'],
  ])('uniquelyShorten(%j, %i)', (text, n, expected) => expect(uniquelyShorten(text, n)).toBe(expected));
});
