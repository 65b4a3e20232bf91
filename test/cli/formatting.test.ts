/**
 * Pure formatting pieces of calicoctl: CPython 2.7 dict order emulation (reference Appendix A,
 * §5.9 vectors), PrettyTable layout (§4.10), rule pretty form (§4.5), paragraph wrapping.
 */
import { describe, expect, test } from 'vitest';
import { wrapParagraph } from '../../src/cli/cli-context.js';
import { renderTable } from '../../src/cli/pretty-table.js';
import { calicoctlRuleOrder, pythonStringHash, RULE_ADD_LOCALS_ORDER } from '../../src/cli/python-dict-order.js';
import { prettyRule } from '../../src/cli/rule-text.js';

describe('CPython 2.7 string hash and dict order', () => {
  test.each([
    ['action', 0x73f258c83b1290f8n],
    ['protocol', 0x573c0e040da74604n],
    ['src_tag', 0xfa4e5b54cf2e3bd4n],
    ['src_ports', 0x0d25b98d1d3cf87en],
    ['src_net', 0xfa4e43af3482544dn],
    ['ip_version', 0xc4967ec1a3449cf8n],
    ['dst_tag', 0x2d9a6d81a457e01bn],
    ['dst_ports', 0x46d06cf46c3e454dn],
    ['dst_net', 0x2d9a597f4e6c2c5an],
    ['icmp_type', 0xfd794d29c563121bn],
    ['icmp_code', 0x490f5a251fb0a340n],
    ['', 0n],
  ])('hash(%j)', (key, hash) => expect(pythonStringHash(key)).toBe(hash));

  const created = (members: string[]): string[] =>
    calicoctlRuleOrder(RULE_ADD_LOCALS_ORDER.filter((k) => members.includes(k)));

  test.each([
    [['action', 'src_tag'], 'action,src_tag'],
    [['protocol', 'dst_ports', 'action'], 'action,protocol,dst_ports'],
    [['icmp_type', 'protocol', 'action'], 'action,icmp_type,protocol'],
    [['action', 'dst_net'], 'action,dst_net'],
    [['action', 'protocol', 'dst_tag', 'src_tag'], 'action,protocol,dst_tag,src_tag'],
    [['icmp_code', 'icmp_type', 'protocol', 'src_net', 'action'], 'icmp_code,action,icmp_type,protocol,src_net'],
    [
      ['protocol', 'dst_ports', 'src_net', 'src_tag', 'action', 'dst_net', 'dst_tag', 'src_ports'],
      'protocol,dst_ports,src_net,src_tag,action,dst_net,dst_tag,src_ports',
    ],
  ])('rule add order of %j (reference §5.9)', (members, expected) => {
    expect(created(members).join(',')).toBe(expected);
  });

  test('the load pipeline is a fixed point for the seed web_rules.json members', () => {
    expect(calicoctlRuleOrder(['action', 'protocol', 'dst_ports'])).toEqual(['action', 'protocol', 'dst_ports']);
    expect(calicoctlRuleOrder(['action', 'icmp_type', 'protocol'])).toEqual(['action', 'icmp_type', 'protocol']);
  });

  test('Appendix A: some 6-member sets are not a fixed point of load→save', () => {
    const once = calicoctlRuleOrder(['action', 'dst_net', 'dst_ports', 'dst_tag', 'icmp_type', 'src_net']);
    const twice = calicoctlRuleOrder(once);
    expect(twice).not.toEqual(once);
    expect([...twice].sort()).toEqual([...once].sort());
  });
});

describe('PrettyTable layout', () => {
  test('centring with odd slack and the empty table', () => {
    expect(renderTable(['Name'], [['PROF_A_C_E'], ['PROF_B'], ['PROF_D']])).toBe(
      '+------------+\n|    Name    |\n+------------+\n| PROF_A_C_E |\n|   PROF_B   |\n|   PROF_D   |\n+------------+',
    );
    expect(renderTable(['Name'], [])).toBe('+------+\n| Name |\n+------+\n+------+');
    // slack 1: odd-length text → extra space right; even-length → left
    expect(renderTable(['ab', 'xyz'], [['a', 'wxyz']])).toBe(
      '+----+------+\n| ab | xyz  |\n+----+------+\n| a  | wxyz |\n+----+------+',
    );
  });

  test('multi-line cells are top-aligned', () => {
    expect(renderTable(['A', 'B'], [['1\n22', 'x']])).toBe('+----+---+\n| A  | B |\n+----+---+\n| 1  | x |\n| 22 |   |\n+----+---+');
  });
});

describe('rule pretty form', () => {
  test.each([
    [{ action: 'allow' }, 'allow'],
    [{ protocol: 'tcp' }, 'allow tcp'],
    [{ action: 'deny', protocol: 'udp', src_ports: [53, '1000:2000'], src_tag: 'DNS', src_net: '10.0.0.0/8', dst_ports: [1000], dst_tag: 'WEB', dst_net: '192.168.0.0/16' },
      'deny udp from ports 53,1000:2000 tag DNS cidr 10.0.0.0/8 to ports 1000 tag WEB cidr 192.168.0.0/16'],
    [{ action: 'allow', protocol: 'icmp', icmp_type: 3, icmp_code: 0, src_net: '10.0.0.0/8' }, 'allow icmp type 3 code 0 from cidr 10.0.0.0/8'],
    [{ action: 'deny', '!protocol': 'tcp', ip_version: 6, '!src_tag': 'X', '!dst_ports': [22] }, 'deny !tcp ipv6 from !tag X to !ports 22'],
  ] as const)('%j', (rule, text) => expect(prettyRule(rule as never)).toBe(text));
});

test('paragraphs wrap at 80 columns like textwrap.fill', () => {
  expect(
    wrapParagraph('Profile names must be < 40 character long and can only contain numbers, letters, dots, dashes and underscores.'),
  ).toBe('Profile names must be < 40 character long and can only contain numbers, letters,\ndots, dashes and underscores.');
});
