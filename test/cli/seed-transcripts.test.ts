/**
 * Acceptance: the worked examples of seeds 000 (calicoctl profile reference), 001/002/004
 * (Advanced Network Policy WEB/APP walk-through), replayed command by command against a real
 * etcd, comparing stdout byte for byte. Seed 001 lost its indentation in extraction; the
 * indented form of 000/004 is the real output.
 */
import { describe, expect, test } from 'vitest';
import { useEtcdStore } from '../helpers/etcd-store.js';
import { calicoctl, words } from './run-calicoctl.js';

const fixture = useEtcdStore();

/** Runs each `[command, expected stdout]` step in order; every step must exit 0. */
async function replay(steps: [string, string, string?][]): Promise<void> {
  for (const [line, expected, stdin] of steps) {
    const result = await calicoctl(fixture.etcd.env, words(line), stdin);
    expect({ line, stderr: result.stderr, code: result.code }).toEqual({ line, stderr: '', code: 0 });
    expect(result.stdout, line).toBe(expected);
  }
}

const WEB_RULES_JSON = `{
  "inbound_rules": [
    {
      "action": "allow",
      "protocol": "tcp",
      "dst_ports": [
        80,
        443
      ]
    },
    {
      "action": "allow",
      "icmp_type": 8,
      "protocol": "icmp"
    }
  ],
  "outbound_rules": [
    {
      "action": "allow"
    }
  ]
}`;

describe('seed 000: calicoctl profile reference', () => {
  test('profile add / tag show / remove', async () => {
    await replay([
      ['profile add PROF_TEST', 'Created profile PROF_TEST\n'],
      ['profile PROF_TEST tag show', 'PROF_TEST\n'],
      ['profile remove PROF_TEST', 'Deleted profile PROF_TEST\n'],
    ]);
  });

  test('tag add / show / remove', async () => {
    await replay([
      ['profile add WEB_SERVER_A', 'Created profile WEB_SERVER_A\n'],
      ['profile WEB_SERVER_A tag add WEB_APP', 'Tag WEB_APP added to profile WEB_SERVER_A\n'],
      ['profile WEB_SERVER_A tag show', 'WEB_SERVER_A\nWEB_APP\n'],
      ['profile WEB_SERVER_A tag remove WEB_APP', 'Tag WEB_APP removed from profile WEB_SERVER_A\n'],
      ['profile WEB_SERVER_A tag show', 'WEB_SERVER_A\n'],
      ['profile remove WEB_SERVER_A', 'Deleted profile WEB_SERVER_A\n'],
    ]);
  });

  test('default rules of a new profile: rule show and rule json', async () => {
    await replay([
      ['profile add PROF', 'Created profile PROF\n'],
      ['profile PROF rule show', 'Inbound rules:\n   1 allow from tag PROF\nOutbound rules:\n   1 allow\n'],
      [
        'profile PROF rule json',
        '{\n  "inbound_rules": [\n    {\n      "action": "allow",\n      "src_tag": "PROF"\n    }\n  ],\n' +
          '  "outbound_rules": [\n    {\n      "action": "allow"\n    }\n  ]\n}\n\n',
      ],
      ['profile remove PROF', 'Deleted profile PROF\n'],
    ]);
  });

  test('WEB: rule add, rule show, rule remove --at=1', async () => {
    await replay([
      ['profile add WEB', 'Created profile WEB\n'],
      ['profile WEB rule add inbound allow tcp to ports 80,443', ''],
      ['profile WEB rule add inbound allow icmp type 8', ''],
      [
        'profile WEB rule show',
        'Inbound rules:\n   1 allow from tag WEB\n   2 allow tcp to ports 80,443\n   3 allow icmp type 8\nOutbound rules:\n   1 allow\n',
      ],
      ['profile WEB rule remove inbound --at=1', ''],
      ['profile WEB rule show', 'Inbound rules:\n   1 allow tcp to ports 80,443\n   2 allow icmp type 8\nOutbound rules:\n   1 allow\n'],
      ['profile WEB rule json', `${WEB_RULES_JSON}\n\n`],
      ['profile remove WEB', 'Deleted profile WEB\n'],
    ]);
  });

  test('rule update from web_rules.json', async () => {
    await replay([
      ['profile add WEB', 'Created profile WEB\n'],
      ['profile WEB rule update', 'Successfully updated rules on profile WEB\n', WEB_RULES_JSON],
      ['profile WEB rule show', 'Inbound rules:\n   1 allow tcp to ports 80,443\n   2 allow icmp type 8\nOutbound rules:\n   1 allow\n'],
      ['profile WEB rule json', `${WEB_RULES_JSON}\n\n`],
      ['profile remove WEB', 'Deleted profile WEB\n'],
    ]);
  });

  test('usage example: only-local-pings with --at=0 and a bare CIDR', async () => {
    await replay([
      ['profile add only-local-pings', 'Created profile only-local-pings\n'],
      ['profile only-local-pings rule add inbound deny icmp', ''],
      ['profile only-local-pings rule add inbound --at=0 allow from 192.168.0.0/16', ''],
      [
        'profile only-local-pings rule show',
        'Inbound rules:\n   1 allow from cidr 192.168.0.0/16\n   2 allow from tag only-local-pings\n   3 deny icmp\nOutbound rules:\n   1 allow\n',
      ],
      ['profile remove only-local-pings', 'Deleted profile only-local-pings\n'],
    ]);
  });

  test('profile show and profile show --detailed tables', async () => {
    await replay([
      ['profile add PROF_B', 'Created profile PROF_B\n'],
      ['profile add PROF_D', 'Created profile PROF_D\n'],
      ['profile add PROF_A_C_E', 'Created profile PROF_A_C_E\n'],
    ]);
    const endpoints: [string, string, string, string][] = [
      ['calico-host-01', '15a483ab65cc60e2831859dd0eb3b3acde86cc464aea8f6bbbd35cb5395ed007', 'ee033eba777f11e5abe9080027b2d0eb', 'PROF_A_C_E'],
      ['calico-host-01', 'a549f09ed2c9ae2a840edc834dea0d14e686a4bf6195c791db283aed7f8b5e48', '011af79a778011e5abe9080027b2d0eb', 'PROF_A_C_E'],
      ['calico-host-02', 'ecbb19f9913236da5e03187fbfadf65a5761c49051adf54758d7f447852336fa', 'f6e1dd20777f11e5abe9080027b2d0eb', 'PROF_A_C_E'],
      ['calico-host-01', 'fb028123092ed9a91f279f1aa11517cbd5b023ec4daf382cce8471b3fe41e9af', 'f2497552777f11e5abe9080027b2d0eb', 'PROF_B'],
      ['calico-host-02', '6f103f1439c3d69ed014d4aa7f5b92dac7b892cbec627ac3b181ae4263e307de', 'faecf8be777f11e5abe9080027b2d0eb', 'PROF_D'],
    ];
    for (const [host, workload, endpointId, profile] of endpoints) {
      await fixture.store.putEndpoint(
        { host, orchestrator: 'docker', workload, endpointId },
        { state: 'active', name: `cali${endpointId.slice(0, 11)}`, mac: 'ee:ee:ee:ee:ee:ee', profile_ids: [profile], ipv4_nets: ['192.0.2.10/32'], ipv6_nets: [] },
      );
    }
    await replay([
      ['profile show', '+------------+\n|    Name    |\n+------------+\n| PROF_A_C_E |\n|   PROF_B   |\n|   PROF_D   |\n+------------+\n'],
      [
        'profile show --detailed',
        [
          '+------------+----------------+-----------------+------------------------------------------------------------------+----------------------------------+--------+',
          '|    Name    |      Host      | Orchestrator ID |                           Workload ID                            |           Endpoint ID            | State  |',
          '+------------+----------------+-----------------+------------------------------------------------------------------+----------------------------------+--------+',
          '| PROF_A_C_E | calico-host-01 |      docker     | 15a483ab65cc60e2831859dd0eb3b3acde86cc464aea8f6bbbd35cb5395ed007 | ee033eba777f11e5abe9080027b2d0eb | active |',
          '| PROF_A_C_E | calico-host-01 |      docker     | a549f09ed2c9ae2a840edc834dea0d14e686a4bf6195c791db283aed7f8b5e48 | 011af79a778011e5abe9080027b2d0eb | active |',
          '| PROF_A_C_E | calico-host-02 |      docker     | ecbb19f9913236da5e03187fbfadf65a5761c49051adf54758d7f447852336fa | f6e1dd20777f11e5abe9080027b2d0eb | active |',
          '|   PROF_B   | calico-host-01 |      docker     | fb028123092ed9a91f279f1aa11517cbd5b023ec4daf382cce8471b3fe41e9af | f2497552777f11e5abe9080027b2d0eb | active |',
          '|   PROF_D   | calico-host-02 |      docker     | 6f103f1439c3d69ed014d4aa7f5b92dac7b892cbec627ac3b181ae4263e307de | faecf8be777f11e5abe9080027b2d0eb | active |',
          '+------------+----------------+-----------------+------------------------------------------------------------------+----------------------------------+--------+',
          '',
        ].join('\n'),
      ],
    ]);
    for (const [host, workload, endpointId] of endpoints) {
      expect(await fixture.store.deleteEndpoint({ host, orchestrator: 'docker', workload, endpointId })).toBe(true);
    }
    await replay([
      ['profile remove PROF_A_C_E', 'Deleted profile PROF_A_C_E\n'],
      ['profile remove PROF_B', 'Deleted profile PROF_B\n'],
      ['profile remove PROF_D', 'Deleted profile PROF_D\n'],
      ['profile show', '+------+\n| Name |\n+------+\n+------+\n'],
    ]);
  });
});

describe('seeds 001/002/004: Advanced Network Policy worked example', () => {
  test('WEB and APP profiles, JSON import with "id", tags', async () => {
    const appRules = `{
  "id": "APP",
  "inbound_rules": [
    {
      "action": "allow",
      "protocol": "tcp",
      "dst_ports": [7890],
      "src_tag": "APP_7890"
    },
    {
      "action": "allow",
      "protocol": "icmp",
      "icmp_type": 8
    }
  ],
  "outbound_rules": [
    {
      "action": "allow"
    }
  ]
}
`;
    await replay([
      ['profile add WEB', 'Created profile WEB\n'],
      ['profile WEB rule show', 'Inbound rules:\n   1 allow from tag WEB\nOutbound rules:\n   1 allow\n'],
      ['profile WEB rule remove inbound --at=1', ''],
      ['profile WEB rule add inbound allow tcp to ports 80,443', ''],
      ['profile WEB rule add inbound allow icmp type 8', ''],
      ['profile WEB rule show', 'Inbound rules:\n   1 allow tcp to ports 80,443\n   2 allow icmp type 8\nOutbound rules:\n   1 allow\n'],
      ['profile add APP', 'Created profile APP\n'],
      ['profile APP rule update', 'Successfully updated rules on profile APP\n', appRules],
      [
        'profile APP rule show',
        'Inbound rules:\n   1 allow tcp from tag APP_7890 to ports 7890\n   2 allow icmp type 8\nOutbound rules:\n   1 allow\n',
      ],
      ['profile WEB tag add APP_7890', 'Tag APP_7890 added to profile WEB\n'],
      ['profile WEB tag show', 'WEB\nAPP_7890\n'],
    ]);
    // The stored value is the v0.21 layout: no "id", Python json.dumps spacing.
    const profile = await fixture.store.getProfile('APP');
    expect(profile.rules.id).toBeUndefined();
    expect(profile.rules.inbound_rules[0]).toEqual({ action: 'allow', protocol: 'tcp', dst_ports: [7890], src_tag: 'APP_7890' });
  });
});
