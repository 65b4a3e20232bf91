/**
 * Chain-level behaviour of the compiler: profile, endpoint, dispatch and global chains, hooks,
 * hash comments, names, tag ipsets and diagnostics — reference §5.3–5.5 vectors adapted to our
 * names (cali-pri-/cali-pro-/cali-tw-/cali-fw-) and long options.
 */
import { describe, expect, test } from 'vitest';
import { compile, defaultCompilerConfig } from '../../compiler/index.js';
import type { ChainSpec, CompilerConfig, FamilySpec, Snapshot } from '../../compiler/index.js';
import { MAX_CHAIN_NAME_LENGTH, MAX_IPSET_NAME_LENGTH, profileChainName, tagIpsetName } from '../../compiler/names.js';
import { renderProfileChain } from '../../compiler/profile-chains.js';
import { renderDispatchChains } from '../../compiler/dispatch-chains.js';
import { ruleSchema } from '../../src/model/index.js';
import { endpointInput, profile, webAppSnapshot } from './fixtures.js';

const HASH_RE = /^-m comment --comment "cali:([0-9a-f]{16})" /;
const MARK = '0x1000000';

/** Rule bodies without their hash comment (asserting every rule has one, matching `hashes`). */
function bodies(chain: ChainSpec | undefined): string[] {
  expect(chain).toBeDefined();
  return chain!.rules.map((rule, i) => {
    const m = HASH_RE.exec(rule);
    expect(m?.[1]).toBe(chain!.hashes[i]);
    return rule.slice(m![0].length);
  });
}

const chainOf = (spec: FamilySpec, name: string) => spec.tables.filter.chains.get(name);

function snapshotWith(partial: Partial<Snapshot>): Snapshot {
  return { hostname: 'host1', config: defaultCompilerConfig(), profiles: new Map(), endpoints: new Map(), ...partial };
}

describe('profile chains (§5.3, Felix 1.3 mark scheme)', () => {
  test('mark first, rules of the family, fall-through last', () => {
    const rules = [
      { src_net: '192.0.2.0/24' },
      { protocol: 'icmp', icmp_type: 7, icmp_code: 123 },
      { protocol: 'icmpv6', icmp_type: 7, action: 'deny' },
      { protocol: 'tcp', src_ports: [0, '2:3', 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17] },
    ].map((r) => ruleSchema.parse(r));
    const v4 = renderProfileChain('prof1', rules, 'inbound', 4, 0x1000000);
    expect(v4.chain.name).toBe('cali-pri-prof1');
    expect(bodies(v4.chain)).toEqual([
      `--jump MARK --set-mark ${MARK}/${MARK}`,
      '--source 192.0.2.0/24 --jump RETURN',
      '--protocol icmp --match icmp --icmp-type 7/123 --jump RETURN',
      '--protocol tcp --match multiport --source-ports 0,2:3,4,5,6,7,8,9,10,11,12,13,14,15 --jump RETURN',
      '--protocol tcp --match multiport --source-ports 16,17 --jump RETURN',
      `-m comment --comment "No match, fall through to next profile" --jump MARK --set-mark 0/${MARK}`,
    ]);
    const v6 = renderProfileChain('prof1', rules, 'outbound', 6, 0x1000000);
    expect(v6.chain.name).toBe('cali-pro-prof1');
    expect(bodies(v6.chain).slice(1, -1)).toEqual([
      '--protocol icmpv6 --match icmp6 --icmpv6-type 7 --jump DROP',
      '--protocol tcp --match multiport --source-ports 0,2:3,4,5,6,7,8,9,10,11,12,13,14,15 --jump RETURN',
      '--protocol tcp --match multiport --source-ports 16,17 --jump RETURN',
    ]);
  });

  test('tags are reported only from rules rendered in the family', () => {
    const rules = [{ src_tag: 'both' }, { src_tag: 'v4only', src_net: '192.0.2.0/24' }, { '!dst_tag': 'neg', ip_version: 6 }].map((r) =>
      ruleSchema.parse(r),
    );
    expect(renderProfileChain('p', rules, 'inbound', 4, 1).tags).toEqual(['both', 'v4only']);
    expect(renderProfileChain('p', rules, 'inbound', 6, 1).tags).toEqual(['both', 'neg']);
  });
});

describe('names', () => {
  test('default config', () => {
    expect(defaultCompilerConfig()).toEqual({
      interfacePrefix: 'cali',
      acceptMarkBit: 0x1000000,
      endpointToHostAction: 'DROP',
      maxIpsetSize: 1048576,
      failsafeInboundHostPorts: [{ protocol: 'tcp', port: 22 }, { protocol: 'udp', port: 68 }],
      failsafeOutboundHostPorts: [53, 67, 179, 2379, 2380, 6443].map((port) => ({ protocol: port < 100 ? 'udp' : 'tcp', port })),
    });
  });

  test('long ids are shortened uniquely within the length limits', () => {
    const a = 'profile-with-a-really-long-name-number-1';
    const b = 'profile-with-a-really-long-name-number-2';
    for (const dir of ['inbound', 'outbound'] as const) {
      expect(profileChainName(a, dir).length).toBeLessThanOrEqual(MAX_CHAIN_NAME_LENGTH);
      expect(profileChainName(a, dir)).not.toBe(profileChainName(b, dir));
    }
    expect(profileChainName('exactly-nineteen-ch', 'inbound')).toBe('cali-pri-exactly-nineteen-ch');
    expect(tagIpsetName(a, 6).length).toBeLessThanOrEqual(MAX_IPSET_NAME_LENGTH);
    expect(tagIpsetName(a, 4)).not.toBe(tagIpsetName(b, 4));
    expect(tagIpsetName('APP_7890', 4)).toBe('cali4-tag-APP_7890');
  });
});

describe('endpoint chains (§5.4)', () => {
  const twoProfiles = () =>
    snapshotWith({
      profiles: new Map([
        ['prof-1', profile({ inbound_rules: [], outbound_rules: [] })],
        ['prof-2', profile({ inbound_rules: [], outbound_rules: [] })],
      ]),
      endpoints: new Map([
        endpointInput('host1', 'e1', {
          state: 'active',
          name: 'caliabcd',
          mac: 'AA:22:33:44:55:66',
          profile_ids: ['prof-1', 'prof-2'],
          ipv4_nets: ['192.0.2.1/32', '192.0.2.64/26'],
        }),
      ]),
    });

  test('to-workload and from-workload chains, profile order kept', () => {
    const spec = compile(twoProfiles());
    const accepted = `--match mark --mark ${MARK}/${MARK} -m comment --comment "Profile accepted packet" --jump RETURN`;
    expect(bodies(chainOf(spec.v4, 'cali-tw-caliabcd'))).toEqual([
      `--jump MARK --set-mark 0/${MARK}`,
      '--jump cali-pri-prof-1',
      accepted,
      '--jump cali-pri-prof-2',
      accepted,
      '-m comment --comment "Packet did not match any profile (endpoint e1)" --jump DROP',
    ]);
    expect(bodies(chainOf(spec.v4, 'cali-fw-caliabcd'))).toEqual([
      `--jump MARK --set-mark 0/${MARK}`,
      '--match mac ! --mac-source aa:22:33:44:55:66 -m comment --comment "Incorrect source MAC" --jump DROP',
      `--source 192.0.2.1 --jump MARK --set-mark ${MARK}/${MARK}`,
      `--source 192.0.2.64/26 --jump MARK --set-mark ${MARK}/${MARK}`,
      `--match mark --mark 0/${MARK} -m comment --comment "Incorrect source IP" --jump DROP`,
      `--jump MARK --set-mark 0/${MARK}`,
      '--jump cali-pro-prof-1',
      accepted,
      '--jump cali-pro-prof-2',
      accepted,
      '-m comment --comment "Packet did not match any profile (endpoint e1)" --jump DROP',
    ]);
  });

  test('no address of the family: every packet from the workload fails the source check', () => {
    const spec = compile(twoProfiles());
    const fw6 = bodies(chainOf(spec.v6, 'cali-fw-caliabcd'));
    expect(fw6.slice(0, 4)).toEqual([
      `--jump MARK --set-mark 0/${MARK}`,
      '--match mac ! --mac-source aa:22:33:44:55:66 -m comment --comment "Incorrect source MAC" --jump DROP',
      `--match mark --mark 0/${MARK} -m comment --comment "Incorrect source IP" --jump DROP`,
      `--jump MARK --set-mark 0/${MARK}`,
    ]);
  });

  test('a missing profile drops the direction and stops; later profiles get no chains', () => {
    const snap = twoProfiles();
    const profiles = new Map(snap.profiles);
    profiles.set('prof-1', {});
    const spec = compile({ ...snap, profiles });
    expect(bodies(chainOf(spec.v4, 'cali-tw-caliabcd'))).toEqual([
      `--jump MARK --set-mark 0/${MARK}`,
      '-m comment --comment "Profile prof-1 is missing or invalid: drop" --jump DROP',
    ]);
    expect(chainOf(spec.v4, 'cali-pri-prof-2')).toBeUndefined();
    expect(spec.diagnostics).toEqual([expect.objectContaining({ kind: 'missing-profile', subject: 'prof-1' })]);
  });

  test('no profiles: only the final DROP after the mark reset', () => {
    const spec = compile(
      snapshotWith({ endpoints: new Map([endpointInput('host1', 'e2', { state: 'active', name: 'cali2', profile_ids: [] })]) }),
    );
    expect(bodies(chainOf(spec.v4, 'cali-tw-cali2'))).toEqual([
      `--jump MARK --set-mark 0/${MARK}`,
      '-m comment --comment "Packet did not match any profile (endpoint e2)" --jump DROP',
    ]);
  });

  test('inactive endpoint: single DROP in both chains, interface kept in dispatch, no profile chains', () => {
    const snap = twoProfiles();
    const [key, input] = [...snap.endpoints][0]!;
    const inactive = { ...input, endpoint: { ...input.endpoint, state: 'inactive' as const } };
    const spec = compile({ ...snap, endpoints: new Map([[key, inactive]]) });
    for (const name of ['cali-tw-caliabcd', 'cali-fw-caliabcd']) {
      expect(bodies(chainOf(spec.v6, name))).toEqual(['-m comment --comment "Endpoint e1 is inactive" --jump DROP']);
    }
    expect(bodies(chainOf(spec.v6, 'cali-to-wl-dispatch'))[0]).toBe('--out-interface caliabcd --goto cali-tw-caliabcd');
    expect([...spec.v4.tables.filter.chains.keys()].filter((n) => n.startsWith('cali-pr'))).toEqual([]);
  });
});

describe('local endpoints and diagnostics', () => {
  test('only this host, only prefixed interfaces; duplicate interface goes to the smaller key', () => {
    const a = endpointInput('host1', 'a', { state: 'active', name: 'calidup', profile_ids: [] });
    const b = endpointInput('host1', 'b', { state: 'active', name: 'calidup', profile_ids: [] });
    const bad = endpointInput('host1', 'bad', { state: 'active', name: 'eth0', profile_ids: [] });
    const remote = endpointInput('host2', 'r', { state: 'active', name: 'caliremote', profile_ids: [] });
    const spec = compile(snapshotWith({ endpoints: new Map([b, bad, remote, a]) }));
    expect([...spec.localEndpoints.keys()]).toEqual(['calidup']);
    expect(spec.localEndpoints.get('calidup')?.ref.endpointId).toBe('a');
    expect(spec.diagnostics.map((d) => [d.kind, d.subject])).toEqual([
      ['invalid-endpoint', b[0]],
      ['invalid-endpoint', bad[0]],
    ]);
    expect(chainOf(spec.v4, 'cali-tw-eth0')).toBeUndefined();
    expect(chainOf(spec.v4, 'cali-tw-caliremote')).toBeUndefined();
  });

  test('profiles used only on other hosts produce no chains and no ipsets', () => {
    const spec = compile(webAppSnapshot());
    const snap = webAppSnapshot();
    const profiles = new Map(snap.profiles);
    profiles.set('REMOTE', profile({ inbound_rules: [{ src_tag: 'RT' }], outbound_rules: [] }, ['RT']));
    const endpoints = new Map(snap.endpoints);
    const [k, v] = endpointInput('host2', 'rem', { state: 'active', name: 'calirem', profile_ids: ['REMOTE'], ipv4_nets: ['203.0.113.1/32'] });
    endpoints.set(k, v);
    const spec2 = compile({ ...snap, profiles, endpoints });
    expect([...spec2.v4.tables.filter.chains.keys()]).toEqual([...spec.v4.tables.filter.chains.keys()]);
    expect([...spec2.v4.ipsets.keys()]).toEqual(['cali4-tag-APP_7890']);
  });
});

describe('tag ipsets', () => {
  test('members: every endpoint of any host and state whose profile carries the tag', () => {
    const snap = webAppSnapshot();
    const endpoints = new Map(snap.endpoints);
    for (const [k, v] of [
      endpointInput('host3', 'web3', { state: 'inactive', name: 'caliweb3', profile_ids: ['OTHER', 'WEB'], ipv4_nets: ['203.0.113.5/32', '203.0.113.77/24'] }),
      endpointInput('host3', 'app3', { state: 'active', name: 'caliapp3', profile_ids: ['APP'], ipv4_nets: ['203.0.113.9/32'] }),
    ]) endpoints.set(k, v);
    const spec = compile({ ...snap, endpoints });
    expect(spec.v4.ipsets.get('cali4-tag-APP_7890')).toEqual({
      name: 'cali4-tag-APP_7890',
      family: 'inet',
      type: 'hash:net',
      maxelem: 1048576,
      members: ['192.0.2.10', '198.51.100.10', '203.0.113.0/24', '203.0.113.5'],
    });
    expect(spec.v6.ipsets.get('cali6-tag-APP_7890')?.members).toEqual(['2001:db8:1::10', '2001:db8::10']);
  });

  test('a /0 endpoint net is left out of tag sets (hash:net cannot hold it)', () => {
    const snap = webAppSnapshot();
    const endpoints = new Map(snap.endpoints);
    const [k, v] = endpointInput('host3', 'wide', { state: 'active', name: 'caliwide', profile_ids: ['WEB'], ipv4_nets: ['0.0.0.0/0', '203.0.113.3/32'] });
    endpoints.set(k, v);
    expect(compile({ ...snap, endpoints }).v4.ipsets.get('cali4-tag-APP_7890')?.members).toEqual(['192.0.2.10', '198.51.100.10', '203.0.113.3']);
  });

  test('maxelem is raised (with a diagnostic) when the members do not fit', () => {
    const config: CompilerConfig = { ...defaultCompilerConfig(), maxIpsetSize: 1 };
    const spec = compile(webAppSnapshot(config));
    expect(spec.v4.ipsets.get('cali4-tag-APP_7890')?.maxelem).toBe(2);
    expect(spec.diagnostics.filter((d) => d.kind === 'ipset-too-large').map((d) => d.subject)).toEqual([
      'cali4-tag-APP_7890',
      'cali6-tag-APP_7890',
    ]);
  });
});

describe('dispatch chains', () => {
  test('small host: one flat chain per direction, sorted, ending in DROP', () => {
    const spec = compile(webAppSnapshot());
    expect(bodies(chainOf(spec.v4, 'cali-from-wl-dispatch'))).toEqual([
      '--in-interface caliapp1 --goto cali-fw-caliapp1',
      '--in-interface caliweb1 --goto cali-fw-caliweb1',
      '-m comment --comment "Unknown interface" --jump DROP',
    ]);
    expect(bodies(chainOf(spec.v4, 'cali-to-wl-dispatch'))).toEqual([
      '--out-interface caliapp1 --goto cali-tw-caliapp1',
      '--out-interface caliweb1 --goto cali-tw-caliweb1',
      '-m comment --comment "Unknown interface" --jump DROP',
    ]);
  });

  test('large host: a tree keyed on the characters after the prefix, every interface reachable', () => {
    const hex = (i: number) => i.toString(16).padStart(3, '0');
    const ifaces = Array.from({ length: 1000 }, (_, i) => `cali${hex(i * 4 + 1)}x`).sort();
    const chains = renderDispatchChains(ifaces, 'cali');
    const byName = new Map(chains.map((c) => [c.name, c]));
    for (const c of chains) expect(c.name.length).toBeLessThanOrEqual(MAX_CHAIN_NAME_LENGTH);
    // Walk the from-tree for each interface, counting rules a packet traverses.
    let worst = 0;
    for (const iface of ifaces) {
      let chain = byName.get('cali-from-wl-dispatch')!;
      let walked = 0;
      for (;;) {
        const rules = bodies(chain);
        const index = rules.findIndex((r) => {
          const m = /^--in-interface (\S+) --goto (\S+)$/.exec(r);
          return m !== null && (m[1] === iface || (m[1]!.endsWith('+') && iface.startsWith(m[1]!.slice(0, -1))));
        });
        expect(index).toBeGreaterThanOrEqual(0);
        walked += index + 1;
        const target = /--goto (\S+)$/.exec(rules[index]!)![1]!;
        if (target === `cali-fw-${iface}`) break;
        chain = byName.get(target)!;
        expect(chain).toBeDefined();
      }
      worst = Math.max(worst, walked);
    }
    expect(worst).toBeLessThan(60);
    for (const c of chains) expect(bodies(c).at(-1)).toBe('-m comment --comment "Unknown interface" --jump DROP');
  });

  test('interface names that prefix one another stay distinguishable', () => {
    const ifaces = [...Array.from({ length: 20 }, (_, i) => `cali1${i}`), 'cali1'].sort();
    const chains = renderDispatchChains(ifaces, 'cali');
    const all = chains.flatMap((c) => bodies(c));
    expect(all).toContain('--in-interface cali1 --goto cali-fw-cali1');
    expect(all.filter((r) => r.includes('--goto cali-fw-')).length).toBe(21);
  });
});

describe('global chains and hooks (§5.5, Felix 1.4 conntrack ACCEPT)', () => {
  test('cali-FORWARD', () => {
    const spec = compile(webAppSnapshot());
    expect(bodies(chainOf(spec.v4, 'cali-FORWARD'))).toEqual([
      '--in-interface cali+ --match conntrack --ctstate INVALID --jump DROP',
      '--out-interface cali+ --match conntrack --ctstate INVALID --jump DROP',
      '--in-interface cali+ --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT',
      '--out-interface cali+ --match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT',
      '--in-interface cali+ --jump cali-from-wl-dispatch',
      '--out-interface cali+ --jump cali-to-wl-dispatch',
      '--in-interface cali+ --jump ACCEPT',
      '--out-interface cali+ --jump ACCEPT',
    ]);
  });

  test.each([
    ['DROP', ['-m comment --comment "Drop all packets from workloads to the host" --jump DROP']],
    ['RETURN', ['--jump cali-from-wl-dispatch']],
    ['ACCEPT', ['--jump cali-from-wl-dispatch', '--jump ACCEPT']],
  ] as const)('cali-INPUT with endpointToHostAction %s (IPv4)', (action, tail) => {
    const config: CompilerConfig = { ...defaultCompilerConfig(), interfacePrefix: 'tap', endpointToHostAction: action };
    const spec = compile(snapshotWith({ config }));
    expect(bodies(chainOf(spec.v4, 'cali-INPUT'))).toEqual([
      '! --in-interface tap+ --jump RETURN',
      '--match conntrack --ctstate INVALID --jump DROP',
      '--match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT',
      '--protocol udp --match udp --source-port 68 --destination-port 67 --jump ACCEPT',
      '--protocol udp --match udp --destination-port 53 --jump ACCEPT',
      '--protocol tcp --match tcp --destination-port 22 --jump ACCEPT',
      '--protocol udp --match udp --destination-port 68 --jump ACCEPT',
      ...tail,
    ]);
  });

  test('IPv6 INPUT and OUTPUT accept ND before the INVALID drop; router adverts are not accepted', () => {
    const spec = compile(webAppSnapshot());
    const nd = [130, 131, 132, 133, 135, 136].map((t) => `--protocol icmpv6 --match icmp6 --icmpv6-type ${t} --jump ACCEPT`);
    const input = bodies(chainOf(spec.v6, 'cali-INPUT'));
    expect(input.slice(0, 8)).toEqual(['! --in-interface cali+ --jump RETURN', ...nd, '--match conntrack --ctstate INVALID --jump DROP']);
    expect(input).toContain('--protocol udp --match udp --source-port 546 --destination-port 547 --jump ACCEPT');
    const output = bodies(chainOf(spec.v6, 'cali-OUTPUT'));
    expect(output.slice(0, 8)).toEqual(['! --out-interface cali+ --jump RETURN', ...nd, '--match conntrack --ctstate INVALID --jump DROP']);
    expect(output.join('\n')).not.toContain('--icmpv6-type 134');
  });

  test('cali-OUTPUT applies the workload inbound policy after failsafe ports', () => {
    const spec = compile(webAppSnapshot());
    expect(bodies(chainOf(spec.v4, 'cali-OUTPUT'))).toEqual([
      '! --out-interface cali+ --jump RETURN',
      '--match conntrack --ctstate INVALID --jump DROP',
      '--match conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT',
      ...[['udp', 53], ['udp', 67], ['tcp', 179], ['tcp', 2379], ['tcp', 2380], ['tcp', 6443]].map(
        ([p, port]) => `--protocol ${p} --match ${p} --destination-port ${port} --jump ACCEPT`,
      ),
      '--jump cali-to-wl-dispatch',
      '--jump ACCEPT',
    ]);
  });

  test('hooks: filter INPUT/FORWARD/OUTPUT both families, raw PREROUTING rpfilter in IPv6 only', () => {
    const spec = compile(webAppSnapshot());
    const hookBodies = (f: FamilySpec, t: 'filter' | 'raw') =>
      f.tables[t].hooks.map((h) => {
        expect(h.rule.startsWith(`-m comment --comment "cali:${h.hash}" `)).toBe(true);
        return `${h.builtin} ${h.rule.replace(HASH_RE, '')}`;
      });
    const filterHooks = ['INPUT --jump cali-INPUT', 'FORWARD --jump cali-FORWARD', 'OUTPUT --jump cali-OUTPUT'];
    expect(hookBodies(spec.v4, 'filter')).toEqual(filterHooks);
    expect(hookBodies(spec.v6, 'filter')).toEqual(filterHooks);
    expect(hookBodies(spec.v4, 'raw')).toEqual([]);
    expect(spec.v4.tables.raw.chains.size).toBe(0);
    expect(hookBodies(spec.v6, 'raw')).toEqual(['PREROUTING --jump cali-PREROUTING']);
    expect(bodies(spec.v6.tables.raw.chains.get('cali-PREROUTING'))).toEqual([
      '--in-interface cali+ --match rpfilter --invert -m comment --comment "IPv6 source address check (rpfilter) failed" --jump DROP',
    ]);
  });
});

describe('hash comments', () => {
  test('a hash covers chain name, position and text: moving or changing a rule changes the hashes after it', () => {
    const r = (json: object) => ruleSchema.parse(json);
    const a = renderProfileChain('p', [r({ protocol: 'tcp' }), r({ protocol: 'udp' })], 'inbound', 4, 1).chain;
    const swapped = renderProfileChain('p', [r({ protocol: 'udp' }), r({ protocol: 'tcp' })], 'inbound', 4, 1).chain;
    const renamed = renderProfileChain('q', [r({ protocol: 'tcp' }), r({ protocol: 'udp' })], 'inbound', 4, 1).chain;
    expect(a.hashes[0]).toBe(swapped.hashes[0]);
    expect(a.hashes[1]).not.toBe(swapped.hashes[1]);
    expect(new Set([...a.hashes, ...renamed.hashes]).size).toBe(a.hashes.length * 2);
    const spec = compile(webAppSnapshot());
    const all = [...spec.v4.tables.filter.chains.values()].flatMap((c) => c.hashes);
    expect(new Set(all).size).toBe(all.length);
  });
});
