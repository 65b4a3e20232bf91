/**
 * Rule → iptables fragments, Felix policy_test.go style: ONE table of (rule, family, expected
 * match fragments), checked once wrapped as allow (→ RETURN) and once as deny (→ DROP).
 * Includes the reference §5.2/§5.3/§5.7 vectors adapted to our names and long options.
 */
import { describe, expect, test } from 'vitest';
import { ruleSchema, type IpVersion } from '../../src/model/index.js';
import { profileRuleBodies, ruleMatchFragments, splitPortList } from '../../compiler/rule-render.js';
import { tagIpsetName } from '../../compiler/names.js';

const PORTS_1_TO_17 = [1, '2:3', 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
const CHUNK_A = '1,2:3,4,5,6,7,8,9,10,11,12,13,14,15';
const CHUNK_B = '16,17';

// [description, family, rule JSON (without action), expected match fragments ([] = skipped)]
const RULE_TABLE: [string, IpVersion, Record<string, unknown>, string[]][] = [
  ['empty rule v4', 4, {}, ['']],
  ['empty rule v6', 6, {}, ['']],
  ['protocol name', 4, { protocol: 'tcp' }, ['--protocol tcp']],
  ['protocol udplite', 6, { protocol: 'udplite' }, ['--protocol udplite']],
  ['numeric protocol stays a number', 4, { protocol: 132 }, ['--protocol 132']],
  ['numeric protocol string', 6, { protocol: '47' }, ['--protocol 47']],
  ['source net', 4, { src_net: '192.0.2.0/24' }, ['--source 192.0.2.0/24']],
  ['destination net', 4, { dst_net: '198.51.100.7' }, ['--destination 198.51.100.7/32']],
  ['IPv6 source net', 6, { src_net: '2001:db8::beef' }, ['--source 2001:db8::beef/128']],
  ['v4 net rule skipped in v6', 6, { src_net: '192.0.2.0/24' }, []],
  ['v6 net rule skipped in v4', 4, { dst_net: '2001:db8::/32' }, []],
  ['ip_version 6 skipped in v4', 4, { ip_version: 6, protocol: 'tcp' }, []],
  ['ip_version 6 rendered in v6', 6, { ip_version: 6, protocol: 'tcp' }, ['--protocol tcp']],
  ['ip_version 4 rendered in v4', 4, { ip_version: 4 }, ['']],
  ['source tag v4', 4, { src_tag: 'WEB' }, ['--match set --match-set cali4-tag-WEB src']],
  ['source tag v6', 6, { src_tag: 'WEB' }, ['--match set --match-set cali6-tag-WEB src']],
  ['destination tag', 4, { dst_tag: 'db' }, ['--match set --match-set cali4-tag-db dst']],
  [
    'long tag shortened',
    4,
    { src_tag: 'a-very-long-tag-name-for-the-database-tier' },
    [`--match set --match-set ${tagIpsetName('a-very-long-tag-name-for-the-database-tier', 4)} src`],
  ],
  ['source ports', 4, { protocol: 'tcp', src_ports: [80] }, ['--protocol tcp --match multiport --source-ports 80']],
  [
    'destination ports with range',
    4,
    { protocol: 'udp', dst_ports: [53, '1000:2000'] },
    ['--protocol udp --match multiport --destination-ports 53,1000:2000'],
  ],
  ['empty port list is no constraint', 4, { protocol: 'tcp', dst_ports: [] }, ['--protocol tcp']],
  [
    'destination ports chunked at 15 (range counts 2)',
    4,
    { protocol: 'tcp', dst_ports: PORTS_1_TO_17 },
    [
      `--protocol tcp --match multiport --destination-ports ${CHUNK_A}`,
      `--protocol tcp --match multiport --destination-ports ${CHUNK_B}`,
    ],
  ],
  [
    'src × dst chunks cross product, src-major',
    6,
    { protocol: 'sctp', src_ports: PORTS_1_TO_17, dst_ports: PORTS_1_TO_17 },
    [
      `--protocol sctp --match multiport --source-ports ${CHUNK_A} --match multiport --destination-ports ${CHUNK_A}`,
      `--protocol sctp --match multiport --source-ports ${CHUNK_A} --match multiport --destination-ports ${CHUNK_B}`,
      `--protocol sctp --match multiport --source-ports ${CHUNK_B} --match multiport --destination-ports ${CHUNK_A}`,
      `--protocol sctp --match multiport --source-ports ${CHUNK_B} --match multiport --destination-ports ${CHUNK_B}`,
    ],
  ],
  [
    'full positive order: protocol, src net/tag/ports, dst net/tag/ports',
    4,
    {
      protocol: 'tcp',
      src_net: '192.0.2.0/24',
      src_tag: 'a',
      src_ports: [1],
      dst_net: '198.51.100.0/24',
      dst_tag: 'b',
      dst_ports: [2],
    },
    [
      '--protocol tcp --source 192.0.2.0/24 --match set --match-set cali4-tag-a src --match multiport --source-ports 1 --destination 198.51.100.0/24 --match set --match-set cali4-tag-b dst --match multiport --destination-ports 2',
    ],
  ],
  ['icmp type', 4, { protocol: 'icmp', icmp_type: 8 }, ['--protocol icmp --match icmp --icmp-type 8']],
  [
    'icmp type/code (§5.3)',
    4,
    { protocol: 'icmp', src_net: '192.0.2.0/24', icmp_type: 7, icmp_code: 123 },
    ['--protocol icmp --source 192.0.2.0/24 --match icmp --icmp-type 7/123'],
  ],
  ['icmp rule skipped in v6', 6, { protocol: 'icmp', icmp_type: 8 }, []],
  [
    'icmpv6 type (§5.3)',
    6,
    { protocol: 'icmpv6', src_net: '2001:db8::beef', icmp_type: 7 },
    ['--protocol icmpv6 --source 2001:db8::beef/128 --match icmp6 --icmpv6-type 7'],
  ],
  ['icmpv6 type/code', 6, { protocol: 'icmpv6', icmp_type: 1, icmp_code: 4 }, ['--protocol icmpv6 --match icmp6 --icmpv6-type 1/4']],
  ['icmpv6 skipped in v4', 4, { protocol: 'icmpv6' }, []],
  ['negated protocol', 4, { '!protocol': 'udp' }, ['! --protocol udp']],
  ['negated source net', 4, { '!src_net': '192.0.2.0/25' }, ['! --source 192.0.2.0/25']],
  ['negated destination net v6', 6, { '!dst_net': '2001:db8::/48' }, ['! --destination 2001:db8::/48']],
  ['negated source tag', 4, { '!src_tag': 'bad' }, ['--match set ! --match-set cali4-tag-bad src']],
  ['negated destination tag', 6, { '!dst_tag': 'bad' }, ['--match set ! --match-set cali6-tag-bad dst']],
  ['negated source ports', 4, { protocol: 'tcp', '!src_ports': [22] }, ['--protocol tcp --match multiport ! --source-ports 22']],
  [
    'negated destination ports: all chunks ANDed in one fragment',
    4,
    { protocol: 'tcp', '!dst_ports': PORTS_1_TO_17 },
    [`--protocol tcp --match multiport ! --destination-ports ${CHUNK_A} --match multiport ! --destination-ports ${CHUNK_B}`],
  ],
  ['negated empty port list ignored', 4, { protocol: 'udp', '!src_ports': [] }, ['--protocol udp']],
  ['negated icmp type', 4, { protocol: 'icmp', '!icmp_type': 3 }, ['--protocol icmp --match icmp ! --icmp-type 3']],
  [
    'negated icmp type/code (§5.7)',
    4,
    { protocol: 'icmp', '!icmp_type': 7, '!icmp_code': 123 },
    ['--protocol icmp --match icmp ! --icmp-type 7/123'],
  ],
  ['negated icmpv6 type', 6, { protocol: 'icmpv6', '!icmp_type': 128 }, ['--protocol icmpv6 --match icmp6 ! --icmpv6-type 128']],
  [
    'positive and negated icmp together',
    4,
    { protocol: 'icmp', icmp_type: 3, '!icmp_type': 3, '!icmp_code': 1 },
    ['--protocol icmp --match icmp --icmp-type 3 --match icmp ! --icmp-type 3/1'],
  ],
  [
    'positive then negated pass (§5.7 vector without selectors)',
    4,
    {
      protocol: 'tcp',
      src_net: '192.0.2.0/24',
      src_tag: 'tag1',
      src_ports: [1, '2:3'],
      '!src_net': '198.51.100.0/24',
      '!src_tag': 'tag2',
      '!src_ports': PORTS_1_TO_17,
    },
    [
      `--protocol tcp --source 192.0.2.0/24 --match set --match-set cali4-tag-tag1 src --match multiport --source-ports 1,2:3 ! --source 198.51.100.0/24 --match set ! --match-set cali4-tag-tag2 src --match multiport ! --source-ports ${CHUNK_A} --match multiport ! --source-ports ${CHUNK_B}`,
    ],
  ],
  [
    'negations repeated in every positive chunk',
    6,
    { protocol: 'udp', dst_ports: PORTS_1_TO_17, '!protocol': 'tcp', '!dst_net': '2001:db8::1' },
    [
      `--protocol udp --match multiport --destination-ports ${CHUNK_A} ! --protocol tcp ! --destination 2001:db8::1/128`,
      `--protocol udp --match multiport --destination-ports ${CHUNK_B} ! --protocol tcp ! --destination 2001:db8::1/128`,
    ],
  ],
];

const tagSet = (family: IpVersion) => (tag: string) => tagIpsetName(tag, family);

describe.each([
  ['allow', '--jump RETURN'],
  ['deny', '--jump DROP'],
] as const)('%s rules', (action, target) => {
  test.each(RULE_TABLE)('%s (IPv%s)', (_description, family, json, expected) => {
    const rule = ruleSchema.parse({ ...json, action });
    const bodies = profileRuleBodies(rule, family, tagSet(family));
    expect(bodies).toEqual(expected.map((match) => (match === '' ? target : `${match} ${target}`)));
    for (const body of bodies) expect(body).not.toMatch(/ {2}|^ | $/);
  });
});

test('a rule without action is an allow rule', () => {
  expect(profileRuleBodies(ruleSchema.parse({ protocol: 'tcp' }), 4, tagSet(4))).toEqual(['--protocol tcp --jump RETURN']);
});

test('match fragments never depend on the action', () => {
  for (const [, family, json] of RULE_TABLE) {
    const allow = ruleMatchFragments(ruleSchema.parse({ ...json, action: 'allow' }), family, tagSet(family));
    const deny = ruleMatchFragments(ruleSchema.parse({ ...json, action: 'deny' }), family, tagSet(family));
    expect(allow).toEqual(deny);
  }
});

describe('port chunking (§5.2)', () => {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  test.each([
    ['15 ports fit one chunk', range(15), [range(15).map(String)]],
    ['16 ports need two', range(16), [range(15).map(String), ['16']]],
    [
      'a range costs two entries',
      [1, '2:3', ...range(17).slice(3)],
      [['1', '2:3', ...range(15).slice(3).map(String)], ['16', '17']],
    ],
    ['empty list is one empty chunk', [], [[]]],
  ])('%s', (_d, ports, chunks) => {
    expect(splitPortList(ports)).toEqual(chunks);
  });
});
