/**
 * The kernel writers and readers against real iptables (nft and legacy) and ipset in throwaway
 * namespaces: our style of restore text goes in through FamilyDataplane, and the parsed
 * KernelFamilyState that comes back holds our hashes in order, our hooks with their text, and
 * foreign or tampered rules as hash null. A bad restore is a CommandError with stderr and input.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IpFamily, KernelFamilyState } from '../../../compiler/types.js';
import { CommandError, createCommandRunner } from '../../../agent/dataplane/command-runner.js';
import { createFamilyDataplane } from '../../../agent/dataplane/family-dataplane.js';
import { selectIptablesBackend, type IptablesMode } from '../../../agent/dataplane/iptables-backend.js';
import { createIpsetIo } from '../../../agent/dataplane/ipsets.js';
import type { CommandRunner, ExecObserver } from '../../../agent/dataplane/types.js';
import { createNetns, type Netns } from '../../helpers/netns.js';

const namespaces: Netns[] = [];
afterAll(async () => {
  for (const ns of namespaces) await ns.destroy();
});

/** Root-namespace state that must not change (read only; nft save never loads legacy modules). */
function rootFingerprint(): string {
  const read = (argv: string[]) => spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' }).stdout.replace(/^#.*$/gm, '');
  return [read(['ipset', 'list', '-n']), read(['iptables-nft-save']), read(['ip6tables-nft-save']), read(['ip', 'route', 'show'])].join('\n');
}
let rootBefore: string;
beforeAll(() => {
  rootBefore = rootFingerprint();
});

interface FamilyCase {
  family: IpFamily;
  setFamily: 'inet' | 'inet6';
  setName: string;
  members: string[];
  /** How `ipset save` prints them. */
  savedMembers: string[];
  foreignSource: string;
  foreignSaved: string;
}

const CASES: FamilyCase[] = [
  {
    family: 4,
    setFamily: 'inet',
    setName: 'cali4-tag-web',
    members: ['192.0.2.1/32', '198.51.100.0/24'],
    savedMembers: ['192.0.2.1', '198.51.100.0/24'],
    foreignSource: '203.0.113.9',
    foreignSaved: '-s 203.0.113.9/32 -j ACCEPT',
  },
  {
    family: 6,
    setFamily: 'inet6',
    setName: 'cali6-tag-web',
    members: ['2001:db8::1/128', '2001:DB8:0:1::/64'],
    savedMembers: ['2001:db8::1', '2001:db8:0:1::/64'],
    foreignSource: '2001:db8::9',
    foreignSaved: '-s 2001:db8::9/128 -j ACCEPT',
  },
];

function filterInput(setName: string): string {
  return [
    '*filter',
    ':cali-INPUT - [0:0]',
    ':cali-FORWARD - [0:0]',
    ':cali-from-wl1 - [0:0]',
    '-A cali-INPUT -m comment --comment "cali:in-1" -j ACCEPT',
    '-A cali-FORWARD -i cali+ -m comment --comment "cali:fw-1" -j cali-from-wl1',
    `-A cali-FORWARD -m set --match-set ${setName} src -m comment --comment "cali:fw-2" -j ACCEPT`,
    '-A cali-from-wl1 -m comment --comment "a note, not a hash" -m comment --comment "cali:from-1" -j DROP',
    '-I INPUT 1 -m comment --comment "cali:hook-in" -j cali-INPUT',
    '-I FORWARD 1 -m comment --comment "cali:hook-fw" -j cali-FORWARD',
    'COMMIT',
    '',
  ].join('\n');
}

const RAW_INPUT = [
  '*raw',
  ':cali-PREROUTING - [0:0]',
  '-A cali-PREROUTING -m comment --comment "cali:pre-1" -j RETURN',
  '-I PREROUTING 1 -m comment --comment "cali:hook-pre" -j cali-PREROUTING',
  'COMMIT',
  '',
].join('\n');

describe.each(['nft', 'legacy'] as IptablesMode[])('%s backend', (mode) => {
  let ns: Netns;
  beforeAll(async () => {
    ns = await createNetns(`fdp-${mode}`);
    namespaces.push(ns);
  });

  it.each(CASES)('writes and reads back IPv$family chains, hooks and ipsets', async (c) => {
    const runner = createCommandRunner({ netns: ns.name });
    const backend = await selectIptablesBackend(runner, mode);
    expect(backend.binaries[c.family].restore).toBe(`${c.family === 4 ? 'iptables' : 'ip6tables'}-${mode}-restore`);
    const events: Parameters<ExecObserver>[0][] = [];
    const dataplane = createFamilyDataplane({ runner, family: c.family, backend, observer: (e) => events.push(e) });

    // A foreign rule that was in INPUT before we hooked it, and a foreign ipset.
    const iptables = `${c.family === 4 ? 'iptables' : 'ip6tables'}-${mode}`;
    await ns.exec([iptables, '-A', 'INPUT', '-s', c.foreignSource, '-j', 'ACCEPT']);
    await ns.exec(['ipset', 'create', `foreign-${c.family}`, 'hash:net', 'family', c.setFamily]);

    await dataplane.applyIpsets(
      [`create ${c.setName} hash:net family ${c.setFamily} maxelem 1000`, ...c.members.map((m) => `add ${c.setName} ${m}`), ''].join('\n'),
    );
    await dataplane.applyIptables('filter', filterInput(c.setName));
    await dataplane.applyIptables('raw', RAW_INPUT);
    // Tampering: someone appends an uncommented rule to one of our chains.
    await ns.exec([iptables, '-A', 'cali-from-wl1', '-j', 'ACCEPT']);

    const state: KernelFamilyState = await dataplane.read();
    const filter = state.tables.filter;
    expect(Object.fromEntries(filter.chains)).toEqual({
      'cali-INPUT': ['in-1'],
      'cali-FORWARD': ['fw-1', 'fw-2'],
      'cali-from-wl1': ['from-1', null],
    });
    expect(filter.builtins.get('INPUT')).toEqual([
      { hash: 'hook-in', rule: '-m comment --comment "cali:hook-in" -j cali-INPUT' },
      { hash: null, rule: c.foreignSaved },
    ]);
    expect(filter.builtins.get('FORWARD')).toEqual([{ hash: 'hook-fw', rule: '-m comment --comment "cali:hook-fw" -j cali-FORWARD' }]);
    expect(filter.builtins.get('OUTPUT')).toEqual([]);
    expect(Object.fromEntries(state.tables.raw.chains)).toEqual({ 'cali-PREROUTING': ['pre-1'] });
    expect(state.tables.raw.builtins.get('PREROUTING')).toEqual([
      { hash: 'hook-pre', rule: '-m comment --comment "cali:hook-pre" -j cali-PREROUTING' },
    ]);

    // Only our set of this family: not the foreign one, not the other family's.
    expect([...state.ipsets.keys()]).toEqual([c.setName]);
    const set = state.ipsets.get(c.setName);
    expect(set?.family).toBe(c.setFamily);
    expect(set?.type).toBe('hash:net');
    expect(set?.maxelem).toBe(1000);
    expect([...(set?.members ?? [])].sort()).toEqual([...c.savedMembers].sort());

    // Every exec was observed with its tool, table and outcome.
    expect(events.filter((e) => e.tool === 'iptables-restore').map((e) => [e.table, e.ok, e.family])).toEqual([
      ['filter', true, c.family],
      ['raw', true, c.family],
    ]);
    expect(events.filter((e) => e.tool === 'iptables-save').map((e) => e.table).sort()).toEqual(['filter', 'raw']);
    expect(events.find((e) => e.tool === 'iptables-restore')?.bytes).toBe(Buffer.byteLength(filterInput(c.setName)));
  });

  it('rejects bad restore input with a CommandError carrying stderr and the input', async () => {
    const runner = createCommandRunner({ netns: ns.name });
    const backend = await selectIptablesBackend(runner, mode);
    const events: Parameters<ExecObserver>[0][] = [];
    const dataplane = createFamilyDataplane({ runner, family: 4, backend, observer: (e) => events.push(e) });
    const input = '*filter\n:cali-bad - [0:0]\n-A cali-bad -m comment --comment "cali:b" -j cali-no-such-chain\nCOMMIT\n';
    const error = await dataplane.applyIptables('filter', input).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    const failure = error as CommandError;
    expect(failure.input).toBe(input);
    expect(failure.stderr).toMatch(/cali-no-such-chain|line/);
    expect(failure.kind).toBe('rejected');
    expect(events).toMatchObject([{ tool: 'iptables-restore', ok: false, bytes: Buffer.byteLength(input) }]);
    // The transaction was refused whole: the chain it declared does not exist.
    expect((await dataplane.read()).tables.filter.chains.has('cali-bad')).toBe(false);

    const badSet = 'create cali4-bad hash:net family inet\nadd cali4-bad 192.0.2.0/33\n';
    const setError = await dataplane.applyIpsets(badSet).catch((e: unknown) => e);
    expect(setError).toBeInstanceOf(CommandError);
    expect((setError as CommandError).stderr).toMatch(/line 2/);
    expect((setError as CommandError).input).toBe(badSet);
  });

  it('shares one `ipset save` between the families when their reads overlap, each keeping its own sets', async () => {
    const real = createCommandRunner({ netns: ns.name });
    const saves: string[][] = [];
    const runner: CommandRunner = { run: (argv, options) => (argv[0] === 'ipset' && saves.push([...argv]), real.run(argv, options)) };
    const backend = await selectIptablesBackend(real, mode);
    const ipsets = createIpsetIo(runner);
    const [v4, v6] = ([4, 6] as const).map((family) => createFamilyDataplane({ runner, family, backend, ipsets }));
    await v4!.applyIpsets('create cali4-tag-shared hash:net family inet\nadd cali4-tag-shared 192.0.2.7\n');
    await v6!.applyIpsets('create cali6-tag-shared hash:net family inet6\nadd cali6-tag-shared 2001:db8::7\n');
    saves.length = 0;
    const [state4, state6] = await Promise.all([v4!.read(), v6!.read()]);
    expect(saves).toEqual([['ipset', 'save']]);
    expect([...(state4.ipsets.get('cali4-tag-shared')?.members ?? [])]).toEqual(['192.0.2.7']);
    expect(state4.ipsets.has('cali6-tag-shared')).toBe(false);
    expect([...(state6.ipsets.get('cali6-tag-shared')?.members ?? [])]).toEqual(['2001:db8::7']);
    // Reads that do not overlap each run their own save (a later read never sees an older kernel).
    await v4!.read();
    expect(saves).toHaveLength(2);
  });

  it('does nothing for blank input', async () => {
    const events: unknown[] = [];
    const runner = createCommandRunner({ netns: ns.name });
    const dataplane = createFamilyDataplane({ runner, family: 4, backend: await selectIptablesBackend(runner, mode), observer: (e) => events.push(e) });
    await dataplane.applyIptables('filter', '');
    await dataplane.applyIpsets('  \n');
    expect(events).toEqual([]);
  });
});

describe('root namespace', () => {
  it('is unchanged by all of the above', () => {
    expect(rootFingerprint()).toBe(rootBefore);
  });
});
