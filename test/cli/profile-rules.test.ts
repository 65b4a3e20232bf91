/**
 * Table-driven tests of `calicoctl profile … rule/tag …` against a real etcd: every branch of
 * the rule grammar (pretty form and exact stored value), every error message (stderr, exit 1,
 * nothing written), `--at` positions, port syntax, `rule update` validation, and the
 * `rule json` → `rule update` round trip.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PROFILE_HELP, PROFILE_USAGE } from '../../src/cli/profile-help.js';
import { profileRulesKey } from '../../src/model/index.js';
import { startEtcd, type EtcdInstance } from '../helpers/etcd.js';
import { calicoctl, words } from './run-calicoctl.js';

let etcd: EtcdInstance;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

const run = (line: string, stdin?: string) => calicoctl(etcd.env, words(line), stdin);

async function ok(line: string, stdin?: string): Promise<string> {
  const r = await run(line, stdin);
  expect({ line, code: r.code, stderr: r.stderr }).toEqual({ line, code: 0, stderr: '' });
  return r.stdout;
}

/** The raw stored value of a key, read through etcd's JSON gateway (independent of our code). */
async function storedValue(key: string): Promise<string | undefined> {
  const res = await fetch(`${etcd.endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: btoa(key) }) });
  const body = (await res.json()) as { kvs?: { value: string }[] };
  const value = body.kvs?.[0]?.value;
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString();
}

let profileCounter = 0;
/** A fresh profile with default rules; profiles are independent so tests can run in parallel. */
async function freshProfile(): Promise<string> {
  const name = `P${++profileCounter}`;
  expect(await ok(`profile add ${name}`)).toBe(`Created profile ${name}\n`);
  return name;
}

describe('rule grammar: pretty form and stored member order', () => {
  // [direction + rule words, pretty form, stored JSON of the new rule]. The first seven come
  // from the reference (§5.9, seed 000) and are compared byte for byte, member order included;
  // the rest are compared as JSON values.
  const cases: [string, string, string][] = [
    ['inbound allow', 'allow', '{"action": "allow"}'],
    ['inbound allow tcp to ports 80,443', 'allow tcp to ports 80,443', '{"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]}'],
    ['inbound allow icmp type 8', 'allow icmp type 8', '{"action": "allow", "icmp_type": 8, "protocol": "icmp"}'],
    [
      'inbound deny udp from ports 53 tag DNS cidr 10.0.0.0/8 to ports 1000 tag WEB cidr 192.168.0.0/16',
      'deny udp from ports 53 tag DNS cidr 10.0.0.0/8 to ports 1000 tag WEB cidr 192.168.0.0/16',
      '{"protocol": "udp", "dst_ports": [1000], "src_net": "10.0.0.0/8", "src_tag": "DNS", "action": "deny", "dst_net": "192.168.0.0/16", "dst_tag": "WEB", "src_ports": [53]}',
    ],
    [
      'inbound allow icmp type 3 code 1 from cidr 10.0.0.0/8',
      'allow icmp type 3 code 1 from cidr 10.0.0.0/8',
      '{"icmp_code": 1, "action": "allow", "icmp_type": 3, "protocol": "icmp", "src_net": "10.0.0.0/8"}',
    ],
    ['outbound deny to cidr 10.1.0.0/16', 'deny to cidr 10.1.0.0/16', '{"action": "deny", "dst_net": "10.1.0.0/16"}'],
    ['outbound allow tcp from tag A to tag B', 'allow tcp from tag A to tag B', '{"action": "allow", "protocol": "tcp", "dst_tag": "B", "src_tag": "A"}'],
    [
      'inbound allow icmpv6 type 128 code 0 to cidr 2001:DB8:0::1/64',
      'allow icmpv6 type 128 code 0 to cidr 2001:db8::1/64',
      '{"icmp_code": 0, "action": "allow", "icmp_type": 128, "protocol": "icmpv6", "dst_net": "2001:db8::1/64"}',
    ],
    ['inbound allow icmp', 'allow icmp', '{"action": "allow", "protocol": "icmp"}'],
    [
      'inbound allow udp from ports 1000:2000,53 to ports 0,65535',
      'allow udp from ports 1000:2000,53 to ports 0,65535',
      '{"action": "allow", "protocol": "udp", "dst_ports": [0, 65535], "src_ports": ["1000:2000", 53]}',
    ],
    ['inbound allow from tag X to cidr 198.51.100.7', 'allow from tag X to cidr 198.51.100.7/32', '{"action": "allow", "dst_net": "198.51.100.7/32", "src_tag": "X"}'],
    [
      'inbound deny from 203.0.113.0/24 to 198.51.100.0/24',
      'deny from cidr 203.0.113.0/24 to cidr 198.51.100.0/24',
      '{"action": "deny", "src_net": "203.0.113.0/24", "dst_net": "198.51.100.0/24"}',
    ],
    ['outbound allow tcp from tag T cidr 10/8', 'allow tcp from tag T cidr 10.0.0.0/8', '{"action": "allow", "protocol": "tcp", "src_net": "10.0.0.0/8", "src_tag": "T"}'],
    ['outbound allow udp to cidr 2001:db8::/32 ports 53', 'allow udp to ports 53 cidr 2001:db8::/32', '{"action": "allow", "protocol": "udp", "dst_ports": [53], "dst_net": "2001:db8::/32"}'],
  ];

  const exactCases = 7;
  test.each(cases.map((c, i) => [...c, i < exactCases] as const))('rule add %s', async (ruleWords, pretty, storedRule, exact) => {
    const profile = await freshProfile();
    expect(await ok(`profile ${profile} rule add ${ruleWords}`)).toBe('');
    const inbound = ruleWords.startsWith('inbound');
    const expectedShow = inbound
      ? `Inbound rules:\n   1 allow from tag ${profile}\n   2 ${pretty}\nOutbound rules:\n   1 allow\n`
      : `Inbound rules:\n   1 allow from tag ${profile}\nOutbound rules:\n   1 allow\n   2 ${pretty}\n`;
    expect(await ok(`profile ${profile} rule show`)).toBe(expectedShow);
    const defaultIn = `{"action": "allow", "src_tag": "${profile}"}`;
    const expectedStored = inbound
      ? `{"inbound_rules": [${defaultIn}, ${storedRule}], "outbound_rules": [{"action": "allow"}]}`
      : `{"inbound_rules": [${defaultIn}], "outbound_rules": [{"action": "allow"}, ${storedRule}]}`;
    const stored = await storedValue(profileRulesKey(profile));
    if (exact) expect(stored).toBe(expectedStored);
    else expect(JSON.parse(stored ?? 'null')).toEqual(JSON.parse(expectedStored));
    // rule remove with the same words removes exactly that rule.
    expect(await ok(`profile ${profile} rule remove ${ruleWords}`)).toBe('');
    expect(await ok(`profile ${profile} rule show`)).toBe(
      `Inbound rules:\n   1 allow from tag ${profile}\nOutbound rules:\n   1 allow\n`,
    );
  });

  test('reference §5.9: stored value after a sequence of rule adds', async () => {
    await ok('profile add PROF');
    for (const line of [
      'inbound allow tcp to ports 80,443',
      'inbound allow icmp type 8',
      'inbound deny udp from ports 53 tag DNS cidr 10.0.0.0/8 to ports 1000 tag WEB cidr 192.168.0.0/16',
      'inbound allow icmp type 3 code 1 from cidr 10.0.0.0/8',
      'outbound deny to cidr 10.1.0.0/16',
      'outbound allow tcp from tag A to tag B',
    ]) {
      await ok(`profile PROF rule add ${line}`);
    }
    expect(await storedValue(profileRulesKey('PROF'))).toBe(
      '{"inbound_rules": [{"action": "allow", "src_tag": "PROF"}, {"action": "allow", "protocol": "tcp", "dst_ports": [80, 443]}, {"action": "allow", "icmp_type": 8, "protocol": "icmp"}, {"protocol": "udp", "dst_ports": [1000], "src_net": "10.0.0.0/8", "src_tag": "DNS", "action": "deny", "dst_net": "192.168.0.0/16", "dst_tag": "WEB", "src_ports": [53]}, {"icmp_code": 1, "action": "allow", "icmp_type": 3, "protocol": "icmp", "src_net": "10.0.0.0/8"}], "outbound_rules": [{"action": "allow"}, {"action": "deny", "dst_net": "10.1.0.0/16"}, {"action": "allow", "protocol": "tcp", "dst_tag": "B", "src_tag": "A"}]}',
    );
    expect(await storedValue('/calico/v1/policy/profile/PROF/tags')).toBe('["PROF"]');
  });
});

const PROFILE_PARAGRAPH =
  'Profile names must be < 40 character long and can only contain numbers, letters,\ndots, dashes and underscores.\n\n';
const TAG_PARAGRAPH = 'Tags names can only contain numbers, letters, dots, dashes and underscores.\n\n';

describe('errors: exit 1, nothing written', () => {
  // [command after `profile <P> ` (or a full command starting with `!`), exact output]. The
  // argument checks print on stdout, as calicoctl 0.x did (scripts read them there); the rest on
  // stderr.
  const cases: [string, string][] = [
    ['!profile add Profile!', PROFILE_PARAGRAPH],
    ['!profile remove a/b', PROFILE_PARAGRAPH],
    ['!profile NOPE rule show', 'Profile NOPE not found.\n'],
    ['!profile NOPE rule add inbound allow', 'Profile NOPE not found.\n'],
    ['!profile NOPE tag show', 'Profile NOPE not found.\n'],
    ['rule add inbound allow from tag Tag~1', TAG_PARAGRAPH],
    ['tag add bad~tag', TAG_PARAGRAPH],
    ['tag remove ABSENT', 'Tag ABSENT is not on profile {P}\n'],
    ['rule add inbound allow from cidr 127.a.0.1', 'Invalid CIDR specified.\nInvalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n'],
    ['rule add inbound allow to cidr aa:bb::zz', 'Invalid CIDR specified.\nInvalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n'],
    ['rule add inbound allow from cidr 10.0.0.0/33', 'Invalid CIDR specified.\nInvalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n'],
    ['rule add inbound allow from cidr 1.2.3.4 to cidr dead::beef', 'Invalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n'],
    ['rule add inbound allow icmp from cidr 2001:db8::/32', 'Invalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n'],
    ['rule add inbound allow icmpv6 to cidr 192.0.2.0/24', 'Invalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n'],
    ['rule add inbound allow icmp type 255', 'Invalid ICMP type or ICMP code specified.\n'],
    ['rule add inbound allow icmp type 8 code 255', 'Invalid ICMP type or ICMP code specified.\n'],
    ['rule add inbound allow icmp type -1', 'Invalid ICMP type or ICMP code specified.\n'],
    ['rule add inbound allow icmpv6 type echo', 'Invalid ICMP type or ICMP code specified.\n'],
    ['rule add inbound allow tcp to ports -10', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    ['rule add inbound allow tcp to ports 65536', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    ['rule add inbound allow tcp to ports 80:80', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    ['rule add inbound allow tcp to ports 90:80', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    ['rule add inbound allow tcp to ports 0:65536', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    ['rule add inbound allow tcp to ports 1-2', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    ['rule add inbound allow udp from ports 80,,443', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    ['rule add inbound allow udp from ports http', 'Invalid SRCPORTS or DSTPORTS specified.\n'],
    [
      '!profile Bad! rule add inbound allow tcp from ports 99999 tag bad~ cidr 1.2.3.4/33',
      `${PROFILE_PARAGRAPH}${TAG_PARAGRAPH}Invalid CIDR specified.\nInvalid SRCPORTS or DSTPORTS specified.\nInvalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n`,
    ],
    ['rule add inbound --at=3 allow tcp', 'Position 3 is out-of-range.\n'],
    ['rule add inbound --at=-1 allow tcp', 'Position -1 is out-of-range.\n'],
    ['rule add inbound --at=x allow tcp', 'Invalid position "x": expected an integer.\n'],
    ['rule remove inbound allow udp', 'Rule not found.\n'],
    ['rule remove outbound deny', 'Rule not found.\n'],
  ];

  test('each error message (profiles untouched)', async () => {
    const profile = await freshProfile();
    const before = await storedValue(profileRulesKey(profile));
    const tagsBefore = await storedValue(`/calico/v1/policy/profile/${profile}/tags`);
    const results = await Promise.all(
      cases.map(async ([command, stderr]) => {
        const line = command.startsWith('!') ? command.slice(1) : `profile ${profile} ${command}`;
        const r = await run(line);
        return { line, code: r.code, stdout: r.stdout, stderr: r.stderr, expected: stderr.replaceAll('{P}', profile) };
      }),
    );
    const argumentCheck = (message: string): boolean =>
      /^(Profile names must|Tags names can|Invalid (CIDR|ICMP|SRCPORTS|or unmatching))/.test(message);
    for (const r of results) {
      const onStdout = argumentCheck(r.expected);
      expect({ line: r.line, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        line: r.line,
        code: 1,
        stdout: onStdout ? r.expected : '',
        stderr: onStdout ? '' : r.expected,
      });
    }
    expect(await storedValue(profileRulesKey(profile))).toBe(before);
    expect(await storedValue(`/calico/v1/policy/profile/${profile}/tags`)).toBe(tagsBefore);
    expect(await storedValue(profileRulesKey('NOPE'))).toBeUndefined();
  });

});

describe('drop-in for scripts written for calicoctl 0.x (v0.20.0 verified under Python 2.7)', () => {
  test('"nothing to do" outcomes: the message on stdout, exit 0, nothing changed', async () => {
    const profile = await freshProfile();
    const before = await storedValue(profileRulesKey(profile));
    expect(await run(`profile add ${profile}`)).toEqual({ code: 0, stdout: `Profile ${profile} already exists.\n`, stderr: '' });
    expect(await run('profile remove NOPE')).toEqual({ code: 0, stdout: 'Profile NOPE not found.\n', stderr: '' });
    expect(await run(`profile ${profile} rule remove inbound --at=5`)).toEqual({ code: 0, stdout: 'Rule position out-of-range.\n', stderr: '' });
    expect(await run(`profile ${profile} rule remove outbound --at=0`)).toEqual({ code: 0, stdout: 'Rule position out-of-range.\n', stderr: '' });
    expect(await storedValue(profileRulesKey(profile))).toBe(before);
    expect(await storedValue(profileRulesKey('NOPE'))).toBeUndefined();
  });

  test('an invalid CIDR prints both argument messages on stdout, exit 1', async () => {
    const profile = await freshProfile();
    expect(await run(`profile ${profile} rule add inbound allow from cidr 127.a.0.1`)).toEqual({
      code: 1,
      stdout: 'Invalid CIDR specified.\nInvalid or unmatching IP versions for SRCCIDR/DSTCIDR.\n',
      stderr: '',
    });
  });

  test('rule update ignores members of the rules object it does not know', async () => {
    const profile = await freshProfile();
    const json = '{"comment": "x", "inbound_rules": [{"action": "deny"}], "outbound_rules": []}';
    expect(await run(`profile ${profile} rule update`, json)).toEqual({ code: 0, stdout: `Successfully updated rules on profile ${profile}\n`, stderr: '' });
    expect(JSON.parse((await storedValue(profileRulesKey(profile))) ?? '{}')).toEqual({ inbound_rules: [{ action: 'deny' }], outbound_rules: [] });
  });

  test('profile --help lists the icmpv6 branch of rule add, as of rule remove', async () => {
    const help = (await run('profile --help')).stdout;
    const add = help.slice(help.indexOf('rule add'), help.indexOf('rule remove'));
    const remove = help.slice(help.indexOf('rule remove'), help.indexOf('rule show'));
    expect(add).toContain('icmpv6 [(type <ICMPTYPE> [(code <ICMPCODE>)])]');
    expect(remove).toContain('icmpv6 [(type <ICMPTYPE> [(code <ICMPCODE>)])]');
  });

});

describe('usage errors and --help', () => {
  test('bad syntax prints the usage on stderr; --help prints the whole help on stdout', async () => {
    const bad = [
      'profile',
      'profile show extra',
      'profile show --no-check',
      'profile add',
      'profile X rule add sideways allow',
      'profile X rule add inbound permit',
      'profile X rule add inbound allow icmp to ports 80',
      'profile X rule add inbound allow tcp type 8',
      'profile X rule add inbound allow from tag A from tag B',
      'profile X rule add inbound allow from WEB',
      'profile X rule remove inbound --at=1 allow',
      'profile X rule add inbound allow --bogus',
      'profile X tag add',
      'profile X rule json extra',
    ];
    const results = await Promise.all(bad.map((line) => run(line)));
    results.forEach((r, i) => expect({ line: bad[i], ...r }).toEqual({ line: bad[i], code: 1, stdout: '', stderr: `${PROFILE_USAGE}\n` }));
    const help = await run('profile --help');
    expect(help).toEqual({ code: 0, stdout: `${PROFILE_HELP}\n`, stderr: '' });
    expect(help.stdout).toContain('      [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]  \n');
    const top = await run('--help');
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^Usage:\n {2}calicoctl profile /);
  });
});

describe('--at positions and duplicates', () => {
  // [--at value, resulting inbound rules (pretty)] on a profile whose inbound list is [tag P].
  const cases: [string, (p: string) => string[]][] = [
    ['', (p) => [`allow from tag ${p}`, 'deny tcp']],
    ['--at=0', (p) => ['deny tcp', `allow from tag ${p}`]],
    ['--at=1', (p) => ['deny tcp', `allow from tag ${p}`]],
    ['--at=2', (p) => [`allow from tag ${p}`, 'deny tcp']],
    ['--at 1', (p) => ['deny tcp', `allow from tag ${p}`]],
  ];
  test.each(cases)('rule add inbound %s deny tcp', async (at, expected) => {
    const profile = await freshProfile();
    await ok(`profile ${profile} rule add inbound ${at} deny tcp`);
    const listing = expected(profile).map((r, i) => `   ${i + 1} ${r}\n`).join('');
    expect(await ok(`profile ${profile} rule show`)).toBe(`Inbound rules:\n${listing}Outbound rules:\n   1 allow\n`);
  });

  test('middle insert, remove by position and duplicate detection', async () => {
    const profile = await freshProfile();
    await ok(`profile ${profile} rule add outbound deny tcp`);
    await ok(`profile ${profile} rule add outbound deny udp`);
    await ok(`profile ${profile} rule add outbound --at=3 deny icmp`);
    expect(await ok(`profile ${profile} rule add outbound --at=1 deny tcp`)).toBe('Rule already present, skipping.\n');
    await ok(`profile ${profile} rule remove outbound --at=2`);
    expect(await ok(`profile ${profile} rule show`)).toBe(
      `Inbound rules:\n   1 allow from tag ${profile}\nOutbound rules:\n   1 allow\n   2 deny icmp\n   3 deny udp\n`,
    );
    // Nets compare as networks (host bits ignored), as calicoctl's netaddr equality did.
    await ok(`profile ${profile} rule add inbound deny from cidr 10.0.0.1/8`);
    expect(await ok(`profile ${profile} rule add inbound deny from cidr 10.0.0.0/8`)).toBe('Rule already present, skipping.\n');
    await ok(`profile ${profile} rule remove inbound deny from cidr 10.9.9.9/8`);
    expect(await ok(`profile ${profile} rule show`)).toContain('Inbound rules:\n   1 allow from tag');
  });
});

describe('tags', () => {
  test('tag add is idempotent and keeps insertion order', async () => {
    const profile = await freshProfile();
    await ok(`profile ${profile} tag add zeta`);
    await ok(`profile ${profile} tag add alpha`);
    expect(await ok(`profile ${profile} tag add zeta`)).toBe(`Tag zeta added to profile ${profile}\n`);
    expect(await ok(`profile ${profile} tag show`)).toBe(`${profile}\nzeta\nalpha\n`);
    expect(await storedValue(`/calico/v1/policy/profile/${profile}/tags`)).toBe(`["${profile}", "zeta", "alpha"]`);
  });
});

describe('rule update', () => {
  const invalid: [string, string][] = [
    ['{', 'Invalid rules JSON: '],
    ['[]', 'Invalid rules: expected a rules object'],
    ['{"inbound_rules": []}', 'Invalid rules: outbound_rules: required'],
    ['{"inbound_rules": [{"protocol": "bloop"}], "outbound_rules": []}', 'Invalid rules: inbound_rules[0].protocol: invalid protocol "bloop"'],
    ['{"inbound_rules": [], "outbound_rules": [{"action": "allow", "bad_key": 1}]}', 'Invalid rules: outbound_rules[0]: unknown member(s) "bad_key"'],
    ['{"inbound_rules": [{"protocol": "icmp", "dst_ports": [1]}], "outbound_rules": []}', 'Invalid rules: inbound_rules[0].dst_ports: ports need protocol'],
    ['{"inbound_rules": [{"protocol": "tcp", "dst_ports": [32, "nonsense"]}], "outbound_rules": []}', 'Invalid rules: inbound_rules[0].dst_ports[1]: invalid port "nonsense"'],
    ['{"inbound_rules": [{"src_net": "10.0.0.0/8", "dst_net": "2001:db8::/32"}], "outbound_rules": []}', 'Invalid rules: inbound_rules[0]: mixes IPv4'],
    ['{"inbound_rules": [{"icmp_code": 2}], "outbound_rules": []}', 'Invalid rules: inbound_rules[0].icmp_code: ICMP criteria need protocol'],
    ['{"id": "OTHER", "inbound_rules": [], "outbound_rules": []}', 'Rules JSON "id"=OTHER doesn\'t match profile name {P}.'],
  ];

  test('invalid input: one line naming the field, exit 1, rules unchanged', async () => {
    const profile = await freshProfile();
    const before = await storedValue(profileRulesKey(profile));
    const results = await Promise.all(invalid.map(([json]) => run(`profile ${profile} rule update`, json)));
    results.forEach((r, i) => {
      const [json, prefix] = invalid[i]!;
      expect({ json, code: r.code, stdout: r.stdout }).toEqual({ json, code: 1, stdout: '' });
      expect(r.stderr.startsWith(prefix.replace('{P}', profile)), `${json} → ${r.stderr}`).toBe(true);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    });
    expect(await storedValue(profileRulesKey(profile))).toBe(before);
    const missing = await run('profile NOPE rule update', '{"inbound_rules": [], "outbound_rules": []}');
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'Profile NOPE not found.\n' });
  });

  test('round trip: rule json of one profile into rule update of another', async () => {
    const source = await freshProfile();
    const target = await freshProfile();
    for (const line of [
      'inbound deny udp from ports 53 tag DNS cidr 10.0.0.0/8 to ports 1000:2000,7 tag WEB cidr 192.168.0.0/16',
      'inbound allow icmpv6 type 128 code 0 from cidr 2001:db8::1/64',
      'outbound allow tcp from tag A to tag B',
      'outbound deny to 203.0.113.0/24',
    ]) {
      await ok(`profile ${source} rule add ${line}`);
    }
    const json = await ok(`profile ${source} rule json`);
    expect(await ok(`profile ${target} rule update`, json)).toBe(`Successfully updated rules on profile ${target}\n`);
    expect(await ok(`profile ${target} rule json`)).toBe(json);
    expect(await ok(`profile ${target} rule show`)).toBe(await ok(`profile ${source} rule show`));
    expect(json).not.toMatch(/ \n/);
    expect(json).not.toContain('"id"');
  });

  test('null members are dropped and an "id" equal to the profile is accepted', async () => {
    const profile = await freshProfile();
    const input = `{"id": "${profile}", "inbound_rules": [{"protocol": "tcp", "src_net": null, "action": "deny"}], "outbound_rules": []}`;
    await ok(`profile ${profile} rule update`, input);
    expect(await storedValue(profileRulesKey(profile))).toBe('{"inbound_rules": [{"action": "deny", "protocol": "tcp"}], "outbound_rules": []}');
  });
});
